#include "second_order.hpp"

namespace rwd::detail {

template <class T>
void SecondOrderSweep<T>::begin(const Recording<T>& rec, std::uint32_t epoch) {
  epoch_ = epoch;
  grad_tangents_.reset();
  gtan_.assign(rec.nodes.size(), nullptr);
}

template <class T>
void SecondOrderSweep<T>::node(const Recording<T>& rec, std::size_t i,
                               const std::vector<TensorRef<T>>& in,
                               const TangentSweep<T>& tangent) {
  const Node<T>& n = rec.nodes[i];
  if (fused(rec, n, i, in, tangent)) return;
  // The gradient's tangent: backward applied to ġy, plus the derivative of the backward along
  // the tangents with gy fixed (the op's second-order term).
  if (gtan_[i] != nullptr) {
    auto t = target();
    slots_.prepare(rec, n, t);
    call_backward(n, in.data(), slots_.slot.data(), slots_.mode.data(), gtan_[i], parts_);
    slots_.finish(rec, n, t);
  }
  term(rec, n, i, in, tangent);
}

template <class T>
void SecondOrderSweep<T>::term(const Recording<T>& rec, const Node<T>& n, std::size_t i,
                               const std::vector<TensorRef<T>>& in,
                               const TangentSweep<T>& tangent) {
  std::visit(
      [&](const auto& o) {
        using O = std::decay_t<decltype(o)>;
        constexpr Rules kind = rules<O>();
        // Linear and piecewise-linear ops have no term; elementwise ones add theirs in fused(),
        // together with the backward of ġy.
        if constexpr (!kIsLeaf<O> && kind != Rules::linear && kind != Rules::piecewise_linear &&
                      kind != Rules::elementwise) {
          if (!tangent.gather(rec, n, tin_)) return;  // no tangent reaches the op: no term
          const int count = static_cast<int>(n.num_inputs);
          const ConstMap<T> y(n.value, n.rows, n.cols);
          const ConstMap<T> gy(n.grad, n.rows, n.cols);
          const Inputs<T> x(in.data(), count);
          const Inputs<T> dx(tin_.data(), count);
          const T* dy_data = tangent.at(i) != nullptr
                                 ? tangent.at(i)
                                 : zeros_.get(static_cast<std::size_t>(n.rows * n.cols));
          const ConstMap<T> dy(dy_data, n.rows, n.cols);
          auto t = target();
          if constexpr (kind == Rules::bilinear) {
            // S_a = backward_a with b := ḃ, S_b = backward_b with a := ȧ: input k's term comes
            // from the other operand's tangent.
            for (int k = 0; k < 2; ++k) {
              const int other = 1 - k;
              if (!dx.has(other)) continue;
              bool skip[2] = {true, true};
              skip[k] = false;
              slots_.prepare(rec, n, t, skip);
              if (slots_.mode[static_cast<std::size_t>(k)] == GradMode::none) continue;
              TensorRef<T> both[2] = {in[0], in[1]};
              both[other] = tin_[static_cast<std::size_t>(other)];
              Grads<T> g(slots_.slot.data(), slots_.mode.data(), 2);
              o.template backward<T>(Inputs<T>(both, 2), y, gy, g);
              slots_.finish(rec, n, t);
            }
          } else {
            slots_.prepare(rec, n, t);
            Grads<T> g(slots_.slot.data(), slots_.mode.data(), count);
            o.template second_order<T>(x, y, gy, dx, dy, g);
            slots_.finish(rec, n, t);
          }
        }
      },
      n.op);
}

template <class T>
bool SecondOrderSweep<T>::fused(const Recording<T>& rec, const Node<T>& n, std::size_t i,
                                const std::vector<TensorRef<T>>& in,
                                const TangentSweep<T>& tangent) {
  return std::visit(
      [&](const auto& o) -> bool {
        using O = std::decay_t<decltype(o)>;
        if constexpr (rules<O>() == Rules::elementwise) {
          // ġx = f'(x) ⊙ ġy + f''(x) ⊙ ẋ ⊙ gy: the backward on ġy, then the curvature added
          // into the same slot (one pass each, no scratch).
          const bool tangents = tangent.gather(rec, n, tin_);
          if (!tangents && gtan_[i] == nullptr) return true;
          auto t = target();
          slots_.prepare(rec, n, t);
          Grads<T> g(slots_.slot.data(), slots_.mode.data(), 1);
          if (g.wants(0)) {
            if (gtan_[i] != nullptr) {
              call_backward(n, in.data(), slots_.slot.data(), slots_.mode.data(), gtan_[i], parts_);
            }
            if (tangents) {
              o.template curvature<T>(Inputs<T>(in.data(), 1), ConstMap<T>(n.value, n.rows, n.cols),
                                      ConstMap<T>(n.grad, n.rows, n.cols),
                                      ConstMap<T>(tin_[0].data, n.rows, n.cols), g[0],
                                      gtan_[i] != nullptr || g.adds(0));
            }
          }
          slots_.finish(rec, n, t);
          return true;
        } else if constexpr (requires { &O::template second_order_sweep<T>; }) {
          const bool tangents = tangent.gather(rec, n, tin_);
          if (!tangents && gtan_[i] == nullptr) return true;  // nothing to add
          const int count = static_cast<int>(n.num_inputs);
          const T* dy_data = tangent.at(i) != nullptr
                                 ? tangent.at(i)
                                 : zeros_.get(static_cast<std::size_t>(n.rows * n.cols));
          auto t = target();
          slots_.prepare(rec, n, t);
          if (tangents) {
            Grads<T> g(slots_.slot.data(), slots_.mode.data(), count);
            o.template second_order_sweep<T>(
                Inputs<T>(in.data(), count), ConstMap<T>(n.value, n.rows, n.cols),
                ConstMap<T>(n.grad, n.rows, n.cols), gtan_[i], Inputs<T>(tin_.data(), count),
                ConstMap<T>(dy_data, n.rows, n.cols), g);
          } else {
            call_backward(n, in.data(), slots_.slot.data(), slots_.mode.data(), gtan_[i], parts_);
          }
          slots_.finish(rec, n, t);
          return true;
        } else {
          return false;
        }
      },
      n.op);
}

template <class T>
const T* SecondOrderSweep<T>::grad_tangent_of(const Recording<T>& rec, std::uint32_t i,
                                              std::string_view who, std::uint32_t backward_epoch) {
  if (!current(backward_epoch)) {
    throw UsageError(fmt::format(
        "{}: no gradient tangents: run backward(loss, {{.second_order = true}}) or hvp(loss) on "
        "this recording first",
        who));
  }
  if (i >= gtan_.size()) gtan_.resize(rec.nodes.size(), nullptr);  // recorded after the sweep
  if (gtan_[i] == nullptr) {  // none reached it: zeros, kept so the view stays valid
    const auto size = static_cast<std::size_t>(rec.nodes[i].rows * rec.nodes[i].cols);
    gtan_[i] = grad_tangents_.allocate(size);
    std::fill(gtan_[i], gtan_[i] + size, T(0));
  }
  return gtan_[i];
}

template <class T>
std::optional<ConstMap<T>> SecondOrderSweep<T>::grad_tangent(const Recording<T>& rec, std::size_t i,
                                                             std::uint32_t backward_epoch) const {
  const Node<T>& n = rec.nodes.at(i);
  if (!current(backward_epoch) || i >= gtan_.size() || gtan_[i] == nullptr) return std::nullopt;
  return ConstMap<T>(gtan_[i], n.rows, n.cols);
}

template <class T>
void SecondOrderSweep<T>::clear() {
  grad_tangents_.reset();
  gtan_.clear();
}

template <class T>
std::size_t SecondOrderSweep<T>::capacity_bytes() const {
  return bytes_of(gtan_) + grad_tangents_.capacity() * sizeof(T) + slots_.capacity_bytes() +
         bytes_of(tin_) + bytes_of(parts_) + zeros_.capacity_bytes();
}

template class SecondOrderSweep<float>;
template class SecondOrderSweep<double>;

}  // namespace rwd::detail
