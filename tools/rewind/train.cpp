#include "train.hpp"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <numeric>

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

template <class Layer>
TrainResult run(const Task& task, const TrainOptions& o, Layer layer, Rng& rng, std::ostream& out) {
  Model<Layer> model(task, o, std::move(layer), rng);
  auto params = model.parameters();
  auto opt = optim::make_optimizer<float>(o.optimizer, params, o.lr);
  TrainResult result;
  result.parameters = layers::parameter_count(params);
  result.baseline = task.baseline(o.seq_len);
  std::ofstream log;
  if (!o.log.empty()) {
    log.open(o.log);
    if (!log) throw FileError(fmt::format("cannot write the log file '{}'", o.log));
    log << "step,loss,accuracy,seconds\n";
  }
  const bool bar = o.progress == 1 || (o.progress == -1 && ::isatty(::fileno(stdout)) != 0);
  const long every = o.log_every > 0 ? o.log_every : std::max<long>(1, o.steps / 20);
  out << fmt::format(
      "training {} ({} layer{}{}, hidden {}) on '{}': {} parameters, {} steps, batch {}, {} lr "
      "{}\n",
      o.cell, o.layers, o.layers > 1 ? "s" : "", o.bidirectional ? ", bidirectional" : "", o.hidden,
      task.name(), result.parameters, o.steps, o.batch, o.optimizer, o.lr);
  Tape<float> tape;
  const auto t0 = Clock::now();
  double sum_loss = 0, sum_acc = 0;
  long in_window = 0;
  std::vector<double> recent;
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
  for (long step = 1; step <= o.steps; ++step) {
    tape.clear();
    const Batch b = task.sample(o.batch, o.seq_len, rng);
    double l = 0;
    if (checkpointed) {
      opt->zero_grad();
      const auto r = model.backprop(tape, b, o.batch, bptt, &scores);
      l = r.loss;
      if (step == 1) out << "checkpointing: " << r.report.summary() << "\n";
      if (task.has_accuracy())
        sum_acc += accuracy(b, ConstMap<float>(scores.data(), scores.rows(), scores.cols()));
    } else {
      Var<float> logits;
      const Var<float> loss = model.loss(tape, b, o.batch, &logits);
      opt->zero_grad();
      tape.backward(loss);
      l = loss.item();
      if (task.has_accuracy()) sum_acc += accuracy(b, logits.value());
    }
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
                 task.has_accuracy() ? sum_acc / static_cast<double>(in_window) : -1.0, since(t0)};
      result.curve.push_back(p);
      if (log)
        log << fmt::format("{},{:.6g},{},{:.3f}\n", p.step, p.loss,
                           p.accuracy >= 0 ? fmt::format("{:.4f}", p.accuracy) : "", p.seconds);
      const double rate = static_cast<double>(step) / p.seconds;
      const std::string acc = p.accuracy >= 0 ? fmt::format("  acc {:.3f}", p.accuracy) : "";
      if (bar) {
        const int width = 30, filled = static_cast<int>(width * step / o.steps);
        out << fmt::format("\r[{}{}] {}/{}  loss {:.4f}{}  {:.1f} steps/s  ETA {}   ",
                           std::string(static_cast<std::size_t>(filled), '='),
                           std::string(static_cast<std::size_t>(width - filled), ' '), step,
                           o.steps, p.loss, acc, rate,
                           duration(static_cast<double>(o.steps - step) / rate))
            << std::flush;
      } else {
        out << fmt::format("step {}/{}  loss {:.4f}{}  {:.1f} steps/s  {:.1f}s\n", step, o.steps,
                           p.loss, acc, rate, p.seconds)
            << std::flush;
      }
      sum_loss = sum_acc = 0;
      in_window = 0;
    }
  }
  if (bar) out << "\n";
  result.seconds = since(t0);
  result.final_loss =
      std::accumulate(recent.begin(), recent.end(), 0.0) / static_cast<double>(recent.size());
  result.final_accuracy = result.curve.empty() ? -1 : result.curve.back().accuracy;
  out << fmt::format("done: {} steps in {:.1f}s ({:.1f} steps/s)\n", o.steps, result.seconds,
                     static_cast<double>(o.steps) / result.seconds);
  out << fmt::format("final loss {:.5f} (mean of the last {} steps); without memory: {:.5f}\n",
                     result.final_loss, recent.size(), result.baseline);
  if (result.final_accuracy >= 0)
    out << fmt::format("accuracy {:.4f} (last interval)\n", result.final_accuracy);
  out << fmt::format("parameters {}\n", result.parameters);
  if (!o.save.empty()) {
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

TrainResult train(const TrainOptions& o, std::ostream& out) {
  return with_model(o, [&](const Task& task, auto layer, Rng& rng) {
    return run(task, o, std::move(layer), rng, out);
  });
}

}  // namespace rwd::cli
