#include "rewind/autograd/diagnostics.hpp"

#include <algorithm>
#include <cmath>
#include <random>

#include "rewind/autograd/functional.hpp"
#include "rewind/autograd/spectra.hpp"

namespace rwd {
namespace {

// The time step of a node inside `series` (scope "<series>/t<k>/..."), if any.
std::optional<std::size_t> step_in(const std::string& path, const std::string& series) {
  const std::string prefix = series.empty() ? "t" : series + "/t";
  if (path.rfind(prefix, 0) != 0) return std::nullopt;
  std::size_t at = prefix.size(), k = 0;
  bool digits = false;
  while (at < path.size() && path[at] >= '0' && path[at] <= '9') {
    k = k * 10 + static_cast<std::size_t>(path[at++] - '0');
    digits = true;
  }
  if (!digits || (at < path.size() && path[at] != '/')) return std::nullopt;
  return k;
}

template <class T>
double norm_of(const std::optional<ConstMap<T>>& g) {
  return g ? static_cast<double>(g->template cast<double>().norm()) : 0.0;
}

}  // namespace

template <class T>
BpttReport bptt_diagnostics(Tape<T>& tape, const std::vector<HiddenSeries<T>>& hidden,
                            const std::vector<Parameter<T>*>& weights, const BpttOptions& options) {
  const auto loss_index = tape.last_loss();
  if (!loss_index) throw UsageError("bptt_diagnostics: call backward() on the tape first");
  const Var<T> loss = tape.var(*loss_index);
  BpttReport report;
  for (const HiddenSeries<T>& h : hidden) {
    SeriesReport s;
    s.name = h.name;
    s.reverse = h.reverse;
    const std::size_t steps = h.states.size();
    for (const Var<T>& v : h.states) s.grad_norm.push_back(norm_of<T>(tape.grad(v.index())));
    // Each step's part of dL/dW: what the weight's consumers inside that step sent it.
    for (Parameter<T>* w : weights) {
      const auto leaf = tape.find_param(*w);
      if (!leaf) continue;
      std::vector<Matrix<T>> parts(steps);
      for (std::size_t c = *leaf + 1; c < tape.size(); ++c) {
        const auto in = tape.inputs_of(c);
        const auto step = step_in(tape.scope_path(c), h.name);
        if (!step || *step >= steps) continue;
        for (std::size_t k = 0; k < in.size(); ++k) {
          if (in[k] != *leaf) continue;
          const Matrix<T> g = tape.contribution(c, static_cast<int>(k));
          if (parts[*step].size() == 0) {
            parts[*step] = g;
          } else {
            parts[*step] += g;
          }
        }
      }
      std::vector<double> norms(steps, 0.0);
      double total = 0;
      for (std::size_t t = 0; t < steps; ++t) {
        norms[t] =
            parts[t].size() ? static_cast<double>(parts[t].template cast<double>().norm()) : 0.0;
        total += norms[t];
      }
      for (double& v : norms) v = total > 0 ? v / total : 0.0;
      s.weights.push_back(w->name);
      s.weight_share.push_back(std::move(norms));
    }
    // Decay: fit log10 ‖dL/dh_t‖ against the distance from the sequence's last step.
    double sx = 0, sy = 0, sxx = 0, sxy = 0, count = 0;
    for (std::size_t t = 0; t < steps; ++t) {
      if (!(s.grad_norm[t] > 0)) continue;
      const double d = static_cast<double>(h.reverse ? t : steps - 1 - t),
                   y = std::log10(s.grad_norm[t]);
      sx += d, sy += y, sxx += d * d, sxy += d * y, ++count;
    }
    if (count >= 2 && count * sxx - sx * sx > 0) {
      s.decay_per_step = std::pow(10.0, (count * sxy - sx * sy) / (count * sxx - sx * sx));
    }
    report.series.push_back(std::move(s));
  }
  // ‖∂h_T/∂h_t‖_F by random probes at h_T: E‖vᵀJ‖² = ‖J‖²_F for v ~ N(0, I).
  std::mt19937_64 rng(options.seed);
  std::normal_distribution<double> normal;
  for (std::size_t k = 0; k < hidden.size(); ++k) {
    const HiddenSeries<T>& h = hidden[k];
    SeriesReport& s = report.series[k];
    s.jacobian_norm.assign(h.states.size(), 0.0);
    if (h.states.empty()) continue;
    const Var<T>& last = h.reverse ? h.states.front() : h.states.back();
    const Index batch = last.rows();
    for (int p = 0; p < options.probes; ++p) {
      Matrix<T> v(last.rows(), last.cols());
      for (Index i = 0; i < v.size(); ++i) v.data()[i] = static_cast<T>(normal(rng));
      tape.backward(sum(mul(last, tape.constant(v, "probe"))), {.accumulate_parameters = false});
      for (std::size_t t = 0; t < h.states.size(); ++t) {
        const double g = norm_of<T>(tape.grad(h.states[t].index()));
        s.jacobian_norm[t] += g * g;
      }
    }
    for (double& j : s.jacobian_norm)
      j = std::sqrt(j / options.probes / static_cast<double>(batch));
  }
  tape.backward(loss, {.accumulate_parameters = false});  // the loss's gradients again
  return report;
}

std::string BpttReport::csv() const {
  std::string out = "series,t,grad_norm,jacobian_norm";
  std::vector<std::string> names;
  for (const SeriesReport& s : series) {
    for (const std::string& w : s.weights) {
      if (std::find(names.begin(), names.end(), w) == names.end()) names.push_back(w);
    }
  }
  for (const std::string& w : names) out += ",share_" + w;
  out += "\n";
  for (const SeriesReport& s : series) {
    for (std::size_t t = 0; t < s.grad_norm.size(); ++t) {
      out += fmt::format("{},{},{:.6g},{:.6g}", s.name, t, s.grad_norm[t],
                         s.jacobian_norm.empty() ? 0.0 : s.jacobian_norm[t]);
      for (const std::string& w : names) {
        const auto it = std::find(s.weights.begin(), s.weights.end(), w);
        out +=
            it == s.weights.end()
                ? ","
                : fmt::format(",{:.6g}",
                              s.weight_share[static_cast<std::size_t>(it - s.weights.begin())][t]);
      }
      out += "\n";
    }
  }
  return out;
}

std::string json_numbers(const std::vector<double>& v, int digits) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i)
    s += fmt::format("{}{:.{}g}", i ? "," : "", v[i], digits);
  return s + "]";
}

std::string BpttReport::json() const {
  const auto list = [](const std::vector<double>& v) { return json_numbers(v, 6); };
  std::string out = "{\"series\": [";
  for (std::size_t k = 0; k < series.size(); ++k) {
    const SeriesReport& s = series[k];
    out += fmt::format(
        "{}\n  {{\"name\": \"{}\", \"reverse\": {}, \"decay_per_step\": {:.6g}, \"grad_norm\": {}, "
        "\"jacobian_norm\": {}, \"weight_share\": {{",
        k ? "," : "", s.name, s.reverse ? "true" : "false", s.decay_per_step, list(s.grad_norm),
        list(s.jacobian_norm));
    for (std::size_t w = 0; w < s.weights.size(); ++w) {
      out += fmt::format("{}\"{}\": {}", w ? ", " : "", s.weights[w], list(s.weight_share[w]));
    }
    out += "}}";
  }
  return out + "\n]}\n";
}

std::string BpttReport::svg(const std::string& title) const {
  std::vector<PlotSeries> lines;
  for (const SeriesReport& s : series) {
    lines.push_back({fmt::format("‖dL/dh_t‖ {}", s.name), s.grad_norm, false});
    if (!s.jacobian_norm.empty())
      lines.push_back({fmt::format("‖∂h_T/∂h_t‖ {}", s.name), s.jacobian_norm, true});
  }
  return line_plot_svg(title, "time step t", "norm (log scale)", lines, true);
}

std::string BpttReport::summary() const {
  std::string out;
  for (const SeriesReport& s : series) {
    const auto [lo, hi] = std::minmax_element(s.grad_norm.begin(), s.grad_norm.end());
    out +=
        fmt::format("{:<12} ‖dL/dh_t‖ from {:.3g} to {:.3g}; per step away from the loss ×{:.4f}",
                    s.name.empty() ? "(top)" : s.name, s.grad_norm.empty() ? 0.0 : *lo,
                    s.grad_norm.empty() ? 0.0 : *hi, s.decay_per_step);
    if (!s.jacobian_norm.empty()) {
      out += fmt::format("; ‖∂h_T/∂h_t‖ at the far end {:.3g}",
                         s.reverse ? s.jacobian_norm.back() : s.jacobian_norm.front());
    }
    out += "\n";
  }
  return out;
}

template <class T>
JacobianReport jacobians_through_time(Tape<T>& tape, const std::vector<HiddenSeries<T>>& hidden,
                                      const JacobianOptions& options) {
  JacobianReport report;
  report.sample = options.sample;
  report.probes = options.probes;
  std::mt19937_64 rng(options.seed);
  std::normal_distribution<double> normal;
  for (const HiddenSeries<T>& h : hidden) {
    JacobianSeries s;
    s.name = h.name;
    s.reverse = h.reverse;
    if (h.states.empty()) {
      report.series.push_back(std::move(s));
      continue;
    }
    const Var<T>& last = h.reverse ? h.states.front() : h.states.back();
    const Index batch = last.rows(), n = last.cols();
    if (options.sample < 0 || options.sample >= batch) {
      throw UsageError(fmt::format("jacobians_through_time: sample {} is outside the batch of {}",
                                   options.sample, batch));
    }
    for (const Var<T>& v : h.states) {
      if (v.shape() != last.shape()) {
        throw ShapeError(fmt::format(
            "jacobians_through_time: series '{}': states are {} and {}: ∂h_T/∂h_t needs one "
            "shape",
            h.name, v.shape(), last.shape()));
      }
    }
    // Cotangent j is e_j on the sample's row: block j of node h_t's cotangents holds row j of
    // ∂h_T/∂h_t in that row.
    Matrix<T> seeds = Matrix<T>::Zero(n * batch, n);
    for (Index j = 0; j < n; ++j) seeds(j * batch + options.sample, j) = T(1);
    tape.vjp_block(last, seeds);
    Eigen::MatrixXd jac(n, n);
    for (const Var<T>& v : h.states) {
      const Matrix<T> g = tape.block_grad(v);
      for (Index j = 0; j < n; ++j)
        jac.row(j) = g.row(j * batch + options.sample).template cast<double>();
      const Eigen::VectorXd sv = singular_values(jac);
      s.singular_values.emplace_back(sv.data(), sv.data() + sv.size());
      s.frobenius.push_back(jac.norm());
    }
    // Hutchinson, as bptt_diagnostics: E‖uᵀJ‖² = ‖J‖²_F for u ~ N(0, I), all probes in one sweep.
    if (options.probes > 0) {
      const Index k = options.probes;
      Matrix<T> probes = Matrix<T>::Zero(k * batch, n);
      for (Index p = 0; p < k; ++p) {
        for (Index j = 0; j < n; ++j)
          probes(p * batch + options.sample, j) = static_cast<T>(normal(rng));
      }
      tape.vjp_block(last, probes);
      for (const Var<T>& v : h.states) {
        const Matrix<T> g = tape.block_grad(v);
        RunningMean sq;  // of ‖uᵀJ‖², whose mean is ‖J‖²_F
        for (Index p = 0; p < k; ++p)
          sq.add(g.row(p * batch + options.sample).template cast<double>().squaredNorm());
        const double norm = std::sqrt(sq.mean);
        const double se_sq = sq.standard_error();
        s.estimate.push_back(norm);
        s.estimate_error.push_back(norm > 0 ? se_sq / (2 * norm) : 0.0);  // d√x = dx / 2√x
      }
    }
    report.series.push_back(std::move(s));
  }
  return report;
}

std::string JacobianReport::csv() const {
  std::size_t width = 0;
  for (const JacobianSeries& s : series) {
    for (const auto& sv : s.singular_values) width = std::max(width, sv.size());
  }
  std::string out = "series,t,frobenius,estimate,estimate_error";
  for (std::size_t i = 1; i <= width; ++i) out += fmt::format(",sigma_{}", i);
  out += "\n";
  for (const JacobianSeries& s : series) {
    for (std::size_t t = 0; t < s.frobenius.size(); ++t) {
      out += fmt::format("{},{},{:.9g},{},{}", s.name, t, s.frobenius[t],
                         s.estimate.empty() ? "" : fmt::format("{:.6g}", s.estimate[t]),
                         s.estimate.empty() ? "" : fmt::format("{:.3g}", s.estimate_error[t]));
      for (double v : s.singular_values[t]) out += fmt::format(",{:.9g}", v);
      out += "\n";
    }
  }
  return out;
}

std::string JacobianReport::json() const {
  const auto list = [](const std::vector<double>& v) { return json_numbers(v, 9); };
  std::string out = fmt::format("{{\"sample\": {}, \"probes\": {}, \"series\": [", sample, probes);
  for (std::size_t k = 0; k < series.size(); ++k) {
    const JacobianSeries& s = series[k];
    out += fmt::format(
        "{}\n  {{\"name\": \"{}\", \"reverse\": {}, \"frobenius\": {}, \"estimate\": {}, "
        "\"estimate_error\": {}, \"singular_values\": [",
        k ? "," : "", s.name, s.reverse ? "true" : "false", list(s.frobenius), list(s.estimate),
        list(s.estimate_error));
    for (std::size_t t = 0; t < s.singular_values.size(); ++t)
      out += (t ? ",\n    " : "\n    ") + list(s.singular_values[t]);
    out += "]}";
  }
  return out + "\n]}\n";
}

std::string JacobianReport::svg(const std::string& title) const {
  static constexpr const char* kGroup[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd"};
  std::vector<PlotSeries> lines;
  for (std::size_t g = 0; g < series.size(); ++g) {
    const JacobianSeries& s = series[g];
    const auto pick = [&](auto f) {
      std::vector<double> y;
      for (const auto& sv : s.singular_values) y.push_back(sv.empty() ? 0.0 : f(sv));
      return y;
    };
    const std::string name = s.name.empty() ? std::string() : " " + s.name;
    const std::string colour = kGroup[g % 4];
    // One colour per series; solid, dashed and dotted for the largest, median and smallest.
    lines.push_back(
        {"σ_max" + name, pick([](const auto& sv) { return sv.front(); }), false, {}, colour});
    lines.push_back({"σ_median" + name,
                     pick([](const auto& sv) { return sv[sv.size() / 2]; }),
                     true,
                     {},
                     colour,
                     "7,3"});
    lines.push_back(
        {"σ_min" + name, pick([](const auto& sv) { return sv.back(); }), true, {}, colour, "2,2"});
  }
  // Singular values are accurate to about n·ε·σ_max: below this line they are rounding.
  if (!series.empty() && !series[0].singular_values.empty()) {
    const JacobianSeries& s = series[0];
    std::vector<double> y;
    for (const auto& sv : s.singular_values)
      y.push_back(static_cast<double>(sv.size()) * std::numeric_limits<double>::epsilon() *
                  sv.front());
    lines.push_back({"rounding (n·ε·σ_max)", y, true, {}, "#999999"});
  }
  return line_plot_svg(title, "time step t", "singular value of ∂h_T/∂h_t (log scale)", lines,
                       true);
}

std::string JacobianReport::summary() const {
  std::string out;
  for (const JacobianSeries& s : series) {
    if (s.singular_values.empty()) continue;
    const std::size_t far = s.reverse ? s.singular_values.size() - 1 : 0;
    const auto& sv = s.singular_values[far];
    out += fmt::format("{:<12} ∂h_T/∂h_t at the far end: σ from {:.3g} to {:.3g}, ‖·‖_F {:.3g}",
                       s.name.empty() ? "(top)" : s.name, sv.back(), sv.front(), s.frobenius[far]);
    if (!s.estimate.empty())
      out += fmt::format(" (estimate {:.3g} ± {:.2g})", s.estimate[far], s.estimate_error[far]);
    out += "\n";
  }
  return out;
}

std::string line_plot_svg(const std::string& title, const std::string& x_label,
                          const std::string& y_label, const std::vector<PlotSeries>& series,
                          bool log_y, bool log_x) {
  constexpr double W = 760, H = 420, L = 70, R = 250, Tm = 40, B = 50;
  static constexpr const char* kColours[] = {"#1f77b4", "#d62728", "#2ca02c",
                                             "#9467bd", "#ff7f0e", "#8c564b"};
  double ymin = std::numeric_limits<double>::infinity(), ymax = -ymin;
  for (const PlotSeries& s : series) {
    for (double v : s.y) {
      if (!std::isfinite(v) || (log_y && v <= 0)) continue;
      const double y = log_y ? std::log10(v) : v;
      ymin = std::min(ymin, y);
      ymax = std::max(ymax, y);
    }
  }
  if (!(ymax >= ymin)) ymin = 0, ymax = 1;
  if (log_y) ymin = std::floor(ymin), ymax = std::ceil(ymax);
  if (ymax == ymin) ymax = ymin + 1;
  // The x axis: the given abscissae, or the indices 0 … n−1; on a log axis their log10, from
  // the decade below the first to the decade above the last (abscissae ≤ 0 are left out).
  const auto x_of = [log_x](const PlotSeries& s, std::size_t i) {
    const double x = s.x.empty() ? static_cast<double>(i) : s.x[i];
    return log_x ? (x > 0 ? std::log10(x) : std::numeric_limits<double>::quiet_NaN()) : x;
  };
  double xmin = std::numeric_limits<double>::infinity(), xmax = -xmin;
  for (const PlotSeries& s : series) {
    for (std::size_t i = 0; i < s.y.size(); ++i) {
      const double x = x_of(s, i);
      if (!std::isfinite(x)) continue;
      xmin = std::min(xmin, x);
      xmax = std::max(xmax, x);
    }
  }
  if (!(xmax >= xmin)) xmin = 0, xmax = 0;
  if (log_x) xmin = std::floor(xmin), xmax = std::max(std::ceil(xmax), xmin + 1);
  double frame_lo = xmin, frame_hi = xmax;  // the frame's x range: 3% beyond the points
  if (!log_x && xmax > xmin) frame_lo -= 0.03 * (xmax - xmin), frame_hi += 0.03 * (xmax - xmin);
  const auto px = [&](double x) {
    return L + (W - L - R) * (frame_hi > frame_lo ? (x - frame_lo) / (frame_hi - frame_lo) : 0.5);
  };
  const auto py = [&](double y) { return Tm + (H - Tm - B) * (1 - (y - ymin) / (ymax - ymin)); };
  std::string out = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "font-family=\"Helvetica,Arial,sans-serif\" "
      "font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{}\" y=\"22\" font-size=\"15\" text-anchor=\"middle\">{}</text>\n",
      W, H, (W - R + L) / 2, title);
  out += fmt::format(
      "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#333\"/>\n", L, Tm,
      W - L - R, H - Tm - B);
  // Linear axes get ticks at round numbers (1, 2 or 5 times a power of ten, about five of them);
  // a log axis one per decade (every other one past ten decades).
  const auto nice_ticks = [](double lo, double hi) {
    std::vector<double> at;
    const double raw = (hi - lo) / 5, mag = std::pow(10.0, std::floor(std::log10(raw)));
    const double step = raw <= mag       ? mag
                        : raw <= 2 * mag ? 2 * mag
                        : raw <= 5 * mag ? 5 * mag
                                         : 10 * mag;
    for (double v = std::ceil(lo / step - 1e-9) * step; v <= hi + 1e-9 * step; v += step)
      at.push_back(std::abs(v) < 1e-9 * step ? 0.0 : v);
    return at;
  };
  const int decades = static_cast<int>(ymax - ymin);
  const std::vector<double> y_ticks = log_y ? std::vector<double>{} : nice_ticks(ymin, ymax);
  for (int k = 0; k <= (log_y ? decades : static_cast<int>(y_ticks.size()) - 1); ++k) {
    const double y = log_y ? ymin + k : y_ticks[static_cast<std::size_t>(k)];
    if (log_y && decades >= 10 && k % 2) continue;
    out += fmt::format("<line x1=\"{}\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#ddd\"/>\n",
                       L, W - R, py(y), py(y));
    out +=
        fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n", L - 6, py(y) + 4,
                    log_y ? fmt::format("1e{}", static_cast<int>(y)) : fmt::format("{:.3g}", y));
  }
  std::vector<double> x_ticks;
  if (log_x) {
    for (double d = xmin; d <= xmax; ++d) x_ticks.push_back(d);
  } else {
    x_ticks = xmax > xmin ? nice_ticks(xmin, xmax) : std::vector<double>{xmin};
  }
  for (double x : x_ticks) {
    out += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", px(x),
                       H - B + 18,
                       log_x ? fmt::format("{:.7g}", std::pow(10.0, x)) : fmt::format("{:.4g}", x));
  }
  out += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", (W - R + L) / 2,
                     H - 12, x_label);
  out += fmt::format(
      "<text x=\"16\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {})\">{}</text>\n",
      (H - B + Tm) / 2, (H - B + Tm) / 2, y_label);
  for (std::size_t k = 0; k < series.size(); ++k) {
    const PlotSeries& s = series[k];
    const std::string colour =
        s.colour.empty() ? kColours[(k / (series.size() > 1 && series[1].dashed ? 2 : 1)) % 6]
                         : s.colour;
    std::string points;
    for (std::size_t i = 0; i < s.y.size(); ++i) {
      if (!std::isfinite(s.y[i]) || (log_y && s.y[i] <= 0) || !std::isfinite(x_of(s, i))) continue;
      points +=
          fmt::format("{:.1f},{:.1f} ", px(x_of(s, i)), py(log_y ? std::log10(s.y[i]) : s.y[i]));
    }
    const std::string dash = !s.dash.empty() ? fmt::format(" stroke-dasharray=\"{}\"", s.dash)
                             : s.dashed      ? std::string(" stroke-dasharray=\"5,3\"")
                                             : std::string();
    out += fmt::format(
        "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.8\"{} points=\"{}\"/>\n", colour,
        dash, points);
    const double ly = Tm + 10 + 18 * static_cast<double>(k);
    out += fmt::format(
        "<line x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"2\"{}/>\n",
        W - R + 12, W - R + 36, ly, ly, colour, dash);
    out += fmt::format("<text x=\"{}\" y=\"{}\">{}</text>\n", W - R + 42, ly + 4, s.name);
  }
  return out + "</svg>\n";
}

template JacobianReport jacobians_through_time<float>(Tape<float>&,
                                                      const std::vector<HiddenSeries<float>>&,
                                                      const JacobianOptions&);
template JacobianReport jacobians_through_time<double>(Tape<double>&,
                                                       const std::vector<HiddenSeries<double>>&,
                                                       const JacobianOptions&);
template BpttReport bptt_diagnostics<float>(Tape<float>&, const std::vector<HiddenSeries<float>>&,
                                            const std::vector<Parameter<float>*>&,
                                            const BpttOptions&);
template BpttReport bptt_diagnostics<double>(Tape<double>&,
                                             const std::vector<HiddenSeries<double>>&,
                                             const std::vector<Parameter<double>*>&,
                                             const BpttOptions&);

}  // namespace rwd
