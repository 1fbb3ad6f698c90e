// `rewind train`: a recurrent model (Embedding for text, an RNN/LSTM/GRU stack, a linear head)
// trained on a built-in task, in float: for a number of steps on a generated task, or for a
// number of epochs on a data set (validated after each, the best weights kept and tested).
// `rewind evaluate`: the test accuracy of saved weights on a data task.
#pragma once

#include <iosfwd>
#include <rewind/optim/distributed.hpp>
#include <string>
#include <vector>

#include "tasks.hpp"

namespace rwd::cli {

struct TrainOptions {
  std::string task = "adding";
  std::string text;  ///< text file for the text task
  std::string cell = "lstm";
  std::string cell_file;  ///< a .cell file: its cell instead of --cell
  Index hidden = 64;
  int layers = 1;
  bool bidirectional = false;
  long steps = 1000;
  Index batch = 32;
  Index seq_len = 50;
  std::string optimizer = "adam";
  double lr = 1e-3;
  double clip = 0;  ///< max gradient norm; 0 = no clipping
  std::uint64_t seed = 1;
  std::string save;    ///< safetensors file for the trained weights
  std::string log;     ///< CSV of step, loss, accuracy, seconds
  long log_every = 0;  ///< 0: steps / 20
  int progress = -1;   ///< 1 bar, 0 lines, -1 bar when the output is a terminal
  Index embed = 32;    ///< embedding width (text task)
  long sample = 300;   ///< characters to generate after training (text task)
  /// Checkpointed BPTT (layers/checkpointed.hpp): stored states per sequence, or a memory budget
  /// in bytes; both 0: plain BPTT. Unidirectional models only.
  int checkpoints = 0;
  std::size_t memory_budget = 0;
  std::string schedule = "revolve";  ///< revolve, uniform or online
  /// Training checkpoints (optim/checkpoint.hpp): every N steps into `checkpoint_dir`, the last
  /// `keep` kept; `resume` is a checkpoint file, or "auto" for the newest valid one in the folder.
  long checkpoint_every = 0;
  std::string checkpoint_dir;
  int keep = 3;
  std::string resume;
  int accumulate = 1;  ///< micro-batches of `batch` rows per optimizer step (per rank)
  /// Data parallel over the communicator train() is given: `batch` rows per rank and
  /// micro-batch; "average" (MPI_Allreduce) or "ordered" (rank order, bit-identical to
  /// --accumulate over the same micro-batches).
  bool distributed = false;
  std::string reduce = "average";
  long check_replicas = 0;  ///< compare the replicas' checksums every N steps (0: never)
  double step_timeout = 0;  ///< end the job when a step takes longer (seconds; 0: no limit)
  /// Tape::set_anomaly_mode on the training tape: the first NaN or Inf in a value or gradient
  /// ends training with NumericalError naming the op, its scope and its inputs' ranges.
  bool anomaly = false;
  /// Data tasks (fashion-*): passes over the training part (0: 10), the folder of the files
  /// ("": the Debian package's), the split, a seeded subset of the training part (0: all), the
  /// batch of evaluation (forward only), and a stem for the test confusion matrix (.csv, .svg).
  long epochs = 0;
  std::string data;
  Index validation = 5000;
  Index subset = 0;
  Index eval_batch = 1000;
  std::string confusion;
};

struct LogPoint {
  long step = 0;
  double loss = 0;       ///< mean over the steps since the previous point
  double accuracy = -1;  ///< likewise, -1 where the task has none
  double seconds = 0;
};

/// One epoch of a data task.
struct EpochPoint {
  long epoch = 0;            ///< 1-based
  double loss = 0;           ///< mean training loss over the epoch's steps
  double accuracy = 0;       ///< mean training accuracy over them
  double validation = -1;    ///< validation accuracy after the epoch (-1: no validation part)
  double train_seconds = 0;  ///< the epoch's training steps alone
  double eval_seconds = 0;   ///< its validation
};

struct TrainResult {
  std::vector<LogPoint> curve;
  std::vector<EpochPoint> epochs;  ///< data tasks
  long best_epoch = 0;             ///< whose weights were tested and saved (0: the last)
  double test_accuracy = -1;       ///< data tasks: of the best weights, on the test part
  std::vector<double> class_accuracy;
  double peak_rss_mb = 0;  ///< the process's peak resident memory at the end
  double final_loss = 0;   ///< mean of the last min(100, steps) steps
  double final_accuracy = -1;
  double baseline = 0;
  double seconds = 0;
  Index parameters = 0;
  std::string sample;  ///< generated text (text task)
};

/// The model `train` would build, as a Keras-style table (`rewind summary`).
std::string model_summary(const TrainOptions& options);

/// Runs the whole training and prints progress and a summary to `out`. With
/// `options.distributed`, `comm` holds the ranks (one process without it); only rank 0 writes
/// the log, checkpoints and weights.
TrainResult train(const TrainOptions& options, std::ostream& out,
                  optim::Communicator* comm = nullptr);

struct EvaluateOptions {
  std::string weights;    ///< a weights file written by `rewind train --save` on a data task
  std::string task;       ///< "": the one in the file's metadata
  std::string cell_file;  ///< the .cell file, when the weights are of a file cell
  std::string data;       ///< folder of the files ("": the package's)
  Index batch = 1000;
  std::string confusion;  ///< stem of the confusion matrix files (.csv, .svg)
};

/// The test accuracy and confusion matrix of saved weights, the model rebuilt from the file's
/// metadata. Returns the accuracy.
double evaluate(const EvaluateOptions& options, std::ostream& out);

}  // namespace rwd::cli
