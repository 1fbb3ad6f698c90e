// Gathering, masking and selecting.
#pragma once

#include <cstdint>

#include "rewind/autograd/op_support.hpp"

namespace rwd::ops {

/// Row lookup: yᵣ = W[idᵣ] for a V×D table W;  gW[v] = Σ_{r: idᵣ = v} gyᵣ.
/// `ids` points at `count` row indices stored on the tape.
struct Embedding {
  static constexpr std::string_view name = "embedding";
  static constexpr int arity = 1;
  static constexpr Rules kRules = Rules::linear;
  const std::int32_t* ids = nullptr;
  Index count = 0;
  Shape shape(std::span<const Shape> x) const {
    for (Index r = 0; r < count; ++r) {
      if (ids[r] < 0 || ids[r] >= x[0].rows) {
        detail::throw_shape(name, "id out of range",
                            fmt::format("id {} at position {}, table is {}", ids[r], r, x[0]));
      }
    }
    return {count, x[0].cols};
  }
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    for (Index r = 0; r < count; ++r) y.row(r) = x[0].row(ids[r]);
  }
  template <class T>
  void backward(const Inputs<T>&, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    g[0].setZero();
    for (Index r = 0; r < count; ++r) g[0].row(ids[r]) += gy.row(r);
  }
};

/// Inverted dropout with a given mask m (0 or 1 per element): y = x ⊙ m · s with
/// s = 1/(1 - p);  gx = gy ⊙ m · s, gm = gy ⊙ x · s
struct Dropout {
  static constexpr std::string_view name = "dropout";
  static constexpr int arity = 2;
  static constexpr Rules kRules = Rules::bilinear;
  double scale = 1;
  Shape shape(std::span<const Shape> x) const {
    detail::require_same_shape(name, x[0], x[1], "input", "mask");
    return x[0];
  }
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    y.array() = x[0].array() * x[1].array() * static_cast<T>(scale);
  }
  template <class T>
  void backward(const Inputs<T>& x, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    if (g.wants(0)) g[0].array() = gy.array() * x[1].array() * static_cast<T>(scale);
    if (g.wants(1)) g[1].array() = gy.array() * x[0].array() * static_cast<T>(scale);
  }
};

/// Blend by a mask m: y = m ⊙ a + (1 - m) ⊙ b, so a 0/1 mask selects a where m = 1 and b where
/// m = 0 (torch.where). m has a's shape, or is R×1 and then applies to whole rows (which batch
/// entries of a recurrent state to update);  ga = m ⊙ gy, gb = (1 - m) ⊙ gy,
/// gm = (a - b) ⊙ gy (summed along each row for an R×1 mask);
/// ẏ = m ⊙ ȧ + (1 - m) ⊙ ḃ + ṁ ⊙ (a - b);  S_m = (ȧ - ḃ) ⊙ gy (row sums), S_a = ṁ ⊙ gy,
/// S_b = -ṁ ⊙ gy
struct Where {
  static constexpr std::string_view name = "where";
  static constexpr bool kRowwise = true;
  static constexpr int arity = 3;
  Shape shape(std::span<const Shape> x) const {
    detail::require_same_shape(name, x[1], x[2], "a", "b");
    if (x[0] != x[1] && x[0] != Shape{x[1].rows, 1}) {
      detail::throw_shape(name, "mask has the wrong shape",
                          fmt::format("mask is {}, expected {} or {}x1", x[0], x[1], x[1].rows));
    }
    return x[1];
  }
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    if (x.shape(0) == x.shape(1)) {
      y.array() = x[0].array() * x[1].array() + (T(1) - x[0].array()) * x[2].array();
    } else {
      for (Index r = 0; r < y.rows(); ++r) {
        const T m = x[0](r, 0);
        y.row(r) = m * x[1].row(r) + (T(1) - m) * x[2].row(r);
      }
    }
  }
  template <class T>
  void backward(const Inputs<T>& x, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    const bool full = x.shape(0) == x.shape(1);
    if (g.wants(0)) {
      if (full) {
        g[0].array() = (x[1].array() - x[2].array()) * gy.array();
      } else {
        for (Index r = 0; r < gy.rows(); ++r)
          g[0](r, 0) = (x[1].row(r) - x[2].row(r)).dot(gy.row(r));
      }
    }
    for (int k = 1; k <= 2; ++k) {
      if (!g.wants(k)) continue;
      const T sign = k == 1 ? T(1) : T(-1);
      const T base = k == 1 ? T(0) : T(1);
      // gₐ = m ⊙ gy and g_b = (1 - m) ⊙ gy, written once as (base + sign·m) ⊙ gy.
      if (full) {
        g[k].array() = (base + sign * x[0].array()) * gy.array();
      } else {
        for (Index r = 0; r < gy.rows(); ++r) g[k].row(r) = (base + sign * x[0](r, 0)) * gy.row(r);
      }
    }
  }
  template <class T>
  void tangent(const Inputs<T>& x, ConstMap<T>, const Inputs<T>& dx, MutMap<T> dy) const {
    const bool full = x.shape(0) == x.shape(1);
    dy.setZero();
    for (Index r = 0; r < dy.rows(); ++r) {
      for (int k = 1; k <= 2; ++k) {
        if (!dx.has(k)) continue;
        const T sign = k == 1 ? T(1) : T(-1);  // weights m and 1 - m as base + sign·m
        const T base = k == 1 ? T(0) : T(1);
        if (full) {
          dy.row(r).array() += (base + sign * x[0].row(r).array()) * dx[k].row(r).array();
        } else {
          dy.row(r) += (base + sign * x[0](r, 0)) * dx[k].row(r);
        }
      }
      if (dx.has(0)) {
        if (full) {
          dy.row(r).array() += dx[0].row(r).array() * (x[1].row(r) - x[2].row(r)).array();
        } else {
          dy.row(r) += dx[0](r, 0) * (x[1].row(r) - x[2].row(r));
        }
      }
    }
  }
  template <class T>
  void second_order(const Inputs<T>& x, ConstMap<T>, ConstMap<T> gy, const Inputs<T>& dx,
                    ConstMap<T>, Grads<T>& g) const {
    const bool full = x.shape(0) == x.shape(1);
    if (g.wants(0)) {
      g[0].setZero();
      for (Index r = 0; r < gy.rows(); ++r) {
        for (int k = 1; k <= 2; ++k) {
          if (!dx.has(k)) continue;
          const T sign = k == 1 ? T(1) : T(-1);
          if (full) {
            g[0].row(r).array() += sign * dx[k].row(r).array() * gy.row(r).array();
          } else {
            g[0](r, 0) += sign * dx[k].row(r).dot(gy.row(r));
          }
        }
      }
    }
    for (int k = 1; k <= 2; ++k) {
      if (!g.wants(k)) continue;
      if (!dx.has(0)) {
        g[k].setZero();
        continue;
      }
      const T sign = k == 1 ? T(1) : T(-1);
      if (full) {
        g[k].array() = sign * dx[0].array() * gy.array();
      } else {
        for (Index r = 0; r < gy.rows(); ++r) g[k].row(r) = sign * dx[0](r, 0) * gy.row(r);
      }
    }
  }
};

}  // namespace rwd::ops
