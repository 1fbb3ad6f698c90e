// The tape: a flat record of every op since the last clear(), and the sweeps over it.
//
// Tape is three things: the recording (recording.hpp: small trivially-copyable node records, op
// + attributes, input range, scope, shape, and chunked arenas for values), the sweeps
// (autograd/src/sweep/: reverse, two-thread reverse, weight-gradient products, tangent, second
// order, block; each owns its buffers), and the thin public drivers and queries below.
// Recording order is topological, so backward is one reverse loop: no recursion, no shared_ptr
// graph, no global or thread-local "current tape".
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
#include "rewind/autograd/recording.hpp"
#include "rewind/autograd/registry.hpp"
#include "rewind/autograd/tensor.hpp"

namespace rwd {

template <class T>
class Tape;

namespace detail {
template <class T>
struct Sweeps;  // autograd/src/sweep/sweeps.hpp
}  // namespace detail

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
  /// parameter must outlive the recording. Throws UsageError when p (or any parameter of the
  /// recording) changed since it was recorded (Parameter::version: an optimizer step, a load):
  /// the recording holds the old value, so a training loop must clear() the tape every step.
  Var<T> param(Parameter<T>& p);
  /// The parameters recorded since the last clear(), in the order of their first use.
  std::vector<Parameter<T>*> parameters() const {
    std::vector<Parameter<T>*> out;
    for (const detail::ParamSlot<T>& s : rec_.params) out.push_back(s.param);
    return out;
  }
  /// The leaf bound to `p` in this recording, if it was recorded.
  std::optional<std::size_t> find_param(const Parameter<T>& p) const {
    for (const detail::ParamSlot<T>& s : rec_.params) {
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
  /// Throws UsageError when a parameter changed since it was recorded (see param).
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
  bool parameters_held() const { return rec_.hold; }

  /// Forgets the recording (all Vars go stale) and keeps every buffer for the next one.
  /// Scopes that are open stay open.
  void clear();

  /// Names the region until the guard dies: nodes record the scope path (`layer0/fwd/t3/f`).
  /// Names are non-empty and contain no '/'.
  ScopeGuard<T> scope(std::string_view name);

  // ---- introspection (graphs, diagnostics, tests) --------------------------------------------
  std::size_t size() const { return rec_.nodes.size(); }
  std::uint32_t generation() const { return rec_.generation; }
  /// A handle to node i of the current recording.
  Var<T> var(std::size_t i) const;
  const Op& op(std::size_t i) const { return rec_.nodes.at(i).op; }
  /// The op's name; a custom op's own name.
  std::string_view op_name(std::size_t i) const;
  std::span<const std::uint32_t> inputs_of(std::size_t i) const;
  Shape shape(std::size_t i) const;
  ConstMap<T> value(std::size_t i) const;
  /// The gradient node i received in the latest backward, if any.
  std::optional<ConstMap<T>> grad(std::size_t i) const;
  bool requires_grad(std::size_t i) const { return rec_.nodes.at(i).requires_grad; }
  /// A leaf's label ("" for other nodes and unlabelled leaves); a parameter's name.
  std::string_view label(std::size_t i) const;
  /// "layer0/fwd/t3/f", or "" at the top level.
  std::string scope_path(std::size_t i) const;
  /// The scope path nodes recorded now would get.
  std::string current_scope() const { return rec_.scope_string(rec_.current_scope); }
  /// Whether backward ran since the last clear().
  bool has_backward() const;
  /// How many threads ran the latest first-order backward sweep: 2 where it ran in one parallel
  /// region, each thread on half of the rows (a REWIND_OPENMP build with two threads and a
  /// recording big enough: docs/benchmarks.md), else 1. The gradients agree with the one-thread
  /// sweep's to rounding (products over half the rows) and are the same bits on every run.
  int backward_threads() const;
  /// The node the latest backward started from.
  std::optional<std::size_t> last_loss() const;
  /// What node i's op sent to its k-th input in the latest backward: that input's gradient is
  /// the sum of these over its consumers (e.g. one time step's share of dL/dW). Recomputed by
  /// calling the op's backward again; zeros if node i received no gradient.
  Matrix<T> contribution(std::size_t i, int k);
  /// Bytes of storage held across clear() (node records, arenas, tables, every sweep's
  /// buffers).
  std::size_t capacity_bytes() const;
  /// capacity_bytes() by room: "recording", "reverse", "parallel reverse", "tangent",
  /// "second order", "block"; they add up to capacity_bytes().
  std::vector<std::pair<std::string_view, std::size_t>> capacity_by_room() const;

 private:
  friend class Var<T>;
  friend class ScopeGuard<T>;

  Var<T> record_in_scope(const Op& op, std::span<const Var<T>> inputs);
  const detail::Node<T>& checked(const Var<T>& v, std::string_view who) const;
  // Throws UsageError naming a parameter whose version moved since it was recorded.
  void check_versions(std::string_view who) const;
  Var<T> leaf(const Op& op, const Eigen::Ref<const Matrix<T>>& value, bool requires_grad);
  Var<T> handle(std::size_t i) const {
    return Var<T>(const_cast<Tape*>(this), static_cast<std::uint32_t>(i), rec_.generation);
  }
  std::uint32_t add_label(std::string_view label);
  T* grad_of(std::uint32_t i);                                      // zeros when none flowed
  const T* tangent_of(std::uint32_t i, std::string_view who);       // zeros when none
  const T* grad_tangent_of(std::uint32_t i, std::string_view who);  // zeros when none
  void pop_scope() { rec_.current_scope = rec_.scopes[rec_.current_scope].parent; }

  detail::Recording<T> rec_;
  // record()'s own buffers: the input shapes and views of the op being recorded, and their
  // halves when a large rowwise forward runs on two threads.
  std::vector<Shape> shapes_;
  std::vector<TensorRef<T>> refs_;
  std::vector<TensorRef<T>> split_;
  // The sweeps (autograd/src/sweep/), each owning its buffers; created with the tape.
  std::unique_ptr<detail::Sweeps<T>> sweeps_;
  bool anomaly_ = false;
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
  return tape_ != nullptr && tape_->rec_.generation == generation_ &&
         index_ < tape_->rec_.nodes.size();
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
