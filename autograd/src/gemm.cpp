#include "rewind/autograd/gemm.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "parallel.hpp"

#if REWIND_HAVE_LIBXSMM
#include <libxsmm.h>
#endif
#if REWIND_HAVE_DNNL
#include <omp.h>

#include <array>
#include <atomic>
#include <dnnl.hpp>
#include <map>
#include <mutex>
#endif

namespace rwd::detail {
namespace {

namespace ei = Eigen::internal;

template <class T>
using Traits = ei::gebp_traits<T, T>;

inline Index round_up(Index x, Index to) { return (x + to - 1) / to * to; }

/// Column-major C (rows×cols, leading dimension ldc) += A·B on the calling thread only, with
/// Eigen's own GEMM. In a REWIND_OPENMP build Eigen would split any product above 50 000
/// multiply-adds between the threads; for the small per-step products that costs more than it
/// saves (waking the second core), so those run here, whole, on one core.
template <class T, int LhsOrder, int RhsOrder>
void serial_gemm(Index rows, Index cols, Index depth, const T* a, Index lda, const T* b, Index ldb,
                 T* c, Index ldc) {
  if (rows == 0 || cols == 0 || depth == 0) return;
  ei::gemm_blocking_space<Eigen::ColMajor, T, T, Eigen::Dynamic, Eigen::Dynamic, Eigen::Dynamic>
      blocking(rows, cols, depth, 1, true);
  ei::general_matrix_matrix_product<Index, T, LhsOrder, false, T, RhsOrder, false, Eigen::ColMajor,
                                    1>::run(rows, cols, depth, a, lda, b, ldb, c, 1, ldc, T(1),
                                            blocking, nullptr);
}

/// Whether a product is split between two threads: a REWIND_OPENMP build with two threads, and a
/// product big enough to pay for the second core.
bool split_product(double madds) { return two_threads() && worth_two_threads(madds); }

/// Packs the m×k matrix at `data` (leading dimension `stride`, storage `Order` as seen
/// column-major) into `v`'s panels: row blocks of mc, depth blocks of kc, in that loop order.
template <class T, int Order>
void pack_weight(typename PackedWeight<T>::View& v, const T* data, Index m, Index k, Index stride,
                 Index n) {
  using LhsMapper = ei::const_blas_data_mapper<T, Index, Order>;
  Index kc = k, mc = m, nc = n;
  ei::computeProductBlockingSizes<T, T>(kc, mc, nc, Index{1});
  // At least two row blocks when there is room, so two threads can each take half the rows
  // (each keeping its half of the weight in its own core's cache).
  if (m >= 2 * Traits<T>::LhsProgress) {
    mc = std::min(mc, round_up((m + 1) / 2, Index{Traits<T>::LhsProgress}));
  }
  v.m = m;
  v.k = k;
  v.mc = mc;
  v.kc = kc;
  v.panels.resize(static_cast<std::size_t>(m * k));
  ei::gemm_pack_lhs<T, Index, LhsMapper, Traits<T>::mr, Traits<T>::LhsProgress,
                    typename Traits<T>::LhsPacket4Packing, Order>
      pack;
  const LhsMapper lhs(data, stride);
  T* out = v.panels.data();
  for (Index i2 = 0; i2 < m; i2 += mc) {
    const Index rows = std::min(i2 + mc, m) - i2;
    for (Index k2 = 0; k2 < k; k2 += kc) {
      const Index depth = std::min(k2 + kc, k) - k2;
      pack(out, lhs.getSubMapper(i2, k2), depth, rows);
      out += rows * depth;
    }
  }
  v.valid = true;
}

/// C (m×n, column-major, leading dimension m) += A·B with A packed in `v` and B the k×n
/// column-major matrix at `b` (leading dimension k).
template <class T>
void run_packed(const typename PackedWeight<T>::View& v, const T* b, Index n, T* c) {
  using RhsMapper = ei::const_blas_data_mapper<T, Index, Eigen::ColMajor>;
  using ResMapper = ei::blas_data_mapper<T, Index, Eigen::ColMajor>;
  thread_local std::vector<T, Eigen::aligned_allocator<T>> packed_b;
  packed_b.resize(static_cast<std::size_t>(v.k * n));
  ei::gemm_pack_rhs<T, Index, RhsMapper, Traits<T>::nr, Eigen::ColMajor> pack_rhs;
  const RhsMapper rhs(b, v.k);
  T* const pb = packed_b.data();  // a thread_local is per thread: workers must use this pointer
  // Columns j0..j1 of B (j0 a multiple of nr) into their place in pb: gemm_pack_rhs lays out
  // each depth block as panels of nr columns and then single columns, so column j0 of a block
  // of depth d starts at j0·d, and packing [0, j0) and [j0, n) apart gives the whole's layout.
  const auto pack_columns = [&](Index j0, Index j1) {
    if (j1 <= j0) return;
    for (Index k2 = 0; k2 < v.k; k2 += v.kc) {
      const Index depth = std::min(k2 + v.kc, v.k) - k2;
      pack_rhs(pb + k2 * n + j0 * depth, rhs.getSubMapper(k2, j0), depth, j1 - j0);
    }
  };
  const Index blocks = (v.m + v.mc - 1) / v.mc;
  const auto block = [&](Index ib) {
    ei::gebp_kernel<T, T, Index, ResMapper, Traits<T>::mr, Traits<T>::nr, false, false> gebp;
    const ResMapper res(c, v.m);
    const Index i2 = ib * v.mc;
    const Index rows = std::min(i2 + v.mc, v.m) - i2;
    const T* a = v.panels.data() + i2 * v.k;
    for (Index k2 = 0; k2 < v.k; k2 += v.kc) {
      const Index depth = std::min(k2 + v.kc, v.k) - k2;
      gebp(res.getSubMapper(i2, 0), a, pb + k2 * n, rows, depth, n, T(1));
      a += rows * depth;
    }
  };
#ifdef _OPENMP
  if (blocks > 1 &&
      split_product(static_cast<double>(v.m) * static_cast<double>(v.k) * static_cast<double>(n))) {
#pragma omp parallel num_threads(Eigen::nbThreads())
    {
      // The right-hand side's packing split too: each thread packs its share of B's column
      // panels, then each multiplies its row blocks by all of them.
      const auto t = static_cast<Index>(omp_get_thread_num());
      const auto threads = static_cast<Index>(omp_get_num_threads());
      const Index nr = Traits<T>::nr, groups = (n + nr - 1) / nr;
      pack_columns(std::min(groups * t / threads * nr, n),
                   std::min(groups * (t + 1) / threads * nr, n));
#pragma omp barrier
#pragma omp for schedule(static)
      for (Index ib = 0; ib < blocks; ++ib) block(ib);
    }
    return;
  }
#endif
  pack_columns(0, n);
  for (Index ib = 0; ib < blocks; ++ib) block(ib);
}

// --- libxsmm's JIT kernels ------------------------------------------------------------------
//
// Column-major yᵀ (m×n) = A (m×k)·lᵀ (k×n), A the weight as GEMM's left operand. A is copied
// once per recording into panels of kJitRows rows, each column-major (rows×k, leading dimension
// rows): one JIT-compiled product per panel reads its panel and the whole of lᵀ, and writes its
// rows of yᵀ. The panels are independent, so two threads take half of them each and the result
// is the same bit for bit at any thread count.
constexpr Index kJitRows = 64;

#if REWIND_HAVE_LIBXSMM
template <class T>
using JitKernel =
    std::conditional_t<std::is_same_v<T, float>, libxsmm_smmfunction, libxsmm_dmmfunction>;

/// Column-major C (rows×n, leading dimension ldc) = or += A (rows×k, lda)·B, B k×n (ldb) or,
/// with trans_b, Bᵀ for a column-major n×k B (ldb).
template <class T>
JitKernel<T> jit_kernel(Index rows, Index n, Index k, Index lda, Index ldb, Index ldc, bool add,
                        bool trans_b = false) {
  const libxsmm_blasint m_ = rows, n_ = n, k_ = k, lda_ = lda, ldb_ = ldb, ldc_ = ldc;
  const T one = 1, beta = add ? 1 : 0;
  const int flags = trans_b ? LIBXSMM_GEMM_FLAG_TRANS_B : LIBXSMM_GEMM_FLAG_NONE;
  if constexpr (std::is_same_v<T, float>) {
    return libxsmm_smmdispatch(m_, n_, k_, &lda_, &ldb_, &ldc_, &one, &beta, &flags, nullptr);
  } else {
    return libxsmm_dmmdispatch(m_, n_, k_, &lda_, &ldb_, &ldc_, &one, &beta, &flags, nullptr);
  }
}

/// The kernel for panel rows of the product above, or an error naming the product.
template <class T>
JitKernel<T> checked_kernel(Index rows, Index n, Index k, Index lda, Index ldb, Index ldc, bool add,
                            bool trans_b, Index m) {
  const JitKernel<T> f = jit_kernel<T>(rows, n, k, lda, ldb, ldc, add, trans_b);
  if (f == nullptr) {
    throw std::runtime_error("libxsmm generated no kernel for a " + std::to_string(m) + "x" +
                             std::to_string(k) + " product with " + std::to_string(n) + " columns");
  }
  return f;
}

/// Column-major C (m×n, leading dimension ldc) = or += A·B, A m×k (leading dimension lda) and B
/// k×n (leading dimension ldb; with trans_b, B is stored transposed: n×k column-major), as one
/// JIT product per panel of kJitRows rows of A and C. Panel p of A starts at a + p·panel_stride;
/// `packed`: each panel is stored with its own row count as leading dimension (a weight's
/// panels), else every panel has lda. A product worth two threads with an odd number of panels
/// (one, for the input weight's gradient, whose m is the input size) is also cut into two column
/// halves, so that two threads get equal shares. The cut depends on the shape only and two
/// threads take half of the pieces each, so the result does not depend on the thread count.
template <class T>
void run_panels(Index m, Index n, Index k, const T* a, Index lda, Index panel_stride, bool packed,
                const T* b, Index ldb, bool trans_b, T* c, Index ldc, bool add) {
  const Index panels = (m + kJitRows - 1) / kJitRows;
  const Index last = m - (panels - 1) * kJitRows;
  const double madds = static_cast<double>(m) * static_cast<double>(k) * static_cast<double>(n);
  const bool halves = panels % 2 == 1 && n >= 16 && worth_two_threads(madds);
  const Index cut = halves ? (n + 1) / 2 : n;  // the first column piece's width
  struct Kernels {
    JitKernel<T> full, tail;
  };
  const auto kernels = [&](Index cols) {
    const JitKernel<T> tail =
        checked_kernel<T>(last, cols, k, packed ? last : lda, ldb, ldc, add, trans_b, m);
    return Kernels{
        panels == 1 ? tail : checked_kernel<T>(kJitRows, cols, k, lda, ldb, ldc, add, trans_b, m),
        tail};
  };
  const Kernels first = kernels(cut);
  const Kernels second = halves ? kernels(n - cut) : first;
  const Index pieces = halves ? 2 * panels : panels;
  const auto piece = [&](Index q) {
    const Index p = halves ? q / 2 : q;
    const Index j0 = halves && q % 2 == 1 ? cut : 0;
    const Kernels& f = j0 == 0 ? first : second;
    (p + 1 == panels ? f.tail : f.full)(a + p * panel_stride, b + (trans_b ? j0 : j0 * ldb),
                                        c + p * kJitRows + j0 * ldc);
  };
  if (const ProductShare share = product_share(); share.parts == 2) {
    // This thread's half of the pieces, as omp's static schedule gives two threads.
    const Index half = (pieces + 1) / 2;
    for (Index q = share.part == 0 ? 0 : half; q < (share.part == 0 ? half : pieces); ++q) piece(q);
    return;
  }
  const auto run_pieces = [&]([[maybe_unused]] bool two) {
#ifdef _OPENMP
    if (two) {
#pragma omp parallel for num_threads(Eigen::nbThreads()) schedule(static)
      for (Index q = 0; q < pieces; ++q) piece(q);
      return;
    }
#endif
    for (Index q = 0; q < pieces; ++q) piece(q);
  };
  if (pieces > 1 && split_product(madds)) {
    // The pieces are fixed by the shape: one thread or two, the result is the same bits.
    SplitChooser::run({m, n, k, (trans_b ? 2 : 0) + (add ? 1 : 0)}, run_pieces);
  } else {
    run_pieces(false);
  }
}

/// Whether this process uses libxsmm: not switched off by REWIND_GEMM=eigen, and libxsmm can
/// generate a kernel on this processor (it returns none where it has no code generator).
bool jit_enabled() {
  static const bool enabled = [] {
    const char* choice = std::getenv("REWIND_GEMM");
    if (choice != nullptr && std::strcmp(choice, "eigen") == 0) return false;
    return jit_kernel<float>(kJitRows, 8, 64, kJitRows, 64, kJitRows, true) != nullptr &&
           jit_kernel<double>(kJitRows, 8, 64, kJitRows, 64, kJitRows, true) != nullptr;
  }();
  return enabled;
}

/// Copies the m×k matrix at `data` (A(i, p) = data[i·stride + p] when `row_major`, data[p·stride
/// + i] otherwise) into `v`'s panels.
template <class T>
void pack_jit(typename PackedWeight<T>::View& v, const T* data, Index m, Index k, Index stride,
              bool row_major) {
  v.m = m;
  v.k = k;
  v.mc = kJitRows;
  v.kc = k;
  v.jit = true;
  v.panels.resize(static_cast<std::size_t>(m * k));
  const auto panel = [&](Index i0) {
    const Index rows = std::min(i0 + kJitRows, m) - i0;
    T* out = v.panels.data() + i0 * k;
    if (row_major) {
      // Written in order, read down the panel's rows: the rows' current cache lines (64 of
      // them) stay in L1 for 16 columns. Row by row, each row's k writes went to k different
      // lines of a 128 KiB panel: 2.3% of train-lstm-512's step (perf), for 4.5 MiB a step.
      const T* src = data + i0 * stride;
      for (Index p = 0; p < k; ++p) {
        for (Index i = 0; i < rows; ++i) out[p * rows + i] = src[i * stride + p];
      }
    } else {
      for (Index p = 0; p < k; ++p)
        std::memcpy(out + p * rows, data + p * stride + i0,
                    sizeof(T) * static_cast<std::size_t>(rows));
    }
  };
  const Index panels = (m + kJitRows - 1) / kJitRows;
  // Where it pays, two threads each copy half of the panels (W_hh at hidden 512: 4 MiB a view,
  // a step); otherwise the calling thread copies them all.
  [[maybe_unused]] const bool split =
      panels > 1 && split_packing(static_cast<double>(m) * static_cast<double>(k));
#ifdef _OPENMP
#pragma omp parallel for num_threads(2) schedule(static) if (split)
#endif
  for (Index q = 0; q < panels; ++q) panel(q * kJitRows);
  v.valid = true;
}

/// C (m×n, column-major, leading dimension m) = or += A·B with A in `v`'s panels and B the k×n
/// column-major matrix at `b`.
template <class T>
void run_jit(const typename PackedWeight<T>::View& v, const T* b, Index n, T* c, bool add) {
  // Each panel is column-major with kJitRows rows (the last: fewer), stored one after another.
  run_panels<T>(v.m, n, v.k, v.panels.data(), kJitRows, kJitRows * v.k, true, b, v.k, false, c, v.m,
                add);
}

/// Whether the weight gradient y = aᵀ·b (y m×k) goes through libxsmm. For double, only a result
/// that stays in a core's L2 cache over the product (at most 512 KiB); for float any size, in
/// tiles of that size (run_jit_gradients). Within L2 libxsmm's kernels run 1.2-1.9x Eigen's on
/// the steps' shapes (docs/benchmarks.md).
template <class T>
bool jit_gradient_pays(Index m, Index k, Index n) {
  // libxsmm generates the kernels that read B transposed on this processor.
  static const bool trans_b =
      jit_kernel<T>(kJitRows, 64, 8, kJitRows, 64, kJitRows, true, true) != nullptr;
  return trans_b && m >= 16 && k >= 16 && n >= 8 &&
         (std::is_same_v<T, float> || static_cast<std::size_t>(m * k) * sizeof(T) <= (512u << 10));
}

/// Rows of y (m×k) per tile of a weight gradient computed by libxsmm: all of them when y fits in
/// 512 KiB, else the most that do, a multiple of 16. Depends on the shape only.
template <class T>
Index gradient_tile_rows(Index m, Index k) {
  const auto fit =
      static_cast<Index>((std::size_t{512} << 10) / (sizeof(T) * static_cast<std::size_t>(k)));
  return fit >= m ? m : std::max<Index>(16, fit / 16 * 16);
}

/// y (m×k, row-major) = or += aᵀ·b for each term, a n×m and b n×k row-major. Column-major this
/// is yᵀ (k×m) = bᵀ·a: bᵀ (k×n) is b's buffer, and a's buffer is column-major aᵀ (m×n), read
/// transposed by the kernel. Nothing is copied. A tile is rows r0..r1 of y (columns of yᵀ: a's
/// columns from a + r0), in panels of kJitRows rows of yᵀ (columns of y). Every term goes into
/// a tile before the next tile, so the tile stays in cache over all of them.
template <class T>
void run_jit_gradients(MutMap<T> y, std::span<const GradientTerm<T>> terms) {
  const Index m = y.rows(), k = y.cols(), rows = gradient_tile_rows<T>(m, k);
  const auto tiles = [&] {
    for (Index r0 = 0; r0 < m; r0 += rows) {
      const Index r1 = std::min(m, r0 + rows);
      for (const GradientTerm<T>& t : terms) {
        run_panels<T>(k, r1 - r0, t.n, t.b, k, kJitRows, false, t.a + r0, m, true,
                      y.data() + r0 * k, k, t.add);
      }
    }
  };
  Index depth = 0;
  for (const GradientTerm<T>& t : terms) depth += t.n;
  const double madds = static_cast<double>(m) * static_cast<double>(k) * static_cast<double>(depth);
  if (terms.size() < 2 || product_share().parts == 2 || !split_product(madds)) {
    tiles();  // run_panels splits a single product itself
    return;
  }
  // Where two threads pay (SplitChooser, as for one product; REWIND_SPLIT overrides it), both
  // run all the terms, each its pieces of every product (as in the parallel sweep): one fork
  // for all of them.
  SplitChooser::run({m, k, depth, 6}, [&](bool two) {
    if (!two) {
      tiles();
      return;
    }
    std::exception_ptr error[2];
    on_two_threads([&](int t) {
      const ScopedProductShare share({t, 2});
      try {
        tiles();
      } catch (...) {
        error[t] = std::current_exception();
      }
    });
    for (const std::exception_ptr& e : error) {
      if (e) std::rethrow_exception(e);
    }
  });
}
#else
bool jit_enabled() { return false; }
template <class T>
void pack_jit(typename PackedWeight<T>::View&, const T*, Index, Index, Index, bool) {}
template <class T>
void run_jit(const typename PackedWeight<T>::View&, const T*, Index, T*, bool) {}
template <class T>
bool jit_gradient_pays(Index, Index, Index) {
  return false;
}
template <class T>
void run_jit_gradients(MutMap<T>, std::span<const GradientTerm<T>>) {}
#endif

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

}  // namespace

const char* product_kernel() { return jit_enabled() ? "libxsmm" : "eigen"; }

const char* gradient_kernel() {
  if (jit_enabled() && jit_gradient_pays<float>(2048, 512, 32)) return "libxsmm";
#if REWIND_HAVE_DNNL
  return Dnnl::instance().enabled() ? "onednn" : "eigen";
#else
  return "eigen";
#endif
}

namespace {
/// Whether a product of n rows with a weight of m output and k input columns uses the packing.
template <class T>
bool packing_pays(Index n, Index m, Index k) {
  return n >= Traits<T>::nr && m >= 16 && k >= 16 && k * n <= (Index{1} << 20);
}

/// Fills `v` (not valid yet) with W packed for y = l·Wᵀ (transpose_w) or y = l·W, n rows of l.
template <class T>
void pack_view(typename PackedWeight<T>::View& v, const ConstMap<T>& w, bool transpose_w, Index n) {
  const Index m = transpose_w ? w.rows() : w.cols(), k = transpose_w ? w.cols() : w.rows();
  if (jit_enabled()) {
    pack_jit<T>(v, w.data(), m, k, w.cols(), transpose_w);
  } else if (transpose_w) {
    pack_weight<T, Eigen::RowMajor>(v, w.data(), m, k, w.cols(), n);
  } else {
    pack_weight<T, Eigen::ColMajor>(v, w.data(), m, k, w.cols(), n);
  }
}
}  // namespace

template <class T>
void prepare_weight(PackedWeight<T>& packed, const ConstMap<T>& w, Index rows) {
  for (const bool transpose_w : {false, true}) {
    auto& v = packed.views[transpose_w ? 1 : 0];
    const Index m = transpose_w ? w.rows() : w.cols(), k = transpose_w ? w.cols() : w.rows();
    if (!v.valid && packing_pays<T>(rows, m, k)) pack_view<T>(v, w, transpose_w, rows);
  }
}

template <class T>
void weight_product(MutMap<T> y, bool add, const ConstMap<T>& l, const ConstMap<T>& w,
                    bool transpose_w, PackedWeight<T>* packed, const T* bias) {
  // Column-major, yᵀ = op(W)ᵀ·lᵀ: the weight is GEMM's left operand. For y = l·Wᵀ that is W's
  // buffer read row-major (m = W.rows), for y = l·W the buffer read column-major (m = W.cols).
  const Index n = l.rows(), k = l.cols();
  const Index m = transpose_w ? w.rows() : w.cols();
  const bool pays = packed != nullptr && packing_pays<T>(n, m, k);
  if (bias != nullptr) {
    const Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>> b(bias, m);
    if (pays && jit_enabled()) {
      // libxsmm assigns without reading y (beta = 0); the bias is then added while y is in
      // cache. Broadcasting it first wrote y through the caches once more (affine's bias was
      // 2.2% of train-lstm-512's step in perf).
      weight_product<T>(y, add, l, w, transpose_w, packed);
      y.rowwise() += b;
      return;
    }
    // Eigen's kernels accumulate into y: the bias goes in first.
    if (add) {
      y.rowwise() += b;
    } else {
      y.rowwise() = b;
    }
    add = true;
  }
  if (!pays) {
    if (split_product(static_cast<double>(m) * static_cast<double>(k) * static_cast<double>(n))) {
      if (transpose_w) {
        assign_or_add(y, add, l * w.transpose());
      } else {
        assign_or_add(y, add, l * w);
      }
      return;
    }
    // Column-major yᵀ (m×n) = op(W)ᵀ·lᵀ: W's buffer is m×k row-major (y = l·Wᵀ) or, read
    // column-major, m×k (y = l·W); lᵀ is l's buffer read column-major (k×n).
    if (!add) y.setZero();
    if (transpose_w) {
      serial_gemm<T, Eigen::RowMajor, Eigen::ColMajor>(m, n, k, w.data(), k, l.data(), k, y.data(),
                                                       m);
    } else {
      serial_gemm<T, Eigen::ColMajor, Eigen::ColMajor>(m, n, k, w.data(), m, l.data(), k, y.data(),
                                                       m);
    }
    return;
  }
  auto& v = packed->views[transpose_w ? 1 : 0];
  if (!v.valid) pack_view<T>(v, w, transpose_w, n);
  if (jit_enabled()) {
    run_jit<T>(v, l.data(), n, y.data(), add);
    return;
  }
  if (!add) y.setZero();
  run_packed<T>(v, l.data(), n, y.data());
}

ProductShare& product_share() {
  thread_local ProductShare share;
  return share;
}

template <class T>
void gradient_product(MutMap<T> y, bool add, const ConstMap<T>& a, const ConstMap<T>& b) {
  const auto rows = [&](Index r0, Index r1) {
    assign_or_add(y.middleRows(r0, r1 - r0), add, a.middleCols(r0, r1 - r0).transpose() * b);
  };
  const Index m = y.rows();
  if (jit_enabled() && jit_gradient_pays<T>(m, y.cols(), a.rows())) {
    const GradientTerm<T> term{a.data(), b.data(), a.rows(), add};
    run_jit_gradients<T>(y, std::span<const GradientTerm<T>>(&term, 1));
    return;
  }
  if constexpr (std::is_same_v<T, float>) {
    if (dnnl_gradient_pays<T>(m, y.cols()) && run_dnnl_gradient(y, add, a, b)) return;
  }
  const double madds =
      static_cast<double>(m) * static_cast<double>(y.cols()) * static_cast<double>(a.rows());
  if (const ProductShare share = product_share(); share.parts == 2 && share.part != 0) {
    return;  // Eigen's kernel: thread 0 computes all of y
  }
  if (!split_product(madds)) {
    // Column-major yᵀ (n×m) = bᵀ·a: b's buffer read column-major is bᵀ (n×k), a's is k×m
    // row-major.
    if (!add) y.setZero();
    serial_gemm<T, Eigen::ColMajor, Eigen::RowMajor>(y.cols(), m, a.rows(), b.data(), y.cols(),
                                                     a.data(), m, y.data(), y.cols());
    return;
  }
  if (m >= 2 * Traits<T>::LhsProgress) {
    const Index half = round_up((m + 1) / 2, Index{Traits<T>::LhsProgress});
    // Inside a parallel region Eigen's products run on the calling thread only.
    on_two_threads([&](int t) { t == 0 ? rows(0, half) : rows(half, m); });
    return;
  }
  rows(0, m);
}

template <class T>
void gradient_products(MutMap<T> y, std::span<const GradientTerm<T>> terms) {
  bool jit = jit_enabled();
  for (const GradientTerm<T>& t : terms) jit = jit && jit_gradient_pays<T>(y.rows(), y.cols(), t.n);
  if (jit) {
    run_jit_gradients<T>(y, terms);
    return;
  }
  for (const GradientTerm<T>& t : terms) {
    gradient_product<T>(y, t.add, ConstMap<T>(t.a, t.n, y.rows()), ConstMap<T>(t.b, t.n, y.cols()));
  }
}

template <class T>
void gradient_product_sum(MutMap<T> y, bool add, const ConstMap<T>& a1, const ConstMap<T>& b1,
                          const ConstMap<T>& a2, const ConstMap<T>& b2) {
  thread_local Matrix<T> a, b;
  a.resize(a1.rows() + a2.rows(), a1.cols());
  b.resize(b1.rows() + b2.rows(), b1.cols());
  a.topRows(a1.rows()) = a1;
  a.bottomRows(a2.rows()) = a2;
  b.topRows(b1.rows()) = b1;
  b.bottomRows(b2.rows()) = b2;
  gradient_product<T>(y, add, ConstMap<T>(a.data(), a.rows(), a.cols()),
                      ConstMap<T>(b.data(), b.rows(), b.cols()));
}

template void gradient_product_sum<float>(MutMap<float>, bool, const ConstMap<float>&,
                                          const ConstMap<float>&, const ConstMap<float>&,
                                          const ConstMap<float>&);
template void gradient_product_sum<double>(MutMap<double>, bool, const ConstMap<double>&,
                                           const ConstMap<double>&, const ConstMap<double>&,
                                           const ConstMap<double>&);
template void gradient_products<float>(MutMap<float>, std::span<const GradientTerm<float>>);
template void gradient_products<double>(MutMap<double>, std::span<const GradientTerm<double>>);
template void gradient_product<float>(MutMap<float>, bool, const ConstMap<float>&,
                                      const ConstMap<float>&);
template void gradient_product<double>(MutMap<double>, bool, const ConstMap<double>&,
                                       const ConstMap<double>&);

template void prepare_weight<float>(PackedWeight<float>&, const ConstMap<float>&, Index);
template void prepare_weight<double>(PackedWeight<double>&, const ConstMap<double>&, Index);
template void weight_product<float>(MutMap<float>, bool, const ConstMap<float>&,
                                    const ConstMap<float>&, bool, PackedWeight<float>*,
                                    const float*);
template void weight_product<double>(MutMap<double>, bool, const ConstMap<double>&,
                                     const ConstMap<double>&, bool, PackedWeight<double>*,
                                     const double*);

}  // namespace rwd::detail
