// Concatenation, slicing, reshaping and stop-gradient.
#pragma once

#include "rewind/autograd/op_support.hpp"

namespace rwd::detail {
// One rule for concat_cols and concat_rows: `along_cols` picks which extent is summed.
inline Shape concat_shape(std::string_view op, std::span<const Shape> x, bool along_cols) {
  Shape y = x[0];
  for (std::size_t k = 1; k < x.size(); ++k) {
    const bool ok = along_cols ? x[k].rows == x[0].rows : x[k].cols == x[0].cols;
    if (!ok) {
      throw_shape(op, along_cols ? "row counts differ" : "column counts differ",
                  fmt::format("input 0 is {}, input {} is {}", x[0], k, x[k]));
    }
    (along_cols ? y.cols : y.rows) += along_cols ? x[k].cols : x[k].rows;
  }
  return y;
}

inline void check_range(std::string_view op, std::string_view what, Index begin, Index end,
                        Index extent, Shape x) {
  if (begin < 0 || end < begin || end > extent) {
    throw_shape(op, fmt::format("{} out of range", what),
                fmt::format("[{}, {}) for a {} input", begin, end, x));
  }
}
}  // namespace rwd::detail

namespace rwd::ops {

/// y = [x₀ x₁ … xₖ] side by side (equal row counts);  gₖ = gy's columns of xₖ
struct ConcatCols {
  static constexpr std::string_view name = "concat_cols";
  static constexpr Rules kRules = Rules::linear;
  static constexpr bool kRowwise = true;
  static constexpr bool kAccumulates = true;
  static constexpr int arity = kVariadic;
  Shape shape(std::span<const Shape> x) const { return detail::concat_shape(name, x, true); }
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    Index at = 0;
    for (int k = 0; k < x.size(); ++k) {
      y.middleCols(at, x.shape(k).cols) = x[k];
      at += x.shape(k).cols;
    }
  }
  template <class T>
  void backward(const Inputs<T>& x, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    Index at = 0;
    for (int k = 0; k < x.size(); ++k) {
      if (g.wants(k)) g.put(k, gy.middleCols(at, x.shape(k).cols));
      at += x.shape(k).cols;
    }
  }
};

/// y = [x₀; x₁; …; xₖ] stacked (equal column counts);  gₖ = gy's rows of xₖ
struct ConcatRows {
  static constexpr std::string_view name = "concat_rows";
  static constexpr Rules kRules = Rules::linear;
  static constexpr bool kAccumulates = true;
  static constexpr int arity = kVariadic;
  Shape shape(std::span<const Shape> x) const { return detail::concat_shape(name, x, false); }
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    Index at = 0;
    for (int k = 0; k < x.size(); ++k) {
      y.middleRows(at, x.shape(k).rows) = x[k];
      at += x.shape(k).rows;
    }
  }
  template <class T>
  void backward(const Inputs<T>& x, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    Index at = 0;
    for (int k = 0; k < x.size(); ++k) {
      if (g.wants(k)) g.put(k, gy.middleRows(at, x.shape(k).rows));
      at += x.shape(k).rows;
    }
  }
};

/// y = x[:, begin:end];  g = gy in those columns, 0 elsewhere
struct SliceCols {
  static constexpr std::string_view name = "slice_cols";
  static constexpr Rules kRules = Rules::linear;
  static constexpr bool kRowwise = true;
  static constexpr bool kAccumulates = true;
  static constexpr int arity = 1;
  Index begin = 0;
  Index end = 0;
  Shape shape(std::span<const Shape> x) const {
    detail::check_range(name, "columns", begin, end, x[0].cols, x[0]);
    return {x[0].rows, end - begin};
  }
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    y = x[0].middleCols(begin, end - begin);
  }
  template <class T>
  void backward(const Inputs<T>&, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    if (g.adds(0)) {  // only the slice's columns are touched when adding
      g[0].middleCols(begin, end - begin) += gy;
      return;
    }
    // One pass over g: an LSTM's gate gradient is four slices of a 32x2048 one at hidden 512.
    g[0].leftCols(begin).setZero();
    g[0].middleCols(begin, end - begin) = gy;
    g[0].rightCols(g[0].cols() - end).setZero();
  }
};

/// y = x[begin:end, :] (a view: rows of a row-major tensor are contiguous);
/// g = gy in those rows, 0 elsewhere
struct SliceRows {
  static constexpr std::string_view name = "slice_rows";
  static constexpr Rules kRules = Rules::linear;
  static constexpr bool kAccumulates = true;
  static constexpr bool kAliasesInput = true;
  static constexpr int arity = 1;
  Index begin = 0;
  Index end = 0;
  Shape shape(std::span<const Shape> x) const {
    detail::check_range(name, "rows", begin, end, x[0].rows, x[0]);
    return {end - begin, x[0].cols};
  }
  /// Where the view starts in x's storage, in elements.
  Index alias_offset(std::span<const Shape> x) const { return begin * x[0].cols; }
  template <class T>
  void forward(const Inputs<T>&, MutMap<T>) const {}  // a view of x[0]'s rows
  template <class T>
  void backward(const Inputs<T>&, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    if (!g.adds(0)) g[0].setZero();  // only the slice's rows are touched when adding
    g[0].middleRows(begin, end - begin) += gy;
  }
};

/// y = x viewed as rows×cols in row-major order (shares x's storage);  g = gy viewed as x
struct Reshape {
  static constexpr std::string_view name = "reshape";
  static constexpr Rules kRules = Rules::linear;
  static constexpr int arity = 1;
  static constexpr bool kAliasesInput = true;
  static constexpr std::uint8_t kPassesGradient = 0b1;  // row-major: the same elements, in order
  Index rows = 0;
  Index cols = 0;
  Shape shape(std::span<const Shape> x) const {
    if (rows < 0 || cols < 0 || rows * cols != x[0].size()) {
      detail::throw_shape(name, "element counts differ",
                          fmt::format("cannot view {} as {}x{}", x[0], rows, cols));
    }
    return {rows, cols};
  }
  template <class T>
  void forward(const Inputs<T>&, MutMap<T>) const {}  // aliases x[0]
  template <class T>
  void backward(const Inputs<T>&, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    g[0] = ConstMap<T>(gy.data(), g[0].rows(), g[0].cols());
  }
};

/// y = x, but no gradient flows back (stop-gradient; truncated BPTT). Shares x's storage.
struct Detach : UnaryShape {
  static constexpr std::string_view name = "detach";
  static constexpr Rules kRules = Rules::linear;  // its tangent is zero, like its gradient
  static constexpr bool kAliasesInput = true;
  static constexpr bool kStopsGradient = true;
  template <class T>
  void forward(const Inputs<T>&, MutMap<T>) const {}  // aliases x[0]
  template <class T>
  void backward(const Inputs<T>&, ConstMap<T>, ConstMap<T>, Grads<T>&) const {}  // never called
};

}  // namespace rwd::ops
