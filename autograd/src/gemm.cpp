// The products with a weight (gemm.hpp): which kernel runs a product (libxsmm's JIT kernels,
// oneDNN's matmul, Eigen's kernel on packed panels or Eigen's plain GEMM), packing, splitting
// between two threads, and the weight gradients' terms. The kernels are in gemm/.
#include "rewind/autograd/gemm.hpp"

#include <type_traits>

#include "gemm/kernels.hpp"

namespace rwd::detail {

using namespace kernels;

const char* product_kernel() { return jit_enabled() ? "libxsmm" : "eigen"; }

const char* gradient_kernel() {
  if (jit_enabled() && jit_gradient_pays<float>(2048, 512, 32)) return "libxsmm";
  return dnnl_enabled() ? "onednn" : "eigen";
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
