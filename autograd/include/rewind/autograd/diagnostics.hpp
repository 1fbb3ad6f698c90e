// Backpropagation-through-time diagnostics, read off a tape after backward:
//  - ‖dL/dh_t‖ for every step of every recorded sequence (the error signal reaching step t),
//  - each step's share of dL/dW for every recurrent weight (what step t contributes to the
//    weight's gradient: the consumers of the weight inside scope t<k>),
//  - ‖∂h_T/∂h_t‖ (Frobenius, per sequence), estimated from vector-Jacobian products: a few
//    extra reverse sweeps from random directions at h_T (Hutchinson's estimator); parameter
//    gradients are left untouched and the tape's gradients are restored afterwards.
// Output as CSV, JSON and an SVG line plot on a log scale.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "rewind/autograd/tape.hpp"

namespace rwd {

/// One recorded sequence of hidden states: its name (a scope such as "layer0/fwd"), h_t per
/// step in time order, and whether it ran backwards in time (its last step is t = 0).
template <class T>
struct HiddenSeries {
  std::string name;
  std::vector<Var<T>> states;
  bool reverse = false;
};

struct SeriesReport {
  std::string name;
  bool reverse = false;
  std::vector<double> grad_norm;      ///< ‖dL/dh_t‖ per step t
  std::vector<double> jacobian_norm;  ///< ‖∂h_T/∂h_t‖_F per sequence, per step t
  std::vector<std::string> weights;   ///< recurrent weights whose shares are listed
  std::vector<std::vector<double>> weight_share;  ///< [weight][t]: ‖step t's part‖ / Σ_t ‖·‖
  /// Per-step factor by which ‖dL/dh_t‖ shrinks moving away from the loss, from a least-squares
  /// fit of log10 ‖dL/dh_t‖ against the distance to the last step (< 1: vanishing).
  double decay_per_step = 1;
};

struct BpttReport {
  std::vector<SeriesReport> series;
  std::string csv() const;  ///< series,t,grad_norm,jacobian_norm,<weight shares...>
  std::string json() const;
  /// A line plot of ‖dL/dh_t‖ and ‖∂h_T/∂h_t‖ against t, log scale.
  std::string svg(const std::string& title) const;
  /// A short text summary, one line per series.
  std::string summary() const;
};

struct BpttOptions {
  int probes = 8;  ///< random directions for ‖∂h_T/∂h_t‖
  std::uint64_t seed = 1;
};

/// Needs a backward on the tape (the loss is Tape::last_loss()). `weights` are the recurrent
/// weights whose per-step shares to report (parameters not on the tape are skipped).
template <class T>
BpttReport bptt_diagnostics(Tape<T>& tape, const std::vector<HiddenSeries<T>>& hidden,
                            const std::vector<Parameter<T>*>& weights,
                            const BpttOptions& options = {});

/// Exact Jacobians through time: every singular value of ∂h_T/∂h_t for every step t of a
/// recorded sequence, for one sample of the batch (the Jacobian of a batch is block diagonal,
/// one block per sample). One reverse sweep with N cotangents at h_T (Tape::vjp_block, N = the
/// state's width) gives ∂h_T/∂h_t for every t at once; each is then an N×N SVD. Next to each
/// exact Frobenius norm: the Hutchinson estimate bptt_diagnostics reports, with its standard
/// error. The gradients are those of the node h_t (other state tensors held as recorded, e.g. an
/// LSTM's c_t): what reaches h_t in backpropagation through time.
struct JacobianSeries {
  std::string name;
  bool reverse = false;
  std::vector<std::vector<double>> singular_values;  ///< [t], largest first
  std::vector<double> frobenius;                     ///< ‖∂h_T/∂h_t‖_F, exact, per t
  std::vector<double> estimate;                      ///< Hutchinson estimate of the same
  std::vector<double> estimate_error;                ///< its standard error (delta method)
};

struct JacobianReport {
  Index sample = 0;
  int probes = 0;
  std::vector<JacobianSeries> series;
  std::string csv() const;  ///< series,t,frobenius,estimate,estimate_error,sigma_1,…,sigma_N
  std::string json() const;
  /// σ_1, σ_N (and the median) against t, log scale, one colour per series.
  std::string svg(const std::string& title) const;
  std::string summary() const;
};

struct JacobianOptions {
  Index sample = 0;  ///< the batch row
  int probes = 8;    ///< random directions for the Hutchinson estimate (0: none)
  std::uint64_t seed = 1;
};

/// Needs no backward; leaves the tape's gradients and the parameters as they are.
template <class T>
JacobianReport jacobians_through_time(Tape<T>& tape, const std::vector<HiddenSeries<T>>& hidden,
                                      const JacobianOptions& options = {});

/// The mean and standard error of a sample, one value at a time (Welford's update).
struct RunningMean {
  int count = 0;
  double mean = 0, m2 = 0;
  void add(double x) {
    ++count;
    const double delta = x - mean;
    mean += delta / count;
    m2 += delta * (x - mean);
  }
  /// Sample standard deviation / √count; 0 below two values.
  double standard_error() const { return count > 1 ? std::sqrt(m2 / (count - 1) / count) : 0.0; }
};

/// `[1.5,2,3]`: numbers for a JSON report, each with `digits` significant digits.
std::string json_numbers(const std::vector<double>& v, int digits);

/// A minimal SVG line plot (log or linear y and x), written in-house: Debian's gnuplot would be an
/// external program to run, and this is all the plotting rewind needs.
struct PlotSeries {
  std::string name;
  std::vector<double> y;  ///< at x = 0, 1, 2, ... unless `x` is given
  bool dashed = false;
  std::vector<double> x;  ///< the abscissae, increasing (empty: 0, 1, 2, ...)
  std::string colour;     ///< an SVG colour (empty: the palette's next)
  std::string dash;       ///< an SVG stroke-dasharray ("2,2": dotted); overrides `dashed` ("5,3")
};
/// A line plot: every point inside the frame (a linear x axis gets 3% of its range either side,
/// so the first and last points, a spectrum's outliers, do not sit on it), a legend on the right.
std::string line_plot_svg(const std::string& title, const std::string& x_label,
                          const std::string& y_label, const std::vector<PlotSeries>& series,
                          bool log_y, bool log_x = false);

}  // namespace rwd
