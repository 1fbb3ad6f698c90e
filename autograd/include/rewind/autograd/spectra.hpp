// Curvature spectra of a loss: the Hessian with respect to parameters as an operator v ↦ H·v
// (Tape::hvp on one recording, nothing re-recorded), and the symmetric-eigenvalue methods that
// only need such products: power iteration with deflation, Lanczos with full
// reorthogonalisation (top-k eigenpairs), Hutchinson's trace estimate with its standard error,
// and stochastic Lanczos quadrature (SLQ) for the spectral density, with PyHessian's defaults
// (Yao et al. 2020: 100 iterations, Gaussian broadening σ² = 1e-5 of the spectrum's range).
//
// All of it runs in double whatever the tape's scalar: vectors are Eigen::VectorXd, flattened
// parameter by parameter in the order given (row-major inside each). The methods take any
// SymmetricOperator, so they serve other symmetric matrices (a Gauss-Newton matrix, JᵀJ) too.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "rewind/autograd/tape.hpp"

namespace rwd {

/// A symmetric n×n matrix known through its products: `apply(v)` = A·v.
struct SymmetricOperator {
  Index size = 0;
  std::function<Eigen::VectorXd(const Eigen::VectorXd&)> apply;
};

/// The Hessian of a recorded 1x1 loss with respect to some of its parameters, on the recorded
/// batch. Each product is one Tape::hvp of the same recording: the parameters' tangents are set
/// from v, H·v is read from the parameter leaves' gradient tangents; Parameter::grad and
/// Parameter::grad_tangent are left untouched and every tangent is restored afterwards.
template <class T>
class HessianOperator {
 public:
  /// `params`: the parameters (all of them on the tape) that span the Hessian. Throws
  /// UsageError for a parameter not recorded on the loss's tape, or an empty list.
  HessianOperator(Tape<T>& tape, const Var<T>& loss, std::vector<Parameter<T>*> params);
  /// Σ sizes of the parameters.
  Index size() const { return size_; }
  /// H·v (v has size()).
  Eigen::VectorXd apply(const Eigen::VectorXd& v);
  /// Products computed so far.
  int products() const { return products_; }
  /// The gradient at the recorded point, flattened the same way.
  Eigen::VectorXd gradient();
  /// The whole n×n Hessian from n products with unit vectors (small models, tests).
  Eigen::MatrixXd dense();
  /// This operator as a SymmetricOperator (it refers to *this, which must outlive it).
  SymmetricOperator op();

 private:
  // The parameters' parts of a per-node tensor (read(leaf)), flattened in order; zero where none.
  template <class Read>
  Eigen::VectorXd gather(Read&& read) const;

  Tape<T>* tape_;
  Var<T> loss_;
  std::vector<Parameter<T>*> params_;
  std::vector<std::size_t> leaves_;
  Index size_ = 0;
  int products_ = 0;
};

/// Eigenpairs from an iterative method, largest first (by value, or by magnitude when asked).
struct EigenResult {
  std::vector<double> values;
  std::vector<Eigen::VectorXd> vectors;  ///< unit vectors
  std::vector<double> residuals;         ///< ‖A·u − λ·u‖ per pair
  int products = 0;                      ///< operator applications used
  int iterations = 0;
  bool converged = false;
  std::string to_string() const;
};

struct PowerOptions {
  int top = 1;               ///< eigenpairs, one after another, each deflating the ones found
  int max_iterations = 100;  ///< per eigenpair
  double tolerance = 1e-6;  ///< stop when |λ_j − λ_{j−1}| ≤ tolerance·|λ_j| (PyHessian: 1e-3)
  std::uint64_t seed = 1;
};
/// Power iteration with deflation: the top eigenpairs by magnitude (PyHessian's method).
EigenResult power_iteration(const SymmetricOperator& a, const PowerOptions& options = {});

struct LanczosOptions {
  int top = 1;
  /// Largest algebraic eigenvalues (the sharpest directions) or largest |λ|.
  bool by_magnitude = false;
  int max_iterations = 0;  ///< 0: the operator's size (Lanczos is then exact)
  double tolerance = 1e-10;  ///< residual ‖A·u − θ·u‖ ≤ tolerance·|θ_max| for each wanted pair
  std::uint64_t seed = 1;
};
/// Lanczos with full reorthogonalisation against every earlier Lanczos vector (no ghost
/// eigenvalues), stopping once the wanted Ritz pairs' residuals (|β_m·s_{m,i}|, exact for the
/// Ritz pairs) are below the tolerance, or on an invariant subspace.
EigenResult lanczos(const SymmetricOperator& a, const LanczosOptions& options = {});

struct TraceEstimate {
  double estimate = 0;
  double standard_error = 0;  ///< sample standard deviation / √samples
  int samples = 0;
  std::vector<double> running;  ///< the estimate after each sample
};
/// Hutchinson: tr A ≈ mean of zᵀAz over Rademacher z, with its standard error.
TraceEstimate hutchinson_trace(const SymmetricOperator& a, int samples = 100,
                               std::uint64_t seed = 1);

struct DensityOptions {
  int iterations = 100;         ///< Lanczos steps per run (PyHessian: 100)
  int runs = 1;                 ///< independent Rademacher starts (PyHessian: 1)
  int bins = 1000;              ///< grid points of the broadened density
  double sigma_squared = 1e-5;  ///< Gaussian variance, times max(1, range) (PyHessian)
  std::uint64_t seed = 1;
};
struct SpectralDensity {
  /// Per run: the Ritz values (quadrature nodes) and their weights (squared first components of
  /// the tridiagonal's eigenvectors, summing to 1).
  std::vector<std::vector<double>> nodes;
  std::vector<std::vector<double>> weights;
  std::vector<double> grid;     ///< eigenvalue axis
  std::vector<double> density;  ///< broadened density on the grid (integrates to 1)
  double min_node() const;
  double max_node() const;
  std::string csv() const;  ///< lambda,density
  std::string svg(const std::string& title) const;
};
/// Stochastic Lanczos quadrature (Ghorbani et al. 2019, PyHessian's density).
SpectralDensity slq_density(const SymmetricOperator& a, const DensityOptions& options = {});

/// Every singular value of a (rows ≥ cols), largest first, without singular vectors. Absolute
/// accuracy ε·σ_max, as a dense SVD's; about 4× faster than Eigen's BDCSVD at 128×128.
Eigen::VectorXd singular_values(const Eigen::MatrixXd& a);

extern template class HessianOperator<float>;
extern template class HessianOperator<double>;

}  // namespace rwd
