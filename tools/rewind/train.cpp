#include "train.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <sstream>
#include <thread>

#include "epochs.hpp"
#include "model.hpp"

namespace rwd::cli {
namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string duration(double s) {
  if (s < 60) return fmt::format("{:.0f}s", s);
  if (s < 3600) return fmt::format("{:.0f}m{:02.0f}s", std::floor(s / 60), std::fmod(s, 60));
  return fmt::format("{:.0f}h{:02.0f}m", std::floor(s / 3600), std::fmod(s / 60, 60));
}

double accuracy(const Batch& b, const ConstMap<float>& logits) {
  std::size_t right = 0, total = 0;
  const auto score = [&](Index row, std::uint32_t ok) {
    Index best = 0;
    logits.row(row).maxCoeff(&best);
    right += (ok >> best) & 1u;
    ++total;
  };
  if (!b.scored_rows.empty()) {
    for (std::size_t k = 0; k < b.scored_rows.size(); ++k) score(b.scored_rows[k], b.acceptable[k]);
  } else {
    for (std::size_t r = 0; r < b.classes.size(); ++r) {
      if (b.classes[r] >= 0) score(static_cast<Index>(r), 1u << b.classes[r]);
    }
  }
  return total == 0 ? 0.0 : static_cast<double>(right) / static_cast<double>(total);
}

// Generates text one character at a time, carrying the recurrent state between steps.
template <class Layer>
std::string sample_text(Model<Layer>& model, const Task& task, long count, Rng& rng) {
  Tape<float> tape;
  typename Model<Layer>::Carried carried;
  std::int32_t id = 0;
  std::string text = task.decode(id);
  for (long k = 0; k < count; ++k) {
    tape.clear();
    const std::vector<std::int32_t> ids{id};
    const Var<float> y = model.step(tape, (*model.embedder())(tape, ids), carried);
    const Matrix<float> p = softmax_rows(scale(model.head()(tape, y), 1.0f / 0.8f)).value();
    std::discrete_distribution<std::int32_t> pick(p.data(), p.data() + p.size());
    id = pick(rng);
    text += task.decode(id);
  }
  return text;
}

// The options a checkpoint must agree on to be resumed exactly (everything but --steps and the
// output and checkpoint options), as (name, value).
std::vector<std::pair<std::string, std::string>> resumable_options(const TrainOptions& o,
                                                                   int ranks) {
  std::vector<std::pair<std::string, std::string>> data;
  if (is_data_task(o.task)) {
    data = {{"validation", std::to_string(o.validation)}, {"subset", std::to_string(o.subset)}};
  }
  std::vector<std::pair<std::string, std::string>> all{
      {"task", o.task},
      {"text", o.text},
      {"cell", o.cell},
      {"cell_file", o.cell_file},
      {"hidden", std::to_string(o.hidden)},
      {"layers", std::to_string(o.layers)},
      {"bidirectional", o.bidirectional ? "1" : "0"},
      {"batch", std::to_string(o.batch)},
      {"seq_len", std::to_string(o.seq_len)},
      {"optimizer", o.optimizer},
      {"lr", fmt::format("{}", o.lr)},
      {"clip", fmt::format("{}", o.clip)},
      {"seed", std::to_string(o.seed)},
      {"embed", std::to_string(o.embed)},
      {"checkpoints", std::to_string(o.checkpoints)},
      {"memory_budget", std::to_string(o.memory_budget)},
      {"schedule", o.schedule},
      {"accumulate", std::to_string(o.accumulate)},
      {"ranks", std::to_string(ranks)},
      {"reduce", o.distributed ? o.reduce : "-"}};
  all.insert(all.end(), data.begin(), data.end());
  return all;
}

double peak_rss_mb() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // kilobytes on Linux
}

// Ends the job when a step takes longer than the limit: a hung or lost rank would otherwise
// block the others in their next reduction forever.
class StepWatchdog {
 public:
  StepWatchdog(double seconds, optim::Communicator& comm) : seconds_(seconds), comm_(comm) {
    if (seconds_ > 0) thread_ = std::thread([this] { watch(); });
  }
  ~StepWatchdog() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void arm(long step) {
    if (seconds_ <= 0) return;
    {
      std::lock_guard lock(mutex_);
      step_ = step;
      deadline_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(seconds_));
    }
    cv_.notify_all();
  }

 private:
  void watch() {
    std::unique_lock lock(mutex_);
    while (!stop_) {
      if (step_ == 0) {
        cv_.wait(lock);
        continue;
      }
      const long step = step_;
      if (cv_.wait_until(lock, deadline_) == std::cv_status::timeout && !stop_ && step_ == step &&
          Clock::now() >= deadline_) {
        comm_.abort(4, fmt::format("rewind: rank {}: step {} did not finish within {} s (a rank "
                                   "is hung or gone); ending the job",
                                   comm_.rank(), step, seconds_));
      }
    }
  }
  double seconds_;
  optim::Communicator& comm_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  long step_ = 0;
  Clock::time_point deadline_;
};

// Keeps the lines of a CSV log up to `step` (a resumed run rewrites what came after): the first
// column is the step, or the epoch in a data task's log.
void truncate_log(const std::string& path, long step) {
  std::ifstream in(path);
  if (!in) return;
  std::string kept, line;
  bool header = true;
  while (std::getline(in, line)) {
    if (header || std::atol(line.c_str()) <= step) kept += line + "\n";
    header = false;
  }
  in.close();
  std::ofstream(path, std::ios::trunc) << kept;
}

// One `rewind train` run: one function per job. run() checks the options, joins the ranks,
// resumes, then per step trains the micro-batches, reduces, reports and saves a checkpoint, and
// finishes with the summary, the weights and a sample.
template <class Layer>
class Trainer {
 public:
  Trainer(const Task& task, const TrainOptions& o, Layer layer, Rng& rng, std::ostream& out,
          optim::Communicator& comm)
      : task_(task),
        o_(o),
        rng_(rng),
        out_(out),
        comm_(comm),
        model_(task, o, std::move(layer), rng),
        params_(model_.parameters()),
        opt_(optim::make_optimizer<float>(o.optimizer, params_, o.lr)),
        ranks_(comm.size()),
        root_(comm.rank() == 0),
        checkpoints_(o.checkpoint_dir, o.keep) {
    tape_.set_anomaly_mode(o.anomaly);
  }

  TrainResult run() {
    check_options();
    connect();
    plan_epochs();
    announce();
    if (!o_.resume.empty()) resume();
    open_log();
    choose_bptt();
    const auto t0 = Clock::now();
    elapsed_ = [this, t0] { return seconds_before_ + since(t0); };
    StepWatchdog watchdog(o_.step_timeout, comm_);
    int perturb_rank = -1;
    long perturb_step = -1;
    if (const char* e = std::getenv("REWIND_TEST_PERTURB"))
      std::sscanf(e, "%d:%ld", &perturb_rank, &perturb_step);
    for (long step = start_ + 1; step <= steps_; ++step) {
      watchdog.arm(step);
      auto [l, acc] = train_micro_batches(step);
      reduce(l, acc);
      if (task_.has_accuracy()) sum_acc_ += acc;
      if (epochs_) epochs_->add(l, acc);
      if (o_.clip > 0) optim::clip_grad_norm<float>(params_, o_.clip);
      opt_->step();
      if (!std::isfinite(l))
        throw UsageError(fmt::format(
            "training diverged: loss is {} at step {}{}", l, step,
            o_.anomaly ? ""
                       : " (--anomaly stops at the first op to make a NaN or Inf, naming it)"));
      sum_loss_ += l;
      ++in_window_;
      recent_.push_back(l);
      if (recent_.size() > 100) recent_.erase(recent_.begin());
      if (step % every_ == 0 || step == steps_) report(step);
      if (epochs_ && epochs_->ends_epoch(step)) end_epoch(epochs_->epoch_of(step));
      // Fault injection for the tests of --check-replicas: REWIND_TEST_PERTURB=RANK:STEP nudges
      // one weight on that rank after that step, as a bad memory bit or a diverging rank would.
      if (dp_ && perturb_rank == comm_.rank() && perturb_step == step) {
        params_[0]->value(0, 0) += 1e-3f;
        params_[0]->mark_changed();
      }
      if (dp_ && o_.check_replicas > 0 && step % o_.check_replicas == 0) dp_->check_replicas(step);
      if (o_.checkpoint_every > 0 && step % o_.checkpoint_every == 0 && root_)
        save_checkpoint(step);
    }
    watchdog.arm(0);
    return finish();
  }

 private:
  void check_options() const {
    if (o_.accumulate < 1)
      throw UsageError(fmt::format("--accumulate must be at least 1, got {}", o_.accumulate));
    if (!o_.distributed && ranks_ > 1) throw UsageError("several ranks but no --distributed");
    if (o_.checkpoint_every > 0 && o_.checkpoint_dir.empty())
      throw UsageError("--checkpoint-every needs --checkpoint-dir");
    if (o_.resume == "auto" && o_.checkpoint_dir.empty())
      throw UsageError("--resume auto needs --checkpoint-dir");
    if (data_ == nullptr && o_.epochs > 0)
      throw UsageError(fmt::format(
          "--epochs is for the data tasks (fashion-*); '{}' trains --steps", task_.name()));
    if (o_.eval_batch < 1) throw UsageError("--eval-batch must be at least 1");
  }

  // A data task trains whole epochs (epochs.hpp); a generated one --steps.
  void plan_epochs() {
    steps_ = o_.steps;
    if (data_ == nullptr) return;
    epochs_.emplace(*data_, o_.epochs > 0 ? o_.epochs : 10, global_rows_, o_.seed);
    steps_ = epochs_->steps();
  }

  // Data parallelism: every rank starts from rank 0's parameters, with the same options.
  void connect() {
    if (o_.distributed) {
      dp_.emplace(comm_, params_,
                  optim::DataParallelOptions{.reduction = o_.reduce == "ordered"
                                                              ? optim::Reduction::ordered
                                                              : optim::Reduction::average});
    }
    config_ = resumable_options(o_, ranks_);
    if (dp_) {
      std::string text;
      for (const auto& [k, v] : config_) text += k + "=" + v + "\n";
      dp_->broadcast_parameters(text);
    }
    // Micro-batches per optimizer step, over all ranks; each is `batch` rows of one global batch.
    micro_ = o_.accumulate;
    global_rows_ = o_.batch * micro_ * ranks_;
  }

  void announce() {
    result_.parameters = layers::parameter_count(params_);
    result_.baseline = task_.baseline(o_.seq_len);
    bar_ = o_.progress == 1 || (o_.progress == -1 && ::isatty(::fileno(stdout)) != 0);
    every_ = o_.log_every > 0
                 ? o_.log_every
                 : std::max<long>(1, epochs_ ? epochs_->per_epoch() / 10 : steps_ / 20);
    const std::string length =
        epochs_ ? fmt::format("{} epochs of {} steps", epochs_->epochs(), epochs_->per_epoch())
                : fmt::format("{} steps", steps_);
    out_ << fmt::format(
        "training {} ({} layer{}{}, hidden {}) on '{}': {} parameters, {}, batch {}, {} lr {}\n",
        o_.cell, o_.layers, o_.layers > 1 ? "s" : "", o_.bidirectional ? ", bidirectional" : "",
        o_.hidden, task_.name(), result_.parameters, length, o_.batch, o_.optimizer, o_.lr);
    if (data_ != nullptr) {
      out_ << fmt::format(
          "data: {} training, {} validation, {} test sequences of {} steps x {} features\n",
          data_->size(DataTask::Part::train), data_->size(DataTask::Part::validation),
          data_->size(DataTask::Part::test), data_->steps(), task_.input_size());
    }
    if (global_rows_ != o_.batch) {
      out_ << fmt::format("global batch {} = {} rank{} x {} micro-batch{} x {} rows{}\n",
                          global_rows_, ranks_, ranks_ > 1 ? "s" : "", micro_,
                          micro_ > 1 ? "es" : "", o_.batch,
                          dp_ ? fmt::format(" ({} reduction)", o_.reduce) : "");
    }
  }

  // Rank 0 finds and reads the checkpoint, every rank loads the same bytes.
  void resume() {
    std::vector<std::uint8_t> bytes;
    std::string chosen;
    if (root_) {
      if (o_.resume == "auto") {
        std::vector<std::string> rejected;
        auto found = optim::CheckpointDir(o_.checkpoint_dir, o_.keep).latest(&rejected);
        for (const std::string& r : rejected) out_ << "skipped a checkpoint: " << r << "\n";
        if (found) {
          chosen = found->path.string();
          bytes = std::move(found->bytes);
        } else {
          out_ << fmt::format("no checkpoint in '{}': starting at step 0\n", o_.checkpoint_dir);
        }
      } else {
        chosen = o_.resume;
        try {
          bytes = layers::read_file(chosen);
        } catch (const FileError&) {
          throw FileError(fmt::format("checkpoint: cannot open '{}'", chosen));
        }
      }
    }
    if (dp_) bytes = optim::broadcast_bytes(comm_, std::move(bytes));
    if (!bytes.empty()) restore(bytes, chosen);
  }

  void restore(const std::vector<std::uint8_t>& bytes, const std::string& chosen) {
    const auto st = optim::load_checkpoint<float>(bytes, chosen.empty() ? "checkpoint" : chosen,
                                                  params_, *opt_);
    std::string differ;
    for (const auto& [k, v] : config_) {
      const auto it = st.info.find("option." + k);
      const std::string was = it == st.info.end() ? "(none)" : it->second;
      if (was != v)
        differ +=
            fmt::format("{}{} is '{}' there, '{}' here", differ.empty() ? "" : ", ", k, was, v);
    }
    if (!differ.empty())
      throw UsageError(
          fmt::format("cannot resume: the checkpoint was made with other options: {}", differ));
    start_ = st.step;
    optim::set_engine_state(rng_, st.rng);
    const auto num = [&](const char* key) { return std::strtod(st.at(key).c_str(), nullptr); };
    sum_loss_ = num("sum_loss");
    sum_acc_ = num("sum_acc");
    in_window_ = std::atol(st.at("in_window").c_str());
    seconds_before_ = num("seconds");
    if (epochs_) epochs_->restore(st, params_);
    std::istringstream losses(st.at("recent_losses"));
    for (std::string v; losses >> v;) recent_.push_back(std::strtod(v.c_str(), nullptr));
    out_ << fmt::format("resumed from {} at step {}\n",
                        chosen.empty() ? "rank 0's checkpoint" : chosen, start_);
    if (start_ >= steps_)
      out_ << fmt::format("the checkpoint is at step {}, the run has {}: nothing to train\n",
                          start_, steps_);
  }

  void open_log() {
    if (o_.log.empty() || !root_) return;
    if (start_ > 0) truncate_log(o_.log, epochs_ ? start_ / epochs_->per_epoch() : start_);
    log_.open(o_.log, start_ > 0 ? std::ios::app : std::ios::trunc);
    if (!log_) throw FileError(fmt::format("cannot write the log file '{}'", o_.log));
    if (start_ == 0) {
      log_ << (data_ != nullptr
                   ? "epoch,step,loss,accuracy,val_accuracy,train_seconds,eval_seconds,seconds\n"
                   : "step,loss,accuracy,seconds\n");
    }
  }

  void choose_bptt() {
    checkpointed_ = o_.checkpoints > 0 || o_.memory_budget > 0;
    if (checkpointed_ && o_.bidirectional) {
      throw UsageError(
          "--checkpoints and --memory-budget need a unidirectional model: a bidirectional "
          "layer's reverse direction needs the whole sequence of the layer below");
    }
    if (o_.checkpoints > 0 && o_.memory_budget > 0)
      throw UsageError("give --checkpoints or --memory-budget, not both");
    bptt_ = layers::BackpropOptions<float>{
        .checkpoints = o_.checkpoints,
        .memory_budget_bytes = o_.memory_budget,
        .schedule = o_.schedule == "uniform"  ? layers::Schedule::uniform
                    : o_.schedule == "online" ? layers::Schedule::online
                                              : layers::Schedule::revolve};
    accumulated_.resize(params_.size());
  }

  // This rank's micro-batches of the step: their summed loss and accuracy, and the gradient
  // summed into each parameter's grad.
  std::pair<double, double> train_micro_batches(long step) {
    const Batch global =
        epochs_ ? epochs_->batch(step) : task_.sample(global_rows_, o_.seq_len, rng_);
    double l = 0, acc = 0;
    for (Index m = 0; m < micro_; ++m) {
      const Batch shard_b =
          global_rows_ == o_.batch
              ? Batch{}
              : shard(global, global_rows_, (comm_.rank() * micro_ + m) * o_.batch, o_.batch);
      const Batch& b = global_rows_ == o_.batch ? global : shard_b;
      tape_.clear();
      if (checkpointed_) {
        opt_->zero_grad();
        const auto r = model_.backprop(tape_, b, o_.batch, bptt_, &scores_);
        l += r.loss;
        if (step == start_ + 1 && m == 0) out_ << "checkpointing: " << r.report.summary() << "\n";
        if (task_.has_accuracy())
          acc += accuracy(b, ConstMap<float>(scores_.data(), scores_.rows(), scores_.cols()));
      } else {
        Var<float> logits;
        const Var<float> loss = model_.loss(tape_, b, o_.batch, &logits);
        opt_->zero_grad();
        tape_.backward(loss);
        l += loss.item();
        if (task_.has_accuracy()) acc += accuracy(b, logits.value());
      }
      // Each micro-batch's gradient is made from zero and added to the others in order, as
      // the ordered reduction adds the ranks' gradients: the two give the same bits. (With
      // both, each rank sums its own micro-batches first, so N ranks × K equal one process
      // with N·K micro-batches up to rounding, not bit for bit.)
      if (micro_ > 1) {
        for (std::size_t k = 0; k < params_.size(); ++k) {
          if (m == 0) {
            accumulated_[k] = params_[k]->grad;
          } else {
            accumulated_[k] += params_[k]->grad;
          }
        }
      }
    }
    if (micro_ > 1) {
      for (std::size_t k = 0; k < params_.size(); ++k) params_[k]->grad.swap(accumulated_[k]);
    }
    return {l, acc};
  }

  // The step's mean gradient, loss and accuracy over every rank and micro-batch.
  void reduce(double& l, double& acc) {
    const auto count = static_cast<double>(micro_ * ranks_);
    if (dp_) {
      dp_->reduce_gradients(count);
      l = dp_->sum(l) / count;
      if (task_.has_accuracy()) acc = dp_->sum(acc) / count;
    } else if (micro_ > 1) {
      for (Parameter<float>* p : params_) p->grad /= static_cast<float>(count);
      l /= count;
      acc /= count;
    }
  }

  // The window's mean loss and accuracy: to the curve, the log and the progress bar or line.
  void report(long step) {
    LogPoint p{step, sum_loss_ / static_cast<double>(in_window_),
               task_.has_accuracy() ? sum_acc_ / static_cast<double>(in_window_) : -1.0,
               elapsed_()};
    result_.curve.push_back(p);
    if (log_ && data_ == nullptr)
      log_ << fmt::format("{},{:.6g},{},{:.3f}\n", p.step, p.loss,
                          p.accuracy >= 0 ? fmt::format("{:.4f}", p.accuracy) : "", p.seconds)
           << std::flush;
    const double rate = static_cast<double>(step - start_) / (p.seconds - seconds_before_);
    const std::string acc_text = p.accuracy >= 0 ? fmt::format("  acc {:.3f}", p.accuracy) : "";
    // A data task counts within its epoch, and in samples per second.
    const long done = epochs_ ? epochs_->place_of(step) : step;
    const long of = epochs_ ? epochs_->per_epoch() : steps_;
    const std::string epoch =
        epochs_ ? fmt::format("epoch {}/{} ", epochs_->epoch_of(step), epochs_->epochs()) : "";
    const std::string speed =
        data_ != nullptr ? fmt::format("{:.0f} samples/s", rate * static_cast<double>(global_rows_))
                         : fmt::format("{:.1f} steps/s", rate);
    if (bar_) {
      const int width = 30, filled = static_cast<int>(width * done / of);
      out_ << fmt::format("\r{}[{}{}] {}/{}  loss {:.4f}{}  {}  ETA {}   ", epoch,
                          std::string(static_cast<std::size_t>(filled), '='),
                          std::string(static_cast<std::size_t>(width - filled), ' '), done, of,
                          p.loss, acc_text, speed,
                          duration(static_cast<double>(steps_ - step) / rate))
           << std::flush;
    } else {
      out_ << fmt::format("{}step {}/{}  loss {:.4f}{}  {}  {:.1f}s\n", epoch, done, of, p.loss,
                          acc_text, speed, p.seconds)
           << std::flush;
    }
    sum_loss_ = sum_acc_ = 0;
    in_window_ = 0;
  }

  void save_checkpoint(long step) {
    optim::TrainingState<float> st{.step = step, .rng = optim::engine_state(rng_)};
    for (const auto& [k, v] : config_) st.info["option." + k] = v;
    st.info["sum_loss"] = fmt::format("{}", sum_loss_);
    st.info["sum_acc"] = fmt::format("{}", sum_acc_);
    st.info["in_window"] = std::to_string(in_window_);
    st.info["seconds"] = fmt::format("{}", elapsed_());
    std::string losses;  // doubles, so as exact text rather than a float tensor
    for (double v : recent_) losses += fmt::format("{}{}", losses.empty() ? "" : " ", v);
    st.info["recent_losses"] = losses;
    if (epochs_) epochs_->save(st, params_);
    checkpoints_.save<float>(params_, *opt_, st);
  }

  TrainResult finish() {
    if (bar_) out_ << "\n";
    result_.seconds = elapsed_();
    result_.final_loss = recent_.empty() ? 0
                                         : std::accumulate(recent_.begin(), recent_.end(), 0.0) /
                                               static_cast<double>(recent_.size());
    result_.final_accuracy = result_.curve.empty() ? -1 : result_.curve.back().accuracy;
    out_ << fmt::format("done: {} steps in {:.1f}s ({:.1f} steps/s)\n", steps_, result_.seconds,
                        static_cast<double>(steps_ - start_) / (result_.seconds - seconds_before_));
    if (dp_ && dp_->buckets() > 0) report_reduction();
    out_ << fmt::format("final loss {:.5f} (mean of the last {} steps); without memory: {:.5f}\n",
                        result_.final_loss, recent_.size(), result_.baseline);
    if (result_.final_accuracy >= 0)
      out_ << fmt::format("accuracy {:.4f} (last interval)\n", result_.final_accuracy);
    out_ << fmt::format("parameters {}\n", result_.parameters);
    if (data_ != nullptr) test();
    result_.peak_rss_mb = peak_rss_mb();
    out_ << fmt::format("peak memory {:.0f} MB\n", result_.peak_rss_mb);
    if (!o_.save.empty() && root_) {
      layers::save_parameters(
          o_.save, params_,
          {{"task", o_.task},
           {"cell", o_.cell},
           {"cell_file", o_.cell_file},
           {"hidden", std::to_string(o_.hidden)},
           {"layers", std::to_string(o_.layers)},
           {"bidirectional", o_.bidirectional ? "1" : "0"},
           {"seed", std::to_string(o_.seed)},
           {"epoch", epochs_ ? std::to_string(result_.best_epoch) : std::string()}});
      out_ << fmt::format("saved {}weights to {}\n",
                          result_.best_epoch > 0 ? "the best epoch's " : "", o_.save);
    }
    if (task_.embeds() && o_.sample > 0) {
      result_.sample = sample_text(model_, task_, o_.sample, rng_);
      out_ << "sample:\n" << result_.sample << "\n";
    }
    return result_;
  }

  // The epoch's figures and its validation; the best weights so far are kept (epochs.hpp).
  void end_epoch(long epoch) {
    const double train_seconds = elapsed_() - epochs_->began(), before = elapsed_();
    const double validation =
        data_->size(DataTask::Part::validation) > 0
            ? model_.evaluate(*data_, DataTask::Part::validation, o_.eval_batch).accuracy()
            : -1.0;
    bool best = false;
    const EpochPoint p =
        epochs_->close(epoch, train_seconds, validation, elapsed_() - before, params_, best);
    if (bar_) out_ << "\n";
    out_ << fmt::format("epoch {}/{}: loss {:.4f}  acc {:.4f}  {}  {:.1f}s ({:.0f} samples/s){}\n",
                        epoch, epochs_->epochs(), p.loss, p.accuracy,
                        p.validation >= 0 ? fmt::format("validation acc {:.4f}", p.validation)
                                          : std::string("no validation"),
                        p.train_seconds,
                        static_cast<double>(epochs_->per_epoch() * global_rows_) /
                            std::max(p.train_seconds, 1e-9),
                        best ? " (best)" : "")
         << std::flush;
    if (log_)
      log_ << fmt::format("{},{},{:.6g},{:.4f},{},{:.3f},{:.3f},{:.3f}\n", epoch,
                          epoch * epochs_->per_epoch(), p.loss, p.accuracy,
                          p.validation >= 0 ? fmt::format("{:.4f}", p.validation) : "",
                          p.train_seconds, p.eval_seconds, elapsed_())
           << std::flush;
    epochs_->begin(elapsed_());
  }

  // The best epoch's weights (the last epoch's without a validation part) on the test part.
  void test() {
    result_.epochs = epochs_->history();
    result_.best_epoch = epochs_->restore_best(params_);
    const Confusion c = model_.evaluate(*data_, DataTask::Part::test, o_.eval_batch);
    result_.test_accuracy = c.accuracy();
    for (Index k = 0; k < task_.output_size(); ++k)
      result_.class_accuracy.push_back(c.class_accuracy(k));
    out_ << fmt::format("test accuracy {:.4f} ({} images; the weights of epoch {}{})\n",
                        c.accuracy(), c.total(),
                        result_.best_epoch > 0 ? result_.best_epoch : epochs_->epochs(),
                        result_.best_epoch > 0 ? ", the best validation accuracy" : "")
         << c.table();
    if (!o_.confusion.empty() && root_) {
      c.write(o_.confusion);
      out_ << fmt::format("wrote {0}.csv and {0}.svg\n", o_.confusion);
    }
  }

  // The gradient reduction's share of a step, and what a ring all-reduce would cost on more
  // machines.
  void report_reduction() {
    const double steps_run = static_cast<double>(std::max<long>(1, steps_ - start_));
    const double reduce_ms = 1e3 * dp_->reduce_seconds() / steps_run;
    const double step_ms = 1e3 * (result_.seconds - seconds_before_) / steps_run;
    out_ << fmt::format(
        "gradient reduction: {:.3f} ms of {:.3f} ms per step ({} bucket{}, {} ranks)\n", reduce_ms,
        step_ms, dp_->buckets(), dp_->buckets() > 1 ? "s" : "", ranks_);
    // A ring all-reduce of S bytes over N machines sends 2(N−1)/N·S per machine in 2(N−1)
    // messages: t(N) ≈ 2(N−1)/N·S/β + 2(N−1)·α. Figures for 10 Gbit/s Ethernet (β = 1.25 GB/s,
    // α = 25 µs), against this run's compute time per step.
    const double bytes = static_cast<double>(result_.parameters) * sizeof(float);
    const double compute_ms = std::max(step_ms - reduce_ms, 1e-9);
    std::string model;
    for (int n : {2, 4, 8, 16, 64}) {
      const double t = 1e3 * (2.0 * (n - 1) / n * bytes / 1.25e9 + 2.0 * (n - 1) * 25e-6);
      model += fmt::format("{}N={}: {:.2f} ms, efficiency {:.0f}%", model.empty() ? "" : "; ", n, t,
                           100 * compute_ms / (compute_ms + t));
    }
    out_ << fmt::format("cost model (ring all-reduce of {:.2f} MB, 10 Gbit/s, 25 us): {}\n",
                        bytes / 1e6, model);
  }

  const Task& task_;
  const TrainOptions& o_;
  Rng& rng_;
  std::ostream& out_;
  optim::Communicator& comm_;
  Model<Layer> model_;
  std::vector<Parameter<float>*> params_;
  std::unique_ptr<optim::Optimizer<float>> opt_;
  const int ranks_;
  const bool root_;
  const optim::CheckpointDir checkpoints_;
  std::optional<optim::DataParallel<float>> dp_;
  std::vector<std::pair<std::string, std::string>> config_;
  Index micro_ = 1, global_rows_ = 0;
  TrainResult result_;
  bool bar_ = false;
  long every_ = 1;
  // The loss and accuracy window since the last report, and what a resumed run carries over.
  double sum_loss_ = 0, sum_acc_ = 0, seconds_before_ = 0;
  long in_window_ = 0, start_ = 0;
  std::vector<double> recent_;  // the last 100 steps' losses
  std::ofstream log_;
  std::function<double()> elapsed_;
  bool checkpointed_ = false;
  layers::BackpropOptions<float> bptt_;
  Tape<float> tape_;
  Matrix<float> scores_;
  std::vector<Matrix<float>> accumulated_;
  // The run's length; a data task's epochs.
  long steps_ = 0;
  const DataTask* data_ = task_.data();
  std::optional<Epochs> epochs_;
};

}  // namespace

std::string model_summary(const TrainOptions& o) {
  return with_model(o, [&](const Task& task, auto layer, Rng& rng) {
    Model<decltype(layer)> model(task, o, std::move(layer), rng);
    return model.summary(o).str();
  });
}

TrainResult train(const TrainOptions& o, std::ostream& out, optim::Communicator* comm) {
  optim::SingleProcess single;
  return with_model(o, [&](const Task& task, auto layer, Rng& rng) {
    return Trainer(task, o, std::move(layer), rng, out, comm != nullptr ? *comm : single).run();
  });
}

}  // namespace rwd::cli
