#include <algorithm>
#include <cmath>
#include <numbers>
#include <rewind/autograd/errors.hpp>
#include <rewind/optim/optimizer.hpp>

namespace rwd::optim {

// ---- Optimizer
// ------------------------------------------------------------------------------------

template <class T>
Optimizer<T>::Optimizer(std::vector<Parameter<T>*> params, double lr)
    : params_(std::move(params)), lr_(lr) {
  for (const Parameter<T>* p : params_) {
    if (p == nullptr) throw UsageError("Optimizer: null parameter");
  }
  if (!(lr >= 0)) throw UsageError(fmt::format("Optimizer: learning rate {} is negative", lr));
}

template <class T>
void Optimizer<T>::step() {
  ++t_;
  for (std::size_t k = 0; k < params_.size(); ++k) {
    Parameter<T>& p = *params_[k];
    if (p.grad.size() == 0) continue;
    if (p.grad.rows() != p.value.rows() || p.grad.cols() != p.value.cols()) {
      throw UsageError(
          fmt::format("Optimizer: parameter '{}' has a {}x{} gradient for a {}x{} value", p.name,
                      p.grad.rows(), p.grad.cols(), p.value.rows(), p.value.cols()));
    }
    update(k, p, t_);
    p.mark_changed();
  }
}

template <class T>
void Optimizer<T>::zero_grad() {
  for (Parameter<T>* p : params_) p->zero_grad();
}

template <class T>
Matrix<T>& Optimizer<T>::buffer(std::vector<Matrix<T>>& buffers, std::size_t k,
                                const Parameter<T>& p) {
  if (buffers.size() < params_.size()) buffers.resize(params_.size());
  Matrix<T>& b = buffers[k];
  if (b.size() == 0) b.setZero(p.value.rows(), p.value.cols());
  return b;
}

template <class T>
OptimizerState<T> Optimizer<T>::state() const {
  OptimizerState<T> s{kind(), t_, lr_, hyperparameters(), {}};
  // slots() only hands out pointers; reading through them does not change the optimizer.
  for (const Slot& slot : const_cast<Optimizer<T>*>(this)->slots()) {
    for (std::size_t k = 0; k < slot.buffers->size() && k < params_.size(); ++k) {
      if ((*slot.buffers)[k].size() > 0)
        s.tensors.push_back({params_[k]->name, slot.name, (*slot.buffers)[k]});
    }
  }
  return s;
}

template <class T>
std::vector<std::string> Optimizer<T>::check_state(const OptimizerState<T>& s) const {
  std::vector<std::string> problems;
  if (s.kind != kind())
    problems.push_back(fmt::format("the state is {}'s, this optimizer is {}", s.kind, kind()));
  if (s.step < 0) problems.push_back(fmt::format("step {} is negative", s.step));
  if (!(s.lr >= 0)) problems.push_back(fmt::format("learning rate {} is negative", s.lr));
  const auto mine = hyperparameters();
  for (const auto& [k, v] : mine) {
    const auto it = s.hyperparameters.find(k);
    if (it == s.hyperparameters.end()) {
      problems.push_back(fmt::format("hyperparameter {} is missing", k));
    } else if (it->second != v) {
      problems.push_back(fmt::format("{} is {} in the state but {} here", k, it->second, v));
    }
  }
  for (const auto& [k, v] : s.hyperparameters) {
    if (mine.count(k) == 0) problems.push_back(fmt::format("unknown hyperparameter {}", k));
  }
  std::vector<std::string> slot_names;
  for (const Slot& slot : const_cast<Optimizer<T>*>(this)->slots()) slot_names.push_back(slot.name);
  std::map<std::pair<std::string, std::string>, int> seen;
  for (const auto& t : s.tensors) {
    const auto p = std::find_if(params_.begin(), params_.end(),
                                [&](const Parameter<T>* q) { return q->name == t.param; });
    if (p == params_.end()) {
      problems.push_back(fmt::format("{} of '{}': no such parameter", t.name, t.param));
      continue;
    }
    if (std::find(slot_names.begin(), slot_names.end(), t.name) == slot_names.end()) {
      problems.push_back(fmt::format("'{}' has a buffer named {}, which {} does not keep", t.param,
                                     t.name, kind()));
      continue;
    }
    if (++seen[{t.param, t.name}] == 2)
      problems.push_back(fmt::format("{} of '{}' appears twice", t.name, t.param));
    if (t.value.rows() != (*p)->value.rows() || t.value.cols() != (*p)->value.cols()) {
      problems.push_back(fmt::format("{} of '{}' is {}x{}, the parameter is {}x{}", t.name, t.param,
                                     t.value.rows(), t.value.cols(), (*p)->value.rows(),
                                     (*p)->value.cols()));
    }
  }
  return problems;
}

template <class T>
void Optimizer<T>::load_state(const OptimizerState<T>& s) {
  const std::vector<std::string> problems = check_state(s);
  if (!problems.empty()) {
    std::string all;
    for (const std::string& p : problems) all += (all.empty() ? "" : "; ") + p;
    throw UsageError(fmt::format("Optimizer: cannot load the state: {}", all));
  }
  t_ = s.step;
  lr_ = s.lr;
  for (const Slot& slot : slots()) {
    slot.buffers->assign(params_.size(), Matrix<T>());
    for (const auto& t : s.tensors) {
      if (t.name != slot.name) continue;
      for (std::size_t k = 0; k < params_.size(); ++k) {
        if (params_[k]->name == t.param) (*slot.buffers)[k] = t.value;
      }
    }
  }
}

// ---- SGD
// --------------------------------------------------------------------------------------------

template <class T>
Sgd<T>::Sgd(std::vector<Parameter<T>*> params, const SgdOptions& o)
    : Optimizer<T>(std::move(params), o.lr), o_(o) {
  if (o.nesterov && (o.momentum <= 0 || o.dampening != 0)) {
    throw UsageError("Sgd: nesterov momentum requires a momentum and zero dampening");
  }
}

template <class T>
void Sgd<T>::update(std::size_t k, Parameter<T>& p, long) {
  Matrix<T> g = p.grad;
  if (o_.weight_decay != 0) g += static_cast<T>(o_.weight_decay) * p.value;
  if (o_.momentum != 0) {
    const bool first = momentum_.size() <= k || momentum_[k].size() == 0;
    Matrix<T>& b = this->buffer(momentum_, k, p);
    if (first) {
      b = g;
    } else {
      b = static_cast<T>(o_.momentum) * b + static_cast<T>(1 - o_.dampening) * g;
    }
    if (o_.nesterov) {
      g += static_cast<T>(o_.momentum) * b;
    } else {
      g = b;
    }
  }
  p.value -= static_cast<T>(this->lr()) * g;
}

template <class T>
std::map<std::string, double> Sgd<T>::hyperparameters() const {
  return {{"momentum", o_.momentum},
          {"dampening", o_.dampening},
          {"weight_decay", o_.weight_decay},
          {"nesterov", o_.nesterov ? 1 : 0}};
}

template <class T>
std::vector<typename Optimizer<T>::Slot> Sgd<T>::slots() {
  return {{"momentum_buffer", &momentum_}};
}

// ---- RMSprop
// ----------------------------------------------------------------------------------------

template <class T>
RmsProp<T>::RmsProp(std::vector<Parameter<T>*> params, const RmsPropOptions& o)
    : Optimizer<T>(std::move(params), o.lr), o_(o) {}

template <class T>
void RmsProp<T>::update(std::size_t k, Parameter<T>& p, long) {
  Matrix<T> g = p.grad;
  if (o_.weight_decay != 0) g += static_cast<T>(o_.weight_decay) * p.value;
  const T alpha = static_cast<T>(o_.alpha);
  Matrix<T>& v = this->buffer(square_avg_, k, p);
  v.array() = alpha * v.array() + (1 - alpha) * g.array().square();
  Matrix<T> denom;
  if (o_.centered) {
    Matrix<T>& m = this->buffer(grad_avg_, k, p);
    m = alpha * m + (1 - alpha) * g;
    denom = ((v.array() - m.array().square()).sqrt() + static_cast<T>(o_.eps)).matrix();
  } else {
    denom = (v.array().sqrt() + static_cast<T>(o_.eps)).matrix();
  }
  if (o_.momentum > 0) {
    Matrix<T>& b = this->buffer(momentum_, k, p);
    b.array() = static_cast<T>(o_.momentum) * b.array() + g.array() / denom.array();
    p.value -= static_cast<T>(this->lr()) * b;
  } else {
    p.value.array() -= static_cast<T>(this->lr()) * g.array() / denom.array();
  }
}

template <class T>
std::map<std::string, double> RmsProp<T>::hyperparameters() const {
  return {{"alpha", o_.alpha},
          {"eps", o_.eps},
          {"weight_decay", o_.weight_decay},
          {"momentum", o_.momentum},
          {"centered", o_.centered ? 1 : 0}};
}

template <class T>
std::vector<typename Optimizer<T>::Slot> RmsProp<T>::slots() {
  return {{"square_avg", &square_avg_}, {"grad_avg", &grad_avg_}, {"momentum_buffer", &momentum_}};
}

// ---- Adam, AdamW
// ------------------------------------------------------------------------------------

template <class T>
Adam<T>::Adam(std::vector<Parameter<T>*> params, const AdamOptions& o, bool decoupled)
    : Optimizer<T>(std::move(params), o.lr), o_(o), decoupled_(decoupled) {
  if (!(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1)) {
    throw UsageError(fmt::format("Adam: betas ({}, {}) not in [0, 1)", o.beta1, o.beta2));
  }
}

template <class T>
void Adam<T>::update(std::size_t k, Parameter<T>& p, long t) {
  const double lr = this->lr();
  Matrix<T> g = p.grad;
  if (decoupled_) {
    p.value *= static_cast<T>(1 - lr * o_.weight_decay);
  } else if (o_.weight_decay != 0) {
    g += static_cast<T>(o_.weight_decay) * p.value;
  }
  const T b1 = static_cast<T>(o_.beta1), b2 = static_cast<T>(o_.beta2);
  Matrix<T>& m = this->buffer(m_, k, p);
  Matrix<T>& v = this->buffer(v_, k, p);
  m = b1 * m + (1 - b1) * g;
  v.array() = b2 * v.array() + (1 - b2) * g.array().square();
  const double bc1 = 1 - std::pow(o_.beta1, static_cast<double>(t));
  const double bc2 = 1 - std::pow(o_.beta2, static_cast<double>(t));
  const T step_size = static_cast<T>(lr / bc1);
  p.value.array() -= step_size * m.array() /
                     (v.array().sqrt() / static_cast<T>(std::sqrt(bc2)) + static_cast<T>(o_.eps));
}

template <class T>
std::map<std::string, double> Adam<T>::hyperparameters() const {
  return {
      {"beta1", o_.beta1}, {"beta2", o_.beta2}, {"eps", o_.eps}, {"weight_decay", o_.weight_decay}};
}

template <class T>
std::vector<typename Optimizer<T>::Slot> Adam<T>::slots() {
  return {{"exp_avg", &m_}, {"exp_avg_sq", &v_}};
}

// ---- Adagrad
// ----------------------------------------------------------------------------------------

template <class T>
Adagrad<T>::Adagrad(std::vector<Parameter<T>*> params, const AdagradOptions& o)
    : Optimizer<T>(std::move(params), o.lr), o_(o) {}

template <class T>
void Adagrad<T>::update(std::size_t k, Parameter<T>& p, long t) {
  Matrix<T> g = p.grad;
  if (o_.weight_decay != 0) g += static_cast<T>(o_.weight_decay) * p.value;
  const bool first = sum_.size() <= k || sum_[k].size() == 0;
  Matrix<T>& s = this->buffer(sum_, k, p);
  if (first) s.setConstant(static_cast<T>(o_.initial_accumulator_value));
  const double clr = this->lr() / (1 + static_cast<double>(t - 1) * o_.lr_decay);
  s.array() += g.array().square();
  p.value.array() -= static_cast<T>(clr) * g.array() / (s.array().sqrt() + static_cast<T>(o_.eps));
}

template <class T>
std::map<std::string, double> Adagrad<T>::hyperparameters() const {
  return {{"lr_decay", o_.lr_decay},
          {"weight_decay", o_.weight_decay},
          {"initial_accumulator_value", o_.initial_accumulator_value},
          {"eps", o_.eps}};
}

template <class T>
std::vector<typename Optimizer<T>::Slot> Adagrad<T>::slots() {
  return {{"sum", &sum_}};
}

// ---- clipping
// ---------------------------------------------------------------------------------------

template <class T>
double clip_grad_norm(const std::vector<Parameter<T>*>& params, double max_norm,
                      const ClipOptions& options) {
  double sq = 0;
  for (const Parameter<T>* p : params) {
    if (p->grad.size() > 0)
      sq += static_cast<double>(p->grad.template cast<double>().squaredNorm());
  }
  const double norm = std::sqrt(sq);
  if (!std::isfinite(norm)) {
    if (options.error_if_nonfinite) {
      std::string bad;
      for (const Parameter<T>* p : params) {
        if (p->grad.size() == 0) continue;
        const bool nan = p->grad.array().isNaN().any();
        const bool inf = p->grad.array().isInf().any();
        if (nan || inf) {
          bad += fmt::format("{}{} in '{}'", bad.empty() ? "" : ", ",
                             nan && inf ? "NaN and Inf"
                             : nan      ? "NaN"
                                        : "Inf",
                             p->name);
        }
      }
      if (bad.empty()) bad = "the sum of squares overflows";
      throw UsageError(fmt::format("clip_grad_norm: gradient norm is not finite: {}", bad));
    }
    return norm;
  }
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1) {
    for (Parameter<T>* p : params) p->grad *= static_cast<T>(coef);
  }
  return norm;
}

template <class T>
void clip_grad_value(const std::vector<Parameter<T>*>& params, double clip) {
  const T c = static_cast<T>(clip);
  for (Parameter<T>* p : params) p->grad = p->grad.cwiseMax(-c).cwiseMin(c);
}

// ---- schedules
// --------------------------------------------------------------------------------------

double StepSchedule::lr(long t) const {
  return base_lr * std::pow(gamma, static_cast<double>(t / step_size));
}

double CosineSchedule::lr(long t) const {
  if (t >= t_max) return eta_min;
  return eta_min + (base_lr - eta_min) *
                       (1 + std::cos(std::numbers::pi * static_cast<double>(t) /
                                     static_cast<double>(t_max))) /
                       2;
}

template <class T>
std::unique_ptr<Optimizer<T>> make_optimizer(std::string_view name,
                                             std::vector<Parameter<T>*> params, double lr) {
  if (name == "sgd") return std::make_unique<Sgd<T>>(std::move(params), SgdOptions{.lr = lr});
  if (name == "rmsprop")
    return std::make_unique<RmsProp<T>>(std::move(params), RmsPropOptions{.lr = lr});
  if (name == "adam") return std::make_unique<Adam<T>>(std::move(params), AdamOptions{.lr = lr});
  if (name == "adamw") {
    return std::make_unique<AdamW<T>>(std::move(params),
                                      AdamOptions{.lr = lr, .weight_decay = 0.01});
  }
  if (name == "adagrad")
    return std::make_unique<Adagrad<T>>(std::move(params), AdagradOptions{.lr = lr});
  throw UsageError(
      fmt::format("unknown optimizer '{}' (expected sgd, rmsprop, adam, adamw or adagrad)", name));
}

#define REWIND_INSTANTIATE_OPTIM(T)                                            \
  template class Optimizer<T>;                                                 \
  template class Sgd<T>;                                                       \
  template class RmsProp<T>;                                                   \
  template class Adam<T>;                                                      \
  template class Adagrad<T>;                                                   \
  template double clip_grad_norm<T>(const std::vector<Parameter<T>*>&, double, \
                                    const ClipOptions&);                       \
  template void clip_grad_value<T>(const std::vector<Parameter<T>*>&, double); \
  template std::unique_ptr<Optimizer<T>> make_optimizer<T>(std::string_view,   \
                                                           std::vector<Parameter<T>*>, double);
REWIND_INSTANTIATE_OPTIM(float)
REWIND_INSTANTIATE_OPTIM(double)
#undef REWIND_INSTANTIATE_OPTIM

}  // namespace rwd::optim
