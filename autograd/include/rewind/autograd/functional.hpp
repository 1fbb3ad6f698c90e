// The functional API: one free function per primitive (same name as the op), plus operators.
// Each records onto the tape of its first argument. The math and the gradient of each op are
// documented on its struct in ops/.
#pragma once

#include <initializer_list>
#include <memory>
#include <random>
#include <span>
#include <type_traits>
#include <vector>

#include "rewind/autograd/tape.hpp"

namespace rwd {

template <class T>
using Scalar = std::type_identity_t<T>;  // scalars never drive template deduction

// ---- arithmetic ---------------------------------------------------------------------------------
/// a + b (equal shapes)
template <class T>
Var<T> add(const Var<T>& a, const Var<T>& b) {
  return a.tape().record(ops::Add{}, {a, b});
}
/// a - b (equal shapes)
template <class T>
Var<T> sub(const Var<T>& a, const Var<T>& b) {
  return a.tape().record(ops::Sub{}, {a, b});
}
/// a ⊙ b, elementwise (equal shapes); the matrix product is matmul
template <class T>
Var<T> mul(const Var<T>& a, const Var<T>& b) {
  return a.tape().record(ops::Mul{}, {a, b});
}
/// a / b, elementwise (equal shapes)
template <class T>
Var<T> div(const Var<T>& a, const Var<T>& b) {
  return a.tape().record(ops::Div{}, {a, b});
}
/// -x
template <class T>
Var<T> neg(const Var<T>& x) {
  return x.tape().record(ops::Neg{}, {x});
}
/// c·x
template <class T>
Var<T> scale(const Var<T>& x, Scalar<T> c) {
  return x.tape().record(ops::Scale{static_cast<double>(c)}, {x});
}
/// x + c
template <class T>
Var<T> add_scalar(const Var<T>& x, Scalar<T> c) {
  return x.tape().record(ops::AddScalar{static_cast<double>(c)}, {x});
}
/// x^p for a constant exponent p
template <class T>
Var<T> pow(const Var<T>& x, double p) {
  return x.tape().record(ops::Pow{p}, {x});
}
/// x²
template <class T>
Var<T> square(const Var<T>& x) {
  return x.tape().record(ops::Square{}, {x});
}
/// √x
template <class T>
Var<T> sqrt(const Var<T>& x) {
  return x.tape().record(ops::Sqrt{}, {x});
}
/// eˣ
template <class T>
Var<T> exp(const Var<T>& x) {
  return x.tape().record(ops::Exp{}, {x});
}
/// ln x
template <class T>
Var<T> log(const Var<T>& x) {
  return x.tape().record(ops::Log{}, {x});
}
/// |x|
template <class T>
Var<T> abs(const Var<T>& x) {
  return x.tape().record(ops::Abs{}, {x});
}
/// sin x
template <class T>
Var<T> sin(const Var<T>& x) {
  return x.tape().record(ops::Sin{}, {x});
}
/// cos x
template <class T>
Var<T> cos(const Var<T>& x) {
  return x.tape().record(ops::Cos{}, {x});
}
/// max(a, b) elementwise (same shapes); on a tie each input gets half the gradient, as PyTorch.
template <class T>
Var<T> maximum(const Var<T>& a, const Var<T>& b) {
  return a.tape().record(ops::Maximum{}, {a, b});
}
/// min(a, b) elementwise (same shapes); on a tie each input gets half the gradient, as PyTorch.
template <class T>
Var<T> minimum(const Var<T>& a, const Var<T>& b) {
  return a.tape().record(ops::Minimum{}, {a, b});
}

// ---- activations --------------------------------------------------------------------------------
/// 1 / (1 + e⁻ˣ)
template <class T>
Var<T> sigmoid(const Var<T>& x) {
  return x.tape().record(ops::Sigmoid{}, {x});
}
/// tanh x
template <class T>
Var<T> tanh(const Var<T>& x) {
  return x.tape().record(ops::Tanh{}, {x});
}
/// max(x, 0)
template <class T>
Var<T> relu(const Var<T>& x) {
  return x.tape().record(ops::Relu{}, {x});
}
/// ln(1 + eˣ), stable
template <class T>
Var<T> softplus(const Var<T>& x) {
  return x.tape().record(ops::Softplus{}, {x});
}
/// ln σ(x), stable
template <class T>
Var<T> log_sigmoid(const Var<T>& x) {
  return x.tape().record(ops::LogSigmoid{}, {x});
}

// ---- linear algebra -----------------------------------------------------------------------------
/// a·b, the matrix product
template <class T>
Var<T> matmul(const Var<T>& a, const Var<T>& b) {
  return a.tape().record(ops::Matmul{}, {a, b});
}
/// a·bᵀ without forming bᵀ (b is a weight in out×in layout)
template <class T>
Var<T> matmul_nt(const Var<T>& a, const Var<T>& b) {
  return a.tape().record(ops::MatmulNt{}, {a, b});
}
/// x·wᵀ + b (b a 1×N row added to every row): a linear layer in one op, PyTorch's F.linear
template <class T>
Var<T> affine(const Var<T>& x, const Var<T>& w, const Var<T>& b) {
  return x.tape().record(ops::Affine{}, {x, w, b});
}
/// xᵀ
template <class T>
Var<T> transpose(const Var<T>& x) {
  return x.tape().record(ops::Transpose{}, {x});
}
/// x + b with the 1×C row b added to every row of x
template <class T>
Var<T> add_row_vector(const Var<T>& x, const Var<T>& b) {
  return x.tape().record(ops::AddRowVector{}, {x, b});
}
/// x ⊙ v with the 1×C row v multiplying every row of x
template <class T>
Var<T> mul_row_vector(const Var<T>& x, const Var<T>& v) {
  return x.tape().record(ops::MulRowVector{}, {x, v});
}
/// x + v with the B×1 column v (one value per example) added to every column of x
template <class T>
Var<T> add_col_vector(const Var<T>& x, const Var<T>& v) {
  return x.tape().record(ops::AddColVector{}, {x, v});
}
/// x ⊙ v with the B×1 column v (one value per example) multiplying every column of x
template <class T>
Var<T> mul_col_vector(const Var<T>& x, const Var<T>& v) {
  return x.tape().record(ops::MulColVector{}, {x, v});
}

// ---- per-example matrices (row i of a B×(m·n) tensor is example i's m×n matrix, row-major) ----
/// Row i: vec(a_i b_iᵀ), the outer product of a's and b's row i (B×m, B×n → B×(m·n))
template <class T>
Var<T> row_outer(const Var<T>& a, const Var<T>& b) {
  return a.tape().record(ops::RowOuter{}, {a, b});
}
/// Row i: x_iᵀ M_i, a row times example i's matrix (B×m, B×(m·n) → B×n)
template <class T>
Var<T> row_vecmat(const Var<T>& x, const Var<T>& m) {
  return x.tape().record(ops::RowVecmat{}, {x, m});
}
/// Row i: M_i v_i, example i's matrix times a row (B×(m·n), B×n → B×m)
template <class T>
Var<T> row_matvec(const Var<T>& m, const Var<T>& v) {
  return m.tape().record(ops::RowMatvec{}, {m, v});
}

// ---- reductions ---------------------------------------------------------------------------------
/// Σ x, 1×1
template <class T>
Var<T> sum(const Var<T>& x) {
  return x.tape().record(ops::Sum{}, {x});
}
/// mean of all elements, 1×1
template <class T>
Var<T> mean(const Var<T>& x) {
  return x.tape().record(ops::Mean{}, {x});
}
/// each row summed: R×C -> R×1
template <class T>
Var<T> sum_rows(const Var<T>& x) {
  return x.tape().record(ops::SumRows{}, {x});
}
/// each column summed: R×C -> 1×C
template <class T>
Var<T> sum_cols(const Var<T>& x) {
  return x.tape().record(ops::SumCols{}, {x});
}

// ---- shape --------------------------------------------------------------------------------------
/// [x₀ x₁ …] side by side (equal row counts)
template <class T>
Var<T> concat_cols(std::span<const Var<T>> xs) {
  if (xs.empty()) throw UsageError("concat_cols: no inputs");
  return xs[0].tape().record(ops::ConcatCols{}, xs);
}
template <class T>
Var<T> concat_cols(std::initializer_list<Var<T>> xs) {
  return concat_cols(std::span<const Var<T>>(xs.begin(), xs.size()));
}
template <class T>
Var<T> concat_cols(const std::vector<Var<T>>& xs) {
  return concat_cols(std::span<const Var<T>>(xs));
}
/// [x₀; x₁; …] stacked (equal column counts)
template <class T>
Var<T> concat_rows(std::span<const Var<T>> xs) {
  if (xs.empty()) throw UsageError("concat_rows: no inputs");
  return xs[0].tape().record(ops::ConcatRows{}, xs);
}
template <class T>
Var<T> concat_rows(std::initializer_list<Var<T>> xs) {
  return concat_rows(std::span<const Var<T>>(xs.begin(), xs.size()));
}
template <class T>
Var<T> concat_rows(const std::vector<Var<T>>& xs) {
  return concat_rows(std::span<const Var<T>>(xs));
}
/// columns [begin, end) of x
template <class T>
Var<T> slice_cols(const Var<T>& x, Index begin, Index end) {
  return x.tape().record(ops::SliceCols{begin, end}, {x});
}
/// rows [begin, end) of x
template <class T>
Var<T> slice_rows(const Var<T>& x, Index begin, Index end) {
  return x.tape().record(ops::SliceRows{begin, end}, {x});
}
/// x viewed as rows×cols (row-major order, no copy)
template <class T>
Var<T> reshape(const Var<T>& x, Index rows, Index cols) {
  return x.tape().record(ops::Reshape{rows, cols}, {x});
}
/// x with no gradient flowing back through it (stop-gradient, truncated BPTT)
template <class T>
Var<T> detach(const Var<T>& x) {
  return x.tape().record(ops::Detach{}, {x});
}

// ---- softmax and losses -------------------------------------------------------------------------
/// log-softmax of each row
template <class T>
Var<T> log_softmax_rows(const Var<T>& x) {
  return x.tape().record(ops::LogSoftmaxRows{}, {x});
}
/// softmax of each row
template <class T>
Var<T> softmax_rows(const Var<T>& x) {
  return x.tape().record(ops::SoftmaxRows{}, {x});
}
/// mean over rows of -log softmax(logits)[r, targets[r]]; targets are class indices
template <class T>
Var<T> cross_entropy(const Var<T>& logits, std::span<const std::int32_t> targets) {
  const auto stored = logits.tape().store_indices(targets);
  return logits.tape().record(ops::CrossEntropy{stored.data(), static_cast<Index>(stored.size())},
                              {logits});
}
/// mean((a - b)²)
template <class T>
Var<T> mse(const Var<T>& a, const Var<T>& b) {
  return a.tape().record(ops::Mse{}, {a, b});
}
/// mean binary cross-entropy of logits against targets in [0, 1]
template <class T>
Var<T> bce_with_logits(const Var<T>& logits, const Var<T>& targets) {
  return logits.tape().record(ops::BceWithLogits{}, {logits, targets});
}

// ---- selection ----------------------------------------------------------------------------------
/// rows ids[0], ids[1], … of the table
template <class T>
Var<T> embedding(const Var<T>& table, std::span<const std::int32_t> ids) {
  const auto stored = table.tape().store_indices(ids);
  return table.tape().record(ops::Embedding{stored.data(), static_cast<Index>(stored.size())},
                             {table});
}
/// inverted dropout with a given 0/1 mask: x ⊙ mask / (1 - p)
template <class T>
Var<T> dropout(const Var<T>& x, const Var<T>& mask, double p) {
  if (!(p >= 0 && p < 1)) throw UsageError(fmt::format("dropout: probability {} not in [0, 1)", p));
  return x.tape().record(ops::Dropout{1.0 / (1.0 - p)}, {x, mask});
}
/// inverted dropout, each element kept with probability 1 - p by `rng`; p = 0 returns x
template <class T, class Rng>
Var<T> dropout(const Var<T>& x, double p, Rng& rng) {
  if (!(p >= 0 && p < 1)) throw UsageError(fmt::format("dropout: probability {} not in [0, 1)", p));
  if (p == 0) return x;
  const Shape s = x.shape();
  Matrix<T> mask(s.rows, s.cols);
  std::bernoulli_distribution keep(1.0 - p);
  for (Index i = 0; i < mask.size(); ++i) mask.data()[i] = keep(rng) ? T(1) : T(0);
  return dropout(x, x.tape().constant(mask, "dropout_mask"), p);
}
/// mask ⊙ a + (1 - mask) ⊙ b; mask has a's shape or is R×1 (selects whole rows)
template <class T>
Var<T> where(const Var<T>& mask, const Var<T>& a, const Var<T>& b) {
  return a.tape().record(ops::Where{}, {mask, a, b});
}

// ---- user-defined primitives --------------------------------------------------------------------
/// records a CustomOp on the inputs' tape
template <class T>
Var<T> custom(std::shared_ptr<const CustomOp<T>> fn, std::initializer_list<Var<T>> xs) {
  if (xs.size() == 0) throw UsageError("custom: no inputs");
  return xs.begin()->tape().record_custom(std::move(fn),
                                          std::span<const Var<T>>(xs.begin(), xs.size()));
}

// ---- operators: elementwise, like numpy ---------------------------------------------------------
template <class T>
Var<T> operator+(const Var<T>& a, const Var<T>& b) {
  return add(a, b);
}
template <class T>
Var<T> operator-(const Var<T>& a, const Var<T>& b) {
  return sub(a, b);
}
template <class T>
Var<T> operator*(const Var<T>& a, const Var<T>& b) {
  return mul(a, b);
}
template <class T>
Var<T> operator/(const Var<T>& a, const Var<T>& b) {
  return div(a, b);
}
template <class T>
Var<T> operator-(const Var<T>& x) {
  return neg(x);
}
template <class T>
Var<T> operator+(const Var<T>& x, Scalar<T> c) {
  return add_scalar(x, c);
}
template <class T>
Var<T> operator+(Scalar<T> c, const Var<T>& x) {
  return add_scalar(x, c);
}
template <class T>
Var<T> operator-(const Var<T>& x, Scalar<T> c) {
  return add_scalar(x, -c);
}
template <class T>
Var<T> operator-(Scalar<T> c, const Var<T>& x) {
  return add_scalar(neg(x), c);
}
template <class T>
Var<T> operator*(const Var<T>& x, Scalar<T> c) {
  return scale(x, c);
}
template <class T>
Var<T> operator*(Scalar<T> c, const Var<T>& x) {
  return scale(x, c);
}
template <class T>
Var<T> operator/(const Var<T>& x, Scalar<T> c) {
  return scale(x, T(1) / c);
}

}  // namespace rwd
