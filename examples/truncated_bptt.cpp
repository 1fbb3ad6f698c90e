// Truncated backpropagation through time: a long sequence is processed in chunks; the state is
// carried from chunk to chunk with its gradient stopped (detach_state), so each backward only
// reaches back to the start of its chunk and the tape only ever holds one chunk.
#include <iostream>
#include <rewind/rewind.hpp>

using namespace rwd;

int main() {
  layers::Rng rng(1);
  layers::LstmCell<double> cell({.input = 2, .hidden = 8}, rng);
  layers::Linear<double> head({.in = 8, .out = 1}, rng);
  const int steps = 60, chunk = 15, batch = 4;

  // A sine wave to predict one step ahead.
  std::vector<Matrix<double>> xs, ys;
  for (int t = 0; t <= steps; ++t) {
    Matrix<double> x(batch, 2);
    for (int b = 0; b < batch; ++b) x.row(b) << std::sin(0.2 * t + b), std::cos(0.2 * t + b);
    xs.push_back(x);
  }
  for (int t = 0; t < steps; ++t) ys.push_back(xs[static_cast<std::size_t>(t + 1)].col(0));

  Tape<double> tape;
  std::array<Matrix<double>, 2> carried{Matrix<double>::Zero(batch, 8),
                                        Matrix<double>::Zero(batch, 8)};
  for (auto* p : cell.named_parameters()) p->zero_grad();
  for (int start = 0; start < steps; start += chunk) {
    tape.clear();  // the tape holds one chunk at a time
    layers::LstmCell<double>::State state{tape.constant(carried[0]), tape.constant(carried[1])};
    std::vector<Var<double>> in, predictions, targets;
    for (int t = start; t < start + chunk; ++t)
      in.push_back(tape.constant(xs[static_cast<std::size_t>(t)]));
    auto run = layers::unroll(cell, tape, in, state);
    for (int k = 0; k < chunk; ++k) {
      predictions.push_back(head(tape, run.outputs[static_cast<std::size_t>(k)]));
      targets.push_back(tape.constant(ys[static_cast<std::size_t>(start + k)]));
    }
    Var<double> loss = mse(concat_rows(predictions), concat_rows(targets));
    tape.backward(loss);  // reaches back to `start`, not to t = 0
    // Carry the state on. detach_state makes the cut explicit when the state stays on one tape;
    // here the next chunk is a new recording, so its values are copied out.
    const auto next = layers::detach_state(run.state);
    carried = {next[0].value(), next[1].value()};
    std::cout << "chunk t=" << start << ".." << start + chunk - 1 << "  loss " << loss.item()
              << "  |dL/dW_hh| so far " << cell.weight_hh.grad.norm() << "  nodes " << tape.size()
              << "\n";
  }
}
