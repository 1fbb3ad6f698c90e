// Reductions. Naming follows the *_rows ops (softmax_rows, ...): the op is applied to each row.
#pragma once

#include "rewind/autograd/op_support.hpp"

namespace rwd::ops {

/// y = Σᵢⱼ xᵢⱼ (1×1);  g = gy·1
struct Sum {
  static constexpr std::string_view name = "sum";
  static constexpr Rules kRules = Rules::linear;
  static constexpr int arity = 1;
  Shape shape(std::span<const Shape>) const { return {1, 1}; }
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    y(0, 0) = x[0].sum();
  }
  template <class T>
  void backward(const Inputs<T>&, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    g[0].setConstant(gy(0, 0));
  }
};

/// y = (1/n) Σᵢⱼ xᵢⱼ (1×1);  g = (gy/n)·1
struct Mean {
  static constexpr std::string_view name = "mean";
  static constexpr Rules kRules = Rules::linear;
  static constexpr int arity = 1;
  Shape shape(std::span<const Shape> x) const {
    if (x[0].size() == 0) detail::throw_shape(name, "input is empty", to_string(x[0]));
    return {1, 1};
  }
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    y(0, 0) = x[0].mean();
  }
  template <class T>
  void backward(const Inputs<T>& x, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    g[0].setConstant(gy(0, 0) / static_cast<T>(x[0].size()));
  }
};

/// y = x·1: each row summed, R×C -> R×1;  g = gy broadcast along the row
struct SumRows {
  static constexpr std::string_view name = "sum_rows";
  static constexpr Rules kRules = Rules::linear;
  static constexpr int arity = 1;
  Shape shape(std::span<const Shape> x) const { return {x[0].rows, 1}; }
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    y = x[0].rowwise().sum();
  }
  template <class T>
  void backward(const Inputs<T>&, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    g[0] = gy.col(0).replicate(1, g[0].cols());
  }
};

/// y = 1ᵀ·x: each column summed, R×C -> 1×C (the bias gradient);  g = gy broadcast down the column
struct SumCols {
  static constexpr std::string_view name = "sum_cols";
  static constexpr Rules kRules = Rules::linear;
  static constexpr int arity = 1;
  Shape shape(std::span<const Shape> x) const { return {1, x[0].cols}; }
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    y = x[0].colwise().sum();
  }
  template <class T>
  void backward(const Inputs<T>&, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    g[0] = gy.row(0).replicate(g[0].rows(), 1);
  }
};

}  // namespace rwd::ops
