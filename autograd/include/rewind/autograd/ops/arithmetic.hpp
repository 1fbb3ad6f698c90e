// Elementwise arithmetic. No broadcasting: binary ops need equal shapes.
#pragma once

#include <cmath>

#include "rewind/autograd/op_support.hpp"

namespace rwd::ops {

/// y = a + b;  ga = gy, gb = gy
struct Add : BinaryShape<Add> {
  static constexpr std::string_view name = "add";
  static constexpr bool kAccumulates = true;
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
  static constexpr bool kAccumulates = true;
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
  static constexpr bool kAccumulates = true;
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    y.array() = x[0].array() * x[1].array();
  }
  template <class T>
  void backward(const Inputs<T>& x, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    if (g.wants(0)) g.put(0, gy.cwiseProduct(x[1]));
    if (g.wants(1)) g.put(1, gy.cwiseProduct(x[0]));
  }
};

/// y = a / b;  ga = gy / b, gb = -gy ⊙ y / b
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
};

/// y = -x;  g = -gy
struct Neg : UnaryShape {
  static constexpr std::string_view name = "neg";
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
  double c = 1;
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    y = x[0] * static_cast<T>(c);
  }
  template <class T>
  void backward(const Inputs<T>&, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    g[0] = gy * static_cast<T>(c);
  }
};

/// y = x + c for a constant c;  g = gy
struct AddScalar {  // no UnaryShape base, so that AddScalar{c} builds it
  static constexpr int arity = 1;
  Shape shape(std::span<const Shape> x) const { return x[0]; }
  static constexpr std::string_view name = "add_scalar";
  static constexpr bool kRowwise = true;
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

/// y = x^p for a constant p;  g = p·x^(p-1) ⊙ gy  (g = 0 for p = 0)
struct Pow {  // no UnaryShape base, so that Pow{c} builds it
  static constexpr int arity = 1;
  Shape shape(std::span<const Shape> x) const { return x[0]; }
  static constexpr std::string_view name = "pow";
  static constexpr bool kRowwise = true;
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
};

/// y = x²;  g = 2x ⊙ gy
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
};

/// y = √x;  g = gy / (2y)
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
};

/// y = eˣ;  g = y ⊙ gy
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
};

/// y = ln x;  g = gy / x
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
};

/// y = |x|;  g = sign(x) ⊙ gy  (sign(0) = 0, the subgradient PyTorch uses)
struct Abs : UnaryShape {
  static constexpr std::string_view name = "abs";
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    y.array() = x[0].array().abs();
  }
  template <class T>
  void backward(const Inputs<T>& x, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    g[0].array() = x[0].array().sign() * gy.array();
  }
};

}  // namespace rwd::ops
