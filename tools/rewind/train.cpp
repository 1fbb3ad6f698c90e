#include "train.hpp"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <numeric>
#include <optional>
#include <sstream>
#include <thread>

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
  using State = typename Layer::State;
  Tape<float> tape;
  std::vector<std::array<Matrix<float>, std::tuple_size_v<State>>> carried;
  std::int32_t id = 0;
  std::string text = task.decode(id);
  for (long k = 0; k < count; ++k) {
    tape.clear();
    typename Layer::Call call;
    for (const auto& c : carried) {
      State s;
      for (std::size_t j = 0; j < s.size(); ++j) s[j] = tape.constant(c[j]);
      call.initial.push_back(s);
    }
    const std::vector<std::int32_t> ids{id};
    std::vector<Var<float>> xs{(*model.embedder())(tape, ids)};
    auto out = model.layer()(tape, xs, call);
    const Matrix<float> p =
        softmax_rows(scale(model.head()(tape, out.outputs[0]), 1.0f / 0.8f)).value();
    std::discrete_distribution<std::int32_t> pick(p.data(), p.data() + p.size());
    id = pick(rng);
    text += task.decode(id);
    carried.clear();
    for (const State& s : out.final_states) {
      std::array<Matrix<float>, std::tuple_size_v<State>> c;
      for (std::size_t j = 0; j < s.size(); ++j) c[j] = s[j].value();
      carried.push_back(c);
    }
  }
  return text;
}

// The options a checkpoint must agree on to be resumed exactly (everything but --steps and the
// output and checkpoint options), as (name, value).
std::vector<std::pair<std::string, std::string>> resumable_options(const TrainOptions& o,
                                                                   int ranks) {
  return {{"task", o.task},
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

// Keeps the lines of a CSV log up to `step` (a resumed run rewrites what came after).
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

template <class Layer>
TrainResult run(const Task& task, const TrainOptions& o, Layer layer, Rng& rng, std::ostream& out,
                optim::Communicator& comm) {
  Model<Layer> model(task, o, std::move(layer), rng);
  auto params = model.parameters();
  auto opt = optim::make_optimizer<float>(o.optimizer, params, o.lr);
  const int ranks = comm.size();
  const bool root = comm.rank() == 0;
  if (o.accumulate < 1)
    throw UsageError(fmt::format("--accumulate must be at least 1, got {}", o.accumulate));
  if (!o.distributed && ranks > 1) throw UsageError("several ranks but no --distributed");
  if (o.checkpoint_every > 0 && o.checkpoint_dir.empty())
    throw UsageError("--checkpoint-every needs --checkpoint-dir");
  if (o.resume == "auto" && o.checkpoint_dir.empty())
    throw UsageError("--resume auto needs --checkpoint-dir");
  std::optional<optim::DataParallel<float>> dp;
  if (o.distributed) {
    dp.emplace(
        comm, params,
        optim::DataParallelOptions{.reduction = o.reduce == "ordered" ? optim::Reduction::ordered
                                                                      : optim::Reduction::average});
  }
  const auto config = resumable_options(o, ranks);
  if (dp) {
    std::string text;
    for (const auto& [k, v] : config) text += k + "=" + v + "\n";
    dp->broadcast_parameters(text);
  }
  // Micro-batches per optimizer step, over all ranks; each is `batch` rows of one global batch.
  const Index micro = o.accumulate;
  const Index global_rows = o.batch * micro * ranks;
  TrainResult result;
  result.parameters = layers::parameter_count(params);
  result.baseline = task.baseline(o.seq_len);
  const bool bar = o.progress == 1 || (o.progress == -1 && ::isatty(::fileno(stdout)) != 0);
  const long every = o.log_every > 0 ? o.log_every : std::max<long>(1, o.steps / 20);
  out << fmt::format(
      "training {} ({} layer{}{}, hidden {}) on '{}': {} parameters, {} steps, batch {}, {} lr "
      "{}\n",
      o.cell, o.layers, o.layers > 1 ? "s" : "", o.bidirectional ? ", bidirectional" : "", o.hidden,
      task.name(), result.parameters, o.steps, o.batch, o.optimizer, o.lr);
  if (global_rows != o.batch) {
    out << fmt::format("global batch {} = {} rank{} x {} micro-batch{} x {} rows{}\n", global_rows,
                       ranks, ranks > 1 ? "s" : "", micro, micro > 1 ? "es" : "", o.batch,
                       dp ? fmt::format(" ({} reduction)", o.reduce) : "");
  }
  double sum_loss = 0, sum_acc = 0, seconds_before = 0;
  long in_window = 0, start = 0;
  std::vector<double> recent;
  // Resuming: rank 0 finds and reads the checkpoint, every rank loads the same bytes.
  if (!o.resume.empty()) {
    std::vector<std::uint8_t> bytes;
    std::string chosen;
    if (root) {
      if (o.resume == "auto") {
        std::vector<std::string> rejected;
        auto found = optim::CheckpointDir(o.checkpoint_dir, o.keep).latest(&rejected);
        for (const std::string& r : rejected) out << "skipped a checkpoint: " << r << "\n";
        if (found) {
          chosen = found->path.string();
          bytes = std::move(found->bytes);
        } else {
          out << fmt::format("no checkpoint in '{}': starting at step 0\n", o.checkpoint_dir);
        }
      } else {
        chosen = o.resume;
        try {
          bytes = layers::read_file(chosen);
        } catch (const FileError&) {
          throw FileError(fmt::format("checkpoint: cannot open '{}'", chosen));
        }
      }
    }
    if (dp) bytes = optim::broadcast_bytes(comm, std::move(bytes));
    if (!bytes.empty()) {
      const auto st = optim::load_checkpoint<float>(bytes, chosen.empty() ? "checkpoint" : chosen,
                                                    params, *opt);
      std::string differ;
      for (const auto& [k, v] : config) {
        const auto it = st.info.find("option." + k);
        const std::string was = it == st.info.end() ? "(none)" : it->second;
        if (was != v)
          differ +=
              fmt::format("{}{} is '{}' there, '{}' here", differ.empty() ? "" : ", ", k, was, v);
      }
      if (!differ.empty())
        throw UsageError(
            fmt::format("cannot resume: the checkpoint was made with other options: {}", differ));
      start = st.step;
      optim::set_engine_state(rng, st.rng);
      const auto num = [&](const char* key) { return std::strtod(st.at(key).c_str(), nullptr); };
      sum_loss = num("sum_loss");
      sum_acc = num("sum_acc");
      in_window = std::atol(st.at("in_window").c_str());
      seconds_before = num("seconds");
      std::istringstream losses(st.at("recent_losses"));
      for (std::string v; losses >> v;) recent.push_back(std::strtod(v.c_str(), nullptr));
      out << fmt::format("resumed from {} at step {}\n",
                         chosen.empty() ? "rank 0's checkpoint" : chosen, start);
      if (start >= o.steps)
        out << fmt::format("the checkpoint is at step {}, --steps is {}: nothing to train\n", start,
                           o.steps);
    }
  }
  std::ofstream log;
  if (!o.log.empty() && root) {
    if (start > 0) truncate_log(o.log, start);
    log.open(o.log, start > 0 ? std::ios::app : std::ios::trunc);
    if (!log) throw FileError(fmt::format("cannot write the log file '{}'", o.log));
    if (start == 0) log << "step,loss,accuracy,seconds\n";
  }
  const optim::CheckpointDir checkpoints(o.checkpoint_dir, o.keep);
  Tape<float> tape;
  const auto t0 = Clock::now();
  const auto elapsed = [&] { return seconds_before + since(t0); };
  const bool checkpointed = o.checkpoints > 0 || o.memory_budget > 0;
  if (checkpointed && o.bidirectional) {
    throw UsageError(
        "--checkpoints and --memory-budget need a unidirectional model: a bidirectional layer's "
        "reverse direction needs the whole sequence of the layer below");
  }
  if (o.checkpoints > 0 && o.memory_budget > 0)
    throw UsageError("give --checkpoints or --memory-budget, not both");
  const layers::BackpropOptions<float> bptt{
      .checkpoints = o.checkpoints,
      .memory_budget_bytes = o.memory_budget,
      .schedule = o.schedule == "uniform"  ? layers::Schedule::uniform
                  : o.schedule == "online" ? layers::Schedule::online
                                           : layers::Schedule::revolve};
  Matrix<float> scores;
  std::vector<Matrix<float>> accumulated(params.size());
  StepWatchdog watchdog(o.step_timeout, comm);
  int perturb_rank = -1;
  long perturb_step = -1;
  if (const char* e = std::getenv("REWIND_TEST_PERTURB"))
    std::sscanf(e, "%d:%ld", &perturb_rank, &perturb_step);
  for (long step = start + 1; step <= o.steps; ++step) {
    watchdog.arm(step);
    const Batch global = task.sample(global_rows, o.seq_len, rng);
    double l = 0, acc = 0;
    for (Index m = 0; m < micro; ++m) {
      const Batch shard_b =
          global_rows == o.batch
              ? Batch{}
              : shard(global, global_rows, (comm.rank() * micro + m) * o.batch, o.batch);
      const Batch& b = global_rows == o.batch ? global : shard_b;
      tape.clear();
      if (checkpointed) {
        opt->zero_grad();
        const auto r = model.backprop(tape, b, o.batch, bptt, &scores);
        l += r.loss;
        if (step == start + 1 && m == 0) out << "checkpointing: " << r.report.summary() << "\n";
        if (task.has_accuracy())
          acc += accuracy(b, ConstMap<float>(scores.data(), scores.rows(), scores.cols()));
      } else {
        Var<float> logits;
        const Var<float> loss = model.loss(tape, b, o.batch, &logits);
        opt->zero_grad();
        tape.backward(loss);
        l += loss.item();
        if (task.has_accuracy()) acc += accuracy(b, logits.value());
      }
      // Each micro-batch's gradient is made from zero and added to the others in order, as
      // the ordered reduction adds the ranks' gradients: the two give the same bits. (With
      // both, each rank sums its own micro-batches first, so N ranks × K equal one process
      // with N·K micro-batches up to rounding, not bit for bit.)
      if (micro > 1) {
        for (std::size_t k = 0; k < params.size(); ++k) {
          if (m == 0) {
            accumulated[k] = params[k]->grad;
          } else {
            accumulated[k] += params[k]->grad;
          }
        }
      }
    }
    if (micro > 1) {
      for (std::size_t k = 0; k < params.size(); ++k) params[k]->grad.swap(accumulated[k]);
    }
    const auto count = static_cast<double>(micro * ranks);
    if (dp) {
      dp->reduce_gradients(count);
      l = dp->sum(l) / count;
      if (task.has_accuracy()) acc = dp->sum(acc) / count;
    } else if (micro > 1) {
      for (Parameter<float>* p : params) p->grad /= static_cast<float>(count);
      l /= count;
      acc /= count;
    }
    if (task.has_accuracy()) sum_acc += acc;
    if (o.clip > 0) optim::clip_grad_norm<float>(params, o.clip);
    opt->step();
    if (!std::isfinite(l))
      throw UsageError(fmt::format("training diverged: loss is {} at step {}", l, step));
    sum_loss += l;
    ++in_window;
    recent.push_back(l);
    if (recent.size() > 100) recent.erase(recent.begin());
    if (step % every == 0 || step == o.steps) {
      LogPoint p{step, sum_loss / static_cast<double>(in_window),
                 task.has_accuracy() ? sum_acc / static_cast<double>(in_window) : -1.0, elapsed()};
      result.curve.push_back(p);
      if (log)
        log << fmt::format("{},{:.6g},{},{:.3f}\n", p.step, p.loss,
                           p.accuracy >= 0 ? fmt::format("{:.4f}", p.accuracy) : "", p.seconds)
            << std::flush;
      const double rate = static_cast<double>(step - start) / (p.seconds - seconds_before);
      const std::string acc_text = p.accuracy >= 0 ? fmt::format("  acc {:.3f}", p.accuracy) : "";
      if (bar) {
        const int width = 30, filled = static_cast<int>(width * step / o.steps);
        out << fmt::format("\r[{}{}] {}/{}  loss {:.4f}{}  {:.1f} steps/s  ETA {}   ",
                           std::string(static_cast<std::size_t>(filled), '='),
                           std::string(static_cast<std::size_t>(width - filled), ' '), step,
                           o.steps, p.loss, acc_text, rate,
                           duration(static_cast<double>(o.steps - step) / rate))
            << std::flush;
      } else {
        out << fmt::format("step {}/{}  loss {:.4f}{}  {:.1f} steps/s  {:.1f}s\n", step, o.steps,
                           p.loss, acc_text, rate, p.seconds)
            << std::flush;
      }
      sum_loss = sum_acc = 0;
      in_window = 0;
    }
    // Fault injection for the tests of --check-replicas: REWIND_TEST_PERTURB=RANK:STEP nudges
    // one weight on that rank after that step, as a bad memory bit or a diverging rank would.
    if (dp && perturb_rank == comm.rank() && perturb_step == step) params[0]->value(0, 0) += 1e-3f;
    if (dp && o.check_replicas > 0 && step % o.check_replicas == 0) dp->check_replicas(step);
    if (o.checkpoint_every > 0 && step % o.checkpoint_every == 0 && root) {
      optim::TrainingState<float> st{.step = step, .rng = optim::engine_state(rng)};
      for (const auto& [k, v] : config) st.info["option." + k] = v;
      st.info["sum_loss"] = fmt::format("{}", sum_loss);
      st.info["sum_acc"] = fmt::format("{}", sum_acc);
      st.info["in_window"] = std::to_string(in_window);
      st.info["seconds"] = fmt::format("{}", elapsed());
      std::string losses;  // doubles, so as exact text rather than a float tensor
      for (double v : recent) losses += fmt::format("{}{}", losses.empty() ? "" : " ", v);
      st.info["recent_losses"] = losses;
      checkpoints.save<float>(params, *opt, st);
    }
  }
  watchdog.arm(0);
  if (bar) out << "\n";
  result.seconds = elapsed();
  result.final_loss = recent.empty() ? 0
                                     : std::accumulate(recent.begin(), recent.end(), 0.0) /
                                           static_cast<double>(recent.size());
  result.final_accuracy = result.curve.empty() ? -1 : result.curve.back().accuracy;
  out << fmt::format("done: {} steps in {:.1f}s ({:.1f} steps/s)\n", o.steps, result.seconds,
                     static_cast<double>(o.steps - start) / (result.seconds - seconds_before));
  if (dp && dp->buckets() > 0) {
    const double steps_run = static_cast<double>(std::max<long>(1, o.steps - start));
    const double reduce_ms = 1e3 * dp->reduce_seconds() / steps_run;
    const double step_ms = 1e3 * (result.seconds - seconds_before) / steps_run;
    out << fmt::format(
        "gradient reduction: {:.3f} ms of {:.3f} ms per step ({} bucket{}, {} ranks)\n", reduce_ms,
        step_ms, dp->buckets(), dp->buckets() > 1 ? "s" : "", ranks);
    // A ring all-reduce of S bytes over N machines sends 2(N−1)/N·S per machine in 2(N−1)
    // messages: t(N) ≈ 2(N−1)/N·S/β + 2(N−1)·α. Figures for 10 Gbit/s Ethernet (β = 1.25 GB/s,
    // α = 25 µs), against this run's compute time per step.
    const double bytes = static_cast<double>(result.parameters) * sizeof(float);
    const double compute_ms = std::max(step_ms - reduce_ms, 1e-9);
    std::string model;
    for (int n : {2, 4, 8, 16, 64}) {
      const double t = 1e3 * (2.0 * (n - 1) / n * bytes / 1.25e9 + 2.0 * (n - 1) * 25e-6);
      model += fmt::format("{}N={}: {:.2f} ms, efficiency {:.0f}%", model.empty() ? "" : "; ", n, t,
                           100 * compute_ms / (compute_ms + t));
    }
    out << fmt::format("cost model (ring all-reduce of {:.2f} MB, 10 Gbit/s, 25 us): {}\n",
                       bytes / 1e6, model);
  }
  out << fmt::format("final loss {:.5f} (mean of the last {} steps); without memory: {:.5f}\n",
                     result.final_loss, recent.size(), result.baseline);
  if (result.final_accuracy >= 0)
    out << fmt::format("accuracy {:.4f} (last interval)\n", result.final_accuracy);
  out << fmt::format("parameters {}\n", result.parameters);
  if (!o.save.empty() && root) {
    layers::save_parameters(o.save, params,
                            {{"task", o.task},
                             {"cell", o.cell},
                             {"hidden", std::to_string(o.hidden)},
                             {"layers", std::to_string(o.layers)},
                             {"bidirectional", o.bidirectional ? "1" : "0"}});
    out << "saved weights to " << o.save << "\n";
  }
  if (task.embeds() && o.sample > 0) {
    result.sample = sample_text(model, task, o.sample, rng);
    out << "sample:\n" << result.sample << "\n";
  }
  return result;
}

}  // namespace

// Calls f with the model the options describe.
template <class F>
auto with_model(const TrainOptions& o, F&& f) {
  if (o.hidden <= 0 || o.layers <= 0 || o.steps <= 0 || o.batch <= 0 || o.seq_len <= 0 ||
      o.embed <= 0) {
    throw UsageError("sizes and counts must be positive");
  }
  if (!(o.lr > 0)) throw UsageError(fmt::format("--lr must be positive, got {}", o.lr));
  const auto task = make_task(o.task, o.text);
  Rng rng(o.seed);
  const Index input = task->embeds() ? o.embed : task->input_size();
  if (!o.cell_file.empty()) {
    const auto program = layers::load_cell_file(o.cell_file);
    return layers::with_state_count(*program, [&](auto n) {
      using Cell = layers::FileCell<float, decltype(n)::value>;
      return f(*task,
               layers::Sequence<Cell>(
                   program->name, {o.layers, o.bidirectional, 0.0}, input,
                   [&](int, bool, Index in) { return Cell(program, in, o.hidden, rng); }),
               rng);
    });
  }
  if (o.cell == "lstm")
    return f(*task, layers::Lstm<float>({input, o.hidden, o.layers, o.bidirectional}, rng), rng);
  if (o.cell == "gru")
    return f(*task, layers::Gru<float>({input, o.hidden, o.layers, o.bidirectional}, rng), rng);
  if (o.cell == "rnn")
    return f(*task, layers::Rnn<float>({input, o.hidden, o.layers, o.bidirectional}, rng), rng);
  throw UsageError(fmt::format("unknown cell '{}' (expected rnn, lstm or gru)", o.cell));
}

std::string model_summary(const TrainOptions& o) {
  return with_model(o, [&](const Task& task, auto layer, Rng& rng) {
    Model<decltype(layer)> model(task, o, std::move(layer), rng);
    return model.summary(o).str();
  });
}

TrainResult train(const TrainOptions& o, std::ostream& out, optim::Communicator* comm) {
  optim::SingleProcess single;
  return with_model(o, [&](const Task& task, auto layer, Rng& rng) {
    return run(task, o, std::move(layer), rng, out, comm != nullptr ? *comm : single);
  });
}

}  // namespace rwd::cli
