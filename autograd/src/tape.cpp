// Tape: recording, queries and the thin drivers of the sweeps (sweep/). The recording's types
// are in recording.hpp; each sweep owns its buffers in its own file.
#include "rewind/autograd/tape.hpp"

#include <algorithm>
#include <utility>

#include "sweep/sweeps.hpp"

namespace rwd {

template <class T>
Tape<T>::Tape() : sweeps_(std::make_unique<detail::Sweeps<T>>()) {}

template <class T>
Tape<T>::~Tape() = default;

template <class T>
const detail::Node<T>& Tape<T>::checked(const Var<T>& v, std::string_view who) const {
  if (v.tape_ == nullptr) {
    throw UsageError(fmt::format("{}: empty Var: the handle was default-constructed", who));
  }
  if (v.tape_ != this) throw UsageError(fmt::format("{}: Var belongs to a different tape", who));
  if (v.generation_ != rec_.generation) {
    throw UsageError(fmt::format(
        "{}: stale Var: node {} was recorded before the tape's last clear()", who, v.index_));
  }
  return rec_.nodes[v.index_];
}

// ---- leaves -------------------------------------------------------------------------------------

template <class T>
std::uint32_t Tape<T>::add_label(std::string_view label) {
  rec_.labels.emplace_back(label);
  return static_cast<std::uint32_t>(rec_.labels.size() - 1);
}

template <class T>
Var<T> Tape<T>::leaf(const Op& op, const Eigen::Ref<const Matrix<T>>& value, bool requires_grad) {
  detail::Node<T> node;
  node.op = op;
  node.rows = value.rows();
  node.cols = value.cols();
  node.value = rec_.values.allocate(static_cast<std::size_t>(value.size()));
  MutMap<T>(node.value, node.rows, node.cols) = value;
  node.first_input = static_cast<std::uint32_t>(rec_.edges.size());
  node.scope = rec_.current_scope;
  node.requires_grad = requires_grad;
  rec_.nodes.push_back(node);
  return handle(rec_.nodes.size() - 1);
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
void Tape<T>::check_versions(std::string_view who) const {
  for (const detail::ParamSlot<T>& s : rec_.params) {
    if (s.version == s.param->version) continue;
    throw UsageError(fmt::format(
        "{}: parameter '{}' changed since it was recorded on this tape (an optimizer step or a "
        "load): call tape.clear() before recording the next step",
        who, s.param->name));
  }
}

template <class T>
Var<T> Tape<T>::param(Parameter<T>& p) {
  for (const detail::ParamSlot<T>& s : rec_.params) {
    if (s.param != &p) continue;
    if (s.version != p.version) check_versions("param");
    return handle(s.node);
  }
  auto& packs = rec_.packs;
  auto& owner = rec_.pack_owner;
  auto& version = rec_.pack_version;
  const auto slot = static_cast<std::uint32_t>(rec_.params.size());
  if (packs.size() <= slot) {
    packs.push_back(std::make_unique<detail::PackedWeight<T>>());
    owner.push_back(nullptr);
    version.push_back(0);
  }
  if (!rec_.hold) {
    packs[slot]->invalidate();  // packed on first use in a product
    owner[slot] = nullptr;
    Var<T> v = leaf(ops::Param{add_label(p.name), slot}, p.value, true);
    rec_.params.push_back(detail::ParamSlot<T>{&p, v.index_, p.version});
    return v;
  }
  // Held: p's packing from an earlier recording moves to this slot (made again if p changed
  // since); the value is read in place.
  const auto owned = std::find(owner.begin() + slot, owner.end(), &p);
  if (owned != owner.end()) {
    const auto j = static_cast<std::size_t>(owned - owner.begin());
    std::swap(packs[slot], packs[j]);
    std::swap(owner[slot], owner[j]);
    std::swap(version[slot], version[j]);
    if (version[slot] != p.version) packs[slot]->invalidate();
  } else {
    packs[slot]->invalidate();
    if (owner[slot] != nullptr) {  // keep the evicted packing for its owner
      packs.push_back(std::move(packs[slot]));
      owner.push_back(owner[slot]);
      version.push_back(version[slot]);
      packs[slot] = std::make_unique<detail::PackedWeight<T>>();
    }
    owner[slot] = &p;
  }
  version[slot] = p.version;
  detail::Node<T> node;
  node.op = ops::Param{add_label(p.name), slot};
  node.rows = p.value.rows();
  node.cols = p.value.cols();
  node.value = const_cast<T*>(p.value.data());  // read only: no op writes a leaf's value
  node.first_input = static_cast<std::uint32_t>(rec_.edges.size());
  node.scope = rec_.current_scope;
  node.requires_grad = true;
  rec_.nodes.push_back(node);
  const Var<T> v = handle(rec_.nodes.size() - 1);
  rec_.params.push_back(detail::ParamSlot<T>{&p, v.index_, p.version});
  return v;
}

template <class T>
std::span<const std::int32_t> Tape<T>::store_indices(std::span<const std::int32_t> data) {
  std::int32_t* p = rec_.indices.allocate(data.size());
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
    if (rec_.current_scope == 0) throw;
    throw ShapeError(with_scope(e.what(), rec_.scope_string(rec_.current_scope)));
  } catch (const UsageError& e) {
    if (rec_.current_scope == 0) throw;
    throw UsageError(with_scope(e.what(), rec_.scope_string(rec_.current_scope)));
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
            const detail::Node<T>& x = checked(v, name);
            shapes_.push_back(Shape{x.rows, x.cols});
            rec_.set_ref(refs_.emplace_back(), x);
            requires_grad = requires_grad || x.requires_grad;
          }
          Shape ys;
          try {
            ys = o.shape(std::span<const Shape>(shapes_));
          } catch (const ShapeError&) {
            // The error again with the parameters' names in the shapes (`rhs is w_f (3x4)`):
            // looked up only here, off the recording's common path.
            for (std::size_t k = 0; k < inputs.size(); ++k) {
              const auto* param = std::get_if<ops::Param>(&rec_.nodes[inputs[k].index_].op);
              if (param != nullptr) shapes_[k].name = rec_.labels[param->label];
            }
            (void)o.shape(std::span<const Shape>(shapes_));
            throw;
          }
          T* value = nullptr;
          if constexpr (aliases_input<O>()) {
            value = refs_[0].data;
            if constexpr (requires { o.alias_offset(std::span<const Shape>(shapes_)); }) {
              value += o.alias_offset(std::span<const Shape>(shapes_));
            }
          } else {
            value = rec_.values.allocate(static_cast<std::size_t>(ys.size()));
            bool done = false;
            if constexpr (rowwise<O>()) {
              done = detail::split_rows(
                  split_, ys.rows, ys.cols, refs_.data(), static_cast<const TensorRef<T>*>(nullptr),
                  count, [&](Index r0, Index r1, const TensorRef<T>* in, const TensorRef<T>*) {
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
            detail::check_finite(rec_, std::span<const TensorRef<T>>(refs_), name,
                                 rec_.current_scope, "its value",
                                 TensorRef<T>{value, ys.rows, ys.cols});
          }
          const auto first_input = static_cast<std::uint32_t>(rec_.edges.size());
          for (const Var<T>& v : inputs) {
            rec_.edges.push_back(v.index_);
            ++rec_.nodes[v.index_].uses;
          }
          // Filled in place, field by field: a Node built on the stack and copied in is read
          // back with wide loads the processor cannot forward from its narrower stores, a stall
          // that was 7% of tiny-ops' samples.
          detail::Node<T>& node = rec_.nodes.emplace_back();
          node.op = op;
          node.value = value;
          node.rows = ys.rows;
          node.cols = ys.cols;
          node.first_input = first_input;
          node.num_inputs = static_cast<std::uint32_t>(count);
          node.scope = rec_.current_scope;
          node.requires_grad = requires_grad && !stops_gradient<O>();
          node.accumulates = accumulates<O>();
          node.passes = passes_gradient<O>();
          node.products = product_gradient_inputs<O>();
          return handle(rec_.nodes.size() - 1);
        }
      },
      op);
}

template <class T>
Var<T> Tape<T>::record_custom(std::shared_ptr<const CustomOp<T>> fn,
                              std::span<const Var<T>> inputs) {
  if (!fn) throw UsageError("custom: null op");
  const CustomOpBase* raw = fn.get();
  rec_.customs.push_back(std::move(fn));
  return record(ops::Custom{raw}, inputs);
}

// ---- the sweeps' drivers
// --------------------------------------------------------------------------

template <class T>
void Tape<T>::backward(const Var<T>& loss, const BackwardOptions& options) {
  const detail::Node<T>& l = checked(loss, "backward");
  if (l.rows != 1 || l.cols != 1) {
    throw UsageError(fmt::format(
        "backward: loss must be 1x1, got {}x{}: reduce it with sum or mean first", l.rows, l.cols));
  }
  const std::size_t covered = sweeps_->tangent.covered();
  if (options.second_order && (covered == 0 || loss.index_ >= covered)) {
    throw UsageError(
        covered == 0
            ? "backward: second_order needs the tangents of this recording: call jvp() first"
            : "backward: second_order: the loss was recorded after the latest jvp(): call jvp() "
              "again");
  }
  check_versions("backward");
  sweeps_->reverse.backward(rec_, loss.index_, options, anomaly_, sweeps_->second_order,
                            sweeps_->tangent);
}

template <class T>
void Tape<T>::backward(std::span<const GradSeed<T>> seeds, const BackwardOptions& options) {
  if (options.second_order) {
    throw UsageError("backward: second_order takes one loss, not seeds: use backward(loss, ...)");
  }
  for (const GradSeed<T>& s : seeds) checked(s.node, "backward");
  check_versions("backward");
  sweeps_->reverse.backward(rec_, seeds, options, anomaly_);
}

template <class T>
Matrix<T> Tape<T>::contribution(std::size_t i, int k) {
  return sweeps_->reverse.contribution(rec_, i, k);
}

template <class T>
void Tape<T>::set_tangent(const Var<T>& input, const Eigen::Ref<const Matrix<T>>& v) {
  checked(input, "set_tangent");
  sweeps_->tangent.set_tangent(rec_, input.index_, v);
}

template <class T>
void Tape<T>::jvp() {
  sweeps_->tangent.jvp(rec_);
}

template <class T>
void Tape<T>::hvp(const Var<T>& loss, BackwardOptions options) {
  checked(loss, "hvp");
  jvp();
  options.second_order = true;
  backward(loss, options);
}

template <class T>
void Tape<T>::set_block_tangent(const Var<T>& input, const Eigen::Ref<const Matrix<T>>& v) {
  checked(input, "set_block_tangent");
  sweeps_->block.set_block_tangent(rec_, input.index_, v);
}

template <class T>
void Tape<T>::jvp_block(Index k) {
  sweeps_->block.jvp_block(rec_, k);
}

template <class T>
Matrix<T> Tape<T>::block_tangent(const Var<T>& v) const {
  checked(v, "block_tangent");
  return sweeps_->block.block_tangent(rec_, v.index_);
}

template <class T>
void Tape<T>::vjp_block(const Var<T>& output, const Eigen::Ref<const Matrix<T>>& seeds) {
  checked(output, "vjp_block");
  sweeps_->block.vjp_block(rec_, output.index_, seeds);
}

template <class T>
Matrix<T> Tape<T>::block_grad(const Var<T>& v) const {
  checked(v, "block_grad");
  return sweeps_->block.block_grad(rec_, v.index_);
}

// ---- what the sweeps left
// -------------------------------------------------------------------------

template <class T>
T* Tape<T>::grad_of(std::uint32_t i) {
  return sweeps_->reverse.grad_of(rec_, i);
}

template <class T>
const T* Tape<T>::tangent_of(std::uint32_t i, std::string_view who) {
  return sweeps_->tangent.tangent_of(rec_, i, who);
}

template <class T>
const T* Tape<T>::grad_tangent_of(std::uint32_t i, std::string_view who) {
  return sweeps_->second_order.grad_tangent_of(rec_, i, who, sweeps_->reverse.backward_epoch());
}

template <class T>
std::optional<ConstMap<T>> Tape<T>::grad(std::size_t i) const {
  return sweeps_->reverse.grad(rec_, i);
}

template <class T>
std::optional<ConstMap<T>> Tape<T>::tangent(std::size_t i) const {
  return sweeps_->tangent.tangent(rec_, i);
}

template <class T>
std::optional<ConstMap<T>> Tape<T>::grad_tangent(std::size_t i) const {
  return sweeps_->second_order.grad_tangent(rec_, i, sweeps_->reverse.backward_epoch());
}

template <class T>
bool Tape<T>::has_backward() const {
  return sweeps_->reverse.backward_epoch() != 0;
}

template <class T>
int Tape<T>::backward_threads() const {
  return sweeps_->reverse.threads();
}

template <class T>
std::optional<std::size_t> Tape<T>::last_loss() const {
  if (!has_backward()) return std::nullopt;
  return sweeps_->reverse.last_loss();
}

// ---- clear and scopes ---------------------------------------------------------------------------

template <class T>
void Tape<T>::clear() {
  rec_.clear();
  sweeps_->clear();
}

template <class T>
void Tape<T>::hold_parameters(bool on) {
  if (rec_.hold && !on) {
    for (auto& p : rec_.packs) p->invalidate();
    std::fill(rec_.pack_owner.begin(), rec_.pack_owner.end(), nullptr);
  }
  rec_.hold = on;
}

template <class T>
ScopeGuard<T> Tape<T>::scope(std::string_view name) {
  if (name.empty() || name.find('/') != std::string_view::npos) {
    throw UsageError(
        fmt::format("scope: invalid name '{}': names are non-empty and contain no '/'", name));
  }
  rec_.scopes.push_back(detail::ScopeEntry{rec_.current_scope, std::string(name)});
  rec_.current_scope = static_cast<std::uint32_t>(rec_.scopes.size() - 1);
  return ScopeGuard<T>(this);
}

// ---- introspection ------------------------------------------------------------------------------

template <class T>
Var<T> Tape<T>::var(std::size_t i) const {
  if (i >= rec_.nodes.size()) {
    throw UsageError(
        fmt::format("var: node {} does not exist: the tape holds {}", i, rec_.nodes.size()));
  }
  return handle(i);
}

template <class T>
std::string_view Tape<T>::op_name(std::size_t i) const {
  return rec_.op_name(i);
}

template <class T>
std::span<const std::uint32_t> Tape<T>::inputs_of(std::size_t i) const {
  const detail::Node<T>& n = rec_.nodes.at(i);
  return {rec_.edges.data() + n.first_input, n.num_inputs};
}

template <class T>
Shape Tape<T>::shape(std::size_t i) const {
  const detail::Node<T>& n = rec_.nodes.at(i);
  return {n.rows, n.cols};
}

template <class T>
ConstMap<T> Tape<T>::value(std::size_t i) const {
  const detail::Node<T>& n = rec_.nodes.at(i);
  return ConstMap<T>(n.value, n.rows, n.cols);
}

template <class T>
std::string_view Tape<T>::label(std::size_t i) const {
  return std::visit(
      [&](const auto& o) -> std::string_view {
        if constexpr (requires { o.label; }) {
          return rec_.labels[o.label];
        } else {
          return {};
        }
      },
      rec_.nodes.at(i).op);
}

template <class T>
std::string Tape<T>::scope_path(std::size_t i) const {
  return rec_.scope_string(rec_.nodes.at(i).scope);
}

template <class T>
std::vector<std::pair<std::string_view, std::size_t>> Tape<T>::capacity_by_room() const {
  const detail::Sweeps<T>& s = *sweeps_;
  const std::size_t own =
      detail::bytes_of(shapes_) + detail::bytes_of(refs_) + detail::bytes_of(split_);
  return {
      {"recording", rec_.capacity_bytes() + own},        {"reverse", s.reverse.capacity_bytes()},
      {"parallel reverse", s.reverse.parallel_bytes()},  {"tangent", s.tangent.capacity_bytes()},
      {"second order", s.second_order.capacity_bytes()}, {"block", s.block.capacity_bytes()}};
}

template <class T>
std::size_t Tape<T>::capacity_bytes() const {
  std::size_t total = 0;
  for (const auto& [room, bytes] : capacity_by_room()) total += bytes;
  return total;
}

template class Tape<float>;
template class Tape<double>;

}  // namespace rwd
