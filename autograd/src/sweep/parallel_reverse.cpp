#include "parallel_reverse.hpp"

#include <algorithm>
#include <atomic>
#include <exception>
#include <unordered_map>

namespace rwd::detail {

template <class T>
int ParallelReverse<T>::run(Recording<T>& rec, std::size_t top, GradTarget<T>& target,
                            bool anomaly) {
#ifndef _OPENMP
  static_cast<void>(rec);
  static_cast<void>(top);
  static_cast<void>(target);
  static_cast<void>(anomaly);
  return 0;
#else
  if (anomaly || !two_threads() || split_policy() == SplitPolicy::never) return 0;
  if (!plan(rec, top, target)) return 0;
  const bool any_rows =
      std::any_of(plan_.begin(), plan_.end(), [](const PlanStep& s) { return s.rows; });
  // Thread t of `threads`. After an error a thread keeps meeting the other at every barrier and
  // does nothing else; the first error is rethrown after the region.
  std::atomic<bool> failed{false};
  std::exception_ptr error[2];
  const auto thread = [&](int t, int threads) {
    const auto guarded = [&](auto&& f) {
      if (failed.load(std::memory_order_relaxed)) return;
      try {
        f();
      } catch (...) {
        error[t] = std::current_exception();
        failed.store(true, std::memory_order_relaxed);
      }
    };
    for (const PlanStep& s : plan_) {
      if (s.barrier && threads == 2) {
#pragma omp barrier
      }
      const Node<T>& n = rec.nodes[s.node];
      const Index half = n.rows / 2;
      if (s.rows && threads == 2) {
        guarded([&] { run_step(rec, n, t == 0 ? 0 : half, t == 0 ? half : n.rows, true, -1, t); });
      } else if (t == 0) {
        guarded([&] { run_step(rec, n, 0, n.rows, false, -1, t); });
      }
    }
    if (threads == 2) {
#pragma omp barrier
    }
    guarded([&] {
      // The shared leaves: this thread's pieces of every product.
      const ScopedProductShare share(threads == 2 ? ProductShare{t, 2} : product_share());
      products_.run(rec);
    });
    for (const auto& deferred : deferred_) {
      const Node<T>& n = rec.nodes[deferred.first];
      const int k = static_cast<int>(deferred.second);
      const std::uint8_t owner = leaf_owner_[rec.input(n, k)];
      if (owner == 3 || (threads == 2 && owner != t + 1)) continue;
      guarded([&] { run_step(rec, n, 0, n.rows, false, k, t); });
    }
  };
  if (any_rows) {
#pragma omp parallel num_threads(2)
    thread(omp_get_thread_num(), 2);
  } else {
    thread(0, 1);  // nothing split after all (no node that splits took a gradient)
  }
  for (const std::exception_ptr& e : error) {
    if (e) std::rethrow_exception(e);
  }
  return any_rows ? 2 : 1;
#endif
}

template <class T>
bool ParallelReverse<T>::plan(Recording<T>& rec, std::size_t top, GradTarget<T>& target) {
  // With the measured policy (REWIND_SPLIT unset), only nodes of 16 rows or more split, and only
  // recordings whose splitting nodes hold 32 768 elements or more use two threads: small ones
  // would pay a region's start (about a microsecond) and its barriers for little. The bounds are
  // chosen, not tuned: every benchmark workload is far above them (rnn-128: 50 steps of 32 rows).
  // REWIND_SPLIT=always splits every node of two rows or more (tests reach the rare paths so).
  const bool always = split_policy() == SplitPolicy::always;
  min_rows_ = always ? 2 : 16;
  const double elements = mark_deferred(rec, top);
  if (elements == 0 || elements < (always ? 0 : 32768)) return false;
  plan_steps(rec, top, target);
  assign_leaves(rec, top);
  return true;
}

template <class T>
bool ParallelReverse<T>::splits(const Recording<T>& rec, const Node<T>& n,
                                std::uint8_t local) const {
  // n's row inputs have its rows, and every other input that takes a gradient is a leaf (whose
  // gradient nothing reads before the sweep ends).
  if (local == 0 || n.rows < min_rows_ || n.num_inputs > 8) return false;
  const std::uint32_t* in = rec.edges.data() + n.first_input;
  for (std::uint32_t k = 0; k < n.num_inputs; ++k) {
    const Node<T>& x = rec.nodes[in[k]];
    if ((local >> k & 1) != 0 ? x.rows != n.rows : x.requires_grad && x.num_inputs != 0) {
      return false;
    }
  }
  return true;
}

template <class T>
double ParallelReverse<T>::mark_deferred(const Recording<T>& rec, std::size_t top) {
  // The leaves summed over rows by a node that splits: all of their contributions, from any
  // node, are deferred (so they keep the one-thread order); per leaf, its cost in multiply-adds.
  leaf_owner_.assign(top + 1, 0);
  cost_.assign(top + 1, 0.0);
  double elements = 0;
  for (std::size_t i = 0; i <= top; ++i) {
    const Node<T>& n = rec.nodes[i];
    if (n.num_inputs == 0 || !n.requires_grad) continue;
    const std::uint8_t local = row_local_of(n.op);
    if (!splits(rec, n, local)) continue;
    elements += static_cast<double>(n.rows * n.cols);
    const std::uint32_t* in = rec.edges.data() + n.first_input;
    for (std::uint32_t k = 0; k < n.num_inputs; ++k) {
      const Node<T>& x = rec.nodes[in[k]];
      if ((local >> k & 1) != 0 || !x.requires_grad) continue;
      leaf_owner_[in[k]] = 1;
    }
  }
  return elements;
}

template <class T>
void ParallelReverse<T>::plan_steps(Recording<T>& rec, std::size_t top, GradTarget<T>& target) {
  const std::size_t edges = rec.edges.size();
  plan_.clear();
  deferred_.clear();
  plan_slot_.assign(edges, nullptr);
  plan_mode_.assign(edges, GradMode::none);
  // Per gradient buffer since the last barrier: -1 thread 0 alone, R both threads on the halves
  // of its R rows.
  std::unordered_map<const T*, Index> state;
  for (std::size_t i = top + 1; i-- > 0;) {
    Node<T>& n = rec.nodes[i];
    if (n.grad_epoch != target.epoch || n.num_inputs == 0) continue;
    slots_.prepare(rec, n, target);
    const std::vector<GradMode>& modes = slots_.mode;
    const int count = static_cast<int>(n.num_inputs);
    if (n.passes != 0 &&
        std::none_of(modes.begin(), modes.end(), [](GradMode m) { return m != GradMode::none; })) {
      continue;  // every input shares n's buffer: nothing to run
    }
    const std::uint8_t local = row_local_of(n.op);
    const bool rows = splits(rec, n, local);
    const std::uint32_t* in = rec.edges.data() + n.first_input;
    bool now = false;  // anything to run in the row phase
    for (int k = 0; k < count; ++k) {
      const std::size_t e = n.first_input + static_cast<std::size_t>(k);
      plan_mode_[e] = modes[k];
      plan_slot_[e] = slots_.slot[k].data;
      if (modes[k] == GradMode::none) continue;
      const std::uint32_t xi = in[k];
      if (leaf_owner_[xi] != 0) {
        deferred_.emplace_back(static_cast<std::uint32_t>(i), static_cast<std::uint32_t>(k));
        cost_[xi] += static_cast<double>(n.rows) *
                     static_cast<double>(rec.nodes[xi].rows * rec.nodes[xi].cols);
      } else {
        now = true;
      }
    }
    for (const auto& [k, offset] : slots_.accumulate) plan_slot_[n.first_input + k] = nullptr;
    if (rows) {
      for (int k = 0; k < count; ++k) {
        if ((local >> k & 1) != 0) continue;
        const Node<T>& x = rec.nodes[in[k]];
        if (const TensorRef<T> r = rec.ref_of(x); r.packed != nullptr) {
          // Both threads multiply by this weight: pack it now, for both halves' row counts.
          const ConstMap<T> w(x.value, x.rows, x.cols);
          prepare_weight(*r.packed, w, n.rows / 2);
          prepare_weight(*r.packed, w, n.rows - n.rows / 2);
        }
      }
    }
    if (!now) continue;
    // The buffers n reads (its gradient) and writes in the row phase, and how.
    const auto each_buffer = [&](auto&& f) {
      f(n.grad, rows ? n.rows : Index{-1});
      for (int k = 0; k < count; ++k) {
        if (modes[k] == GradMode::none || leaf_owner_[in[k]] != 0) continue;
        f(rec.nodes[in[k]].grad, rows && (local >> k & 1) != 0 ? n.rows : Index{-1});
      }
    };
    bool barrier = false;
    each_buffer([&](const T* buffer, Index how) {
      const auto it = state.find(buffer);
      if (it != state.end() && it->second != how) barrier = true;
    });
    if (barrier) state.clear();
    each_buffer([&](const T* buffer, Index how) { state[buffer] = how; });
    plan_.push_back(PlanStep{static_cast<std::uint32_t>(i), rows, barrier});
  }
}

template <class T>
void ParallelReverse<T>::assign_leaves(const Recording<T>& rec, std::size_t top) {
  // The deferred leaves to the threads. A leaf whose every contribution is one product (a
  // weight's gradient, gradient_product) is shared: both threads compute each contribution, each
  // its pieces of the product (owner 3). The others go whole to one thread (owner 1 or 2), the
  // costliest first, each to the less loaded.
  shared_.assign(top + 1, 1);
  for (const auto& [i, k] : deferred_) {
    const Node<T>& n = rec.nodes[i];
    const std::uint8_t products = std::visit(
        [](const auto& o) { return product_gradient_inputs<std::decay_t<decltype(o)>>(); }, n.op);
    if ((products >> k & 1) == 0 || plan_slot_[n.first_input + k] == nullptr) {
      shared_[rec.input(n, k)] = 0;
    }
  }
  leaves_.clear();
  double load[2] = {0, 0};
  for (std::size_t i = 0; i <= top; ++i) {
    if (leaf_owner_[i] == 0) continue;
    if (shared_[i] != 0) {
      leaf_owner_[i] = 3;
      load[0] += cost_[i] / 2;
      load[1] += cost_[i] / 2;
    } else {
      leaves_.push_back(static_cast<std::uint32_t>(i));
    }
  }
  // The shared leaves' terms, in sweep order: both threads run each leaf's together, each its
  // pieces of every product (detail::gradient_products).
  products_.reset();
  for (const auto& [i, k] : deferred_) {
    const Node<T>& n = rec.nodes[i];
    if (leaf_owner_[rec.input(n, k)] != 3) continue;
    rec.gather_inputs(n, operands_);
    products_.collect(rec, n, Inputs<T>(operands_.data(), static_cast<int>(n.num_inputs)),
                      static_cast<int>(k), plan_mode_[n.first_input + k]);
  }
  products_.group();
  std::stable_sort(leaves_.begin(), leaves_.end(),
                   [&](std::uint32_t a, std::uint32_t b) { return cost_[a] > cost_[b]; });
  for (const std::uint32_t l : leaves_) {
    const int t = load[1] < load[0] ? 1 : 0;
    leaf_owner_[l] = static_cast<std::uint8_t>(t + 1);
    load[t] += cost_[l];
  }
}

template <class T>
void ParallelReverse<T>::run_step(const Recording<T>& rec, const Node<T>& n, Index r0, Index r1,
                                  bool rows, int only, int t) {
  ThreadScratch& mine = threads_[t];
  const int count = static_cast<int>(n.num_inputs);
  const std::uint8_t local = rows ? row_local_of(n.op) : std::uint8_t{0};
  const std::uint32_t* edge = rec.edges.data() + n.first_input;
  const auto mode_of = [&](int k) {  // what this call computes for input k
    const bool deferred = leaf_owner_[edge[k]] != 0;
    const bool wanted = only >= 0 ? k == only : !deferred;
    return wanted ? plan_mode_[n.first_input + static_cast<std::size_t>(k)] : GradMode::none;
  };
  mine.in.resize(static_cast<std::size_t>(count));
  mine.slots.resize(static_cast<std::size_t>(count));
  mine.modes.resize(static_cast<std::size_t>(count));
  std::size_t need = 0;
  for (int k = 0; k < count; ++k) {
    const Node<T>& x = rec.nodes[edge[k]];
    const Index srows = (local >> k & 1) != 0 ? r1 - r0 : x.rows;
    if (mode_of(k) != GradMode::none &&
        plan_slot_[n.first_input + static_cast<std::size_t>(k)] == nullptr)
      need += static_cast<std::size_t>(srows * x.cols);
  }
  if (need > mine.scratch.size()) mine.scratch.resize(need);
  std::size_t offset = 0;
  for (int k = 0; k < count; ++k) {
    const auto kk = static_cast<std::size_t>(k);
    const Node<T>& x = rec.nodes[edge[k]];
    const bool is_local = (local >> k & 1) != 0;
    TensorRef<T> r = rec.ref_of(x);
    if (is_local) r = TensorRef<T>{r.data + r0 * x.cols, r1 - r0, x.cols, r.packed};
    mine.in[kk] = r;
    const GradMode mode = mode_of(k);
    T* const buffer = plan_slot_[n.first_input + kk];
    const Index srows = is_local ? r1 - r0 : x.rows;
    T* data = nullptr;
    if (mode != GradMode::none) {
      if (buffer == nullptr) {
        data = mine.scratch.data() + offset;
        offset += static_cast<std::size_t>(srows * x.cols);
      } else {
        data = is_local ? buffer + r0 * x.cols : buffer;
      }
    }
    mine.slots[kk] = TensorRef<T>{data, srows, x.cols};
    mine.modes[kk] = mode;
  }
  call_backward_rows(n, r0, r1, mine.in.data(), mine.slots.data(), mine.modes.data());
  // Scratch contributions into their buffers (this thread's rows of them).
  for (int k = 0; k < count; ++k) {
    const auto kk = static_cast<std::size_t>(k);
    if (mine.modes[kk] == GradMode::none || plan_slot_[n.first_input + kk] != nullptr) continue;
    const Node<T>& x = rec.nodes[edge[k]];
    T* dst = x.grad + ((local >> k & 1) != 0 ? r0 * x.cols : 0);
    MutMap<T>(dst, mine.slots[kk].rows, x.cols) +=
        ConstMap<T>(mine.slots[kk].data, mine.slots[kk].rows, x.cols);
  }
}

template <class T>
std::size_t ParallelReverse<T>::capacity_bytes() const {
  std::size_t b = slots_.capacity_bytes() + products_.capacity_bytes() + bytes_of(plan_) +
                  bytes_of(plan_slot_) + bytes_of(plan_mode_) + bytes_of(leaf_owner_) +
                  bytes_of(deferred_) + bytes_of(cost_) + bytes_of(shared_) + bytes_of(leaves_) +
                  bytes_of(operands_);
  for (const ThreadScratch& s : threads_) {
    b += bytes_of(s.in) + bytes_of(s.slots) + bytes_of(s.modes) + bytes_of(s.scratch);
  }
  return b;
}

template class ParallelReverse<float>;
template class ParallelReverse<double>;

}  // namespace rwd::detail
