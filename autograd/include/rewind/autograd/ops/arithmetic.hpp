// Elementwise arithmetic. No broadcasting: binary ops need equal shapes.
#pragma once

#include <cmath>

#include "rewind/autograd/op_support.hpp"

namespace rwd::ops {

/// y = a + b;  ga = gy, gb = gy
struct Add : BinaryShape<Add> {
  static constexpr std::string_view name = "add";
  static constexpr Rules kRules = Rules::linear;
  static constexpr bool kAccumulates = true;
  static constexpr std::uint8_t kPassesGradient = 0b11;
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    y = x[0] + x[1];
  }
  template <class T>
  void backward(const Inputs<T>&, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    if (g.wants(0)) g.put(0, gy);
    if (g.wants(1)) g.put(1, gy);
  }
};

/// y = a - b;  ga = gy, gb = -gy
struct Sub : BinaryShape<Sub> {
  static constexpr std::string_view name = "sub";
  static constexpr Rules kRules = Rules::linear;
  static constexpr bool kAccumulates = true;
  static constexpr std::uint8_t kPassesGradient = 0b01;
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    y = x[0] - x[1];
  }
  template <class T>
  void backward(const Inputs<T>&, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    if (g.wants(0)) g.put(0, gy);
    if (g.wants(1)) g.put(1, -gy);
  }
};

/// y = a ⊙ b;  ga = gy ⊙ b, gb = gy ⊙ a
struct Mul : BinaryShape<Mul> {
  static constexpr std::string_view name = "mul";
  static constexpr Rules kRules = Rules::bilinear;
  static constexpr bool kAccumulates = true;
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    y.array() = x[0].array() * x[1].array();
  }
  template <class T>
  void backward(const Inputs<T>& x, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    if (g.wants(0)) detail::times_gradient(g[0], g.adds(0), x[1].array(), gy);
    if (g.wants(1)) detail::times_gradient(g[1], g.adds(1), x[0].array(), gy);
  }
  /// backward(ġy) + S in one pass per input: ġa = ġy ⊙ b + gy ⊙ ḃ, ġb = ġy ⊙ a + gy ⊙ ȧ.
  // NOTE: for speed: three products per gate and step in an LSTM; one pass instead of three.
  template <class T>
  void second_order_sweep(const Inputs<T>& x, ConstMap<T> y, ConstMap<T> gy, const T* gdot,
                          const Inputs<T>& dx, ConstMap<T>, Grads<T>& g) const {
    if (gdot == nullptr || !dx.has(0) || !dx.has(1)) {
      if (gdot != nullptr) backward(x, y, ConstMap<T>(gdot, gy.rows(), gy.cols()), g);
      for (int k = 0; k < 2; ++k) {  // S_k = gy ⊙ (the other operand's tangent)
        if (!g.wants(k)) continue;
        if (dx.has(1 - k)) {
          detail::put(g[k], gdot != nullptr || g.adds(k), gy.array() * dx[1 - k].array());
        } else if (gdot == nullptr && !g.adds(k)) {
          g[k].setZero();
        }
      }
      return;
    }
    const ConstMap<T> gd(gdot, gy.rows(), gy.cols());
    for (int k = 0; k < 2; ++k) {
      if (g.wants(k)) {
        detail::put(g[k], g.adds(k),
                    gd.array() * x[1 - k].array() + gy.array() * dx[1 - k].array());
      }
    }
  }
};

/// y = a / b;  ga = gy / b, gb = -gy ⊙ y / b;  ẏ = (ȧ - y ⊙ ḃ) / b
struct Div : BinaryShape<Div> {
  static constexpr std::string_view name = "div";
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    y.array() = x[0].array() / x[1].array();
  }
  template <class T>
  void backward(const Inputs<T>& x, ConstMap<T> y, ConstMap<T> gy, Grads<T>& g) const {
    // -gy * y / b rather than -gy * a / b²: b² overflows in float for |b| > 1.8e19.
    if (g.wants(0)) g[0].array() = gy.array() / x[1].array();
    if (g.wants(1)) g[1].array() = -gy.array() * y.array() / x[1].array();
  }
  template <class T>
  void tangent(const Inputs<T>& x, ConstMap<T> y, const Inputs<T>& dx, MutMap<T> dy) const {
    if (dx.has(0)) {
      dy.array() = dx[0].array() / x[1].array();
    } else {
      dy.setZero();
    }
    if (dx.has(1)) dy.array() -= y.array() * dx[1].array() / x[1].array();
  }
  /// S_a = -gy ⊙ ḃ / b², S_b = -gy ⊙ (ẏ - y ⊙ ḃ / b) / b (divided twice: b² overflows in float)
  template <class T>
  void second_order(const Inputs<T>& x, ConstMap<T> y, ConstMap<T> gy, const Inputs<T>& dx,
                    ConstMap<T> dy, Grads<T>& g) const {
    const auto b = x[1].array();
    if (g.wants(0)) {
      if (dx.has(1)) {
        g[0].array() = -gy.array() * dx[1].array() / b / b;
      } else {
        g[0].setZero();
      }
    }
    if (g.wants(1)) {
      if (dx.has(1)) {
        g[1].array() = -gy.array() * (dy.array() - y.array() * dx[1].array() / b) / b;
      } else {
        g[1].array() = -gy.array() * dy.array() / b;
      }
    }
  }
};

/// y = -x;  g = -gy
struct Neg : UnaryShape {
  static constexpr std::string_view name = "neg";
  static constexpr Rules kRules = Rules::linear;
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    y = -x[0];
  }
  template <class T>
  void backward(const Inputs<T>&, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    g[0] = -gy;
  }
};

/// y = c·x for a constant c;  g = c·gy
struct Scale {  // no UnaryShape base, so that Scale{c} builds it
  static constexpr int arity = 1;
  Shape shape(std::span<const Shape> x) const { return x[0]; }
  static constexpr std::string_view name = "scale";
  static constexpr bool kRowwise = true;
  static constexpr Rules kRules = Rules::linear;
  double c = 1;
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    y = x[0] * static_cast<T>(c);
  }
  template <class T>
  void backward(const Inputs<T>&, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    detail::times_gradient(g[0], false, static_cast<T>(c), gy);
  }
};

/// y = x + c for a constant c;  g = gy
struct AddScalar {  // no UnaryShape base, so that AddScalar{c} builds it
  static constexpr int arity = 1;
  Shape shape(std::span<const Shape> x) const { return x[0]; }
  static constexpr std::string_view name = "add_scalar";
  static constexpr std::uint8_t kPassesGradient = 0b1;
  static constexpr bool kRowwise = true;
  static constexpr Rules kRules = Rules::piecewise_linear;  // affine: ẏ = ẋ
  double c = 0;
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    y.array() = x[0].array() + static_cast<T>(c);
  }
  template <class T>
  void backward(const Inputs<T>&, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    g[0] = gy;
  }
};

/// y = x^p for a constant p;  g = p·x^(p-1) ⊙ gy  (g = 0 for p = 0);  f'' = p(p-1)·x^(p-2)
struct Pow {  // no UnaryShape base, so that Pow{c} builds it
  static constexpr int arity = 1;
  Shape shape(std::span<const Shape> x) const { return x[0]; }
  static constexpr std::string_view name = "pow";
  static constexpr bool kRowwise = true;
  static constexpr Rules kRules = Rules::elementwise;
  double p = 1;
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    y.array() = x[0].array().pow(static_cast<T>(p));
  }
  template <class T>
  void backward(const Inputs<T>& x, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    // x^(p-1) directly, not y/x: y/x is 0/0 at x = 0 for p > 1.
    if (p == 0) {
      g[0].setZero();
    } else {
      g[0].array() = static_cast<T>(p) * x[0].array().pow(static_cast<T>(p - 1)) * gy.array();
    }
  }
  template <class T>
  void curvature(const Inputs<T>& x, ConstMap<T>, ConstMap<T> gy, ConstMap<T> dx, MutMap<T> out,
                 bool add) const {
    if (p == 0 || p == 1) {  // x^(p-2) would be 0·x⁻² = NaN at x = 0
      if (!add) out.setZero();
    } else {
      detail::put(out, add,
                  static_cast<T>(p * (p - 1)) * x[0].array().pow(static_cast<T>(p - 2)) *
                      dx.array() * gy.array());
    }
  }
};

/// y = x²;  g = 2x ⊙ gy;  f'' = 2
struct Square : UnaryShape {
  static constexpr std::string_view name = "square";
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    y.array() = x[0].array().square();
  }
  template <class T>
  void backward(const Inputs<T>& x, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    g[0].array() = T(2) * x[0].array() * gy.array();
  }
  template <class T>
  void curvature(const Inputs<T>&, ConstMap<T>, ConstMap<T> gy, ConstMap<T> dx, MutMap<T> out,
                 bool add) const {
    detail::put(out, add, T(2) * dx.array() * gy.array());
  }
};

/// y = √x;  g = gy / (2y);  f'' = -1 / (4y³)
struct Sqrt : UnaryShape {
  static constexpr std::string_view name = "sqrt";
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    y.array() = x[0].array().sqrt();
  }
  template <class T>
  void backward(const Inputs<T>&, ConstMap<T> y, ConstMap<T> gy, Grads<T>& g) const {
    g[0].array() = gy.array() / (T(2) * y.array());
  }
  template <class T>
  void curvature(const Inputs<T>&, ConstMap<T> y, ConstMap<T> gy, ConstMap<T> dx, MutMap<T> out,
                 bool add) const {
    // Divided three times rather than by y³, which overflows in float for y > 7e12.
    detail::put(out, add, T(-0.25) * dx.array() * gy.array() / y.array() / y.array() / y.array());
  }
};

/// y = eˣ;  g = y ⊙ gy;  f'' = y
struct Exp : UnaryShape {
  static constexpr std::string_view name = "exp";
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    y.array() = x[0].array().exp();
  }
  template <class T>
  void backward(const Inputs<T>&, ConstMap<T> y, ConstMap<T> gy, Grads<T>& g) const {
    g[0].array() = y.array() * gy.array();
  }
  template <class T>
  void curvature(const Inputs<T>&, ConstMap<T> y, ConstMap<T> gy, ConstMap<T> dx, MutMap<T> out,
                 bool add) const {
    detail::put(out, add, y.array() * dx.array() * gy.array());
  }
};

/// y = ln x;  g = gy / x;  f'' = -1 / x²
struct Log : UnaryShape {
  static constexpr std::string_view name = "log";
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    y.array() = x[0].array().log();
  }
  template <class T>
  void backward(const Inputs<T>& x, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    g[0].array() = gy.array() / x[0].array();
  }
  template <class T>
  void curvature(const Inputs<T>& x, ConstMap<T>, ConstMap<T> gy, ConstMap<T> dx, MutMap<T> out,
                 bool add) const {
    detail::put(out, add, -dx.array() * gy.array() / x[0].array() / x[0].array());
  }
};

/// y = |x|;  g = sign(x) ⊙ gy  (sign(0) = 0, the subgradient PyTorch uses)
struct Abs : UnaryShape {
  static constexpr std::string_view name = "abs";
  static constexpr Rules kRules = Rules::piecewise_linear;
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    y.array() = x[0].array().abs();
  }
  template <class T>
  void backward(const Inputs<T>& x, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    g[0].array() = x[0].array().sign() * gy.array();
  }
};

/// y = sin x;  g = cos(x) ⊙ gy;  f'' = -sin x
struct Sin : UnaryShape {
  static constexpr std::string_view name = "sin";
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    y.array() = x[0].array().sin();
  }
  template <class T>
  void backward(const Inputs<T>& x, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    g[0].array() = x[0].array().cos() * gy.array();
  }
  template <class T>
  void curvature(const Inputs<T>&, ConstMap<T> y, ConstMap<T> gy, ConstMap<T> dx, MutMap<T> out,
                 bool add) const {
    detail::put(out, add, -y.array() * dx.array() * gy.array());
  }
};

/// y = cos x;  g = -sin(x) ⊙ gy;  f'' = -cos x
struct Cos : UnaryShape {
  static constexpr std::string_view name = "cos";
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    y.array() = x[0].array().cos();
  }
  template <class T>
  void backward(const Inputs<T>& x, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    g[0].array() = -x[0].array().sin() * gy.array();
  }
  template <class T>
  void curvature(const Inputs<T>&, ConstMap<T> y, ConstMap<T> gy, ConstMap<T> dx, MutMap<T> out,
                 bool add) const {
    detail::put(out, add, -y.array() * dx.array() * gy.array());
  }
};

/// y = max(a, b) (Larger) or min(a, b) elementwise. ga = w ⊙ gy, gb = (1 − w) ⊙ gy with w the
/// share of a: 1 where a wins, 0 where b does, ½ on a tie (PyTorch's rule for torch.maximum and
/// torch.minimum); ẏ = w ⊙ ȧ + (1 − w) ⊙ ḃ; piecewise linear, so no second-order term.
template <bool Larger>
struct Extremum : BinaryShape<Extremum<Larger>> {
  static constexpr std::string_view name = Larger ? "maximum" : "minimum";
  template <class T>
  static T share(T a, T b) {
    if (a == b) return T(0.5);
    return (Larger ? a > b : a < b) ? T(1) : T(0);
  }
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    if constexpr (Larger) {
      y.array() = x[0].array().max(x[1].array());
    } else {
      y.array() = x[0].array().min(x[1].array());
    }
  }
  template <class T>
  void backward(const Inputs<T>& x, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    const T *a = x[0].data(), *b = x[1].data(), *dy = gy.data();
    T* ga = g.wants(0) ? g[0].data() : nullptr;
    T* gb = g.wants(1) ? g[1].data() : nullptr;
    for (Index i = 0; i < gy.size(); ++i) {
      const T w = share(a[i], b[i]);
      if (ga != nullptr) ga[i] = w * dy[i];
      if (gb != nullptr) gb[i] = (T(1) - w) * dy[i];
    }
  }
  template <class T>
  void tangent(const Inputs<T>& x, ConstMap<T>, const Inputs<T>& dx, MutMap<T> dy) const {
    const T *a = x[0].data(), *b = x[1].data();
    const T* da = dx.has(0) ? dx[0].data() : nullptr;
    const T* db = dx.has(1) ? dx[1].data() : nullptr;
    T* out = dy.data();
    for (Index i = 0; i < dy.size(); ++i) {
      const T w = share(a[i], b[i]);
      out[i] = (da != nullptr ? w * da[i] : T(0)) + (db != nullptr ? (T(1) - w) * db[i] : T(0));
    }
  }
  template <class T>
  void second_order(const Inputs<T>&, ConstMap<T>, ConstMap<T>, const Inputs<T>&, ConstMap<T>,
                    Grads<T>& g) const {
    for (int k = 0; k < 2; ++k) {
      if (g.wants(k)) g[k].setZero();
    }
  }
};
using Maximum = Extremum<true>;
using Minimum = Extremum<false>;

}  // namespace rwd::ops
