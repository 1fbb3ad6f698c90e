// Cells, unroll and sequence layers: gradient checks through time, variable lengths, truncated
// BPTT, errors, parameter counts, initializers, custom cells, float against double.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <rewind/rewind.hpp>

#include "mgu.hpp"
#include "peephole_lstm.hpp"
#include "support.hpp"

using namespace rwd;
using M = Matrix<double>;

namespace {

// Gradient check of one cell unrolled over `steps` steps: inputs, initial state, parameters.
// Logs the largest errors of a report (quoted in the closing notes of the layers issue).
void log_worst(const std::string& what, const GradcheckReport& r) {
  double abs_err = 0, rel_err = 0;
  for (const auto& t : r.tensors) {
    abs_err = std::max(abs_err, t.max_abs_error);
    rel_err = std::max(rel_err, t.max_rel_error);
  }
  BOOST_TEST_MESSAGE("gradcheck " << what << ": " << r.tensors.size() << " tensors, max abs error "
                                  << abs_err << ", max rel error " << rel_err);
}

// gradcheck, or with Report = GradgradcheckReport gradgradcheck (second order: H·v along every
// unit direction, J·v, the transpose identity), of the same function.
template <class Report>
Report run_check(const GradcheckFunction& f, const std::vector<NamedTensor>& inputs,
                 const std::vector<Parameter<double>*>& params) {
  if constexpr (std::is_same_v<Report, GradgradcheckReport>) {
    return gradgradcheck(f, inputs, params);
  } else {
    return gradcheck(f, inputs, params);
  }
}

template <class Cell, class Report = GradcheckReport>
Report check_cell(Cell& cell, Index steps, Index batch, std::uint64_t seed) {
  std::srand(static_cast<unsigned>(seed));
  std::vector<NamedTensor> inputs;
  for (Index t = 0; t < steps; ++t)
    inputs.push_back({fmt::format("x{}", t), M::Random(batch, cell.input_size())});
  const auto sizes = cell.state_sizes();
  for (std::size_t k = 0; k < sizes.size(); ++k) {
    inputs.push_back({k == 0 ? "h0" : "c0", M::Random(batch, sizes[k])});
  }
  return run_check<Report>(
      [&](Tape<double>& tape, std::span<const Var<double>> in) {
        typename Cell::State s0;
        for (std::size_t k = 0; k < s0.size(); ++k) s0[k] = in[static_cast<std::size_t>(steps) + k];
        auto out = layers::unroll(cell, tape, in.first(static_cast<std::size_t>(steps)), s0);
        std::vector<Var<double>> all = out.outputs;
        for (const auto& v : out.state) all.push_back(v);
        return concat_rows(all);  // contracted with a random tensor by gradcheck
      },
      inputs, cell.named_parameters());
}

// The same for a 2-layer bidirectional variable-length sequence layer.
template <class Layer, class Report = GradcheckReport>
Report check_sequence(Layer& layer, Index input, Index hidden) {
  const Index steps = 5, batch = 3;
  const std::vector<std::int32_t> lengths{5, 2, 4};
  std::srand(11);
  std::vector<NamedTensor> inputs;
  for (Index t = 0; t < steps; ++t)
    inputs.push_back({fmt::format("x{}", t), M::Random(batch, input)});
  constexpr std::size_t kState = std::tuple_size_v<typename Layer::State>;
  for (int s = 0; s < 4; ++s) {
    for (std::size_t k = 0; k < kState; ++k) {
      inputs.push_back({fmt::format("{}0[{}]", k == 0 ? "h" : "c", s), M::Random(batch, hidden)});
    }
  }
  return run_check<Report>(
      [&](Tape<double>& tape, std::span<const Var<double>> in) {
        typename Layer::Call call;
        call.lengths = lengths;
        std::size_t next = static_cast<std::size_t>(steps);
        for (int s = 0; s < 4; ++s) {
          typename Layer::State st;
          for (std::size_t k = 0; k < kState; ++k) st[k] = in[next++];
          call.initial.push_back(st);
        }
        auto out = layer(tape, in.first(static_cast<std::size_t>(steps)), call);
        std::vector<Var<double>> states;
        for (const auto& st : out.final_states) states.insert(states.end(), st.begin(), st.end());
        return add(mean(square(concat_rows(out.outputs))), sum(concat_rows(states)));
      },
      inputs, layer.named_parameters());
}

}  // namespace

BOOST_AUTO_TEST_SUITE(cells)

BOOST_AUTO_TEST_CASE(rnn_cells_gradcheck_through_time) {
  layers::Rng rng(1);
  layers::RnnCell<double> tanh_cell({.input = 3, .hidden = 4}, rng);
  const auto r = check_cell(tanh_cell, 5, 2, 1);
  BOOST_TEST(r.passed(), r.to_string());
  log_worst("RnnCell tanh", r);
  layers::RnnCell<double> relu_cell(
      {.input = 3, .hidden = 4, .activation = layers::Activation::kRelu}, rng);
  const auto q = check_cell(relu_cell, 5, 2, 2);
  BOOST_TEST(q.passed(), q.to_string());
  log_worst("RnnCell relu", q);
}

BOOST_AUTO_TEST_CASE(lstm_cell_gradchecks_through_time) {
  layers::Rng rng(2);
  layers::LstmCell<double> cell({.input = 3, .hidden = 4}, rng);
  const auto r = check_cell(cell, 5, 2, 3);
  BOOST_TEST(r.passed(), r.to_string());
  log_worst("LstmCell", r);
  BOOST_TEST(r.tensors.size() == 5u + 2u + 4u);  // x0..x4, h0, c0, four parameters
}

BOOST_AUTO_TEST_CASE(gru_cell_gradchecks_through_time) {
  layers::Rng rng(3);
  layers::GruCell<double> cell({.input = 3, .hidden = 4}, rng);
  const auto r = check_cell(cell, 5, 2, 4);
  BOOST_TEST(r.passed(), r.to_string());
  log_worst("GruCell", r);
}

BOOST_AUTO_TEST_CASE(custom_cells_gradcheck_through_time) {
  layers::Rng rng(4);
  MguCell<double> mgu(3, 4, rng);
  const auto a = check_cell(mgu, 5, 2, 5);
  BOOST_TEST(a.passed(), a.to_string());
  log_worst("MguCell", a);
  PeepholeLstmCell<double> peephole(3, 4, rng);
  const auto b = check_cell(peephole, 5, 2, 6);
  BOOST_TEST(b.passed(), b.to_string());
  log_worst("PeepholeLstmCell", b);
}

BOOST_AUTO_TEST_CASE(two_layer_bidirectional_variable_length_gradchecks) {
  layers::Rng rng(5);
  layers::Rnn<double> rnn({.input = 3, .hidden = 4, .num_layers = 2, .bidirectional = true}, rng);
  const auto a = check_sequence(rnn, 3, 4);
  BOOST_TEST(a.passed(), a.to_string());
  log_worst("Rnn 2-layer bidirectional variable-length", a);
  layers::Lstm<double> lstm({.input = 3, .hidden = 4, .num_layers = 2, .bidirectional = true}, rng);
  const auto b = check_sequence(lstm, 3, 4);
  BOOST_TEST(b.passed(), b.to_string());
  log_worst("Lstm 2-layer bidirectional variable-length", b);
  layers::Gru<double> gru({.input = 3, .hidden = 4, .num_layers = 2, .bidirectional = true}, rng);
  const auto c = check_sequence(gru, 3, 4);
  BOOST_TEST(c.passed(), c.to_string());
  log_worst("Gru 2-layer bidirectional variable-length", c);
  layers::Sequence<MguCell<double>> mgu(
      "Mgu", {.num_layers = 2, .bidirectional = true}, 3,
      [&](int, bool, Index in) { return MguCell<double>(in, 4, rng); });
  const auto d = check_sequence(mgu, 3, 4);
  BOOST_TEST(d.passed(), d.to_string());
  log_worst("Mgu 2-layer bidirectional variable-length", d);
}

// Second order through every layer: gradgradcheck in double, 5 steps, inputs, initial states
// and every parameter, every Hessian column (H·v against central differences of the gradient),
// the output tangent and the transpose identity.
BOOST_AUTO_TEST_CASE(cells_gradgradcheck_through_time) {
  using R = GradgradcheckReport;
  layers::Rng rng(21);
  layers::RnnCell<double> tanh_cell({.input = 3, .hidden = 4}, rng);
  const auto a = check_cell<decltype(tanh_cell), R>(tanh_cell, 5, 2, 1);
  BOOST_TEST(a.passed(), a.to_string());
  layers::RnnCell<double> relu_cell(
      {.input = 3, .hidden = 4, .activation = layers::Activation::kRelu}, rng);
  const auto b = check_cell<decltype(relu_cell), R>(relu_cell, 5, 2, 2);
  BOOST_TEST(b.passed(), b.to_string());
  layers::LstmCell<double> lstm({.input = 3, .hidden = 4}, rng);
  const auto c = check_cell<decltype(lstm), R>(lstm, 5, 2, 3);
  BOOST_TEST(c.passed(), c.to_string());
  BOOST_TEST(c.tensors.size() == 5u + 2u + 4u);
  BOOST_TEST(c.transpose_error < 1e-12);
  BOOST_TEST_MESSAGE("gradgradcheck LstmCell: " << c.directions << " directions, transpose gap "
                                                << c.transpose_error);
  layers::GruCell<double> gru({.input = 3, .hidden = 4}, rng);
  const auto d = check_cell<decltype(gru), R>(gru, 5, 2, 4);
  BOOST_TEST(d.passed(), d.to_string());
  MguCell<double> mgu(3, 4, rng);
  const auto e = check_cell<decltype(mgu), R>(mgu, 5, 2, 5);
  BOOST_TEST(e.passed(), e.to_string());
  PeepholeLstmCell<double> peephole(3, 4, rng);
  const auto f = check_cell<decltype(peephole), R>(peephole, 5, 2, 6);
  BOOST_TEST(f.passed(), f.to_string());
}

BOOST_AUTO_TEST_CASE(two_layer_bidirectional_variable_length_gradgradchecks) {
  using R = GradgradcheckReport;
  layers::Rng rng(25);
  layers::Rnn<double> rnn({.input = 3, .hidden = 4, .num_layers = 2, .bidirectional = true}, rng);
  const auto a = check_sequence<decltype(rnn), R>(rnn, 3, 4);
  BOOST_TEST(a.passed(), a.to_string());
  layers::Lstm<double> lstm({.input = 3, .hidden = 4, .num_layers = 2, .bidirectional = true}, rng);
  const auto b = check_sequence<decltype(lstm), R>(lstm, 3, 4);
  BOOST_TEST(b.passed(), b.to_string());
  BOOST_TEST_MESSAGE("gradgradcheck Lstm 2-layer bidirectional variable-length: " << b.directions
                                                                                  << " directions");
  layers::Gru<double> gru({.input = 3, .hidden = 4, .num_layers = 2, .bidirectional = true}, rng);
  const auto c = check_sequence<decltype(gru), R>(gru, 3, 4);
  BOOST_TEST(c.passed(), c.to_string());
  layers::Sequence<MguCell<double>> mgu(
      "Mgu", {.num_layers = 2, .bidirectional = true}, 3,
      [&](int, bool, Index in) { return MguCell<double>(in, 4, rng); });
  const auto d = check_sequence<decltype(mgu), R>(mgu, 3, 4);
  BOOST_TEST(d.passed(), d.to_string());
}

BOOST_AUTO_TEST_CASE(padded_steps_keep_the_state_and_output_zeros) {
  layers::Rng rng(6);
  layers::LstmCell<double> cell({.input = 2, .hidden = 3}, rng);
  Tape<double> tape;
  std::vector<Var<double>> xs;
  for (int t = 0; t < 4; ++t) xs.push_back(tape.constant(M::Random(2, 2)));
  const std::vector<std::int32_t> lengths{4, 2};
  auto full =
      layers::unroll(cell, tape, xs, layers::zero_state(cell, tape, 2), {.lengths = lengths});
  // Row 1 alone, over its own two steps:
  std::vector<Var<double>> short_xs{slice_rows(xs[0], 1, 2), slice_rows(xs[1], 1, 2)};
  auto alone = layers::unroll(cell, tape, short_xs, layers::zero_state(cell, tape, 1));
  for (int k = 0; k < 2; ++k) {
    BOOST_TEST((full.state[static_cast<std::size_t>(k)].value().row(1) -
                alone.state[static_cast<std::size_t>(k)].value().row(0))
                   .norm() == 0.0);
  }
  BOOST_TEST(full.outputs[2].value().row(1).norm() == 0.0);
  BOOST_TEST(full.outputs[3].value().row(1).norm() == 0.0);
  BOOST_TEST(full.outputs[3].value().row(0).norm() > 0.0);
  // Reverse direction: row 1 starts at its own last step (t = 1), not at t = 3.
  auto rev = layers::unroll(cell, tape, xs, layers::zero_state(cell, tape, 2),
                            {.reverse = true, .lengths = lengths});
  std::vector<Var<double>> rev_short{short_xs[1], short_xs[0]};
  auto rev_alone = layers::unroll(cell, tape, rev_short, layers::zero_state(cell, tape, 1));
  BOOST_TEST((rev.outputs[1].value().row(1) - rev_alone.outputs[0].value().row(0)).norm() == 0.0);
  BOOST_TEST((rev.state[0].value().row(1) - rev_alone.state[0].value().row(0)).norm() == 0.0);
}

BOOST_AUTO_TEST_CASE(truncated_bptt_agrees_with_full_bptt_when_no_gradient_crosses_a_chunk) {
  // With W_hh = 0, h_t depends on x_t only: no gradient flows across a chunk boundary, so the
  // truncated gradient (chunks of 3, state carried with detach, one backward per chunk) must
  // equal the full one. With W_hh != 0 they must differ: the detach really cuts.
  for (bool recurrent : {false, true}) {
    layers::Rng rng(7);
    layers::RnnCell<double> cell({.input = 2, .hidden = 3}, rng);
    if (!recurrent) cell.weight_hh.value.setZero();
    std::srand(8);
    std::vector<M> xs;
    for (int t = 0; t < 9; ++t) xs.push_back(M::Random(2, 2));
    const auto chunk_loss = [](const std::vector<Var<double>>& ys) {
      return mean(square(concat_rows(ys)));
    };

    for (auto* p : cell.named_parameters()) p->zero_grad();
    Tape<double> tape;
    std::vector<Var<double>> all;
    for (const M& x : xs) all.push_back(tape.constant(x));
    auto full = layers::unroll(cell, tape, all, layers::zero_state(cell, tape, 2));
    Var<double> total = tape.constant(M::Zero(1, 1));
    for (int c = 0; c < 3; ++c) {
      total = total + chunk_loss({full.outputs.begin() + 3 * c, full.outputs.begin() + 3 * c + 3});
    }
    tape.backward(total);
    const M full_grad = cell.weight_ih.grad;
    const M full_state = full.state[0].value();

    for (auto* p : cell.named_parameters()) p->zero_grad();
    layers::RnnCell<double>::State carried;
    M carried_value = M::Zero(2, 3);
    for (int c = 0; c < 3; ++c) {
      tape.clear();
      carried[0] = tape.constant(carried_value);  // the detached state of the previous chunk
      std::vector<Var<double>> chunk;
      for (int t = 3 * c; t < 3 * c + 3; ++t)
        chunk.push_back(tape.constant(xs[static_cast<std::size_t>(t)]));
      auto run = layers::unroll(cell, tape, chunk, carried);
      tape.backward(chunk_loss(run.outputs));
      carried_value = layers::detach_state(run.state)[0].value();
    }
    BOOST_TEST((carried_value - full_state).norm() == 0.0);  // same forward
    const double diff = (cell.weight_ih.grad - full_grad).cwiseAbs().maxCoeff();
    if (recurrent) {
      BOOST_TEST(diff > 1e-6);
    } else {
      BOOST_TEST(diff < 1e-15);
    }
  }
}

BOOST_AUTO_TEST_CASE(the_classic_relu_rnn_worked_example) {
  layers::Rng rng(0);
  layers::RnnCell<double> cell({.input = 2, .hidden = 2, .activation = layers::Activation::kRelu},
                               rng);
  layers::Linear<double> readout({.in = 2, .out = 2}, rng);
  for (Parameter<double>* p : cell.named_parameters())
    p->value.setConstant(p->name.starts_with("weight") ? 1 : 0);
  readout.weight.value.setOnes();
  readout.bias.value.setZero();
  Tape<double> tape;
  std::vector<Var<double>> xs;
  for (double v : {1.0, 1.0, 2.0}) xs.push_back(tape.constant(M::Constant(1, 2, v)));
  auto run = layers::unroll(cell, tape, xs, layers::zero_state(cell, tape, 1));
  const double expected[] = {4, 12, 32};
  for (std::size_t t = 0; t < 3; ++t) {
    const M y = readout(tape, run.outputs[t]).value();
    BOOST_TEST(y(0, 0) == expected[t]);
    BOOST_TEST(y(0, 1) == expected[t]);
  }
}

BOOST_AUTO_TEST_CASE(parameter_counts_and_names) {
  layers::Rng rng(0);
  // Keras' SimpleRNN(32) on 32 features has 32·32 + 32·32 + 32 = 2080 parameters: one bias.
  // PyTorch and rewind keep two bias vectors (b_ih and b_hh), hence 2112.
  layers::Rnn<double> rnn({.input = 32, .hidden = 32}, rng);
  BOOST_TEST(layers::parameter_count(rnn.named_parameters()) == 2112);
  layers::Lstm<double> lstm({.input = 3, .hidden = 4, .num_layers = 2, .bidirectional = true}, rng);
  std::vector<std::string> names;
  for (auto* p : lstm.named_parameters()) names.push_back(p->name);
  const std::vector<std::string> expected{
      "weight_ih_l0",         "weight_hh_l0",         "bias_ih_l0",         "bias_hh_l0",
      "weight_ih_l0_reverse", "weight_hh_l0_reverse", "bias_ih_l0_reverse", "bias_hh_l0_reverse",
      "weight_ih_l1",         "weight_hh_l1",         "bias_ih_l1",         "bias_hh_l1",
      "weight_ih_l1_reverse", "weight_hh_l1_reverse", "bias_ih_l1_reverse", "bias_hh_l1_reverse"};
  BOOST_TEST(names == expected, boost::test_tools::per_element());
  BOOST_TEST(lstm.cell(1, true).weight_ih.shape() == (Shape{16, 8}));  // layer 1 sees 2·hidden
  layers::Gru<double> nobias({.input = 3, .hidden = 4, .bias = false}, rng);
  BOOST_TEST(layers::parameter_count(nobias.named_parameters()) == 3 * 4 * 3 + 3 * 4 * 4);
}

BOOST_AUTO_TEST_CASE(gates_are_scoped) {
  layers::Rng rng(0);
  layers::Lstm<double> lstm({.input = 2, .hidden = 3, .num_layers = 2, .bidirectional = true}, rng);
  Tape<double> tape;
  std::vector<Var<double>> xs;
  for (int t = 0; t < 4; ++t) xs.push_back(tape.constant(M::Ones(1, 2)));
  (void)lstm(tape, xs);
  bool found = false;
  for (std::size_t i = 0; i < tape.size(); ++i) {
    if (tape.scope_path(i) == "layer1/bwd/t2/f" && tape.op_name(i) == "sigmoid") found = true;
  }
  BOOST_TEST(found);
}

BOOST_AUTO_TEST_CASE(shape_errors_name_the_layer) {
  layers::Rng rng(0);
  layers::LstmCell<double> lstm({.input = 5, .hidden = 4}, rng);
  Tape<double> tape;
  auto s = layers::zero_state(lstm, tape, 3);
  test::expect_message<ShapeError>([&] { (void)lstm.step(tape, tape.constant(M::Ones(3, 7)), s); },
                                   "LstmCell: input has 7 features, expected 5");
  test::expect_message<ShapeError>([&] { (void)lstm.step(tape, tape.constant(M::Ones(2, 5)), s); },
                                   "LstmCell: hidden state is 3x4, expected 2x4 (batch 2, size 4)");
  layers::GruCell<double> gru({.input = 5, .hidden = 4}, rng);
  test::expect_message<ShapeError>(
      [&] { (void)gru.step(tape, tape.constant(M::Ones(3, 2)), {s[0]}); },
      "GruCell: input has 2 features, expected 5");
  layers::RnnCell<double> rnn({.input = 5, .hidden = 4}, rng);
  test::expect_message<ShapeError>(
      [&] { (void)rnn.step(tape, tape.constant(M::Ones(3, 2)), {s[0]}); },
      "RnnCell: input has 2 features, expected 5");
  layers::Linear<double> linear({.in = 4, .out = 2}, rng);
  test::expect_message<ShapeError>([&] { (void)linear(tape, tape.constant(M::Ones(3, 5))); },
                                   "Linear: input has 5 features, expected 4");
  std::vector<Var<double>> xs{tape.constant(M::Ones(3, 5))};
  const std::vector<std::int32_t> two{1, 1}, too_long{1, 2, 1};
  test::expect_message<ShapeError>(
      [&] { (void)layers::unroll(lstm, tape, xs, s, {.lengths = two}); },
      "unroll: 2 lengths for a batch of 3");
  test::expect_message<ShapeError>(
      [&] { (void)layers::unroll(lstm, tape, xs, s, {.lengths = too_long}); },
      "unroll: length 2 of batch row 1 is outside [0, 1]");
  test::expect_message<UsageError>(
      [&] { layers::Lstm<double>({.input = 2, .hidden = 2, .num_layers = 0}, rng); },
      "Lstm: num_layers is 0, expected at least 1");
  layers::Gru<double> seq({.input = 5, .hidden = 4}, rng);
  test::expect_message<UsageError>(
      [&] {
        (void)seq(tape, xs, {.initial = {{s[0]}, {s[0]}}});
      },
      "Gru: 2 initial states given, expected 1 (layers x directions)");
  // Sequence: the widths of x and of a given initial state, per layer and direction, before
  // anything is recorded.
  layers::Lstm<double> stack({.input = 5, .hidden = 4, .num_layers = 2}, rng);
  const std::vector<Var<double>> wide{tape.constant(M::Ones(3, 6))};
  test::expect_message<ShapeError>(
      [&] { (void)stack(tape, wide); },
      "unroll of LstmCell<double> at layer0/fwd: x at t0 is 3x6, expected 3x5 (batch 3, "
      "input_size() 5)");
  const auto c = tape.constant(M::Ones(3, 2));
  test::expect_message<ShapeError>(
      [&] {
        (void)stack(tape, xs, {.initial = {s, {s[0], c}}});
      },
      "unroll of LstmCell<double> at layer1/fwd: initial state[1] is 3x2, expected 3x4 (batch 3, "
      "state_sizes()[1] 4)");
}

BOOST_AUTO_TEST_CASE(dropout_between_layers_only_in_training) {
  layers::Rng rng(0);
  layers::Gru<double> gru({.input = 2, .hidden = 3, .num_layers = 2, .dropout = 0.5}, rng);
  Tape<double> tape;
  std::vector<Var<double>> xs{tape.constant(M::Ones(4, 2)), tape.constant(M::Ones(4, 2))};
  const M eval = gru(tape, xs).outputs[1].value();
  const M eval_again = gru(tape, xs).outputs[1].value();
  layers::Rng a(1), b(1);
  const M train_a = gru(tape, xs, {.dropout_rng = &a}).outputs[1].value();
  const M train_b = gru(tape, xs, {.dropout_rng = &b}).outputs[1].value();
  BOOST_TEST((eval - eval_again).norm() == 0.0);
  BOOST_TEST((train_a - train_b).norm() == 0.0);  // seeded
  BOOST_TEST((train_a - eval).norm() > 0.0);
}

BOOST_AUTO_TEST_CASE(initializers) {
  layers::Rng rng(0);
  const M q = layers::orthogonal<double>(6, 4, rng);
  BOOST_TEST((q.transpose() * q - M::Identity(4, 4)).norm() < 1e-12);
  const M w = layers::orthogonal<double>(3, 5, rng, 2.0);
  BOOST_TEST((w * w.transpose() - 4 * M::Identity(3, 3)).norm() < 1e-12);
  const M x = layers::xavier_uniform<double>(20, 30, rng);
  BOOST_TEST(x.cwiseAbs().maxCoeff() <= std::sqrt(6.0 / 50));
  BOOST_TEST(x.cwiseAbs().maxCoeff() > 0.9 * std::sqrt(6.0 / 50));
  layers::Rng r1(5), r2(5);
  BOOST_TEST(
      (layers::uniform<double>(3, 3, 0.1, r1) - layers::uniform<double>(3, 3, 0.1, r2)).norm() ==
      0.0);
}

BOOST_AUTO_TEST_CASE(float_gradients_match_double_gradients) {
  // The same LSTM in float and double (identical weights): float's analytic gradients against
  // double's, which gradcheck has verified above.
  layers::Rng rd(9), rf(9);
  layers::Lstm<double> ld({.input = 3, .hidden = 5}, rd);
  layers::Lstm<float> lf({.input = 3, .hidden = 5}, rf);
  auto pd = ld.named_parameters();
  auto pf = lf.named_parameters();
  for (std::size_t k = 0; k < pd.size(); ++k) pf[k]->value = pd[k]->value.cast<float>();
  std::srand(3);
  std::vector<M> xs;
  for (int t = 0; t < 6; ++t) xs.push_back(M::Random(2, 3));
  Tape<double> td;
  Tape<float> tf;
  std::vector<Var<double>> vd;
  std::vector<Var<float>> vf;
  for (const M& x : xs) {
    vd.push_back(td.input(x));
    vf.push_back(tf.input(x.cast<float>()));
  }
  td.backward(mean(square(concat_rows(ld(td, vd).outputs))));
  tf.backward(mean(square(concat_rows(lf(tf, vf).outputs))));
  for (std::size_t k = 0; k < pd.size(); ++k) {
    const M gf = pf[k]->grad.cast<double>();
    const double err = (gf - pd[k]->grad).cwiseAbs().maxCoeff() / pd[k]->grad.cwiseAbs().maxCoeff();
    BOOST_TEST(err < 1e-4, pd[k]->name << " relative error " << err);
  }
}

BOOST_AUTO_TEST_SUITE_END()
