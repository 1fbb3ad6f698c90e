// The classic worked example: a 2-unit relu RNN with every weight 1 and every bias 0, read out
// by a linear layer whose weights are all 1, fed [1,1], [1,1], [2,2]:
//   h1 = relu([1,1]·1 + 0)        = [2,2]    y1 = [4,4]
//   h2 = relu([1,1]·1 + [2,2]·1)  = [6,6]    y2 = [12,12]
//   h3 = relu([2,2]·1 + [6,6]·1)  = [16,16]  y3 = [32,32]
#include <iostream>
#include <rewind/rewind.hpp>

using namespace rwd;

int main() {
  layers::Rng rng(0);
  layers::RnnCell<double> cell({.input = 2, .hidden = 2, .activation = layers::Activation::kRelu},
                               rng);
  layers::Linear<double> readout({.in = 2, .out = 2}, rng);
  for (Parameter<double>* p : cell.named_parameters()) {
    p->value.setConstant(p->name.starts_with("weight") ? 1.0 : 0.0);
  }
  readout.weight.value.setOnes();
  readout.bias.value.setZero();

  Tape<double> tape;
  std::vector<Var<double>> xs;
  for (double v : {1.0, 1.0, 2.0}) xs.push_back(tape.constant(Matrix<double>::Constant(1, 2, v)));
  auto run = layers::unroll(cell, tape, xs, layers::zero_state(cell, tape, 1));
  for (std::size_t t = 0; t < xs.size(); ++t) {
    const Var<double> y = readout(tape, run.outputs[t]);
    std::cout << "t=" << t + 1 << "  x=" << xs[t].value() << "  h=" << run.outputs[t].value()
              << "  y=" << y.value() << "\n";
  }
}
