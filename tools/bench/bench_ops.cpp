// Benchmarks of the tape (Google Benchmark):
//  - per-op overhead: record and rewind a chain of cheap elementwise ops on a 1x8 tensor, the
//    `tiny-ops` workload of ../shared/peers/torch_rnn_bench.py (y = tanh(0.9·y + 0.1), 1000
//    times: 3000 ops, then backward), reported per op;
//  - a training step of the shared `train-lstm-128` workload (input 64, hidden 128, batch 32,
//    50 steps, linear head to 64 classes, cross-entropy on every step, SGD), float;
//  - both again with anomaly mode on, to measure its cost;
//  - the variants' primitives (sin, cos, maximum, minimum, the column broadcasts and the
//    per-example products) on 1x1 tensors: a chain of 1000 of one op with a constant second
//    operand, then backward, reported per op (the variants issue's 60 ns budget).
#include <benchmark/benchmark.h>

#include <rewind/rewind.hpp>

using namespace rwd;

template <class T>
static void BM_TinyOps(benchmark::State& state) {
  Tape<T> tape;
  tape.set_anomaly_mode(state.range(0) != 0);
  const Matrix<T> x0 = Matrix<T>::Random(1, 8);
  for (auto _ : state) {
    tape.clear();
    Var<T> x = tape.input(x0);
    Var<T> y = x;
    for (int k = 0; k < 1000; ++k) y = tanh(y * T(0.9) + T(0.1));
    tape.backward(sum(y));
    benchmark::DoNotOptimize(x.grad().data());
  }
  state.counters["ns_per_op"] =
      benchmark::Counter(3000.0 * static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_TinyOps<float>)->Arg(0)->ArgName("anomaly")->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_TinyOps<double>)->Arg(0)->ArgName("anomaly")->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_TinyOps<float>)->Arg(1)->ArgName("anomaly")->Unit(benchmark::kMicrosecond);

// One of the variants' primitives, applied 1000 times to a 1x1 value (its other operand a 1x1
// constant: 1 keeps the products and broadcasts from under- or overflowing), then backward.
static void BM_VariantOp(benchmark::State& state) {
  using F = Var<float> (*)(const Var<float>&, const Var<float>&);
  static const std::pair<const char*, F> ops[] = {
      {"sin", [](const Var<float>& y, const Var<float>&) { return rwd::sin(y); }},
      {"cos", [](const Var<float>& y, const Var<float>&) { return rwd::cos(y); }},
      {"maximum", [](const Var<float>& y, const Var<float>& c) { return rwd::maximum(y, c); }},
      {"minimum", [](const Var<float>& y, const Var<float>& c) { return rwd::minimum(y, c); }},
      {"add_col_vector",
       [](const Var<float>& y, const Var<float>& c) { return rwd::add_col_vector(y, c); }},
      {"mul_col_vector",
       [](const Var<float>& y, const Var<float>& c) { return rwd::mul_col_vector(y, c); }},
      {"row_outer", [](const Var<float>& y, const Var<float>& c) { return rwd::row_outer(y, c); }},
      {"row_vecmat",
       [](const Var<float>& y, const Var<float>& c) { return rwd::row_vecmat(y, c); }},
      {"row_matvec",
       [](const Var<float>& y, const Var<float>& c) { return rwd::row_matvec(y, c); }},
  };
  const auto& [name, op] = ops[state.range(0)];
  state.SetLabel(name);
  Tape<float> tape;
  const Matrix<float> x0 = Matrix<float>::Constant(1, 1, 0.5f);
  const bool adds = std::string_view(name) == "add_col_vector";
  const Matrix<float> c0 = Matrix<float>::Constant(1, 1, adds ? 0.0f : 1.0f);
  for (auto _ : state) {
    tape.clear();
    Var<float> x = tape.input(x0);
    const Var<float> c = tape.constant(c0);
    Var<float> y = x;
    for (int k = 0; k < 1000; ++k) y = op(y, c);
    tape.backward(sum(y));
    benchmark::DoNotOptimize(x.grad().data());
  }
  state.counters["ns_per_op"] =
      benchmark::Counter(1000.0 * static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_VariantOp)->DenseRange(0, 8)->Unit(benchmark::kMicrosecond);

static void BM_TrainLstm128(benchmark::State& state) {
  constexpr Index T = 50, B = 32, I = 64, H = 128, C = 64;
  layers::Rng rng(0);
  layers::Lstm<float> lstm({.input = I, .hidden = H}, rng);
  layers::Linear<float> head({.in = H, .out = C}, rng);
  auto params = lstm.named_parameters();
  layers::append(params, head.named_parameters());
  optim::Sgd<float> sgd(params, {.lr = 0.01});
  std::vector<Matrix<float>> xs;
  for (Index t = 0; t < T; ++t) xs.push_back(Matrix<float>::Random(B, I));
  std::vector<std::int32_t> ys(static_cast<std::size_t>(T * B));
  for (std::size_t k = 0; k < ys.size(); ++k) ys[k] = static_cast<std::int32_t>(k % C);
  Tape<float> tape;
  tape.set_anomaly_mode(state.range(0) != 0);
  for (auto _ : state) {
    tape.clear();
    std::vector<Var<float>> in;
    for (const auto& x : xs) in.push_back(tape.constant(x));
    const auto out = lstm(tape, in);
    sgd.zero_grad();
    tape.backward(cross_entropy(head(tape, concat_rows(out.outputs)), ys));
    sgd.step();
  }
}
BENCHMARK(BM_TrainLstm128)->Arg(0)->ArgName("anomaly")->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(BM_TrainLstm128)->Arg(1)->ArgName("anomaly")->Unit(benchmark::kMillisecond)->MinTime(2.0);

BENCHMARK_MAIN();
