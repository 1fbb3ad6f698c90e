// The LSTM cell, PyTorch's nn.LSTMCell, gate order i, f, g, o:
//
//   z = x·W_ihᵀ + b_ih + h·W_hhᵀ + b_hh          (batch × 4H, columns [i | f | g | o])
//   i = σ(z[:, 0:H])       input gate
//   f = σ(z[:, H:2H])      forget gate
//   g = tanh(z[:, 2H:3H])  cell input
//   o = σ(z[:, 3H:4H])     output gate
//   c' = f ⊙ c + i ⊙ g
//   h' = o ⊙ tanh(c')
//
// W_ih: 4H×input, W_hh: 4H×H, b_ih, b_hh: 1×4H. State {h, c}. Each gate is recorded under its
// own scope (i, f, g, o), so graphs and diagnostics can name `layer0/fwd/t3/f`.
#pragma once

#include <rewind/layers/cell.hpp>

namespace rwd::layers {

template <class T>
class LstmCell : public RecurrentWeights<T> {
 public:
  using Scalar = T;
  using State = std::array<Var<T>, 2>;  // {h, c}
  struct Options {
    Index input = 0;
    Index hidden = 0;
    bool bias = true;
    std::string suffix;
    /// Added to the forget gate's part of bias_ih at initialisation. 0 is PyTorch's init;
    /// 1 is Keras' unit_forget_bias (Gers et al. 2000, Jozefowicz et al. 2015): the forget
    /// gate starts open, so gradients travel much further back through c.
    double forget_bias = 0;
  };

  LstmCell(const Options& o, Rng& rng)
      : RecurrentWeights<T>(o.input, o.hidden, 4, o.bias, o.suffix, rng), options_(o) {
    if (o.forget_bias != 0) {
      if (!o.bias) throw UsageError("LstmCell: forget_bias needs bias = true");
      this->bias_ih.value.middleCols(o.hidden, o.hidden).array() += static_cast<T>(o.forget_bias);
    }
  }

  State step(Tape<T>& tape, const Var<T>& x, const State& s) {
    const Index hs = options_.hidden;
    detail::check_input("LstmCell", x.shape(), options_.input);
    detail::check_state("LstmCell", "hidden state", s[0].shape(), x.rows(), hs);
    detail::check_state("LstmCell", "cell state", s[1].shape(), x.rows(), hs);
    const Var<T> z = this->both_parts(tape, x, s[0]);
    const auto gate = [&](const char* name, Index k, bool squash) {
      auto scope = tape.scope(name);
      const Var<T> part = slice_cols(z, k * hs, (k + 1) * hs);
      return squash ? sigmoid(part) : tanh(part);
    };
    const Var<T> i = gate("i", 0, true), f = gate("f", 1, true), g = gate("g", 2, false),
                 o = gate("o", 3, true);
    const Var<T> kept = mul(f, s[1]), written = mul(i, g);  // in this order on every compiler
    const Var<T> c = add(kept, written);
    return {mul(o, tanh(c)), c};
  }

  std::array<Index, 2> state_sizes() const { return {options_.hidden, options_.hidden}; }
  const Options& options() const { return options_; }

 private:
  Options options_;
};

}  // namespace rwd::layers
