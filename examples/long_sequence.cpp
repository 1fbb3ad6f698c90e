// Backpropagation through a long sequence in bounded memory: checkpointed BPTT against plain.
//
// An LSTM reads T steps and is scored at the last one. Plain BPTT keeps all T steps on the tape;
// checkpointed BPTT (Sequence::backprop with {.checkpoints = k}) keeps k states and recomputes
// the rest with Griewank & Walther's revolve schedule. For each k the program prints the memory
// (stored states + the tape), the time relative to plain BPTT and revolve's advances, checks that
// every gradient is the same bits as plain BPTT's (it exits non-zero otherwise) and, with
// --svg FILE, plots memory and time against k.
//
//   long_sequence [--steps 300] [--hidden 16] [--batch 4] [--svg checkpointing.svg]
#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <rewind/rewind.hpp>

using namespace rwd;

int main(int argc, char** argv) {
  Index steps = 300, hidden = 16, batch = 4;
  std::string svg;
  for (int k = 1; k + 1 < argc; k += 2) {
    if (!std::strcmp(argv[k], "--steps")) steps = std::atol(argv[k + 1]);
    if (!std::strcmp(argv[k], "--hidden")) hidden = std::atol(argv[k + 1]);
    if (!std::strcmp(argv[k], "--batch")) batch = std::atol(argv[k + 1]);
    if (!std::strcmp(argv[k], "--svg")) svg = argv[k + 1];
  }
  layers::Rng rng(1);
  layers::Lstm<float> lstm({.input = 2, .hidden = hidden}, rng);
  layers::Linear<float> head({.in = hidden, .out = 1}, rng);
  const Matrix<float> data = Matrix<float>::Random(steps * batch, 2);
  const Matrix<float> target = Matrix<float>::Random(batch, 1);

  auto params = lstm.named_parameters();
  layers::append(params, head.named_parameters());
  // One training step's gradients: x_t from the data, the loss at the last step. A fresh tape
  // per configuration, so its storage is this configuration's high-water mark alone; the step
  // runs twice on it and the second run is timed, as in a training loop (the first pays the
  // page faults of the tape's whole arena, which would make plain BPTT look several times
  // slower than it is).
  const auto gradients = [&](const layers::BackpropOptions<float>& options,
                             layers::CheckpointReport* report) {
    Tape<float> tape;
    double ms = 0;
    for (int run = 0; run < 2; ++run) {
      for (Parameter<float>* p : params) p->zero_grad();
      tape.clear();
      const auto t0 = std::chrono::steady_clock::now();
      const auto r = lstm.backprop(
          tape, steps, batch,
          [&](Tape<float>& tp, Index t) { return tp.constant(data.middleRows(t * batch, batch)); },
          [&](Tape<float>& tp, Index t, const Var<float>& y) {
            return t + 1 == steps ? mse(head(tp, y), tp.constant(target)) : Var<float>();
          },
          {}, options);
      ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      *report = r.report;
    }
    std::vector<Matrix<float>> g;
    for (Parameter<float>* p : params) g.push_back(p->grad);
    return std::pair(g, ms);
  };

  layers::CheckpointReport plain_report;
  const auto [plain, plain_ms] = gradients({}, &plain_report);
  const double plain_mb = static_cast<double>(plain_report.peak_tape_bytes) / (1 << 20);
  std::cout << fmt::format("plain BPTT over {} steps: {:.1f} ms, tape {:.2f} MiB\n", steps,
                           plain_ms, plain_mb);
  std::cout << fmt::format("{:>11} {:>10} {:>11} {:>9} {:>14} {:>10}\n", "checkpoints",
                           "memory MiB", "vs plain", "time", "evaluations/T", "advances");
  PlotSeries memory{"memory / plain BPTT's"}, time{"time / plain BPTT's"};
  bool exact = true;
  for (const int k : {static_cast<int>(steps), 1000, 300, 100, 30, 10, 5, 3}) {
    if (k > steps) continue;
    layers::CheckpointReport report;
    const auto [g, ms] = gradients({.checkpoints = k}, &report);
    for (std::size_t i = 0; i < g.size(); ++i)
      exact = exact && (g[i].array() == plain[i].array()).all();
    const double mb = static_cast<double>(report.memory_bytes()) / (1 << 20);
    std::cout << fmt::format("{:>11} {:>10.2f} {:>10.1f}% {:>8.2f}x {:>14.2f} {:>10}\n", k, mb,
                             100 * mb / plain_mb, ms / plain_ms, report.overhead(),
                             report.advances);
    memory.x.push_back(k);
    memory.y.push_back(mb / plain_mb);
    time.x.push_back(k);
    time.y.push_back(ms / plain_ms);
  }
  std::cout << (exact ? "every gradient equals plain BPTT's, bit for bit\n"
                      : "MISMATCH: a checkpointed gradient differs from plain BPTT's\n");
  if (!svg.empty()) {
    std::reverse(memory.x.begin(), memory.x.end());
    std::reverse(memory.y.begin(), memory.y.end());
    std::reverse(time.x.begin(), time.x.end());
    std::reverse(time.y.begin(), time.y.end());
    std::ofstream(svg) << line_plot_svg(
        fmt::format("Checkpointed BPTT, LSTM {} units, batch {}, {} steps", hidden, batch, steps),
        "checkpoints k (log scale)", "relative to plain BPTT (log scale)", {memory, time}, true,
        true);
  }
  return exact ? 0 : 1;
}
