// The engine in one screen: record ops on a tape, rewind it for gradients, check them against
// finite differences, and reuse the tape.
#include <iostream>
#include <rewind/rewind.hpp>

using namespace rwd;

int main() {
  Tape<double> tape;
  Parameter<double> w("w", Matrix<double>::Random(3, 2));
  Var<double> x = tape.input(Matrix<double>::Random(4, 3), "x");  // receives a gradient
  Var<double> loss = [&] {
    auto s = tape.scope("model");
    return mean(square(tanh(matmul(x, tape.param(w)))));
  }();
  tape.backward(loss);
  std::cout << "loss = " << loss.item() << "\n"
            << "dloss/dx =\n"
            << x.grad() << "\n"
            << "dloss/dw =\n"
            << w.grad << "\n\n";

  std::cout << "the tape holds " << tape.size() << " nodes:\n";
  for (std::size_t i = 0; i < tape.size(); ++i) {
    std::cout << "  " << i << "  " << tape.op_name(i) << "  " << to_string(tape.shape(i)) << "  "
              << tape.scope_path(i) << "  " << tape.label(i) << "\n";
  }

  // The same function, checked against central differences in double.
  const GradcheckReport report = gradcheck(
      [&](Tape<double>& t, std::span<const Var<double>> in) {
        return mean(square(tanh(matmul(in[0], t.param(w)))));
      },
      {{"x", x.value()}}, {&w});
  std::cout << "\n" << report;

  tape.clear();  // x is stale now; the tape keeps its buffers for the next recording
  try {
    (void)x.value();
  } catch (const UsageError& e) {
    std::cout << "\nafter clear(): " << e.what() << "\n";
  }
  return report.passed() ? 0 : 1;
}
