// User-defined primitives. The built-in ops are structs in the `AllOps` registry, dispatched
// without virtual calls; a user who needs a primitive of their own (a fused kernel, an op under
// study, a deliberately wrong backward for testing a checker) derives from CustomOp<T> and
// records it with `custom(op, {x...})`. The tape keeps the object alive until clear().
#pragma once

#include <memory>

#include "rewind/autograd/op_support.hpp"

namespace rwd {

/// The type-independent half of a custom op: name, arity and shape rule.
class CustomOpBase {
 public:
  virtual ~CustomOpBase() = default;
  /// Shown in graphs and error messages.
  virtual std::string_view name() const = 0;
  /// Number of inputs, or kVariadic.
  virtual int arity() const = 0;
  /// Checks the input shapes (throw ShapeError) and returns the output shape.
  virtual Shape shape(std::span<const Shape> x) const = 0;
};

/// A primitive written by the user, with the same contract as a built-in op struct.
template <class T>
class CustomOp : public CustomOpBase {
 public:
  virtual void forward(const Inputs<T>& x, MutMap<T> y) const = 0;
  /// Assign every element of g[k] for each k with g.wants(k).
  virtual void backward(const Inputs<T>& x, ConstMap<T> y, ConstMap<T> gy, Grads<T>& g) const = 0;
  /// Forward mode: dy = J·dx, every element assigned; `dx.has(k)` is false where input k has no
  /// tangent (zero). Optional: the default throws UsageError naming the op, so a tangent sweep
  /// (jvp, hvp) that reaches an op without the rule stops there.
  virtual void tangent(const Inputs<T>& x, ConstMap<T> y, const Inputs<T>& dx, MutMap<T> dy) const {
    (void)x, (void)y, (void)dx, (void)dy;
    throw UsageError(fmt::format(
        "{}: custom op has no tangent rule: override CustomOp::tangent to use it in jvp or hvp",
        name()));
  }
  /// Second order: g[k] = d/dε backward_k(x + ε·dx, y + ε·dy, gy) for each k with g.wants(k),
  /// every element assigned. Optional: the default throws UsageError naming the op.
  virtual void second_order(const Inputs<T>& x, ConstMap<T> y, ConstMap<T> gy, const Inputs<T>& dx,
                            ConstMap<T> dy, Grads<T>& g) const {
    (void)x, (void)y, (void)gy, (void)dx, (void)dy, (void)g;
    throw UsageError(fmt::format(
        "{}: custom op has no second-order rule: override CustomOp::second_order to use it in "
        "hvp",
        name()));
  }
};

namespace ops {

/// The registry entry through which every CustomOp is dispatched.
struct Custom {
  static constexpr std::string_view name = "custom";
  static constexpr int arity = kVariadic;
  const CustomOpBase* fn = nullptr;
  Shape shape(std::span<const Shape> x) const { return fn->shape(x); }
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    static_cast<const CustomOp<T>*>(fn)->forward(x, y);
  }
  template <class T>
  void backward(const Inputs<T>& x, ConstMap<T> y, ConstMap<T> gy, Grads<T>& g) const {
    static_cast<const CustomOp<T>*>(fn)->backward(x, y, gy, g);
  }
  template <class T>
  void tangent(const Inputs<T>& x, ConstMap<T> y, const Inputs<T>& dx, MutMap<T> dy) const {
    static_cast<const CustomOp<T>*>(fn)->tangent(x, y, dx, dy);
  }
  template <class T>
  void second_order(const Inputs<T>& x, ConstMap<T> y, ConstMap<T> gy, const Inputs<T>& dx,
                    ConstMap<T> dy, Grads<T>& g) const {
    static_cast<const CustomOp<T>*>(fn)->second_order(x, y, gy, dx, dy, g);
  }
};

}  // namespace ops
}  // namespace rwd
