// Two threads, for the library's own sources (tape.cpp, gemm.cpp); private header. In a
// REWIND_OPENMP build with Eigen::nbThreads() > 1 work may be split between two OpenMP
// threads; otherwise two_threads() is false and everything runs on the calling thread.
#pragma once

#include <Eigen/Core>

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

/// Whether a product of this many multiply-adds is worth two threads. Waking the second core
/// costs several microseconds when it has gone to sleep between products; below 4·10⁶
/// multiply-adds (about 40 µs on one core) the halves do not finish sooner. Measured with
/// bench_train at two threads: train-rnn-128 4.1 -> 2.6 ms, H=512 unchanged (docs/benchmarks.md).
inline bool worth_two_threads(double madds) { return madds >= 4e6; }

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
