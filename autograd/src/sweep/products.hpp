// A weight's gradient terms, collected through a sweep and run together at its end (private
// header).
//
// The one-thread first-order sweep collects a leaf's product terms (kProductGradientInputs: a
// weight's gradient, one product per use) in sweep order instead of running them at once, and
// runs each leaf's together (detail::gradient_products: a large weight's gradient is then read
// and written once a sweep, tile by tile, not once per use); same bits either way. A
// contribution of any other kind to a leaf with collected terms runs them first, so every leaf's
// gradient is summed in sweep order. The parallel sweep collects its shared leaves' terms here
// too and runs them on both threads, each its share.
#pragma once

#include <cstdint>
#include <vector>

#include "rewind/autograd/gemm.hpp"
#include "slots.hpp"

namespace rwd::detail {

template <class T>
class ProductCollector {
 public:
  /// Adds n's product term for input k (operands from the op's product_operands; x: n's
  /// inputs), assigned or added by `mode`.
  void collect(const Recording<T>& rec, const Node<T>& n, const Inputs<T>& x, int k, GradMode mode);
  /// Takes n's product terms out of `slots` (after Slots::prepare; in: n's inputs), and runs
  /// what is collected when another of n's contributions goes to a leaf with terms.
  void defer(const Recording<T>& rec, const Node<T>& n, const std::vector<TensorRef<T>>& in,
             Slots<T>& slots);
  /// Groups the collected terms by leaf and runs them.
  void flush(const Recording<T>& rec);
  /// Moves the collected terms into one run per leaf, for run().
  void group();
  /// Runs the grouped terms (under the calling thread's detail::ProductShare).
  void run(const Recording<T>& rec) const;
  bool empty() const { return pending_.empty(); }
  void reset() {
    pending_.clear();
    pending_leaves_.clear();
  }
  std::size_t capacity_bytes() const {
    return bytes_of(pending_) + bytes_of(pending_leaves_) + bytes_of(terms_) +
           bytes_of(term_groups_);
  }

 private:
  struct PendingTerm {
    std::uint32_t leaf = 0;
    GradientTerm<T> term;
  };
  struct TermGroup {
    std::uint32_t leaf = 0;
    std::size_t begin = 0, end = 0;
  };
  std::vector<PendingTerm> pending_;
  std::vector<std::uint32_t> pending_leaves_;  // the distinct leaves in pending_
  std::vector<GradientTerm<T>> terms_;
  std::vector<TermGroup> term_groups_;
};

extern template class ProductCollector<float>;
extern template class ProductCollector<double>;

}  // namespace rwd::detail
