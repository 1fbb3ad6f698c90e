#include "tangent.hpp"

namespace rwd::detail {

/// o's single-direction tangent rule for node n into dy, from `in` (its inputs) and `tin` (their
/// tangents; null data where none, which a linear op's rule replaces with zeros).
template <class T, class O>
void tangent_rule(const O& o, const Node<T>& n, const std::vector<TensorRef<T>>& in,
                  std::vector<TensorRef<T>>& tin, T* dy_data, Zeros<T>& zeros,
                  std::vector<T>& scratch) {
  const int count = static_cast<int>(n.num_inputs);
  MutMap<T> dy(dy_data, n.rows, n.cols);
  const ConstMap<T> y(n.value, n.rows, n.cols);
  const Inputs<T> x(in.data(), count);
  const Inputs<T> dx(tin.data(), count);
  constexpr Rules kind = rules<O>();
  if constexpr (kind == Rules::linear) {
    // The op is linear: its tangent is its forward on the tangents (zeros where none).
    // One zeros call for all of them: a later, larger one may move the buffer.
    std::size_t largest = 0;
    for (const TensorRef<T>& t : tin) {
      if (t.data == nullptr) largest = std::max(largest, static_cast<std::size_t>(t.rows * t.cols));
    }
    if (largest > 0) {
      T* z = const_cast<T*>(zeros.get(largest));
      for (TensorRef<T>& t : tin) {
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
      TensorRef<T> both[2] = {in[0], in[1]};
      both[k] = tin[static_cast<std::size_t>(k)];
      if (!written) {
        o.template forward<T>(Inputs<T>(both, 2), dy);
        written = true;
      } else {
        const auto size = static_cast<std::size_t>(n.rows * n.cols);
        if (scratch.size() < size) scratch.resize(size);
        MutMap<T> part(scratch.data(), n.rows, n.cols);
        o.template forward<T>(Inputs<T>(both, 2), part);
        dy += part;
      }
    }
  } else if constexpr (kind == Rules::elementwise || kind == Rules::piecewise_linear ||
                       kind == Rules::symmetric) {
    // A symmetric Jacobian: J·ẋ = Jᵀ·ẋ, the backward with gy := ẋ.
    const TensorRef<T> slot{dy_data, n.rows, n.cols};
    const GradMode mode = GradMode::assign;
    Grads<T> g(&slot, &mode, 1);
    o.template backward<T>(x, y, ConstMap<T>(tin[0].data, n.rows, n.cols), g);
  } else {
    o.template tangent<T>(x, y, dx, dy);
  }
}

template <class T>
void call_tangent(const Node<T>& n, const std::vector<TensorRef<T>>& in,
                  std::vector<TensorRef<T>>& tin, T* dy_data, Zeros<T>& zeros,
                  std::vector<T>& scratch) {
  std::visit(
      [&](const auto& o) {
        if constexpr (!kIsLeaf<std::decay_t<decltype(o)>>) {
          tangent_rule(o, n, in, tin, dy_data, zeros, scratch);
        }
      },
      n.op);
}

template void call_tangent<float>(const Node<float>&, const std::vector<TensorRef<float>>&,
                                  std::vector<TensorRef<float>>&, float*, Zeros<float>&,
                                  std::vector<float>&);
template void call_tangent<double>(const Node<double>&, const std::vector<TensorRef<double>>&,
                                   std::vector<TensorRef<double>>&, double*, Zeros<double>&,
                                   std::vector<double>&);

template <class T>
void TangentSweep<T>::set_tangent(const Recording<T>& rec, std::uint32_t node,
                                  const Eigen::Ref<const Matrix<T>>& v) {
  const Node<T>& n = rec.nodes[node];
  require_input(rec, node, "set_tangent",
                "tangents are seeded on inputs (Tape::input) and on parameters "
                "(Parameter::tangent)");
  if (v.rows() != n.rows || v.cols() != n.cols) {
    throw ShapeError(fmt::format("set_tangent: shapes differ: tangent is {}, input is {}",
                                 Shape{v.rows(), v.cols()}, Shape{n.rows, n.cols}));
  }
  T* data = nullptr;
  for (const auto& [seeded, d] : seeds_) {
    if (seeded == node) data = d;
  }
  if (data == nullptr) {
    data = seed_values_.allocate(static_cast<std::size_t>(v.size()));
    seeds_.push_back({node, data});
  }
  MutMap<T>(data, n.rows, n.cols) = v;
}

template <class T>
bool TangentSweep<T>::gather(const Recording<T>& rec, const Node<T>& n,
                             std::vector<TensorRef<T>>& tin) const {
  tin.clear();
  bool any = false;
  for (std::uint32_t k = 0; k < n.num_inputs; ++k) {
    const std::uint32_t xi = rec.input(n, k);
    const Node<T>& x = rec.nodes[xi];
    // const_cast: TensorRef is shared with gradient slots; tangents are only ever read here.
    T* data = const_cast<T*>(tan_[xi]);
    TensorRef<T> r{data, x.rows, x.cols};
    // A parameter's tangent is fixed for the sweep: products with it reuse one packing, as
    // products with the parameter do.
    if (const auto* p = std::get_if<ops::Param>(&x.op); p != nullptr && data != nullptr) {
      r.packed = packs_[p->slot].get();
    }
    tin.push_back(r);
    any = any || data != nullptr;
  }
  return any;
}

template <class T>
void TangentSweep<T>::jvp(const Recording<T>& rec) {
  tangents_.reset();
  tan_.assign(rec.nodes.size(), nullptr);
  covered_ = 0;
  while (packs_.size() < rec.params.size()) packs_.push_back(std::make_unique<PackedWeight<T>>());
  for (auto& p : packs_) p->invalidate();  // the tangents may have changed
  for (const auto& [node, data] : seeds_) tan_[node] = data;
  for (const ParamSlot<T>& s : rec.params) {
    const Matrix<T>& v = s.param->tangent;
    if (v.size() == 0) continue;
    const Node<T>& leaf = rec.nodes[s.node];
    if (v.rows() != leaf.rows || v.cols() != leaf.cols) {
      throw ShapeError(fmt::format("jvp: parameter '{}': tangent is {}, parameter is {}",
                                   s.param->name, Shape{v.rows(), v.cols()},
                                   Shape{leaf.rows, leaf.cols}));
    }
    T* d = tangents_.allocate(static_cast<std::size_t>(v.size()));
    MutMap<T>(d, leaf.rows, leaf.cols) = v;
    tan_[s.node] = d;
  }
  for (std::size_t i = 0; i < rec.nodes.size(); ++i) {
    const Node<T>& n = rec.nodes[i];
    if (n.num_inputs == 0 || !gather(rec, n, tin_)) continue;
    node(rec, i);
  }
  covered_ = rec.nodes.size();
}

template <class T>
void TangentSweep<T>::node(const Recording<T>& rec, std::size_t i) {
  const Node<T>& n = rec.nodes[i];
  std::visit(
      [&](const auto& o) {
        using O = std::decay_t<decltype(o)>;
        if constexpr (!kIsLeaf<O>) {
          if constexpr (stops_gradient<O>()) {
            return;  // detach: zero tangent, like its zero gradient
          } else if constexpr (aliases_input<O>()) {
            // A view of its input (reshape, slice_rows): the tangent is the same view of the
            // input's tangent.
            const Node<T>& x = rec.nodes[rec.input(n, 0)];
            if (tin_[0].data != nullptr) tan_[i] = tin_[0].data + (n.value - x.value);
            return;
          } else {
            rec.gather_inputs(n, in_);
            T* dy = tangents_.allocate(static_cast<std::size_t>(n.rows * n.cols));
            tan_[i] = dy;
            tangent_rule(o, n, in_, tin_, dy, zeros_, scratch_);
          }
        }
      },
      n.op);
}

template <class T>
const T* TangentSweep<T>::tangent_of(const Recording<T>& rec, std::uint32_t i,
                                     std::string_view who) {
  if (covered_ == 0) {
    throw UsageError(fmt::format("{}: no tangents yet: call jvp() on this recording first", who));
  }
  if (i >= covered_) {
    throw UsageError(
        fmt::format("{}: node {} was recorded after the latest jvp(): call jvp() again", who, i));
  }
  if (tan_[i] == nullptr) {  // no tangent reached it: zeros, kept so the view stays valid
    const auto size = static_cast<std::size_t>(rec.nodes[i].rows * rec.nodes[i].cols);
    T* z = tangents_.allocate(size);
    std::fill(z, z + size, T(0));
    tan_[i] = z;
  }
  return tan_[i];
}

template <class T>
std::optional<ConstMap<T>> TangentSweep<T>::tangent(const Recording<T>& rec, std::size_t i) const {
  const Node<T>& n = rec.nodes.at(i);
  if (i >= covered_ || tan_[i] == nullptr) return std::nullopt;
  return ConstMap<T>(tan_[i], n.rows, n.cols);
}

template <class T>
void TangentSweep<T>::clear() {
  tangents_.reset();
  seed_values_.reset();
  seeds_.clear();
  tan_.clear();
  covered_ = 0;
}

template <class T>
std::size_t TangentSweep<T>::capacity_bytes() const {
  std::size_t b = bytes_of(tan_) + (tangents_.capacity() + seed_values_.capacity()) * sizeof(T) +
                  bytes_of(seeds_) + bytes_of(in_) + bytes_of(tin_) + zeros_.capacity_bytes() +
                  bytes_of(scratch_) + bytes_of(packs_);
  for (const auto& p : packs_) b += sizeof(*p) + p->capacity() * sizeof(T);
  return b;
}

template class TangentSweep<float>;
template class TangentSweep<double>;

}  // namespace rwd::detail
