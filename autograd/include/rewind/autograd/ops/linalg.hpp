// Matrix products, per-example (row by row) products for matrix-valued states, and the explicit
// broadcasts of a row (over the batch) and of a column (over the features).
#pragma once

#include <utility>

#include "rewind/autograd/op_support.hpp"

namespace rwd::detail {

// Per-example matrices: example i's m×n matrix is row i of a B×(m·n) tensor (ops::RowOuter).
// Compiled once, in autograd/src/row_products.cpp (for float and double): inline, their Eigen
// products took seconds in each of the seven sweep files that instantiate every op's rules.
/// Rows i of out: the m×n outer products a_i b_iᵀ (out B×(m·n)).
template <class T>
void row_outer_into(MutMap<T> out, const ConstMap<T>& a, const ConstMap<T>& b);
/// Rows i of out: x_iᵀ M_i (out B×n, x B×m, s B×(m·n)).
template <class T>
void row_vecmat_into(MutMap<T> out, const ConstMap<T>& x, const ConstMap<T>& s);
/// Rows i of out: (M_i v_i)ᵀ (out B×m, s B×(m·n), v B×n).
template <class T>
void row_matvec_into(MutMap<T> out, const ConstMap<T>& s, const ConstMap<T>& v);
#define REWIND_ROW_PRODUCTS(T)                                                                \
  extern template void row_outer_into<T>(MutMap<T>, const ConstMap<T>&, const ConstMap<T>&);  \
  extern template void row_vecmat_into<T>(MutMap<T>, const ConstMap<T>&, const ConstMap<T>&); \
  extern template void row_matvec_into<T>(MutMap<T>, const ConstMap<T>&, const ConstMap<T>&);
REWIND_ROW_PRODUCTS(float)
REWIND_ROW_PRODUCTS(double)
#undef REWIND_ROW_PRODUCTS

/// row_vecmat's and row_matvec's shape rule: `matrices` B×(m·n) with `vector` B×m (x, on the
/// left: row_vecmat) or B×n (v, on the right: row_matvec); returns the other side (n or m), or
/// throws naming both shapes in the op's argument order.
inline Index other_side(std::string_view op, Shape matrices, Shape vector, bool matrices_first) {
  const auto shapes = [&] {
    return matrices_first ? fmt::format("matrices are {}, v is {}", matrices, vector)
                          : fmt::format("x is {}, matrices are {}", vector, matrices);
  };
  if (vector.rows != matrices.rows) throw_shape(op, "the batches differ", shapes());
  if (vector.cols == 0 || matrices.cols % vector.cols != 0) {
    throw_shape(op,
                matrices_first ? "expects matrices B×(m·n) and v B×n"
                               : "expects x B×m and matrices B×(m·n)",
                fmt::format("{} ({} columns are not m·n for {} = {})", shapes(), matrices.cols,
                            matrices_first ? 'n' : 'm', vector.cols));
  }
  return matrices.cols / vector.cols;
}

/// add_col_vector and mul_col_vector: x B×C with v B×1 (one value per example); y is x's shape.
inline Shape col_vector_shape(std::string_view op, std::span<const Shape> x) {
  if (x[1].cols != 1 || x[1].rows != x[0].rows) {
    throw_shape(op, "column vector has the wrong shape",
                fmt::format("vector is {}, expected {}x1 for a {} input", x[1], x[0].rows, x[0]));
  }
  return x[0];
}

}  // namespace rwd::detail

namespace rwd::ops {

/// y = a·b (m×k times k×n);  ga = gy·bᵀ, gb = aᵀ·gy
struct Matmul {
  static constexpr std::string_view name = "matmul";
  static constexpr std::uint8_t kRowLocalInputs = 0b01;         // input 0; the rest sum over rows
  static constexpr std::uint8_t kProductGradientInputs = 0b10;  // gW: gradient_product
  static constexpr int arity = 2;
  static constexpr bool kAccumulates = true;
  static constexpr Rules kRules = Rules::bilinear;
  Shape shape(std::span<const Shape> x) const {
    if (x[0].cols != x[1].rows) {
      detail::throw_shape(name, "inner dimensions differ",
                          fmt::format("lhs is {}, rhs is {}", x[0], x[1]));
    }
    return {x[0].rows, x[1].cols};
  }
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    detail::weight_product(y, false, x[0], x[1], false, x.packed(1));
  }
  template <class T>
  void backward(const Inputs<T>& x, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    if (g.wants(0)) detail::weight_product(g[0], g.adds(0), gy, x[1], true, x.packed(1));
    if (g.wants(1)) detail::gradient_product(g[1], g.adds(1), x[0], gy);
  }
  /// gb's product aᵀ·gy as (a, gy): the sweep may collect it (kProductGradientInputs).
  template <class T>
  static std::pair<const T*, const T*> product_operands(const Inputs<T>& x, const T* gy, int) {
    return {x[0].data(), gy};
  }
  /// Stacked directions: ẏ = ẋ·b for k lhs tangents stacked by rows; ġa = ġy·bᵀ likewise.
  template <class T>
  void tangent_lhs(const Inputs<T>& x, ConstMap<T> da, MutMap<T> dy) const {
    detail::weight_product(dy, false, da, x[1], false, x.packed(1));
  }
  template <class T>
  void backward_lhs(const Inputs<T>& x, ConstMap<T> gy, MutMap<T> ga, bool add) const {
    detail::weight_product(ga, add, gy, x[1], true, x.packed(1));
  }
};

/// y = a·bᵀ (m×k times (n×k)ᵀ);  ga = gy·b, gb = gyᵀ·a
// NOTE: a fused primitive for speed: layers keep weights in PyTorch's out×in layout and multiply
// by their transpose every step; this saves materialising that transpose (a copy of the weight)
// on every use, and lets Eigen's GEMM read b transposed in place.
struct MatmulNt {
  static constexpr std::string_view name = "matmul_nt";
  static constexpr std::uint8_t kRowLocalInputs = 0b01;         // input 0; the rest sum over rows
  static constexpr std::uint8_t kProductGradientInputs = 0b10;  // gW: gradient_product
  static constexpr int arity = 2;
  static constexpr bool kAccumulates = true;
  static constexpr Rules kRules = Rules::bilinear;
  Shape shape(std::span<const Shape> x) const {
    if (x[0].cols != x[1].cols) {
      detail::throw_shape(name, "inner dimensions differ",
                          fmt::format("lhs is {}, rhs is {} (used transposed)", x[0], x[1]));
    }
    return {x[0].rows, x[1].rows};
  }
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    detail::weight_product(y, false, x[0], x[1], true, x.packed(1));
  }
  template <class T>
  void backward(const Inputs<T>& x, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    // A weight used at every step gathers its gradient here: adding in place is GEMM with
    // beta = 1, no scratch copy of the weight's size per step. When b is a parameter, both
    // products with it reuse its packing (gemm.hpp).
    if (g.wants(0)) detail::weight_product(g[0], g.adds(0), gy, x[1], false, x.packed(1));
    if (g.wants(1)) detail::gradient_product(g[1], g.adds(1), gy, x[0]);
  }
  /// gb's product gyᵀ·a as (gy, a): the sweep may collect it (kProductGradientInputs).
  template <class T>
  static std::pair<const T*, const T*> product_operands(const Inputs<T>& x, const T* gy, int) {
    return {gy, x[0].data()};
  }
  /// Stacked directions: ẏ = ẋ·bᵀ for k lhs tangents stacked by rows; ġa = ġy·b likewise.
  template <class T>
  void tangent_lhs(const Inputs<T>& x, ConstMap<T> da, MutMap<T> dy) const {
    detail::weight_product(dy, false, da, x[1], true, x.packed(1));
  }
  template <class T>
  void backward_lhs(const Inputs<T>& x, ConstMap<T> gy, MutMap<T> ga, bool add) const {
    detail::weight_product(ga, add, gy, x[1], false, x.packed(1));
  }
};

/// y = x·Wᵀ + 1·b: x (m×k) times the transpose of W (n×k), plus the 1×n row b on every row
/// (PyTorch's F.linear);  gx = gy·W, gW = gyᵀ·x, gb = Σ_rows gy;
/// ẏ = ẋ·Wᵀ + x·Ẇᵀ + 1·ḃ;  S_x = gy·Ẇ, S_W = gyᵀ·ẋ, S_b = 0
// NOTE: fused for speed and memory: matmul_nt then add_row_vector would make a second m×n
// tensor per use and a pass over it forward and backward. Here the bias initialises the
// product's output and GEMM adds into it.
struct Affine {
  static constexpr std::string_view name = "affine";
  static constexpr std::uint8_t kRowLocalInputs = 0b01;         // input 0; the rest sum over rows
  static constexpr std::uint8_t kProductGradientInputs = 0b10;  // gW: gradient_product
  static constexpr int arity = 3;
  static constexpr bool kAccumulates = true;
  Shape shape(std::span<const Shape> x) const {
    if (x[0].cols != x[1].cols) {
      detail::throw_shape(name, "inner dimensions differ",
                          fmt::format("input is {}, weight is {} (used transposed)", x[0], x[1]));
    }
    if (x[2].rows != 1 || x[2].cols != x[1].rows) {
      detail::throw_shape(
          name, "bias has the wrong shape",
          fmt::format("bias is {}, expected 1x{} for a {} weight", x[2], x[1].rows, x[1]));
    }
    return {x[0].rows, x[1].rows};
  }
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    detail::weight_product(y, false, x[0], x[1], true, x.packed(1), x[2].data());
  }
  template <class T>
  void backward(const Inputs<T>& x, ConstMap<T> y, ConstMap<T> gy, Grads<T>& g) const {
    MatmulNt{}.backward(x, y, gy, g);  // gx and gW are matmul_nt's
    if (g.wants(2)) g.put(2, gy.colwise().sum());
  }
  /// gW's product, as matmul_nt's.
  template <class T>
  static std::pair<const T*, const T*> product_operands(const Inputs<T>& x, const T* gy, int k) {
    return MatmulNt::product_operands(x, gy, k);
  }
  /// Stacked directions, as matmul_nt's (the bias's tangent is not involved).
  template <class T>
  void tangent_lhs(const Inputs<T>& x, ConstMap<T> dx0, MutMap<T> dy) const {
    MatmulNt{}.tangent_lhs(x, dx0, dy);
  }
  template <class T>
  void backward_lhs(const Inputs<T>& x, ConstMap<T> gy, MutMap<T> gx, bool add) const {
    MatmulNt{}.backward_lhs(x, gy, gx, add);
  }
  template <class T>
  void tangent(const Inputs<T>& x, ConstMap<T>, const Inputs<T>& dx, MutMap<T> dy) const {
    // ẋ·Wᵀ reuses W's packing, as the forward does; x·Ẇᵀ is an ordinary product.
    bool written = dx.has(2);
    if (written) dy.rowwise() = dx[2].row(0);
    if (dx.has(0)) {
      detail::weight_product<T>(dy, written, dx[0], x[1], true, x.packed(1));
      written = true;
    }
    if (dx.has(1)) {
      detail::weight_product<T>(dy, written, x[0], dx[1], true, dx.packed(1));
      written = true;
    }
    if (!written) dy.setZero();
  }
  template <class T>
  void second_order(const Inputs<T>&, ConstMap<T>, ConstMap<T> gy, const Inputs<T>& dx, ConstMap<T>,
                    Grads<T>& g) const {
    if (g.wants(0)) {
      if (dx.has(1)) {
        detail::weight_product<T>(g[0], g.adds(0), gy, dx[1], false, dx.packed(1));
      } else if (!g.adds(0)) {
        g[0].setZero();
      }
    }
    if (g.wants(1)) {
      if (dx.has(0)) {
        detail::gradient_product(g[1], g.adds(1), gy, dx[0]);
      } else if (!g.adds(1)) {
        g[1].setZero();
      }
    }
    if (g.wants(2) && !g.adds(2)) g[2].setZero();
  }
  /// The second-order sweep's whole contribution, backward(ġy) + S, in one call (gdot null:
  /// ġy = 0): ġx = ġy·W + gy·Ẇ, ġW = ġyᵀ·x + gyᵀ·ẋ, ġb = Σ_rows ġy.
  // NOTE: for speed. ġW as one product of stacked operands reads and writes the weight-sized
  // result once instead of twice (hvp-lstm-512: see docs/benchmarks.md).
  template <class T>
  void second_order_sweep(const Inputs<T>& x, ConstMap<T> y, ConstMap<T> gy, const T* gdot,
                          const Inputs<T>& dx, ConstMap<T> dy, Grads<T>& g) const {
    if (gdot == nullptr) return second_order(x, y, gy, dx, dy, g);
    const ConstMap<T> gd(gdot, gy.rows(), gy.cols());
    if (g.wants(0)) {
      detail::weight_product<T>(g[0], g.adds(0), gd, x[1], false, x.packed(1));
      if (dx.has(1)) detail::weight_product<T>(g[0], true, gy, dx[1], false, dx.packed(1));
    }
    if (g.wants(1)) {
      if (dx.has(0)) {
        detail::gradient_product_sum<T>(g[1], g.adds(1), gd, x[0], gy, dx[0]);
      } else {
        detail::gradient_product<T>(g[1], g.adds(1), gd, x[0]);
      }
    }
    if (g.wants(2)) g.put(2, gd.colwise().sum());
  }
};

/// y = xᵀ;  g = gyᵀ
struct Transpose {
  static constexpr std::string_view name = "transpose";
  static constexpr int arity = 1;
  static constexpr Rules kRules = Rules::linear;
  Shape shape(std::span<const Shape> x) const { return {x[0].cols, x[0].rows}; }
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    y = x[0].transpose();
  }
  template <class T>
  void backward(const Inputs<T>&, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    g[0] = gy.transpose();
  }
};

/// y = x + 1·b: the 1×C row b added to every row of the R×C x (a bias over the batch);
/// gx = gy, gb = Σ_rows gy
struct AddRowVector {
  static constexpr std::string_view name = "add_row_vector";
  static constexpr std::uint8_t kRowLocalInputs = 0b01;  // input 0; the rest sum over rows
  static constexpr int arity = 2;
  static constexpr bool kAccumulates = true;
  static constexpr std::uint8_t kPassesGradient = 0b01;
  static constexpr Rules kRules = Rules::linear;
  Shape shape(std::span<const Shape> x) const {
    if (x[1].rows != 1 || x[1].cols != x[0].cols) {
      detail::throw_shape(
          name, "bias has the wrong shape",
          fmt::format("bias is {}, expected 1x{} for a {} input", x[1], x[0].cols, x[0]));
    }
    return x[0];
  }
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    y = x[0].rowwise() + x[1].row(0);
  }
  template <class T>
  void backward(const Inputs<T>&, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    if (g.wants(0)) g.put(0, gy);
    if (g.wants(1)) g.put(1, gy.colwise().sum());
  }
};

/// y = x ⊙ (1·v): the 1×C row v multiplies every row of the R×C x (a gain, a peephole weight);
/// gx = gy ⊙ (1·v), gv = Σ_rows gy ⊙ x
struct MulRowVector {
  static constexpr std::string_view name = "mul_row_vector";
  static constexpr std::uint8_t kRowLocalInputs = 0b01;  // input 0; the rest sum over rows
  static constexpr int arity = 2;
  static constexpr Rules kRules = Rules::bilinear;
  Shape shape(std::span<const Shape> x) const {
    if (x[1].rows != 1 || x[1].cols != x[0].cols) {
      detail::throw_shape(
          name, "row vector has the wrong shape",
          fmt::format("vector is {}, expected 1x{} for a {} input", x[1], x[0].cols, x[0]));
    }
    return x[0];
  }
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    y = x[0].array().rowwise() * x[1].row(0).array();
  }
  template <class T>
  void backward(const Inputs<T>& x, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    if (g.wants(0)) g[0] = gy.array().rowwise() * x[1].row(0).array();
    if (g.wants(1)) g[1] = (gy.array() * x[0].array()).colwise().sum();
  }
};

// ---- per-example matrices ------------------------------------------------------------------
// A per-example m×n matrix (an mLSTM or DeltaNet memory, an S6 state) is one row of length m·n,
// row-major: row i of a B×(m·n) tensor is example i's matrix M_i, M_i(p, q) at column p·n + q.
// The three products below are closed under differentiation: each one's gradients are the
// others'. Rows are independent, so a large one runs on two threads (kRowwise).

/// y_i = vec(a_i b_iᵀ): a B×m, b B×n, y B×(m·n);  ga_i = G_i b_i, gb_i = G_iᵀ a_i with G_i
/// example i's m×n block of gy (row_matvec and row_vecmat of gy)
struct RowOuter {
  static constexpr std::string_view name = "row_outer";
  static constexpr int arity = 2;
  static constexpr bool kRowwise = true;
  static constexpr Rules kRules = Rules::bilinear;
  Shape shape(std::span<const Shape> x) const {
    if (x[0].rows != x[1].rows) {
      detail::throw_shape(name, "the batches differ",
                          fmt::format("lhs is {}, rhs is {}", x[0], x[1]));
    }
    return {x[0].rows, x[0].cols * x[1].cols};
  }
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    detail::row_outer_into<T>(y, x[0], x[1]);
  }
  template <class T>
  void backward(const Inputs<T>& x, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    if (g.wants(0)) detail::row_matvec_into<T>(g[0], gy, x[1]);
    if (g.wants(1)) detail::row_vecmat_into<T>(g[1], x[0], gy);
  }
};

/// y_i = x_iᵀ M_i: x B×m, M B×(m·n) (example i's m×n matrix in row i), y B×n;
/// gx_i = M_i gy_i, gM_i = x_i gy_iᵀ
struct RowVecmat {
  static constexpr std::string_view name = "row_vecmat";
  static constexpr int arity = 2;
  static constexpr bool kRowwise = true;
  static constexpr Rules kRules = Rules::bilinear;
  Shape shape(std::span<const Shape> x) const {
    return {x[0].rows, detail::other_side(name, x[1], x[0], false)};
  }
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    detail::row_vecmat_into<T>(y, x[0], x[1]);
  }
  template <class T>
  void backward(const Inputs<T>& x, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    if (g.wants(0)) detail::row_matvec_into<T>(g[0], x[1], gy);
    if (g.wants(1)) detail::row_outer_into<T>(g[1], x[0], gy);
  }
};

/// y_i = M_i v_i: M B×(m·n) (example i's m×n matrix in row i), v B×n, y B×m;
/// gM_i = gy_i v_iᵀ, gv_i = M_iᵀ gy_i
struct RowMatvec {
  static constexpr std::string_view name = "row_matvec";
  static constexpr int arity = 2;
  static constexpr bool kRowwise = true;
  static constexpr Rules kRules = Rules::bilinear;
  Shape shape(std::span<const Shape> x) const {
    return {x[0].rows, detail::other_side(name, x[0], x[1], true)};
  }
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    detail::row_matvec_into<T>(y, x[0], x[1]);
  }
  template <class T>
  void backward(const Inputs<T>& x, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    if (g.wants(0)) detail::row_outer_into<T>(g[0], gy, x[1]);
    if (g.wants(1)) detail::row_vecmat_into<T>(g[1], gy, x[0]);
  }
};

/// y = x + v·1ᵀ: the B×1 column v (one value per example) added to every column of the B×C x;
/// gx = gy, gv = Σ_cols gy
struct AddColVector {
  static constexpr std::string_view name = "add_col_vector";
  static constexpr int arity = 2;
  static constexpr bool kRowwise = true;
  static constexpr bool kAccumulates = true;
  static constexpr std::uint8_t kPassesGradient = 0b01;
  static constexpr Rules kRules = Rules::linear;
  Shape shape(std::span<const Shape> x) const { return detail::col_vector_shape(name, x); }
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    y = x[0].colwise() + x[1].col(0);
  }
  template <class T>
  void backward(const Inputs<T>&, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    if (g.wants(0)) g.put(0, gy);
    if (g.wants(1)) g.put(1, gy.rowwise().sum());
  }
};

/// y = x ⊙ (v·1ᵀ): the B×1 column v (a per-example gate) multiplies every column of the B×C x;
/// gx = gy ⊙ (v·1ᵀ), gv = Σ_cols gy ⊙ x
struct MulColVector {
  static constexpr std::string_view name = "mul_col_vector";
  static constexpr int arity = 2;
  static constexpr bool kRowwise = true;
  static constexpr Rules kRules = Rules::bilinear;
  Shape shape(std::span<const Shape> x) const { return detail::col_vector_shape(name, x); }
  template <class T>
  void forward(const Inputs<T>& x, MutMap<T> y) const {
    y = x[0].array().colwise() * x[1].col(0).array();
  }
  template <class T>
  void backward(const Inputs<T>& x, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const {
    if (g.wants(0)) g[0] = gy.array().colwise() * x[1].col(0).array();
    if (g.wants(1)) g[1] = (gy.array() * x[0].array()).rowwise().sum();
  }
};

}  // namespace rwd::ops
