// A training loop, the README's: an LSTM and a linear head learn the adding problem (the sum of
// the two marked values of a sequence) with Adam, one fresh recording per step. Exits non-zero
// unless the loss ends below a tenth of the no-memory baseline (0.167).
#include <iostream>
#include <random>
#include <rewind/rewind.hpp>

using namespace rwd;

int main() {
  constexpr Index kSteps = 10, kBatch = 32;
  layers::Rng rng(1);
  layers::Lstm<float> lstm({.input = 2, .hidden = 32}, rng);
  layers::Linear<float> head({.in = 32, .out = 1, .prefix = "head."}, rng);
  auto params = lstm.named_parameters();
  layers::append(params, head.named_parameters());
  optim::Adam<float> adam(params, {.lr = 1e-2});
  // One batch of the adding problem: x_t = (value, marker); the target is the marked values' sum.
  const auto batch = [&](std::vector<Matrix<float>>& xs, Matrix<float>& target) {
    std::uniform_real_distribution<float> value(0, 1);
    std::uniform_int_distribution<Index> first(0, kSteps / 2 - 1), second(kSteps / 2, kSteps - 1);
    xs.assign(kSteps, Matrix<float>::Zero(kBatch, 2));
    target.setZero(kBatch, 1);
    for (Index b = 0; b < kBatch; ++b) {
      for (Index t = 0; t < kSteps; ++t) xs[t](b, 0) = value(rng);
      for (Index t : {first(rng), second(rng)}) {
        xs[t](b, 1) = 1;
        target(b, 0) += xs[t](b, 0);
      }
    }
  };
  Tape<float> tape;
  std::vector<Matrix<float>> xs;
  Matrix<float> target;
  double recent = 0;
  for (int step = 1; step <= 1500; ++step) {
    batch(xs, target);
    tape.clear();  // a new recording every step: the parameters' values are read afresh
    std::vector<Var<float>> in;
    for (const Matrix<float>& x : xs) in.push_back(tape.constant(x));
    const Var<float> loss = mse(head(tape, lstm(tape, in).outputs.back()), tape.constant(target));
    adam.zero_grad();
    tape.backward(loss);
    optim::clip_grad_norm<float>(params, 1.0);
    adam.step();
    recent = 0.95 * recent + 0.05 * loss.item();
    if (step % 300 == 0) std::cout << "step " << step << "  loss " << recent << "\n";
  }
  if (!(recent < 0.0167)) {
    std::cerr << "training_loop: the loss " << recent << " did not fall below 0.0167\n";
    return 1;
  }
}
