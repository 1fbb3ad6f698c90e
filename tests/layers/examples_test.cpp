// The classic examples: the hand-wired LSTM memory cell, and the Keras-style model summary.
#include <boost/test/unit_test.hpp>
#include <rewind/rewind.hpp>

#include "memory_cell.hpp"

using namespace rwd;
using M = Matrix<double>;

BOOST_AUTO_TEST_SUITE(classics)

BOOST_AUTO_TEST_CASE(the_hand_wired_memory_cell_stores_erases_and_reads) {
  MemoryCell<double> cell;
  Tape<double> tape;
  const double inputs[7][3] = {{3, 1, 0},  {4, 1, 0}, {2, 0, 0}, {1, 0, 1},
                               {3, -1, 0}, {6, 1, 0}, {1, 0, 1}};
  const double memory[7] = {3, 7, 7, 7, 0, 6, 6}, output[7] = {0, 0, 0, 7, 0, 0, 6};
  std::vector<Var<double>> xs;
  for (const auto& x : inputs)
    xs.push_back(tape.constant((M(1, 3) << x[0], x[1], x[2]).finished()));
  const auto run = layers::unroll(cell, tape, xs, layers::zero_state(cell, tape, 1));
  // unroll returns h per step; the memory c is the state's second tensor, read step by step.
  MemoryCell<double>::State s = layers::zero_state(cell, tape, 1);
  for (std::size_t t = 0; t < 7; ++t) {
    s = cell.step(tape, xs[t], s);
    BOOST_TEST(std::abs(s[1].item() - memory[t]) < 0.1,
               "memory at step " << t + 1 << ": " << s[1].item());
    BOOST_TEST(std::abs(s[0].item() - output[t]) < 0.1,
               "output at step " << t + 1 << ": " << s[0].item());
    BOOST_TEST(std::abs(run.outputs[t].item() - output[t]) < 0.1);
  }
}

BOOST_AUTO_TEST_CASE(summary_lists_layers_shapes_and_parameters_like_keras) {
  layers::Rng rng(0);
  layers::Embedding<float> embedding({10000, 32}, rng);
  layers::Rnn<float> rnn({.input = 32, .hidden = 32}, rng);
  layers::Linear<float> dense({.in = 32, .out = 1}, rng);
  layers::Summary s("sentiment", {layers::kNone, 500});
  s.add("embedding", embedding).add("simple_rnn", rnn, false).add("dense", dense);
  BOOST_TEST(s.total_parameters() == 320000 + 2112 + 33);
  BOOST_TEST(layers::Summary::shape_string(s.output_shape()) == "(None, 1)");
  const std::string text = s.str();
  BOOST_TEST(text.find("simple_rnn (1xRnn)            (None, 32)") != std::string::npos, text);
  BOOST_TEST(text.find("embedding (Embedding)         (None, 500, 32)") != std::string::npos, text);
  BOOST_TEST(text.find("2,112") != std::string::npos);
  BOOST_TEST(text.find("Total params: 322,145") != std::string::npos);
  layers::Lstm<float> bi({.input = 32, .hidden = 16, .num_layers = 2, .bidirectional = true}, rng);
  layers::Summary t("bi", {layers::kNone, 50, 32});
  t.add("lstm", bi, true);
  BOOST_TEST(layers::Summary::shape_string(t.output_shape()) ==
             "(None, 50, 32)");  // 2 directions x 16
  layers::Linear<float> wrong({.in = 7, .out = 1}, rng);
  BOOST_CHECK_THROW(t.add("dense", wrong), ShapeError);
}

BOOST_AUTO_TEST_SUITE_END()
