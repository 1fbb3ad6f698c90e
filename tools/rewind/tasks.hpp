// The built-in tasks of `rewind train`, generated in code from a seed (no downloads). Each task
// makes batches of sequences and says how its loss is formed.
#pragma once

#include <memory>
#include <rewind/rewind.hpp>
#include <string>
#include <vector>

namespace rwd::cli {

using Rng = layers::Rng;

/// How the model's per-step outputs are turned into a loss.
enum class LossKind {
  kMseLast,           ///< mean squared error of the last step's output (adding problem)
  kMseEvery,          ///< mean squared error at every step (sine prediction)
  kCrossEntropyEvery  ///< softmax cross-entropy at every valid step (copy, Reber, characters)
};

/// One batch: inputs per step, and targets.
struct Batch {
  std::vector<Matrix<float>> xs;  ///< T tensors, batch × input (one-hot or real)
  std::vector<std::int32_t>
      ids;               ///< for tasks whose input is a class id per step (T·B, row t·B + b)
  Matrix<float> target;  ///< kMseLast: batch × out; kMseEvery: (T·B) × out
  std::vector<std::int32_t>
      classes;  ///< kCrossEntropyEvery: one per (t, b), row t·B + b; -1 = ignore
  std::vector<std::int32_t> lengths;  ///< per batch row, when sequences have different lengths
  /// Rows (t·B + b) at which accuracy is scored, and the set of acceptable classes for each
  /// (bit k set = class k is right). Empty: accuracy is argmax == target over valid rows.
  std::vector<std::int32_t> scored_rows;
  std::vector<std::uint32_t> acceptable;
};

class Task {
 public:
  virtual ~Task() = default;
  virtual std::string name() const = 0;
  virtual Index input_size() const = 0;   ///< features per step (or vocabulary, with embeds())
  virtual Index output_size() const = 0;  ///< regression outputs or classes
  virtual LossKind loss() const = 0;
  /// A batch of sequences of about `steps` steps.
  virtual Batch sample(Index batch, Index steps, Rng& rng) const = 0;
  /// The loss of a model that ignores its inputs' history (for the summary): the number to beat.
  virtual double baseline(Index steps) const = 0;
  /// Inputs are class ids looked up in an embedding table (character language model).
  virtual bool embeds() const { return false; }
  /// Whether accuracy means anything for this task.
  virtual bool has_accuracy() const { return loss() == LossKind::kCrossEntropyEvery; }
  /// Text generation after training (character model only).
  virtual std::string decode(std::int32_t) const { return {}; }
  virtual std::int32_t encode(char) const { return 0; }
};

/// Rows [begin, begin + count) of a batch of `rows` sequences, every field cut alike (inputs,
/// ids, targets, classes, lengths, scored rows): the micro-batch of one accumulation step or
/// one rank. Sequences keep the batch's padded length.
Batch shard(const Batch& b, Index rows, Index begin, Index count);

/// "adding", "copy", "selective-copy", "reber", "sine", "text" (needs `text_file`). UsageError for
/// another name, FileError for an unreadable or empty text file.
std::unique_ptr<Task> make_task(const std::string& name, const std::string& text_file = {});

/// The names make_task knows.
const std::vector<std::string>& task_names();

}  // namespace rwd::cli
