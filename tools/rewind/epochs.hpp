// A data task trained in epochs: which batch each step takes, the epoch's running figures, the
// best weights by validation accuracy, and what of it a training checkpoint holds. The model,
// the printing and the timing stay with the trainer.
#pragma once

#include <rewind/optim/checkpoint.hpp>
#include <vector>

#include "tasks.hpp"
#include "train.hpp"

namespace rwd::cli {

class Epochs {
 public:
  /// `epochs` passes over `data`'s training part in global batches of `rows`, each step the
  /// next batch of the epoch's order (layers::epoch_order from `seed`); an epoch's last partial
  /// batch is left out (PyTorch's drop_last). UsageError when `rows` exceeds the training part.
  Epochs(const DataTask& data, long epochs, Index rows, std::uint64_t seed);
  long epochs() const { return epochs_; }
  long per_epoch() const { return per_epoch_; }
  long steps() const { return epochs_ * per_epoch_; }
  long epoch_of(long step) const { return (step - 1) / per_epoch_ + 1; }  ///< 1-based
  long place_of(long step) const { return (step - 1) % per_epoch_ + 1; }  ///< 1-based
  bool ends_epoch(long step) const { return step % per_epoch_ == 0; }
  /// The training batch of `step` (1-based, counted over the whole run).
  Batch batch(long step);
  /// One step's loss and accuracy, for the epoch's means.
  void add(double loss, double accuracy);
  /// Closes an epoch: its means, `validation` (< 0: none) and whether it is the best so far by
  /// validation accuracy (the earlier epoch wins a tie), whose `params` values are then kept.
  EpochPoint close(long epoch, double train_seconds, double validation, double eval_seconds,
                   const std::vector<Parameter<float>*>& params, bool& best);
  /// When the open epoch began, in the run's seconds.
  double began() const { return began_; }
  void begin(double seconds) { began_ = seconds; }
  /// The best epoch's weights into `params` (changed: recordings of them are refused); returns
  /// that epoch, 0 when none was validated (then nothing changes).
  long restore_best(const std::vector<Parameter<float>*>& params) const;
  const std::vector<EpochPoint>& history() const { return history_; }
  long best_epoch() const { return best_epoch_; }
  /// The data cursor (for a reader: the step fixes it), the open epoch's sums, the epochs so
  /// far and the best weights, into or out of a checkpoint of step `st.step`. restore throws
  /// UsageError when the checkpoint's cursor does not fit this run's epochs.
  void save(optim::TrainingState<float>& st, const std::vector<Parameter<float>*>& params) const;
  void restore(const optim::TrainingState<float>& st, const std::vector<Parameter<float>*>& params);

 private:
  const DataTask& data_;
  long epochs_, per_epoch_;
  Index rows_;
  std::uint64_t seed_;
  long order_epoch_ = -1;
  std::vector<Index> order_;
  double loss_ = 0, accuracy_ = 0, began_ = 0, best_accuracy_ = -1;
  long steps_ = 0, best_epoch_ = 0;
  std::vector<EpochPoint> history_;
  std::vector<Matrix<float>> best_;
};

}  // namespace rwd::cli
