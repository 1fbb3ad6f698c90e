// Softmax family and losses. Every one is a fused primitive for numerical stability: the
// row maximum is subtracted before exponentiating, and logs of sigmoids are never formed.
#pragma once

#include <cmath>
#include <cstdint>

#include "rewind/autograd/op_support.hpp"

namespace rwd::detail {
/// ln Σⱼ e^rⱼ of one row, computed as m + ln Σⱼ e^(rⱼ - m) with m = max r.
template <class Row>
auto log_sum_exp(const Row& r) {
  const auto m = r.maxCoeff();
  return m + std::log((r.array() - m).exp().sum());
}
}  // namespace rwd::detail

namespace rwd::ops {

/// yᵣ = xᵣ - ln Σⱼ e^xᵣⱼ for each row r;  gᵣ = gyᵣ - softmax(xᵣ)·Σⱼ gyᵣⱼ;
/// ẏᵣ = ẋᵣ - ⟨pᵣ, ẋᵣ⟩ (p = e^y);  Sᵣ = -pᵣ ⊙ ẏᵣ · Σⱼ gyᵣⱼ
struct LogSoftmaxRows {
  static constexpr std::string_view name = "log_softmax_rows";
  static constexpr int arity = 1;
  Shape shape(std::span<const Shape> x) const {
    if (x[0].cols == 0) detail::throw_shape(name, "rows are empty", to_string(x[0]));
    return x[0];
  }
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    for (Index r = 0; r < y.rows(); ++r) {
      y.row(r).array() = x[0].row(r).array() - detail::log_sum_exp(x[0].row(r));
    }
  }
  template <class T>
  void backward(const Inputs<T>&, ConstMap<T> y, ConstMap<T> gy, Grads<T>& g) const {
    for (Index r = 0; r < y.rows(); ++r) {
      g[0].row(r).array() = gy.row(r).array() - y.row(r).array().exp() * gy.row(r).sum();
    }
  }
  template <class T>
  void tangent(const Inputs<T>&, ConstMap<T> y, const Inputs<T>& dx, MutMap<T> dy) const {
    for (Index r = 0; r < y.rows(); ++r) {
      const T p_dx = (y.row(r).array().exp() * dx[0].row(r).array()).sum();
      dy.row(r).array() = dx[0].row(r).array() - p_dx;
    }
  }
  template <class T>
  void second_order(const Inputs<T>&, ConstMap<T> y, ConstMap<T> gy, const Inputs<T>&,
                    ConstMap<T> dy, Grads<T>& g) const {
    for (Index r = 0; r < y.rows(); ++r) {
      g[0].row(r).array() = -y.row(r).array().exp() * dy.row(r).array() * gy.row(r).sum();
    }
  }
};

/// yᵣ = e^xᵣ / Σⱼ e^xᵣⱼ for each row r;  gᵣ = yᵣ ⊙ (gyᵣ - ⟨gyᵣ, yᵣ⟩);
/// J is symmetric (ẏ = backward with gy := ẋ);  Sᵣ = ẏᵣ ⊙ (gyᵣ - ⟨gyᵣ, yᵣ⟩) - yᵣ·⟨gyᵣ, ẏᵣ⟩
struct SoftmaxRows {
  static constexpr std::string_view name = "softmax_rows";
  static constexpr int arity = 1;
  static constexpr Rules kRules = Rules::symmetric;
  Shape shape(std::span<const Shape> x) const {
    if (x[0].cols == 0) detail::throw_shape(name, "rows are empty", to_string(x[0]));
    return x[0];
  }
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    for (Index r = 0; r < y.rows(); ++r) {
      y.row(r).array() = (x[0].row(r).array() - x[0].row(r).maxCoeff()).exp();
      y.row(r) /= y.row(r).sum();
    }
  }
  template <class T>
  void backward(const Inputs<T>&, ConstMap<T> y, ConstMap<T> gy, Grads<T>& g) const {
    for (Index r = 0; r < y.rows(); ++r) {
      g[0].row(r).array() = y.row(r).array() * (gy.row(r).array() - gy.row(r).dot(y.row(r)));
    }
  }
  template <class T>
  void second_order(const Inputs<T>&, ConstMap<T> y, ConstMap<T> gy, const Inputs<T>&,
                    ConstMap<T> dy, Grads<T>& g) const {
    for (Index r = 0; r < y.rows(); ++r) {
      g[0].row(r).array() = dy.row(r).array() * (gy.row(r).array() - gy.row(r).dot(y.row(r))) -
                            y.row(r).array() * gy.row(r).dot(dy.row(r));
    }
  }
};

/// Softmax cross-entropy with integer class targets, averaged over rows (PyTorch's
/// F.cross_entropy): y = (1/R) Σᵣ (ln Σⱼ e^xᵣⱼ - xᵣ,tᵣ);  g = (softmax(x) - onehot(t))·gy/R;
/// ẏ = (1/R) Σᵣ ⟨pᵣ - onehot(tᵣ), ẋᵣ⟩ (p = softmax(x));  Sᵣ = pᵣ ⊙ (ẋᵣ - ⟨pᵣ, ẋᵣ⟩)·gy/R.
/// `targets` points at `count` class indices stored on the tape.
struct CrossEntropy {
  static constexpr std::string_view name = "cross_entropy";
  static constexpr int arity = 1;
  const std::int32_t* targets = nullptr;
  Index count = 0;
  Shape shape(std::span<const Shape> x) const {
    if (count != x[0].rows || count == 0) {
      detail::throw_shape(name, "target count differs",
                          fmt::format("{} targets for {} logits", count, x[0]));
    }
    for (Index r = 0; r < count; ++r) {
      if (targets[r] < 0 || targets[r] >= x[0].cols) {
        detail::throw_shape(
            name, "target out of range",
            fmt::format("target {} at row {}, expected [0, {})", targets[r], r, x[0].cols));
      }
    }
    return {1, 1};
  }
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    T total = 0;
    for (Index r = 0; r < count; ++r) {
      total += detail::log_sum_exp(x[0].row(r)) - x[0](r, targets[r]);
    }
    y(0, 0) = total / static_cast<T>(count);
  }
  template <class T>
  void backward(const Inputs<T>& x, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    const T s = gy(0, 0) / static_cast<T>(count);
    for (Index r = 0; r < count; ++r) {
      const T lse = detail::log_sum_exp(x[0].row(r));
      g[0].row(r).array() = (x[0].row(r).array() - lse).exp() * s;
      g[0](r, targets[r]) -= s;
    }
  }
  template <class T>
  void tangent(const Inputs<T>& x, ConstMap<T>, const Inputs<T>& dx, MutMap<T> dy) const {
    T total = 0;
    for (Index r = 0; r < count; ++r) {
      const T lse = detail::log_sum_exp(x[0].row(r));
      total +=
          ((x[0].row(r).array() - lse).exp() * dx[0].row(r).array()).sum() - dx[0](r, targets[r]);
    }
    dy(0, 0) = total / static_cast<T>(count);
  }
  template <class T>
  void second_order(const Inputs<T>& x, ConstMap<T>, ConstMap<T> gy, const Inputs<T>& dx,
                    ConstMap<T>, Grads<T>& g) const {
    const T s = gy(0, 0) / static_cast<T>(count);
    for (Index r = 0; r < count; ++r) {
      const T lse = detail::log_sum_exp(x[0].row(r));
      g[0].row(r).array() = (x[0].row(r).array() - lse).exp();
      const T p_dx = g[0].row(r).dot(dx[0].row(r));
      g[0].row(r).array() *= (dx[0].row(r).array() - p_dx) * s;
    }
  }
};

/// Mean squared error: y = (1/n) Σ (a - b)²;  ga = 2(a - b)·gy/n, gb = -ga;
/// ẏ = 2⟨a - b, ȧ - ḃ⟩/n;  S_a = 2(ȧ - ḃ)·gy/n, S_b = -S_a
struct Mse {
  static constexpr std::string_view name = "mse";
  static constexpr int arity = 2;
  Shape shape(std::span<const Shape> x) const {
    detail::require_same_shape(name, x[0], x[1]);
    if (x[0].size() == 0) detail::throw_shape(name, "input is empty", to_string(x[0]));
    return {1, 1};
  }
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    y(0, 0) = (x[0] - x[1]).squaredNorm() / static_cast<T>(x[0].size());
  }
  template <class T>
  void backward(const Inputs<T>& x, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    const T s = T(2) * gy(0, 0) / static_cast<T>(x[0].size());
    if (g.wants(0)) g[0] = (x[0] - x[1]) * s;
    if (g.wants(1)) g[1] = (x[1] - x[0]) * s;
  }
  template <class T>
  void tangent(const Inputs<T>& x, ConstMap<T>, const Inputs<T>& dx, MutMap<T> dy) const {
    T d = 0;
    if (dx.has(0)) d += (x[0] - x[1]).cwiseProduct(dx[0]).sum();
    if (dx.has(1)) d -= (x[0] - x[1]).cwiseProduct(dx[1]).sum();
    dy(0, 0) = T(2) * d / static_cast<T>(x[0].size());
  }
  template <class T>
  void second_order(const Inputs<T>& x, ConstMap<T>, ConstMap<T> gy, const Inputs<T>& dx,
                    ConstMap<T>, Grads<T>& g) const {
    // The gradient is linear in (a, b): its derivative along (ȧ, ḃ) is the backward on them.
    const T s = T(2) * gy(0, 0) / static_cast<T>(x[0].size());
    for (int k = 0; k < 2; ++k) {
      if (!g.wants(k)) continue;
      const T sign = k == 0 ? s : -s;
      if (dx.has(0)) {
        g[k] = dx[0] * sign;
      } else {
        g[k].setZero();
      }
      if (dx.has(1)) g[k] -= dx[1] * sign;
    }
  }
};

/// Binary cross-entropy on logits x with targets t in [0, 1], averaged (PyTorch's
/// binary_cross_entropy_with_logits): y = (1/n) Σ (max(x, 0) - x·t + ln(1 + e^-|x|));
/// gx = (σ(x) - t)·gy/n, gt = -x·gy/n;  ẏ = (1/n) Σ ((σ(x) - t) ⊙ ẋ - x ⊙ ṫ);
/// S_x = (σ(x)σ(-x) ⊙ ẋ - ṫ)·gy/n, S_t = -ẋ·gy/n
struct BceWithLogits {
  static constexpr std::string_view name = "bce_with_logits";
  static constexpr int arity = 2;
  Shape shape(std::span<const Shape> x) const {
    detail::require_same_shape(name, x[0], x[1], "logits", "targets");
    if (x[0].size() == 0) detail::throw_shape(name, "input is empty", to_string(x[0]));
    return {1, 1};
  }
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    const auto z = x[0].array();
    y(0, 0) = (z.max(T(0)) - z * x[1].array() + (-z.abs()).exp().log1p()).sum() /
              static_cast<T>(x[0].size());
  }
  template <class T>
  void backward(const Inputs<T>& x, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    const T s = gy(0, 0) / static_cast<T>(x[0].size());
    if (g.wants(0)) g[0].array() = (x[0].array().logistic() - x[1].array()) * s;
    if (g.wants(1)) g[1].array() = -x[0].array() * s;
  }
  template <class T>
  void tangent(const Inputs<T>& x, ConstMap<T>, const Inputs<T>& dx, MutMap<T> dy) const {
    T d = 0;
    if (dx.has(0)) d += ((x[0].array().logistic() - x[1].array()) * dx[0].array()).sum();
    if (dx.has(1)) d -= (x[0].array() * dx[1].array()).sum();
    dy(0, 0) = d / static_cast<T>(x[0].size());
  }
  template <class T>
  void second_order(const Inputs<T>& x, ConstMap<T>, ConstMap<T> gy, const Inputs<T>& dx,
                    ConstMap<T>, Grads<T>& g) const {
    const T s = gy(0, 0) / static_cast<T>(x[0].size());
    if (g.wants(0)) {
      if (dx.has(0)) {
        g[0].array() = x[0].array().logistic() * (-x[0].array()).logistic() * dx[0].array() * s;
      } else {
        g[0].setZero();
      }
      if (dx.has(1)) g[0].array() -= dx[1].array() * s;
    }
    if (g.wants(1)) {
      if (dx.has(0)) {
        g[1].array() = -dx[0].array() * s;
      } else {
        g[1].setZero();
      }
    }
  }
};

}  // namespace rwd::ops
