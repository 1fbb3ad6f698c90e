// The GRU cell, PyTorch's nn.GRUCell, gate order r, z, n:
//
//   a = x·W_ihᵀ + b_ih                   (batch × 3H, columns [r | z | n])
//   b = h·W_hhᵀ + b_hh
//   r = σ(a[:, 0:H] + b[:, 0:H])         reset gate
//   z = σ(a[:, H:2H] + b[:, H:2H])       update gate
//   n = tanh(a[:, 2H:3H] + r ⊙ b[:, 2H:3H])   candidate; r multiplies W_hn·h + b_hn
//   h' = (1 - z) ⊙ n + z ⊙ h  =  n + z ⊙ (h - n)
//
// W_ih: 3H×input, W_hh: 3H×H, b_ih, b_hh: 1×3H. State {h}. Gates under scopes r, z, n.
#pragma once

#include <rewind/layers/cell.hpp>

namespace rwd::layers {

template <class T>
class GruCell : public RecurrentWeights<T> {
 public:
  using Scalar = T;
  using State = std::array<Var<T>, 1>;  // {h}
  struct Options {
    Index input = 0;
    Index hidden = 0;
    bool bias = true;
    std::string suffix;
  };

  GruCell(const Options& o, Rng& rng)
      : RecurrentWeights<T>(o.input, o.hidden, 3, o.bias, o.suffix, rng), options_(o) {}

  State step(Tape<T>& tape, const Var<T>& x, const State& s) {
    const Index hs = options_.hidden;
    detail::check_input("GruCell", x.shape(), options_.input);
    detail::check_state("GruCell", "hidden state", s[0].shape(), x.rows(), hs);
    // One recording per declaration, so the tape's order (node numbers, graphs) is the same on
    // every compiler: the order of evaluating a call's arguments is not.
    const Var<T> a = this->input_part(tape, x), b = this->hidden_part(tape, s[0]);
    const auto part = [&](const Var<T>& v, Index k) { return slice_cols(v, k * hs, (k + 1) * hs); };
    Var<T> r, z, n;
    {
      auto scope = tape.scope("r");
      const Var<T> ar = part(a, 0), br = part(b, 0);
      r = sigmoid(add(ar, br));
    }
    {
      auto scope = tape.scope("z");
      const Var<T> az = part(a, 1), bz = part(b, 1);
      z = sigmoid(add(az, bz));
    }
    {
      auto scope = tape.scope("n");
      const Var<T> an = part(a, 2), bn = part(b, 2);
      n = tanh(add(an, mul(r, bn)));
    }
    return {add(n, mul(z, sub(s[0], n)))};
  }

  std::array<Index, 1> state_sizes() const { return {options_.hidden}; }
  const Options& options() const { return options_; }

 private:
  Options options_;
};

}  // namespace rwd::layers
