// Activations, each written to stay finite at |x| = 1000 in float and double.
#pragma once

#include "rewind/autograd/op_support.hpp"

namespace rwd::ops {

/// y = 1 / (1 + e⁻ˣ);  g = y(1 - y) ⊙ gy;  f'' = y(1 - y)(1 - 2y)
struct Sigmoid : UnaryShape {
  static constexpr std::string_view name = "sigmoid";
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    // Eigen's logistic saturates to exactly 0 or 1 instead of dividing by exp(1000) = inf.
    detail::packetwise<T>(x[0], y, [](const auto& a) { return a.logistic(); });
  }
  template <class T>
  void backward(const Inputs<T>&, ConstMap<T> y, ConstMap<T> gy, Grads<T>& g) const {
    detail::times_gradient(g[0], false, y.array() * (T(1) - y.array()), gy);
  }
  template <class T>
  void curvature(const Inputs<T>&, ConstMap<T> y, ConstMap<T> gy, ConstMap<T> dx, MutMap<T> out,
                 bool add) const {
    detail::put(
        out, add,
        y.array() * (T(1) - y.array()) * (T(1) - T(2) * y.array()) * dx.array() * gy.array());
  }
};

/// y = tanh x;  g = (1 - y²) ⊙ gy;  f'' = -2y(1 - y²)
struct Tanh : UnaryShape {
  static constexpr std::string_view name = "tanh";
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    detail::packetwise<T>(x[0], y, [](const auto& a) { return a.tanh(); });
  }
  template <class T>
  void backward(const Inputs<T>&, ConstMap<T> y, ConstMap<T> gy, Grads<T>& g) const {
    detail::times_gradient(g[0], false, T(1) - y.array().square(), gy);
  }
  template <class T>
  void curvature(const Inputs<T>&, ConstMap<T> y, ConstMap<T> gy, ConstMap<T> dx, MutMap<T> out,
                 bool add) const {
    detail::put(out, add,
                T(-2) * y.array() * (T(1) - y.array().square()) * dx.array() * gy.array());
  }
};

/// y = max(x, 0);  g = [x > 0] ⊙ gy;  f'' = 0 (away from the kink)
struct Relu : UnaryShape {
  static constexpr std::string_view name = "relu";
  static constexpr Rules kRules = Rules::piecewise_linear;
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    y.array() = x[0].array().max(T(0));
  }
  template <class T>
  void backward(const Inputs<T>& x, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    g[0].array() = (x[0].array() > T(0)).select(gy.array(), T(0));
  }
};

/// y = ln(1 + eˣ);  g = σ(x) ⊙ gy;  f'' = σ(x)σ(-x)
struct Softplus : UnaryShape {
  static constexpr std::string_view name = "softplus";
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    // NOTE: a fused primitive for stability: ln(1 + eˣ) = max(x, 0) + ln(1 + e^-|x|) never
    // evaluates e^1000.
    y.array() = x[0].array().max(T(0)) + (-x[0].array().abs()).exp().log1p();
  }
  template <class T>
  void backward(const Inputs<T>& x, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    g[0].array() = x[0].array().logistic() * gy.array();
  }
  template <class T>
  void curvature(const Inputs<T>& x, ConstMap<T>, ConstMap<T> gy, ConstMap<T> dx, MutMap<T> out,
                 bool add) const {
    // σ(x)σ(-x) rather than σ(1 - σ): 1 - σ(x) cancels to 0 for large x where σ(-x) is tiny.
    detail::put(out, add,
                x[0].array().logistic() * (-x[0].array()).logistic() * dx.array() * gy.array());
  }
};

/// y = ln σ(x) = -softplus(-x);  g = σ(-x) ⊙ gy;  f'' = -σ(x)σ(-x)
struct LogSigmoid : UnaryShape {
  static constexpr std::string_view name = "log_sigmoid";
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    // NOTE: fused for stability: ln σ(x) = min(x, 0) - ln(1 + e^-|x|); ln(σ(x)) would give
    // ln(0) = -inf at x = -1000 where the true value is -1000.
    y.array() = x[0].array().min(T(0)) - (-x[0].array().abs()).exp().log1p();
  }
  template <class T>
  void backward(const Inputs<T>& x, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    g[0].array() = (-x[0].array()).logistic() * gy.array();
  }
  template <class T>
  void curvature(const Inputs<T>& x, ConstMap<T>, ConstMap<T> gy, ConstMap<T> dx, MutMap<T> out,
                 bool add) const {
    detail::put(out, add,
                -x[0].array().logistic() * (-x[0].array()).logistic() * dx.array() * gy.array());
  }
};

}  // namespace rwd::ops
