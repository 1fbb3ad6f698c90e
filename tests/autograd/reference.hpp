// Reference products for the product tests, by Eigen, in a file compiled at the libraries'
// optimisation level whatever the test program's (tests/CMakeLists.txt): at -O0 under the
// sanitizers these references took more time than the products they check.
#pragma once

#include <rewind/rewind.hpp>

namespace rwd::test {

/// op(a)·op(b), op transposing where asked, in T's arithmetic.
template <class T>
Matrix<T> product(const Matrix<T>& a, bool transpose_a, const Matrix<T>& b, bool transpose_b);

/// c + Σ_t a_tᵀ·b_t in double, from float or double terms (c may be empty: zeros).
template <class T>
Matrix<double> sum_of_products_tn(const Matrix<double>& c, const std::vector<Matrix<T>>& a,
                                  const std::vector<Matrix<T>>& b);

}  // namespace rwd::test
