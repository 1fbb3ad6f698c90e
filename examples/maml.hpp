// One-step MAML (Finn et al., 2017) for a GRU, exact, with one Hessian-vector product. The
// inner step adapts θ' = θ - α∇L_train(θ); the meta-gradient of L_val(θ') is
//
//   ∇_θ L_val(θ') = (I - α H_train(θ)) · ∇L_val(θ'),
//
// so it takes the gradient of L_train at θ, the gradient of L_val at θ', and one H·v of L_train
// at θ along v = ∇L_val(θ'). First-order MAML drops the H·v term; rewind gives it exactly for
// any cell, at about three gradients' cost.
#pragma once

#include <rewind/rewind.hpp>
#include <vector>

/// A sequence regression task: inputs per step (batch × input) and targets per step (batch × 1).
template <class T>
struct Task {
  std::vector<rwd::Matrix<T>> xs, ys;
};

template <class T>
struct GruRegressor {
  GruRegressor(rwd::Index input, rwd::Index hidden, rwd::layers::Rng& rng)
      : gru({.input = input, .hidden = hidden}, rng),
        head({.in = hidden, .out = 1, .prefix = "head."}, rng) {}
  /// Mean squared error over every step.
  rwd::Var<T> loss(rwd::Tape<T>& tape, const Task<T>& task) {
    std::vector<rwd::Var<T>> in;
    for (const auto& x : task.xs) in.push_back(tape.constant(x));
    const auto out = gru(tape, in);
    std::vector<rwd::Var<T>> preds, targets;
    for (std::size_t t = 0; t < in.size(); ++t) {
      preds.push_back(head(tape, out.outputs[t]));
      targets.push_back(tape.constant(task.ys[t]));
    }
    return rwd::mse(rwd::concat_rows(preds), rwd::concat_rows(targets));
  }
  std::vector<rwd::Parameter<T>*> parameters() {
    auto p = gru.named_parameters();
    rwd::layers::append(p, head.named_parameters());
    return p;
  }
  rwd::layers::Gru<T> gru;
  rwd::layers::Linear<T> head;
};

/// The gradient of a loss at the model's current parameters (one per parameter).
template <class T>
std::vector<rwd::Matrix<T>> gradient(GruRegressor<T>& model, const Task<T>& task) {
  rwd::Tape<T> tape;
  for (rwd::Parameter<T>* p : model.parameters()) p->grad.resize(0, 0);
  tape.backward(model.loss(tape, task));
  std::vector<rwd::Matrix<T>> g;
  for (rwd::Parameter<T>* p : model.parameters()) g.push_back(p->grad);
  return g;
}

/// L_val after one inner step (what the meta-gradient differentiates).
template <class T>
T adapted_loss(GruRegressor<T>& model, const Task<T>& train, const Task<T>& val, T alpha) {
  const auto params = model.parameters();
  const auto g = gradient(model, train);
  std::vector<rwd::Matrix<T>> theta;
  for (std::size_t k = 0; k < params.size(); ++k) {
    theta.push_back(params[k]->value);
    params[k]->value -= alpha * g[k];
  }
  rwd::Tape<T> tape;
  const T loss = model.loss(tape, val).item();
  for (std::size_t k = 0; k < params.size(); ++k) params[k]->value = theta[k];
  return loss;
}

/// The exact one-step MAML meta-gradient (I - αH_train)·∇L_val(θ'), one entry per parameter.
template <class T>
std::vector<rwd::Matrix<T>> meta_gradient(GruRegressor<T>& model, const Task<T>& train,
                                          const Task<T>& val, T alpha) {
  const auto params = model.parameters();
  const auto g_train = gradient(model, train);
  std::vector<rwd::Matrix<T>> theta;
  for (std::size_t k = 0; k < params.size(); ++k) {
    theta.push_back(params[k]->value);
    params[k]->value -= alpha * g_train[k];  // θ'
  }
  const auto g_val = gradient(model, val);  // ∇L_val(θ')
  for (std::size_t k = 0; k < params.size(); ++k) {
    params[k]->value = theta[k];  // back to θ
    params[k]->tangent = g_val[k];
    params[k]->grad_tangent.resize(0, 0);
  }
  rwd::Tape<T> tape;
  tape.hvp(model.loss(tape, train), {.accumulate_parameters = false});
  std::vector<rwd::Matrix<T>> meta;
  for (std::size_t k = 0; k < params.size(); ++k) {
    meta.push_back(g_val[k] - alpha * rwd::Matrix<T>(tape.param(*params[k]).grad_tangent()));
    params[k]->tangent.resize(0, 0);
  }
  return meta;
}
