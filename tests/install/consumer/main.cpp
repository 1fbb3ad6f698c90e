// Built against an installed rewind: records, rewinds and checks a gradient.
#include <cmath>
#include <iostream>
#include <rewind/rewind.hpp>

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
  std::cout << "consumer ok: dL/dw = " << w.grad.transpose() << "\n";
  return 0;
}
