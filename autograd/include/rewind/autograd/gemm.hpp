// Products with a weight, packed once per recording.
//
// Eigen's GEMM copies ("packs") its left operand into the layout its kernel reads before every
// product. A recurrent weight is multiplied at every step, forward (h·W_hhᵀ) and backward
// (g·W_hh): at hidden 512 that is 100 packings of a 4 MB matrix per training step, a fifth of
// the step (perf, train-lstm-512). The tape hands ops a PackedWeight for every parameter leaf;
// weight_product packs the weight into it on first use in a recording and then runs Eigen's own
// kernel (gebp) on the packed panels. Same kernel, same blocking, same results up to the order
// of additions inside a product; nothing is packed for products that are too small to pay.
//
// Two kernels, chosen when the weight is packed (docs/benchmarks.md, "The product kernel"):
//  - libxsmm's JIT kernels (a build with REWIND_LIBXSMM, the default where libxsmm-dev is
//    installed, on a processor libxsmm generates code for): the weight in panels of 64 rows,
//    each panel one JIT-compiled product with the batch. 1.4-1.6x Eigen's kernel on the step's
//    shapes (tools/bench/kernel_study/run).
//  - Eigen's own (the portable fallback, and the choice with REWIND_GEMM=eigen at run time):
//    built on Eigen's internal GEMM building blocks (gemm_pack_lhs, gemm_pack_rhs, gebp_kernel),
//    which Eigen 3.4 does not document as public API: this file is the only place that uses
//    them.
// Either way a product's result does not depend on the thread count: threads split the weight's
// rows, never a sum.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "rewind/autograd/tensor.hpp"

namespace rwd::detail {

/// A weight packed as GEMM's left operand, in both views the ops need (the weight's buffer read
/// row-major, for y = x·Wᵀ, and column-major, for y = x·W). Owned by the tape, kept across
/// clear() (the buffers are reused), invalidated by it.
template <class T>
struct PackedWeight {
  struct View {
    bool valid = false;
    bool jit = false;  // libxsmm's panels (mc rows each, depth k) instead of Eigen's
    Index m = 0, k = 0, mc = 0, kc = 0;
    std::vector<T, Eigen::aligned_allocator<T>> panels;
  };
  View views[2];  // [0]: buffer as column-major, [1]: as row-major
  void invalidate() { views[0].valid = views[1].valid = false; }
  std::size_t capacity() const { return views[0].panels.capacity() + views[1].panels.capacity(); }
};

/// y = l·Wᵀ (transpose_w) or y = l·W, assigned or added (`add`); y, l, W row-major. With `packed`
/// (W is a parameter leaf of the recording) the product reuses or fills W's packing; without it,
/// or when the product is small, it is Eigen's ordinary product. With `bias` (y.cols() values),
/// the bias is added to every row too, where it is cheapest for the kernel in use.
template <class T>
void weight_product(MutMap<T> y, bool add, const ConstMap<T>& l, const ConstMap<T>& w,
                    bool transpose_w, PackedWeight<T>* packed, const T* bias = nullptr);

/// Packs W into both views of `packed` now, where a product with an l of `rows` rows would pack
/// it (weight_product packs on first use). The parallel reverse sweep calls it before two
/// threads multiply by the weight at once, so that neither packs while the other reads.
template <class T>
void prepare_weight(PackedWeight<T>& packed, const ConstMap<T>& w, Index rows);

/// The kernel the products with a packed weight use in this process: "libxsmm" or "eigen"
/// (REWIND_GEMM=eigen in the environment, a build without REWIND_LIBXSMM, or a processor
/// libxsmm has no code generator for).
const char* product_kernel();

/// The kernel the float weight gradients over 512 KiB (W_hh's at hidden 512) use in this
/// process: "libxsmm" (in tiles of 512 KiB, wherever the products use it), else "onednn" (a
/// build with REWIND_ONEDNN) or "eigen" (REWIND_GEMM=eigen, neither library, or oneDNN failing
/// to create its primitive). Double results over 512 KiB always use Eigen's.
const char* gradient_kernel();

/// Which share of each gradient_product the calling thread computes: `part` of `parts`. The
/// parallel reverse sweep sets 0 and 1 of 2 on its two threads for a weight's gradient: each
/// thread then computes the pieces of y it would take if the product were split between two
/// threads (libxsmm's panels, oneDNN's halves; Eigen's kernel: thread 0 all of it), so together
/// they write every element once, and the bits are the one-thread product's. Thread-local;
/// 0 of 1 (everything) by default.
struct ProductShare {
  int part = 0;
  int parts = 1;
};
ProductShare& product_share();

/// Sets the calling thread's product_share() for a scope, and puts the previous one back however
/// the scope ends.
struct ScopedProductShare {
  ProductShare before = product_share();
  explicit ScopedProductShare(ProductShare s) { product_share() = s; }
  ~ScopedProductShare() { product_share() = before; }
  ScopedProductShare(const ScopedProductShare&) = delete;
  ScopedProductShare& operator=(const ScopedProductShare&) = delete;
};

/// y = aᵀ·b, assigned or added (`add`): a weight's gradient from a batch (a: n×m, b: n×k). In a
/// REWIND_OPENMP build with two threads each thread computes half of y's rows (Eigen's own
/// parallel product synchronises the threads inside every product instead), so the result does
/// not depend on the thread count.
template <class T>
void gradient_product(MutMap<T> y, bool add, const ConstMap<T>& a, const ConstMap<T>& b);

/// One term aᵀ·b of a weight's gradient y (m×k): a is n×m and b n×k, both row-major and
/// contiguous; `add`: added to y, else assigned (the first term into a fresh buffer).
template <class T>
struct GradientTerm {
  const T* a = nullptr;
  const T* b = nullptr;
  Index n = 0;
  bool add = true;
};

/// The terms into y one after another, each as gradient_product would compute it alone: the
/// same bits as that many gradient_product calls in this order, for any thread count. Where
/// libxsmm computes weight gradients, y is taken in tiles of rows that fit a core's L2 cache
/// (512 KiB) and every term is applied to a tile before the next tile: a recurrent weight's
/// gradient (W_hh: 4 MiB at hidden 512, one term a step) is then read and written once per
/// sweep, not once per step. The reverse sweep collects a parameter's product terms so.
template <class T>
void gradient_products(MutMap<T> y, std::span<const GradientTerm<T>> terms);

/// y = a₁ᵀ·b₁ + a₂ᵀ·b₂, assigned or added: the gradient tangent of a weight (ġyᵀ·x + gyᵀ·ẋ) as
/// one product of the stacked [a₁; a₂]ᵀ·[b₁; b₂], so y (the weight's size) is read and written
/// once instead of twice.
template <class T>
void gradient_product_sum(MutMap<T> y, bool add, const ConstMap<T>& a1, const ConstMap<T>& b1,
                          const ConstMap<T>& a2, const ConstMap<T>& b2);

extern template void gradient_product_sum<float>(MutMap<float>, bool, const ConstMap<float>&,
                                                 const ConstMap<float>&, const ConstMap<float>&,
                                                 const ConstMap<float>&);
extern template void gradient_product_sum<double>(MutMap<double>, bool, const ConstMap<double>&,
                                                  const ConstMap<double>&, const ConstMap<double>&,
                                                  const ConstMap<double>&);
extern template void gradient_products<float>(MutMap<float>, std::span<const GradientTerm<float>>);
extern template void gradient_products<double>(MutMap<double>,
                                               std::span<const GradientTerm<double>>);
extern template void gradient_product<float>(MutMap<float>, bool, const ConstMap<float>&,
                                             const ConstMap<float>&);
extern template void gradient_product<double>(MutMap<double>, bool, const ConstMap<double>&,
                                              const ConstMap<double>&);

extern template void prepare_weight<float>(PackedWeight<float>&, const ConstMap<float>&, Index);
extern template void prepare_weight<double>(PackedWeight<double>&, const ConstMap<double>&, Index);
extern template void weight_product<float>(MutMap<float>, bool, const ConstMap<float>&,
                                           const ConstMap<float>&, bool, PackedWeight<float>*,
                                           const float*);
extern template void weight_product<double>(MutMap<double>, bool, const ConstMap<double>&,
                                            const ConstMap<double>&, bool, PackedWeight<double>*,
                                            const double*);

}  // namespace rwd::detail
