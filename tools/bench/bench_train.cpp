// The shared training workloads of ../shared/peers/torch_rnn_bench.py, in rewind, float:
//   train-<cell>-<H>: 1 layer, input 64, hidden H, batch 32, sequence 50 (or --seq-len), a linear
//   head to 64 classes, softmax cross-entropy on every step, backward, one SGD step.
// Prints the peer's line format, `name variant ms_per_step tokens_per_s`, plus the process's
// peak RSS so far, and the threads Eigen's products use (1 unless built with REWIND_OPENMP,
// then OMP_NUM_THREADS).
//
// Usage: bench_train [--workload train-lstm-128] [--seq-len 50] [--reps 15]
//        (default: every train workload, then tiny-ops)
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <iostream>
#include <rewind/rewind.hpp>

using namespace rwd;

namespace {

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // kilobytes on Linux
}

template <class F>
double median_ms(F&& f, int reps) {
  for (int k = 0; k < 3; ++k) f();
  std::vector<double> t;
  for (int k = 0; k < reps; ++k) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

template <class Layer>
void train_workload(const std::string& name, Layer layer, Index hidden, Index steps, int reps,
                    layers::Rng& rng) {
  constexpr Index B = 32, I = 64, C = 64;
  layers::Linear<float> head({.in = hidden, .out = C}, rng);
  auto params = layer.named_parameters();
  layers::append(params, head.named_parameters());
  optim::Sgd<float> sgd(params, {.lr = 0.01});
  std::vector<Matrix<float>> xs;
  for (Index t = 0; t < steps; ++t) xs.push_back(Matrix<float>::Random(B, I));
  std::vector<std::int32_t> ys(static_cast<std::size_t>(steps * B));
  for (std::size_t k = 0; k < ys.size(); ++k) ys[k] = static_cast<std::int32_t>((k * 7) % C);
  Tape<float> tape;
  const double ms = median_ms(
      [&] {
        tape.clear();
        std::vector<Var<float>> in;
        for (const auto& x : xs) in.push_back(tape.constant(x));
        const auto out = layer(tape, in);
        sgd.zero_grad();
        tape.backward(cross_entropy(head(tape, concat_rows(out.outputs)), ys));
        sgd.step();
      },
      reps);
  std::cout << fmt::format("{} composed {:.3f} {:.0f} peak_rss_mb={:.0f} threads={}", name, ms,
                           static_cast<double>(steps * B) / ms * 1e3, peak_rss_mb(),
                           Eigen::nbThreads())
            << std::endl;
}

void tiny_ops() {
  Tape<float> tape;
  const Matrix<float> x0 = Matrix<float>::Random(1, 8);
  const double ms = median_ms(
      [&] {
        tape.clear();
        Var<float> x = tape.input(x0);
        Var<float> y = x;
        for (int k = 0; k < 1000; ++k) y = tanh(y * 0.9f + 0.1f);
        tape.backward(sum(y));
      },
      51);
  std::cout << fmt::format("tiny-ops eager {:.3f} ns_per_op={:.0f}", ms, ms * 1e6 / 3000)
            << std::endl;
}

}  // namespace

int main(int argc, char** argv) {
  std::string only;
  Index steps = 50;
  int reps = 0;
  for (int k = 1; k < argc; ++k) {
    if (!std::strcmp(argv[k], "--workload") && k + 1 < argc)
      only = argv[++k];
    else if (!std::strcmp(argv[k], "--seq-len") && k + 1 < argc)
      steps = std::atol(argv[++k]);
    else if (!std::strcmp(argv[k], "--reps") && k + 1 < argc)
      reps = std::atoi(argv[++k]);
    else {
      std::cerr << "usage: bench_train [--workload NAME] [--seq-len N] [--reps N]\n";
      return 2;
    }
  }
  if (steps < 1) return 2;
  layers::Rng rng(0);
  for (Index h : {128, 512}) {
    const int r = reps > 0 ? reps : (h == 128 ? 15 : 5);
    const auto want = [&](const char* cell) {
      return only.empty() || only == fmt::format("train-{}-{}", cell, h);
    };
    if (want("lstm"))
      train_workload(fmt::format("train-lstm-{}", h),
                     layers::Lstm<float>({.input = 64, .hidden = h}, rng), h, steps, r, rng);
    if (want("gru"))
      train_workload(fmt::format("train-gru-{}", h),
                     layers::Gru<float>({.input = 64, .hidden = h}, rng), h, steps, r, rng);
    if (want("rnn"))
      train_workload(fmt::format("train-rnn-{}", h),
                     layers::Rnn<float>({.input = 64, .hidden = h}, rng), h, steps, r, rng);
  }
  if (only.empty() || only == "tiny-ops") tiny_ops();
}
