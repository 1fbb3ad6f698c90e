// What every sweep uses (private header): an op's backward on a node, two threads for a large
// rowwise op, zeros for absent tangents, and anomaly mode's finiteness check.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "../parallel.hpp"
#include "rewind/autograd/errors.hpp"
#include "rewind/autograd/recording.hpp"

namespace rwd::detail {

/// One vectorised pass: x·0 is 0 for every finite x and NaN for NaN and ±Inf, and NaN survives
/// the sum. Anomaly mode checks every tensor; with Eigen's allFinite() it doubled an LSTM
/// training step (10.5 -> 22.7 ms, tools/bench), with this it costs 6% (10.2 -> 10.8 ms).
template <class T>
bool all_finite(const ConstMap<T>& m) {
  return !std::isnan((m.array() * T(0)).sum());
}

/// Anomaly mode: throws NumericalError naming the op, its scope, what is not finite in `t` and
/// the ranges of the op's inputs, unless t is finite.
template <class T>
void check_finite(const Recording<T>& rec, std::span<const TensorRef<T>> inputs,
                  std::string_view op, std::uint32_t scope, std::string_view what,
                  const TensorRef<T>& t);

/// Throws UsageError unless `node` is an input leaf (Tape::input): `who: node 3 is an op tanh, not
/// an input: <where>`, where says what may be seeded instead.
template <class T>
void require_input(const Recording<T>& rec, std::uint32_t node, std::string_view who,
                   std::string_view where) {
  const Node<T>& n = rec.nodes[node];
  if (std::holds_alternative<ops::Input>(n.op)) return;
  throw UsageError(fmt::format("{}: node {} is {} {}, not an input: {}", who, node,
                               n.num_inputs == 0 ? "a" : "an op", rec.op_name(node), where));
}

/// The op's row_local_inputs() (registry.hpp), for the parallel sweep.
inline std::uint8_t row_local_of(const Op& op) {
  return std::visit([](const auto& o) { return row_local_inputs<std::decay_t<decltype(o)>>(); },
                    op);
}

/// A rowwise op on many elements, in a REWIND_OPENMP build with 2+ threads: f(r0, r1, inputs,
/// slots) on two threads, each over half of the rows, with `parts` as the halves' views. False
/// (nothing run) otherwise.
template <class T, class F>
bool split_rows(std::vector<TensorRef<T>>& parts, Index rows, Index cols, const TensorRef<T>* in,
                const TensorRef<T>* slots, int count, F&& f) {
  // Below this many elements an elementwise op takes a few microseconds: waking the second
  // thread would cost about as much as it saves (16 384 made two threads slower than one at
  // hidden 128, where a step's gate tensors are 32x512).
  constexpr Index kMinElements = 65536;
  if (rows < 2 || rows * cols < kMinElements || !two_threads()) return false;
  const auto n = static_cast<std::size_t>(count);
  parts.resize(4 * n);  // per half: the inputs' rows, then the gradient slots' rows
  const Index half = rows / 2;
  for (int t = 0; t < 2; ++t) {
    const Index r0 = t == 0 ? 0 : half;
    const Index r1 = t == 0 ? half : rows;
    for (std::size_t k = 0; k < n; ++k) {
      const auto part = [&](const TensorRef<T>& r) {
        return TensorRef<T>{r.data == nullptr ? nullptr : r.data + r0 * r.cols, r1 - r0, r.cols,
                            r.packed};
      };
      parts[2 * n * static_cast<std::size_t>(t) + k] = part(in[k]);
      if (slots != nullptr) parts[2 * n * static_cast<std::size_t>(t) + n + k] = part(slots[k]);
    }
  }
  on_two_threads([&](int t) {
    const TensorRef<T>* mine = parts.data() + 2 * n * static_cast<std::size_t>(t);
    f(t == 0 ? Index{0} : half, t == 0 ? half : rows, mine, mine + n);
  });
  return true;
}

/// n's backward with incoming gradient gy (n's gradient, or its tangent in a second-order
/// sweep) into `slots` as `modes` say; a large rowwise op on two threads (split_rows). Defined
/// once, in reverse.cpp (which inlines it), for float and double: every op's backward rule is
/// compiled there, not again in each sweep that calls it.
template <class T>
void call_backward(const Node<T>& n, const TensorRef<T>* in, const TensorRef<T>* slots,
                   const GradMode* modes, const T* gy, std::vector<TensorRef<T>>& parts);

/// Rows [r0, r1) of n's backward (the two-thread sweep's share of a rowwise op, or all of an
/// op's rows): inputs `in` and gradient slots as the caller cut them. Also defined in
/// reverse.cpp, so the backward rules are compiled in one file only.
template <class T>
void call_backward_rows(const Node<T>& n, Index r0, Index r1, const TensorRef<T>* in,
                        const TensorRef<T>* slots, const GradMode* modes);

/// `size` zeros, valid until the next call (a tangent that no seed reached).
template <class T>
class Zeros {
 public:
  const T* get(std::size_t size) {
    if (z_.size() < size) z_.resize(size);  // new elements are zero; none is ever written
    return z_.data();
  }
  std::size_t capacity_bytes() const { return z_.capacity() * sizeof(T); }

 private:
  std::vector<T> z_;
};

template <class E>
std::size_t bytes_of(const std::vector<E>& v) {
  return v.capacity() * sizeof(E);
}

}  // namespace rwd::detail
