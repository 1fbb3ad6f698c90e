// Built against an installed rewind: records, rewinds and checks a gradient, and uses the layers,
// an optimizer, a weight file and a graph, so every installed library is linked for real.
#include <cmath>
#include <filesystem>
#include <iostream>
#include <rewind/rewind.hpp>
#include <sstream>

int main() {
  rwd::Tape<double> tape;
  rwd::Parameter<double> w("w", rwd::Matrix<double>::Constant(2, 1, 0.5));
  auto x = tape.input(rwd::Matrix<double>::Ones(3, 2), "x");
  auto loss = rwd::sum(rwd::tanh(rwd::matmul(x, tape.param(w))));
  tape.backward(loss);
  // d/dw Σ tanh(x·w) = xᵀ (1 - tanh²(x·w)); x·w = 1 in every row.
  const double expected = 3 * (1 - std::tanh(1.0) * std::tanh(1.0));
  if (std::abs(w.grad(0, 0) - expected) > 1e-12) {
    std::cerr << "wrong gradient " << w.grad(0, 0) << " expected " << expected << "\n";
    return 1;
  }
  rwd::layers::Rng rng(1);
  rwd::layers::Lstm<float> lstm({.input = 2, .hidden = 3}, rng);
  rwd::optim::Adam<float> adam(lstm.named_parameters(), {.lr = 0.01});
  rwd::Tape<float> t;
  std::vector<rwd::Var<float>> xs{t.constant(rwd::Matrix<float>::Ones(1, 2))};
  t.backward(rwd::mean(lstm(t, xs).outputs[0]));
  adam.step();
  const auto file = std::filesystem::temp_directory_path() / "rewind_consumer.safetensors";
  rwd::layers::save_parameters(file, lstm.named_parameters());
  rwd::layers::load_parameters(file, lstm.named_parameters());
  std::filesystem::remove(file);
  std::ostringstream dot;
  const auto s = rwd::write_dot(t, dot);
  std::cout << "consumer ok: dL/dw = " << w.grad.transpose() << "; LSTM graph with " << s.nodes
            << " nodes; rendering " << (rwd::can_render() ? "available" : "not built") << "\n";
  return 0;
}
