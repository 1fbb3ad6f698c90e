// Seeded initializers. Every layer takes a std::mt19937_64 so a model is reproducible from
// one seed.
#pragma once

#include <cmath>
#include <random>
#include <rewind/autograd/tensor.hpp>

namespace rwd::layers {

namespace detail {
/// The thin Q (n×k) of the QR decomposition of a (n×k, k ≤ n), each column's sign chosen so that
/// R's diagonal is positive: the Q Gram-Schmidt gives. With r_diagonal, also |R_ii|. Not a
/// template and compiled once, in the layers library (layers.cpp): Eigen's QR took 3 s in every
/// file that instantiated it.
Eigen::MatrixXd positive_qr(const Eigen::MatrixXd& a, Eigen::VectorXd* r_diagonal = nullptr);
/// The thin Q alone, signs as Householder's QR leaves them.
Eigen::MatrixXd thin_q(const Eigen::MatrixXd& a);
}  // namespace detail

using Rng = std::mt19937_64;

/// U(-bound, bound) elementwise. PyTorch's default for recurrent layers is bound = 1/√hidden,
/// for Linear bound = 1/√in (weights and biases).
template <class T>
Matrix<T> uniform(Index rows, Index cols, double bound, Rng& rng) {
  std::uniform_real_distribution<double> u(-bound, bound);
  Matrix<T> m(rows, cols);
  for (Index i = 0; i < m.size(); ++i) m.data()[i] = static_cast<T>(u(rng));
  return m;
}

/// N(mean, std²) elementwise (PyTorch's default for Embedding: N(0, 1)).
template <class T>
Matrix<T> normal(Index rows, Index cols, double mean, double std, Rng& rng) {
  std::normal_distribution<double> n(mean, std);
  Matrix<T> m(rows, cols);
  for (Index i = 0; i < m.size(); ++i) m.data()[i] = static_cast<T>(n(rng));
  return m;
}

/// Xavier/Glorot uniform: U(-a, a) with a = gain·√(6 / (fan_in + fan_out)), for a weight in
/// out×in layout (rows = fan_out, cols = fan_in).
template <class T>
Matrix<T> xavier_uniform(Index rows, Index cols, Rng& rng, double gain = 1.0) {
  return uniform<T>(rows, cols, gain * std::sqrt(6.0 / static_cast<double>(rows + cols)), rng);
}

/// A (semi-)orthogonal matrix scaled by gain (Saxe et al.): the Q of a QR decomposition of a
/// Gaussian matrix, signs fixed by R's diagonal so the distribution is uniform. For rows < cols
/// the rows are orthonormal, otherwise the columns.
template <class T>
Matrix<T> orthogonal(Index rows, Index cols, Rng& rng, double gain = 1.0) {
  const bool wide = rows < cols;
  const Index n = wide ? cols : rows, k = wide ? rows : cols;
  const Eigen::MatrixXd q = detail::positive_qr(normal<double>(n, k, 0.0, 1.0, rng));
  const Eigen::MatrixXd m = wide ? Eigen::MatrixXd(q.transpose()) : q;
  return (gain * m).cast<T>();
}

}  // namespace rwd::layers
