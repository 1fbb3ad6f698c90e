// The WGAN-GP gradient penalty (Gulrajani et al., 2017) for a recurrent critic, with one mixed
// second-order sweep. The critic scores a sequence: D(x) = head(h_T) of an LSTM. The penalty is
//
//   P(θ) = λ · mean_b (‖∇_{x_b} D‖ - 1)²,
//
// and training the critic needs dP/dθ, a derivative of a derivative. With g_b = ∇_{x_b} D:
//   dP/dθ = (∂²D/∂θ∂x) · u,  u_b = (2λ/B) (‖g_b‖ - 1) / ‖g_b‖ · g_b,
// the derivative of the parameters' gradient along a tangent u on the *inputs*: record D once,
// backward for g, set the inputs' tangents to u, then one jvp + second-order sweep. The answer is
// in Parameter::grad_tangent. (PyTorch needs create_graph=True through the whole LSTM.)
#pragma once

#include <cmath>
#include <rewind/rewind.hpp>
#include <vector>

template <class T>
struct RecurrentCritic {
  RecurrentCritic(rwd::Index input, rwd::Index hidden, rwd::layers::Rng& rng)
      : lstm({.input = input, .hidden = hidden}, rng),
        head({.in = hidden, .out = 1, .prefix = "head."}, rng) {}

  /// Σ_b D(x_b): one score per batch row, summed (each row's gradient is its own ∇_{x_b} D).
  rwd::Var<T> score(rwd::Tape<T>& tape, std::span<const rwd::Var<T>> xs) {
    const auto out = lstm(tape, xs);
    return rwd::sum(head(tape, out.outputs.back()));
  }
  std::vector<rwd::Parameter<T>*> parameters() {
    auto p = lstm.named_parameters();
    rwd::layers::append(p, head.named_parameters());
    return p;
  }

  rwd::layers::Lstm<T> lstm;
  rwd::layers::Linear<T> head;
};

/// The penalty at `xs` (per step, batch × input). Adds dP/dθ into every parameter's
/// grad_tangent and, from the same sweep, ∇_θ Σ_b D(x_b) into its grad (the critic's own term);
/// zero both first (Parameter::zero_grad).
template <class T>
T gradient_penalty(RecurrentCritic<T>& critic, const std::vector<rwd::Matrix<T>>& xs, T lambda) {
  using namespace rwd;
  Tape<T> tape;
  std::vector<Var<T>> in;
  for (const auto& x : xs) in.push_back(tape.input(x));
  const Var<T> d = critic.score(tape, in);
  tape.backward(d, {.accumulate_parameters = false});
  // Per batch row b, ‖g_b‖ over every step and feature.
  const Index batch = xs[0].rows();
  Matrix<T> norm2 = Matrix<T>::Zero(batch, 1);
  for (const auto& x : in) norm2 += x.grad().rowwise().squaredNorm();
  T penalty = 0;
  Matrix<T> scale(batch, 1);
  for (Index b = 0; b < batch; ++b) {
    const T norm = std::sqrt(norm2(b, 0));
    penalty += lambda * (norm - 1) * (norm - 1) / static_cast<T>(batch);
    scale(b, 0) = T(2) * lambda / static_cast<T>(batch) * (norm - 1) / norm;
  }
  // The tangent u on the inputs; the parameters get no tangent of their own.
  for (const auto& x : in) tape.set_tangent(x, scale.asDiagonal() * x.grad());
  for (Parameter<T>* p : critic.parameters()) p->tangent.resize(0, 0);
  tape.hvp(d);  // adds ∂²D/∂θ∂x · u into grad_tangent (and ∇_θ D into grad)
  return penalty;
}
