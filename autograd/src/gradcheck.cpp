#include "rewind/autograd/gradcheck.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <ostream>
#include <random>

namespace rwd {
namespace {

using Mat = Matrix<double>;

// Records f on a cleared tape and returns the scalar it is checked through.
class Evaluator {
 public:
  Evaluator(const GradcheckFunction& f, const std::vector<NamedTensor>& inputs, std::uint64_t seed)
      : f_(f), inputs_(inputs), rng_(seed) {}

  double operator()(const std::vector<Mat>& xs) { return record(xs).item(); }

  Var<double> record(const std::vector<Mat>& xs) {
    tape_.clear();
    vars_.clear();
    for (std::size_t k = 0; k < xs.size(); ++k)
      vars_.push_back(tape_.input(xs[k], inputs_[k].name));
    Var<double> y = f_(tape_, vars_);
    if (!y.valid() || &y.tape() != &tape_) {
      throw UsageError(
          "gradcheck: the function must return a Var recorded on the tape it is given");
    }
    output_ = y;
    const Shape s = y.shape();
    if (s == Shape{1, 1}) return y;
    if (contraction_.size() == 0) {  // first evaluation fixes R
      std::normal_distribution<double> normal;
      contraction_.resize(s.rows, s.cols);
      for (Index i = 0; i < contraction_.size(); ++i) contraction_.data()[i] = normal(rng_);
    } else if (contraction_.rows() != s.rows || contraction_.cols() != s.cols) {
      throw UsageError(
          fmt::format("gradcheck: output shape changed between evaluations: {} then {}",
                      Shape{contraction_.rows(), contraction_.cols()}, s));
    }
    return sum(mul(y, tape_.constant(contraction_, "contraction")));
  }

  Tape<double>& tape() { return tape_; }
  /// f's own output in the latest recording (before the contraction).
  const Var<double>& output() const { return output_; }
  /// R, or empty for a 1x1 output.
  const Mat& contraction() const { return contraction_; }
  const std::vector<Var<double>>& vars() const { return vars_; }
  std::mt19937_64& rng() { return rng_; }

 private:
  const GradcheckFunction& f_;
  const std::vector<NamedTensor>& inputs_;
  std::mt19937_64 rng_;
  Tape<double> tape_;
  std::vector<Var<double>> vars_;
  Var<double> output_;
  Mat contraction_;
};

// Folds one (analytic, numeric) comparison into a tensor's result.
void compare(TensorCheck& c, double analytic, double numeric, Index row, Index col,
             const GradcheckOptions& o, double& worst_ratio) {
  const double err = std::abs(analytic - numeric);
  const double tol = o.atol + o.rtol * std::abs(numeric);
  const double scale = std::max(std::abs(analytic), std::abs(numeric));
  const bool ok = err <= tol;  // false for NaN
  const double ratio = ok ? err / tol : std::numeric_limits<double>::infinity();
  c.max_abs_error = std::isnan(err) ? err : std::max(c.max_abs_error, err);
  c.max_rel_error = std::max(c.max_rel_error, scale > 0 ? err / scale : 0.0);
  if (!ok) c.passed = false;
  if (ratio > worst_ratio || c.worst_col < 0) {
    worst_ratio = ratio;
    c.worst_row = row;
    c.worst_col = col;
    c.analytic = analytic;
    c.numeric = numeric;
  }
}

// Checks one tensor. `value` is perturbed in place through `set`, and restored.
template <class Eval>
TensorCheck check_tensor(std::string name, Mat& value, const Mat& grad, Eval&& eval,
                         const GradcheckOptions& o, std::mt19937_64& rng) {
  TensorCheck c;
  c.name = std::move(name);
  c.shape = Shape{value.rows(), value.cols()};
  double worst = -1;
  if (!o.fast) {
    for (Index i = 0; i < value.size(); ++i) {
      const double x0 = value.data()[i];
      value.data()[i] = x0 + o.eps;
      const double up = eval();
      value.data()[i] = x0 - o.eps;
      const double down = eval();
      value.data()[i] = x0;
      compare(c, grad.data()[i], (up - down) / (2 * o.eps), i / value.cols(), i % value.cols(), o,
              worst);
    }
    return c;
  }
  std::normal_distribution<double> normal;
  const Mat x0 = value;
  for (int d = 0; d < o.directions && value.size() > 0; ++d) {
    Mat v(value.rows(), value.cols());
    for (Index i = 0; i < v.size(); ++i) v.data()[i] = normal(rng);
    v /= v.norm();
    value = x0 + o.eps * v;
    const double up = eval();
    value = x0 - o.eps * v;
    const double down = eval();
    value = x0;
    compare(c, grad.cwiseProduct(v).sum(), (up - down) / (2 * o.eps), -1, d, o, worst);
  }
  c.worst_row = -1;
  return c;
}

// The checks gradcheck and gradgradcheck make of their arguments; `who` names the caller.
void check_arguments(std::string_view who, const std::vector<Parameter<double>*>& params,
                     const GradcheckOptions& options) {
  if (!(options.eps > 0)) throw UsageError(fmt::format("{}: eps must be positive", who));
  if (options.fast && options.directions < 1) {
    throw UsageError(fmt::format("{}: fast mode needs at least one direction", who));
  }
  for (const Parameter<double>* p : params) {
    if (p == nullptr) throw UsageError(fmt::format("{}: null parameter", who));
  }
}

}  // namespace

GradcheckReport gradcheck(const GradcheckFunction& f, const std::vector<NamedTensor>& inputs,
                          const std::vector<Parameter<double>*>& params,
                          const GradcheckOptions& options) {
  check_arguments("gradcheck", params, options);
  GradcheckReport report;
  report.options = options;
  Evaluator eval(f, inputs, options.seed);
  std::vector<Mat> xs;
  for (const NamedTensor& t : inputs) xs.push_back(t.value);

  // Analytic gradients; the parameters' own gradients are put back afterwards.
  std::vector<Mat> saved;
  for (Parameter<double>* p : params) saved.push_back(p->grad);
  Var<double> loss = eval.record(xs);
  report.loss = loss.item();
  eval.tape().backward(loss);
  std::vector<Mat> grads;
  for (const Var<double>& v : eval.vars()) grads.emplace_back(v.grad());
  for (Parameter<double>* p : params) grads.emplace_back(eval.tape().param(*p).grad());
  for (std::size_t k = 0; k < params.size(); ++k) params[k]->grad = saved[k];

  std::size_t g = 0;
  for (std::size_t k = 0; k < xs.size(); ++k, ++g) {
    report.tensors.push_back(check_tensor(
        inputs[k].name, xs[k], grads[g], [&] { return eval(xs); }, options, eval.rng()));
  }
  for (Parameter<double>* p : params) {
    report.tensors.push_back(check_tensor(
        p->name, p->value, grads[g++], [&] { return eval(xs); }, options, eval.rng()));
  }
  return report;
}

namespace {

// Restores what gradgradcheck changes in its parameters (value is restored by check_tensor's
// perturbation loop itself).
struct SavedParams {
  explicit SavedParams(const std::vector<Parameter<double>*>& params) : params_(params) {
    for (Parameter<double>* p : params) saved_.push_back({p->grad, p->tangent, p->grad_tangent});
  }
  ~SavedParams() {
    for (std::size_t k = 0; k < params_.size(); ++k) {
      params_[k]->grad = saved_[k][0];
      params_[k]->tangent = saved_[k][1];
      params_[k]->grad_tangent = saved_[k][2];
    }
  }
  SavedParams(const SavedParams&) = delete;
  SavedParams& operator=(const SavedParams&) = delete;

 private:
  const std::vector<Parameter<double>*>& params_;
  std::vector<std::array<Mat, 3>> saved_;
};

}  // namespace

GradgradcheckReport gradgradcheck(const GradcheckFunction& f,
                                  const std::vector<NamedTensor>& inputs,
                                  const std::vector<Parameter<double>*>& params,
                                  const GradcheckOptions& options) {
  check_arguments("gradgradcheck", params, options);
  SavedParams saved(params);
  GradgradcheckReport report;
  report.options = options;
  Evaluator eval(f, inputs, options.seed);
  std::vector<Mat> xs;
  for (const NamedTensor& t : inputs) xs.push_back(t.value);
  const std::size_t count = xs.size() + params.size();
  const auto value_of = [&](std::size_t k) -> Mat& {
    return k < xs.size() ? xs[k] : params[k - xs.size()]->value;
  };
  for (std::size_t k = 0; k < count; ++k) {
    TensorCheck c;
    c.name = k < xs.size() ? inputs[k].name : params[k - xs.size()]->name;
    c.shape = Shape{value_of(k).rows(), value_of(k).cols()};
    report.tensors.push_back(std::move(c));
  }
  report.output.name = "output";

  // Gradients at x ± εv (first order only) and the output there.
  const auto gradients = [&](std::vector<Mat>& g, Mat& out) {
    Var<double> loss = eval.record(xs);
    eval.tape().backward(loss, {.accumulate_parameters = false});
    g.clear();
    for (const Var<double>& v : eval.vars()) g.emplace_back(v.grad());
    for (Parameter<double>* p : params) g.emplace_back(eval.tape().param(*p).grad());
    out = eval.output().value();
  };
  Index total = 0;
  for (std::size_t k = 0; k < count; ++k) total += value_of(k).size();
  const int directions = options.fast ? options.directions : static_cast<int>(total);
  std::normal_distribution<double> normal;
  std::vector<double> worst(count, -1);
  double worst_out = -1;
  std::vector<Mat> v(count), g_up, g_down;
  Mat out_up, out_down;
  for (int d = 0; d < directions; ++d) {
    // The direction, over every input and parameter together.
    double norm2 = 0;
    for (std::size_t k = 0; k < count; ++k) {
      v[k].setZero(value_of(k).rows(), value_of(k).cols());
      if (options.fast) {
        for (Index i = 0; i < v[k].size(); ++i) v[k].data()[i] = normal(eval.rng());
        norm2 += v[k].squaredNorm();
      }
    }
    if (options.fast) {
      for (Mat& m : v) m /= std::sqrt(norm2);
    } else {
      Index at = d;
      for (std::size_t k = 0; k < count; ++k) {
        if (at < v[k].size()) {
          v[k].data()[at] = 1;
          break;
        }
        at -= v[k].size();
      }
    }
    // Analytic: the gradient, its tangent (H·v) and the output's tangent, in one recording.
    Var<double> loss = eval.record(xs);
    report.loss = loss.item();
    for (std::size_t k = 0; k < xs.size(); ++k) eval.tape().set_tangent(eval.vars()[k], v[k]);
    for (std::size_t k = 0; k < params.size(); ++k) params[k]->tangent = v[xs.size() + k];
    eval.tape().hvp(loss, {.accumulate_parameters = false});
    std::vector<Mat> g, hv;
    for (const Var<double>& x : eval.vars()) {
      g.emplace_back(x.grad());
      hv.emplace_back(x.grad_tangent());
    }
    for (Parameter<double>* p : params) {
      const Var<double> leaf = eval.tape().param(*p);
      g.emplace_back(leaf.grad());
      hv.emplace_back(leaf.grad_tangent());
    }
    const Mat jv = eval.output().tangent();
    // Transpose identity: ⟨R, J·v⟩ = ⟨Jᵀ·R, v⟩, with R = 1 for a scalar output.
    const Mat& r = eval.contraction();
    const double lhs = r.size() == 0 ? jv(0, 0) : r.cwiseProduct(jv).sum();
    double scale = r.size() == 0 ? std::abs(jv(0, 0)) : r.cwiseProduct(jv).cwiseAbs().sum();
    double rhs = 0;
    for (std::size_t k = 0; k < count; ++k) {
      rhs += g[k].cwiseProduct(v[k]).sum();
      scale += g[k].cwiseProduct(v[k]).cwiseAbs().sum();
    }
    const double gap = scale > 0 ? std::abs(lhs - rhs) / scale : std::abs(lhs - rhs);
    if (gap >= report.transpose_error || d == 0) {
      report.transpose_error = std::max(report.transpose_error, gap);
      report.transpose_lhs = lhs;
      report.transpose_rhs = rhs;
    }
    // Numeric: central differences of the gradient and of the output along v.
    const auto shift = [&](double s) {
      for (std::size_t k = 0; k < count; ++k) value_of(k) += s * v[k];
    };
    std::vector<Mat> x0;
    for (std::size_t k = 0; k < count; ++k) x0.push_back(value_of(k));
    shift(options.eps);
    gradients(g_up, out_up);
    for (std::size_t k = 0; k < count; ++k) value_of(k) = x0[k];
    shift(-options.eps);
    gradients(g_down, out_down);
    for (std::size_t k = 0; k < count; ++k) value_of(k) = x0[k];  // bit for bit
    for (std::size_t k = 0; k < count; ++k) {
      const Mat numeric = (g_up[k] - g_down[k]) / (2 * options.eps);
      for (Index i = 0; i < numeric.size(); ++i) {
        compare(report.tensors[k], hv[k].data()[i], numeric.data()[i], i, d, options, worst[k]);
      }
    }
    const Mat numeric_out = (out_up - out_down) / (2 * options.eps);
    report.output.shape = Shape{jv.rows(), jv.cols()};
    for (Index i = 0; i < jv.size(); ++i) {
      compare(report.output, jv.data()[i], numeric_out.data()[i], i, d, options, worst_out);
    }
  }
  report.directions = directions;
  return report;
}

std::vector<OpCheck> blame(const Tape<double>& tape, const GradcheckOptions& options, int order) {
  if (order != 1 && order != 2) {
    throw UsageError(fmt::format("blame: order must be 1 or 2, got {}", order));
  }
  std::vector<OpCheck> out;
  for (std::size_t i = 0; i < tape.size(); ++i) {
    const Op& op = tape.op(i);
    const bool skip = std::visit(
        [](const auto& o) {
          using O = std::decay_t<decltype(o)>;
          return kIsLeaf<O> || stops_gradient<O>();
        },
        op);
    if (skip) continue;
    std::vector<NamedTensor> inputs;
    Index elements = 0;
    for (std::uint32_t j : tape.inputs_of(i)) {
      inputs.push_back({fmt::format("input {}", inputs.size()), Mat(tape.value(j))});
      elements += inputs.back().value.size();
    }
    GradcheckOptions o = options;
    o.fast = options.fast || elements > 256;
    const Op recorded = op;  // attributes point into `tape`, which outlives this check
    const std::size_t arity = inputs.size();
    const GradcheckReport r = gradcheck(
        [&](Tape<double>& t, std::span<const Var<double>> in) { return t.record(recorded, in); },
        inputs, {}, o);
    OpCheck c;
    c.node = i;
    c.op = std::string(tape.op_name(i));
    c.scope = tape.scope_path(i);
    c.passed = r.passed();
    for (const TensorCheck& t : r.tensors) {
      c.max_abs_error = std::max(c.max_abs_error, t.max_abs_error);
      c.max_rel_error = std::max(c.max_rel_error, t.max_rel_error);
    }
    if (!c.passed) {
      c.rule = "backward";
    } else if (order == 2) {
      // Σ op(x) ⊙ G with G an input too: its Hessian holds the op's second-order term (x, x)
      // and its Jacobian (x, G), so a wrong rule of either kind shows.
      const Shape ys = tape.shape(i);
      std::mt19937_64 rng(options.seed + i);
      std::normal_distribution<double> normal;
      Mat gy(ys.rows, ys.cols);
      for (Index e = 0; e < gy.size(); ++e) gy.data()[e] = normal(rng);
      inputs.push_back({"gy", gy});
      const GradgradcheckReport r2 = gradgradcheck(
          [&](Tape<double>& t, std::span<const Var<double>> in) {
            const Var<double> y = t.record(recorded, in.first(arity));
            return sum(mul(y, in[arity]));
          },
          inputs, {}, o);
      for (const TensorCheck& t : r2.tensors) {
        c.max_abs_error = std::max(c.max_abs_error, t.max_abs_error);
        c.max_rel_error = std::max(c.max_rel_error, t.max_rel_error);
      }
      if (!r2.output.passed || !r2.transpose_passed()) {
        c.rule = "tangent";
      } else if (!r2.passed()) {
        c.rule = "second-order";
      }
      c.passed = r2.passed();
    }
    out.push_back(std::move(c));
  }
  return out;
}

bool GradcheckReport::passed() const {
  return std::all_of(tensors.begin(), tensors.end(), [](const TensorCheck& c) { return c.passed; });
}

const TensorCheck& GradcheckReport::at(std::string_view name) const {
  for (const TensorCheck& c : tensors) {
    if (c.name == name) return c;
  }
  throw UsageError(fmt::format("gradcheck: no tensor named '{}' in the report", name));
}

std::string GradcheckReport::to_string() const {
  std::string s =
      fmt::format("gradcheck {}: {} tensor(s), {}, eps {:g}, atol {:g}, rtol {:g}\n",
                  passed() ? "PASSED" : "FAILED", tensors.size(),
                  options.fast ? fmt::format("{} random directions each", options.directions)
                               : std::string("every element"),
                  options.eps, options.atol, options.rtol);
  s += fmt::format("  {:<20} {:>9} {:>12} {:>12} {:>10} {:>14} {:>14}  {}\n", "tensor", "shape",
                   "max abs err", "max rel err", "worst", "analytic", "numeric", "result");
  for (const TensorCheck& c : tensors) {
    const std::string where = c.worst_row >= 0   ? fmt::format("({},{})", c.worst_row, c.worst_col)
                              : c.worst_col >= 0 ? fmt::format("dir {}", c.worst_col)
                                                 : std::string("-");
    s += fmt::format("  {:<20} {:>9} {:>12.3e} {:>12.3e} {:>10} {:>14.6e} {:>14.6e}  {}\n", c.name,
                     rwd::to_string(c.shape), c.max_abs_error, c.max_rel_error, where, c.analytic,
                     c.numeric, c.passed ? "ok" : "FAIL");
  }
  return s;
}

std::ostream& operator<<(std::ostream& out, const GradcheckReport& report) {
  return out << report.to_string();
}

bool GradgradcheckReport::passed() const {
  return output.passed && transpose_passed() &&
         std::all_of(tensors.begin(), tensors.end(), [](const TensorCheck& c) { return c.passed; });
}

const TensorCheck& GradgradcheckReport::at(std::string_view name) const {
  if (name == "output") return output;
  for (const TensorCheck& c : tensors) {
    if (c.name == name) return c;
  }
  throw UsageError(fmt::format("gradgradcheck: no tensor named '{}' in the report", name));
}

std::string GradgradcheckReport::to_string() const {
  std::string s = fmt::format(
      "gradgradcheck {}: {} tensor(s), {} direction(s) ({}), eps {:g}, atol {:g}, rtol {:g}\n",
      passed() ? "PASSED" : "FAILED", tensors.size(), directions,
      options.fast ? "random" : "every element", options.eps, options.atol, options.rtol);
  s += fmt::format("  {:<20} {:>9} {:>12} {:>12} {:>12} {:>14} {:>14}  {}\n", "H·v of", "shape",
                   "max abs err", "max rel err", "worst", "analytic", "numeric", "result");
  const auto line = [&](const TensorCheck& c) {
    const std::string where =
        c.worst_col < 0 ? std::string("-") : fmt::format("{} dir {}", c.worst_row, c.worst_col);
    s += fmt::format("  {:<20} {:>9} {:>12.3e} {:>12.3e} {:>12} {:>14.6e} {:>14.6e}  {}\n", c.name,
                     rwd::to_string(c.shape), c.max_abs_error, c.max_rel_error, where, c.analytic,
                     c.numeric, c.passed ? "ok" : "FAIL");
  };
  for (const TensorCheck& c : tensors) line(c);
  s += "  J·v (tangent) of:\n";
  line(output);
  s += fmt::format(
      "  transpose identity <R, J·v> = <Jᵀ·R, v>: {:.12e} vs {:.12e}, relative gap "
      "{:.2e} (tolerance {:.0e})  {}\n",
      transpose_lhs, transpose_rhs, transpose_error, transpose_tolerance,
      transpose_passed() ? "ok" : "FAIL");
  return s;
}

std::ostream& operator<<(std::ostream& out, const GradgradcheckReport& report) {
  return out << report.to_string();
}

}  // namespace rwd
