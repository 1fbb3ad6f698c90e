#include "rewind/autograd/tape.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <stdexcept>
#include <unordered_map>
#include <utility>

#include "parallel.hpp"

namespace rwd {
namespace {
// One vectorised pass: x·0 is 0 for every finite x and NaN for NaN and ±Inf, and NaN survives
// the sum. Anomaly mode checks every tensor; with Eigen's allFinite() it doubled an LSTM training
// step (10.5 -> 22.7 ms, tools/bench), with this it costs 6% (10.2 -> 10.8 ms).
template <class T>
bool all_finite(const ConstMap<T>& m) {
  return !std::isnan((m.array() * T(0)).sum());
}

/// The op's row_local_inputs() (registry.hpp), for the parallel sweep.
std::uint8_t row_local_of(const Op& op) {
  return std::visit([](const auto& o) { return row_local_inputs<std::decay_t<decltype(o)>>(); },
                    op);
}
}  // namespace

// ---- two threads for large rowwise ops (REWIND_OPENMP builds) --------------------------------

template <class T>
template <class F>
bool Tape<T>::split_rows(Index rows, Index cols, const TensorRef<T>* in, const TensorRef<T>* slots,
                         int count, F&& f) {
  // Below this many elements an elementwise op takes a few microseconds: waking the second
  // thread would cost about as much as it saves (16 384 made two threads slower than one at
  // hidden 128, where a step's gate tensors are 32x512).
  constexpr Index kMinElements = 65536;
  if (rows < 2 || rows * cols < kMinElements || !detail::two_threads()) return false;
  const auto n = static_cast<std::size_t>(count);
  split_.resize(4 * n);  // per half: the inputs' rows, then the gradient slots' rows
  const Index half = rows / 2;
  for (int t = 0; t < 2; ++t) {
    const Index r0 = t == 0 ? 0 : half;
    const Index r1 = t == 0 ? half : rows;
    for (std::size_t k = 0; k < n; ++k) {
      const auto part = [&](const TensorRef<T>& r) {
        return TensorRef<T>{r.data == nullptr ? nullptr : r.data + r0 * r.cols, r1 - r0, r.cols,
                            r.packed};
      };
      split_[2 * n * static_cast<std::size_t>(t) + k] = part(in[k]);
      if (slots != nullptr) split_[2 * n * static_cast<std::size_t>(t) + n + k] = part(slots[k]);
    }
  }
  detail::on_two_threads([&](int t) {
    const TensorRef<T>* mine = split_.data() + 2 * n * static_cast<std::size_t>(t);
    f(t == 0 ? Index{0} : half, t == 0 ? half : rows, mine, mine + n);
  });
  return true;
}

template <class T>
Tape<T>::Tape() {
  scopes_.push_back(ScopeEntry{0, ""});
}

template <class T>
Tape<T>::~Tape() = default;

template <class T>
const typename Tape<T>::Node& Tape<T>::checked(const Var<T>& v, std::string_view who) const {
  if (v.tape_ == nullptr) {
    throw UsageError(fmt::format("{}: empty Var: the handle was default-constructed", who));
  }
  if (v.tape_ != this) throw UsageError(fmt::format("{}: Var belongs to a different tape", who));
  if (v.generation_ != generation_) {
    throw UsageError(fmt::format(
        "{}: stale Var: node {} was recorded before the tape's last clear()", who, v.index_));
  }
  return nodes_[v.index_];
}

// ---- leaves -------------------------------------------------------------------------------------

template <class T>
std::uint32_t Tape<T>::add_label(std::string_view label) {
  labels_.emplace_back(label);
  return static_cast<std::uint32_t>(labels_.size() - 1);
}

template <class T>
Var<T> Tape<T>::leaf(const Op& op, const Eigen::Ref<const Matrix<T>>& value, bool requires_grad) {
  Node node;
  node.op = op;
  node.rows = value.rows();
  node.cols = value.cols();
  node.value = values_.allocate(static_cast<std::size_t>(value.size()));
  MutMap<T>(node.value, node.rows, node.cols) = value;
  node.first_input = static_cast<std::uint32_t>(edges_.size());
  node.scope = current_scope_;
  node.requires_grad = requires_grad;
  nodes_.push_back(node);
  return Var<T>(this, static_cast<std::uint32_t>(nodes_.size() - 1), generation_);
}

template <class T>
Var<T> Tape<T>::input(const Eigen::Ref<const Matrix<T>>& value, std::string_view label) {
  return leaf(ops::Input{add_label(label)}, value, true);
}

template <class T>
Var<T> Tape<T>::constant(const Eigen::Ref<const Matrix<T>>& value, std::string_view label) {
  return leaf(ops::Constant{add_label(label)}, value, false);
}

template <class T>
Var<T> Tape<T>::param(Parameter<T>& p) {
  if (const auto node = find_param(p))
    return Var<T>(this, static_cast<std::uint32_t>(*node), generation_);
  const auto slot = static_cast<std::uint32_t>(params_.size());
  if (packs_.size() <= slot) {
    packs_.push_back(std::make_unique<detail::PackedWeight<T>>());
    pack_owner_.push_back(nullptr);
  }
  if (!hold_) {
    packs_[slot]->invalidate();  // packed on first use in a product
    pack_owner_[slot] = nullptr;
    Var<T> v = leaf(ops::Param{add_label(p.name), slot}, p.value, true);
    params_.push_back(ParamSlot{&p, v.index_});
    return v;
  }
  // Held: p's packing from an earlier recording moves to this slot; the value is read in place.
  const auto owned = std::find(pack_owner_.begin() + slot, pack_owner_.end(), &p);
  if (owned != pack_owner_.end()) {
    const auto j = static_cast<std::size_t>(owned - pack_owner_.begin());
    std::swap(packs_[slot], packs_[j]);
    std::swap(pack_owner_[slot], pack_owner_[j]);
  } else {
    packs_[slot]->invalidate();
    if (pack_owner_[slot] != nullptr) {  // keep the evicted packing for its owner
      packs_.push_back(std::move(packs_[slot]));
      pack_owner_.push_back(pack_owner_[slot]);
      packs_[slot] = std::make_unique<detail::PackedWeight<T>>();
    }
    pack_owner_[slot] = &p;
  }
  Node node;
  node.op = ops::Param{add_label(p.name), slot};
  node.rows = p.value.rows();
  node.cols = p.value.cols();
  node.value = const_cast<T*>(p.value.data());  // read only: no op writes a leaf's value
  node.first_input = static_cast<std::uint32_t>(edges_.size());
  node.scope = current_scope_;
  node.requires_grad = true;
  nodes_.push_back(node);
  const Var<T> v(this, static_cast<std::uint32_t>(nodes_.size() - 1), generation_);
  params_.push_back(ParamSlot{&p, v.index_});
  return v;
}

template <class T>
std::span<const std::int32_t> Tape<T>::store_indices(std::span<const std::int32_t> data) {
  std::int32_t* p = indices_.allocate(data.size());
  std::copy(data.begin(), data.end(), p);
  return {p, data.size()};
}

// ---- recording ----------------------------------------------------------------------------------

template <class T>
Var<T> Tape<T>::record(const Op& op, std::span<const Var<T>> inputs) {
  // A recording error names where in the model it happened.
  try {
    return record_in_scope(op, inputs);
  } catch (const ShapeError& e) {
    if (current_scope_ == 0) throw;
    throw ShapeError(with_scope(e.what(), scope_string(current_scope_)));
  } catch (const UsageError& e) {
    if (current_scope_ == 0) throw;
    throw UsageError(with_scope(e.what(), scope_string(current_scope_)));
  }
}

template <class T>
Var<T> Tape<T>::record_in_scope(const Op& op, std::span<const Var<T>> inputs) {
  return std::visit(
      [&](const auto& o) -> Var<T> {
        using O = std::decay_t<decltype(o)>;
        if constexpr (kIsLeaf<O>) {
          throw UsageError(fmt::format(
              "{}: leaves are recorded with Tape::input, Tape::constant or Tape::param", O::name));
        } else {
          std::string_view name = O::name;
          int arity = O::arity;
          if constexpr (std::is_same_v<O, ops::Custom>) {
            name = o.fn->name();
            arity = o.fn->arity();
          }
          const auto count = static_cast<int>(inputs.size());
          if (arity == kVariadic ? count == 0 : count != arity) {
            throw UsageError(fmt::format(
                "{}: wrong number of inputs: expects {}, got {}", name,
                arity == kVariadic ? std::string("at least 1") : std::to_string(arity), count));
          }
          shapes_.clear();
          refs_.clear();
          bool requires_grad = false;
          for (const Var<T>& v : inputs) {
            const Node& x = checked(v, name);
            shapes_.push_back(Shape{x.rows, x.cols});
            set_ref(refs_.emplace_back(), x);
            requires_grad = requires_grad || x.requires_grad;
          }
          const Shape ys = o.shape(std::span<const Shape>(shapes_));
          T* value = nullptr;
          if constexpr (aliases_input<O>()) {
            value = refs_[0].data;
            if constexpr (requires { o.alias_offset(std::span<const Shape>(shapes_)); }) {
              value += o.alias_offset(std::span<const Shape>(shapes_));
            }
          } else {
            value = values_.allocate(static_cast<std::size_t>(ys.size()));
            bool done = false;
            if constexpr (rowwise<O>()) {
              done = split_rows(
                  ys.rows, ys.cols, refs_.data(), nullptr, count,
                  [&](Index r0, Index r1, const TensorRef<T>* in, const TensorRef<T>*) {
                    o.template forward<T>(Inputs<T>(in, count),
                                          MutMap<T>(value + r0 * ys.cols, r1 - r0, ys.cols));
                  });
            }
            if (!done) {
              o.template forward<T>(Inputs<T>(refs_.data(), count),
                                    MutMap<T>(value, ys.rows, ys.cols));
            }
          }
          if (anomaly_) {
            check_finite(name, current_scope_, "its value", TensorRef<T>{value, ys.rows, ys.cols});
          }
          const auto first_input = static_cast<std::uint32_t>(edges_.size());
          for (const Var<T>& v : inputs) {
            edges_.push_back(v.index_);
            ++nodes_[v.index_].uses;
          }
          // Filled in place, field by field: a Node built on the stack and copied in is read
          // back with wide loads the processor cannot forward from its narrower stores, a stall
          // that was 7% of tiny-ops' samples.
          Node& node = nodes_.emplace_back();
          node.op = op;
          node.value = value;
          node.rows = ys.rows;
          node.cols = ys.cols;
          node.first_input = first_input;
          node.num_inputs = static_cast<std::uint32_t>(count);
          node.scope = current_scope_;
          node.requires_grad = requires_grad && !stops_gradient<O>();
          node.accumulates = accumulates<O>();
          node.passes = passes_gradient<O>();
          node.products = product_gradient_inputs<O>();
          return Var<T>(this, static_cast<std::uint32_t>(nodes_.size() - 1), generation_);
        }
      },
      op);
}

template <class T>
Var<T> Tape<T>::record_custom(std::shared_ptr<const CustomOp<T>> fn,
                              std::span<const Var<T>> inputs) {
  if (!fn) throw UsageError("custom: null op");
  const CustomOpBase* raw = fn.get();
  customs_.push_back(std::move(fn));
  return record(ops::Custom{raw}, inputs);
}

// ---- the reverse sweep --------------------------------------------------------------------------

template <class T>
void Tape<T>::set_ref(TensorRef<T>& r, const Node& x) {
  // Field by field, into r where it is kept: a TensorRef made elsewhere and copied into refs_
  // is written as four 8-byte stores and read back as one 32-byte load, which the processor
  // cannot forward from its store buffer (10% of tiny-ops' samples).
  r.data = x.value;
  r.rows = x.rows;
  r.cols = x.cols;
  r.packed = nullptr;
  if (const auto* p = std::get_if<ops::Param>(&x.op)) r.packed = packs_[p->slot].get();
}

template <class T>
TensorRef<T> Tape<T>::ref_of(const Node& x) {
  TensorRef<T> r;
  set_ref(r, x);
  return r;
}

template <class T>
void Tape<T>::gather_inputs(const Node& n) {
  refs_.clear();
  for (std::uint32_t k = 0; k < n.num_inputs; ++k)
    set_ref(refs_.emplace_back(), nodes_[edges_[n.first_input + k]]);
}

template <class T>
void Tape<T>::call_backward(const Node& n, const T* gy, Grads<T>& g) {
  std::visit(
      [&](const auto& o) {
        using O = std::decay_t<decltype(o)>;
        if constexpr (!kIsLeaf<O>) {
          const int count = static_cast<int>(n.num_inputs);
          if constexpr (rowwise<O>()) {
            const bool done = split_rows(
                n.rows, n.cols, refs_.data(), slots_.data(), count,
                [&](Index r0, Index r1, const TensorRef<T>* in, const TensorRef<T>* slots) {
                  Grads<T> part(slots, modes_.data(), count);
                  o.template backward<T>(Inputs<T>(in, count),
                                         ConstMap<T>(n.value + r0 * n.cols, r1 - r0, n.cols),
                                         ConstMap<T>(gy + r0 * n.cols, r1 - r0, n.cols), part);
                });
            if (done) return;
          }
          o.template backward<T>(Inputs<T>(refs_.data(), count),
                                 ConstMap<T>(n.value, n.rows, n.cols),
                                 ConstMap<T>(gy, n.rows, n.cols), g);
        }
      },
      n.op);
}

template <class T>
void Tape<T>::prepare_slots(const Node& n, Sweep sweep, const bool* skip) {
  const int count = static_cast<int>(n.num_inputs);
  slots_.clear();
  modes_.clear();
  accumulate_.clear();
  // An input's first contribution is written straight into its buffer. Later ones are added
  // into it by ops that declare kAccumulates; for the others they go to scratch and
  // finish_slots adds them, so such an op only ever assigns. An input used twice by one op
  // (mul(x, x)) gets its buffer from the first use: the second goes to scratch, so no op has to
  // care in which order it writes its slots.
  const Index blocks = sweep == Sweep::block ? block_rev_k_ : 1;
  std::size_t scratch = 0;
  const std::uint32_t* in = edges_.data() + n.first_input;
  for (int k = 0; k < count; ++k) {
    const std::uint32_t xi = in[k];
    Node& x = nodes_[xi];
    TensorRef<T>& slot = slots_.emplace_back();  // in place: see set_ref
    slot.rows = x.rows * blocks;
    slot.cols = x.cols;
    GradMode mode = GradMode::none;
    const bool wanted = x.requires_grad && (skip == nullptr || !skip[k]) &&
                        !(sweep == Sweep::block && std::holds_alternative<ops::Param>(x.op));
    if (wanted) {
      const auto size = static_cast<std::size_t>(x.rows * x.cols * blocks);
      T*& buffer = sweep == Sweep::grad           ? x.grad
                   : sweep == Sweep::grad_tangent ? gtan_[xi]
                                                  : bgrad_[xi];
      mode = GradMode::assign;
      const bool fresh = sweep == Sweep::grad ? x.grad_epoch != epoch_ : buffer == nullptr;
      if (fresh && sweep == Sweep::grad && x.uses == 1 && k < 8 && (n.passes >> k & 1) != 0) {
        // The input's whole gradient is gy (an add's operand, say) and nothing else adds to it:
        // it shares n's buffer instead of a copy. Gradients are only read once complete, so
        // the two nodes reading one buffer cannot tell. Not in the tangent or block sweeps.
        buffer = n.grad;
        x.grad_epoch = epoch_;
        mode = GradMode::none;
      } else if (fresh) {
        buffer = (sweep == Sweep::grad           ? grads_
                  : sweep == Sweep::grad_tangent ? grad_tangents_
                                                 : block_grads_)
                     .allocate(size);
        if (sweep == Sweep::grad) x.grad_epoch = epoch_;
        slot.data = buffer;
      } else if (n.accumulates && std::find(in, in + k, xi) == in + k) {
        mode = GradMode::add;
        slot.data = buffer;
      } else {
        accumulate_.push_back({static_cast<std::uint32_t>(k), scratch});
        scratch += size;
      }
    }
    modes_.push_back(mode);
  }
  if (scratch > scratch_.size()) scratch_.resize(scratch);
  for (const auto& [k, offset] : accumulate_) slots_[k].data = scratch_.data() + offset;
}

template <class T>
void Tape<T>::finish_slots(const Node& n, Sweep sweep) {
  const Index blocks = sweep == Sweep::block ? block_rev_k_ : 1;
  for (const auto& [k, offset] : accumulate_) {
    const std::uint32_t xi = edges_[n.first_input + k];
    const Node& x = nodes_[xi];
    T* buffer = sweep == Sweep::grad           ? x.grad
                : sweep == Sweep::grad_tangent ? gtan_[xi]
                                               : bgrad_[xi];
    MutMap<T>(buffer, x.rows * blocks, x.cols) +=
        ConstMap<T>(scratch_.data() + offset, x.rows * blocks, x.cols);
  }
}

template <class T>
Matrix<T> Tape<T>::contribution(std::size_t i, int k) {
  const Node& n = nodes_.at(i);
  if (k < 0 || static_cast<std::uint32_t>(k) >= n.num_inputs) {
    throw UsageError(fmt::format("contribution: node {} ({}) has no input {}", i, op_name(i), k));
  }
  const Node& x = nodes_[edges_[n.first_input + static_cast<std::uint32_t>(k)]];
  Matrix<T> out = Matrix<T>::Zero(x.rows, x.cols);
  if (backward_epoch_ == 0 || n.grad_epoch != epoch_ || !x.requires_grad) return out;
  gather_inputs(n);
  slots_.assign(n.num_inputs, TensorRef<T>{});
  modes_.assign(n.num_inputs, GradMode::none);
  slots_[static_cast<std::size_t>(k)] = TensorRef<T>{out.data(), x.rows, x.cols};
  modes_[static_cast<std::size_t>(k)] = GradMode::assign;
  Grads<T> g(slots_.data(), modes_.data(), static_cast<int>(n.num_inputs));
  call_backward(n, n.grad, g);
  return out;
}

template <class T>
void Tape<T>::check_finite(std::string_view op, std::uint32_t scope, std::string_view what,
                           const TensorRef<T>& t) const {
  const ConstMap<T> m(t.data, t.rows, t.cols);
  if (all_finite(m)) return;
  std::string inputs;  // refs_ holds the op's inputs at both call sites
  for (std::size_t k = 0; k < refs_.size(); ++k) {
    const ConstMap<T> v(refs_[k].data, refs_[k].rows, refs_[k].cols);
    inputs += fmt::format("{}{}x{}", k == 0 ? "" : ", ", v.rows(), v.cols());
    if (v.size() > 0) inputs += fmt::format(" in [{:g}, {:g}]", v.minCoeff(), v.maxCoeff());
  }
  const std::string where = scope_string(scope);
  throw NumericalError(fmt::format(
      "anomaly: {} at {}: {} in {}; inputs: {}", op, where.empty() ? "the top level" : where,
      m.array().isNaN().any() ? "NaN" : "Inf", what, inputs.empty() ? "none" : inputs));
}

template <class T>
void Tape<T>::backward(const Var<T>& loss, const BackwardOptions& options) {
  const Node& l = checked(loss, "backward");
  if (l.rows != 1 || l.cols != 1) {
    throw UsageError(fmt::format(
        "backward: loss must be 1x1, got {}x{}: reduce it with sum or mean first", l.rows, l.cols));
  }
  const bool second = options.second_order;
  if (second && (tangent_nodes_ == 0 || loss.index_ >= tangent_nodes_)) {
    throw UsageError(
        tangent_nodes_ == 0
            ? "backward: second_order needs the tangents of this recording: call jvp() first"
            : "backward: second_order: the loss was recorded after the latest jvp(): call jvp() "
              "again");
  }
  ++epoch_;
  backward_epoch_ = epoch_;
  last_loss_ = loss.index_;
  grads_.reset();
  if (second) {
    second_order_epoch_ = epoch_;
    grad_tangents_.reset();
    gtan_.assign(nodes_.size(), nullptr);
  }
  if (!l.requires_grad) return;  // the loss depends on no input or parameter
  {
    Node& seed = nodes_[loss.index_];
    seed.grad = grads_.allocate(1);
    seed.grad[0] = T(1);
    seed.grad_epoch = epoch_;
  }
  sweep(loss.index_, options);
}

template <class T>
void Tape<T>::backward(std::span<const GradSeed<T>> seeds, const BackwardOptions& options) {
  if (options.second_order) {
    throw UsageError("backward: second_order takes one loss, not seeds: use backward(loss, ...)");
  }
  std::size_t top = 0;
  for (std::size_t k = 0; k < seeds.size(); ++k) {
    const Node& n = checked(seeds[k].node, "backward");
    if (seeds[k].grad.rows() != n.rows || seeds[k].grad.cols() != n.cols) {
      throw UsageError(fmt::format("backward: seed {} is {}x{} for node {} ({}), which is {}x{}", k,
                                   seeds[k].grad.rows(), seeds[k].grad.cols(), seeds[k].node.index_,
                                   op_name(seeds[k].node.index_), n.rows, n.cols));
    }
    for (std::size_t j = 0; j < k; ++j) {
      if (seeds[j].node.index_ == seeds[k].node.index_) {
        throw UsageError(fmt::format("backward: node {} ({}) is seeded twice (seeds {} and {})",
                                     seeds[k].node.index_, op_name(seeds[k].node.index_), j, k));
      }
    }
  }
  ++epoch_;
  backward_epoch_ = epoch_;
  grads_.reset();
  for (const GradSeed<T>& s : seeds) {
    Node& n = nodes_[s.node.index_];
    if (!n.requires_grad) continue;
    if (s.in_place) {
      n.grad = const_cast<T*>(s.grad.data());  // the caller's writable buffer (documented)
    } else {
      n.grad = grads_.allocate(static_cast<std::size_t>(n.rows * n.cols));
      MutMap<T>(n.grad, n.rows, n.cols) = s.grad;
    }
    n.grad_epoch = epoch_;
    top = std::max<std::size_t>(top, s.node.index_);
  }
  last_loss_ = top;
  sweep(top, options);
}

// ---- the reverse sweep on two threads ---------------------------------------------------------
//
// In a REWIND_OPENMP build with two threads a first-order sweep runs in one parallel region, each
// thread owning half of the rows (for a recurrent network: half of the batch) of every gradient
// whose op lets it: the rowwise ops, and the products and bias broadcasts for their row input
// (row_local_inputs). Through a recurrent chain of such ops no thread reads what the other
// wrote, so the threads meet only where the recording needs it: a barrier before an op that
// reads or writes a gradient in a way the other thread's writes since the last barrier do not
// match (a loss's reduction, a concat of time steps: thread 0 runs those alone). Per-product
// splitting (gemm.cpp) paid on the 2-core hosts only for products of hidden 512; here all of a
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

template <class T>
int Tape<T>::parallel_sweep(std::size_t top) {
#ifndef _OPENMP
  static_cast<void>(top);
  return 0;
#else
  if (anomaly_ || !detail::two_threads() || detail::split_policy() == detail::SplitPolicy::never) {
    return 0;
  }
  // With the measured policy (REWIND_SPLIT unset), only nodes of 16 rows or more split, and only
  // recordings whose splitting nodes hold 32 768 elements or more use two threads: small ones
  // would pay a region's start (about a microsecond) and its barriers for little. The bounds are
  // chosen, not tuned: every benchmark workload is far above them (rnn-128: 50 steps of 32 rows).
  // REWIND_SPLIT=always splits every node of two rows or more (tests reach the rare paths so).
  const bool always = detail::split_policy() == detail::SplitPolicy::always;
  const Index min_rows = always ? 2 : 16;
  const double min_elements = always ? 0 : 32768;
  // Whether n can run on two threads: its row inputs have its rows, and every other input that
  // takes a gradient is a leaf (whose gradient nothing reads before the sweep ends).
  const auto splits = [&](const Node& n, std::uint8_t local) {
    if (local == 0 || n.rows < min_rows || n.num_inputs > 8) return false;
    const std::uint32_t* in = edges_.data() + n.first_input;
    for (std::uint32_t k = 0; k < n.num_inputs; ++k) {
      const Node& x = nodes_[in[k]];
      if ((local >> k & 1) != 0 ? x.rows != n.rows : x.requires_grad && x.num_inputs != 0) {
        return false;
      }
    }
    return true;
  };
  // The leaves summed over rows by a node that splits: all of their contributions, from any
  // node, are deferred (so they keep the one-thread order); per leaf, its cost in multiply-adds.
  leaf_owner_.assign(top + 1, 0);
  std::vector<double> cost(top + 1, 0.0);
  double elements = 0;
  for (std::size_t i = 0; i <= top; ++i) {
    const Node& n = nodes_[i];
    if (n.num_inputs == 0 || !n.requires_grad) continue;
    const std::uint8_t local = row_local_of(n.op);
    if (!splits(n, local)) continue;
    elements += static_cast<double>(n.rows * n.cols);
    const std::uint32_t* in = edges_.data() + n.first_input;
    for (std::uint32_t k = 0; k < n.num_inputs; ++k) {
      const Node& x = nodes_[in[k]];
      if ((local >> k & 1) != 0 || !x.requires_grad) continue;
      leaf_owner_[in[k]] = 1;
    }
  }
  if (elements == 0 || elements < min_elements) return 0;
  const std::size_t edges = edges_.size();
  plan_.clear();
  deferred_.clear();
  plan_slot_.assign(edges, nullptr);
  plan_mode_.assign(edges, GradMode::none);
  // Per gradient buffer since the last barrier: -1 thread 0 alone, R both threads on the halves
  // of its R rows.
  std::unordered_map<const T*, Index> state;
  bool any_rows = false;
  for (std::size_t i = top + 1; i-- > 0;) {
    Node& n = nodes_[i];
    if (n.grad_epoch != epoch_ || n.num_inputs == 0) continue;
    prepare_slots(n, Sweep::grad);
    const int count = static_cast<int>(n.num_inputs);
    if (n.passes != 0 && std::none_of(modes_.begin(), modes_.end(),
                                      [](GradMode m) { return m != GradMode::none; })) {
      continue;  // every input shares n's buffer: nothing to run
    }
    const std::uint8_t local = row_local_of(n.op);
    const bool rows = splits(n, local);
    const std::uint32_t* in = edges_.data() + n.first_input;
    bool now = false;  // anything to run in the row phase
    for (int k = 0; k < count; ++k) {
      const std::size_t e = n.first_input + static_cast<std::size_t>(k);
      plan_mode_[e] = modes_[k];
      plan_slot_[e] = slots_[k].data;
      if (modes_[k] == GradMode::none) continue;
      const std::uint32_t xi = in[k];
      if (leaf_owner_[xi] != 0) {
        deferred_.emplace_back(static_cast<std::uint32_t>(i), static_cast<std::uint32_t>(k));
        cost[xi] +=
            static_cast<double>(n.rows) * static_cast<double>(nodes_[xi].rows * nodes_[xi].cols);
      } else {
        now = true;
      }
    }
    for (const auto& [k, offset] : accumulate_) plan_slot_[n.first_input + k] = nullptr;
    if (rows) {
      for (int k = 0; k < count; ++k) {
        if ((local >> k & 1) != 0) continue;
        const Node& x = nodes_[in[k]];
        if (const TensorRef<T> r = ref_of(x); r.packed != nullptr) {
          // Both threads multiply by this weight: pack it now, for both halves' row counts.
          const ConstMap<T> w(x.value, x.rows, x.cols);
          detail::prepare_weight(*r.packed, w, n.rows / 2);
          detail::prepare_weight(*r.packed, w, n.rows - n.rows / 2);
        }
      }
    }
    if (!now) continue;
    // The buffers n reads (its gradient) and writes in the row phase, and how.
    const auto each_buffer = [&](auto&& f) {
      f(n.grad, rows ? n.rows : Index{-1});
      for (int k = 0; k < count; ++k) {
        if (modes_[k] == GradMode::none || leaf_owner_[in[k]] != 0) continue;
        f(nodes_[in[k]].grad, rows && (local >> k & 1) != 0 ? n.rows : Index{-1});
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
    any_rows = any_rows || rows;
  }
  // The deferred leaves to the threads. A leaf whose every contribution is one product (a
  // weight's gradient, gradient_product) is shared: both threads compute each contribution, each
  // its pieces of the product (owner 3). The others go whole to one thread (owner 1 or 2), the
  // costliest first, each to the less loaded.
  std::vector<bool> shared(top + 1, true);
  for (const auto& [i, k] : deferred_) {
    const Node& n = nodes_[i];
    const std::uint8_t products = std::visit(
        [](const auto& o) { return product_gradient_inputs<std::decay_t<decltype(o)>>(); }, n.op);
    if ((products >> k & 1) == 0 || plan_slot_[n.first_input + k] == nullptr) {
      shared[edges_[n.first_input + k]] = false;
    }
  }
  std::vector<std::uint32_t> leaves;
  double load[2] = {0, 0};
  for (std::size_t i = 0; i <= top; ++i) {
    if (leaf_owner_[i] == 0) continue;
    if (shared[i]) {
      leaf_owner_[i] = 3;
      load[0] += cost[i] / 2;
      load[1] += cost[i] / 2;
    } else {
      leaves.push_back(static_cast<std::uint32_t>(i));
    }
  }
  // The shared leaves' terms, in sweep order: both threads run each leaf's together, each its
  // pieces of every product (detail::gradient_products).
  std::vector<TensorRef<T>> operands;
  for (const auto& [i, k] : deferred_) {
    const Node& n = nodes_[i];
    const std::uint32_t xi = edges_[n.first_input + k];
    if (leaf_owner_[xi] != 3) continue;
    operands.clear();
    for (std::uint32_t j = 0; j < n.num_inputs; ++j)
      operands.push_back(ref_of(nodes_[edges_[n.first_input + j]]));
    collect_product(n, Inputs<T>(operands.data(), static_cast<int>(n.num_inputs)),
                    static_cast<int>(k), plan_mode_[n.first_input + k]);
  }
  group_products();
  std::stable_sort(leaves.begin(), leaves.end(),
                   [&](std::uint32_t a, std::uint32_t b) { return cost[a] > cost[b]; });
  for (const std::uint32_t l : leaves) {
    const int t = load[1] < load[0] ? 1 : 0;
    leaf_owner_[l] = static_cast<std::uint8_t>(t + 1);
    load[t] += cost[l];
  }
  // Thread t of `threads`. After an error a thread keeps meeting the other at every barrier and
  // does nothing else; the first error is rethrown after the region.
  std::atomic<bool> failed{false};
  std::exception_ptr error[2];
  const auto run = [&](int t, int threads) {
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
      const Node& n = nodes_[s.node];
      const Index half = n.rows / 2;
      if (s.rows && threads == 2) {
        guarded([&] { run_planned(n, t == 0 ? 0 : half, t == 0 ? half : n.rows, true); });
      } else if (t == 0) {
        guarded([&] { run_planned(n, 0, n.rows, false); });
      }
    }
    if (threads == 2) {
#pragma omp barrier
    }
    guarded([&] {
      // The shared leaves: this thread's pieces of every product.
      const detail::ScopedProductShare share(threads == 2 ? detail::ProductShare{t, 2}
                                                          : detail::product_share());
      run_products();
    });
    for (const auto& [i, k] : deferred_) {
      const Node& n = nodes_[i];
      const std::uint8_t owner = leaf_owner_[edges_[n.first_input + k]];
      if (owner == 3 || (threads == 2 && owner != t + 1)) continue;
      guarded([&] { run_planned(n, 0, n.rows, false, static_cast<int>(k)); });
    }
  };
  if (any_rows) {
#pragma omp parallel num_threads(2)
    run(omp_get_thread_num(), 2);
  } else {
    run(0, 1);  // nothing split after all (no node that splits took a gradient)
  }
  for (const std::exception_ptr& e : error) {
    if (e) std::rethrow_exception(e);
  }
  return any_rows ? 2 : 1;
#endif
}

template <class T>
void Tape<T>::run_planned(const Node& n, Index r0, Index r1, bool rows, int only) {
  // Per thread: the op's inputs and slots (rows r0..r1 of the row inputs) and scratch.
  thread_local std::vector<TensorRef<T>> in, slots;
  thread_local std::vector<GradMode> modes;
  thread_local std::vector<T> scratch;
  const int count = static_cast<int>(n.num_inputs);
  const std::uint8_t local = rows ? row_local_of(n.op) : std::uint8_t{0};
  const std::uint32_t* edge = edges_.data() + n.first_input;
  const auto mode_of = [&](int k) {  // what this call computes for input k
    const bool deferred = leaf_owner_[edge[k]] != 0;
    const bool wanted = only >= 0 ? k == only : !deferred;
    return wanted ? plan_mode_[n.first_input + static_cast<std::size_t>(k)] : GradMode::none;
  };
  in.resize(static_cast<std::size_t>(count));
  slots.resize(static_cast<std::size_t>(count));
  modes.resize(static_cast<std::size_t>(count));
  std::size_t need = 0;
  for (int k = 0; k < count; ++k) {
    const Node& x = nodes_[edge[k]];
    const Index srows = (local >> k & 1) != 0 ? r1 - r0 : x.rows;
    if (mode_of(k) != GradMode::none &&
        plan_slot_[n.first_input + static_cast<std::size_t>(k)] == nullptr)
      need += static_cast<std::size_t>(srows * x.cols);
  }
  if (need > scratch.size()) scratch.resize(need);
  std::size_t offset = 0;
  for (int k = 0; k < count; ++k) {
    const auto kk = static_cast<std::size_t>(k);
    const Node& x = nodes_[edge[k]];
    const bool is_local = (local >> k & 1) != 0;
    TensorRef<T> r = ref_of(x);
    if (is_local) r = TensorRef<T>{r.data + r0 * x.cols, r1 - r0, x.cols, r.packed};
    in[kk] = r;
    const GradMode mode = mode_of(k);
    T* const buffer = plan_slot_[n.first_input + kk];
    const Index srows = is_local ? r1 - r0 : x.rows;
    T* data = nullptr;
    if (mode != GradMode::none) {
      if (buffer == nullptr) {
        data = scratch.data() + offset;
        offset += static_cast<std::size_t>(srows * x.cols);
      } else {
        data = is_local ? buffer + r0 * x.cols : buffer;
      }
    }
    slots[kk] = TensorRef<T>{data, srows, x.cols};
    modes[kk] = mode;
  }
  std::visit(
      [&](const auto& o) {
        using O = std::decay_t<decltype(o)>;
        if constexpr (!kIsLeaf<O>) {
          Grads<T> g(slots.data(), modes.data(), count);
          o.template backward<T>(Inputs<T>(in.data(), count),
                                 ConstMap<T>(n.value + r0 * n.cols, r1 - r0, n.cols),
                                 ConstMap<T>(n.grad + r0 * n.cols, r1 - r0, n.cols), g);
        }
      },
      n.op);
  // Scratch contributions into their buffers (this thread's rows of them).
  for (int k = 0; k < count; ++k) {
    const auto kk = static_cast<std::size_t>(k);
    if (modes[kk] == GradMode::none || plan_slot_[n.first_input + kk] != nullptr) continue;
    const Node& x = nodes_[edge[k]];
    T* target = x.grad + ((local >> k & 1) != 0 ? r0 * x.cols : 0);
    MutMap<T>(target, slots[kk].rows, x.cols) +=
        ConstMap<T>(slots[kk].data, slots[kk].rows, x.cols);
  }
}

template <class T>
void Tape<T>::collect_product(const Node& n, const Inputs<T>& x, int k, GradMode mode) {
  const auto [a, b] = std::visit(
      [&](const auto& o) -> std::pair<const T*, const T*> {
        using O = std::decay_t<decltype(o)>;
        if constexpr (product_gradient_inputs<O>() != 0) {
          return O::product_operands(x, static_cast<const T*>(n.grad), k);
        } else {
          throw std::logic_error("collect_product: the op has no product gradient");
        }
      },
      n.op);
  const std::uint32_t leaf = edges_[n.first_input + static_cast<std::uint32_t>(k)];
  pending_.push_back({leaf, {a, b, n.rows, mode == GradMode::add}});
  if (std::find(pending_leaves_.begin(), pending_leaves_.end(), leaf) == pending_leaves_.end())
    pending_leaves_.push_back(leaf);
}

template <class T>
void Tape<T>::defer_products(const Node& n) {
  const std::uint32_t* in = edges_.data() + n.first_input;
  const int count = static_cast<int>(n.num_inputs);
  for (int k = 0; k < count && k < 8; ++k) {
    const auto kk = static_cast<std::size_t>(k);
    if ((n.products >> k & 1) == 0 || modes_[kk] == GradMode::none) continue;
    const Node& x = nodes_[in[k]];
    if (x.num_inputs != 0 || slots_[kk].data != x.grad) continue;  // a leaf's own buffer only
    collect_product(n, Inputs<T>(refs_.data(), count), k, modes_[kk]);
    modes_[kk] = GradMode::none;
  }
  // Any other contribution to a leaf with collected terms comes after them.
  for (int k = 0; k < count; ++k) {
    if (modes_[static_cast<std::size_t>(k)] == GradMode::none) continue;
    if (std::find(pending_leaves_.begin(), pending_leaves_.end(), in[k]) != pending_leaves_.end()) {
      flush_products();
      return;
    }
  }
}

template <class T>
void Tape<T>::group_products() {
  terms_.clear();
  term_groups_.clear();
  for (const std::uint32_t leaf : pending_leaves_) {
    const std::size_t begin = terms_.size();
    for (const PendingTerm& p : pending_)
      if (p.leaf == leaf) terms_.push_back(p.term);
    term_groups_.push_back({leaf, begin, terms_.size()});
  }
  pending_.clear();
  pending_leaves_.clear();
}

template <class T>
void Tape<T>::run_products() const {
  for (const TermGroup& g : term_groups_) {
    const Node& x = nodes_[g.leaf];
    detail::gradient_products<T>(
        MutMap<T>(x.grad, x.rows, x.cols),
        std::span<const detail::GradientTerm<T>>(terms_.data() + g.begin, g.end - g.begin));
  }
}

template <class T>
void Tape<T>::flush_products() {
  if (pending_.empty()) return;
  group_products();
  run_products();
}

template <class T>
void Tape<T>::sweep(std::size_t top, const BackwardOptions& options) {
  const bool second = options.second_order;
  // Nodes after the loss cannot reach it; nodes without a gradient this epoch are skipped.
  pending_.clear();
  pending_leaves_.clear();
  const int parallel = second ? 0 : parallel_sweep(top);
  backward_threads_ = std::max(parallel, 1);
  // Collect the leaves' product terms (defer_products): not in a second-order sweep (the
  // gradient's tangent is computed node by node) nor in anomaly mode (which checks every
  // contribution as it is made).
  const bool collect = !second && !anomaly_;
  for (std::size_t i = parallel != 0 ? 0 : top + 1; i-- > 0;) {  // else swept already
    const Node& n = nodes_[i];
    if (n.grad_epoch != epoch_ || n.num_inputs == 0) continue;
    const int count = static_cast<int>(n.num_inputs);
    gather_inputs(n);
    prepare_slots(n, Sweep::grad);
    if (collect && (n.products != 0 || !pending_.empty())) defer_products(n);
    Grads<T> g(slots_.data(), modes_.data(), count);
    // Not when every input shares n's buffer (prepare_slots): there is nothing left to write.
    if (n.passes == 0 ||
        std::any_of(modes_.begin(), modes_.end(), [](GradMode m) { return m != GradMode::none; })) {
      call_backward(n, n.grad, g);
    }
    if (anomaly_) {
      for (int k = 0; k < count; ++k) {
        const TensorRef<T>& slot = slots_[static_cast<std::size_t>(k)];
        if (modes_[static_cast<std::size_t>(k)] == GradMode::none ||
            all_finite(ConstMap<T>(slot.data, slot.rows, slot.cols))) {
          continue;
        }
        const ConstMap<T> gy(n.grad, n.rows, n.cols);
        check_finite(op_name(i), n.scope,
                     fmt::format("the gradient it returns for input {} (incoming gradient in "
                                 "[{:g}, {:g}])",
                                 k, gy.minCoeff(), gy.maxCoeff()),
                     slots_[static_cast<std::size_t>(k)]);
      }
    }
    finish_slots(n, Sweep::grad);
    if (second) {
      // The gradient's tangent: backward applied to ġy, plus the derivative of the backward
      // along the tangents with gy fixed (the op's second-order term).
      if (!call_second_order_sweep(n, i)) {
        if (gtan_[i] != nullptr) {
          prepare_slots(n, Sweep::grad_tangent);
          Grads<T> gt(slots_.data(), modes_.data(), count);
          call_backward(n, gtan_[i], gt);
          finish_slots(n, Sweep::grad_tangent);
        }
        call_second_order(n, i);
      }
    }
  }
  flush_products();
  if (!options.accumulate_parameters) return;
  const auto add_into = [&](Matrix<T>& acc, const T* data, const Node& leaf, const char* what,
                            const Parameter<T>& p) {
    const ConstMap<T> g(data, leaf.rows, leaf.cols);
    if (acc.size() == 0) {
      acc = g;
    } else if (acc.rows() != leaf.rows || acc.cols() != leaf.cols) {
      throw UsageError(
          fmt::format("backward: parameter '{}' holds a {}x{} {} but was recorded as {}x{}", p.name,
                      acc.rows(), acc.cols(), what, leaf.rows, leaf.cols));
    } else {
      acc += g;
    }
  };
  for (const ParamSlot& s : params_) {
    const Node& leaf = nodes_[s.node];
    if (leaf.grad_epoch != epoch_) continue;
    add_into(s.param->grad, leaf.grad, leaf, "gradient", *s.param);
    if (second) {
      if (gtan_[s.node] != nullptr) {
        add_into(s.param->grad_tangent, gtan_[s.node], leaf, "gradient tangent", *s.param);
      } else if (s.param->grad_tangent.size() == 0) {
        s.param->grad_tangent.setZero(leaf.rows, leaf.cols);  // no tangent reached it: H·v = 0
      }
    }
  }
}

// ---- forward mode and second order ---------------------------------------------------------

template <class T>
void Tape<T>::set_tangent(const Var<T>& input, const Eigen::Ref<const Matrix<T>>& v) {
  const Node& n = checked(input, "set_tangent");
  if (!std::holds_alternative<ops::Input>(n.op)) {
    throw UsageError(
        fmt::format("set_tangent: node {} is {} {}, not an input: tangents are seeded on inputs "
                    "(Tape::input) and on parameters (Parameter::tangent)",
                    input.index_, n.num_inputs == 0 ? "a" : "an op", op_name(input.index_)));
  }
  if (v.rows() != n.rows || v.cols() != n.cols) {
    throw ShapeError(fmt::format("set_tangent: shapes differ: tangent is {}, input is {}",
                                 Shape{v.rows(), v.cols()}, Shape{n.rows, n.cols}));
  }
  T* data = nullptr;
  for (const auto& [node, d] : seeds_) {
    if (node == input.index_) data = d;
  }
  if (data == nullptr) {
    data = seed_values_.allocate(static_cast<std::size_t>(v.size()));
    seeds_.push_back({input.index_, data});
  }
  MutMap<T>(data, n.rows, n.cols) = v;
}

template <class T>
const T* Tape<T>::zeros(std::size_t size) {
  if (zeros_.size() < size) zeros_.resize(size);  // new elements are zero; none is ever written
  return zeros_.data();
}

template <class T>
bool Tape<T>::gather_tangents(const Node& n) {
  trefs_.clear();
  bool any = false;
  for (std::uint32_t k = 0; k < n.num_inputs; ++k) {
    const std::uint32_t xi = edges_[n.first_input + k];
    const Node& x = nodes_[xi];
    // const_cast: TensorRef is shared with gradient slots; tangents are only ever read here.
    T* data = const_cast<T*>(tan_[xi]);
    TensorRef<T> r{data, x.rows, x.cols};
    // A parameter's tangent is fixed for the sweep: products with it reuse one packing, as
    // products with the parameter do.
    if (const auto* p = std::get_if<ops::Param>(&x.op); p != nullptr && data != nullptr) {
      r.packed = tpacks_[p->slot].get();
    }
    trefs_.push_back(r);
    any = any || data != nullptr;
  }
  return any;
}

template <class T>
void Tape<T>::jvp() {
  tangents_.reset();
  tan_.assign(nodes_.size(), nullptr);
  tangent_nodes_ = 0;
  while (tpacks_.size() < params_.size())
    tpacks_.push_back(std::make_unique<detail::PackedWeight<T>>());
  for (auto& p : tpacks_) p->invalidate();  // the tangents may have changed
  for (const auto& [node, data] : seeds_) tan_[node] = data;
  for (const ParamSlot& s : params_) {
    const Matrix<T>& v = s.param->tangent;
    if (v.size() == 0) continue;
    const Node& leaf = nodes_[s.node];
    if (v.rows() != leaf.rows || v.cols() != leaf.cols) {
      throw ShapeError(fmt::format("jvp: parameter '{}': tangent is {}, parameter is {}",
                                   s.param->name, Shape{v.rows(), v.cols()},
                                   Shape{leaf.rows, leaf.cols}));
    }
    T* d = tangents_.allocate(static_cast<std::size_t>(v.size()));
    MutMap<T>(d, leaf.rows, leaf.cols) = v;
    tan_[s.node] = d;
  }
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    const Node& n = nodes_[i];
    if (n.num_inputs == 0 || !gather_tangents(n)) continue;
    call_tangent(i);
  }
  tangent_nodes_ = nodes_.size();
}

template <class T>
void Tape<T>::call_tangent(std::size_t i) {
  const Node& n = nodes_[i];
  std::visit(
      [&](const auto& o) {
        using O = std::decay_t<decltype(o)>;
        if constexpr (!kIsLeaf<O>) {
          if constexpr (stops_gradient<O>()) {
            return;  // detach: zero tangent, like its zero gradient
          } else if constexpr (aliases_input<O>()) {
            // A view of its input (reshape, slice_rows): the tangent is the same view of the
            // input's tangent.
            const Node& x = nodes_[edges_[n.first_input]];
            if (trefs_[0].data != nullptr) tan_[i] = trefs_[0].data + (n.value - x.value);
            return;
          } else {
            gather_inputs(n);
            T* dy = tangents_.allocate(static_cast<std::size_t>(n.rows * n.cols));
            tan_[i] = dy;
            tangent_rule(o, n, dy);
          }
        }
      },
      n.op);
}

template <class T>
template <class O>
void Tape<T>::tangent_rule(const O& o, const Node& n, T* dy_data) {
  const int count = static_cast<int>(n.num_inputs);
  MutMap<T> dy(dy_data, n.rows, n.cols);
  const ConstMap<T> y(n.value, n.rows, n.cols);
  const Inputs<T> x(refs_.data(), count);
  const Inputs<T> dx(trefs_.data(), count);
  constexpr Rules kind = rules<O>();
  if constexpr (kind == Rules::linear) {
    // The op is linear: its tangent is its forward on the tangents (zeros where none).
    // One zeros() call for all of them: a later, larger one may move the buffer.
    std::size_t largest = 0;
    for (const TensorRef<T>& t : trefs_) {
      if (t.data == nullptr) largest = std::max(largest, static_cast<std::size_t>(t.rows * t.cols));
    }
    if (largest > 0) {
      T* z = const_cast<T*>(zeros(largest));
      for (TensorRef<T>& t : trefs_) {
        if (t.data == nullptr) t.data = z;
      }
    }
    o.template forward<T>(dx, dy);
  } else if constexpr (kind == Rules::bilinear) {
    // ẏ = B(ȧ, b) + B(a, ḃ): the forward with one operand replaced by its tangent; b
    // keeps its packing in the first product.
    bool written = false;
    for (int k = 0; k < 2; ++k) {
      if (!dx.has(k)) continue;
      TensorRef<T> in[2] = {refs_[0], refs_[1]};
      in[k] = trefs_[static_cast<std::size_t>(k)];
      if (!written) {
        o.template forward<T>(Inputs<T>(in, 2), dy);
        written = true;
      } else {
        const auto size = static_cast<std::size_t>(n.rows * n.cols);
        if (tscratch_.size() < size) tscratch_.resize(size);
        MutMap<T> part(tscratch_.data(), n.rows, n.cols);
        o.template forward<T>(Inputs<T>(in, 2), part);
        dy += part;
      }
    }
  } else if constexpr (kind == Rules::elementwise || kind == Rules::piecewise_linear ||
                       kind == Rules::symmetric) {
    // A symmetric Jacobian: J·ẋ = Jᵀ·ẋ, the backward with gy := ẋ.
    const TensorRef<T> slot{dy_data, n.rows, n.cols};
    const GradMode mode = GradMode::assign;
    Grads<T> g(&slot, &mode, 1);
    o.template backward<T>(x, y, ConstMap<T>(trefs_[0].data, n.rows, n.cols), g);
  } else {
    o.template tangent<T>(x, y, dx, dy);
  }
}

template <class T>
void Tape<T>::call_second_order(const Node& n, std::size_t i) {
  std::visit(
      [&](const auto& o) {
        using O = std::decay_t<decltype(o)>;
        constexpr Rules kind = rules<O>();
        // Linear and piecewise-linear ops have no term; elementwise ones add theirs in
        // call_second_order_sweep, together with the backward of ġy.
        if constexpr (!kIsLeaf<O> && kind != Rules::linear && kind != Rules::piecewise_linear &&
                      kind != Rules::elementwise) {
          if (!gather_tangents(n)) return;  // no tangent reaches the op: its term is zero
          const int count = static_cast<int>(n.num_inputs);
          const ConstMap<T> y(n.value, n.rows, n.cols);
          const ConstMap<T> gy(n.grad, n.rows, n.cols);
          const Inputs<T> x(refs_.data(), count);
          const Inputs<T> dx(trefs_.data(), count);
          const T* dy_data =
              tan_[i] != nullptr ? tan_[i] : zeros(static_cast<std::size_t>(n.rows * n.cols));
          const ConstMap<T> dy(dy_data, n.rows, n.cols);
          if constexpr (kind == Rules::bilinear) {
            // S_a = backward_a with b := ḃ, S_b = backward_b with a := ȧ: input k's term comes
            // from the other operand's tangent.
            for (int k = 0; k < 2; ++k) {
              const int other = 1 - k;
              if (!dx.has(other)) continue;
              bool skip[2] = {true, true};
              skip[k] = false;
              prepare_slots(n, Sweep::grad_tangent, skip);
              if (modes_[static_cast<std::size_t>(k)] == GradMode::none) continue;
              TensorRef<T> in[2] = {refs_[0], refs_[1]};
              in[other] = trefs_[static_cast<std::size_t>(other)];
              Grads<T> g(slots_.data(), modes_.data(), 2);
              o.template backward<T>(Inputs<T>(in, 2), y, gy, g);
              finish_slots(n, Sweep::grad_tangent);
            }
          } else {
            prepare_slots(n, Sweep::grad_tangent);
            Grads<T> g(slots_.data(), modes_.data(), count);
            o.template second_order<T>(x, y, gy, dx, dy, g);
            finish_slots(n, Sweep::grad_tangent);
          }
        }
      },
      n.op);
}

template <class T>
bool Tape<T>::call_second_order_sweep(const Node& n, std::size_t i) {
  return std::visit(
      [&](const auto& o) -> bool {
        using O = std::decay_t<decltype(o)>;
        if constexpr (rules<O>() == Rules::elementwise) {
          // ġx = f'(x) ⊙ ġy + f''(x) ⊙ ẋ ⊙ gy: the backward on ġy, then the curvature added
          // into the same slot (one pass each, no scratch).
          const bool tangents = gather_tangents(n);
          if (!tangents && gtan_[i] == nullptr) return true;
          prepare_slots(n, Sweep::grad_tangent);
          Grads<T> g(slots_.data(), modes_.data(), 1);
          if (g.wants(0)) {
            if (gtan_[i] != nullptr) call_backward(n, gtan_[i], g);
            if (tangents) {
              o.template curvature<T>(
                  Inputs<T>(refs_.data(), 1), ConstMap<T>(n.value, n.rows, n.cols),
                  ConstMap<T>(n.grad, n.rows, n.cols), ConstMap<T>(trefs_[0].data, n.rows, n.cols),
                  g[0], gtan_[i] != nullptr || g.adds(0));
            }
          }
          finish_slots(n, Sweep::grad_tangent);
          return true;
        } else if constexpr (requires { &O::template second_order_sweep<T>; }) {
          const bool tangents = gather_tangents(n);
          if (!tangents && gtan_[i] == nullptr) return true;  // nothing to add
          const int count = static_cast<int>(n.num_inputs);
          const T* dy_data =
              tan_[i] != nullptr ? tan_[i] : zeros(static_cast<std::size_t>(n.rows * n.cols));
          prepare_slots(n, Sweep::grad_tangent);
          Grads<T> g(slots_.data(), modes_.data(), count);
          if (tangents) {
            o.template second_order_sweep<T>(
                Inputs<T>(refs_.data(), count), ConstMap<T>(n.value, n.rows, n.cols),
                ConstMap<T>(n.grad, n.rows, n.cols), gtan_[i], Inputs<T>(trefs_.data(), count),
                ConstMap<T>(dy_data, n.rows, n.cols), g);
          } else {
            call_backward(n, gtan_[i], g);
          }
          finish_slots(n, Sweep::grad_tangent);
          return true;
        } else {
          return false;
        }
      },
      n.op);
}

// ---- many directions at once ------------------------------------------------------------------

template <class T>
void Tape<T>::set_block_tangent(const Var<T>& input, const Eigen::Ref<const Matrix<T>>& v) {
  const Node& n = checked(input, "set_block_tangent");
  if (!std::holds_alternative<ops::Input>(n.op)) {
    throw UsageError(fmt::format(
        "set_block_tangent: node {} is {} {}, not an input: block tangents are seeded on inputs "
        "(Tape::input)",
        input.index_, n.num_inputs == 0 ? "a" : "an op", op_name(input.index_)));
  }
  if (v.cols() != n.cols || n.rows == 0 || v.rows() == 0 || v.rows() % n.rows != 0) {
    throw ShapeError(fmt::format(
        "set_block_tangent: tangents are {}, expected k·{} rows and {} columns for a {} input",
        Shape{v.rows(), v.cols()}, n.rows, n.cols, Shape{n.rows, n.cols}));
  }
  for (auto& [node, m] : block_seeds_) {
    if (node == input.index_) {
      m = v;
      return;
    }
  }
  block_seeds_.push_back({input.index_, Matrix<T>(v)});
}

template <class T>
void Tape<T>::jvp_block(Index k) {
  if (k < 1) throw UsageError(fmt::format("jvp_block: {} directions: need at least one", k));
  for (const auto& [node, m] : block_seeds_) {
    if (m.rows() != k * nodes_[node].rows) {
      throw ShapeError(fmt::format(
          "jvp_block: the block tangent of node {} ({}) holds {} directions, expected {}", node,
          label(node).empty() ? "input" : label(node), m.rows() / nodes_[node].rows, k));
    }
  }
  block_k_ = k;
  block_nodes_ = 0;
  block_tangents_.reset();
  btan_.assign(nodes_.size(), nullptr);
  bstride_.assign(nodes_.size(), 0);
  for (const auto& [node, m] : block_seeds_) {
    btan_[node] = m.data();
    bstride_[node] = static_cast<std::size_t>(nodes_[node].rows * nodes_[node].cols);
  }
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    if (nodes_[i].num_inputs != 0) block_tangent_node(i);
  }
  block_nodes_ = nodes_.size();
}

template <class T>
void Tape<T>::block_tangent_node(std::size_t i) {
  const Node& n = nodes_[i];
  const std::uint32_t* in = edges_.data() + n.first_input;
  bool any = false;
  for (std::uint32_t k = 0; k < n.num_inputs; ++k) any = any || btan_[in[k]] != nullptr;
  if (!any) return;
  std::visit(
      [&](const auto& o) {
        using O = std::decay_t<decltype(o)>;
        if constexpr (!kIsLeaf<O> && !stops_gradient<O>()) {
          if constexpr (aliases_input<O>()) {
            // The same view of each of the input's tangents: same stride, shifted start.
            const Node& x = nodes_[in[0]];
            btan_[i] = btan_[in[0]] + (n.value - x.value);
            bstride_[i] = bstride_[in[0]];
          } else {
            const auto size = static_cast<std::size_t>(n.rows * n.cols);
            T* dy = block_tangents_.allocate(size * static_cast<std::size_t>(block_k_));
            btan_[i] = dy;
            bstride_[i] = size;
            gather_inputs(n);
            const Node& x0 = nodes_[in[0]];
            bool lhs_only = btan_[in[0]] != nullptr &&
                            bstride_[in[0]] == static_cast<std::size_t>(x0.rows * x0.cols);
            for (std::uint32_t k = 1; k < n.num_inputs; ++k)
              lhs_only = lhs_only && btan_[in[k]] == nullptr;
            if constexpr (requires { &O::template tangent_lhs<T>; }) {
              if (lhs_only) {  // all k directions in one product
                o.template tangent_lhs<T>(Inputs<T>(refs_.data(), static_cast<int>(n.num_inputs)),
                                          ConstMap<T>(btan_[in[0]], x0.rows * block_k_, x0.cols),
                                          MutMap<T>(dy, n.rows * block_k_, n.cols));
                return;
              }
            }
            for (Index b = 0; b < block_k_; ++b) {
              trefs_.clear();
              for (std::uint32_t k = 0; k < n.num_inputs; ++k) {
                const Node& x = nodes_[in[k]];
                T* t = btan_[in[k]] == nullptr ? nullptr
                                               : const_cast<T*>(btan_[in[k]]) +
                                                     static_cast<std::size_t>(b) * bstride_[in[k]];
                trefs_.push_back({t, x.rows, x.cols});
              }
              tangent_rule(o, n, dy + static_cast<std::size_t>(b) * size);
            }
          }
        }
      },
      n.op);
}

template <class T>
Matrix<T> Tape<T>::block_tangent(const Var<T>& v) const {
  const Node& n = checked(v, "block_tangent");
  if (block_nodes_ == 0) {
    throw UsageError("block_tangent: no block tangents yet: call jvp_block(k) on this recording");
  }
  if (v.index_ >= block_nodes_) {
    throw UsageError(fmt::format(
        "block_tangent: node {} was recorded after the latest jvp_block: call it again", v.index_));
  }
  Matrix<T> out = Matrix<T>::Zero(n.rows * block_k_, n.cols);
  if (btan_[v.index_] == nullptr) return out;
  for (Index b = 0; b < block_k_; ++b) {
    out.middleRows(b * n.rows, n.rows) = ConstMap<T>(
        btan_[v.index_] + static_cast<std::size_t>(b) * bstride_[v.index_], n.rows, n.cols);
  }
  return out;
}

template <class T>
void Tape<T>::vjp_block(const Var<T>& output, const Eigen::Ref<const Matrix<T>>& seeds) {
  const Node& out = checked(output, "vjp_block");
  if (seeds.cols() != out.cols || out.rows == 0 || seeds.rows() == 0 ||
      seeds.rows() % out.rows != 0) {
    throw ShapeError(fmt::format(
        "vjp_block: cotangents are {}, expected k·{} rows and {} columns for a {} output",
        Shape{seeds.rows(), seeds.cols()}, out.rows, out.cols, Shape{out.rows, out.cols}));
  }
  block_rev_k_ = seeds.rows() / out.rows;
  block_rev_nodes_ = output.index_ + 1;
  block_grads_.reset();
  bgrad_.assign(nodes_.size(), nullptr);
  if (!out.requires_grad) return;
  T* seed = block_grads_.allocate(static_cast<std::size_t>(seeds.size()));
  MutMap<T>(seed, seeds.rows(), seeds.cols()) = seeds;
  bgrad_[output.index_] = seed;
  for (std::size_t i = std::size_t{output.index_} + 1; i-- > 0;) {
    if (bgrad_[i] != nullptr && nodes_[i].num_inputs != 0) block_backward_node(i);
  }
}

template <class T>
void Tape<T>::block_backward_node(std::size_t i) {
  const Node& n = nodes_[i];
  const int count = static_cast<int>(n.num_inputs);
  gather_inputs(n);
  prepare_slots(n, Sweep::block);
  bool wanted = false, lhs_only = modes_[0] != GradMode::none;
  for (int k = 0; k < count; ++k) {
    wanted = wanted || modes_[static_cast<std::size_t>(k)] != GradMode::none;
    if (k > 0) lhs_only = lhs_only && modes_[static_cast<std::size_t>(k)] == GradMode::none;
  }
  if (!wanted) return;
  const T* gy = bgrad_[i];
  const bool stacked = std::visit(
      [&](const auto& o) -> bool {
        using O = std::decay_t<decltype(o)>;
        if constexpr (requires { &O::template backward_lhs<T>; }) {
          if (lhs_only) {  // all k cotangents in one product
            const TensorRef<T>& s0 = slots_[0];
            o.template backward_lhs<T>(
                Inputs<T>(refs_.data(), count), ConstMap<T>(gy, n.rows * block_rev_k_, n.cols),
                MutMap<T>(s0.data, s0.rows, s0.cols), modes_[0] == GradMode::add);
            return true;
          }
        }
        return false;
      },
      n.op);
  if (!stacked) {
    bslots_ = slots_;
    const auto size = static_cast<std::size_t>(n.rows * n.cols);
    for (Index b = 0; b < block_rev_k_; ++b) {
      for (int k = 0; k < count; ++k) {
        const TensorRef<T>& s = bslots_[static_cast<std::size_t>(k)];
        const Index rows = s.rows / block_rev_k_;
        slots_[static_cast<std::size_t>(k)] = {
            s.data == nullptr ? nullptr : s.data + b * rows * s.cols, rows, s.cols};
      }
      Grads<T> g(slots_.data(), modes_.data(), count);
      call_backward(n, gy + static_cast<std::size_t>(b) * size, g);
    }
  }
  finish_slots(n, Sweep::block);
}

template <class T>
Matrix<T> Tape<T>::block_grad(const Var<T>& v) const {
  const Node& n = checked(v, "block_grad");
  if (block_rev_nodes_ == 0) {
    throw UsageError("block_grad: no block cotangents yet: call vjp_block on this recording");
  }
  if (v.index_ >= bgrad_.size() || bgrad_[v.index_] == nullptr)
    return Matrix<T>::Zero(n.rows * block_rev_k_, n.cols);
  return ConstMap<T>(bgrad_[v.index_], n.rows * block_rev_k_, n.cols);
}

template <class T>
void Tape<T>::hvp(const Var<T>& loss, BackwardOptions options) {
  checked(loss, "hvp");
  jvp();
  options.second_order = true;
  backward(loss, options);
}

template <class T>
const T* Tape<T>::tangent_of(std::uint32_t i, std::string_view who) {
  if (tangent_nodes_ == 0) {
    throw UsageError(fmt::format("{}: no tangents yet: call jvp() on this recording first", who));
  }
  if (i >= tangent_nodes_) {
    throw UsageError(
        fmt::format("{}: node {} was recorded after the latest jvp(): call jvp() again", who, i));
  }
  if (tan_[i] == nullptr) {  // no tangent reached it: zeros, kept so the view stays valid
    const auto size = static_cast<std::size_t>(nodes_[i].rows * nodes_[i].cols);
    T* z = tangents_.allocate(size);
    std::fill(z, z + size, T(0));
    tan_[i] = z;
  }
  return tan_[i];
}

template <class T>
const T* Tape<T>::grad_tangent_of(std::uint32_t i, std::string_view who) {
  if (backward_epoch_ == 0 || second_order_epoch_ != backward_epoch_) {
    throw UsageError(fmt::format(
        "{}: no gradient tangents: run backward(loss, {{.second_order = true}}) or hvp(loss) on "
        "this recording first",
        who));
  }
  if (i >= gtan_.size()) gtan_.resize(nodes_.size(), nullptr);  // recorded after the sweep
  if (gtan_[i] == nullptr) {  // none reached it: zeros, kept so the view stays valid
    const auto size = static_cast<std::size_t>(nodes_[i].rows * nodes_[i].cols);
    gtan_[i] = grad_tangents_.allocate(size);
    std::fill(gtan_[i], gtan_[i] + size, T(0));
  }
  return gtan_[i];
}

template <class T>
std::optional<ConstMap<T>> Tape<T>::tangent(std::size_t i) const {
  const Node& n = nodes_.at(i);
  if (i >= tangent_nodes_ || tan_[i] == nullptr) return std::nullopt;
  return ConstMap<T>(tan_[i], n.rows, n.cols);
}

template <class T>
std::optional<ConstMap<T>> Tape<T>::grad_tangent(std::size_t i) const {
  const Node& n = nodes_.at(i);
  if (backward_epoch_ == 0 || second_order_epoch_ != backward_epoch_ || i >= gtan_.size() ||
      gtan_[i] == nullptr) {
    return std::nullopt;
  }
  return ConstMap<T>(gtan_[i], n.rows, n.cols);
}

template <class T>
T* Tape<T>::grad_of(std::uint32_t i) {
  if (backward_epoch_ == 0) {
    throw UsageError("grad: no gradient yet: call backward() on this recording first");
  }
  Node& n = nodes_[i];
  if (n.grad_epoch != epoch_) {  // no gradient reached this node: it is zero
    n.grad = grads_.allocate(static_cast<std::size_t>(n.rows * n.cols));
    MutMap<T>(n.grad, n.rows, n.cols).setZero();
    n.grad_epoch = epoch_;
  }
  return n.grad;
}

// ---- clear and scopes ---------------------------------------------------------------------------

template <class T>
void Tape<T>::clear() {
  nodes_.clear();
  edges_.clear();
  values_.reset();
  grads_.reset();
  indices_.reset();
  labels_.clear();
  params_.clear();
  customs_.clear();
  tangents_.reset();
  grad_tangents_.reset();
  seed_values_.reset();
  seeds_.clear();
  tan_.clear();
  gtan_.clear();
  tangent_nodes_ = 0;
  block_tangents_.reset();
  block_grads_.reset();
  block_seeds_.clear();
  btan_.clear();
  bstride_.clear();
  bgrad_.clear();
  block_nodes_ = block_rev_nodes_ = 0;
  block_k_ = block_rev_k_ = 0;
  // Keep the open scopes (guards still alive) as the new chain from the root.
  std::vector<std::string> open;
  for (std::uint32_t s = current_scope_; s != 0; s = scopes_[s].parent) {
    open.push_back(std::move(scopes_[s].name));
  }
  scopes_.resize(1);
  current_scope_ = 0;
  for (auto it = open.rbegin(); it != open.rend(); ++it) {
    scopes_.push_back(ScopeEntry{current_scope_, std::move(*it)});
    current_scope_ = static_cast<std::uint32_t>(scopes_.size() - 1);
  }
  ++generation_;
  backward_epoch_ = 0;
}

template <class T>
void Tape<T>::hold_parameters(bool on) {
  if (hold_ && !on) {
    for (auto& p : packs_) p->invalidate();
    std::fill(pack_owner_.begin(), pack_owner_.end(), nullptr);
  }
  hold_ = on;
}

template <class T>
ScopeGuard<T> Tape<T>::scope(std::string_view name) {
  if (name.empty() || name.find('/') != std::string_view::npos) {
    throw UsageError(
        fmt::format("scope: invalid name '{}': names are non-empty and contain no '/'", name));
  }
  scopes_.push_back(ScopeEntry{current_scope_, std::string(name)});
  current_scope_ = static_cast<std::uint32_t>(scopes_.size() - 1);
  return ScopeGuard<T>(this);
}

template <class T>
void Tape<T>::pop_scope() {
  current_scope_ = scopes_[current_scope_].parent;
}

// ---- introspection ------------------------------------------------------------------------------

template <class T>
Var<T> Tape<T>::var(std::size_t i) const {
  if (i >= nodes_.size()) {
    throw UsageError(
        fmt::format("var: node {} does not exist: the tape holds {}", i, nodes_.size()));
  }
  return Var<T>(const_cast<Tape*>(this), static_cast<std::uint32_t>(i), generation_);
}

template <class T>
std::string_view Tape<T>::op_name(std::size_t i) const {
  const Op& o = nodes_.at(i).op;
  if (const auto* c = std::get_if<ops::Custom>(&o)) return c->fn->name();
  return rwd::op_name(o);
}

template <class T>
std::span<const std::uint32_t> Tape<T>::inputs_of(std::size_t i) const {
  const Node& n = nodes_.at(i);
  return {edges_.data() + n.first_input, n.num_inputs};
}

template <class T>
Shape Tape<T>::shape(std::size_t i) const {
  const Node& n = nodes_.at(i);
  return {n.rows, n.cols};
}

template <class T>
ConstMap<T> Tape<T>::value(std::size_t i) const {
  const Node& n = nodes_.at(i);
  return ConstMap<T>(n.value, n.rows, n.cols);
}

template <class T>
std::optional<ConstMap<T>> Tape<T>::grad(std::size_t i) const {
  const Node& n = nodes_.at(i);
  if (backward_epoch_ == 0 || n.grad_epoch != epoch_) return std::nullopt;
  return ConstMap<T>(n.grad, n.rows, n.cols);
}

template <class T>
std::string_view Tape<T>::label(std::size_t i) const {
  return std::visit(
      [&](const auto& o) -> std::string_view {
        if constexpr (requires { o.label; }) {
          return labels_[o.label];
        } else {
          return {};
        }
      },
      nodes_.at(i).op);
}

template <class T>
std::string Tape<T>::scope_path(std::size_t i) const {
  return scope_string(nodes_.at(i).scope);
}

template <class T>
std::string Tape<T>::scope_string(std::uint32_t scope) const {
  std::vector<std::string_view> parts;
  for (std::uint32_t s = scope; s != 0; s = scopes_[s].parent) {
    parts.push_back(scopes_[s].name);
  }
  std::string path;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    if (!path.empty()) path += '/';
    path += *it;
  }
  return path;
}

template <class T>
std::size_t Tape<T>::capacity_bytes() const {
  return nodes_.capacity() * sizeof(Node) + edges_.capacity() * sizeof(std::uint32_t) +
         (values_.capacity() + grads_.capacity() + scratch_.capacity()) * sizeof(T) +
         indices_.capacity() * sizeof(std::int32_t) +
         (refs_.capacity() + slots_.capacity()) * sizeof(TensorRef<T>) +
         shapes_.capacity() * sizeof(Shape) + modes_.capacity() +
         split_.capacity() * sizeof(TensorRef<T>) +
         accumulate_.capacity() * sizeof(accumulate_[0]) + scopes_.capacity() * sizeof(ScopeEntry) +
         labels_.capacity() * sizeof(std::string) + params_.capacity() * sizeof(ParamSlot) +
         customs_.capacity() * sizeof(std::shared_ptr<const CustomOpBase>) + packed_bytes() +
         (tangents_.capacity() + grad_tangents_.capacity() + seed_values_.capacity() +
          zeros_.capacity() + tscratch_.capacity() + block_tangents_.capacity() +
          block_grads_.capacity()) *
             sizeof(T) +
         (tan_.capacity() + gtan_.capacity()) * sizeof(T*) + seeds_.capacity() * sizeof(seeds_[0]) +
         trefs_.capacity() * sizeof(TensorRef<T>) + plan_.capacity() * sizeof(PlanStep) +
         plan_slot_.capacity() * sizeof(T*) + plan_mode_.capacity() + leaf_owner_.capacity() +
         deferred_.capacity() * sizeof(deferred_[0]);
}

template <class T>
std::size_t Tape<T>::packed_bytes() const {
  std::size_t b = packs_.capacity() * sizeof(packs_[0]);
  for (const auto& p : packs_) b += sizeof(*p) + p->capacity() * sizeof(T);
  b += tpacks_.capacity() * sizeof(tpacks_[0]);
  for (const auto& p : tpacks_) b += sizeof(*p) + p->capacity() * sizeof(T);
  return b;
}

template class Tape<float>;
template class Tape<double>;

}  // namespace rwd
