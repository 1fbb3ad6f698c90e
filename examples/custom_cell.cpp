// A cell of your own, start to finish: JANET (Van der Westhuizen & Lasenby 2018), an LSTM with
// its forget gate only, checked by gradcheck, stacked by Sequence, trained with a head, Adam and
// clipping on the adding problem, saved and loaded. Exits non-zero if a check fails.
#include <cmath>
#include <iostream>
#include <random>
#include <rewind/rewind.hpp>

using namespace rwd;

template <class T>
struct JanetCell {
  using Scalar = T;
  using State = std::array<Var<T>, 1>;  // {h}: JANET's memory is its output
  JanetCell(Index input, Index hidden, layers::Rng& rng) {
    const double a = 1 / std::sqrt(static_cast<double>(hidden));  // PyTorch's LSTM initialiser
    w_f = {"w_f", layers::uniform<T>(hidden, input, a, rng)};
    u_f = {"u_f", layers::uniform<T>(hidden, hidden, a, rng)};
    b_f = {"b_f", Matrix<T>::Ones(1, hidden)};  // remember by default
    w_c = {"w_c", layers::uniform<T>(hidden, input, a, rng)};
    u_c = {"u_c", layers::uniform<T>(hidden, hidden, a, rng)};
    b_c = {"b_c", Matrix<T>::Zero(1, hidden)};
  }
  // s = x·W_fᵀ + h·U_fᵀ + b_f;  h' = σ(s) ⊙ h + (1 − σ(s − 1)) ⊙ tanh(x·W_cᵀ + h·U_cᵀ + b_c)
  State step(Tape<T>& tape, const Var<T>& x, const State& state) {
    const Var<T>& h = state[0];
    Var<T> s, candidate;
    {
      auto scope = tape.scope("f");  // each gate under its own scope in graphs and errors
      const Var<T> xw = matmul_nt(x, tape.param(w_f));
      s = add_row_vector(xw + matmul_nt(h, tape.param(u_f)), tape.param(b_f));
    }
    {
      auto scope = tape.scope("c~");
      const Var<T> xw = matmul_nt(x, tape.param(w_c));
      candidate = tanh(add_row_vector(xw + matmul_nt(h, tape.param(u_c)), tape.param(b_c)));
    }
    const Var<T> keep = sigmoid(s) * h;
    return {keep + (T(1) - sigmoid(s - T(1))) * candidate};
  }
  std::array<Index, 1> state_sizes() const { return {u_f.value.rows()}; }
  Index input_size() const { return w_f.value.cols(); }
  std::vector<Parameter<T>*> named_parameters() { return {&w_f, &u_f, &b_f, &w_c, &u_c, &b_c}; }
  Parameter<T> w_f, u_f, b_f, w_c, u_c, b_c;
};

int main() {
  // 1. Gradients of a 5-step sequence against central differences, in double.
  layers::Rng rng(7);
  JanetCell<double> small(2, 3, rng);
  std::vector<NamedTensor> sequence;
  for (int t = 0; t < 5; ++t)
    sequence.push_back({"x" + std::to_string(t), layers::uniform<double>(4, 2, 1.0, rng)});
  const GradcheckReport check = gradcheck(
      [&](Tape<double>& tape, std::span<const Var<double>> xs) {
        const auto run = layers::unroll(small, tape, xs, layers::zero_state(small, tape, 4));
        return mean(square(run.outputs.back()));
      },
      sequence, small.named_parameters());
  std::cout << check;
  if (!check.passed()) return 1;

  // 2. Two stacked layers and a linear head on the adding problem, in float.
  constexpr Index kSteps = 10, kBatch = 32;
  layers::Sequence<JanetCell<float>> janet(
      "Janet", {.num_layers = 2}, 2,
      [&](int /*layer*/, bool /*reverse*/, Index in) { return JanetCell<float>(in, 32, rng); });
  layers::Linear<float> head({.in = 32, .out = 1, .prefix = "head."}, rng);
  auto params = janet.named_parameters();  // layer0.w_f, ..., layer1.b_c
  layers::append(params, head.named_parameters());
  optim::Adam<float> adam(params, {.lr = 1e-2});
  std::uniform_real_distribution<float> value(0, 1);
  std::uniform_int_distribution<Index> first(0, kSteps / 2 - 1), second(kSteps / 2, kSteps - 1);
  std::vector<Matrix<float>> xs;
  Matrix<float> target;
  const auto batch = [&] {  // x_t = (value, marker); the target: the two marked values' sum
    xs.assign(kSteps, Matrix<float>::Zero(kBatch, 2));
    target.setZero(kBatch, 1);
    for (Index b = 0; b < kBatch; ++b) {
      for (Index t = 0; t < kSteps; ++t) xs[t](b, 0) = value(rng);
      for (const Index t : {first(rng), second(rng)}) {
        xs[t](b, 1) = 1;
        target(b, 0) += xs[t](b, 0);
      }
    }
  };
  Tape<float> tape;
  const auto loss_of = [&] {  // records one batch's loss on a fresh recording
    tape.clear();             // the parameters' values are read afresh on every recording
    std::vector<Var<float>> in;
    for (const Matrix<float>& x : xs) in.push_back(tape.constant(x));
    return mse(head(tape, janet(tape, in).outputs.back()), tape.constant(target));
  };
  double recent = 0;
  for (int step = 1; step <= 1000; ++step) {
    batch();
    const Var<float> loss = loss_of();
    adam.zero_grad();
    tape.backward(loss);
    optim::clip_grad_norm<float>(params, 1.0);
    adam.step();
    recent = 0.95 * recent + 0.05 * loss.item();
    if (step % 250 == 0) std::cout << "step " << step << "  loss " << recent << "\n";
  }

  // 3. Save, scramble, load: the same loss on the same batch.
  const float trained = loss_of().item();
  layers::save_parameters("janet.safetensors", params);
  for (Parameter<float>* p : params) p->value.setRandom();
  layers::load_parameters("janet.safetensors", params);
  const float loaded = loss_of().item();
  std::cout << "loss " << trained << " trained, " << loaded << " after loading\n";
  return recent < 0.0167 && loaded == trained ? 0 : 1;  // a tenth of the no-memory 0.167
}
