// Small helpers shared by the test programs.
#pragma once

#include <Eigen/Core>
#include <boost/test/unit_test.hpp>
#include <random>
#include <rewind/autograd/tensor.hpp>
#include <string>

namespace rwd::test {

/// Exact equality of two matrices of possibly different shapes (Boost.Test cannot compare Eigen
/// objects directly: it mistakes them for collections).
template <class A, class B>
bool same(const Eigen::MatrixBase<A>& a, const Eigen::MatrixBase<B>& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() && (a.array() == b.array()).all();
}

/// A rows×cols matrix of standard normal draws.
inline Matrix<double> normal_matrix(Index rows, Index cols, std::mt19937_64& rng) {
  std::normal_distribution<double> normal;
  Matrix<double> m(rows, cols);
  for (Index i = 0; i < m.size(); ++i) m.data()[i] = normal(rng);
  return m;
}

/// Runs f, which must throw E with exactly the message `expected`.
template <class E, class F>
void expect_message(F&& f, const std::string& expected) {
  try {
    f();
    BOOST_ERROR("no exception; expected: " << expected);
  } catch (const E& e) {
    BOOST_TEST(std::string(e.what()) == expected);
  }
}

/// A JSON array of rows as a matrix (reference data from the tools/torch_*.py scripts).
template <class Json>
Matrix<double> to_matrix(const Json& rows) {
  Matrix<double> m(static_cast<Index>(rows.size()), static_cast<Index>(rows.at(0).size()));
  for (Index r = 0; r < m.rows(); ++r) {
    for (Index c = 0; c < m.cols(); ++c) {
      m(r, c) =
          rows[static_cast<std::size_t>(r)][static_cast<std::size_t>(c)].template get<double>();
    }
  }
  return m;
}

}  // namespace rwd::test
