// The per-example products of ops::RowOuter, RowVecmat and RowMatvec, compiled once (linalg.hpp).
#include "rewind/autograd/ops/linalg.hpp"

namespace rwd::detail {

namespace {
/// Example i's m×n matrix in row i of a B×(m·n) tensor.
template <class T>
ConstMap<T> row_matrix(const ConstMap<T>& s, Index i, Index m, Index n) {
  return ConstMap<T>(s.data() + i * s.cols(), m, n);
}
template <class T>
MutMap<T> row_matrix(MutMap<T> s, Index i, Index m, Index n) {
  return MutMap<T>(s.data() + i * s.cols(), m, n);
}
}  // namespace

// Matrices of at most this many elements are multiplied in plain loops: Eigen's dispatch to its
// matrix-vector kernel costs more than the arithmetic there (bench_ops VariantOp, 1×1, record and
// backward: row_vecmat 94 -> 85 ns per op, row_matvec 88 -> 77, row_outer 67 -> 63). The choice
// depends on the shape alone, so the bits do not depend on how rows are split between threads.
constexpr Index kSmall = 64;

/// Rows i of out: the m×n outer products a_i b_iᵀ (out B×(m·n)). Each element is one product,
/// so the loop and Eigen's outer product give the same bits.
template <class T>
void row_outer_into(MutMap<T> out, const ConstMap<T>& a, const ConstMap<T>& b) {
  const Index m = a.cols(), n = b.cols();
  for (Index i = 0; i < a.rows(); ++i) {
    if (m * n <= kSmall) {
      T* o = out.data() + i * out.cols();
      for (Index p = 0; p < m; ++p)
        for (Index q = 0; q < n; ++q) o[p * n + q] = a(i, p) * b(i, q);
    } else {
      row_matrix(out, i, m, n).noalias() = a.row(i).transpose() * b.row(i);
    }
  }
}
/// Rows i of out: x_iᵀ M_i (out B×n, x B×m, s B×(m·n)).
template <class T>
void row_vecmat_into(MutMap<T> out, const ConstMap<T>& x, const ConstMap<T>& s) {
  const Index m = x.cols(), n = out.cols();
  for (Index i = 0; i < x.rows(); ++i) {
    if (m * n <= kSmall) {
      const T* mi = s.data() + i * s.cols();
      for (Index q = 0; q < n; ++q) {
        T acc = 0;
        for (Index p = 0; p < m; ++p) acc += x(i, p) * mi[p * n + q];
        out(i, q) = acc;
      }
    } else {
      out.row(i).noalias() = x.row(i) * row_matrix(s, i, m, n);
    }
  }
}
/// Rows i of out: (M_i v_i)ᵀ (out B×m, s B×(m·n), v B×n).
template <class T>
void row_matvec_into(MutMap<T> out, const ConstMap<T>& s, const ConstMap<T>& v) {
  const Index m = out.cols(), n = v.cols();
  for (Index i = 0; i < v.rows(); ++i) {
    if (m * n <= kSmall) {
      const T* mi = s.data() + i * s.cols();
      for (Index p = 0; p < m; ++p) {
        T acc = 0;
        for (Index q = 0; q < n; ++q) acc += mi[p * n + q] * v(i, q);
        out(i, p) = acc;
      }
    } else {
      out.row(i).noalias() = v.row(i) * row_matrix(s, i, m, n).transpose();
    }
  }
}

template void row_outer_into<float>(MutMap<float>, const ConstMap<float>&, const ConstMap<float>&);
template void row_outer_into<double>(MutMap<double>, const ConstMap<double>&,
                                     const ConstMap<double>&);
template void row_vecmat_into<float>(MutMap<float>, const ConstMap<float>&, const ConstMap<float>&);
template void row_vecmat_into<double>(MutMap<double>, const ConstMap<double>&,
                                      const ConstMap<double>&);
template void row_matvec_into<float>(MutMap<float>, const ConstMap<float>&, const ConstMap<float>&);
template void row_matvec_into<double>(MutMap<double>, const ConstMap<double>&,
                                      const ConstMap<double>&);

}  // namespace rwd::detail
