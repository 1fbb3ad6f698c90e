// The tape: a flat record of every op since the last clear(), and the reverse sweep over it.
//
// Storage is a vector of small trivially-copyable node records (op + attributes, input range,
// scope, shape) plus chunked arenas for values and gradients. Recording order is topological,
// so backward is one reverse loop: no recursion, no shared_ptr graph, no global "current tape".
// A Var is a handle (tape, index, generation); clear() bumps the generation so old handles
// are detected, and keeps every buffer so a training loop reaches a flat memory footprint.
//
// backward(loss), and calling it again. Each backward recomputes every node gradient on the
// tape from scratch (Var::grad reflects the latest loss only) and *adds* each parameter's
// gradient into Parameter::grad, as PyTorch accumulates into .grad: two backward calls on two
// losses of one recording leave dL1/dp + dL2/dp in p.grad. Zero parameter gradients between
// steps (Parameter::zero_grad, or an optimizer's zero_grad).
//
// Second order, on the same recording (ADOL-C's hess_vec, CppAD's Forward(1) + Reverse(2)):
// jvp() is a tangent sweep forward over the recorded nodes, ẏ = J·ẋ from seeds on inputs
// (set_tangent) and parameters (Parameter::tangent); backward(loss, {.second_order = true})
// then sweeps back the gradient and its tangent together: every node's grad_tangent() is the
// derivative of its gradient along the tangents, H·v when the tangents are v. Nothing is
// re-recorded; each op's tangent and second-order rules are in ops/ (op_support.hpp). hvp(loss)
// does both. An HVP costs about three gradients; it needs two more buffers per node.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rewind/autograd/arena.hpp"
#include "rewind/autograd/errors.hpp"
#include "rewind/autograd/parameter.hpp"
#include "rewind/autograd/registry.hpp"
#include "rewind/autograd/tensor.hpp"

namespace rwd {

template <class T>
class Tape;

/// A handle to a tensor recorded on a tape. Cheap to copy; owns nothing. It goes stale when its
/// tape is cleared, and then every accessor throws UsageError.
template <class T>
class Var {
 public:
  Var() = default;

  /// The recorded value. The view stays valid until the tape is cleared.
  ConstMap<T> value() const;
  /// d(loss)/d(this) from the latest backward (zeros if no gradient reached this node). Valid
  /// until the next backward or clear. Throws UsageError before any backward.
  ConstMap<T> grad() const;
  /// The value of a 1x1 tensor.
  T item() const;
  /// ẏ from the latest jvp() (zeros where no tangent reached this node). Valid until the next
  /// jvp or clear. Throws UsageError before any jvp on this recording.
  ConstMap<T> tangent() const;
  /// The derivative of grad() along the tangents, from the latest second-order backward: H·v
  /// for an input when the tangents are v. Throws UsageError before any.
  ConstMap<T> grad_tangent() const;
  Shape shape() const;
  Index rows() const { return shape().rows; }
  Index cols() const { return shape().cols; }
  /// False for a default-constructed handle or one whose tape was cleared since.
  bool valid() const;
  Tape<T>& tape() const;
  std::uint32_t index() const { return index_; }

 private:
  friend class Tape<T>;
  Var(Tape<T>* tape, std::uint32_t index, std::uint32_t generation)
      : tape_(tape), index_(index), generation_(generation) {}
  Tape<T>* tape_ = nullptr;
  std::uint32_t index_ = 0;
  std::uint32_t generation_ = 0;
};

/// RAII guard from Tape::scope: nodes recorded while it lives carry the scope.
template <class T>
class [[nodiscard]] ScopeGuard {
 public:
  ScopeGuard(const ScopeGuard&) = delete;
  ScopeGuard& operator=(const ScopeGuard&) = delete;
  ~ScopeGuard();

 private:
  friend class Tape<T>;
  explicit ScopeGuard(Tape<T>* tape) : tape_(tape) {}
  Tape<T>* tape_;
};

struct BackwardOptions {
  /// Add the parameters' gradients into Parameter::grad (the usual case). Diagnostics that run
  /// extra sweeps over a recording turn it off so a training step's gradients stay as they are.
  bool accumulate_parameters = true;
  /// Also sweep the gradients' tangents (needs a jvp() of this recording first): every node's
  /// grad_tangent() and, added like grad, Parameter::grad_tangent.
  bool second_order = false;
};

/// One starting gradient of a multi-output reverse sweep (Tape::backward with seeds).
template <class T>
struct GradSeed {
  Var<T> node;
  ConstMap<T> grad;  ///< the node's shape; read during the call only
  /// The sweep adds into `grad`'s own memory (which must be writable and outlive the
  /// recording) instead of a copy: after it, that memory holds the node's gradient. Carries a
  /// gradient across recordings without copying it.
  bool in_place = false;
};

template <class T>
class Tape {
 public:
  using Scalar = T;

  Tape();
  ~Tape();
  Tape(const Tape&) = delete;  // Vars point at their tape: it must not move.
  Tape& operator=(const Tape&) = delete;

  // ---- leaves -------------------------------------------------------------------------------
  /// A tensor that receives a gradient. The value is copied onto the tape.
  Var<T> input(const Eigen::Ref<const Matrix<T>>& value, std::string_view label = {});
  /// A tensor that receives no gradient (data, targets, masks). The value is copied.
  Var<T> constant(const Eigen::Ref<const Matrix<T>>& value, std::string_view label = {});
  /// The leaf bound to a parameter: its value is copied once per recording (later calls return
  /// the same leaf), and after backward the leaf's gradient is added into `p.grad`. The
  /// parameter must outlive the recording.
  Var<T> param(Parameter<T>& p);
  /// The parameters recorded since the last clear(), in the order of their first use.
  std::vector<Parameter<T>*> parameters() const {
    std::vector<Parameter<T>*> out;
    for (const ParamSlot& s : params_) out.push_back(s.param);
    return out;
  }
  /// The leaf bound to `p` in this recording, if it was recorded.
  std::optional<std::size_t> find_param(const Parameter<T>& p) const {
    for (const ParamSlot& s : params_) {
      if (s.param == &p) return s.node;
    }
    return std::nullopt;
  }

  // ---- ops ----------------------------------------------------------------------------------
  /// Records one primitive: checks the inputs (same tape, not stale, arity, shapes) and runs
  /// its forward. The free functions in functional.hpp are thin wrappers around this.
  Var<T> record(const Op& op, std::span<const Var<T>> inputs);
  Var<T> record(const Op& op, std::initializer_list<Var<T>> inputs) {
    return record(op, std::span<const Var<T>>(inputs.begin(), inputs.size()));
  }
  /// Records a user-defined primitive; the tape keeps `fn` alive until clear().
  Var<T> record_custom(std::shared_ptr<const CustomOp<T>> fn, std::span<const Var<T>> inputs);
  /// Copies integer data (class targets, embedding ids) onto the tape; the span stays valid
  /// until clear(). Ops that take indices keep such a span as an attribute.
  std::span<const std::int32_t> store_indices(std::span<const std::int32_t> data);

  // ---- gradients ----------------------------------------------------------------------------
  /// Reverse sweep from a 1x1 loss. Nodes that do not depend on an input or parameter, or from
  /// which the loss cannot be reached, are skipped. See the file comment for repeated calls.
  void backward(const Var<T>& loss, const BackwardOptions& options = {});
  /// Reverse sweep from several nodes at once, each starting with its seed (a vector-Jacobian
  /// product; backward(loss) is the seed 1 on the loss). A seed on a parameter leaf is that
  /// leaf's gradient before any consumer adds to it, so a sweep can continue a gradient summed
  /// over earlier recordings in exactly plain backward's order (checkpointed BPTT does). Seeds
  /// on nodes that need no gradient are ignored; a node seeded twice, a seed of the wrong shape
  /// or second_order throw UsageError.
  void backward(std::span<const GradSeed<T>> seeds, const BackwardOptions& options = {});

  // ---- forward mode and second order -------------------------------------------------------
  /// Seeds the tangent of an input leaf (Tape::input) for the next jvp(); `v` has its shape.
  /// Seeds stay until clear(); setting one again replaces it. Parameters are seeded with
  /// Parameter::tangent instead.
  void set_tangent(const Var<T>& input, const Eigen::Ref<const Matrix<T>>& v);
  /// Tangent sweep over the recording: ẏ = J·ẋ for every node (Var::tangent), from the seeds
  /// of set_tangent and the non-empty Parameter::tangent of every recorded parameter, read now.
  /// Unseeded leaves have zero tangent. Throws UsageError at a custom op without a tangent rule.
  void jvp();
  /// jvp() and then backward(loss, second_order): the gradient and H·v in one call.
  void hvp(const Var<T>& loss, BackwardOptions options = {});
  /// Node i's tangent from the latest jvp, if any reached it.
  std::optional<ConstMap<T>> tangent(std::size_t i) const;
  /// Node i's gradient tangent from the latest second-order backward, if any reached it.
  std::optional<ConstMap<T>> grad_tangent(std::size_t i) const;

  // ---- many directions at once (Jacobian-matrix products) -----------------------------------
  /// Seeds k tangent directions of an input leaf for the next jvp_block(k): `v` is
  /// (k·rows)×cols, direction j in rows [j·rows, (j+1)·rows). Replaces an earlier block seed of
  /// the leaf; block seeds stay until clear().
  void set_block_tangent(const Var<T>& input, const Eigen::Ref<const Matrix<T>>& v);
  /// k tangent sweeps in one: J·V for the k seeded directions (unseeded inputs and parameters
  /// have zero tangent). Each node holds its k tangents as one block; a product whose weight has
  /// no tangent multiplies all k at once (one GEMM with k times the rows, not k GEMMs), other
  /// ops run their tangent rule once per direction. Independent of jvp(): neither overwrites
  /// the other's tangents. Throws UsageError when a block seed is not k times its leaf's rows.
  void jvp_block(Index k);
  /// Node v's k tangents from the latest jvp_block, stacked: (k·rows)×cols, zeros where none.
  Matrix<T> block_tangent(const Var<T>& v) const;
  /// k reverse sweeps in one: from `output` (any shape) with k cotangents U stacked in
  /// `seeds` ((k·rows)×cols), every node before it gets Uᵀ·∂output/∂node, k blocks stacked
  /// (block_grad). Parameters get none (their k gradients are k ordinary backwards) and
  /// nothing is added into Parameter::grad; backward()'s gradients are left as they are.
  void vjp_block(const Var<T>& output, const Eigen::Ref<const Matrix<T>>& seeds);
  /// Node v's k cotangents from the latest vjp_block, stacked: (k·rows)×cols, zeros where none.
  Matrix<T> block_grad(const Var<T>& v) const;

  /// Anomaly mode: every value an op records and every gradient it returns is checked as it is
  /// made; the first NaN or Inf throws NumericalError naming the op, its scope, its input shapes
  /// and their ranges. Off by default; it costs one pass over each tensor (see the README).
  void set_anomaly_mode(bool on) { anomaly_ = on; }
  bool anomaly_mode() const { return anomaly_; }

  /// Held parameters: the caller promises that no parameter value changes until it turns this
  /// off (one training step recorded piecewise, as checkpointed BPTT does). While on, param(p)
  /// reads p.value in place instead of copying it, and the packing a product made of p's weight
  /// in an earlier recording is reused. Turning it off drops those packings.
  void hold_parameters(bool on);
  bool parameters_held() const { return hold_; }

  /// Forgets the recording (all Vars go stale) and keeps every buffer for the next one.
  /// Scopes that are open stay open.
  void clear();

  /// Names the region until the guard dies: nodes record the scope path (`layer0/fwd/t3/f`).
  /// Names are non-empty and contain no '/'.
  ScopeGuard<T> scope(std::string_view name);

  // ---- introspection (graphs, diagnostics, tests) --------------------------------------------
  std::size_t size() const { return nodes_.size(); }
  std::uint32_t generation() const { return generation_; }
  /// A handle to node i of the current recording.
  Var<T> var(std::size_t i) const;
  const Op& op(std::size_t i) const { return nodes_.at(i).op; }
  /// The op's name; a custom op's own name.
  std::string_view op_name(std::size_t i) const;
  std::span<const std::uint32_t> inputs_of(std::size_t i) const;
  Shape shape(std::size_t i) const;
  ConstMap<T> value(std::size_t i) const;
  /// The gradient node i received in the latest backward, if any.
  std::optional<ConstMap<T>> grad(std::size_t i) const;
  bool requires_grad(std::size_t i) const { return nodes_.at(i).requires_grad; }
  /// A leaf's label ("" for other nodes and unlabelled leaves); a parameter's name.
  std::string_view label(std::size_t i) const;
  /// "layer0/fwd/t3/f", or "" at the top level.
  std::string scope_path(std::size_t i) const;
  /// The scope path nodes recorded now would get.
  std::string current_scope() const { return scope_string(current_scope_); }
  /// Whether backward ran since the last clear().
  bool has_backward() const { return backward_epoch_ != 0; }
  /// How many threads ran the latest first-order backward sweep: 2 where it ran in one parallel
  /// region, each thread on half of the rows (a REWIND_OPENMP build with two threads and a
  /// recording big enough: docs/benchmarks.md), else 1. The gradients agree with the one-thread
  /// sweep's to rounding (products over half the rows) and are the same bits on every run.
  int backward_threads() const { return backward_threads_; }
  /// The node the latest backward started from.
  std::optional<std::size_t> last_loss() const {
    if (backward_epoch_ == 0) return std::nullopt;
    return last_loss_;
  }
  /// What node i's op sent to its k-th input in the latest backward: that input's gradient is
  /// the sum of these over its consumers (e.g. one time step's share of dL/dW). Recomputed by
  /// calling the op's backward again; zeros if node i received no gradient.
  Matrix<T> contribution(std::size_t i, int k);
  /// Bytes of storage held across clear() (node records, arenas, tables).
  std::size_t capacity_bytes() const;

 private:
  friend class Var<T>;
  friend class ScopeGuard<T>;

  struct Node {
    Op op;
    T* value = nullptr;
    T* grad = nullptr;
    Index rows = 0;
    Index cols = 0;
    std::uint32_t first_input = 0;
    std::uint32_t num_inputs = 0;
    std::uint32_t scope = 0;
    std::uint32_t grad_epoch = 0;  // grad is valid iff grad_epoch == epoch_
    std::uint32_t uses = 0;        // edges into this node: how many times ops consume it
    bool requires_grad = false;
    bool accumulates = false;   // the op adds into an existing input gradient (Grads::put)
    std::uint8_t passes = 0;    // passes_gradient<op>(): inputs whose gradient is gy itself
    std::uint8_t products = 0;  // product_gradient_inputs<op>(): a weight's one product
  };
  struct ScopeEntry {
    std::uint32_t parent = 0;
    std::string name;
  };
  struct ParamSlot {
    Parameter<T>* param = nullptr;
    std::uint32_t node = 0;
  };

  Var<T> record_in_scope(const Op& op, std::span<const Var<T>> inputs);
  // The reverse sweep from node `top` down, once the seeds hold their gradients.
  void sweep(std::size_t top, const BackwardOptions& options);
  const Node& checked(const Var<T>& v, std::string_view who) const;
  void gather_inputs(const Node& n);             // fills refs_ with n's inputs
  void set_ref(TensorRef<T>& r, const Node& x);  // r = x's view (packing for a parameter)
  TensorRef<T> ref_of(const Node& x);
  std::size_t packed_bytes() const;
  // A rowwise op on many elements, in a REWIND_OPENMP build with 2+ threads: f(r0, r1, inputs,
  // slots) on two threads, each over half of the rows. False (nothing run) otherwise.
  template <class F>
  bool split_rows(Index rows, Index cols, const TensorRef<T>* in, const TensorRef<T>* slots,
                  int count, F&& f);
  // n's backward with incoming gradient gy (n.grad, or its tangent in a second-order sweep).
  void call_backward(const Node& n, const T* gy, Grads<T>& g);
  // The first-order sweep on two threads, each owning half of the rows (tape.cpp): the threads
  // it ran on (1 when its plan split nothing), or 0, nothing done, where it does not apply.
  int parallel_sweep(std::size_t top);
  // One planned node of parallel_sweep: rows r0..r1 of its row inputs (rows: as a row-split
  // step) and the inputs whose gradient is not deferred; or (only >= 0) that deferred input alone.
  void run_planned(const Node& n, Index r0, Index r1, bool rows, int only = -1);
  // Which per-node buffers a reverse sweep writes: gradients, gradient tangents (second order),
  // or the k stacked cotangents of vjp_block.
  enum class Sweep : unsigned char { grad, grad_tangent, block };
  // Fills slots_/modes_ for n's inputs in the sweep's buffers: an input's first contribution
  // goes straight into its buffer; later ones are added by ops with kAccumulates, or go to
  // scratch that finish_slots adds. Inputs k with skip[k] get no slot (mode none); skip may be
  // null. A block sweep's slots are k stacked blocks and skip parameter leaves.
  void prepare_slots(const Node& n, Sweep sweep, const bool* skip = nullptr);
  void finish_slots(const Node& n, Sweep sweep);
  // The one-thread first-order sweep collects a leaf's product terms (kProductGradientInputs:
  // a weight's gradient, one product per use) in sweep order instead of running them at once,
  // and runs each leaf's together (detail::gradient_products: a large weight's gradient is then
  // read and written once a sweep, tile by tile, not once per use); same bits either way.
  // defer_products takes n's terms out of slots_/modes_ (after prepare_slots, refs_ gathered);
  // a contribution of any other kind to a leaf with collected terms runs them first, so every
  // leaf's gradient is summed in sweep order.
  // group_products moves pending_ into terms_, one run per leaf (term_groups_), and
  // run_products runs them (the parallel sweep: on both threads, each its share).
  void defer_products(const Node& n);
  void flush_products();
  void group_products();
  void run_products() const;
  // Adds n's product term for input k (its operands from product_operands, x: n's inputs) to
  // pending_, assigned or added by `mode`.
  void collect_product(const Node& n, const Inputs<T>& x, int k, GradMode mode);
  struct PendingTerm {
    std::uint32_t leaf = 0;
    detail::GradientTerm<T> term;
  };
  struct TermGroup {
    std::uint32_t leaf = 0;
    std::size_t begin = 0, end = 0;
  };
  std::vector<PendingTerm> pending_;
  std::vector<std::uint32_t> pending_leaves_;  // the distinct leaves in pending_
  std::vector<detail::GradientTerm<T>> terms_;
  std::vector<TermGroup> term_groups_;
  // The tangent rule and the second-order term of node n (second-order sweep).
  void call_tangent(std::size_t i);
  // o's single-direction tangent rule into dy, from refs_ (inputs) and trefs_ (their tangents).
  template <class O>
  void tangent_rule(const O& o, const Node& n, T* dy);
  void block_tangent_node(std::size_t i);
  void block_backward_node(std::size_t i);
  void call_second_order(const Node& n, std::size_t i);
  bool call_second_order_sweep(const Node& n, std::size_t i);  // false: the op has no fused one
  // refs_ for n's inputs' tangents (null data where none); true if any has one.
  bool gather_tangents(const Node& n);
  const T* zeros(std::size_t size);  // `size` zeros, valid until the next call
  void check_finite(std::string_view op, std::uint32_t scope, std::string_view what,
                    const TensorRef<T>& t) const;
  std::string scope_string(std::uint32_t scope) const;
  Var<T> leaf(const Op& op, const Eigen::Ref<const Matrix<T>>& value, bool requires_grad);
  std::uint32_t add_label(std::string_view label);
  T* grad_of(std::uint32_t i);  // gradient for reading: zeros when none flowed
  const T* tangent_of(std::uint32_t i, std::string_view who);       // zeros when none
  const T* grad_tangent_of(std::uint32_t i, std::string_view who);  // zeros when none
  void pop_scope();

  std::vector<Node> nodes_;
  std::vector<std::uint32_t> edges_;
  detail::Arena<T> values_;
  detail::Arena<T> grads_;
  detail::Arena<std::int32_t> indices_;
  std::vector<T> scratch_;
  std::vector<TensorRef<T>> refs_;
  std::vector<TensorRef<T>> slots_;
  std::vector<Shape> shapes_;
  std::vector<GradMode> modes_;
  std::vector<TensorRef<T>> split_;  // row halves of inputs and slots (split_rows)
  // parallel_sweep's plan: the nodes in sweep order; per edge (node input), the gradient buffer
  // its op writes (null: the thread's scratch, then added) and how; per node, which thread
  // computes a leaf's summed-over-rows gradient after the region (0: none, it is not deferred;
  // 1 or 2: thread 0 or 1; 3: both, each its pieces of every product), and the deferred
  // (node, input) pairs in sweep order. Kept across clear() like the other buffers (and counted
  // in capacity_bytes).
  struct PlanStep {
    std::uint32_t node = 0;
    bool rows = false;     // both threads, half of the rows each; else thread 0, all rows
    bool barrier = false;  // both threads wait for each other first
  };
  std::vector<PlanStep> plan_;
  std::vector<T*> plan_slot_;
  std::vector<GradMode> plan_mode_;
  std::vector<std::uint8_t> leaf_owner_;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> deferred_;
  std::vector<std::pair<std::uint32_t, std::size_t>> accumulate_;  // (input, scratch offset)
  std::vector<ScopeEntry> scopes_;
  std::uint32_t current_scope_ = 0;
  std::vector<std::string> labels_;
  std::vector<ParamSlot> params_;
  std::vector<std::shared_ptr<const CustomOpBase>> customs_;
  // Per parameter slot, the weight's packings for products; kept across clear() for reuse.
  std::vector<std::unique_ptr<detail::PackedWeight<T>>> packs_;
  std::vector<const Parameter<T>*> pack_owner_;  // whose weight packs_[slot] holds (held mode)
  bool hold_ = false;
  // Second order: per node, its tangent and its gradient's tangent (null: zero), their arenas,
  // the input seeds, and which recording / backward they belong to.
  std::vector<const T*> tan_;
  std::vector<T*> gtan_;
  detail::Arena<T> tangents_;
  detail::Arena<T> grad_tangents_;
  detail::Arena<T> seed_values_;
  std::vector<std::pair<std::uint32_t, T*>> seeds_;
  std::vector<TensorRef<T>> trefs_;  // the tangents of an op's inputs
  std::vector<T> zeros_;
  std::vector<std::unique_ptr<detail::PackedWeight<T>>> tpacks_;  // per parameter: its tangent
  std::vector<T> tscratch_;
  // Many directions: per node its k tangents (btan_, block j at btan_[i] + j·bstride_[i]; a view
  // keeps its input's stride) and its k cotangents (bgrad_, contiguous), their arenas and seeds.
  std::vector<const T*> btan_;
  std::vector<std::size_t> bstride_;
  std::vector<T*> bgrad_;
  detail::Arena<T> block_tangents_;
  detail::Arena<T> block_grads_;
  std::vector<std::pair<std::uint32_t, Matrix<T>>> block_seeds_;
  std::vector<TensorRef<T>> bslots_;      // a block sweep's slots, all k blocks
  Index block_k_ = 0;                     // directions of the latest jvp_block, 0 if none
  Index block_rev_k_ = 0;                 // cotangents of the latest vjp_block, 0 if none
  std::size_t block_nodes_ = 0;           // nodes covered by the latest jvp_block
  std::size_t block_rev_nodes_ = 0;       // nodes covered by the latest vjp_block
  std::size_t tangent_nodes_ = 0;         // nodes covered by the latest jvp, 0 if none
  std::uint32_t second_order_epoch_ = 0;  // epoch of the latest second-order backward
  std::uint32_t generation_ = 1;
  std::uint32_t epoch_ = 0;
  std::uint32_t backward_epoch_ = 0;  // epoch of this recording's latest backward, 0 if none
  std::size_t last_loss_ = 0;
  bool anomaly_ = false;
  int backward_threads_ = 1;
};

extern template class Tape<float>;
extern template class Tape<double>;

// ---- Var and ScopeGuard, inline ----------------------------------------------------------------

template <class T>
ConstMap<T> Var<T>::value() const {
  const auto& n = tape().checked(*this, "value");
  return ConstMap<T>(n.value, n.rows, n.cols);
}

template <class T>
ConstMap<T> Var<T>::grad() const {
  const auto& n = tape().checked(*this, "grad");
  return ConstMap<T>(tape_->grad_of(index_), n.rows, n.cols);
}

template <class T>
T Var<T>::item() const {
  const auto& n = tape().checked(*this, "item");
  if (n.rows != 1 || n.cols != 1) {
    throw UsageError(fmt::format("item: tensor is {}x{}, expected 1x1", n.rows, n.cols));
  }
  return n.value[0];
}

template <class T>
ConstMap<T> Var<T>::tangent() const {
  const auto& n = tape().checked(*this, "tangent");
  return ConstMap<T>(tape_->tangent_of(index_, "tangent"), n.rows, n.cols);
}

template <class T>
ConstMap<T> Var<T>::grad_tangent() const {
  const auto& n = tape().checked(*this, "grad_tangent");
  return ConstMap<T>(tape_->grad_tangent_of(index_, "grad_tangent"), n.rows, n.cols);
}

template <class T>
Shape Var<T>::shape() const {
  const auto& n = tape().checked(*this, "shape");
  return {n.rows, n.cols};
}

template <class T>
bool Var<T>::valid() const {
  return tape_ != nullptr && tape_->generation_ == generation_ && index_ < tape_->nodes_.size();
}

template <class T>
Tape<T>& Var<T>::tape() const {
  if (tape_ == nullptr) throw UsageError("Var: empty handle: it was default-constructed");
  return *tape_;
}

template <class T>
ScopeGuard<T>::~ScopeGuard() {
  tape_->pop_scope();
}

}  // namespace rwd
