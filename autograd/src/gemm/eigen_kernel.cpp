// Eigen's GEMM kernel on a weight packed once per recording (gebp on Eigen's own panels): the
// products with a parameter when libxsmm is not in use.
#include <algorithm>
#include <vector>

#include "kernels.hpp"

namespace rwd::detail::kernels {

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

template void pack_weight<float, Eigen::RowMajor>(PackedWeight<float>::View&, const float*, Index,
                                                  Index, Index, Index);
template void pack_weight<float, Eigen::ColMajor>(PackedWeight<float>::View&, const float*, Index,
                                                  Index, Index, Index);
template void pack_weight<double, Eigen::RowMajor>(PackedWeight<double>::View&, const double*,
                                                   Index, Index, Index, Index);
template void pack_weight<double, Eigen::ColMajor>(PackedWeight<double>::View&, const double*,
                                                   Index, Index, Index, Index);
template void run_packed<float>(const PackedWeight<float>::View&, const float*, Index, float*);
template void run_packed<double>(const PackedWeight<double>::View&, const double*, Index, double*);

}  // namespace rwd::detail::kernels
