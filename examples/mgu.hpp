// A minimal gated unit (Zhou et al., 2016) as a custom cell, written only against the public
// API. One gate does the work of the GRU's two:
//
//   f  = σ(x·W_fᵀ + h·U_fᵀ + b_f)
//   h̃ = tanh(x·W_hᵀ + (f ⊙ h)·U_hᵀ + b_h)
//   h' = (1 - f) ⊙ h + f ⊙ h̃  =  h + f ⊙ (h̃ - h)
#pragma once

#include <rewind/rewind.hpp>

template <class T>
class MguCell {
 public:
  using Scalar = T;
  using State = std::array<rwd::Var<T>, 1>;  // {h}

  MguCell(rwd::Index input, rwd::Index hidden, rwd::layers::Rng& rng) {
    using rwd::layers::uniform;
    const double b = 1.0 / std::sqrt(static_cast<double>(hidden));
    w_f = {"w_f", uniform<T>(hidden, input, b, rng)};
    u_f = {"u_f", uniform<T>(hidden, hidden, b, rng)};
    b_f = {"b_f", uniform<T>(1, hidden, b, rng)};
    w_h = {"w_h", uniform<T>(hidden, input, b, rng)};
    u_h = {"u_h", uniform<T>(hidden, hidden, b, rng)};
    b_h = {"b_h", uniform<T>(1, hidden, b, rng)};
  }

  State step(rwd::Tape<T>& tape, const rwd::Var<T>& x, const State& s) {
    using namespace rwd;
    const Var<T>& h = s[0];
    Var<T> f, candidate;
    {
      auto scope = tape.scope("f");
      f = sigmoid(add_row_vector(matmul_nt(x, tape.param(w_f)) + matmul_nt(h, tape.param(u_f)),
                                 tape.param(b_f)));
    }
    {
      auto scope = tape.scope("h~");
      candidate = tanh(add_row_vector(
          matmul_nt(x, tape.param(w_h)) + matmul_nt(f * h, tape.param(u_h)), tape.param(b_h)));
    }
    return {h + f * (candidate - h)};
  }

  std::array<rwd::Index, 1> state_sizes() const { return {u_f.value.rows()}; }
  rwd::Index input_size() const { return w_f.value.cols(); }
  std::vector<rwd::Parameter<T>*> named_parameters() {
    return {&w_f, &u_f, &b_f, &w_h, &u_h, &b_h};
  }

  rwd::Parameter<T> w_f, u_f, b_f, w_h, u_h, b_h;
};
