// Spectra against dense and finite-difference references: Hessian eigenvalues, trace and density
// of a small adding-problem LSTM against the dense Hessian; exact Jacobians through time against
// finite differences; Lyapunov exponents against log|det J| and against a linear map's
// eigenvalues, and the order-to-chaos transition of a random tanh network.
#include <Eigen/Eigenvalues>
#include <Eigen/SVD>
#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <rewind/rewind.hpp>
#include <set>
#include <sstream>

#include "support.hpp"

using namespace rwd;
using M = Matrix<double>;

namespace {

// The adding problem: two channels, (value in [0, 1), marker); the target is the sum of the two
// marked values.
struct Adding {
  std::vector<M> xs;
  M target;
};
Adding adding_batch(Index batch, Index steps, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0, 1);
  Adding a{std::vector<M>(static_cast<std::size_t>(steps), M::Zero(batch, 2)), M::Zero(batch, 1)};
  for (Index b = 0; b < batch; ++b) {
    const Index i = static_cast<Index>(u(rng) * static_cast<double>(steps / 2));
    const Index j = steps / 2 + static_cast<Index>(u(rng) * static_cast<double>(steps / 2));
    for (Index t = 0; t < steps; ++t) {
      auto& x = a.xs[static_cast<std::size_t>(t)];
      x(b, 0) = u(rng);
      if (t == i || t == j) {
        x(b, 1) = 1;
        a.target(b, 0) += x(b, 0);
      }
    }
  }
  return a;
}

// An LSTM (2 → 14) with a linear head on the adding problem: 4·14·(2 + 14 + 2) + 15 = 1023
// parameters.
struct AddingModel {
  std::mt19937_64 rng{5};
  layers::LstmCell<double> cell{{.input = 2, .hidden = 14}, rng};
  layers::Linear<double> head{{.in = 14, .out = 1}, rng};
  Adding data = adding_batch(6, 8, rng);
  std::vector<Parameter<double>*> params() {
    auto p = cell.named_parameters();
    for (Parameter<double>* q : head.named_parameters()) p.push_back(q);
    return p;
  }
  Var<double> record(Tape<double>& tape) {
    std::vector<Var<double>> xs;
    for (const M& x : data.xs) xs.push_back(tape.constant(x));
    auto run = layers::unroll(cell, tape, std::span<const Var<double>>(xs),
                              layers::zero_state(cell, tape, data.target.rows()));
    return mse(head(tape, run.state[0]), tape.constant(data.target));
  }
};

struct DenseHessian {
  AddingModel model;
  Tape<double> tape;
  Var<double> loss = model.record(tape);
  HessianOperator<double> h{tape, loss, model.params()};
  M dense = h.dense();
  Eigen::VectorXd eigenvalues;  // ascending
  DenseHessian() {
    // The dense matrix is symmetric up to rounding; its symmetric part is the reference.
    const Eigen::MatrixXd sym = (dense + dense.transpose()) / 2;
    eigenvalues =
        Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>(sym, Eigen::EigenvaluesOnly).eigenvalues();
  }
};

DenseHessian& dense_hessian() {
  static DenseHessian d;  // n HVPs and one n×n eigensolve, shared by the Hessian tests
  return d;
}

double relative(double a, double b) { return std::abs(a - b) / std::max(std::abs(b), 1e-300); }

}  // namespace

BOOST_AUTO_TEST_SUITE(spectra)

BOOST_AUTO_TEST_CASE(hessian_is_symmetric_and_matches_differences_of_the_gradient) {
  DenseHessian& d = dense_hessian();
  BOOST_TEST(d.h.size() >= 1000);
  BOOST_TEST(d.h.size() <= 3000);
  const double scale = d.dense.cwiseAbs().maxCoeff();
  BOOST_TEST((d.dense - d.dense.transpose()).cwiseAbs().maxCoeff() <= 1e-12 * scale);
  // A few columns against central differences of the gradient (an independent reference).
  Tape<double> tape;
  AddingModel& m = d.model;
  for (Index j : {Index{0}, Index{500}, d.h.size() - 1}) {
    Index at = j;
    Parameter<double>* p = nullptr;
    for (Parameter<double>* q : m.params()) {
      if (at < q->size()) {
        p = q;
        break;
      }
      at -= q->size();
    }
    const double eps = 1e-5, keep = p->value.data()[at];
    Eigen::VectorXd g[2];
    for (int s = 0; s < 2; ++s) {
      p->value.data()[at] = keep + (s == 0 ? eps : -eps);
      tape.clear();
      const Var<double> loss = m.record(tape);
      g[s] = HessianOperator<double>(tape, loss, m.params()).gradient();
    }
    p->value.data()[at] = keep;
    const Eigen::VectorXd fd = (g[0] - g[1]) / (2 * eps);
    BOOST_TEST((fd - d.dense.col(j)).cwiseAbs().maxCoeff() <= 1e-7 * std::max(1.0, scale),
               "column " << j);
  }
}

BOOST_AUTO_TEST_CASE(lanczos_top_five_match_the_dense_eigenvalues) {
  DenseHessian& d = dense_hessian();
  const EigenResult r = lanczos(d.h.op(), {.top = 5, .tolerance = 1e-12});
  BOOST_TEST_MESSAGE("Lanczos top 5: " << r.to_string());
  BOOST_TEST(r.converged);
  const Index n = d.eigenvalues.size();
  for (int i = 0; i < 5; ++i) {
    const double exact = d.eigenvalues[n - 1 - i];
    BOOST_TEST(
        relative(r.values[static_cast<std::size_t>(i)], exact) <= 1e-8,
        "λ" << i + 1 << " = " << r.values[static_cast<std::size_t>(i)] << ", dense " << exact);
    // The eigenvector: ‖H·u − λ·u‖ small, measured with a product of its own.
    const Eigen::VectorXd hu = d.dense * r.vectors[static_cast<std::size_t>(i)];
    BOOST_TEST((hu - exact * r.vectors[static_cast<std::size_t>(i)]).norm() <=
               1e-6 * std::abs(d.eigenvalues[n - 1]));
  }
}

BOOST_AUTO_TEST_CASE(lanczos_finds_the_top_eigenvalue_within_30_products) {
  DenseHessian& d = dense_hessian();
  const EigenResult r = lanczos(d.h.op(), {.top = 1, .max_iterations = 30, .tolerance = 1e-9});
  BOOST_TEST_MESSAGE("top eigenvalue: " << r.to_string());
  BOOST_TEST(r.products <= 30);
  BOOST_TEST(relative(r.values[0], d.eigenvalues[d.eigenvalues.size() - 1]) <= 1e-8);
}

BOOST_AUTO_TEST_CASE(power_iteration_with_deflation_finds_the_largest_magnitudes) {
  DenseHessian& d = dense_hessian();
  std::vector<double> by_magnitude(d.eigenvalues.data(),
                                   d.eigenvalues.data() + d.eigenvalues.size());
  std::sort(by_magnitude.begin(), by_magnitude.end(),
            [](double a, double b) { return std::abs(a) > std::abs(b); });
  const EigenResult r =
      power_iteration(d.h.op(), {.top = 2, .max_iterations = 2000, .tolerance = 1e-12});
  BOOST_TEST_MESSAGE("power iteration: " << r.to_string());
  for (int i = 0; i < 2; ++i) {
    BOOST_TEST(relative(r.values[static_cast<std::size_t>(i)],
                        by_magnitude[static_cast<std::size_t>(i)]) <= 1e-6);
  }
}

BOOST_AUTO_TEST_CASE(hutchinson_is_within_three_standard_errors_of_the_trace) {
  DenseHessian& d = dense_hessian();
  const double exact = d.dense.trace();
  const TraceEstimate t = hutchinson_trace(d.h.op(), 100, 11);
  BOOST_TEST_MESSAGE("trace " << exact << ", Hutchinson " << t.estimate << " ± "
                              << t.standard_error);
  BOOST_TEST(t.standard_error > 0);
  BOOST_TEST(std::abs(t.estimate - exact) <= 3 * t.standard_error);
  BOOST_TEST(t.running.size() == 100u);
}

BOOST_AUTO_TEST_CASE(density_extremes_match_the_dense_spectrum) {
  DenseHessian& d = dense_hessian();
  const SpectralDensity s = slq_density(d.h.op(), {});  // PyHessian's defaults: 100 iterations
  const double lo = d.eigenvalues[0], hi = d.eigenvalues[d.eigenvalues.size() - 1];
  BOOST_TEST_MESSAGE("density nodes [" << s.min_node() << ", " << s.max_node() << "], dense [" << lo
                                       << ", " << hi << "]");
  BOOST_TEST(std::abs(s.max_node() - hi) <= 1e-6);
  BOOST_TEST(std::abs(s.min_node() - lo) <= 1e-6);
  double weights = 0;
  for (double w : s.weights[0]) weights += w;
  BOOST_TEST(std::abs(weights - 1) <= 1e-12);
  double integral = 0;
  for (std::size_t g = 1; g < s.grid.size(); ++g)
    integral += s.density[g] * (s.grid[g] - s.grid[g - 1]);
  BOOST_TEST(std::abs(integral - 1) <= 1e-3);
  BOOST_TEST(s.svg("density").rfind("<svg", 0) == 0);
}

namespace {

// The x coordinates of an SVG's polylines' points, and its frame (the first rect with a stroke).
struct PlotGeometry {
  double frame_left = 0, frame_right = 0;
  std::vector<std::vector<double>> xs;       // per polyline
  std::vector<std::string> strokes, dashes;  // per polyline ("" for no dasharray)
};
PlotGeometry geometry(const std::string& svg) {
  PlotGeometry g;
  const auto attribute = [](const std::string& tag, const std::string& name) {
    const auto at = tag.find(" " + name + "=\"");
    if (at == std::string::npos) return std::string();
    const auto begin = at + name.size() + 3;
    return tag.substr(begin, tag.find('"', begin) - begin);
  };
  std::size_t at = svg.find("<rect x=");
  BOOST_REQUIRE(at != std::string::npos);
  const std::string frame = svg.substr(at, svg.find('>', at) - at);
  g.frame_left = std::stod(attribute(frame, "x"));
  g.frame_right = g.frame_left + std::stod(attribute(frame, "width"));
  for (at = svg.find("<polyline"); at != std::string::npos; at = svg.find("<polyline", at + 1)) {
    const std::string tag = svg.substr(at, svg.find('>', at) - at);
    std::vector<double> xs;
    std::istringstream points(attribute(tag, "points"));
    std::string point;
    while (points >> point) xs.push_back(std::stod(point.substr(0, point.find(','))));
    g.xs.push_back(xs);
    g.strokes.push_back(attribute(tag, "stroke"));
    g.dashes.push_back(attribute(tag, "stroke-dasharray"));
  }
  return g;
}

}  // namespace

// The density's extreme eigenvalues (an outlier's peak) are drawn inside the frame, not on it.
BOOST_AUTO_TEST_CASE(density_plot_keeps_the_extremes_off_the_frame) {
  DenseHessian& d = dense_hessian();
  const SpectralDensity s = slq_density(d.h.op(), {.iterations = 20});
  const PlotGeometry g = geometry(s.svg("density"));
  BOOST_REQUIRE(g.xs.size() == 1u);
  const auto [lo, hi] = std::minmax_element(g.xs[0].begin(), g.xs[0].end());
  BOOST_TEST_MESSAGE("frame [" << g.frame_left << ", " << g.frame_right << "], points [" << *lo
                               << ", " << *hi << "]");
  BOOST_TEST(*lo >= g.frame_left + 5);
  BOOST_TEST(*hi <= g.frame_right - 5);
}

// σ_max, σ_median and σ_min of one series: one colour, three different dashes.
BOOST_AUTO_TEST_CASE(jacobian_plot_tells_the_three_singular_values_apart) {
  JacobianReport r;
  r.series.push_back({"layer0/fwd", false, {{3, 2, 1}, {2, 1, 0.5}, {1, 0.5, 0.1}}, {}, {}, {}});
  r.series.push_back({"layer0/bwd", true, {{4, 2, 1}, {2, 1, 0.5}, {1, 0.4, 0.1}}, {}, {}, {}});
  const PlotGeometry g = geometry(r.svg("jacobians"));
  BOOST_REQUIRE(g.xs.size() == 7u);  // 2 series x 3, and the rounding line
  std::set<std::pair<std::string, std::string>> styles;
  for (std::size_t k = 0; k < 6; ++k) styles.insert({g.strokes[k], g.dashes[k]});
  BOOST_TEST(styles.size() == 6u);
  for (std::size_t series = 0; series < 2; ++series) {
    BOOST_TEST(g.strokes[3 * series] == g.strokes[3 * series + 1]);
    BOOST_TEST(g.strokes[3 * series] == g.strokes[3 * series + 2]);
    BOOST_TEST(g.dashes[3 * series].empty());
    BOOST_TEST(g.dashes[3 * series + 1] != g.dashes[3 * series + 2]);
  }
}

BOOST_AUTO_TEST_CASE(hessian_operator_errors_are_clear) {
  AddingModel m;
  Tape<double> tape;
  const Var<double> loss = m.record(tape);
  Parameter<double> stray("stray", M::Ones(2, 2));
  test::expect_message<UsageError>(
      [&] { HessianOperator<double>(tape, loss, {&stray}); },
      "HessianOperator: parameter 'stray' is not recorded on the loss's tape");
  HessianOperator<double> h(tape, loss, m.params());
  test::expect_message<ShapeError>([&] { (void)h.apply(Eigen::VectorXd::Zero(3)); },
                                   fmt::format("HessianOperator: vector has 3 entries, the "
                                               "Hessian is {}x{}",
                                               h.size(), h.size()));
  test::expect_message<UsageError>([&] { (void)lanczos(h.op(), {.top = 0}); },
                                   fmt::format("lanczos: top 0 is outside [1, {}]", h.size()));
  // Products leave the parameters' gradients and tangents as they were.
  BOOST_TEST(m.cell.weight_hh.grad.size() == 0);
  BOOST_TEST(m.cell.weight_hh.tangent.size() == 0);
  BOOST_TEST(m.cell.weight_hh.grad_tangent.size() == 0);
}

BOOST_AUTO_TEST_CASE(singular_values_match_jacobi_svd_on_a_graded_matrix) {
  std::mt19937_64 rng(23);
  std::normal_distribution<double> normal;
  for (const auto& [rows, cols] : {std::pair<Index, Index>{128, 128}, {40, 17}, {17, 40}, {1, 1}}) {
    const Index n = std::min(rows, cols);
    const auto orthonormal = [&](Index m) {
      const Eigen::MatrixXd g = Eigen::MatrixXd::NullaryExpr(m, m, [&] { return normal(rng); });
      return Eigen::MatrixXd(Eigen::HouseholderQR<Eigen::MatrixXd>(g).householderQ());
    };
    Eigen::VectorXd s(n);  // from 1 down to 1e-10, as ∂h_T/∂h_t far from T
    for (Index i = 0; i < n; ++i) s[i] = std::pow(10.0, n > 1 ? -10.0 * i / (n - 1) : 0.0);
    Eigen::MatrixXd a =
        orthonormal(rows).leftCols(n) * s.asDiagonal() * orthonormal(cols).leftCols(n).transpose();
    const Eigen::VectorXd ours = singular_values(a);
    const Eigen::VectorXd jacobi = Eigen::JacobiSVD<Eigen::MatrixXd>(a).singularValues();
    BOOST_TEST(ours.size() == n);
    BOOST_TEST((ours - jacobi).cwiseAbs().maxCoeff() <= 1e-13, rows << "x" << cols);
    BOOST_TEST((ours - s).cwiseAbs().maxCoeff() <= 1e-13, rows << "x" << cols);
  }
}

// ---- Jacobians through time ---------------------------------------------------------------------

namespace {

// ∂h_T/∂h_t of an LSTM (from one reverse block sweep) against two references. At every step:
// forward mode, the Jacobian from a block tangent sweep seeded at h_t (other rules, the other
// direction), Frobenius norm and every σ_i to 1e-10 relative. At the steps `fd_steps` (all if
// empty): central differences, the Frobenius norm to 1e-6 relative and every σ_i to
// 1e-7·σ_max (when `every_sigma`). Central differences cannot resolve a Jacobian far below their
// own error (≈ 1e-10 absolute per entry): a 128-unit LSTM's ‖∂h_50/∂h_0‖_F is 3e-10. And the
// Hutchinson estimate within 3 of its standard errors.
void check_jacobians(Index in, Index hidden, Index steps, Index batch, Index sample,
                     std::vector<Index> fd_steps, bool every_sigma) {
  std::mt19937_64 rng(9);
  layers::LstmCell<double> cell({.input = in, .hidden = hidden}, rng);
  std::vector<M> xs;
  std::normal_distribution<double> normal;
  for (Index t = 0; t < steps; ++t) {
    M x(batch, in);
    for (Index i = 0; i < x.size(); ++i) x.data()[i] = normal(rng);
    xs.push_back(x);
  }
  // h_T with δ added to the sample's row of h_t (the output of step t) before step t + 1; with
  // `cut`, h_t is re-recorded there as an input (same value) for forward mode to seed.
  Var<double> cut_input, final_h;
  const auto run = [&](Tape<double>& tape, Index perturbed, const Eigen::VectorXd& delta,
                       std::vector<Var<double>>* hs, bool cut = false) {
    auto s = layers::zero_state(cell, tape, batch);
    for (Index t = 0; t < steps; ++t) {
      auto scope = tape.scope(fmt::format("t{}", t));
      s = cell.step(tape, tape.constant(xs[static_cast<std::size_t>(t)]), s);
      if (cut && t == perturbed) {
        s[0] = tape.input(s[0].value(), "h_t");
        cut_input = s[0];
      } else if (t == perturbed) {
        M d = M::Zero(batch, hidden);
        d.row(sample) = delta.transpose();
        s[0] = add(s[0], tape.constant(d));
      }
      if (hs) hs->push_back(s[0]);
    }
    final_h = s[0];
    return M(s[0].value().row(sample));
  };
  // The series: h_t of an unperturbed recording (the parameters make every h_t need a gradient).
  Tape<double> rec;
  std::vector<Var<double>> states;
  run(rec, -1, Eigen::VectorXd::Zero(hidden), &states);
  const JacobianReport r =
      jacobians_through_time(rec, {{"", states, false}}, {.sample = sample, .probes = 64});
  BOOST_TEST_MESSAGE(r.summary());
  const auto& series = r.series.at(0);
  for (Index t = 0; t < steps; ++t) {
    Tape<double> fwd;
    run(fwd, t, Eigen::VectorXd(), nullptr, true);
    const Var<double> last = final_h;
    M seeds = M::Zero(hidden * batch, hidden);
    for (Index j = 0; j < hidden; ++j) seeds(j * batch + sample, j) = 1;
    fwd.set_block_tangent(cut_input, seeds);
    fwd.jvp_block(hidden);
    const M tangents = fwd.block_tangent(last);  // block j: J·e_j, column j of ∂h_T/∂h_t
    Eigen::MatrixXd forward(hidden, hidden);
    for (Index j = 0; j < hidden; ++j)
      forward.col(j) = tangents.row(j * batch + sample).transpose();
    const std::size_t k = static_cast<std::size_t>(t);
    BOOST_TEST(relative(series.frobenius[k], forward.norm()) <= 1e-10, "t = " << t);
    const Eigen::VectorXd sv = Eigen::JacobiSVD<Eigen::MatrixXd>(forward).singularValues();
    for (Index i = 0; i < hidden; ++i) {
      BOOST_TEST(
          std::abs(series.singular_values[k][static_cast<std::size_t>(i)] - sv[i]) <= 1e-10 * sv[0],
          "t = " << t << ", σ" << i + 1);
    }
  }
  if (fd_steps.empty()) {
    for (Index t = 0; t < steps; ++t) fd_steps.push_back(t);
  }
  for (Index t : fd_steps) {
    Eigen::MatrixXd fd(hidden, hidden);
    const double eps = 1e-6;
    for (Index i = 0; i < hidden; ++i) {
      Eigen::VectorXd e = Eigen::VectorXd::Zero(hidden);
      e[i] = eps;
      Tape<double> a, b;
      fd.col(i) = ((run(a, t, e, nullptr) - run(b, t, -e, nullptr)) / (2 * eps)).transpose();
    }
    const double exact = series.frobenius[static_cast<std::size_t>(t)];
    BOOST_TEST_MESSAGE(
        fmt::format("hidden {}, t = {}: ‖J‖_F {:.6e}, relative difference to "
                    "central differences {:.2e}",
                    hidden, t, exact, relative(exact, fd.norm())));
    BOOST_TEST(relative(exact, fd.norm()) <= 1e-6, "t = " << t);
    if (!every_sigma) continue;
    const Eigen::VectorXd sv = Eigen::JacobiSVD<Eigen::MatrixXd>(fd).singularValues();
    for (Index i = 0; i < hidden; ++i) {
      BOOST_TEST(
          std::abs(
              series.singular_values[static_cast<std::size_t>(t)][static_cast<std::size_t>(i)] -
              sv[i]) <= 1e-7 * sv[0],
          "t = " << t << ", σ" << i + 1);
    }
  }
  for (Index t = 0; t < steps; ++t) {
    const double exact = series.frobenius[static_cast<std::size_t>(t)];
    BOOST_TEST(std::abs(series.estimate[static_cast<std::size_t>(t)] - exact) <=
                   3 * series.estimate_error[static_cast<std::size_t>(t)],
               "t = " << t << ": estimate " << series.estimate[static_cast<std::size_t>(t)] << " ± "
                      << series.estimate_error[static_cast<std::size_t>(t)] << ", exact " << exact);
  }
  BOOST_TEST(relative(series.frobenius.back(), std::sqrt(static_cast<double>(hidden))) <= 1e-12);
  BOOST_TEST(r.csv().rfind("series,t,frobenius,estimate,estimate_error,sigma_1,", 0) == 0);
}

}  // namespace

BOOST_AUTO_TEST_CASE(jacobians_through_time_match_finite_differences) {
  check_jacobians(3, 8, 6, 2, 1, {}, true);
}

// The size: a 128-unit LSTM over 50 steps; central differences near and halfway.
BOOST_AUTO_TEST_CASE(jacobians_through_time_of_a_128_unit_lstm_over_50_steps,
                     *boost::unit_test::label("heavy")) {
  check_jacobians(16, 128, 50, 1, 0, {48, 40, 25}, false);
}

// ---- Lyapunov exponents
// -----------------------------------------------------------------------------

namespace {

// h ← W·h (the input is ignored): its Lyapunov exponents are log|eig(W)| when W is normal.
struct LinearCell {
  using Scalar = double;
  using State = std::array<Var<double>, 1>;
  Parameter<double> w;
  State step(Tape<double>& tape, const Var<double>&, const State& s) {
    return {matmul_nt(s[0], tape.param(w))};
  }
  std::array<Index, 1> state_sizes() const { return {w.value.rows()}; }
  Index input_size() const { return 1; }
  std::vector<Parameter<double>*> named_parameters() { return {&w}; }
};

}  // namespace

BOOST_AUTO_TEST_CASE(lyapunov_sum_is_the_mean_log_determinant) {
  std::mt19937_64 rng(13);
  const Index hidden = 6;
  layers::LstmCell<double> cell({.input = 2, .hidden = hidden}, rng);
  const int warmup = 5, steps = 40;
  std::vector<M> inputs;
  std::normal_distribution<double> normal;
  for (int t = 0; t < warmup + steps; ++t)
    inputs.push_back(M::NullaryExpr(1, 2, [&] { return normal(rng); }));
  const layers::LyapunovReport r = layers::lyapunov_spectrum(
      cell, inputs, {},
      {.exponents = 0, .steps = steps, .warmup = warmup, .qr_every = 1, .batches = 4});
  // The reference: J_t column by column from single-direction jvp() sweeps, log|det| by LU.
  std::vector<M> state{M::Zero(1, hidden), M::Zero(1, hidden)};
  double log_det = 0;
  for (int t = 0; t < warmup + steps; ++t) {
    Eigen::MatrixXd j(2 * hidden, 2 * hidden);
    for (Index c = 0; c < 2 * hidden; ++c) {
      Tape<double> tape;
      layers::LstmCell<double>::State s{tape.input(state[0]), tape.input(state[1])};
      M e = M::Zero(1, 2 * hidden);
      e(0, c) = 1;
      tape.set_tangent(s[0], e.leftCols(hidden));
      tape.set_tangent(s[1], e.rightCols(hidden));
      const auto next = cell.step(tape, tape.constant(inputs[static_cast<std::size_t>(t)]), s);
      tape.jvp();
      j.col(c) << next[0].tangent().transpose(), next[1].tangent().transpose();
      if (c + 1 == 2 * hidden) state = {M(next[0].value()), M(next[1].value())};
    }
    if (t >= warmup)
      log_det += std::log(std::abs(Eigen::PartialPivLU<Eigen::MatrixXd>(j).determinant()));
  }
  BOOST_TEST_MESSAGE(fmt::format("Σλ − mean log|det J_t| = {:.3g}", r.sum() - log_det / steps));
  BOOST_TEST(r.exponents.size() == static_cast<std::size_t>(2 * hidden));
  BOOST_TEST(std::abs(r.sum() - log_det / steps) <= 1e-10,
             fmt::format("{:.17g} vs {:.17g}", r.sum(), log_det / steps));
}

BOOST_AUTO_TEST_CASE(lyapunov_of_a_linear_map_is_log_abs_eigenvalues) {
  std::mt19937_64 rng(17);
  const Index n = 6;
  // W = U·D·Uᵀ: symmetric, so normal, with distinct |eigenvalues| (some negative).
  Eigen::MatrixXd a =
      Eigen::MatrixXd::NullaryExpr(n, n, [&] { return std::normal_distribution<double>()(rng); });
  const Eigen::MatrixXd u = Eigen::HouseholderQR<Eigen::MatrixXd>(a).householderQ();
  const Eigen::VectorXd d = (Eigen::VectorXd(n) << 1.3, -1.1, 0.9, 0.7, -0.5, 0.3).finished();
  LinearCell cell{Parameter<double>("w", u * d.asDiagonal() * u.transpose())};
  const layers::LyapunovReport r = layers::lyapunov_spectrum(
      cell, {}, {M::Ones(1, n)}, {.steps = 300, .warmup = 300, .input_std = 0});
  for (Index i = 0; i < n; ++i) {
    BOOST_TEST(
        std::abs(r.exponents[static_cast<std::size_t>(i)] - std::log(std::abs(d[i]))) <= 1e-8,
        "λ" << i + 1 << " = " << r.exponents[static_cast<std::size_t>(i)]
            << ", log|μ| = " << std::log(std::abs(d[i])));
  }
}

BOOST_AUTO_TEST_CASE(random_tanh_network_turns_chaotic_above_gain_one) {
  const Index n = 256;
  double top[2];
  const double gains[2] = {0.8, 1.5};
  for (int k = 0; k < 2; ++k) {
    std::mt19937_64 rng(21);
    layers::RnnCell<double> cell({.input = 1, .hidden = n, .bias = false}, rng);
    std::normal_distribution<double> normal(0, gains[k] / std::sqrt(static_cast<double>(n)));
    cell.weight_hh.value = M::NullaryExpr(n, n, [&] { return normal(rng); });
    M h0(1, n);
    for (Index i = 0; i < n; ++i) h0(0, i) = std::normal_distribution<double>()(rng);
    const layers::LyapunovReport r = layers::lyapunov_spectrum(
        cell, {}, {h0}, {.exponents = 4, .steps = 1000, .warmup = 300, .input_std = 0});
    BOOST_TEST_MESSAGE("gain " << gains[k] << ": " << r.summary());
    top[k] = r.exponents[0];
  }
  BOOST_TEST(top[0] < 0);
  BOOST_TEST(top[1] > 0);
}

BOOST_AUTO_TEST_CASE(lyapunov_errors_are_clear) {
  std::mt19937_64 rng(1);
  layers::RnnCell<double> cell({.input = 2, .hidden = 4}, rng);
  test::expect_message<UsageError>(
      [&] { layers::lyapunov_spectrum(cell, {}, {}, {.exponents = 5}); },
      "lyapunov_spectrum: 5 exponents asked for a 4-dimensional state: need 1 … 4");
  test::expect_message<UsageError>(
      [&] { layers::lyapunov_spectrum(cell, {M::Zero(1, 2)}, {}, {.steps = 10, .warmup = 2}); },
      "lyapunov_spectrum: 1 inputs given for 2 warm-up and 10 averaged steps");
  test::expect_message<ShapeError>(
      [&] { layers::lyapunov_spectrum(cell, {}, {M::Zero(1, 3)}, {.steps = 10}); },
      "lyapunov_spectrum: initial state tensor 0 is 1x3, expected 1x4 (1 tensors)");
}

BOOST_AUTO_TEST_SUITE_END()
