// Small helpers shared by the autograd tests.
#pragma once

#include <Eigen/Core>

namespace rwd::test {

/// Exact equality of two matrices of possibly different shapes (Boost.Test cannot compare Eigen
/// objects directly: it mistakes them for collections).
template <class A, class B>
bool same(const Eigen::MatrixBase<A>& a, const Eigen::MatrixBase<B>& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() && (a.array() == b.array()).all();
}

}  // namespace rwd::test
