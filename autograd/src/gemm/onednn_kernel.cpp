#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "kernels.hpp"

#if REWIND_HAVE_DNNL
#include <omp.h>

#include <array>
#include <atomic>
#include <dnnl.hpp>
#include <map>
#include <mutex>
#endif

namespace rwd::detail::kernels {

// --- oneDNN's matmul for the large float weight gradients, where libxsmm is not used ---------
//
// gᵀ·h for W_hh at hidden 512 (a 4 MiB result over a depth of 32, once per step) is bound by
// streaming the result through memory. libxsmm's kernels in 512 KiB tiles do better (116-130
// against 106-112 GFLOP/s a product, and 145-155 with the sweep's terms run tile by tile:
// docs/benchmarks.md); without libxsmm (a build without it, REWIND_GEMM is not eigen), oneDNN's
// matmul ran the training steps 5-7% faster than Eigen's kernel at one thread. The
// primitives are made once per shape on the calling thread (where a failure can fall back to
// Eigen) and shared: oneDNN's primitives may run concurrently on several threads, each with its
// own stream.
#if REWIND_HAVE_DNNL
class Dnnl {
 public:
  static Dnnl& instance() {
    static Dnnl d;
    return d;
  }
  /// Whether oneDNN is in use: not switched off by REWIND_GEMM=eigen, and no primitive failed.
  bool enabled() const { return wanted_ && !failed_.load(std::memory_order_relaxed); }
  /// Whether oneDNN is wanted at all (REWIND_GEMM): what two threads sharing one product decide
  /// on, since a failure on one of them may flip enabled() while the other is past its test.
  bool wanted() const { return wanted_; }

  /// The primitive for rows×k = (rows×n)·(n×k), the left operand read transposed from a's
  /// buffer (leading dimension lda), y row-major; null if oneDNN could not make it (then
  /// enabled() is false from here on).
  const dnnl::matmul* primitive(Index rows, Index n, Index k, Index lda, bool add) {
    const std::array<Index, 5> key{rows, n, k, lda, add ? 1 : 0};
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = matmuls_.find(key);
    if (it != matmuls_.end()) return &it->second;
    try {
      // A primitive is made for the threads oneDNN may use then (it keeps that count and
      // forks them when it runs): one, like its runs.
      const OneThread one_thread;
      dnnl::primitive_attr attr;
      if (add) {
        dnnl::post_ops sum;
        sum.append_sum(1.f);
        attr.set_post_ops(sum);
      }
      const auto [src, wei, dst] = descs(rows, n, k, lda);
      dnnl::matmul mm(
          dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, wei, dst), attr, engine_));
      return &matmuls_.emplace(key, std::move(mm)).first->second;
    } catch (const dnnl::error&) {
      failed_.store(true, std::memory_order_relaxed);
      return nullptr;
    }
  }

  /// Runs `mm` on the calling thread, one oneDNN thread: y = or += aᵀ·b for the rows of y at
  /// `y` (the columns of a at `a`). False on an error (reported by the caller).
  bool run(const dnnl::matmul& mm, Index rows, Index n, Index k, Index lda, const float* a,
           const float* b, float* y) noexcept {
    try {
      thread_local dnnl::stream stream(engine_);
      const auto [src, wei, dst] = descs(rows, n, k, lda);
      dnnl::memory s(src, engine_, const_cast<float*>(a)), w(wei, engine_, const_cast<float*>(b)),
          d(dst, engine_, y);
      const OneThread one_thread;
      mm.execute(stream, {{DNNL_ARG_SRC, s}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, d}});
      stream.wait();
      return true;
    } catch (...) {
      return false;
    }
  }

 private:
  // oneDNN's OpenMP runtime uses omp_get_max_threads() threads: the caller splits instead. The
  // calling thread's count is restored however the scope ends. Without it at the primitives'
  // creation, a one-thread build's weight gradients ran partly on a second core (perf: 2.7% of
  // train-lstm-512's samples were oneDNN's kernel on an OpenMP worker, which otherwise spun,
  // another 35%).
  struct OneThread {
    int before = omp_get_max_threads();
    OneThread() { omp_set_num_threads(1); }
    ~OneThread() { omp_set_num_threads(before); }
    OneThread(const OneThread&) = delete;
    OneThread& operator=(const OneThread&) = delete;
  };
  Dnnl() {
    const char* choice = std::getenv("REWIND_GEMM");
    wanted_ = choice == nullptr || std::strcmp(choice, "eigen") != 0;
  }
  static std::array<dnnl::memory::desc, 3> descs(Index rows, Index n, Index k, Index lda) {
    using dt = dnnl::memory::data_type;
    using dims = dnnl::memory::dims;
    return {dnnl::memory::desc(dims{rows, n}, dt::f32, dims{1, lda}),
            dnnl::memory::desc(dims{n, k}, dt::f32, dims{k, 1}),
            dnnl::memory::desc(dims{rows, k}, dt::f32, dims{k, 1})};
  }
  bool wanted_ = true;
  std::atomic<bool> failed_{false};
  dnnl::engine engine_{dnnl::engine::kind::cpu, 0};
  std::mutex mutex_;
  std::map<std::array<Index, 5>, dnnl::matmul> matmuls_;
};

/// Whether y (m×k) = aᵀ·b goes through oneDNN: float, a result over libxsmm's 512 KiB, oneDNN
/// in use.
template <class T>
bool dnnl_gradient_pays(Index m, Index k) {
  const Dnnl& dnnl = Dnnl::instance();
  return std::is_same_v<T, float> && static_cast<std::size_t>(m * k) * sizeof(T) > (512u << 10) &&
         (product_share().parts == 2 ? dnnl.wanted() : dnnl.enabled());
}

/// y = or += aᵀ·b through oneDNN, in two row halves when the product is worth two threads (the
/// cut depends on the shape only: the result does not depend on the thread count), run on two
/// threads where allowed. False (y untouched) if a primitive could not be made.
bool run_dnnl_gradient(MutMap<float> y, bool add, const ConstMap<float>& a,
                       const ConstMap<float>& b) {
  const Index m = y.rows(), k = y.cols(), n = a.rows();
  const double madds = static_cast<double>(m) * static_cast<double>(k) * static_cast<double>(n);
  const bool halves = m >= 32 && worth_two_threads(madds);
  const Index cut = halves ? round_up((m + 1) / 2, Index{16}) : m;
  const ProductShare share = product_share();
  Dnnl& dnnl = Dnnl::instance();
  const dnnl::matmul* first = dnnl.primitive(cut, n, k, m, add);
  const dnnl::matmul* second = halves ? dnnl.primitive(m - cut, n, k, m, add) : nullptr;
  if (first == nullptr || (halves && second == nullptr)) {
    // Two threads share this product: the other one may be running its half with oneDNN, so
    // neither may fall back to Eigen for the whole. The sweep rethrows this.
    if (share.parts == 2) {
      throw std::runtime_error("oneDNN could not create its matmul for a " + std::to_string(m) +
                               "x" + std::to_string(k) + " weight gradient over " +
                               std::to_string(n) + " rows (REWIND_GEMM=eigen avoids oneDNN)");
    }
    return false;
  }
  bool ok[2] = {true, true};
  const auto part = [&](int t) {
    const Index r0 = t == 0 ? 0 : cut, r1 = t == 0 ? cut : m;
    ok[t] = dnnl.run(t == 0 ? *first : *second, r1 - r0, n, k, m, a.data() + r0, b.data(),
                     y.data() + r0 * k);
  };
  const auto both_halves = [&](bool two) {
    if (two) {
      on_two_threads(part);
    } else {
      part(0);
      part(1);
    }
  };
  if (share.parts == 2) {
    if (halves || share.part == 0) part(halves ? share.part : 0);
  } else if (!halves) {
    part(0);
  } else if (split_product(madds)) {
    // The halves are fixed by the shape: one thread or two, the result is the same bits.
    SplitChooser::run({m, n, k, add ? 5 : 4}, both_halves);
  } else {
    both_halves(false);
  }
  if (!ok[0] || !ok[1]) {
    throw std::runtime_error("oneDNN failed to run a " + std::to_string(m) + "x" +
                             std::to_string(k) + " weight gradient over " + std::to_string(n) +
                             " rows (REWIND_GEMM=eigen avoids oneDNN)");
  }
  return true;
}
#else
template <class T>
bool dnnl_gradient_pays(Index, Index) {
  return false;
}
bool run_dnnl_gradient(MutMap<float>, bool, const ConstMap<float>&, const ConstMap<float>&) {
  return false;
}
#endif

#if REWIND_HAVE_DNNL
bool dnnl_enabled() { return Dnnl::instance().enabled(); }
#else
bool dnnl_enabled() { return false; }
#endif

template bool dnnl_gradient_pays<float>(Index, Index);
template bool dnnl_gradient_pays<double>(Index, Index);

}  // namespace rwd::detail::kernels
