#include "rewind/autograd/spectra.hpp"

#include <Eigen/Eigenvalues>
#include <Eigen/SVD>
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "rewind/autograd/diagnostics.hpp"

namespace rwd {
namespace {

Eigen::VectorXd random_unit(Index n, std::mt19937_64& rng) {
  std::normal_distribution<double> normal;
  Eigen::VectorXd v(n);
  for (Index i = 0; i < n; ++i) v[i] = normal(rng);
  return v / v.norm();
}

Eigen::VectorXd rademacher(Index n, std::mt19937_64& rng) {
  std::bernoulli_distribution coin(0.5);
  Eigen::VectorXd v(n);
  for (Index i = 0; i < n; ++i) v[i] = coin(rng) ? 1.0 : -1.0;
  return v;
}

void check_operator(const SymmetricOperator& a, const char* who) {
  if (a.size < 1 || !a.apply) {
    throw UsageError(fmt::format("{}: the operator is empty (size {})", who, a.size));
  }
}

// The Lanczos recurrence with full reorthogonalisation (classical Gram-Schmidt twice against
// every earlier vector: in floating point one pass is not enough to keep them orthogonal), from
// `start` (unit), for at most `steps` steps or until `done(alpha, beta, m)` says so. Returns
// the Lanczos vectors (columns) and the tridiagonal's diagonal and off-diagonal.
struct Tridiagonal {
  Eigen::MatrixXd v;
  std::vector<double> alpha, beta;  // beta[j] couples vectors j and j + 1
  int products = 0;
  bool invariant = false;  // β hit zero: the Krylov space is invariant, Ritz pairs are exact
};

template <class Done>
Tridiagonal lanczos_steps(const SymmetricOperator& a, const Eigen::VectorXd& start, int steps,
                          Done&& done) {
  Tridiagonal t;
  const Index n = a.size;
  steps = static_cast<int>(std::min<Index>(steps, n));
  t.v.resize(n, std::min(steps, 64));  // grows by doubling: most runs stop early
  t.v.col(0) = start;
  for (int j = 0; j < steps; ++j) {
    Eigen::VectorXd w = a.apply(t.v.col(j));
    ++t.products;
    const double alpha = t.v.col(j).dot(w);
    t.alpha.push_back(alpha);
    for (int pass = 0; pass < 2; ++pass) {
      const auto basis = t.v.leftCols(j + 1);
      w -= basis * (basis.transpose() * w);
    }
    const double beta = w.norm();
    if (done(t, beta) || j + 1 == steps) {
      t.beta.push_back(beta);
      t.v.conservativeResize(n, j + 1);
      break;
    }
    // Relative to the spectrum's scale seen so far: a tiny β means the space is invariant.
    double scale = 0;
    for (double x : t.alpha) scale = std::max(scale, std::abs(x));
    for (double x : t.beta) scale = std::max(scale, x);
    if (beta <= 1e-14 * std::max(scale, 1e-300)) {
      t.invariant = true;
      t.beta.push_back(beta);
      t.v.conservativeResize(n, j + 1);
      break;
    }
    t.beta.push_back(beta);
    if (t.v.cols() == j + 1) t.v.conservativeResize(n, std::min<Index>(2 * t.v.cols(), steps));
    t.v.col(j + 1) = w / beta;
  }
  return t;
}

Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> solve_tridiagonal(const Tridiagonal& t,
                                                                 bool vectors) {
  const auto m = static_cast<Index>(t.alpha.size());
  Eigen::VectorXd d = Eigen::Map<const Eigen::VectorXd>(t.alpha.data(), m);
  Eigen::VectorXd e(std::max<Index>(m - 1, 0));
  for (Index i = 0; i + 1 < m; ++i) e[i] = t.beta[static_cast<std::size_t>(i)];
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es;
  es.computeFromTridiagonal(d, e, vectors ? Eigen::ComputeEigenvectors : Eigen::EigenvaluesOnly);
  return es;
}

// Indices of the wanted Ritz values, best first (eigenvalues come sorted ascending).
std::vector<Index> wanted(const Eigen::VectorXd& values, int top, bool by_magnitude) {
  std::vector<Index> idx(static_cast<std::size_t>(values.size()));
  std::iota(idx.begin(), idx.end(), Index{0});
  std::stable_sort(idx.begin(), idx.end(), [&](Index a, Index b) {
    return by_magnitude ? std::abs(values[a]) > std::abs(values[b]) : values[a] > values[b];
  });
  idx.resize(std::min<std::size_t>(idx.size(), static_cast<std::size_t>(top)));
  return idx;
}

}  // namespace

// ---- the Hessian operator -----------------------------------------------------------------------

template <class T>
HessianOperator<T>::HessianOperator(Tape<T>& tape, const Var<T>& loss,
                                    std::vector<Parameter<T>*> params)
    : tape_(&tape), loss_(loss), params_(std::move(params)) {
  if (!loss.valid() || &loss.tape() != &tape) {
    throw UsageError("HessianOperator: the loss is not a live node of this tape");
  }
  if (loss.rows() != 1 || loss.cols() != 1) {
    throw UsageError(fmt::format("HessianOperator: the loss must be 1x1, got {}", loss.shape()));
  }
  if (params_.empty()) throw UsageError("HessianOperator: no parameters");
  for (Parameter<T>* p : params_) {
    const auto leaf = tape.find_param(*p);
    if (!leaf) {
      throw UsageError(fmt::format(
          "HessianOperator: parameter '{}' is not recorded on the loss's tape", p->name));
    }
    leaves_.push_back(*leaf);
    size_ += p->size();
  }
}

template <class T>
Eigen::VectorXd HessianOperator<T>::apply(const Eigen::VectorXd& v) {
  if (v.size() != size_) {
    throw ShapeError(fmt::format("HessianOperator: vector has {} entries, the Hessian is {}x{}",
                                 v.size(), size_, size_));
  }
  std::vector<Matrix<T>> saved;
  saved.reserve(params_.size());
  Index at = 0;
  for (Parameter<T>* p : params_) {
    saved.push_back(std::move(p->tangent));
    p->tangent = Eigen::Map<const Matrix<double>>(v.data() + at, p->value.rows(), p->value.cols())
                     .template cast<T>();
    at += p->size();
  }
  // Parameters outside the set must not contribute a direction: their tangents are zero here.
  struct Restore {
    std::vector<Parameter<T>*>& ps;
    std::vector<Matrix<T>>& old;
    ~Restore() {
      for (std::size_t k = 0; k < ps.size(); ++k) ps[k]->tangent = std::move(old[k]);
    }
  } restore{params_, saved};
  tape_->hvp(loss_, {.accumulate_parameters = false});
  ++products_;
  return gather([&](std::size_t leaf) { return tape_->grad_tangent(leaf); });
}

template <class T>
Eigen::VectorXd HessianOperator<T>::gradient() {
  tape_->backward(loss_, {.accumulate_parameters = false});
  return gather([&](std::size_t leaf) { return tape_->grad(leaf); });
}

template <class T>
template <class Read>
Eigen::VectorXd HessianOperator<T>::gather(Read&& read) const {
  Eigen::VectorXd out(size_);
  Index at = 0;
  for (std::size_t k = 0; k < params_.size(); ++k) {
    const Index n = params_[k]->size();
    const std::optional<ConstMap<T>> m = read(leaves_[k]);
    if (m) {
      out.segment(at, n) = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, 1>>(m->data(), n)
                               .template cast<double>();
    } else {
      out.segment(at, n).setZero();  // nothing reached the parameter
    }
    at += n;
  }
  return out;
}

template <class T>
Eigen::MatrixXd HessianOperator<T>::dense() {
  Eigen::MatrixXd h(size_, size_);
  Eigen::VectorXd e = Eigen::VectorXd::Zero(size_);
  for (Index j = 0; j < size_; ++j) {
    e[j] = 1;
    h.col(j) = apply(e);
    e[j] = 0;
  }
  return h;
}

template <class T>
SymmetricOperator HessianOperator<T>::op() {
  return {size_, [this](const Eigen::VectorXd& v) { return apply(v); }};
}

template class HessianOperator<float>;
template class HessianOperator<double>;

// ---- eigenvalues --------------------------------------------------------------------------------

std::string EigenResult::to_string() const {
  std::string out = fmt::format(
      "{} eigenpair{} after {} products ({} iterations){}:", values.size(),
      values.size() == 1 ? "" : "s", products, iterations, converged ? "" : ", NOT converged");
  for (std::size_t i = 0; i < values.size(); ++i)
    out += fmt::format("\n  λ{} = {:.12g}  residual {:.3g}", i + 1, values[i], residuals[i]);
  return out;
}

EigenResult power_iteration(const SymmetricOperator& a, const PowerOptions& options) {
  check_operator(a, "power_iteration");
  if (options.top < 1 || options.top > a.size) {
    throw UsageError(
        fmt::format("power_iteration: top {} is outside [1, {}]", options.top, a.size));
  }
  std::mt19937_64 rng(options.seed);
  EigenResult r;
  r.converged = true;
  for (int k = 0; k < options.top; ++k) {
    const auto deflate = [&](Eigen::VectorXd& v) {
      for (const Eigen::VectorXd& u : r.vectors) v -= u.dot(v) * u;
    };
    Eigen::VectorXd v = random_unit(a.size, rng);
    deflate(v);
    v.normalize();
    double lambda = 0;
    bool done = false;
    Eigen::VectorXd av;
    for (int it = 0; it < options.max_iterations && !done; ++it) {
      av = a.apply(v);
      ++r.products;
      ++r.iterations;
      deflate(av);  // the operator restricted to the complement of the pairs found
      const double next = v.dot(av);
      done = it > 0 && std::abs(next - lambda) <= options.tolerance * std::abs(next);
      lambda = next;
      const double norm = av.norm();
      if (norm == 0) break;  // v is in the null space: λ = 0
      if (!done) v = av / norm;
    }
    r.converged = r.converged && done;
    r.values.push_back(lambda);
    Eigen::VectorXd res = a.apply(v) - lambda * v;
    ++r.products;
    r.residuals.push_back(res.norm());
    r.vectors.push_back(v);
  }
  return r;
}

EigenResult lanczos(const SymmetricOperator& a, const LanczosOptions& options) {
  check_operator(a, "lanczos");
  if (options.top < 1 || options.top > a.size) {
    throw UsageError(fmt::format("lanczos: top {} is outside [1, {}]", options.top, a.size));
  }
  std::mt19937_64 rng(options.seed);
  const int steps = options.max_iterations > 0 ? options.max_iterations
                                               : static_cast<int>(std::min<Index>(a.size, 1 << 30));
  bool converged = false;
  // After each step: are the wanted Ritz pairs' residuals |β_m s_{m,i}| small enough?
  const auto done = [&](const Tridiagonal& t, double beta) {
    const auto m = static_cast<int>(t.alpha.size());
    if (m < options.top) return false;
    if (m > 100 && m % (m / 20) != 0) return false;  // the check costs O(m²): not every step
    Tridiagonal probe;
    probe.alpha = t.alpha;
    probe.beta = t.beta;
    const auto es = solve_tridiagonal(probe, true);
    const Eigen::VectorXd& theta = es.eigenvalues();
    const double scale = std::max(std::abs(theta[0]), std::abs(theta[theta.size() - 1]));
    for (Index i : wanted(theta, options.top, options.by_magnitude)) {
      const double residual = beta * std::abs(es.eigenvectors()(theta.size() - 1, i));
      if (residual > options.tolerance * std::max(scale, 1e-300)) return false;
    }
    converged = true;
    return true;
  };
  const Tridiagonal t = lanczos_steps(a, random_unit(a.size, rng), steps, done);
  const auto es = solve_tridiagonal(t, true);
  EigenResult r;
  r.products = t.products;
  r.iterations = static_cast<int>(t.alpha.size());
  r.converged = converged || t.invariant || r.iterations == a.size;
  for (Index i : wanted(es.eigenvalues(), options.top, options.by_magnitude)) {
    Eigen::VectorXd u = t.v * es.eigenvectors().col(i);
    u.normalize();
    r.values.push_back(es.eigenvalues()[i]);
    r.residuals.push_back(t.beta.back() *
                          std::abs(es.eigenvectors()(es.eigenvalues().size() - 1, i)));
    r.vectors.push_back(std::move(u));
  }
  return r;
}

TraceEstimate hutchinson_trace(const SymmetricOperator& a, int samples, std::uint64_t seed) {
  check_operator(a, "hutchinson_trace");
  if (samples < 2) {
    throw UsageError(
        fmt::format("hutchinson_trace: {} samples: need at least 2 for a standard error", samples));
  }
  std::mt19937_64 rng(seed);
  TraceEstimate r;
  RunningMean sample;
  for (int s = 1; s <= samples; ++s) {
    const Eigen::VectorXd z = rademacher(a.size, rng);
    sample.add(z.dot(a.apply(z)));
    r.running.push_back(sample.mean);
  }
  r.samples = samples;
  r.estimate = sample.mean;
  r.standard_error = sample.standard_error();
  return r;
}

// ---- singular values
// ------------------------------------------------------------------------------

// NOTE: for speed. Eigen's BDCSVD spends most of a values-only 128×128 SVD outside the
// bidiagonalisation (3.3 ms against 0.5 ms; jacobians_through_time runs one per time step).
// Here: Householder bidiagonalisation B = Uᵀ·A·V (Eigen's own, internal::UpperBidiagonalization,
// which Eigen 3.4 does not document as public API), then the eigenvalues of B's Golub-Kahan
// matrix (zero diagonal, off-diagonals d₁, e₁, d₂, e₂, …, d_n), which are ±σ_i, by Eigen's
// symmetric tridiagonal QR. Both steps are backward stable: every σ_i to within ε·σ_max, as
// with a dense SVD (tests/layers/spectra_test.cpp compares with JacobiSVD).
Eigen::VectorXd singular_values(const Eigen::MatrixXd& a) {
  if (a.rows() < a.cols()) return singular_values(a.transpose());
  const Index n = a.cols();
  if (n == 0) return {};
  const Eigen::internal::UpperBidiagonalization<Eigen::MatrixXd> bidiagonal(a);
  const Eigen::MatrixXd b = bidiagonal.bidiagonal().toDenseMatrix();
  Eigen::VectorXd diagonal = Eigen::VectorXd::Zero(2 * n), off(2 * n - 1);
  for (Index i = 0; i < n; ++i) {
    off[2 * i] = b(i, i);
    if (i + 1 < n) off[2 * i + 1] = b(i, i + 1);
  }
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es;
  es.computeFromTridiagonal(diagonal, off, Eigen::EigenvaluesOnly);
  Eigen::VectorXd sv = es.eigenvalues().tail(n).reverse();
  return sv.cwiseMax(0.0);  // a zero σ may come out as −0 or −ε
}

// ---- spectral density
// -----------------------------------------------------------------------------

SpectralDensity slq_density(const SymmetricOperator& a, const DensityOptions& options) {
  check_operator(a, "slq_density");
  if (options.iterations < 1 || options.runs < 1 || options.bins < 2 ||
      !(options.sigma_squared > 0)) {
    throw UsageError(fmt::format(
        "slq_density: iterations {}, runs {}, bins {}, sigma_squared {}: need iterations ≥ 1, "
        "runs ≥ 1, bins ≥ 2, sigma_squared > 0",
        options.iterations, options.runs, options.bins, options.sigma_squared));
  }
  std::mt19937_64 rng(options.seed);
  SpectralDensity d;
  for (int run = 0; run < options.runs; ++run) {
    Eigen::VectorXd start = rademacher(a.size, rng);
    start /= start.norm();
    const Tridiagonal t = lanczos_steps(a, start, options.iterations,
                                        [](const Tridiagonal&, double) { return false; });
    const auto es = solve_tridiagonal(t, true);
    std::vector<double> nodes, weights;
    for (Index i = 0; i < es.eigenvalues().size(); ++i) {
      nodes.push_back(es.eigenvalues()[i]);
      weights.push_back(es.eigenvectors()(0, i) * es.eigenvectors()(0, i));
    }
    d.nodes.push_back(std::move(nodes));
    d.weights.push_back(std::move(weights));
  }
  // Broadened as PyHessian's density_generate: a grid 1% beyond the extreme nodes, Gaussians of
  // variance σ²·max(1, range), averaged over the runs and normalised to integrate to one.
  const double lo = d.min_node() - 0.01, hi = d.max_node() + 0.01;
  const double sigma = options.sigma_squared * std::max(1.0, hi - lo);
  const double step = (hi - lo) / (options.bins - 1);
  d.grid.resize(static_cast<std::size_t>(options.bins));
  d.density.assign(d.grid.size(), 0.0);
  for (std::size_t g = 0; g < d.grid.size(); ++g) d.grid[g] = lo + step * static_cast<double>(g);
  for (std::size_t run = 0; run < d.nodes.size(); ++run) {
    for (std::size_t i = 0; i < d.nodes[run].size(); ++i) {
      for (std::size_t g = 0; g < d.grid.size(); ++g) {
        const double x = d.grid[g] - d.nodes[run][i];
        d.density[g] += d.weights[run][i] * std::exp(-x * x / (2 * sigma)) /
                        std::sqrt(2 * M_PI * sigma) / static_cast<double>(d.nodes.size());
      }
    }
  }
  const double total = std::accumulate(d.density.begin(), d.density.end(), 0.0) * step;
  if (total > 0) {
    for (double& x : d.density) x /= total;
  }
  return d;
}

double SpectralDensity::min_node() const {
  double m = std::numeric_limits<double>::infinity();
  for (const auto& run : nodes) {
    for (double x : run) m = std::min(m, x);
  }
  return m;
}

double SpectralDensity::max_node() const {
  double m = -std::numeric_limits<double>::infinity();
  for (const auto& run : nodes) {
    for (double x : run) m = std::max(m, x);
  }
  return m;
}

std::string SpectralDensity::csv() const {
  std::string out = "lambda,density\n";
  for (std::size_t g = 0; g < grid.size(); ++g)
    out += fmt::format("{:.9g},{:.9g}\n", grid[g], density[g]);
  return out;
}

std::string SpectralDensity::svg(const std::string& title) const {
  std::vector<double> positive;  // log scale: the density's dynamic range is many decades
  for (double x : density) positive.push_back(std::max(x, 1e-12));
  PlotSeries s{"density", positive, false};
  s.x = grid;
  return line_plot_svg(title, "eigenvalue", "density (log scale)", {s}, true);
}

}  // namespace rwd
