// The hand-wired LSTM memory cell of the classic lecture, as a custom cell with its weights set
// by hand. One unit; sigmoid gates, but the identity in place of tanh for the cell input and the
// output, so values are stored as they are. Input x = [value, write/erase, read]:
//   i = σ(100·x₂ - 10)   write when x₂ = +1     f = σ(100·x₂ + 10)   keep unless x₂ = -1
//   o = σ(100·x₃ - 10)   read when x₃ = 1       g = x₁
//   c' = f·c + i·g       h' = o·c'
#pragma once

#include <rewind/rewind.hpp>

template <class T>
class MemoryCell {
 public:
  using Scalar = T;
  using State = std::array<rwd::Var<T>, 2>;  // {h, c}

  MemoryCell() {
    // Rows: the pre-activations of i, f, g, o; columns: x₁, x₂, x₃.
    weight.value = (rwd::Matrix<T>(4, 3) << 0, 100, 0,  //
                    0, 100, 0,                          //
                    1, 0, 0,                            //
                    0, 0, 100)
                       .finished();
    bias.value = (rwd::Matrix<T>(1, 4) << -10, 10, 0, -10).finished();
  }

  State step(rwd::Tape<T>& tape, const rwd::Var<T>& x, const State& s) {
    using namespace rwd;
    const Var<T> z = add_row_vector(matmul_nt(x, tape.param(weight)), tape.param(bias));
    const auto gate = [&](const char* name, Index k, bool squash) {
      auto scope = tape.scope(name);
      const Var<T> part = slice_cols(z, k, k + 1);
      return squash ? sigmoid(part) : part;
    };
    const Var<T> i = gate("i", 0, true), f = gate("f", 1, true), g = gate("g", 2, false),
                 o = gate("o", 3, true);
    const Var<T> c = f * s[1] + i * g;
    return {o * c, c};
  }

  std::array<rwd::Index, 2> state_sizes() const { return {1, 1}; }
  rwd::Index input_size() const { return 3; }
  std::vector<rwd::Parameter<T>*> named_parameters() { return {&weight, &bias}; }

  rwd::Parameter<T> weight{"weight", rwd::Matrix<T>::Zero(4, 3)};
  rwd::Parameter<T> bias{"bias", rwd::Matrix<T>::Zero(1, 4)};
};
