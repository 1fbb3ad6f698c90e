// Running a cell over a sequence. Backpropagation through time is the tape's reverse sweep
// over what unroll records; nothing here has a backward of its own.
#pragma once

#include <cxxabi.h>

#include <cstdlib>
#include <memory>
#include <rewind/layers/cell.hpp>
#include <span>
#include <string>
#include <typeinfo>
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

/// The cell's type as written (`JanetCell<double>`), for errors.
template <class C>
std::string cell_name() {
  int status = 0;
  const std::unique_ptr<char, void (*)(void*)> name(
      abi::__cxa_demangle(typeid(C).name(), nullptr, nullptr, &status), std::free);
  std::string s = status == 0 && name ? name.get() : typeid(C).name();
  for (const std::string_view ns : {"rwd::layers::", "rwd::"}) {
    for (auto at = s.find(ns); at != std::string::npos; at = s.find(ns)) s.erase(at, ns.size());
  }
  return s;
}

/// Before anything is recorded: every x is batch × the cell's input_size() and every initial
/// state tensor batch × its state size; otherwise a ShapeError naming the cell, the step or
/// state and both shapes (not the first product's inner dimensions, steps later).
template <RecurrentCell C>
void check_sequence(const C& cell, const Tape<typename C::Scalar>& tape,
                    std::span<const Var<typename C::Scalar>> xs, const typename C::State& state) {
  const Index batch = xs[0].rows();
  const Index input = cell.input_size();
  const auto fail = [&](const std::string& what) {
    const std::string message = fmt::format("unroll of {}: {}", cell_name<C>(), what);
    throw ShapeError(tape.current_scope().empty() ? message
                                                  : with_scope(message, tape.current_scope()));
  };
  for (std::size_t t = 0; t < xs.size(); ++t) {
    if (!xs[t].valid()) fail(fmt::format("x at t{} is not a recorded value", t));
    if (xs[t].cols() != input || xs[t].rows() != batch) {
      fail(fmt::format("x at t{} is {}, expected {}x{} (batch {}, input_size() {})", t,
                       xs[t].shape(), batch, input, batch, input));
    }
  }
  const auto sizes = cell.state_sizes();
  for (std::size_t k = 0; k < sizes.size(); ++k) {
    if (!state[k].valid()) fail(fmt::format("initial state[{}] is not a recorded value", k));
    if (state[k].shape() != Shape{batch, sizes[k]}) {
      fail(fmt::format("initial state[{}] is {}, expected {}x{} (batch {}, state_sizes()[{}] {})",
                       k, state[k].shape(), batch, sizes[k], batch, k, sizes[k]));
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
  detail::check_sequence(cell, tape, xs, state);
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
