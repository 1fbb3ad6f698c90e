#include "reference.hpp"

namespace rwd::test {

template <class T>
Matrix<T> product(const Matrix<T>& a, bool transpose_a, const Matrix<T>& b, bool transpose_b) {
  if (transpose_a) {
    return transpose_b ? Matrix<T>(a.transpose() * b.transpose()) : Matrix<T>(a.transpose() * b);
  }
  return transpose_b ? Matrix<T>(a * b.transpose()) : Matrix<T>(a * b);
}

template <class T>
Matrix<double> sum_of_products_tn(const Matrix<double>& c, const std::vector<Matrix<T>>& a,
                                  const std::vector<Matrix<T>>& b) {
  Matrix<double> sum = c;
  for (std::size_t t = 0; t < a.size(); ++t) {
    const Matrix<double> at = a[t].template cast<double>(), bt = b[t].template cast<double>();
    if (sum.size() == 0) sum = Matrix<double>::Zero(at.cols(), bt.cols());
    sum.noalias() += at.transpose() * bt;
  }
  return sum;
}

template Matrix<float> product(const Matrix<float>&, bool, const Matrix<float>&, bool);
template Matrix<double> product(const Matrix<double>&, bool, const Matrix<double>&, bool);
template Matrix<double> sum_of_products_tn(const Matrix<double>&, const std::vector<Matrix<float>>&,
                                           const std::vector<Matrix<float>>&);
template Matrix<double> sum_of_products_tn(const Matrix<double>&,
                                           const std::vector<Matrix<double>>&,
                                           const std::vector<Matrix<double>>&);

}  // namespace rwd::test
