// Per-op overhead of the tape: record and rewind a chain of cheap elementwise ops on a 1x8
// tensor, the `tiny-ops` workload of ../shared/peers/torch_rnn_bench.py (y = tanh(0.9·y + 0.1),
// 1000 times: 3000 ops, then backward). The reported time is per op, record + backward.
#include <benchmark/benchmark.h>

#include <rewind/rewind.hpp>

using namespace rwd;

template <class T>
static void BM_TinyOps(benchmark::State& state) {
  Tape<T> tape;
  const Matrix<T> x0 = Matrix<T>::Random(1, 8);
  for (auto _ : state) {
    tape.clear();
    Var<T> x = tape.input(x0);
    Var<T> y = x;
    for (int k = 0; k < 1000; ++k) y = tanh(y * T(0.9) + T(0.1));
    tape.backward(sum(y));
    benchmark::DoNotOptimize(x.grad().data());
  }
  state.counters["ns_per_op"] = benchmark::Counter(
      3000.0 * static_cast<double>(state.iterations()),
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_TinyOps<float>)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_TinyOps<double>)->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
