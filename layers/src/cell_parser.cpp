// The cell language's front end: tokens, the parser (names resolved, shapes of parameters
// checked where they can be) and the numbers a program computes from input and hidden. The
// evaluator, which records a program on a tape, is cell_evaluator.cpp.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "rewind/layers/cell_file.hpp"

namespace rwd::layers {
namespace {

using Expr = CellProgram::Expr;
using Ref = CellProgram::Expr::Ref;

struct Token {
  enum class Kind : unsigned char { name, number, symbol, end };
  Kind kind = Kind::end;
  std::string text;
  double number = 0;
  int column = 0;  // 1-based
};

// The unary tensor functions and their ops; the others have fixed arities below.
const std::set<std::string>& unary_functions() {
  static const std::set<std::string> names{"sigmoid",  "tanh",   "relu", "exp",      "log",
                                           "softplus", "square", "sqrt", "abs",      "log_sigmoid",
                                           "neg",      "sin",    "cos",  "sum_rows", "ceil"};
  return names;
}

// The functions of two arguments: elementwise ones of one shape, the per-example products, and
// heads(e, k) / merge(e, k) / repeat(e, n) (a tensor and a number).
const std::set<std::string>& binary_functions() {
  static const std::set<std::string> names{"maximum",    "minimum", "row_outer", "row_vecmat",
                                           "row_matvec", "heads",   "merge",     "repeat"};
  return names;
}

bool is_function(const std::string& name) {
  return unary_functions().count(name) != 0 || binary_functions().count(name) != 0 ||
         name == "affine" || name == "cols" || name == "concat";
}

// Levenshtein distance, for "did you mean" (names are short: a row of the table suffices).
std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// " (did you mean 'sigmoid'?)" for the closest of `known` within two edits of `name`, else "".
std::string did_you_mean(const std::string& name, const std::vector<std::string>& known) {
  std::string best;
  std::size_t distance = 3;
  for (const std::string& k : known) {
    const std::size_t d = edit_distance(name, k);
    if (d < distance) {
      distance = d;
      best = k;
    }
  }
  return best.empty() ? std::string() : fmt::format(" (did you mean '{}'?)", best);
}

std::vector<std::string> function_names() {
  std::vector<std::string> names(unary_functions().begin(), unary_functions().end());
  names.insert(names.end(), binary_functions().begin(), binary_functions().end());
  names.insert(names.end(), {"affine", "cols", "concat"});
  return names;
}

const std::set<std::string>& keywords() {
  static const std::set<std::string> k{"cell", "size", "state", "param", "let",
                                       "gate", "next", "x",     "input", "hidden"};
  return k;
}

class Parser {
 public:
  explicit Parser(CellProgram& p) : p_(p) {}

  void run(const std::string& text) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      p_.lines.push_back(line);
    }
    for (std::size_t i = 0; i < p_.lines.size(); ++i) {
      line_ = static_cast<int>(i) + 1;
      tokenize(p_.lines[i]);
      if (tokens_[0].kind == Token::Kind::end) continue;
      statement();
    }
    finish();
  }

 private:
  [[noreturn]] void fail(int column, const std::string& message) const {
    p_.fail(line_, column, message);
  }
  [[noreturn]] void fail_here(const std::string& message) const { fail(peek().column, message); }

  void tokenize(const std::string& s) {
    tokens_.clear();
    at_ = 0;
    std::size_t i = 0;
    while (i < s.size()) {
      const char c = s[i];
      if (c == '#') break;
      if (std::isspace(static_cast<unsigned char>(c))) {
        ++i;
        continue;
      }
      Token t;
      t.column = static_cast<int>(i) + 1;
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        const std::size_t j = i;
        while (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '_')) ++i;
        t.kind = Token::Kind::name;
        t.text = s.substr(j, i - j);
      } else if (std::isdigit(static_cast<unsigned char>(c)) || c == '.') {
        const char* begin = s.c_str() + i;
        char* end = nullptr;
        t.number = std::strtod(begin, &end);
        if (end == begin) fail(t.column, fmt::format("expected a number at '{}'", c));
        i += static_cast<std::size_t>(end - begin);
        t.kind = Token::Kind::number;
        t.text =
            s.substr(static_cast<std::size_t>(t.column - 1), static_cast<std::size_t>(end - begin));
        if (!std::isfinite(t.number))
          fail(t.column, fmt::format("number '{}' is out of range", t.text));
      } else if (std::string("+-*/@'()[],=").find(c) != std::string::npos) {
        t.kind = Token::Kind::symbol;
        t.text = std::string(1, c);
        ++i;
      } else {
        fail(t.column, fmt::format("unexpected character '{}'", c));
      }
      tokens_.push_back(t);
    }
    Token end;
    end.column = static_cast<int>(s.size()) + 1;
    tokens_.push_back(end);
  }

  const Token& peek() const { return tokens_[at_]; }
  Token take() { return tokens_[at_ < tokens_.size() - 1 ? at_++ : at_]; }
  bool accept(const char* symbol) {
    if (peek().kind == Token::Kind::symbol && peek().text == symbol) {
      ++at_;
      return true;
    }
    return false;
  }
  void expect(const char* symbol, const char* what) {
    if (!accept(symbol)) fail_here(fmt::format("expected '{}' {}", symbol, what));
  }
  std::string describe(const Token& t) const {
    return t.kind == Token::Kind::end ? "the end of the line" : "'" + t.text + "'";
  }
  Token name(const char* what) {
    if (peek().kind != Token::Kind::name) {
      fail_here(fmt::format("expected {}, found {}", what, describe(peek())));
    }
    return take();
  }
  void end_of_line() {
    if (peek().kind != Token::Kind::end) {
      fail_here(fmt::format("expected the end of the line, found {}", describe(peek())));
    }
  }

  // A new name: not a keyword or function, not taken.
  void declare(const Token& t) {
    if (keywords().count(t.text) || is_function(t.text)) {
      fail(t.column, fmt::format("'{}' is a reserved word: choose another name", t.text));
    }
    if (!names_.insert(t.text).second) {
      fail(t.column, fmt::format("'{}' is declared twice", t.text));
    }
  }

  void statement() {
    const Token head = name("a statement (cell, size, state, param, let, gate or next)");
    if (head.text == "cell") {
      if (!p_.name.empty()) fail(head.column, "a second 'cell' line: the cell is named once");
      p_.name = name("the cell's name").text;
      end_of_line();
    } else if (head.text == "size") {
      if (!p_.statements.empty()) fail(head.column, "declare sizes before let, gate and next");
      const Token n = name("the size's name");
      declare(n);
      expect("=", "after the size's name (size heads = 4)");
      CellProgram::Size z{n.text, expr(true), line_, n.column};
      end_of_line();
      p_.sizes.push_back(z);
    } else if (head.text == "state") {
      if (!p_.statements.empty()) fail(head.column, "declare states before let, gate and next");
      const Token n = name("the state's name");
      declare(n);
      expect("=", "after the state's name (state h = hidden)");
      CellProgram::State s{n.text, expr(true), line_};
      end_of_line();
      p_.states.push_back(s);
    } else if (head.text == "param") {
      if (!p_.statements.empty()) fail(head.column, "declare parameters before let, gate and next");
      const Token n = name("the parameter's name");
      declare(n);
      CellProgram::Param q;
      q.name = n.text;
      q.line = line_;
      q.column = n.column;
      expect("[", "and the parameter's shape ([rows, cols])");
      q.rows = expr(true);
      expect(",", "between rows and columns");
      q.cols = expr(true);
      expect("]", "after the shape");
      const Token init = name("an initialiser (uniform(a), normal(s), zeros, ones, constant(v))");
      q.init = init.text;
      const bool takes = q.init == "uniform" || q.init == "normal" || q.init == "constant";
      if (!takes && q.init != "zeros" && q.init != "ones") {
        fail(init.column, fmt::format("unknown initialiser '{}' (uniform(a), normal(s), zeros, "
                                      "ones, constant(v))",
                                      q.init));
      }
      if (takes) {
        expect("(", fmt::format("after {}: it takes one number", q.init).c_str());
        q.init_arg = expr(true);
        expect(")", "after the initialiser's argument");
      }
      end_of_line();
      p_.params.push_back(q);
    } else if (head.text == "let" || head.text == "gate" || head.text == "next") {
      CellProgram::Statement st;
      st.kind = head.text == "let"    ? CellProgram::Statement::Kind::let
                : head.text == "gate" ? CellProgram::Statement::Kind::gate
                                      : CellProgram::Statement::Kind::next;
      const Token n = name("a name");
      st.name = n.text;
      st.line = line_;
      st.column = n.column;
      if (st.kind == CellProgram::Statement::Kind::next) {
        int k = -1;
        for (std::size_t i = 0; i < p_.states.size(); ++i) {
          if (p_.states[i].name == n.text) k = static_cast<int>(i);
        }
        if (k < 0) fail(n.column, fmt::format("'{}' is not a state: next assigns a state", n.text));
        if (assigned_.count(n.text))
          fail(n.column, fmt::format("state '{}' is assigned twice", n.text));
        assigned_.insert(n.text);
        st.slot = k;
      } else {
        declare(n);
      }
      expect("=", "after the name");
      st.expr = expr(false);
      end_of_line();
      if (st.kind != CellProgram::Statement::Kind::next) {
        st.slot = p_.values++;
        values_[st.name] = st.slot;
      }
      p_.statements.push_back(st);
    } else {
      fail(head.column,
           fmt::format("unknown statement '{}' (cell, size, state, param, let, gate, next)",
                       head.text));
    }
  }

  void finish() {
    line_ = static_cast<int>(p_.lines.size());
    if (p_.states.empty()) fail(1, "no state: declare at least one (state h = hidden)");
    if (p_.states.size() > kMaxFileCellStates) {
      p_.fail(p_.states[kMaxFileCellStates].line, 1,
              fmt::format("{} states: a cell file declares 1 to {}", p_.states.size(),
                          kMaxFileCellStates));
    }
    for (const auto& s : p_.states) {
      if (!assigned_.count(s.name)) {
        p_.fail(s.line, 1,
                fmt::format("state '{}' is never assigned: add 'next {} = ...'", s.name, s.name));
      }
    }
    if (p_.name.empty()) p_.name = "cell";
  }

  // Evaluation recurses over the tree: its depth is bounded (and so the stack).
  static constexpr int kMaxDepth = 200;
  int add(Expr e) {
    int depth = 1;
    for (int a : e.args) depth = std::max(depth, depth_[static_cast<std::size_t>(a)] + 1);
    if (depth > kMaxDepth) {
      fail(e.column, fmt::format("the expression nests more than {} levels deep: split it with let",
                                 kMaxDepth));
    }
    p_.exprs.push_back(std::move(e));
    depth_.push_back(depth);
    return static_cast<int>(p_.exprs.size()) - 1;
  }
  Expr at(const Token& t) const {
    Expr e;
    e.line = line_;
    e.column = t.column;
    return e;
  }

  int binary(const Token& op, int lhs, int rhs) {
    Expr e = at(op);
    e.kind = Expr::Kind::binary;
    e.op = op.text[0];
    e.args = {lhs, rhs};
    return add(e);
  }

  // sizes: only numbers, input, hidden, named sizes, + - * /, sqrt and ceil.
  int expr(bool sizes) {
    int lhs = term(sizes);
    while (peek().kind == Token::Kind::symbol && (peek().text == "+" || peek().text == "-")) {
      const Token op = take();
      lhs = binary(op, lhs, term(sizes));
    }
    return lhs;
  }
  int term(bool sizes) {
    int lhs = unary(sizes);
    while (peek().kind == Token::Kind::symbol &&
           (peek().text == "*" || peek().text == "/" || peek().text == "@")) {
      const Token op = take();
      if (sizes && op.text == "@") fail(op.column, "'@' (a matrix product) in a size");
      lhs = binary(op, lhs, unary(sizes));
    }
    return lhs;
  }
  int unary(bool sizes) {
    if (peek().kind == Token::Kind::symbol && peek().text == "-") {
      Expr e = at(take());
      e.kind = Expr::Kind::negate;
      e.args = {unary(sizes)};
      return add(e);
    }
    int inner = primary(sizes);
    while (peek().kind == Token::Kind::symbol && peek().text == "'") {
      const Token t = take();
      if (sizes) fail(t.column, "a transpose (') in a size");
      Expr e = at(t);
      e.kind = Expr::Kind::transpose;
      e.args = {inner};
      inner = add(e);
    }
    return inner;
  }
  int primary(bool sizes) {
    const Token t = peek();
    if (++nesting_ > kMaxDepth) {  // parentheses alone recurse in the parser
      fail(t.column, fmt::format("the expression nests more than {} levels deep: split it with let",
                                 kMaxDepth));
    }
    struct Leave {
      int& n;
      ~Leave() { --n; }
    } leave{nesting_};
    if (t.kind == Token::Kind::number) {
      take();
      Expr e = at(t);
      e.kind = Expr::Kind::number;
      e.number = t.number;
      return add(e);
    }
    if (accept("(")) {
      const int inner = expr(sizes);
      expect(")", "to close the parenthesis");
      return inner;
    }
    if (t.kind != Token::Kind::name) {
      fail_here(fmt::format("expected a value, found {}", describe(t)));
    }
    take();
    Expr e = at(t);
    e.name = t.text;
    if (peek().kind == Token::Kind::symbol && peek().text == "(") {
      take();
      e.kind = Expr::Kind::call;
      if (!is_function(t.text)) {
        fail(t.column, fmt::format("unknown function '{}'{}", t.text,
                                   did_you_mean(t.text, function_names())));
      }
      if (sizes && t.text != "sqrt" && t.text != "ceil") {
        fail(t.column, fmt::format("'{}' in a size (sizes use numbers, input, hidden, named "
                                   "sizes, + - * /, sqrt and ceil)",
                                   t.text));
      }
      if (!accept(")")) {
        do {
          e.args.push_back(expr(sizes));
        } while (accept(","));
        expect(")", "to close the function's arguments");
      }
      const std::size_t n = e.args.size();
      const std::size_t want = unary_functions().count(t.text)    ? 1
                               : binary_functions().count(t.text) ? 2
                               : t.text == "concat"               ? 0
                                                                  : 3;
      if (want == 0 ? n < 1 : n != want) {
        fail(t.column,
             fmt::format("{} takes {} argument{}, given {}", t.text,
                         want == 0 ? "at least 1" : std::to_string(want), want == 1 ? "" : "s", n));
      }
      return add(e);
    }
    e.kind = Expr::Kind::name;
    if (t.text == "input") {
      e.ref = Ref::input;
    } else if (t.text == "hidden") {
      e.ref = Ref::hidden;
    } else if (const auto z = std::find_if(p_.sizes.begin(), p_.sizes.end(),
                                           [&](const auto& s) { return s.name == t.text; });
               z != p_.sizes.end()) {
      e.ref = Ref::size;
      e.index = static_cast<int>(z - p_.sizes.begin());
    } else if (sizes) {
      fail(t.column, fmt::format("'{}' in a size: sizes use numbers, input, hidden and the sizes "
                                 "named above (size {} = ...)",
                                 t.text, t.text));
    } else if (t.text == "x") {
      e.ref = Ref::x;
    } else if (is_function(t.text)) {
      fail(t.column, fmt::format("'{}' is a function: call it, {}(...)", t.text, t.text));
    } else {
      for (std::size_t i = 0; i < p_.states.size(); ++i) {
        if (p_.states[i].name == t.text) e.ref = Ref::state, e.index = static_cast<int>(i);
      }
      for (std::size_t i = 0; i < p_.params.size(); ++i) {
        if (p_.params[i].name == t.text) e.ref = Ref::param, e.index = static_cast<int>(i);
      }
      if (const auto it = values_.find(t.text); it != values_.end()) {
        e.ref = Ref::value;
        e.index = it->second;
      }
      if (e.ref == Ref::none) {
        fail(t.column,
             fmt::format("unknown name '{}' (the input x, a state, a parameter, a size, or a "
                         "let or gate defined above)",
                         t.text));
      }
    }
    return add(e);
  }

  CellProgram& p_;
  std::vector<Token> tokens_;
  std::size_t at_ = 0;
  int line_ = 0;
  std::set<std::string> names_, assigned_;
  std::vector<int> depth_;
  int nesting_ = 0;
  std::map<std::string, int> values_;
};

}  // namespace

void CellProgram::fail(int line, int column, const std::string& message) const {
  const std::string text = line >= 1 && static_cast<std::size_t>(line) <= lines.size()
                               ? lines[static_cast<std::size_t>(line) - 1]
                               : std::string();
  std::string caret(static_cast<std::size_t>(std::max(column, 1) - 1), ' ');
  for (std::size_t i = 0; i < caret.size() && i < text.size(); ++i) {
    if (text[i] == '\t') caret[i] = '\t';  // keep the caret under the column with tabs
  }
  throw CellFileError(
      fmt::format("{}:{}:{}: {}\n  {}\n  {}^", file, line, column, message, text, caret));
}

namespace {
// One expression's number; a named size is looked up in `known` (its value, computed once: a
// chain of sizes each naming the one before twice would otherwise cost 2^n evaluations).
double evaluate(const CellProgram& p, int e, Index input, Index hidden,
                const std::vector<double>& known) {
  using Ref = CellProgram::Expr::Ref;
  const CellProgram::Expr& x = p.exprs[static_cast<std::size_t>(e)];
  const auto arg = [&](std::size_t k) { return evaluate(p, x.args[k], input, hidden, known); };
  switch (x.kind) {
    case CellProgram::Expr::Kind::number:
      return x.number;
    case CellProgram::Expr::Kind::name:
      if (x.ref == Ref::input) return static_cast<double>(input);
      if (x.ref == Ref::hidden) return static_cast<double>(hidden);
      if (x.ref == Ref::size) return known[static_cast<std::size_t>(x.index)];
      p.fail(x.line, x.column, fmt::format("'{}' is a tensor where a number is needed", x.name));
    case CellProgram::Expr::Kind::negate:
      return -arg(0);
    case CellProgram::Expr::Kind::call:
      if (x.name == "sqrt") return std::sqrt(arg(0));
      if (x.name == "ceil") return std::ceil(arg(0));
      p.fail(x.line, x.column, fmt::format("{}(...) is a tensor where a number is needed", x.name));
    case CellProgram::Expr::Kind::binary: {
      const double a = arg(0), b = arg(1);
      switch (x.op) {
        case '+':
          return a + b;
        case '-':
          return a - b;
        case '*':
          return a * b;
        case '/':
          return a / b;
        default:
          break;
      }
      p.fail(x.line, x.column, "a matrix product where a number is needed");
    }
    case CellProgram::Expr::Kind::transpose:
      p.fail(x.line, x.column, "a transpose where a number is needed");
  }
  p.fail(x.line, x.column, "not a number");
}

// The named sizes' values, in order (each names only sizes above it).
std::vector<double> evaluate_sizes(const CellProgram& p, Index input, Index hidden) {
  std::vector<double> known;
  known.reserve(p.sizes.size());
  for (const auto& z : p.sizes) known.push_back(evaluate(p, z.expr, input, hidden, known));
  return known;
}
}  // namespace

double CellProgram::evaluate_number(int e, Index input, Index hidden) const {
  return evaluate(*this, e, input, hidden, evaluate_sizes(*this, input, hidden));
}

std::vector<double> CellProgram::size_values(Index input, Index hidden) const {
  std::vector<double> known = evaluate_sizes(*this, input, hidden);
  for (std::size_t k = 0; k < sizes.size(); ++k) {
    const Size& z = sizes[k];
    const double v = known[k];
    if (!(v >= 1) || v != std::floor(v) || v > 1e9) {
      fail(z.line, z.column,
           fmt::format("size '{}' is {} for input {} and hidden {}: a size is a positive integer",
                       z.name, v, input, hidden));
    }
  }
  return known;
}

std::shared_ptr<const CellProgram> parse_cell(const std::string& text, const std::string& file) {
  auto p = std::make_shared<CellProgram>();
  p->file = file;
  Parser(*p).run(text);
  return p;
}

std::shared_ptr<const CellProgram> load_cell_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FileError(fmt::format("cannot read cell file '{}'", path.string()));
  std::ostringstream text;
  text << in.rdbuf();
  return parse_cell(text.str(), path.string());
}

}  // namespace rwd::layers
