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

/// Whether copying a weight of this many elements into its packing is split between two threads:
/// a REWIND_OPENMP build with two threads (not REWIND_SPLIT=never) and at least 2¹⁷ elements
/// (512 KiB of float: ~30 µs of copying against a fork of ~1.5 µs). A packing is a copy, so
/// its bits do not depend on the split.
inline bool split_packing(double elements) {
  return two_threads() && split_policy() != SplitPolicy::never && elements >= 131072.0;
}

/// Whether a product runs on two threads, decided by timing it. Whether a second core pays for
/// a product of a given shape depends on the host, not just on its size: splitting the hidden-128
/// steps' products (0.5-2·10⁶ multiply-adds) made those training steps 1.3-1.6x faster on one
/// 2-core machine (an AMD EPYC, about 110 GFLOP/s a core) and no faster on another (a Xeon, 210
/// GFLOP/s a core, where a product's half takes 3 µs), while the hidden-512 steps gained on both
/// (docs/benchmarks.md). What a split costs is not all inside the product: the other core's
/// share of the result has to travel to the calling thread's cache when the next ops read it
/// (on the Xeon, hidden-128 products 10-25% faster alone on two threads made no step faster). So
/// a run is timed from its start to the start of the calling thread's next product (any shape):
/// the product and the ops that consume its result. Each thread keeps, per product shape, the
/// shortest such time of kTrials runs on two threads and of kTrials on one (after one untimed
/// run; in the order one, two, two, one, ... so that a shape used at two places of a step in
/// turn is not always split at the same one), then uses two threads if they were 15% faster
/// (kMargin: on the Xeon, gru-128's shapes that gained 5-13% so did not make its step faster). Only
/// for products whose pieces are fixed by the shape, so the result is the same bits either way: the
/// choice changes the time, never the numbers.
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
    State& st = state();
    if (st.timed != nullptr) {  // the previous trial's interval ends here
      const auto now = std::chrono::steady_clock::now();
      st.timed->record(st.timed_two,
                       std::chrono::duration<double, std::nano>(now - st.started).count());
      st.timed = nullptr;
    }
    Entry& e = st.table[key];
    if (e.decided) return work(e.two);
    if (e.runs++ == 0) return work(false);  // first use: kernels and caches warm up
    const auto now = std::chrono::steady_clock::now();
    // Trials 1..2·kTrials: one, two, two, one, one, two, two, one.
    const int t = e.runs - 2;
    const bool two = ((t + 1) / 2) % 2 == 1;
    st.timed = &e;
    st.timed_two = two;
    st.started = now;
    work(two);
  }

 private:
  static constexpr int kTrials = 4;
  static constexpr double kMargin = 0.85;
  struct Entry {
    int runs = 0;
    int timed = 0;
    double best_one = 0, best_two = 0;
    bool decided = false, two = false;
    void record(bool on_two, double ns) {
      double& best = on_two ? best_two : best_one;
      if (best == 0 || ns < best) best = ns;
      if (++timed == 2 * kTrials) {
        decided = true;
        two = best_two < kMargin * best_one;
      }
    }
  };
  struct Hash {
    std::size_t operator()(const Key& k) const {
      std::size_t h = 0;
      for (std::int64_t v : k) h = h * 1000003u ^ static_cast<std::size_t>(v);
      return h;
    }
  };
  struct State {
    std::unordered_map<Key, Entry, Hash> table;  // entries never move: `timed` stays valid
    Entry* timed = nullptr;                      // the trial whose interval is running
    bool timed_two = false;
    std::chrono::steady_clock::time_point started;
  };
  static State& state() {
    thread_local State s;
    return s;
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
