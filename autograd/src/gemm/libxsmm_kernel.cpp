#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "kernels.hpp"

#if REWIND_HAVE_LIBXSMM
#include <libxsmm.h>
#endif

namespace rwd::detail::kernels {

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

template void pack_jit<float>(PackedWeight<float>::View&, const float*, Index, Index, Index, bool);
template void pack_jit<double>(PackedWeight<double>::View&, const double*, Index, Index, Index,
                               bool);
template void run_jit<float>(const PackedWeight<float>::View&, const float*, Index, float*, bool);
template void run_jit<double>(const PackedWeight<double>::View&, const double*, Index, double*,
                              bool);
template bool jit_gradient_pays<float>(Index, Index, Index);
template bool jit_gradient_pays<double>(Index, Index, Index);
template void run_jit_gradients<float>(MutMap<float>, std::span<const GradientTerm<float>>);
template void run_jit_gradients<double>(MutMap<double>, std::span<const GradientTerm<double>>);

}  // namespace rwd::detail::kernels
