// A peephole LSTM (Gers & Schmidhuber, 2000) as a custom cell, written only against the public
// API. The gates also look at the cell state through diagonal (per-unit) weights p:
//
//   z  = x·W_ihᵀ + b_ih + h·W_hhᵀ + b_hh      (columns [i | f | g | o], PyTorch's layout)
//   i  = σ(z_i + p_i ⊙ c)      f = σ(z_f + p_f ⊙ c)      g = tanh(z_g)
//   c' = f ⊙ c + i ⊙ g
//   o  = σ(z_o + p_o ⊙ c')     h' = o ⊙ tanh(c')
#pragma once

#include <rewind/rewind.hpp>

template <class T>
class PeepholeLstmCell : public rwd::layers::RecurrentWeights<T> {
 public:
  using Scalar = T;
  using State = std::array<rwd::Var<T>, 2>;  // {h, c}

  PeepholeLstmCell(rwd::Index input, rwd::Index hidden, rwd::layers::Rng& rng)
      : rwd::layers::RecurrentWeights<T>(input, hidden, 4, true, "", rng) {
    const double b = 1.0 / std::sqrt(static_cast<double>(hidden));
    p_i = {"peephole_i", rwd::layers::uniform<T>(1, hidden, b, rng)};
    p_f = {"peephole_f", rwd::layers::uniform<T>(1, hidden, b, rng)};
    p_o = {"peephole_o", rwd::layers::uniform<T>(1, hidden, b, rng)};
  }

  State step(rwd::Tape<T>& tape, const rwd::Var<T>& x, const State& s) {
    using namespace rwd;
    const Index n = this->hidden_size();
    const Var<T> z = this->both_parts(tape, x, s[0]);
    const auto part = [&](Index k) { return slice_cols(z, k * n, (k + 1) * n); };
    const auto peep = [&](Parameter<T>& p, const Var<T>& c) {
      return mul_row_vector(c, tape.param(p));
    };
    Var<T> i, f, g, o;
    {
      auto scope = tape.scope("i");
      i = sigmoid(part(0) + peep(p_i, s[1]));
    }
    {
      auto scope = tape.scope("f");
      f = sigmoid(part(1) + peep(p_f, s[1]));
    }
    {
      auto scope = tape.scope("g");
      g = tanh(part(2));
    }
    const Var<T> c = f * s[1] + i * g;
    {
      auto scope = tape.scope("o");
      o = sigmoid(part(3) + peep(p_o, c));
    }
    return {o * tanh(c), c};
  }

  std::array<rwd::Index, 2> state_sizes() const {
    return {this->hidden_size(), this->hidden_size()};
  }
  std::vector<rwd::Parameter<T>*> named_parameters() {
    auto all = rwd::layers::RecurrentWeights<T>::named_parameters();
    all.insert(all.end(), {&p_i, &p_f, &p_o});
    return all;
  }

  rwd::Parameter<T> p_i, p_f, p_o;
};
