// The product kernels behind gemm.hpp (private header): Eigen's (always), libxsmm's JIT kernels
// and oneDNN's matmul (where the build found them). gemm.cpp chooses among them; each kernel's
// file says when it is used and what was measured.
#pragma once

#include <span>

#include "../parallel.hpp"
#include "rewind/autograd/gemm.hpp"

namespace rwd::detail::kernels {

namespace ei = Eigen::internal;

template <class T>
using Traits = ei::gebp_traits<T, T>;

inline Index round_up(Index x, Index to) { return (x + to - 1) / to * to; }

/// Whether a product is split between two threads: a REWIND_OPENMP build with two threads, and a
/// product big enough to pay for the second core.
inline bool split_product(double madds) { return two_threads() && worth_two_threads(madds); }

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

// ---- Eigen's kernel on packed panels (eigen_kernel.cpp) ----

/// Packs the m×k matrix at `data` (leading dimension `stride`, storage `Order` as seen
/// column-major) into `v`'s panels: row blocks of mc, depth blocks of kc, in that loop order.
template <class T, int Order>
void pack_weight(typename PackedWeight<T>::View& v, const T* data, Index m, Index k, Index stride,
                 Index n);
/// C (m×n, column-major, leading dimension m) += A·B with A packed in `v` and B the k×n
/// column-major matrix at `b` (leading dimension k).
template <class T>
void run_packed(const typename PackedWeight<T>::View& v, const T* b, Index n, T* c);

// ---- libxsmm (libxsmm_kernel.cpp; without libxsmm: never enabled) ----

/// Whether this process uses libxsmm: not switched off by REWIND_GEMM=eigen, and libxsmm can
/// generate a kernel on this processor (it returns none where it has no code generator).
bool jit_enabled();
/// Copies the m×k matrix at `data` (A(i, p) = data[i·stride + p] when `row_major`, data[p·stride
/// + i] otherwise) into `v`'s panels.
template <class T>
void pack_jit(typename PackedWeight<T>::View& v, const T* data, Index m, Index k, Index stride,
              bool row_major);
/// C (m×n, column-major, leading dimension m) = or += A·B with A in `v`'s panels and B the k×n
/// column-major matrix at `b`.
template <class T>
void run_jit(const typename PackedWeight<T>::View& v, const T* b, Index n, T* c, bool add);
/// Whether the weight gradient y = aᵀ·b (y m×k, a n rows deep) goes through libxsmm.
template <class T>
bool jit_gradient_pays(Index m, Index k, Index n);
/// y (m×k, row-major) = or += aᵀ·b for each term, tile by tile.
template <class T>
void run_jit_gradients(MutMap<T> y, std::span<const GradientTerm<T>> terms);

// ---- oneDNN (onednn_kernel.cpp; without oneDNN: never used) ----

/// Whether oneDNN is in use (REWIND_GEMM is not eigen, and no primitive failed).
bool dnnl_enabled();
/// Whether y (m×k) = aᵀ·b goes through oneDNN: float, a result over libxsmm's 512 KiB, oneDNN
/// in use.
template <class T>
bool dnnl_gradient_pays(Index m, Index k);
/// y = or += aᵀ·b through oneDNN; false (y untouched) if a primitive could not be made.
bool run_dnnl_gradient(MutMap<float> y, bool add, const ConstMap<float>& a,
                       const ConstMap<float>& b);

}  // namespace rwd::detail::kernels
