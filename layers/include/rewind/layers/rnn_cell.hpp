// The Elman RNN cell, PyTorch's nn.RNNCell:
//
//   h' = act(x·W_ihᵀ + b_ih + h·W_hhᵀ + b_hh),   act = tanh (default) or relu
//
// W_ih: hidden×input, W_hh: hidden×hidden, b_ih, b_hh: 1×hidden. State {h}.
#pragma once

#include <rewind/layers/cell.hpp>

namespace rwd::layers {

enum class Activation { kTanh, kRelu };

template <class T>
class RnnCell : public RecurrentWeights<T> {
 public:
  using Scalar = T;
  using State = std::array<Var<T>, 1>;  // {h}
  struct Options {
    Index input = 0;
    Index hidden = 0;
    Activation activation = Activation::kTanh;
    bool bias = true;
    std::string suffix;  ///< parameter name suffix, e.g. "_l0"
  };

  RnnCell(const Options& o, Rng& rng)
      : RecurrentWeights<T>(o.input, o.hidden, 1, o.bias, o.suffix, rng), options_(o) {}

  State step(Tape<T>& tape, const Var<T>& x, const State& s) {
    detail::check_input("RnnCell", x.shape(), options_.input);
    detail::check_state("RnnCell", "hidden state", s[0].shape(), x.rows(), options_.hidden);
    Var<T> pre = this->both_parts(tape, x, s[0]);
    return {options_.activation == Activation::kTanh ? tanh(pre) : relu(pre)};
  }

  std::array<Index, 1> state_sizes() const { return {options_.hidden}; }
  const Options& options() const { return options_; }

 private:
  Options options_;
};

}  // namespace rwd::layers
