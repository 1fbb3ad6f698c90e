// Training checkpoints: everything a training loop needs to continue as if it had never stopped,
// in one safetensors file (layers/safetensors.hpp), written atomically and checksummed.
//
// A file holds the parameters under their own names (so load_parameters with allow_unexpected,
// or Python's safetensors reader, takes the weights out of it), the optimizer's buffers as
// `optimizer/<parameter>/<buffer>` (torch.optim's buffer names), the loop's extra tensors as
// `state/<name>` (carried recurrent state, running sums), and in the metadata: the format, the
// dtype, the step, the generator state, the optimizer's kind, step count, learning rate and
// hyperparameters (`optimizer.*`), the loop's own values (`info.*`) and a CRC-32 of all of it.
// Numbers are written in their shortest round-trip form, so a value read back is the same bits.
//
// Loading checks everything before it changes anything: the checksum (a flipped bit anywhere is
// rejected), the structure, every parameter's name and shape, the optimizer's kind,
// hyperparameters and buffers. A failed load leaves parameters and optimizer as they were.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <rewind/autograd/errors.hpp>
#include <rewind/optim/optimizer.hpp>
#include <span>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace rwd::optim {

/// What a training loop keeps beyond parameters and optimizer state.
template <class T>
struct TrainingState {
  long step = 0;    ///< training steps done: the position of the loop and of any lr schedule
  std::string rng;  ///< a generator's state (engine_state), the data cursor of a sampled stream
  std::map<std::string, std::string> info;                 ///< the loop's own values
  std::vector<std::pair<std::string, Matrix<T>>> tensors;  ///< carried state and other tensors
  /// The tensor named `name`, or UsageError naming it.
  const Matrix<T>& tensor(const std::string& name) const;
  /// The value of info `key`, or FileError naming it.
  const std::string& at(const std::string& key) const;
};

/// A standard engine's state as text (operator<<), and back. set_engine_state throws FileError
/// when the text is not a state of that engine.
template <class Engine>
std::string engine_state(const Engine& e) {
  std::ostringstream out;
  out << e;
  return out.str();
}
template <class Engine>
void set_engine_state(Engine& e, const std::string& text) {
  std::istringstream in(text);
  Engine read;
  in >> read;
  if (!in) throw FileError("checkpoint: the generator state is not valid");
  e = read;
}

/// Writes a checkpoint of `params`, `optimizer` and `state` to `path` atomically (a temporary
/// file, fsync, rename, directory fsync): a crash leaves the old file or the new one.
template <class T>
void save_checkpoint(const std::filesystem::path& path, const std::vector<Parameter<T>*>& params,
                     const Optimizer<T>& optimizer, const TrainingState<T>& state);

/// Reads a checkpoint into `params` and `optimizer` and returns the loop's state. FileError for
/// a file that is truncated, corrupt or not a checkpoint; UsageError (with every reason) for a
/// sound checkpoint of another model, dtype or optimizer. Nothing is changed then.
template <class T>
TrainingState<T> load_checkpoint(const std::filesystem::path& path,
                                 const std::vector<Parameter<T>*>& params, Optimizer<T>& optimizer);

/// The same from a checkpoint's bytes (read by another process and broadcast, say); `name` is
/// for the messages.
template <class T>
TrainingState<T> load_checkpoint(std::span<const std::uint8_t> bytes, const std::string& name,
                                 const std::vector<Parameter<T>*>& params, Optimizer<T>& optimizer);

/// A directory of checkpoints named `step-<8 digits>.safetensors`, of which the newest `keep`
/// are kept (keep ≤ 0: all).
class CheckpointDir {
 public:
  CheckpointDir(std::filesystem::path dir, int keep);
  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path path_for(long step) const;
  /// The checkpoints present, newest first (by step; other files are ignored).
  std::vector<std::pair<long, std::filesystem::path>> list() const;
  /// Writes the checkpoint of `state.step` (creating the directory), then deletes the oldest
  /// beyond `keep`. Returns its path.
  template <class T>
  std::filesystem::path save(const std::vector<Parameter<T>*>& params,
                             const Optimizer<T>& optimizer, const TrainingState<T>& state) const;
  /// The newest checkpoint that is sound (reads, passes its checksum, is a checkpoint), as its
  /// path and bytes; each damaged one skipped on the way is added to `rejected` with its
  /// reason. For a caller that loads the bytes itself (rank 0 broadcasting them, say).
  struct Found {
    std::filesystem::path path;
    std::vector<std::uint8_t> bytes;
  };
  std::optional<Found> latest(std::vector<std::string>* rejected = nullptr) const;
  /// Loads the newest checkpoint that is sound; each damaged one (FileError) skipped on the way
  /// is added to `rejected` with its reason, and the one loaded is written to `chosen`. Empty
  /// when there is none. A sound checkpoint that does not fit throws (UsageError): the folder
  /// belongs to another run, and starting afresh would hide that.
  template <class T>
  std::optional<TrainingState<T>> load_latest(const std::vector<Parameter<T>*>& params,
                                              Optimizer<T>& optimizer,
                                              std::vector<std::string>* rejected = nullptr,
                                              std::filesystem::path* chosen = nullptr) const;

 private:
  std::filesystem::path dir_;
  int keep_;
};

}  // namespace rwd::optim
