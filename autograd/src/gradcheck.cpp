#include "rewind/autograd/gradcheck.hpp"

#include <algorithm>
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
  const std::vector<Var<double>>& vars() const { return vars_; }
  std::mt19937_64& rng() { return rng_; }

 private:
  const GradcheckFunction& f_;
  const std::vector<NamedTensor>& inputs_;
  std::mt19937_64 rng_;
  Tape<double> tape_;
  std::vector<Var<double>> vars_;
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

}  // namespace

GradcheckReport gradcheck(const GradcheckFunction& f, const std::vector<NamedTensor>& inputs,
                          const std::vector<Parameter<double>*>& params,
                          const GradcheckOptions& options) {
  if (!(options.eps > 0)) throw UsageError("gradcheck: eps must be positive");
  if (options.fast && options.directions < 1) {
    throw UsageError("gradcheck: fast mode needs at least one direction");
  }
  for (const Parameter<double>* p : params) {
    if (p == nullptr) throw UsageError("gradcheck: null parameter");
  }
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

std::vector<OpCheck> blame(const Tape<double>& tape, const GradcheckOptions& options) {
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

}  // namespace rwd
