// The shared training workloads of ../shared/peers/torch_rnn_bench.py, in rewind, float:
//   train-<cell>-<H>: 1 layer, input 64, hidden H, batch 32, sequence 50 (or --seq-len), a linear
//   head to 64 classes, softmax cross-entropy on every step, backward, one SGD step.
// Prints the peer's line format, `name variant ms_per_step tokens_per_s`, then the process's
// peak RSS so far, the threads Eigen's products use (1 unless built with REWIND_OPENMP, then
// OMP_NUM_THREADS), and the rate of the step's matrix products (GFLOP/s, from their FLOP count)
// to compare with the `sgemm-1024` line: Eigen's 1024³ float product in the same run, and the
// `fma-peak` line: independent vector FMAs in registers, the machine's float ceiling on one core.
// --memory N runs N training steps of each selected workload and prints the resident set and
// the tape's storage after steps 10, 100 and N: flat means nothing grows per step.
//
// grad-<cell>-<H>: the train workload's loss, forward + backward, no optimizer step.
// hvp-<cell>-<H>: a Hessian-vector product of that loss with respect to every parameter along a
//   fixed random direction (Tape::hvp), with its ratio to grad-, the same on an existing
//   recording (the loop of a power iteration), and the tape's storage against grad-'s.
//
// train-file-<H> (with --cell-file F.cell): the train workload with a cell from a file.
// train-<variant>-<H> (mingru minlstm lru slstm s6 gla deltanet mlstm gated_deltanet; H = 128,
//   512; `variants-all` for all 18): the train workload with examples/cells/<variant>.cell (or
//   --cells DIR), the variant workloads of ../shared/peers/torch_variants_bench.py (their
//   gflops= counts the head's products only: each cell's own are not counted).
// bptt-<cell>-128: checkpointed BPTT against plain BPTT on the adding task (--seq-len,
//   --checkpoints K or --memory-budget MiB, --schedule, --no-plain; see bptt_workload).
// block-<cell>-128: k tangent directions in one block sweep against k single sweeps (k = 16,
//   32, 64). jtt-lstm-128: exact Jacobians through time against one gradient.
// --checksum: instead of timing, a hash of the bits of every parameter's value and gradient
// after three training steps (grad-: one gradient; hvp-: one HVP), for A/B checks that a change
// leaves every bit alone (one and two threads).
// Usage: bench_train [--workload train-lstm-128|grad-lstm-128|hvp-lstm-128|hvp-all|tiny-ops|
//        block-lstm-128|block-all|jtt-lstm-128|bptt-lstm-128|bptt-gru-128|bptt-rnn-128|
//        train-mlstm-128|variants-all|sgemm-1024|fma-peak] [--seq-len 50] [--reps 15]
//                    [--memory N] [--cells DIR]
//        (default: the lstm, gru and rnn train workloads, then tiny-ops, sgemm-1024, fma-peak)
#include <immintrin.h>
#include <sys/resource.h>
#include <unistd.h>

#include <Eigen/SVD>
#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <rewind/rewind.hpp>

using namespace rwd;

namespace {

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // kilobytes on Linux
}

/// The resident set now (not the peak), from /proc/self/statm.
double rss_mb() {
  std::ifstream statm("/proc/self/statm");
  double pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

/// FLOPs of a training step's matrix products: per time step the input and recurrent products
/// (forward), their weight gradients and the hidden state's gradient (backward; the inputs are
/// data and get none), and the head's three products.
double step_flops(Index gates, Index hidden, Index steps) {
  constexpr double B = 32, I = 64, C = 64;
  const double gh = static_cast<double>(gates * hidden), h = static_cast<double>(hidden);
  const double per_t = 2 * B * I * gh * 2 + 2 * B * h * gh * 3 + 2 * B * h * C * 3;
  return per_t * static_cast<double>(steps);
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

struct Run {
  Index steps = 50;  ///< sequence length
  int reps = 0;
  int memory_steps = 0;                 ///< > 0: the flat-memory check instead of timing
  layers::BackpropOptions<float> bptt;  ///< bptt- workloads: --checkpoints, --memory-budget
  bool plain = true;                    ///< bptt- workloads: also time plain BPTT
  bool checksum = false;                ///< print the gradients' bits' hash instead of times
};

/// FNV-1a over the bits of every parameter's value, gradient and gradient tangent: two builds
/// (or thread counts) that print the same hash computed the same bits.
std::uint64_t bits_hash(const std::vector<Parameter<float>*>& params) {
  std::uint64_t h = 1469598103934665603ull;
  const auto add = [&](const Matrix<float>& m) {
    const auto* bytes = reinterpret_cast<const unsigned char*>(m.data());
    for (std::size_t k = 0; k < static_cast<std::size_t>(m.size()) * sizeof(float); ++k) {
      h = (h ^ bytes[k]) * 1099511628211ull;
    }
  };
  for (const Parameter<float>* p : params) {
    add(p->value);
    add(p->grad);
    add(p->grad_tangent);
  }
  return h;
}

/// What a workload runs: a training step (forward, backward, SGD), the gradient alone, or a
/// Hessian-vector product with respect to every parameter.
enum class Kind { train, grad, hvp };

template <class Layer>
void train_workload(const std::string& name, Layer layer, Index gates, Index hidden, const Run& run,
                    layers::Rng& rng, Kind kind = Kind::train) {
  constexpr Index B = 32, I = 64, C = 64;
  const Index steps = run.steps;
  layers::Linear<float> head({.in = hidden, .out = C}, rng);
  auto params = layer.named_parameters();
  layers::append(params, head.named_parameters());
  optim::Sgd<float> sgd(params, {.lr = 0.01});
  std::vector<Matrix<float>> xs;
  for (Index t = 0; t < steps; ++t) xs.push_back(Matrix<float>::Random(B, I));
  std::vector<std::int32_t> ys(static_cast<std::size_t>(steps * B));
  for (std::size_t k = 0; k < ys.size(); ++k) ys[k] = static_cast<std::int32_t>((k * 7) % C);
  Tape<float> tape;
  const auto record = [&] {
    tape.clear();
    std::vector<Var<float>> in;
    for (const auto& x : xs) in.push_back(tape.constant(x));
    const auto out = layer(tape, in);
    sgd.zero_grad();
    return cross_entropy(head(tape, concat_rows(out.outputs)), ys);
  };
  const auto train_step = [&] {
    tape.backward(record());
    sgd.step();
  };
  if (run.memory_steps > 0) {
    std::string line = fmt::format("memory {}", name);
    for (int k = 1; k <= run.memory_steps; ++k) {
      train_step();
      if (k == 10 || k == 100 || k == run.memory_steps) {
        line += fmt::format(" step{}: rss_mb={:.1f} tape_mb={:.2f}", k, rss_mb(),
                            static_cast<double>(tape.capacity_bytes()) / (1024.0 * 1024.0));
      }
    }
    std::cout << line << std::endl;
    return;
  }
  if (run.checksum) {
    // Three training steps (each gradient feeds the next step's weights), one gradient, or one
    // HVP along a fixed direction: the hash covers every bit they produced.
    if (kind == Kind::hvp) {
      for (Parameter<float>* p : params)
        p->tangent = Matrix<float>::Random(p->value.rows(), p->value.cols());
      tape.hvp(record());
    } else {
      for (int k = 0; k < (kind == Kind::train ? 3 : 1); ++k) {
        tape.backward(record());
        if (kind == Kind::train) sgd.step();
      }
    }
    std::cout << fmt::format("checksum {} {:016x} threads={}", name, bits_hash(params),
                             Eigen::nbThreads())
              << std::endl;
    return;
  }
  const double tokens = static_cast<double>(steps * B);
  if (kind == Kind::train) {
    const double ms = median_ms(train_step, run.reps);
    std::cout << fmt::format(
                     "{} composed {:.3f} {:.0f} peak_rss_mb={:.0f} threads={} gflops={:.1f}", name,
                     ms, tokens / ms * 1e3, peak_rss_mb(), Eigen::nbThreads(),
                     step_flops(gates, hidden, steps) / ms * 1e-6)
              << std::endl;
    return;
  }
  // grad-: the train workload's loss, forward and backward, no optimizer step.
  const auto tape_mb = [&] { return static_cast<double>(tape.capacity_bytes()) / (1 << 20); };
  const double grad_ms = median_ms([&] { tape.backward(record()); }, run.reps);
  const double grad_mb = tape_mb();
  if (kind == Kind::grad) {
    std::cout << fmt::format(
                     "{} composed {:.3f} {:.0f} peak_rss_mb={:.0f} tape_mb={:.1f} threads={}", name,
                     grad_ms, tokens / grad_ms * 1e3, peak_rss_mb(), grad_mb, Eigen::nbThreads())
              << std::endl;
    return;
  }
  // hvp-: H·v with respect to every parameter along a fixed random direction, recording
  // included; and on an existing recording (a power iteration's loop: jvp + second-order sweep).
  for (Parameter<float>* p : params)
    p->tangent = Matrix<float>::Random(p->value.rows(), p->value.cols());
  const double hvp_ms = median_ms([&] { tape.hvp(record()); }, run.reps);
  const double hvp_mb = tape_mb();
  const Var<float> loss = record();
  const double again_ms = median_ms([&] { tape.hvp(loss); }, run.reps);
  std::cout << fmt::format(
                   "{} composed {:.3f} {:.0f} ratio={:.2f} on_recording_ms={:.3f} "
                   "on_recording_ratio={:.2f} grad_ms={:.3f} tape_mb={:.1f} grad_tape_mb={:.1f} "
                   "memory_ratio={:.2f} peak_rss_mb={:.0f} threads={}",
                   name, hvp_ms, tokens / hvp_ms * 1e3, hvp_ms / grad_ms, again_ms,
                   again_ms / grad_ms, grad_ms, hvp_mb, grad_mb, hvp_mb / grad_mb, peak_rss_mb(),
                   Eigen::nbThreads())
            << std::endl;
}

/// The train workload with a cell from a file: train-file-<H> (--cell-file, FLOPs counted as
/// for 4 gates, to compare with the LSTM it mirrors) and train-<variant>-<H> (gates 0: the
/// head's products only).
void file_cell_workload(const std::string& name,
                        const std::shared_ptr<const layers::CellProgram>& program, Index hidden,
                        Index gates, const Run& run, layers::Rng& rng) {
  layers::with_state_count(*program, [&](auto n) {
    using Cell = layers::FileCell<float, decltype(n)::value>;
    train_workload(
        name,
        layers::Sequence<Cell>(program->name, {}, 64,
                               [&](int, bool, Index in) { return Cell(program, in, hidden, rng); }),
        gates, hidden, run, rng, Kind::train);
  });
}

/// The variant cells of ../shared/peers/torch_variants_bench.py, shipped as examples/cells files.
constexpr std::array<const char*, 9> kVariants{"mingru", "minlstm",  "lru",   "slstm",         "s6",
                                               "gla",    "deltanet", "mlstm", "gated_deltanet"};

/// train-file-<H> (with --cell-file F.cell): the train workload with a cell from a file.
// train-<variant>-<H> (mingru minlstm lru slstm s6 gla deltanet mlstm gated_deltanet; H = 128,
//   512; `variants-all` for all 18): the train workload with examples/cells/<variant>.cell (or
//   --cells DIR), the variant workloads of ../shared/peers/torch_variants_bench.py (their
//   gflops= counts the head's products only: each cell's own are not counted).
// bptt-<cell>-128: checkpointed BPTT against plain BPTT on the adding task (--seq-len,
//   --checkpoints K or --memory-budget MiB, --schedule, --no-plain; see bptt_workload).
// block-<cell>-128: k tangent directions at once (Tape::jvp_block) against k single-direction
/// sweeps (Tape::jvp), on one recording of the train workload's forward with its inputs as the
/// seeded leaves; ratio = block / (k · single).
template <class Layer>
void block_workload_at(const std::string& name, Layer& layer, const Run& run, Index B) {
  constexpr Index I = 64;
  Tape<float> tape;
  std::vector<Var<float>> in;
  for (Index t = 0; t < run.steps; ++t) in.push_back(tape.input(Matrix<float>::Random(B, I)));
  (void)layer(tape, in);
  for (const Var<float>& x : in) tape.set_tangent(x, Matrix<float>::Random(B, I));
  const double single_ms = median_ms([&] { tape.jvp(); }, run.reps);
  for (Index k : {16, 32, 64}) {
    for (const Var<float>& x : in) tape.set_block_tangent(x, Matrix<float>::Random(k * B, I));
    const double block_ms = median_ms([&] { tape.jvp_block(k); }, std::max(3, run.reps / 3));
    std::cout << fmt::format(
                     "{} batch={} k={} block_ms={:.3f} single_ms={:.3f} ratio={:.3f} threads={}",
                     name, B, k, block_ms, single_ms,
                     block_ms / (static_cast<double>(k) * single_ms), Eigen::nbThreads())
              << std::endl;
  }
}

template <class Layer>
void block_workload(const std::string& name, Layer layer, const Run& run) {
  for (Index batch : {1, 32}) block_workload_at(name, layer, run, batch);
}

/// jtt-lstm-128: every singular value of ∂h_T/∂h_t for every t (jacobians_through_time, with
/// its 8 Hutchinson probes) for one sequence of 50 steps of a 128-unit LSTM in double, recording
/// included, against one gradient of the same recording (record + backward of mean h_T²).
void jtt_workload(const Run& run, layers::Rng& rng) {
  constexpr Index I = 64, H = 128;
  layers::Lstm<double> lstm({.input = I, .hidden = H}, rng);
  std::vector<Matrix<double>> xs;
  for (Index t = 0; t < run.steps; ++t) xs.push_back(Matrix<double>::Random(1, I));
  Tape<double> tape;
  const auto record = [&] {
    tape.clear();
    std::vector<Var<double>> in;
    for (const auto& x : xs) in.push_back(tape.constant(x));
    return lstm(tape, in);
  };
  const double grad_ms = median_ms(
      [&] {
        const auto run_ = record();
        tape.backward(mean(square(run_.outputs.back())), {.accumulate_parameters = false});
      },
      run.reps);
  JacobianReport report;
  const double jtt_ms =
      median_ms([&] { report = jacobians_through_time(tape, record().hidden); }, run.reps);
  // Where the time goes: the block reverse sweep alone (128 cotangents) and the SVDs.
  const auto once = record();
  const Var<double> last = once.hidden[0].states.back();
  const Matrix<double> seeds = Matrix<double>::Identity(H, H);
  const double sweep_ms = median_ms([&] { tape.vjp_block(last, seeds); }, run.reps);
  Eigen::MatrixXd j = Eigen::MatrixXd::Random(H, H);
  const double svd_ms = median_ms([&] { j(0, 0) += singular_values(j)[0] * 1e-300; }, run.reps);
  std::cout << fmt::format(
                   "jtt-lstm-{} steps={} jtt_ms={:.3f} grad_ms={:.3f} ratio={:.1f} "
                   "vjp_block_ms={:.3f} svd_ms_each={:.3f} threads={}",
                   H, run.steps, jtt_ms, grad_ms, jtt_ms / grad_ms, sweep_ms, svd_ms,
                   Eigen::nbThreads())
            << std::endl;
}

/// Eigen's float product of two 1024×1024 matrices: the machine's GEMM rate in this run.
void sgemm() {
  constexpr Index n = 1024;
  const Matrix<float> a = Matrix<float>::Random(n, n), b = Matrix<float>::Random(n, n);
  Matrix<float> c(n, n);
  const double ms = median_ms([&] { c.noalias() = a * b; }, 15);
  std::cout << fmt::format("sgemm-1024 eigen {:.3f} gflops={:.1f} threads={}", ms,
                           2.0 * n * n * n / ms * 1e-6, Eigen::nbThreads())
            << std::endl;
}

/// The float FMA rate of one core: 12 independent accumulators (more than latency × FMA units on
/// any current x86 core) in the widest vector registers this build targets. Every product kernel
/// is bounded by it.
void fma_peak() {
#if defined(__AVX512F__)
  using V = __m512;
  constexpr int kLanes = 16;
  const auto fma = [](V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); };
  const auto set = [](float v) { return _mm512_set1_ps(v); };
  const auto hsum = [](V v) { return _mm512_reduce_add_ps(v); };
#elif defined(__AVX2__) && defined(__FMA__)
  using V = __m256;
  constexpr int kLanes = 8;
  const auto fma = [](V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); };
  const auto set = [](float v) { return _mm256_set1_ps(v); };
  const auto hsum = [](V v) {
    alignas(32) float f[8];
    _mm256_store_ps(f, v);
    return f[0] + f[1] + f[2] + f[3] + f[4] + f[5] + f[6] + f[7];
  };
#else
  std::cout << "fma-peak none 0 gflops=0 (built without AVX2+FMA: use the native build)\n";
  return;
#endif
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
  constexpr int kAcc = 12;
  constexpr long kIters = 20'000'000;
  float sink = 0;
  const double ms = median_ms(
      [&] {
        V acc[kAcc];
        for (int i = 0; i < kAcc; ++i) acc[i] = set(1.0f + 0.01f * static_cast<float>(i));
        const V a = set(0.999999f), b = set(1e-7f);
        for (long n = 0; n < kIters; ++n) {
          for (int i = 0; i < kAcc; ++i) acc[i] = fma(acc[i], a, b);
        }
        for (int i = 0; i < kAcc; ++i) sink += hsum(acc[i]);
      },
      5);
  std::cout << fmt::format("fma-peak {}x{} {:.3f} gflops={:.1f} (checksum {:.3g})", kAcc, kLanes,
                           ms, 2.0 * kAcc * kLanes * static_cast<double>(kIters) / ms * 1e-6, sink)
            << std::endl;
#endif
}

/// tiny-ops: 1 000 layers of tanh(0.9·y + 0.1) on 1x8, recorded and swept back (3 000 ops). Also
/// the recording alone, and the whole with flush-to-zero and denormals-are-zero set for this
/// workload only: the gradient shrinks by at least 0.9 a layer and is denormal (below 1.2e-38)
/// in the last two hundred or so, where the processor computes with microcode assists. rewind
/// itself never changes the floating-point mode.
void tiny_ops() {
  Tape<float> tape;
  const Matrix<float> x0 = Matrix<float>::Random(1, 8);
  const auto run = [&](bool sweep) {
    return median_ms(
        [&] {
          tape.clear();
          Var<float> x = tape.input(x0);
          Var<float> y = x;
          for (int k = 0; k < 1000; ++k) y = tanh(y * 0.9f + 0.1f);
          if (sweep) tape.backward(sum(y));
        },
        51);
  };
  const double ms = run(true);
  const double record_ms = run(false);
  const unsigned mode = _mm_getcsr();
  _mm_setcsr(mode | 0x8040);  // FTZ (bit 15) and DAZ (bit 6)
  const double ftz_ms = run(true);
  _mm_setcsr(mode);
  std::cout << fmt::format(
                   "tiny-ops eager {:.3f} ns_per_op={:.0f} record_ns_per_op={:.0f} "
                   "ftz_ns_per_op={:.0f}",
                   ms, ms * 1e6 / 3000, record_ms * 1e6 / 3000, ftz_ms * 1e6 / 3000)
            << std::endl;
}

/// bptt-<cell>-128: one training step's forward and backward on the adding task (input 2:
/// value and marker, hidden 128, batch 32, the loss at the last step), T = --seq-len steps,
/// checkpointed (--checkpoints k or --memory-budget BYTES, --schedule revolve|uniform) and then
/// plain BPTT unless --no-plain. Prints both medians, their ratio, the advances against revolve's
/// prediction, the peak RSS after the checkpointed steps (before plain BPTT runs) and the
/// checkpointing report.
template <class Layer>
void bptt_workload(const std::string& name, Layer layer, const Run& run, layers::Rng& rng) {
  constexpr Index B = 32, H = 128;
  const Index steps = run.steps;
  layers::Linear<float> head({.in = H, .out = 1}, rng);
  // The adding task's data, held as one (T·B)×2 matrix as a data loader would hold it.
  Matrix<float> data(steps * B, 2);
  std::uniform_real_distribution<float> u(0, 1);
  data.col(0) = Matrix<float>::NullaryExpr(steps * B, 1, [&] { return u(rng); });
  data.col(1).setZero();
  Matrix<float> target(B, 1);
  for (Index b = 0; b < B; ++b) {
    const Index i = b % steps, j = (b * 7 + 1) % steps;
    data(i * B + b, 1) = data(j * B + b, 1) = 1;
    target(b, 0) = data(i * B + b, 0) + (i == j ? 0.0f : data(j * B + b, 0));
  }
  const auto input = [&](Tape<float>& tape, Index t) {
    return tape.constant(data.middleRows(t * B, B));
  };
  const auto loss = [&](Tape<float>& tape, Index t, const Var<float>& y) {
    return t + 1 == steps ? mse(head(tape, y), tape.constant(target)) : Var<float>();
  };
  Tape<float> tape;
  layers::BpttResult<float> result;
  const auto sweep = [&](const layers::BackpropOptions<float>& o) {
    tape.clear();
    result = layer.backprop(tape, steps, B, input, loss, {}, o);
  };
  const int reps = std::max(1, run.reps);
  const double ms = median_ms([&] { sweep(run.bptt); }, reps);
  const layers::CheckpointReport report = result.report;
  const double rss = peak_rss_mb();
  std::string line = fmt::format(
      "{} T={} schedule={} checkpoints={} ms_per_step={:.1f} advances={} predicted={} "
      "evaluations_per_step={:.3f} peak_rss_mb={:.0f} tape_mb={:.2f} checkpoint_mb={:.2f} "
      "data_mb={:.1f}",
      name, steps, report.schedule, report.checkpoints, ms, report.advances,
      report.predicted_advances, report.overhead(), rss,
      static_cast<double>(report.peak_tape_bytes) / (1 << 20),
      static_cast<double>(report.slots_used * report.checkpoint_bytes) / (1 << 20),
      static_cast<double>(data.size() * 4) / (1 << 20));
  if (run.plain) {
    const double plain_ms = median_ms([&] { sweep({}); }, reps);
    line += fmt::format(
        " plain_ms={:.1f} ratio={:.2f} plain_tape_mb={:.0f} plain_peak_rss_mb={:.0f}", plain_ms,
        ms / plain_ms, static_cast<double>(tape.capacity_bytes()) / (1 << 20), peak_rss_mb());
  }
  std::cout << line << std::endl;
}

}  // namespace

int main(int argc, char** argv) {
  std::string only;
  std::string cell_file;
  std::string cells_dir = REWIND_CELLS_DIR;
  Run run;
  for (int k = 1; k < argc; ++k) {
    if (!std::strcmp(argv[k], "--workload") && k + 1 < argc)
      only = argv[++k];
    else if (!std::strcmp(argv[k], "--seq-len") && k + 1 < argc)
      run.steps = std::atol(argv[++k]);
    else if (!std::strcmp(argv[k], "--reps") && k + 1 < argc)
      run.reps = std::atoi(argv[++k]);
    else if (!std::strcmp(argv[k], "--memory") && k + 1 < argc)
      run.memory_steps = std::atoi(argv[++k]);
    else if (!std::strcmp(argv[k], "--cell-file") && k + 1 < argc)
      cell_file = argv[++k];
    else if (!std::strcmp(argv[k], "--cells") && k + 1 < argc)
      cells_dir = argv[++k];
    else if (!std::strcmp(argv[k], "--checkpoints") && k + 1 < argc)
      run.bptt.checkpoints = std::atoi(argv[++k]);
    else if (!std::strcmp(argv[k], "--memory-budget") && k + 1 < argc)
      run.bptt.memory_budget_bytes = static_cast<std::size_t>(std::atof(argv[++k]) * (1 << 20));
    else if (!std::strcmp(argv[k], "--schedule") && k + 1 < argc) {
      const std::string name = argv[++k];
      run.bptt.schedule = name == "uniform"  ? layers::Schedule::uniform
                          : name == "online" ? layers::Schedule::online
                                             : layers::Schedule::revolve;
    } else if (!std::strcmp(argv[k], "--no-plain"))
      run.plain = false;
    else if (!std::strcmp(argv[k], "--checksum"))
      run.checksum = true;
    else {
      std::cerr << "usage: bench_train [--workload NAME] [--seq-len N] [--reps N] [--memory N] "
                   "[--cell-file F.cell] [--cells DIR] [--checkpoints K | --memory-budget MIB] "
                   "[--schedule revolve|uniform|online] [--no-plain] [--checksum]\n";
      return 2;
    }
  }
  if (run.steps < 1 || run.reps < 0 || run.memory_steps < 0) return 2;
  layers::Rng rng(0);
  for (Index h : {128, 512}) {
    Run r = run;
    if (r.reps == 0) r.reps = h == 128 ? 15 : 5;
    // train- workloads run by default; grad- and hvp- only when asked for (--workload).
    for (const auto& [prefix, kind] :
         {std::pair{"train", Kind::train}, std::pair{"grad", Kind::grad},
          std::pair{"hvp", Kind::hvp}}) {
      const auto want = [&](const char* cell) {
        const std::string w = fmt::format("{}-{}-{}", prefix, cell, h);
        return only == w || (only.empty() && kind == Kind::train) ||
               (only == fmt::format("{}-all", prefix));
      };
      if (want("lstm"))
        train_workload(fmt::format("{}-lstm-{}", prefix, h),
                       layers::Lstm<float>({.input = 64, .hidden = h}, rng), 4, h, r, rng, kind);
      if (want("gru"))
        train_workload(fmt::format("{}-gru-{}", prefix, h),
                       layers::Gru<float>({.input = 64, .hidden = h}, rng), 3, h, r, rng, kind);
      if (want("rnn"))
        train_workload(fmt::format("{}-rnn-{}", prefix, h),
                       layers::Rnn<float>({.input = 64, .hidden = h}, rng), 1, h, r, rng, kind);
    }
  }
  // train-file-<H>: the train workload with a cell from a .cell file (--cell-file), to compare
  // with the built-in cell it mirrors (FLOP count as for 4 gates).
  if (!cell_file.empty()) {
    const auto program = layers::load_cell_file(cell_file);
    for (Index h : {128, 512}) {
      if (only != fmt::format("train-file-{}", h)) continue;
      Run r = run;
      if (r.reps == 0) r.reps = h == 128 ? 15 : 5;
      file_cell_workload(fmt::format("train-file-{}", h), program, h, 4, r, rng);
    }
  }
  // train-<variant>-<H>: only when asked for (--workload, or variants-all).
  for (Index h : {128, 512}) {
    for (const char* variant : kVariants) {
      const std::string name = fmt::format("train-{}-{}", variant, h);
      if (only != name && only != "variants-all") continue;
      Run r = run;
      if (r.reps == 0) r.reps = h == 128 ? 15 : 5;
      file_cell_workload(name,
                         layers::load_cell_file(fmt::format("{}/{}.cell", cells_dir, variant)), h,
                         0, r, rng);
    }
  }
  if (only == "block-lstm-128" || only == "block-all") {
    Run r = run;
    if (r.reps == 0) r.reps = 9;
    block_workload("block-lstm-128", layers::Lstm<float>({.input = 64, .hidden = 128}, rng), r);
  }
  if (only == "block-gru-128" || only == "block-all") {
    Run r = run;
    if (r.reps == 0) r.reps = 9;
    block_workload("block-gru-128", layers::Gru<float>({.input = 64, .hidden = 128}, rng), r);
  }
  for (const char* cell : {"lstm", "gru", "rnn"}) {
    if (only != fmt::format("bptt-{}-128", cell)) continue;
    Run r = run;
    if (r.reps == 0) r.reps = 3;
    if (r.bptt.checkpoints == 0 && r.bptt.memory_budget_bytes == 0) r.bptt.checkpoints = 100;
    const std::string n = only;
    if (n == "bptt-lstm-128")
      bptt_workload(n, layers::Lstm<float>({.input = 2, .hidden = 128}, rng), r, rng);
    if (n == "bptt-gru-128")
      bptt_workload(n, layers::Gru<float>({.input = 2, .hidden = 128}, rng), r, rng);
    if (n == "bptt-rnn-128")
      bptt_workload(n, layers::Rnn<float>({.input = 2, .hidden = 128}, rng), r, rng);
  }
  if (only == "jtt-lstm-128") {
    Run r = run;
    if (r.reps == 0) r.reps = 9;
    jtt_workload(r, rng);
  }
  if (run.memory_steps > 0 || run.checksum) return 0;
  if (only.empty() || only == "tiny-ops") tiny_ops();
  if (only.empty() || only == "sgemm-1024") sgemm();
  if (only.empty() || only == "fma-peak") fma_peak();
}
