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

/// Whether a product of this many multiply-adds is worth two threads. Forking a parallel region
/// costs about 1.5 µs while the second thread still spins from the last one (libgomp's default
/// wait policy; far more once it sleeps: OMP_WAIT_POLICY=passive made train-lstm-128 four times
/// slower); a 5·10⁵ multiply-add product takes 10-20 µs on one core. 2.5·10⁵ gained nothing more.
/// Measured with bench_train at two threads, same session, medians of five runs
/// (docs/benchmarks.md): 4·10⁶ (the threshold when products went through Eigen's own parallel GEMM)
/// -> 5·10⁵: train-lstm-128 22.1 -> 17.0 ms, gru-128 15.9 -> 12.7, rnn-128 5.0 -> 4.8. At H=512
/// only the input products of gru and rnn (3·10⁶, 10⁶) newly split; that was not measured alone.
inline bool worth_two_threads(double madds) { return madds >= 5e5; }

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
