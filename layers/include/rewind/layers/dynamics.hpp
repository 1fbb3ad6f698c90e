// The dynamics of a cell: its Lyapunov spectrum along a trajectory.
//
// A cell is a map s_{t+1} = F(s_t, x_t) on its whole state s (every state tensor, flattened in
// order: an LSTM's h then c, N numbers for one sequence). k ≤ N tangent directions Q are carried
// along the trajectory, J_t·Q by one forward-mode block sweep per step (Tape::jvp_block: one
// product per weight for all k), and re-orthonormalised by a QR decomposition every m steps:
// λ_i = (1/steps)·Σ log R_ii (Benettin et al. 1980; for recurrent networks, Engelken, Wolf &
// Abbott 2020, Vogt et al. 2022). Positive λ_1: nearby trajectories separate (chaos); all
// negative: the cell forgets its initial state. Works for every cell type, custom ones included,
// since it only calls step().
#pragma once

#include <cmath>
#include <functional>
#include <random>
#include <rewind/autograd/diagnostics.hpp>
#include <rewind/layers/cell.hpp>
#include <rewind/layers/init.hpp>
#include <string>
#include <vector>

namespace rwd::layers {

struct LyapunovOptions {
  int exponents = 0;  ///< k, the leading exponents wanted; 0: all N
  int steps = 1000;   ///< steps averaged over
  int warmup = 200;   ///< steps run first, directions evolving, not averaged (transient)
  /// m: re-orthonormalise every m steps (and at the end of the warm-up and the last step).
  /// m > 1 saves QRs but multiplies m Jacobians before each: the smallest exponents then lose
  /// accuracy with the product's conditioning (an LSTM with Σλ ≈ −28: Σλ off by 1e-9 at m = 3,
  /// 5e-14 at m = 1; tests/layers/spectra_test.cpp).
  int qr_every = 1;
  double input_std = 1;  ///< inputs drawn N(0, input_std²) when none are given; 0: x = 0
  int batches = 10;      ///< the averaged steps are cut into this many for the standard error
  std::uint64_t seed = 1;
  /// Called now and then with (steps done, steps in all), for a progress line.
  std::function<void(int, int)> progress;
};

struct LyapunovReport {
  Index state_size = 0;
  int steps = 0, warmup = 0, qr_every = 1;
  std::vector<double> exponents;       ///< λ_1 ≥ λ_2 ≥ … per step (natural log)
  std::vector<double> standard_error;  ///< per exponent, from the batch means
  /// Convergence: the running estimate of every exponent after running_steps[r] averaged steps.
  std::vector<int> running_steps;
  std::vector<std::vector<double>> running;
  double sum() const {
    double s = 0;
    for (double l : exponents) s += l;
    return s;
  }
  std::string csv() const {
    std::string out = "i,lambda,standard_error\n";
    for (std::size_t i = 0; i < exponents.size(); ++i)
      out += fmt::format("{},{:.12g},{:.3g}\n", i + 1, exponents[i], standard_error[i]);
    return out;
  }
  std::string json() const {
    const auto list = [](const std::vector<double>& v) { return json_numbers(v, 12); };
    std::string out = fmt::format(
        "{{\"state_size\": {}, \"steps\": {}, \"warmup\": {}, \"qr_every\": {}, \"exponents\": {}, "
        "\"standard_error\": {}, \"running\": [",
        state_size, steps, warmup, qr_every, list(exponents), list(standard_error));
    for (std::size_t r = 0; r < running.size(); ++r) {
      out += fmt::format("{}\n  {{\"steps\": {}, \"exponents\": {}}}", r ? "," : "",
                         running_steps[r], list(running[r]));
    }
    return out + "\n]}\n";
  }
  /// The spectrum λ_i against i (and, dashed, ±2 standard errors when they show).
  std::string svg(const std::string& title) const {
    PlotSeries s{"λ_i", exponents, false};
    for (std::size_t i = 0; i < exponents.size(); ++i) s.x.push_back(static_cast<double>(i + 1));
    std::vector<PlotSeries> lines{s};
    lines.push_back({"0", std::vector<double>(exponents.size(), 0.0), true});
    lines.back().x = s.x;
    lines.back().colour = "#999999";
    return line_plot_svg(title, "index i", "Lyapunov exponent λ_i (per step)", lines, false);
  }
  std::string summary() const {
    if (exponents.empty()) return "no exponents\n";
    return fmt::format(
        "Lyapunov spectrum of a {}-dimensional state, {} exponents over {} steps (after {} "
        "warm-up steps, QR every {}): λ_1 = {:.6g} ± {:.2g} ({}), λ_{} = {:.6g}, Σλ = {:.6g}\n",
        state_size, exponents.size(), steps, warmup, qr_every, exponents[0], standard_error[0],
        exponents[0] > 0 ? "chaotic: nearby states separate" : "contracting: the cell forgets",
        exponents.size(), exponents.back(), sum());
  }
};

/// The Lyapunov spectrum of `cell` for one sequence. `inputs`: x_t (1×input each) for the
/// warm-up and the averaged steps, warmup + steps of them; empty: drawn N(0, input_std²).
/// `state0`: the initial state tensors (1×size each); empty: zeros. Runs on its own tape.
template <RecurrentCell C>
LyapunovReport lyapunov_spectrum(C& cell,
                                 const std::vector<Matrix<typename C::Scalar>>& inputs = {},
                                 const std::vector<Matrix<typename C::Scalar>>& state0 = {},
                                 const LyapunovOptions& options = {}) {
  using T = typename C::Scalar;
  constexpr std::size_t kStates = std::tuple_size_v<typename C::State>;
  const auto sizes = cell.state_sizes();
  Index n = 0;
  std::array<Index, kStates> offset{};
  for (std::size_t j = 0; j < kStates; ++j) offset[j] = n, n += sizes[j];
  const Index k = options.exponents == 0 ? n : options.exponents;
  if (k < 1 || k > n) {
    throw UsageError(
        fmt::format("lyapunov_spectrum: {} exponents asked for a {}-dimensional state: need 1 … {}",
                    options.exponents, n, n));
  }
  if (options.steps < 1 || options.warmup < 0 || options.qr_every < 1 || options.batches < 1 ||
      options.batches > options.steps) {
    throw UsageError(fmt::format(
        "lyapunov_spectrum: steps {}, warmup {}, qr_every {}, batches {}: need steps ≥ 1, "
        "warmup ≥ 0, qr_every ≥ 1, 1 ≤ batches ≤ steps",
        options.steps, options.warmup, options.qr_every, options.batches));
  }
  const int total = options.warmup + options.steps;
  if (!inputs.empty() && static_cast<int>(inputs.size()) < total) {
    throw UsageError(
        fmt::format("lyapunov_spectrum: {} inputs given for {} warm-up and {} averaged steps",
                    inputs.size(), options.warmup, options.steps));
  }
  std::vector<Matrix<T>> state(kStates);
  for (std::size_t j = 0; j < kStates; ++j) {
    if (state0.empty()) {
      state[j] = Matrix<T>::Zero(1, sizes[j]);
    } else if (state0.size() != kStates || state0[j].rows() != 1 || state0[j].cols() != sizes[j]) {
      throw ShapeError(fmt::format(
          "lyapunov_spectrum: initial state tensor {} is {}, expected 1x{} ({} tensors)", j,
          j < state0.size() ? Shape{state0[j].rows(), state0[j].cols()} : Shape{}, sizes[j],
          kStates));
    } else {
      state[j] = state0[j];
    }
  }
  std::mt19937_64 rng(options.seed);
  std::normal_distribution<double> normal;
  // Q₀: k orthonormal random directions.
  Eigen::MatrixXd q(n, k);
  for (Index i = 0; i < q.size(); ++i) q.data()[i] = normal(rng);
  q = detail::thin_q(q);
  LyapunovReport r;
  r.state_size = n;
  r.steps = options.steps;
  r.warmup = options.warmup;
  r.qr_every = options.qr_every;
  Eigen::VectorXd logs = Eigen::VectorXd::Zero(k), batch_logs = Eigen::VectorXd::Zero(k);
  std::vector<Eigen::VectorXd> batch_means;
  const int per_batch = options.steps / options.batches;
  int batch_start = 0;
  const int record_every = std::max(1, options.steps / 100);
  Tape<T> tape;
  Matrix<T> x(1, cell.input_size());
  Matrix<T> seed;
  for (int t = 0; t < total; ++t) {
    if (inputs.empty()) {
      for (Index i = 0; i < x.size(); ++i)
        x.data()[i] = static_cast<T>(options.input_std * normal(rng));
    } else {
      x = inputs[static_cast<std::size_t>(t)];
    }
    tape.clear();
    typename C::State s;
    for (std::size_t j = 0; j < kStates; ++j) {
      s[j] = tape.input(state[j], "state");
      seed = q.middleRows(offset[j], sizes[j]).transpose().template cast<T>();
      tape.set_block_tangent(s[j], seed);
    }
    const typename C::State next = cell.step(tape, tape.constant(x, "x"), s);
    tape.jvp_block(k);
    for (std::size_t j = 0; j < kStates; ++j) {
      q.middleRows(offset[j], sizes[j]) =
          tape.block_tangent(next[j]).transpose().template cast<double>();
      state[j] = next[j].value();
    }
    const bool averaged = t >= options.warmup;
    const int done = t + 1 - options.warmup;  // averaged steps so far
    // A QR also ends the warm-up, so the averaged growth starts from orthonormal directions.
    if ((t + 1) % options.qr_every == 0 || t + 1 == total || t + 1 == options.warmup) {
      Eigen::VectorXd r_diagonal;
      q = detail::positive_qr(q, &r_diagonal);  // R_ii > 0: the same Q as Gram-Schmidt
      if (averaged) {
        for (Index i = 0; i < k; ++i) batch_logs[i] += std::log(r_diagonal[i]);
      }
      // The standard error's batches close at the first QR at or past their end.
      if (averaged &&
          (done >= (static_cast<int>(batch_means.size()) + 1) * per_batch || t + 1 == total)) {
        logs += batch_logs;
        batch_means.push_back(batch_logs / (done - batch_start));
        batch_start = done;
        batch_logs.setZero();
      }
    }
    if (averaged && (done % record_every == 0 || t + 1 == total)) {
      r.running_steps.push_back(done);
      std::vector<double> now(static_cast<std::size_t>(k));
      for (Index i = 0; i < k; ++i)
        now[static_cast<std::size_t>(i)] = (logs[i] + batch_logs[i]) / done;
      r.running.push_back(std::move(now));
    }
    if (options.progress && ((t + 1) % 100 == 0 || t + 1 == total)) options.progress(t + 1, total);
  }
  for (Index i = 0; i < k; ++i) {
    r.exponents.push_back(logs[i] / options.steps);
    RunningMean batch;
    for (const Eigen::VectorXd& m : batch_means) batch.add(m[i]);
    r.standard_error.push_back(batch.standard_error());
  }
  return r;
}

}  // namespace rwd::layers
