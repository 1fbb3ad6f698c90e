// The first-order reverse sweep on two threads (private header).
//
// In a REWIND_OPENMP build with two threads a first-order sweep runs in one parallel region, each
// thread owning half of the rows (for a recurrent network: half of the batch) of every gradient
// whose op lets it: the rowwise ops, and the products and bias broadcasts for their row input
// (row_local_inputs). Through a recurrent chain of such ops no thread reads what the other
// wrote, so the threads meet only where the recording needs it: a barrier before an op that
// reads or writes a gradient in a way the other thread's writes since the last barrier do not
// match (a loss's reduction, a concat of time steps: thread 0 runs those alone). Per-product
// splitting (gemm) paid on the 2-core hosts only for products of hidden 512; here all of a
// step's row work is split without a fork or a join.
//
// The gradients summed over rows (a weight's gyᵀ·x, a bias's column sums) need every row of gy,
// so they are deferred: after the row phase and one barrier, each such leaf's contributions are
// computed in sweep order, as the one-thread sweep computes them: a weight's by both threads,
// each its own pieces of every product (detail::ProductShare), the others whole by one thread or
// the other, shared out by cost. The gradients agree with the one-thread sweep's to rounding (a
// product over half the rows need not round as over all of them: Eigen's kernel treats leftover
// columns its own way); the plan (which node runs how, where the barriers are, every slot) is
// made by the calling thread from the recording's shapes alone, so a recording gives the same
// bits on every run.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "products.hpp"
#include "slots.hpp"

namespace rwd::detail {

template <class T>
class ParallelReverse {
 public:
  /// Sweeps from node `top` (its gradient seeded) into `target`'s buffers: the threads it ran on
  /// (1 when its plan split nothing), or 0, nothing done, where it does not apply (one thread,
  /// REWIND_SPLIT=never, anomaly mode, a recording too small).
  int run(Recording<T>& rec, std::size_t top, GradTarget<T>& target, bool anomaly);
  std::size_t capacity_bytes() const;

 private:
  struct PlanStep {
    std::uint32_t node = 0;
    bool rows = false;     // both threads, half of the rows each; else thread 0, all rows
    bool barrier = false;  // both threads wait for each other first
  };
  // Each thread's views and scratch for run_step.
  struct ThreadScratch {
    std::vector<TensorRef<T>> in, slots;
    std::vector<GradMode> modes;
    std::vector<T> scratch;
  };
  // Fills plan_ and the slots; false when nothing splits (too small).
  bool plan(Recording<T>& rec, std::size_t top, GradTarget<T>& target);
  // Whether n can run on two threads, half of its rows each.
  bool splits(const Recording<T>& rec, const Node<T>& n, std::uint8_t local) const;
  // Marks the leaves whose gradients are summed over rows by a node that splits (leaf_owner_):
  // the elements of the splitting nodes.
  double mark_deferred(const Recording<T>& rec, std::size_t top);
  // plan_, plan_slot_, plan_mode_ and deferred_: the row phase, in sweep order.
  void plan_steps(Recording<T>& rec, std::size_t top, GradTarget<T>& target);
  // The deferred leaves to the threads, and the shared leaves' product terms.
  void assign_leaves(const Recording<T>& rec, std::size_t top);
  // One planned node on thread t: rows r0..r1 of its row inputs (rows: as a row-split step) and
  // the inputs whose gradient is not deferred; or (only >= 0) that deferred input alone.
  void run_step(const Recording<T>& rec, const Node<T>& n, Index r0, Index r1, bool rows, int only,
                int t);

  Slots<T> slots_;
  ProductCollector<T> products_;  // the shared leaves' terms
  // The plan: the nodes in sweep order; per edge (node input), the gradient buffer its op writes
  // (null: the thread's scratch, then added) and how; per node, which thread computes a leaf's
  // summed-over-rows gradient after the region (0: none, it is not deferred; 1 or 2: thread 0
  // or 1; 3: both, each its pieces of every product), and the deferred (node, input) pairs in
  // sweep order. Kept across clear() like the other buffers.
  std::vector<PlanStep> plan_;
  std::vector<T*> plan_slot_;
  std::vector<GradMode> plan_mode_;
  std::vector<std::uint8_t> leaf_owner_;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> deferred_;
  std::vector<double> cost_;            // per leaf: its deferred multiply-adds
  std::vector<std::uint8_t> shared_;    // per leaf: every contribution is one product
  std::vector<std::uint32_t> leaves_;   // the deferred leaves given whole to one thread
  std::vector<TensorRef<T>> operands_;  // a node's inputs, for ProductCollector::collect
  ThreadScratch threads_[2];
  Index min_rows_ = 16;  // the fewest rows a node splits with
};

extern template class ParallelReverse<float>;
extern template class ParallelReverse<double>;

}  // namespace rwd::detail
