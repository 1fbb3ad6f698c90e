// The tasks of `rewind train`: generated in code from a seed (no downloads), or over a fixed data
// set from a Debian package (Fashion-MNIST), trained in epochs. Each task makes batches of
// sequences and says how its loss is formed.
#pragma once

#include <memory>
#include <rewind/rewind.hpp>
#include <span>
#include <string>
#include <vector>

namespace rwd::cli {

using Rng = layers::Rng;

/// How the model's per-step outputs are turned into a loss.
enum class LossKind {
  kMseLast,            ///< mean squared error of the last step's output (adding problem)
  kMseEvery,           ///< mean squared error at every step (sine prediction)
  kCrossEntropyEvery,  ///< softmax cross-entropy at every valid step (copy, Reber, characters)
  kCrossEntropyLast    ///< softmax cross-entropy of the last step (sequence classification)
};

/// One batch: inputs per step, and targets.
struct Batch {
  std::vector<Matrix<float>> xs;  ///< T tensors, batch × input (one-hot or real)
  std::vector<std::int32_t>
      ids;               ///< for tasks whose input is a class id per step (T·B, row t·B + b)
  Matrix<float> target;  ///< kMseLast: batch × out; kMseEvery: (T·B) × out
  std::vector<std::int32_t>
      classes;  ///< kCrossEntropyEvery: one per (t, b), row t·B + b, -1 = ignore; Last: one per b
  std::vector<std::int32_t> lengths;  ///< per batch row, when sequences have different lengths
  /// Rows (t·B + b) at which accuracy is scored, and the set of acceptable classes for each
  /// (bit k set = class k is right). Empty: accuracy is argmax == target over valid rows.
  std::vector<std::int32_t> scored_rows;
  std::vector<std::uint32_t> acceptable;
};

class DataTask;

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
  virtual bool has_accuracy() const {
    return loss() == LossKind::kCrossEntropyEvery || loss() == LossKind::kCrossEntropyLast;
  }
  /// Text generation after training (character model only).
  virtual std::string decode(std::int32_t) const { return {}; }
  virtual std::int32_t encode(char) const { return 0; }
  /// The task as a fixed data set trained in epochs, or null for a generated one.
  virtual const DataTask* data() const { return nullptr; }
};

/// Where a data task's files are and how its training set is cut.
struct DataOptions {
  std::string dir;          ///< folder of the files ("": the Debian package's)
  Index validation = 5000;  ///< training examples held out, validated after each epoch
  Index subset = 0;         ///< train on the first N of the rest in a seeded order (0: all)
  std::uint64_t seed = 1;   ///< the split, the subset and the permuted view
};

/// A task over a fixed data set: examples by position in one of its three parts. A step of
/// training takes a batch of training examples in a seeded epoch order (layers::epoch_order);
/// `sample` draws training examples at random (for the commands that want any batch).
class DataTask : public Task {
 public:
  enum class Part { train, validation, test };
  virtual Index size(Part part) const = 0;
  /// Time steps of every sequence (the view's: 28 rows or 784 pixels).
  virtual Index steps() const = 0;
  /// The examples at positions `which` of `part` as one batch (classes: one label per row).
  virtual Batch examples(Part part, std::span<const Index> which) const = 0;
  virtual const std::vector<std::string>& class_names() const = 0;
  const DataTask* data() const override { return this; }
};

/// "train", "validation", "test".
const char* part_name(DataTask::Part part);

/// Rows [begin, begin + count) of a batch of `rows` sequences, every field cut alike (inputs,
/// ids, targets, classes, lengths, scored rows): the micro-batch of one accumulation step or
/// one rank. Sequences keep the batch's padded length.
Batch shard(const Batch& b, Index rows, Index begin, Index count);

/// "adding", "copy", "selective-copy", "reber", "sine", "text" (needs `text_file`), and the data
/// tasks "fashion-rows", "fashion-pixels", "fashion-permuted" (files as `data` says). UsageError
/// for another name or a bad split, FileError for an unreadable or malformed file.
std::unique_ptr<Task> make_task(const std::string& name, const std::string& text_file = {},
                                const DataOptions& data = {});

/// Whether `name` is a data task (trained in epochs).
bool is_data_task(const std::string& name);

/// The names make_task knows.
const std::vector<std::string>& task_names();

}  // namespace rwd::cli
