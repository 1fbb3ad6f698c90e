// Optimizers with torch.optim's update rules (PyTorch 1.13), gradient clipping and learning-rate
// schedules. Optimizers see only Parameters: they read `grad` and update `value`. A parameter
// whose grad is empty (no backward reached it) is skipped, as PyTorch skips a None grad.
#pragma once

#include <map>
#include <memory>
#include <rewind/autograd/parameter.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace rwd::optim {

/// An optimizer's state as named tensors, torch.optim's way: per parameter (by name) the buffers
/// it has made so far (Adam/AdamW `exp_avg`, `exp_avg_sq`; RMSprop `square_avg`, `grad_avg`,
/// `momentum_buffer`; SGD `momentum_buffer`; Adagrad `sum`), the step count and the
/// hyperparameters. A buffer appears once its parameter has been updated (as in torch, where a
/// parameter's state is empty until its first step), so a state saved before the first step has
/// no tensors.
template <class T>
struct OptimizerState {
  struct Tensor {
    std::string param;  ///< the parameter's name
    std::string name;   ///< torch.optim's name of the buffer
    Matrix<T> value;
  };
  std::string kind;  ///< "sgd", "rmsprop", "adam", "adamw" or "adagrad"
  long step = 0;     ///< step() calls so far
  double lr = 0;
  std::map<std::string, double> hyperparameters;  ///< torch's names (betas as beta1, beta2)
  std::vector<Tensor> tensors;
};

/// The interface the training loop and the `rewind` command use.
template <class T>
class Optimizer {
 public:
  explicit Optimizer(std::vector<Parameter<T>*> params, double lr);
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  /// One update of every parameter from its current gradient.
  void step();
  /// Sets every parameter's gradient to zero.
  void zero_grad();

  double lr() const { return lr_; }
  void set_lr(double lr) { lr_ = lr; }
  /// Number of step() calls so far.
  long steps() const { return t_; }
  const std::vector<Parameter<T>*>& params() const { return params_; }

  /// The optimizer's name, as make_optimizer takes it.
  virtual std::string kind() const = 0;
  /// Hyperparameters other than the learning rate, by torch.optim's names.
  virtual std::map<std::string, double> hyperparameters() const = 0;

  /// A copy of the whole state (see OptimizerState).
  OptimizerState<T> state() const;
  /// Every reason `s` cannot be loaded: another kind or other hyperparameters, a negative step,
  /// a buffer for a parameter this optimizer does not have (by name), an unknown buffer name, a
  /// shape other than its parameter's. Empty: load_state will succeed.
  std::vector<std::string> check_state(const OptimizerState<T>& s) const;
  /// Restores the step count, learning rate and buffers (buffers absent from `s` are dropped, as
  /// for a parameter never updated). Throws UsageError listing check_state's problems and then
  /// changes nothing.
  void load_state(const OptimizerState<T>& s);

 protected:
  /// One kind of per-parameter buffer: torch's name and where the buffers live.
  struct Slot {
    const char* name;
    std::vector<Matrix<T>>* buffers;
  };
  /// The optimizer's buffers, for state() and load_state().
  virtual std::vector<Slot> slots() = 0;

  /// Updates parameter k (its grad is non-empty) at step t (1-based).
  virtual void update(std::size_t k, Parameter<T>& p, long t) = 0;
  /// A per-parameter state buffer, created as zeros of p's shape on first use.
  Matrix<T>& buffer(std::vector<Matrix<T>>& buffers, std::size_t k, const Parameter<T>& p);

 private:
  std::vector<Parameter<T>*> params_;
  double lr_;
  long t_ = 0;
};

struct SgdOptions {
  double lr = 0.01;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;
};
/// g = ∇ + wd·p;  b = μ·b + (1 - dampening)·g (b = g on the first step);
/// g = g + μ·b (nesterov) or b;  p -= lr·g
template <class T>
class Sgd : public Optimizer<T> {
 public:
  Sgd(std::vector<Parameter<T>*> params, const SgdOptions& o);
  std::string kind() const override { return "sgd"; }
  std::map<std::string, double> hyperparameters() const override;

 private:
  std::vector<typename Optimizer<T>::Slot> slots() override;
  void update(std::size_t k, Parameter<T>& p, long t) override;
  SgdOptions o_;
  std::vector<Matrix<T>> momentum_;
};

struct RmsPropOptions {
  double lr = 0.01;
  double alpha = 0.99;
  double eps = 1e-8;
  double weight_decay = 0;
  double momentum = 0;
  bool centered = false;
};
/// g = ∇ + wd·p;  v = α·v + (1 - α)·g²;  centered: m = α·m + (1 - α)·g, d = √(v - m²) + ε,
/// else d = √v + ε;  with momentum b = μ·b + g/d, p -= lr·b;  without, p -= lr·g/d
template <class T>
class RmsProp : public Optimizer<T> {
 public:
  RmsProp(std::vector<Parameter<T>*> params, const RmsPropOptions& o);
  std::string kind() const override { return "rmsprop"; }
  std::map<std::string, double> hyperparameters() const override;

 private:
  std::vector<typename Optimizer<T>::Slot> slots() override;
  void update(std::size_t k, Parameter<T>& p, long t) override;
  RmsPropOptions o_;
  std::vector<Matrix<T>> square_avg_, grad_avg_, momentum_;
};

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0;  ///< Adam: added to the gradient; AdamW: decoupled, p *= 1 - lr·wd
};
/// g = ∇ + wd·p;  m = β₁m + (1 - β₁)g;  v = β₂v + (1 - β₂)g²;
/// p -= lr/(1 - β₁ᵗ) · m / (√v / √(1 - β₂ᵗ) + ε)
template <class T>
class Adam : public Optimizer<T> {
 public:
  Adam(std::vector<Parameter<T>*> params, const AdamOptions& o, bool decoupled = false);
  std::string kind() const override { return decoupled_ ? "adamw" : "adam"; }
  std::map<std::string, double> hyperparameters() const override;

 private:
  std::vector<typename Optimizer<T>::Slot> slots() override;
  void update(std::size_t k, Parameter<T>& p, long t) override;
  AdamOptions o_;
  bool decoupled_;
  std::vector<Matrix<T>> m_, v_;
};

/// AdamW (Loshchilov & Hutter): p *= 1 - lr·wd, then Adam's update with g = ∇.
/// Default weight_decay 0.01, as torch.optim.AdamW.
template <class T>
class AdamW : public Adam<T> {
 public:
  AdamW(std::vector<Parameter<T>*> params, AdamOptions o = {.weight_decay = 0.01})
      : Adam<T>(std::move(params), o, true) {}
};

struct AdagradOptions {
  double lr = 0.01;
  double lr_decay = 0;
  double weight_decay = 0;
  double initial_accumulator_value = 0;
  double eps = 1e-10;
};
/// g = ∇ + wd·p;  s += g²;  p -= lr/(1 + (t - 1)·lr_decay) · g / (√s + ε)
template <class T>
class Adagrad : public Optimizer<T> {
 public:
  Adagrad(std::vector<Parameter<T>*> params, const AdagradOptions& o);
  std::string kind() const override { return "adagrad"; }
  std::map<std::string, double> hyperparameters() const override;

 private:
  std::vector<typename Optimizer<T>::Slot> slots() override;
  void update(std::size_t k, Parameter<T>& p, long t) override;
  AdagradOptions o_;
  std::vector<Matrix<T>> sum_;
};

// ---- clipping
// -------------------------------------------------------------------------------------

struct ClipOptions {
  /// Throw UsageError naming the parameters that hold NaN or Inf when the norm is not finite
  /// (PyTorch's error_if_nonfinite). Otherwise the gradients are left as they are.
  bool error_if_nonfinite = false;
};
/// Scales all gradients by max_norm / (‖g‖ + 1e-6) when the total 2-norm ‖g‖ over every
/// parameter exceeds max_norm (torch.nn.utils.clip_grad_norm_). Returns ‖g‖ before clipping.
template <class T>
double clip_grad_norm(const std::vector<Parameter<T>*>& params, double max_norm,
                      const ClipOptions& options = {});
/// Clamps every gradient element to [-clip, clip].
template <class T>
void clip_grad_value(const std::vector<Parameter<T>*>& params, double clip);

// ---- learning-rate schedules
// ----------------------------------------------------------------------

/// lr(t) = lr₀ · γ^⌊t / step_size⌋ (torch's StepLR).
struct StepSchedule {
  double base_lr;
  long step_size;
  double gamma = 0.1;
  double lr(long t) const;
};
/// lr(t) = η_min + (lr₀ - η_min)·(1 + cos(π·t/T_max))/2 for t ≤ T_max (torch's
/// CosineAnnealingLR, closed form), η_min afterwards.
struct CosineSchedule {
  double base_lr;
  long t_max;
  double eta_min = 0;
  double lr(long t) const;
};

/// An optimizer by name: "sgd", "rmsprop", "adam", "adamw", "adagrad", with the given learning
/// rate and torch's defaults otherwise. UsageError for an unknown name.
template <class T>
std::unique_ptr<Optimizer<T>> make_optimizer(std::string_view name,
                                             std::vector<Parameter<T>*> params, double lr);

}  // namespace rwd::optim
