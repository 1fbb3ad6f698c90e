// The second-order reverse sweep (private header): every node's gradient tangent ġ, the
// derivative of its gradient along the tangents of the latest jvp. It runs inside the reverse
// sweep, node by node after the node's first-order backward (ADOL-C's hos_ov_reverse, CppAD's
// Reverse(2)): ġx = backward(x, y, ġy) + ∂backward/∂x · ẋ (the op's second-order term).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "slots.hpp"
#include "tangent.hpp"

namespace rwd::detail {

template <class T>
class SecondOrderSweep {
 public:
  /// A new second-order sweep at the reverse sweep's `epoch`.
  void begin(const Recording<T>& rec, std::uint32_t epoch);
  /// Node i's inputs' gradient tangents, after its first-order backward (in: its inputs).
  void node(const Recording<T>& rec, std::size_t i, const std::vector<TensorRef<T>>& in,
            const TangentSweep<T>& tangent);
  /// Node i's gradient tangent or null.
  const T* at(std::size_t i) const { return gtan_[i]; }
  /// Whether the backward of `backward_epoch` was a second-order one.
  bool current(std::uint32_t backward_epoch) const {
    return backward_epoch != 0 && epoch_ == backward_epoch;
  }
  /// Node i's gradient tangent, zeros where none reached it (kept, so the view stays valid).
  const T* grad_tangent_of(const Recording<T>& rec, std::uint32_t i, std::string_view who,
                           std::uint32_t backward_epoch);
  std::optional<ConstMap<T>> grad_tangent(const Recording<T>& rec, std::size_t i,
                                          std::uint32_t backward_epoch) const;
  void clear();
  std::size_t capacity_bytes() const;

 private:
  // The op's second-order term, for ops without a fused sweep rule.
  void term(const Recording<T>& rec, const Node<T>& n, std::size_t i,
            const std::vector<TensorRef<T>>& in, const TangentSweep<T>& tangent);
  // The backward of ġy and the term in one rule (elementwise ops, second_order_sweep): false
  // when the op has none.
  bool fused(const Recording<T>& rec, const Node<T>& n, std::size_t i,
             const std::vector<TensorRef<T>>& in, const TangentSweep<T>& tangent);
  BufferTarget<T> target() { return BufferTarget<T>{gtan_, grad_tangents_, 1, false}; }

  std::vector<T*> gtan_;  // per node: its gradient's tangent (null: zero)
  Arena<T> grad_tangents_;
  std::uint32_t epoch_ = 0;  // epoch of the latest second-order backward
  Slots<T> slots_;
  std::vector<TensorRef<T>> tin_, parts_;
  Zeros<T> zeros_;
};

extern template class SecondOrderSweep<float>;
extern template class SecondOrderSweep<double>;

}  // namespace rwd::detail
