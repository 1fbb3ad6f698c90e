// What makes a type a recurrent cell, and the pieces the built-in cells are made of.
//
// A cell is a value type: parameters and options, and a step
//   State step(Tape<T>& tape, const Var<T>& x, const State& state);
// made of primitive ops (no hand-written backward). State is std::array<Var<T>, N>; state[0] is
// the cell's output h (what the layer emits each step), the rest is private to the cell (an
// LSTM's c). `state_sizes()` gives each state tensor's width, `input_size()` the width of x,
// `named_parameters()` every parameter it records.
// Any type of that shape works with unroll, Sequence (stacked, bidirectional, variable-length),
// gradcheck and the graphs: the built-in cells use nothing a user cannot.
#pragma once

#include <array>
#include <concepts>
#include <rewind/autograd/functional.hpp>
#include <rewind/layers/init.hpp>
#include <rewind/layers/module.hpp>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace rwd::layers {

// The concept in parts, so that a type that falls short fails on the part it lacks (the
// compiler names the unsatisfied concept and the expression).
template <class C>
concept CellTypes = requires {
  typename C::Scalar;  // float or double
  typename C::State;   // std::array<Var<Scalar>, N>, state[0] = h
};
template <class C>
concept CellStep = requires(C& cell, Tape<typename C::Scalar>& tape,
                            const Var<typename C::Scalar>& x, const typename C::State& s) {
  { cell.step(tape, x, s) } -> std::same_as<typename C::State>;
};
template <class C>
concept CellSizes = requires(const C& cell) {
  { cell.state_sizes() } -> std::same_as<std::array<Index, std::tuple_size_v<typename C::State>>>;
  { cell.input_size() } -> std::convertible_to<Index>;
};
/// Every parameter the cell records, with its name (Sequence makes the names unique per layer
/// and direction; weight files, optimizers and gradient checks use them).
template <class C>
concept CellParameters = requires(C& cell) {
  { cell.named_parameters() } -> std::same_as<std::vector<Parameter<typename C::Scalar>*>>;
};

/// A recurrent cell: step, sizes and named parameters (see the file comment).
template <class C>
concept RecurrentCell = CellTypes<C> && CellStep<C> && CellSizes<C> && CellParameters<C>;

/// The all-zero state for a batch (PyTorch's default h0, c0), recorded as constants.
template <RecurrentCell C>
typename C::State zero_state(const C& cell, Tape<typename C::Scalar>& tape, Index batch) {
  using T = typename C::Scalar;
  typename C::State s;
  const auto sizes = cell.state_sizes();
  for (std::size_t k = 0; k < s.size(); ++k) s[k] = tape.constant(Matrix<T>::Zero(batch, sizes[k]));
  return s;
}

/// The same state with the gradient stopped: carry it into the next chunk of truncated BPTT.
template <class T, std::size_t N>
std::array<Var<T>, N> detach_state(const std::array<Var<T>, N>& s) {
  std::array<Var<T>, N> out;
  for (std::size_t k = 0; k < N; ++k) out[k] = detach(s[k]);
  return out;
}

namespace detail {

/// `<layer>: input has 7 features, expected 5`
inline void check_input(std::string_view layer, Shape x, Index expected) {
  if (x.cols != expected) {
    throw ShapeError(
        fmt::format("{}: input has {} features, expected {}", layer, x.cols, expected));
  }
}

/// `<layer>: hidden state is 3x4, expected 3x5 (batch 3, hidden 5)`
inline void check_state(std::string_view layer, std::string_view what, Shape s, Index batch,
                        Index width) {
  if (s != Shape{batch, width}) {
    throw ShapeError(fmt::format("{}: {} is {}, expected {}x{} (batch {}, size {})", layer, what, s,
                                 batch, width, batch, width));
  }
}

}  // namespace detail

/// The four tensors of a PyTorch recurrent layer, for `gates` stacked gates of width `hidden`:
/// weight_ih (gates·hidden × input), weight_hh (gates·hidden × hidden), bias_ih and bias_hh
/// (1 × gates·hidden), named with a suffix (`_l0`, `_l1_reverse`, or none for a lone cell) and
/// drawn from U(-1/√hidden, 1/√hidden) as PyTorch does. Built-in cells derive from it; a
/// custom cell may too.
template <class T>
struct RecurrentWeights {
  RecurrentWeights(Index input, Index hidden, Index gates, bool bias, const std::string& suffix,
                   Rng& rng) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(hidden));
    weight_ih = Parameter<T>("weight_ih" + suffix, uniform<T>(gates * hidden, input, bound, rng));
    weight_hh = Parameter<T>("weight_hh" + suffix, uniform<T>(gates * hidden, hidden, bound, rng));
    if (bias) {
      bias_ih = Parameter<T>("bias_ih" + suffix, uniform<T>(1, gates * hidden, bound, rng));
      bias_hh = Parameter<T>("bias_hh" + suffix, uniform<T>(1, gates * hidden, bound, rng));
    }
  }

  /// x·W_ihᵀ + b_ih, all gates at once (batch × gates·hidden).
  Var<T> input_part(Tape<T>& tape, const Var<T>& x) { return affine(tape, x, weight_ih, bias_ih); }
  /// h·W_hhᵀ + b_hh, all gates at once.
  Var<T> hidden_part(Tape<T>& tape, const Var<T>& h) { return affine(tape, h, weight_hh, bias_hh); }
  /// input_part + hidden_part, recorded in that order on every compiler (the order of evaluating
  /// a call's arguments is not fixed, and node numbers and graphs follow the recording order).
  Var<T> both_parts(Tape<T>& tape, const Var<T>& x, const Var<T>& h) {
    const Var<T> in = input_part(tape, x);
    return add(in, hidden_part(tape, h));
  }

  bool has_bias() const { return bias_ih.size() > 0; }
  Index input_size() const { return weight_ih.value.cols(); }
  Index hidden_size() const { return weight_hh.value.cols(); }

  /// weight_ih, weight_hh, bias_ih, bias_hh: PyTorch's order.
  std::vector<Parameter<T>*> named_parameters() {
    if (!has_bias()) return {&weight_ih, &weight_hh};
    return {&weight_ih, &weight_hh, &bias_ih, &bias_hh};
  }

  Parameter<T> weight_ih, weight_hh, bias_ih, bias_hh;

 private:
  // Records W before b, left to right, whatever order the compiler evaluates arguments in.
  Var<T> affine(Tape<T>& tape, const Var<T>& x, Parameter<T>& w, Parameter<T>& b) {
    const Var<T> wv = tape.param(w);
    return b.size() > 0 ? rwd::affine(x, wv, tape.param(b)) : matmul_nt(x, wv);
  }
};

}  // namespace rwd::layers
