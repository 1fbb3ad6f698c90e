// Cells written as files: the LSTM, GRU and MGU files against the C++ cells (the same tape,
// bit for bit), every example file through gradcheck and gradgradcheck, stacks of file and
// custom cells (names, weight files), errors located like a compiler's, and recording errors
// that name their scope.
#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>
#include <rewind/rewind.hpp>

#include "mgu.hpp"
#include "support.hpp"

using namespace rwd;
using M = Matrix<double>;

namespace {

const std::filesystem::path kCells = std::filesystem::path(REWIND_EXAMPLES) / "cells";

// gradcheck and gradgradcheck (every direction) of f over the inputs and parameters.
template <class F>
void passes_both_orders(F&& f, const std::vector<NamedTensor>& inputs,
                        const std::vector<Parameter<double>*>& params) {
  const GradcheckReport g = gradcheck(f, inputs, params);
  BOOST_TEST(g.passed(), g);
  const GradgradcheckReport gg = gradgradcheck(f, inputs, params);
  BOOST_TEST(gg.passed(), gg);
}

std::vector<M> inputs(Index steps, Index batch, Index width, std::uint64_t seed) {
  layers::Rng rng(seed);
  std::vector<M> xs;
  for (Index t = 0; t < steps; ++t) xs.push_back(layers::uniform<double>(batch, width, 1.0, rng));
  return xs;
}

// Runs a stack over xs, backward from the mean square of every output; returns the outputs
// and the parameters' gradients by name.
// Every batch row but the first stops early (variable lengths, as PyTorch's packed sequences).
template <class Net>
std::pair<std::vector<M>, std::map<std::string, M>> run(Net& net, const std::vector<M>& xs) {
  Tape<double> tape;
  std::vector<Var<double>> in;
  for (const M& x : xs) in.push_back(tape.constant(x));
  std::vector<std::int32_t> lengths(static_cast<std::size_t>(xs[0].rows()));
  for (std::size_t b = 0; b < lengths.size(); ++b)
    lengths[b] = static_cast<std::int32_t>(xs.size() - std::min(b, xs.size() - 1));
  typename Net::Call call;
  call.lengths = lengths;
  const auto out = net(tape, in, call);
  for (Parameter<double>* p : net.named_parameters()) p->zero_grad();
  tape.backward(mean(square(concat_rows(out.outputs))));
  std::vector<M> ys;
  for (const auto& y : out.outputs) ys.push_back(y.value());
  std::map<std::string, M> grads;
  for (Parameter<double>* p : net.named_parameters()) grads[p->name] = p->grad;
  return {ys, grads};
}

template <class A, class B>
void expect_same_stack(A& builtin, B& file, const std::vector<M>& xs) {
  auto [ya, ga] = run(builtin, xs);
  auto [yb, gb] = run(file, xs);
  BOOST_TEST_REQUIRE(ya.size() == yb.size());
  for (std::size_t t = 0; t < ya.size(); ++t) BOOST_TEST(test::same(ya[t], yb[t]), "output " << t);
  BOOST_TEST_REQUIRE(ga.size() == gb.size());
  for (const auto& [name, g] : ga) {
    BOOST_TEST_REQUIRE(gb.count(name) == 1u, "no parameter " << name << " in the file stack");
    BOOST_TEST(test::same(g, gb[name]), "gradient of " << name);
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(cell_files)

BOOST_AUTO_TEST_CASE(lstm_file_records_the_builtin_lstm_bit_for_bit) {
  const auto program = layers::load_cell_file(kCells / "lstm.cell");
  const Index input = 3, hidden = 5;
  const layers::SequenceOptions so{2, true, 0.0};
  layers::Rng r1(7), r2(7);
  layers::Lstm<double> builtin(
      {.input = input, .hidden = hidden, .num_layers = 2, .bidirectional = true}, r1);
  layers::Sequence<layers::FileCell<double, 2>> file(
      "lstm.cell", so, input,
      [&](int, bool, Index in) { return layers::FileCell<double, 2>(program, in, hidden, r2); });
  expect_same_stack(builtin, file, inputs(6, 4, input, 1));
}

BOOST_AUTO_TEST_CASE(gru_file_records_the_builtin_gru_bit_for_bit) {
  const auto program = layers::load_cell_file(kCells / "gru.cell");
  const Index input = 4, hidden = 3;
  layers::Rng r1(8), r2(8);
  layers::Gru<double> builtin({input, hidden, 2, true}, r1);
  layers::Sequence<layers::FileCell<double, 1>> file(
      "gru.cell", {2, true, 0.0}, input,
      [&](int, bool, Index in) { return layers::FileCell<double, 1>(program, in, hidden, r2); });
  expect_same_stack(builtin, file, inputs(5, 3, input, 2));
}

BOOST_AUTO_TEST_CASE(mgu_file_records_the_cpp_mgu_bit_for_bit) {
  const auto program = layers::load_cell_file(kCells / "mgu.cell");
  const Index input = 3, hidden = 6;
  layers::Rng r1(9), r2(9);
  layers::Sequence<MguCell<double>> cpp("Mgu", {2, false, 0.0}, input, [&](int, bool, Index in) {
    return MguCell<double>(in, hidden, r1);
  });
  layers::Sequence<layers::FileCell<double, 1>> file(
      "mgu.cell", {2, false, 0.0}, input,
      [&](int, bool, Index in) { return layers::FileCell<double, 1>(program, in, hidden, r2); });
  expect_same_stack(cpp, file, inputs(5, 2, input, 3));
}

BOOST_AUTO_TEST_CASE(every_example_cell_passes_gradcheck_and_gradgradcheck) {
  std::size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(kCells)) {
    if (entry.path().extension() != ".cell") continue;
    ++files;
    BOOST_TEST_CONTEXT(entry.path().filename().string()) {
      const auto program = layers::load_cell_file(entry.path());
      layers::Rng rng(4);
      layers::with_file_cell<double>(program, 3, 4, rng, [&](auto& cell) {
        using Cell = std::decay_t<decltype(cell)>;
        std::vector<NamedTensor> in;
        for (Index t = 0; t < 3; ++t)
          in.push_back({fmt::format("x{}", t), layers::uniform<double>(2, 3, 1.0, rng)});
        const auto sizes = cell.state_sizes();
        for (std::size_t k = 0; k < sizes.size(); ++k)
          in.push_back({fmt::format("s{}", k), layers::uniform<double>(2, sizes[k], 0.5, rng)});
        const auto f = [&](Tape<double>& tape, std::span<const Var<double>> v) {
          typename Cell::State s;
          for (std::size_t k = 0; k < s.size(); ++k) s[k] = v[3 + k];
          auto r = layers::unroll(cell, tape, v.first(3), s);
          std::vector<Var<double>> all = r.outputs;
          for (const auto& st : r.state) all.push_back(st);
          return concat_cols(all);  // states as wide as they are (s6: hidden x 16 a row)
        };
        const GradcheckReport g = gradcheck(f, in, cell.named_parameters());
        BOOST_TEST(g.passed(), g);
        const GradgradcheckReport gg =
            gradgradcheck(f, in, cell.named_parameters(), {.fast = true});
        BOOST_TEST(gg.passed(), gg);
      });
    }
  }
  BOOST_TEST(files == 16u);
}

// sin, cos, maximum and minimum in a cell file: the values of the C++ ops, and gradients to
// second order (inputs kept off maximum's and minimum's kinks by the random draw).
BOOST_AUTO_TEST_CASE(elementwise_functions_of_the_variants) {
  const auto program = layers::parse_cell(
      "cell wave\nstate h = hidden\nparam w [hidden, input] uniform(1)\n"
      "param u [hidden, hidden] uniform(1)\n"
      "let a = x @ w' + h @ u'\n"
      "next h = maximum(sin(a), minimum(cos(a), h)) * 0.5\n",
      "wave.cell");
  layers::Rng rng(8);
  layers::with_file_cell<double>(program, 3, 4, rng, [&](auto& cell) {
    using Cell = std::decay_t<decltype(cell)>;
    const M x = layers::uniform<double>(2, 3, 1.0, rng),
            h = layers::uniform<double>(2, 4, 0.5, rng);
    {
      Tape<double> tape;
      const auto s = cell.step(tape, tape.constant(x), {tape.constant(h)});
      const M a = x * cell.named_parameters()[0]->value.transpose() +
                  h * cell.named_parameters()[1]->value.transpose();
      const M expect = 0.5 * a.array().sin().max(a.array().cos().min(h.array())).matrix();
      BOOST_TEST((s[0].value() - expect).cwiseAbs().maxCoeff() < 1e-15);
    }
    std::vector<NamedTensor> in{{"x", x}, {"h", h}};
    const auto f = [&](Tape<double>& tape, std::span<const Var<double>> v) {
      return typename Cell::State(cell.step(tape, v[0], {v[1]}))[0];
    };
    passes_both_orders(f, in, cell.named_parameters());
  });
}

// A per-example matrix state (hidden×hidden in a row of hidden·hidden) with a delta-rule update,
// and B×1 values (a gate per example) meeting B×n values in + - * / (the column broadcasts),
// against the same arithmetic written per example.
BOOST_AUTO_TEST_CASE(matrix_states_and_column_broadcasts) {
  const auto program = layers::parse_cell(
      "cell delta\nstate h = hidden\nstate S = hidden * hidden\n"
      "param w_k [hidden, input] uniform(1)\nparam w_v [hidden, input] uniform(1)\n"
      "param w_q [hidden, input] uniform(1)\nparam w_b [1, input] uniform(1)\n"
      "let k = x @ w_k'\nlet v = x @ w_v'\nlet q = x @ w_q'\n"
      "let beta = sigmoid(x @ w_b')\n"
      "let kn = k / (sum_rows(k * k) + 1)\n"
      "let S2 = S + row_outer(v - row_matvec(S, kn), kn) * beta\n"
      "next S = S2\n"
      "next h = row_matvec(S2, q) - beta + (1 - beta) * q + beta / (2 + q * q) + "
      "row_vecmat(q, S2) * 0.5\n",
      "delta.cell");
  layers::Rng rng(8);
  const Index in = 3, hid = 2, batch = 2;
  layers::with_file_cell<double>(program, in, hid, rng, [&](auto& cell) {
    using Cell = std::decay_t<decltype(cell)>;
    if constexpr (std::tuple_size_v<typename Cell::State> != 2) {
      BOOST_FAIL("the cell has two states, h and S");
    } else {
      const M x = layers::uniform<double>(batch, in, 1.0, rng),
              h = layers::uniform<double>(batch, hid, 0.5, rng),
              s = layers::uniform<double>(batch, hid * hid, 0.5, rng);
      const auto params = cell.named_parameters();
      {
        Tape<double> tape;
        const auto next = cell.step(tape, tape.constant(x), {tape.constant(h), tape.constant(s)});
        for (Index i = 0; i < batch; ++i) {
          const Eigen::RowVectorXd xi = x.row(i);
          const Eigen::VectorXd k = params[0]->value * xi.transpose(),
                                v = params[1]->value * xi.transpose(),
                                q = params[2]->value * xi.transpose();
          const double beta = 1 / (1 + std::exp(-(params[3]->value.row(0).dot(xi))));
          const Eigen::VectorXd kn = k / (k.squaredNorm() + 1);
          Eigen::MatrixXd si(hid, hid);
          for (Index p = 0; p < hid; ++p)
            for (Index c = 0; c < hid; ++c) si(p, c) = s(i, p * hid + c);
          const Eigen::MatrixXd s2 = si + beta * (v - si * kn) * kn.transpose();
          Eigen::VectorXd expect_h = s2 * q - Eigen::VectorXd::Constant(hid, beta) +
                                     (1 - beta) * q + (beta / (2 + q.array().square())).matrix() +
                                     0.5 * (q.transpose() * s2).transpose();
          BOOST_TEST((next[0].value().row(i).transpose() - expect_h).cwiseAbs().maxCoeff() < 1e-14);
          for (Index p = 0; p < hid; ++p)
            for (Index c = 0; c < hid; ++c)
              BOOST_TEST(std::abs(next[1].value()(i, p * hid + c) - s2(p, c)) < 1e-14);
        }
      }
      std::vector<NamedTensor> inputs{{"x", x}, {"h", h}, {"S", s}};
      const auto f = [&](Tape<double>& tape, std::span<const Var<double>> v) {
        const typename Cell::State next = cell.step(tape, v[0], {v[1], v[2]});
        return add(sum(mul(next[0], next[0])), sum(next[1]));
      };
      passes_both_orders(f, inputs, params);
    }
  });
}

// Named sizes in shapes, states and expressions; repeat(e, n) spreading a gate per head and row
// over a matrix's columns; ceil in a size. Values against the same arithmetic written out.
BOOST_AUTO_TEST_CASE(named_sizes_repeat_and_ceil) {
  const auto program = layers::parse_cell(
      "cell sized\nsize n_heads = 2\nsize dk = hidden / n_heads\nsize r = ceil(input / 2)\n"
      "state h = hidden\nstate S = hidden * dk\n"
      "param w_g [hidden, input] uniform(1)\nparam w_r [r, input] uniform(1)\n"
      "let g = heads(sigmoid(x @ w_g'), n_heads)\n"
      "let S2 = heads(S, n_heads) * repeat(g, dk)\n"
      "next S = merge(S2, n_heads)\n"
      "next h = merge(row_vecmat(g, S2), n_heads) * dk + sum_rows(x @ w_r')\n",
      "sized.cell");
  layers::Rng rng(9);
  const Index in = 3, hid = 4, batch = 2, dk = 2;
  layers::with_file_cell<double>(program, in, hid, rng, [&](auto& cell) {
    using Cell = std::decay_t<decltype(cell)>;
    if constexpr (std::tuple_size_v<typename Cell::State> != 2) {
      BOOST_FAIL("the cell has two states, h and S");
    } else {
      BOOST_TEST(cell.state_sizes()[1] == hid * dk);
      const auto params = cell.named_parameters();
      BOOST_TEST((params[1]->shape() == Shape{2, in}));  // ceil(3 / 2) rows
      const M x = layers::uniform<double>(batch, in, 1.0, rng),
              h = layers::uniform<double>(batch, hid, 0.5, rng),
              s = layers::uniform<double>(batch, hid * dk, 0.5, rng);
      {
        Tape<double> tape;
        const auto next = cell.step(tape, tape.constant(x), {tape.constant(h), tape.constant(s)});
        for (Index b = 0; b < batch; ++b) {
          const Eigen::VectorXd a = params[0]->value * x.row(b).transpose();
          const double extra = (params[1]->value * x.row(b).transpose()).sum();
          for (Index j = 0; j < 2; ++j) {     // head
            for (Index v = 0; v < dk; ++v) {  // column of the head's dk x dk matrix
              double out = 0;
              for (Index k = 0; k < dk; ++k) {
                const double g = 1 / (1 + std::exp(-a(j * dk + k)));
                const Index at = j * dk * dk + k * dk + v;
                const double s2 = s(b, at) * g;
                BOOST_TEST(std::abs(next[1].value()(b, at) - s2) < 1e-15);
                out += g * s2;
              }
              BOOST_TEST(std::abs(next[0].value()(b, j * dk + v) - (out * dk + extra)) < 1e-14);
            }
          }
        }
      }
      std::vector<NamedTensor> inputs{{"x", x}, {"h", h}, {"S", s}};
      const auto f = [&](Tape<double>& tape, std::span<const Var<double>> v) {
        const typename Cell::State next = cell.step(tape, v[0], {v[1], v[2]});
        return add(sum(mul(next[0], next[0])), sum(mul(next[1], next[1])));
      };
      passes_both_orders(f, inputs, params);
    }
  });
  // A size that does not come out whole for the sizes asked for is refused where it is named.
  layers::Rng rng2(1);
  test::expect_message<layers::CellFileError>(
      [&] { layers::with_file_cell<double>(program, in, 5, rng2, [](auto&) {}); },
      "sized.cell:3:6: size 'dk' is 2.5 for input 3 and hidden 5: a size is a positive integer\n"
      "  size dk = hidden / n_heads\n       ^");
}

BOOST_AUTO_TEST_CASE(a_stack_of_custom_cells_gets_unique_names_and_round_trips) {
  layers::Rng rng(5);
  layers::Sequence<MguCell<double>> stack(
      "Mgu", {2, true, 0.0}, 3, [&](int, bool, Index in) { return MguCell<double>(in, 4, rng); });
  std::vector<std::string> names;
  for (Parameter<double>* p : stack.named_parameters()) names.push_back(p->name);
  BOOST_TEST(names.size() == 24u);
  BOOST_TEST(names[0] == "w_f_l0");
  BOOST_TEST(names[6] == "w_f_l0_reverse");
  BOOST_TEST(names[23] == "b_h_l1_reverse");
  std::vector<std::string> sorted = names;
  std::sort(sorted.begin(), sorted.end());
  BOOST_TEST((std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end()));
  // Built-in cells keep PyTorch's names exactly.
  layers::Lstm<double> lstm({.input = 3, .hidden = 4, .num_layers = 2, .bidirectional = true}, rng);
  BOOST_TEST(lstm.named_parameters()[4]->name == "weight_ih_l0_reverse");
  // Saving and loading a custom stack round-trips.
  const auto path = std::filesystem::temp_directory_path() / "rewind_mgu_stack.safetensors";
  layers::save_parameters(path, stack.named_parameters());
  layers::Rng other(99);
  layers::Sequence<MguCell<double>> copy(
      "Mgu", {2, true, 0.0}, 3, [&](int, bool, Index in) { return MguCell<double>(in, 4, other); });
  layers::load_parameters(path, copy.named_parameters());
  for (std::size_t k = 0; k < names.size(); ++k) {
    BOOST_TEST(test::same(copy.named_parameters()[k]->value, stack.named_parameters()[k]->value));
  }
  std::filesystem::remove(path);
  // find_parameter refuses an ambiguous name.
  Parameter<double> a("w", M::Ones(1, 1)), b("w", M::Ones(1, 1));
  test::expect_message<UsageError>(
      [&] {
        (void)layers::find_parameter<double>({&a, &b}, "w");
      },
      "find_parameter: two parameters are named 'w': give them unique names");
}

BOOST_AUTO_TEST_CASE(a_factory_of_the_wrong_width_is_caught_at_construction) {
  layers::Rng rng(6);
  test::expect_message<ShapeError>(
      [&] {
        layers::Sequence<MguCell<double>> bad(
            "Mgu", {2, true, 0.0}, 3, [&](int, bool, Index) { return MguCell<double>(3, 4, rng); });
      },
      "Mgu: the cell of layer 1 takes 3 input features, expected 8 (layer 0's output: 2 "
      "directions x hidden 4)");
}

BOOST_AUTO_TEST_CASE(recording_errors_name_their_scope) {
  layers::Rng rng(6);
  MguCell<double> cell(4, 3, rng);  // takes 4 features; given 8
  Tape<double> tape;
  std::vector<Var<double>> xs{tape.constant(M::Ones(2, 8))};
  auto scope = tape.scope("layer1");
  // unroll checks the inputs and the initial state against the cell before recording anything.
  const auto before = tape.size();
  test::expect_message<ShapeError>(
      [&] {
        layers::unroll(cell, tape, std::span<const Var<double>>(xs),
                       layers::zero_state(cell, tape, 2));
      },
      "unroll of MguCell<double> at layer1: x at t0 is 2x8, expected 2x4 (batch 2, input_size() "
      "4)");
  BOOST_TEST(tape.size() == before + 1);  // the zero state only
  const std::vector<Var<double>> fits{tape.constant(M::Ones(2, 4))};
  test::expect_message<ShapeError>(
      [&] {
        layers::unroll(cell, tape, std::span<const Var<double>>(fits),
                       layers::zero_state(cell, tape, 3));
      },
      "unroll of MguCell<double> at layer1: initial state[0] is 3x3, expected 2x3 (batch 2, "
      "state_sizes()[0] 3)");
  // An op's error inside a step names the scope, and the parameter in a product.
  test::expect_message<ShapeError>(
      [&] {
        auto step = tape.scope("t0");
        cell.step(tape, xs[0], layers::zero_state(cell, tape, 2));
      },
      "matmul_nt at layer1/t0/f: inner dimensions differ: lhs is 2x8, rhs is w_f (3x4) (used "
      "transposed)");
  // A shipped cell is named as a user's is.
  layers::LstmCell<double> lstm({.input = 5, .hidden = 2}, rng);
  test::expect_message<ShapeError>(
      [&] {
        layers::unroll(lstm, tape, std::span<const Var<double>>(xs),
                       layers::zero_state(lstm, tape, 2));
      },
      "unroll of LstmCell<double> at layer1: x at t0 is 2x8, expected 2x5 (batch 2, input_size() "
      "5)");
}

BOOST_AUTO_TEST_CASE(mistakes_in_a_cell_file_are_located) {
  const std::string head = "cell c\nstate h = hidden\nparam w [hidden, input] uniform(0.1)\n";
  const std::vector<std::pair<std::string, std::string>> cases{
      {head + "next h = tanh(x @ q')\n",
       "t.cell:4:19: unknown name 'q' (the input x, a state, a parameter, a size, or a let or "
       "gate defined above)\n  next h = tanh(x @ q')\n                    ^"},
      {head + "next h = tanh(x @ w', h)\n",
       "t.cell:4:10: tanh takes 1 argument, given 2\n  next h = tanh(x @ w', h)\n           ^"},
      {head + "next h = tanhh(x @ w')\n",
       "t.cell:4:10: unknown function 'tanhh' (did you mean 'tanh'?)\n  next h = tanhh(x @ w')\n"
       "           ^"},
      {head + "next h = sigmiod(x @ w')\n",
       "t.cell:4:10: unknown function 'sigmiod' (did you mean 'sigmoid'?)\n"
       "  next h = sigmiod(x @ w')\n           ^"},
      {head + "next h = frobnicate(x @ w')\n",
       "t.cell:4:10: unknown function 'frobnicate'\n  next h = frobnicate(x @ w')\n           ^"},
      {head + "let z = x @ w'\n",
       "t.cell:2:1: state 'h' is never assigned: add 'next h = ...'\n  state h = hidden\n  ^"},
      {head + "next h = x @ w\n",
       "t.cell:4:12: matmul: inner dimensions differ: lhs is 2x3, rhs is w (4x3)\n  next h = x @ "
       "w\n"
       "             ^"},
      {head + "next h = x @ w' +\n",
       "t.cell:4:18: expected a value, found the end of the line\n  next h = x @ w' +\n"
       "                   ^"},
      {"state h = hidden\nstate h = hidden\nnext h = h\n",
       "t.cell:2:7: 'h' is declared twice\n  state h = hidden\n        ^"},
      {"state h = hidden - 4\nnext h = h\n",
       "t.cell:1:1: the size of state 'h' is 0 for input 3 and hidden 4: a size must be a positive "
       "integer\n  state h = hidden - 4\n  ^"},
      {head + "next h = x $ w\n",
       "t.cell:4:12: unexpected character '$'\n  next h = x $ w\n             ^"},
      {head + "next h = x @ w' + h\nnext h = h\n",
       "t.cell:5:6: state 'h' is assigned twice\n  next h = h\n       ^"},
      {"size dk = hidden / 3\nstate h = hidden\nnext h = h\n",
       "t.cell:1:6: size 'dk' is 1.3333333333333333 for input 3 and hidden 4: a size is a positive "
       "integer\n  size dk = hidden / 3\n       ^"},
      {"size heads = 4\nstate h = hidden\nnext h = h\n",
       "t.cell:1:6: 'heads' is a reserved word: choose another name\n  size heads = 4\n       ^"},
      {"state h = hidden * q\nnext h = h\n",
       "t.cell:1:20: 'q' in a size: sizes use numbers, input, hidden and the sizes named above "
       "(size q = ...)\n  state h = hidden * q\n" +
           std::string(21, ' ') + "^"},
      {head + "let a = x @ w'\nsize k = 2\nnext h = a\n",
       "t.cell:5:1: declare sizes before let, gate and next\n  size k = 2\n  ^"},
      {head + "next h = repeat(x @ w', 0)\n",
       "t.cell:4:10: repeat(e, n): n, the times each element repeats, is a whole number\n"
       "  next h = repeat(x @ w', 0)\n           ^"},
      {head + "next h = ceil(x @ w')\n",
       "t.cell:4:10: ceil(e) rounds a number (a size), not a tensor\n  next h = ceil(x @ w')\n"
       "           ^"},
  };
  for (const auto& c : cases) {
    const std::string& text = c.first;
    const std::string& message = c.second;
    BOOST_TEST_CONTEXT(text) {
      test::expect_message<layers::CellFileError>(
          [&] {
            const auto p = layers::parse_cell(text, "t.cell");
            layers::Rng rng(1);
            layers::with_file_cell<double>(p, 3, 4, rng, [](auto&) {});
          },
          message);
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
