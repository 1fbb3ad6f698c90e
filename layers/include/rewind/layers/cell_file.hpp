// Cells written in a text file (`.cell`), loaded at run time: a new recurrent variant without
// recompiling. The format, line by line (`#` starts a comment):
//
//   cell mgu                                   the cell's name (errors, summaries)
//   state h = hidden                           a state tensor and its width; the first is the
//                                              output h, each needs a `next`
//   param u_f [hidden, hidden] uniform(1/sqrt(hidden))
//                                              a parameter, its shape and initialiser:
//                                              uniform(a) U(-a, a), normal(s), zeros, ones,
//                                              constant(v)
//   size heads = 4                             a named whole number, for sizes and expressions
//   let z = x @ w_f' + b_f                     a named value
//   gate f = sigmoid(z + h @ u_f')             a named value recorded under the scope `f`
//   next h = h + f * (tanh(...) - h)           the state's new value
//
// Sizes and numbers are expressions over `input`, `hidden` and the named sizes (+ - * /, sqrt,
// ceil, parentheses).
// Tensor expressions: the input `x`, states (always their value before the step), parameters
// and earlier names; `+ - * /` elementwise (a 1×n row on either side is broadcast over the
// batch: add_row_vector, mul_row_vector; a B×1 column over the columns: add_col_vector,
// mul_col_vector; `/` multiplies by the reciprocal; a number with a tensor: add_scalar, scale),
// `@` a matrix product (`a @ W'` is matmul_nt, the product with W transposed, without a copy),
// `'` a transpose, and the functions sigmoid tanh relu exp log softplus log_sigmoid square sqrt
// abs sin cos sum_rows, maximum(a, b), minimum(a, b), affine(x, W, b) (x·Wᵀ + b),
// cols(e, from, to) (slice_cols), concat(a, b, ...) (concat_cols), and the per-example matrix
// products row_outer(a, b), row_matvec(S, v), row_vecmat(x, S) (a state of m·n columns holds
// an m×n matrix per example, row-major: `state S = hidden * hidden`), heads(e, k) / merge(e, k)
// (B×(k·d) <-> (B·k)×d, a view: a row per head) and repeat(e, n) (B×m -> B×(m·n), each element n
// times: a per-row gate spread over an m×n matrix's columns).
// Every expression becomes rewind's primitive ops, the same ones a C++ cell records, so a file
// cell has gradients, second order, graphs (gates are scopes), diagnostics and speed for free.
//
// Errors are reported as a compiler does: `file:line:column: what`, the line, a caret.
#pragma once

#include <array>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <rewind/layers/cell.hpp>
#include <string>
#include <vector>

namespace rwd::layers {

/// A cell file's mistake (or a shape that cannot work for the sizes given), located.
class CellFileError : public UsageError {
 public:
  using UsageError::UsageError;
};

/// The largest number of state tensors a cell file may declare.
inline constexpr std::size_t kMaxFileCellStates = 4;
/// The most numbers one parameter of a file cell may hold (2^28: 1 GiB in float).
inline constexpr double kMaxFileCellParameter = 268435456.0;

/// A parsed, checked cell file, independent of sizes and scalar type.
struct CellProgram {
  struct Expr {
    enum class Kind : unsigned char { number, name, call, binary, negate, transpose };
    Kind kind = Kind::number;
    double number = 0;
    std::string name;  // name, function
    char op = 0;       // binary: + - * / @
    std::vector<int> args;
    int line = 0, column = 0;
    // A name, resolved: the input x, a state, a parameter, a let/gate value, input or hidden,
    // or a named size (index into sizes).
    enum class Ref : unsigned char { none, x, state, param, value, input, hidden, size };
    Ref ref = Ref::none;
    int index = -1;
  };
  struct State {
    std::string name;
    int size = -1;  // an expression (index into exprs)
    int line = 0;
  };
  struct Size {  // size NAME = EXPR: a whole number named, usable in sizes and expressions
    std::string name;
    int expr = -1;
    int line = 0, column = 0;
  };
  struct Param {
    std::string name;
    int rows = -1, cols = -1;
    std::string init;  // uniform, normal, zeros, ones, constant
    int init_arg = -1;
    int line = 0, column = 0;
  };
  struct Statement {
    enum class Kind : unsigned char { let, gate, next };
    Kind kind = Kind::let;
    std::string name;
    int expr = -1;
    int slot = -1;  // next: the state's index; let/gate: the value's index
    int line = 0, column = 0;
  };
  std::string file;  // for messages
  std::vector<std::string> lines;
  std::string name;
  std::vector<Size> sizes;
  std::vector<State> states;
  std::vector<Param> params;
  std::vector<Statement> statements;
  std::vector<Expr> exprs;
  int values = 0;  // let/gate slots

  /// `file:line:column: message`, the line and a caret under the column.
  [[noreturn]] void fail(int line, int column, const std::string& message) const;
  /// A size or number expression's value for these sizes.
  double evaluate_number(int expr, Index input, Index hidden) const;
  /// Each named size's value for these sizes, in the file's order; CellFileError (located) where
  /// one is not a positive whole number (`size dk = hidden / heads` at a hidden that does not
  /// split).
  std::vector<double> size_values(Index input, Index hidden) const;
};

/// Parses and checks a cell file's text: syntax, names, arities, one `next` per state.
/// Throws CellFileError.
std::shared_ptr<const CellProgram> parse_cell(const std::string& text,
                                              const std::string& file = "<cell>");
/// Reads and parses a file (FileError if it cannot be read).
std::shared_ptr<const CellProgram> load_cell_file(const std::filesystem::path& path);

namespace detail {
/// One expression's ops, recorded (the shared evaluator of every FileCell<T, N>).
template <class T>
struct CellEvaluator {
  const CellProgram& p;
  Tape<T>& tape;
  Index input, hidden;
  const Var<T>* x;
  const Var<T>* states;
  std::vector<Var<T>>* values;
  std::vector<Parameter<T>>* params;
  const std::vector<double>* sizes;  // the named sizes' values (the cell's, computed once)

  struct Value {
    bool is_number = false;
    double number = 0;
    Var<T> var;
  };
  Value eval(int e);
  Var<T> tensor(int e);

 private:
  static Value number(double v) { return Value{true, v, {}}; }
  static Value var(Var<T> v) { return Value{false, 0, std::move(v)}; }
  std::optional<Value> name(const CellProgram::Expr& x);  // a name's value
  std::optional<Value> call(const CellProgram::Expr& x);  // f(...); none: unknown
  Value binary(const CellProgram::Expr& x);               // a + b, a @ W, ...
};
}  // namespace detail

/// A cell made from a CellProgram, with N state tensors. Use make_file_cell / with_file_cell,
/// which pick N from the file.
template <class T, std::size_t N>
class FileCell {
 public:
  using Scalar = T;
  using State = std::array<Var<T>, N>;

  /// Sizes the program for `input` and `hidden`, draws the parameters in the file's order, and
  /// records one step on a scratch tape so that a shape that cannot work fails here, located.
  FileCell(std::shared_ptr<const CellProgram> program, Index input, Index hidden, Rng& rng);

  State step(Tape<T>& tape, const Var<T>& x, const State& s);
  std::array<Index, N> state_sizes() const { return sizes_; }
  Index input_size() const { return input_; }
  Index hidden_size() const { return hidden_; }
  std::vector<Parameter<T>*> named_parameters() {
    std::vector<Parameter<T>*> all;
    for (Parameter<T>& p : params_) all.push_back(&p);
    return all;
  }
  const CellProgram& program() const { return *program_; }

 private:
  std::shared_ptr<const CellProgram> program_;
  Index input_ = 0, hidden_ = 0;
  std::array<Index, N> sizes_{};
  std::vector<double> named_sizes_;  // CellProgram::sizes' values at input_ and hidden_
  std::vector<Parameter<T>> params_;
  std::vector<Var<T>> values_;
};

/// Calls f(cell) with a FileCell<T, N> for the program's N states.
template <class T, class F>
decltype(auto) with_file_cell(std::shared_ptr<const CellProgram> program, Index input, Index hidden,
                              Rng& rng, F&& f);

/// Calls f with the number of states as a std::integral_constant (to build a
/// Sequence<FileCell<T, N>> and such).
template <class F>
decltype(auto) with_state_count(const CellProgram& program, F&& f) {
  switch (program.states.size()) {
    case 1:
      return f(std::integral_constant<std::size_t, 1>{});
    case 2:
      return f(std::integral_constant<std::size_t, 2>{});
    case 3:
      return f(std::integral_constant<std::size_t, 3>{});
    case 4:
      return f(std::integral_constant<std::size_t, 4>{});
    default:
      throw CellFileError(fmt::format("{}: {} state tensors: a cell file declares 1 to {}",
                                      program.file, program.states.size(), kMaxFileCellStates));
  }
}

template <class T, class F>
decltype(auto) with_file_cell(std::shared_ptr<const CellProgram> program, Index input, Index hidden,
                              Rng& rng, F&& f) {
  return with_state_count(*program, [&](auto n) -> decltype(auto) {
    FileCell<T, decltype(n)::value> cell(program, input, hidden, rng);
    return f(cell);
  });
}

extern template struct detail::CellEvaluator<float>;
extern template struct detail::CellEvaluator<double>;

// ---- FileCell, inline
// -----------------------------------------------------------------------------

template <class T, std::size_t N>
FileCell<T, N>::FileCell(std::shared_ptr<const CellProgram> program, Index input, Index hidden,
                         Rng& rng)
    : program_(std::move(program)), input_(input), hidden_(hidden) {
  const CellProgram& p = *program_;
  if (p.states.size() != N) {
    throw CellFileError(
        fmt::format("{}: {} states, built as a cell of {}", p.file, p.states.size(), N));
  }
  if (input < 1 || hidden < 1) {
    throw UsageError(
        fmt::format("{}: input {} and hidden {} must be positive", p.name, input, hidden));
  }
  named_sizes_ = p.size_values(input, hidden);
  const auto whole = [&](int expr, int line, int column, const char* what) {
    const double v = p.evaluate_number(expr, input, hidden);
    if (!(v >= 1) || v != std::floor(v) || v > 1e9) {
      p.fail(line, column,
             fmt::format("{} is {} for input {} and hidden {}: a size must be a positive "
                         "integer",
                         what, v, input, hidden));
    }
    return static_cast<Index>(v);
  };
  for (std::size_t k = 0; k < N; ++k) {
    const auto& s = p.states[k];
    sizes_[k] = whole(s.size, s.line, 1, fmt::format("the size of state '{}'", s.name).c_str());
  }
  for (const auto& q : p.params) {
    const Index rows = whole(q.rows, q.line, q.column, "a row count");
    const Index cols = whole(q.cols, q.line, q.column, "a column count");
    if (static_cast<double>(rows) * static_cast<double>(cols) > kMaxFileCellParameter) {
      p.fail(q.line, q.column,
             fmt::format("parameter '{}' would be {}x{} for input {} and hidden {}: more than "
                         "{} numbers",
                         q.name, rows, cols, input, hidden, kMaxFileCellParameter));
    }
    const double a = q.init_arg >= 0 ? p.evaluate_number(q.init_arg, input, hidden) : 0.0;
    Matrix<T> v;
    if (q.init == "uniform") {
      v = uniform<T>(rows, cols, a, rng);
    } else if (q.init == "normal") {
      std::normal_distribution<double> normal(0, a);
      v.resize(rows, cols);
      for (Index i = 0; i < v.size(); ++i) v.data()[i] = static_cast<T>(normal(rng));
    } else if (q.init == "zeros") {
      v = Matrix<T>::Zero(rows, cols);
    } else if (q.init == "ones") {
      v = Matrix<T>::Ones(rows, cols);
    } else {
      v = Matrix<T>::Constant(rows, cols, static_cast<T>(a));
    }
    params_.emplace_back(q.name, std::move(v));
  }
  // A shape that cannot work fails now, at its place in the file (a batch of 2, so that a 1×n
  // row is never mistaken for the batch).
  Tape<T> scratch;
  State s;
  for (std::size_t k = 0; k < N; ++k) s[k] = scratch.constant(Matrix<T>::Zero(2, sizes_[k]));
  (void)step(scratch, scratch.constant(Matrix<T>::Zero(2, input)), s);
}

template <class T, std::size_t N>
typename FileCell<T, N>::State FileCell<T, N>::step(Tape<T>& tape, const Var<T>& x,
                                                    const State& s) {
  const CellProgram& p = *program_;
  detail::check_input(p.name, x.shape(), input_);
  for (std::size_t k = 0; k < N; ++k) {
    detail::check_state(p.name, fmt::format("state '{}'", p.states[k].name), s[k].shape(), x.rows(),
                        sizes_[k]);
  }
  values_.assign(static_cast<std::size_t>(p.values), Var<T>());
  detail::CellEvaluator<T> ev{p,        tape,     input_,   hidden_,      &x,
                              s.data(), &values_, &params_, &named_sizes_};
  State next;
  for (const auto& st : p.statements) {
    if (st.kind == CellProgram::Statement::Kind::gate) {
      auto scope = tape.scope(st.name);
      values_[static_cast<std::size_t>(st.slot)] = ev.tensor(st.expr);
    } else if (st.kind == CellProgram::Statement::Kind::let) {
      values_[static_cast<std::size_t>(st.slot)] = ev.tensor(st.expr);
    } else {
      const Var<T> v = ev.tensor(st.expr);
      const Shape want{x.rows(), sizes_[static_cast<std::size_t>(st.slot)]};
      if (v.shape() != want) {
        p.fail(st.line, st.column,
               fmt::format("the new value of state '{}' is {}, expected {} (batch {}, size {})",
                           st.name, v.shape(), want, want.rows, want.cols));
      }
      next[static_cast<std::size_t>(st.slot)] = v;
    }
  }
  return next;
}

}  // namespace rwd::layers
