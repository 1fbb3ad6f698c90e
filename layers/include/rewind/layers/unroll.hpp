// Running a cell over a sequence. Backpropagation through time is the tape's reverse sweep
// over what unroll records; nothing here has a backward of its own.
#pragma once

#include <rewind/layers/cell.hpp>
#include <span>
#include <string>
#include <vector>

namespace rwd::layers {

struct UnrollOptions {
  /// Run from the last step to the first (the backward direction of a bidirectional layer).
  bool reverse = false;
  /// Per batch row, the sequence's own length (PyTorch's packed sequences). Empty: all rows run
  /// every step. Steps t >= length leave that row's state unchanged and output zeros, so the
  /// final state of each row is taken at its own last step, and a reverse run starts there.
  std::span<const std::int32_t> lengths;
};

namespace detail {

/// One step of unroll: the cell's step (its errors located at the current scope) and, for a
/// packed batch, rows at or past their length keeping their state and outputting `zeros`
/// (recorded here if it is not valid). Returns the output.
template <RecurrentCell C>
Var<typename C::Scalar> masked_step(C& cell, Tape<typename C::Scalar>& tape,
                                    const Var<typename C::Scalar>& x, typename C::State& state,
                                    Index t, std::span<const std::int32_t> lengths,
                                    Var<typename C::Scalar>& zeros) {
  using T = typename C::Scalar;
  typename C::State next;
  try {
    next = cell.step(tape, x, state);
  } catch (const ShapeError& e) {  // a cell's own checks: say where (ops already do)
    throw ShapeError(with_scope(e.what(), tape.current_scope()));
  } catch (const UsageError& e) {
    throw UsageError(with_scope(e.what(), tape.current_scope()));
  }
  if (!lengths.empty()) {
    const Index batch = x.rows();
    Matrix<T> m(batch, 1);
    bool all = true;
    for (Index b = 0; b < batch; ++b) {
      m(b, 0) = t < lengths[static_cast<std::size_t>(b)] ? T(1) : T(0);
      all = all && m(b, 0) == T(1);
    }
    if (!all) {  // rows past their end keep their state and output zeros
      if (!zeros.valid()) zeros = tape.constant(Matrix<T>::Zero(batch, cell.state_sizes()[0]));
      const Var<T> mask = tape.constant(m, "length_mask");
      for (std::size_t j = 0; j < next.size(); ++j) next[j] = where(mask, next[j], state[j]);
      state = next;
      return where(mask, next[0], zeros);
    }
  }
  state = next;
  return state[0];
}

/// ShapeError unless `lengths` is empty or has one length in [0, steps] per batch row.
inline void check_lengths(std::string_view who, std::span<const std::int32_t> lengths, Index batch,
                          Index steps) {
  if (lengths.empty()) return;
  if (static_cast<Index>(lengths.size()) != batch) {
    throw ShapeError(fmt::format("{}: {} lengths for a batch of {}", who, lengths.size(), batch));
  }
  for (std::size_t b = 0; b < lengths.size(); ++b) {
    if (lengths[b] < 0 || lengths[b] > steps) {
      throw ShapeError(fmt::format("{}: length {} of batch row {} is outside [0, {}]", who,
                                   lengths[b], b, steps));
    }
  }
}

}  // namespace detail

template <RecurrentCell C>
struct Unrolled {
  std::vector<Var<typename C::Scalar>> outputs;  ///< h at each step t (indexed by time)
  typename C::State state;                       ///< the final state
};

/// Runs `cell` over xs[0..T) (each batch×input) from `state`, each step under scope "t<k>".
template <RecurrentCell C>
Unrolled<C> unroll(C& cell, Tape<typename C::Scalar>& tape,
                   std::span<const Var<typename C::Scalar>> xs, typename C::State state,
                   const UnrollOptions& options = {}) {
  using T = typename C::Scalar;
  const auto steps = static_cast<Index>(xs.size());
  Unrolled<C> out;
  out.outputs.resize(xs.size());
  if (steps == 0) {
    out.state = state;
    return out;
  }
  const Index batch = xs[0].rows();
  detail::check_lengths("unroll", options.lengths, batch, steps);
  Var<T> zeros;
  if (!options.lengths.empty())
    zeros = tape.constant(Matrix<T>::Zero(batch, cell.state_sizes()[0]));
  for (Index k = 0; k < steps; ++k) {
    const Index t = options.reverse ? steps - 1 - k : k;
    auto scope = tape.scope(fmt::format("t{}", t));
    out.outputs[static_cast<std::size_t>(t)] = detail::masked_step(
        cell, tape, xs[static_cast<std::size_t>(t)], state, t, options.lengths, zeros);
  }
  out.state = state;
  return out;
}

}  // namespace rwd::layers
