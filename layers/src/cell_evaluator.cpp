// The cell language's evaluator: a parsed program's expressions recorded on a tape as
// primitives, one step of a FileCell. Errors point at the expression (file:line:column).
#include <cmath>

#include "rewind/layers/cell_file.hpp"

namespace rwd::layers::detail {

using Expr = CellProgram::Expr;
using Ref = CellProgram::Expr::Ref;

template <class T>
Var<T> CellEvaluator<T>::tensor(int e) {
  Value v = eval(e);
  if (v.is_number) {
    const Expr& x = p.exprs[static_cast<std::size_t>(e)];
    p.fail(x.line, x.column, "a number where a tensor is needed");
  }
  return v.var;
}

template <class T>
typename CellEvaluator<T>::Value CellEvaluator<T>::eval(int e) {
  const Expr& x = p.exprs[static_cast<std::size_t>(e)];
  try {
    switch (x.kind) {
      case Expr::Kind::number:
        return number(x.number);
      case Expr::Kind::name:
        if (std::optional<Value> v = name(x)) return *v;
        break;
      case Expr::Kind::negate: {
        const Value a = eval(x.args[0]);
        return a.is_number ? number(-a.number) : var(neg(a.var));
      }
      case Expr::Kind::transpose:
        return var(transpose(tensor(x.args[0])));
      case Expr::Kind::call:
        if (std::optional<Value> v = call(x)) return *v;
        break;
      case Expr::Kind::binary:
        return binary(x);
    }
  } catch (const CellFileError&) {
    throw;
  } catch (const ShapeError& err) {  // an op's shape check: point at the expression
    p.fail(x.line, x.column, err.what());
  } catch (const UsageError& err) {
    p.fail(x.line, x.column, err.what());
  }
  p.fail(x.line, x.column, "cannot evaluate this");
}

template <class T>
std::optional<typename CellEvaluator<T>::Value> CellEvaluator<T>::name(const Expr& x) {
  switch (x.ref) {
    case Ref::input:
      return number(static_cast<double>(input));
    case Ref::hidden:
      return number(static_cast<double>(hidden));
    case Ref::size:
      return number((*sizes)[static_cast<std::size_t>(x.index)]);
    case Ref::x:
      return var(*this->x);
    case Ref::state:
      return var(states[x.index]);
    case Ref::param:
      return var(tape.param((*params)[static_cast<std::size_t>(x.index)]));
    case Ref::value:
      return var((*values)[static_cast<std::size_t>(x.index)]);
    case Ref::none:
      break;
  }
  return std::nullopt;
}

template <class T>
std::optional<typename CellEvaluator<T>::Value> CellEvaluator<T>::call(const Expr& x) {
  const std::string& f = x.name;
  if (f == "affine") {
    // One declaration per argument: recorded left to right whatever the compiler's order of
    // evaluating function arguments, so node numbers (and graphs) agree across compilers.
    const Var<T> in = tensor(x.args[0]);
    const Var<T> w = tensor(x.args[1]);
    const Var<T> b = tensor(x.args[2]);
    return var(affine(in, w, b));
  }
  if (f == "concat") {
    std::vector<Var<T>> parts;
    for (int a : x.args) parts.push_back(tensor(a));
    return var(parts.size() == 1 ? parts[0] : concat_cols(parts));
  }
  if (f == "maximum" || f == "minimum" || f.starts_with("row_")) {  // two tensors
    const Var<T> a = tensor(x.args[0]);
    const Var<T> b = tensor(x.args[1]);
    if (f == "maximum") return var(maximum(a, b));
    if (f == "minimum") return var(minimum(a, b));
    if (f == "row_outer") return var(row_outer(a, b));
    if (f == "row_vecmat") return var(row_vecmat(a, b));
    return var(row_matvec(a, b));
  }
  if (f == "heads" || f == "merge" || f == "repeat") {
    const Var<T> a = tensor(x.args[0]);
    const Value k = eval(x.args[1]);
    if (!k.is_number || !(k.number >= 1) || k.number != std::floor(k.number)) {
      p.fail(x.line, x.column,
             fmt::format("{}(e, {}): {} is a whole number", f, f == "repeat" ? "n" : "k",
                         f == "repeat" ? "n, the times each element repeats," : "k, the heads,"));
    }
    const auto heads = static_cast<Index>(k.number);
    if (f == "repeat") {
      // B×m -> B×(m·n), each element n times in a row: vec(a_i 1ᵀ), a per-row gate spread over
      // the columns of a per-example m×n matrix (row_outer with a constant of ones).
      return var(row_outer(a, tape.constant(Matrix<T>::Ones(a.rows(), heads))));
    }
    // B×(k·d) <-> (B·k)×d: example b's head j is row b·k + j, a view (reshape), no copy.
    if (f == "heads") {
      if (a.cols() % heads != 0) {
        p.fail(x.line, x.column,
               fmt::format("heads(e, {}): {} columns do not split into {} heads", heads, a.cols(),
                           heads));
      }
      return var(reshape(a, a.rows() * heads, a.cols() / heads));
    }
    if (a.rows() % heads != 0) {
      p.fail(x.line, x.column,
             fmt::format("merge(e, {}): {} rows are not whole examples of {} heads", heads,
                         a.rows(), heads));
    }
    return var(reshape(a, a.rows() / heads, a.cols() * heads));
  }
  if (f == "cols") {
    const Var<T> a = tensor(x.args[0]);
    const Value from = eval(x.args[1]), to = eval(x.args[2]);
    if (!from.is_number || !to.is_number) {
      p.fail(x.line, x.column, "cols(e, from, to): from and to are numbers");
    }
    return var(slice_cols(a, static_cast<Index>(from.number), static_cast<Index>(to.number)));
  }
  const Value a = eval(x.args[0]);
  if (a.is_number) {
    if (f == "sqrt") return number(std::sqrt(a.number));
    if (f == "exp") return number(std::exp(a.number));
    if (f == "log") return number(std::log(a.number));
    if (f == "sin") return number(std::sin(a.number));
    if (f == "cos") return number(std::cos(a.number));
    if (f == "ceil") return number(std::ceil(a.number));
    p.fail(x.line, x.column, fmt::format("{} of a number", f));
  }
  const Var<T>& v = a.var;
  if (f == "ceil") p.fail(x.line, x.column, "ceil(e) rounds a number (a size), not a tensor");
  if (f == "sigmoid") return var(sigmoid(v));
  if (f == "tanh") return var(rwd::tanh(v));
  if (f == "relu") return var(relu(v));
  if (f == "exp") return var(rwd::exp(v));
  if (f == "log") return var(rwd::log(v));
  if (f == "softplus") return var(softplus(v));
  if (f == "log_sigmoid") return var(log_sigmoid(v));
  if (f == "square") return var(square(v));
  if (f == "sqrt") return var(rwd::sqrt(v));
  if (f == "abs") return var(rwd::abs(v));
  if (f == "neg") return var(neg(v));
  if (f == "sin") return var(rwd::sin(v));
  if (f == "cos") return var(rwd::cos(v));
  if (f == "sum_rows") return var(sum_rows(v));
  return std::nullopt;
}

template <class T>
typename CellEvaluator<T>::Value CellEvaluator<T>::binary(const Expr& x) {
  // `a @ W'`: the product with W transposed, without materialising the transpose.
  if (x.op == '@') {
    const Expr& rhs = p.exprs[static_cast<std::size_t>(x.args[1])];
    const Var<T> a = tensor(x.args[0]);
    if (rhs.kind == Expr::Kind::transpose) return var(matmul_nt(a, tensor(rhs.args[0])));
    return var(matmul(a, tensor(x.args[1])));
  }
  const Value a = eval(x.args[0]), b = eval(x.args[1]);
  if (a.is_number && b.is_number) {
    switch (x.op) {
      case '+':
        return number(a.number + b.number);
      case '-':
        return number(a.number - b.number);
      case '*':
        return number(a.number * b.number);
      default:
        return number(a.number / b.number);
    }
  }
  const auto c = [](double v) { return static_cast<T>(v); };
  const auto reciprocal = [&](const Var<T>& v) {  // 1 / v, elementwise
    return div(tape.constant(Matrix<T>::Ones(v.rows(), v.cols())), v);
  };
  if (a.is_number || b.is_number) {  // a number and a tensor
    const Var<T>& v = a.is_number ? b.var : a.var;
    const double n = a.is_number ? a.number : b.number;
    switch (x.op) {
      case '+':
        return var(add_scalar(v, c(n)));
      case '-':
        return var(a.is_number ? add_scalar(neg(v), c(n)) : add_scalar(v, c(-n)));
      case '*':
        return var(scale(v, c(n)));
      default:
        if (b.is_number) return var(scale(v, c(1 / n)));
        return var(scale(reciprocal(v), c(n)));
    }
  }
  // Two tensors; a 1×n row against a batch, or a B×1 column (one value per example) against
  // n columns, is broadcast with the explicit ops.
  const Var<T>& l = a.var;
  const Var<T>& r = b.var;
  const auto row_of = [](const Var<T>& small, const Var<T>& big) {
    return small.rows() == 1 && big.rows() != 1 && small.cols() == big.cols();
  };
  const auto col_of = [](const Var<T>& small, const Var<T>& big) {
    return small.cols() == 1 && big.cols() != 1 && small.rows() == big.rows();
  };
  const bool r_row = row_of(r, l), l_row = row_of(l, r);
  const bool r_col = !r_row && !l_row && col_of(r, l), l_col = !r_row && !l_row && col_of(l, r);
  const auto add_vector = [&](const Var<T>& big, const Var<T>& v) {
    return r_row || l_row ? add_row_vector(big, v) : add_col_vector(big, v);
  };
  const auto mul_vector = [&](const Var<T>& big, const Var<T>& v) {
    return r_row || l_row ? mul_row_vector(big, v) : mul_col_vector(big, v);
  };
  const bool r_small = r_row || r_col, l_small = l_row || l_col;
  switch (x.op) {
    case '+':
      if (r_small) return var(add_vector(l, r));
      if (l_small) return var(add_vector(r, l));
      return var(add(l, r));
    case '-':
      if (r_small) return var(add_vector(l, neg(r)));
      if (l_small) return var(add_vector(neg(r), l));
      return var(sub(l, r));
    case '*':
      if (r_small) return var(mul_vector(l, r));
      if (l_small) return var(mul_vector(r, l));
      return var(mul(l, r));
    default:
      if (r_small) return var(mul_vector(l, reciprocal(r)));
      if (l_small) return var(mul_vector(reciprocal(r), l));
      return var(div(l, r));
  }
}

template struct CellEvaluator<float>;
template struct CellEvaluator<double>;

}  // namespace rwd::layers::detail
