// The reverse sweep (private header): from the seeded nodes down to the leaves, each node's op
// returns its inputs' gradients into the slots it is handed (Slots), a weight's product terms
// are collected and run together at the end (ProductCollector), and on two threads the
// ParallelReverse plan runs instead of the one-thread loop. A second-order sweep runs the
// SecondOrderSweep after each node's backward. Afterwards the parameters' gradients are added
// into Parameter::grad.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "parallel_reverse.hpp"
#include "products.hpp"
#include "rewind/autograd/tape.hpp"
#include "second_order.hpp"
#include "slots.hpp"

namespace rwd::detail {

template <class T>
class ReverseSweep {
 public:
  /// Sweeps from a 1x1 loss (checked by the caller). `second`: also the gradient tangents.
  void backward(Recording<T>& rec, std::uint32_t loss, const BackwardOptions& options, bool anomaly,
                SecondOrderSweep<T>& second, const TangentSweep<T>& tangent);
  /// Sweeps from seeds (a vector-Jacobian product; the nodes are checked by the caller).
  void backward(Recording<T>& rec, std::span<const GradSeed<T>> seeds,
                const BackwardOptions& options, bool anomaly);
  /// Node i's gradient for reading: zeros (kept, so the view stays valid) where none flowed.
  T* grad_of(Recording<T>& rec, std::uint32_t i);
  std::optional<ConstMap<T>> grad(const Recording<T>& rec, std::size_t i) const;
  /// What node i's op sent to its k-th input in the latest backward (Tape::contribution).
  Matrix<T> contribution(const Recording<T>& rec, std::size_t i, int k);
  std::uint32_t backward_epoch() const { return backward_epoch_; }
  std::size_t last_loss() const { return last_loss_; }
  int threads() const { return threads_; }
  void clear() {
    grads_.reset();
    backward_epoch_ = 0;
  }
  std::size_t capacity_bytes() const;
  std::size_t parallel_bytes() const { return parallel_.capacity_bytes(); }

 private:
  // A new epoch: every node's gradient from before is stale.
  void begin();
  // The sweep from node `top` down, once the seeds hold their gradients.
  void sweep(Recording<T>& rec, std::size_t top, const BackwardOptions& options, bool anomaly,
             SecondOrderSweep<T>* second, const TangentSweep<T>* tangent);
  // Anomaly mode: n's returned gradients are finite, or NumericalError.
  void check_gradients(const Recording<T>& rec, const Node<T>& n, std::size_t i) const;
  // Adds the parameters' gradients (and gradient tangents) into the Parameters.
  void accumulate(const Recording<T>& rec, const SecondOrderSweep<T>* second) const;
  GradTarget<T> target(Recording<T>& rec) { return GradTarget<T>{rec, grads_, epoch_}; }

  Arena<T> grads_;
  std::uint32_t epoch_ = 0;
  std::uint32_t backward_epoch_ = 0;  // epoch of this recording's latest backward, 0 if none
  std::size_t last_loss_ = 0;
  int threads_ = 1;
  std::vector<TensorRef<T>> in_, parts_;
  Slots<T> slots_;
  ProductCollector<T> products_;
  ParallelReverse<T> parallel_;
};

extern template class ReverseSweep<float>;
extern template class ReverseSweep<double>;

}  // namespace rwd::detail
