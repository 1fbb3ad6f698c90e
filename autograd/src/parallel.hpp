// Two threads, for the library's own sources (tape.cpp, gemm.cpp); private header. In a
// REWIND_OPENMP build with Eigen::nbThreads() > 1 work may be split between two OpenMP
// threads; otherwise two_threads() is false and everything runs on the calling thread.
#pragma once

#include <Eigen/Core>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <unordered_map>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace rwd::detail {

/// Whether a second thread may be used here: a REWIND_OPENMP build, more than one thread
/// allowed, and not already inside a parallel region.
inline bool two_threads() {
#ifdef _OPENMP
  return Eigen::nbThreads() > 1 && !omp_in_parallel();
#else
  return false;
#endif
}

/// Whether a product of this many multiply-adds is worth two threads. Forking a parallel region
/// costs about 1.5 µs while the second thread still spins from the last one (libgomp's default
/// wait policy; far more once it sleeps: OMP_WAIT_POLICY=passive made train-lstm-128 four times
/// slower); a 5·10⁵ multiply-add product takes 10-20 µs on one core. 2.5·10⁵ gained nothing more.
/// Measured with bench_train at two threads, same session, medians of five runs
/// (docs/benchmarks.md): 4·10⁶ (the threshold when products went through Eigen's own parallel GEMM)
/// -> 5·10⁵: train-lstm-128 22.1 -> 17.0 ms, gru-128 15.9 -> 12.7, rnn-128 5.0 -> 4.8. At H=512
/// only the input products of gru and rnn (3·10⁶, 10⁶) newly split; that was not measured alone.
inline bool worth_two_threads(double madds) { return madds >= 5e5; }

/// How a product worth two threads by worth_two_threads() is run, from REWIND_SPLIT: `measure`
/// (the default: SplitChooser decides per shape), `always` (two threads whenever allowed) or
/// `never` (the calling thread only).
enum class SplitPolicy : unsigned char { measure, always, never };
inline SplitPolicy split_policy() {
  static const SplitPolicy p = [] {
    const char* v = std::getenv("REWIND_SPLIT");
    if (v != nullptr && std::strcmp(v, "always") == 0) return SplitPolicy::always;
    if (v != nullptr && std::strcmp(v, "never") == 0) return SplitPolicy::never;
    return SplitPolicy::measure;
  }();
  return p;
}

/// Whether a product runs on two threads, decided by timing it. Whether a second core pays for
/// a product of a given shape depends on the host, not just on its size: splitting the hidden-128
/// steps' products (0.5-2·10⁶ multiply-adds) made those training steps 1.3-1.6x faster on one
/// 2-core machine (an AMD EPYC, about 110 GFLOP/s a core) and no faster on another (a Xeon, 210
/// GFLOP/s a core, where a product's half takes 3 µs), while the hidden-512 steps gained on both
/// (docs/benchmarks.md). So each thread keeps, per product shape, the fastest time of kTrials
/// runs on two threads and of kTrials on one (alternating, after one untimed run), then uses two
/// threads only if they were faster by kMargin: 20%, because the timing sees the product alone,
/// and the other core's share of the result still has to travel back to the calling thread (on
/// the Xeon, products 10-20% faster alone did not make the step faster). Only for products whose
/// pieces are fixed by the shape, so the result is the same bits either way: the choice changes
/// the time, never the numbers.
class SplitChooser {
 public:
  using Key = std::array<std::int64_t, 4>;

  /// Runs work(two) with two = whether to use two threads for this shape now.
  template <class F>
  static void run(const Key& key, F&& work) {
    switch (split_policy()) {
      case SplitPolicy::always:
        return work(true);
      case SplitPolicy::never:
        return work(false);
      case SplitPolicy::measure:
        break;
    }
    Entry& e = table()[key];
    if (e.decided) return work(e.two);
    if (e.runs == 0) {  // first use: kernels, caches and the second thread warm up
      ++e.runs;
      return work(false);
    }
    const bool two = e.runs % 2 == 1;
    const auto t0 = std::chrono::steady_clock::now();
    work(two);
    const double ns =
        std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
    double& best = two ? e.best_two : e.best_one;
    if (best == 0 || ns < best) best = ns;
    if (++e.runs > 2 * kTrials) {
      e.decided = true;
      e.two = e.best_two < kMargin * e.best_one;
    }
  }

 private:
  static constexpr int kTrials = 4;
  static constexpr double kMargin = 0.8;
  struct Entry {
    int runs = 0;
    double best_one = 0, best_two = 0;
    bool decided = false, two = false;
  };
  struct Hash {
    std::size_t operator()(const Key& k) const {
      std::size_t h = 0;
      for (std::int64_t v : k) h = h * 1000003u ^ static_cast<std::size_t>(v);
      return h;
    }
  };
  static std::unordered_map<Key, Entry, Hash>& table() {
    thread_local std::unordered_map<Key, Entry, Hash> t;
    return t;
  }
};

/// f(0) and f(1), on two threads when built with OpenMP (one after the other otherwise).
template <class F>
void on_two_threads(F&& f) {
#ifdef _OPENMP
#pragma omp parallel num_threads(2)
  f(omp_get_thread_num());
#else
  f(0);
  f(1);
#endif
}

}  // namespace rwd::detail
