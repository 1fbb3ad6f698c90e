#include "reverse.hpp"

#include <algorithm>

namespace rwd::detail {

template <class T>
void call_backward(const Node<T>& n, const TensorRef<T>* in, const TensorRef<T>* slots,
                   const GradMode* modes, const T* gy, std::vector<TensorRef<T>>& parts) {
  std::visit(
      [&](const auto& o) {
        using O = std::decay_t<decltype(o)>;
        if constexpr (!kIsLeaf<O>) {
          const int count = static_cast<int>(n.num_inputs);
          if constexpr (rowwise<O>()) {
            const bool done = split_rows(
                parts, n.rows, n.cols, in, slots, count,
                [&](Index r0, Index r1, const TensorRef<T>* xs, const TensorRef<T>* ss) {
                  Grads<T> part(ss, modes, count);
                  o.template backward<T>(Inputs<T>(xs, count),
                                         ConstMap<T>(n.value + r0 * n.cols, r1 - r0, n.cols),
                                         ConstMap<T>(gy + r0 * n.cols, r1 - r0, n.cols), part);
                });
            if (done) return;
          }
          Grads<T> g(slots, modes, count);
          o.template backward<T>(Inputs<T>(in, count), ConstMap<T>(n.value, n.rows, n.cols),
                                 ConstMap<T>(gy, n.rows, n.cols), g);
        }
      },
      n.op);
}

template <class T>
void call_backward_rows(const Node<T>& n, Index r0, Index r1, const TensorRef<T>* in,
                        const TensorRef<T>* slots, const GradMode* modes) {
  std::visit(
      [&](const auto& o) {
        if constexpr (!kIsLeaf<std::decay_t<decltype(o)>>) {
          const int count = static_cast<int>(n.num_inputs);
          Grads<T> g(slots, modes, count);
          o.template backward<T>(Inputs<T>(in, count),
                                 ConstMap<T>(n.value + r0 * n.cols, r1 - r0, n.cols),
                                 ConstMap<T>(n.grad + r0 * n.cols, r1 - r0, n.cols), g);
        }
      },
      n.op);
}

template void call_backward_rows<float>(const Node<float>&, Index, Index, const TensorRef<float>*,
                                        const TensorRef<float>*, const GradMode*);
template void call_backward_rows<double>(const Node<double>&, Index, Index,
                                         const TensorRef<double>*, const TensorRef<double>*,
                                         const GradMode*);
template void call_backward<float>(const Node<float>&, const TensorRef<float>*,
                                   const TensorRef<float>*, const GradMode*, const float*,
                                   std::vector<TensorRef<float>>&);
template void call_backward<double>(const Node<double>&, const TensorRef<double>*,
                                    const TensorRef<double>*, const GradMode*, const double*,
                                    std::vector<TensorRef<double>>&);

template <class T>
void ReverseSweep<T>::begin() {
  ++epoch_;
  backward_epoch_ = epoch_;
  grads_.reset();
}

template <class T>
void ReverseSweep<T>::backward(Recording<T>& rec, std::uint32_t loss,
                               const BackwardOptions& options, bool anomaly,
                               SecondOrderSweep<T>& second, const TangentSweep<T>& tangent) {
  begin();
  last_loss_ = loss;
  if (options.second_order) second.begin(rec, epoch_);
  Node<T>& l = rec.nodes[loss];
  if (!l.requires_grad) return;  // the loss depends on no input or parameter
  l.grad = grads_.allocate(1);
  l.grad[0] = T(1);
  l.grad_epoch = epoch_;
  sweep(rec, loss, options, anomaly, options.second_order ? &second : nullptr, &tangent);
}

template <class T>
void ReverseSweep<T>::backward(Recording<T>& rec, std::span<const GradSeed<T>> seeds,
                               const BackwardOptions& options, bool anomaly) {
  for (std::size_t k = 0; k < seeds.size(); ++k) {
    const std::uint32_t i = seeds[k].node.index();
    const Node<T>& n = rec.nodes[i];
    if (seeds[k].grad.rows() != n.rows || seeds[k].grad.cols() != n.cols) {
      throw UsageError(fmt::format("backward: seed {} is {}x{} for node {} ({}), which is {}x{}", k,
                                   seeds[k].grad.rows(), seeds[k].grad.cols(), i, rec.op_name(i),
                                   n.rows, n.cols));
    }
    for (std::size_t j = 0; j < k; ++j) {
      if (seeds[j].node.index() == i) {
        throw UsageError(fmt::format("backward: node {} ({}) is seeded twice (seeds {} and {})", i,
                                     rec.op_name(i), j, k));
      }
    }
  }
  begin();
  std::size_t top = 0;
  for (const GradSeed<T>& s : seeds) {
    Node<T>& n = rec.nodes[s.node.index()];
    if (!n.requires_grad) continue;
    if (s.in_place) {
      n.grad = const_cast<T*>(s.grad.data());  // the caller's writable buffer (documented)
    } else {
      n.grad = grads_.allocate(static_cast<std::size_t>(n.rows * n.cols));
      MutMap<T>(n.grad, n.rows, n.cols) = s.grad;
    }
    n.grad_epoch = epoch_;
    top = std::max<std::size_t>(top, s.node.index());
  }
  last_loss_ = top;
  sweep(rec, top, options, anomaly, nullptr, nullptr);
}

template <class T>
void ReverseSweep<T>::sweep(Recording<T>& rec, std::size_t top, const BackwardOptions& options,
                            bool anomaly, SecondOrderSweep<T>* second,
                            const TangentSweep<T>* tangent) {
  // Nodes after the loss cannot reach it; nodes without a gradient this epoch are skipped.
  products_.reset();
  GradTarget<T> grads = target(rec);
  const int parallel = second != nullptr ? 0 : parallel_.run(rec, top, grads, anomaly);
  threads_ = std::max(parallel, 1);
  // Collect the leaves' product terms (ProductCollector): not in a second-order sweep (the
  // gradient's tangent is computed node by node) nor in anomaly mode (which checks every
  // contribution as it is made).
  const bool collect = second == nullptr && !anomaly;
  for (std::size_t i = parallel != 0 ? 0 : top + 1; i-- > 0;) {  // else swept already
    const Node<T>& n = rec.nodes[i];
    if (n.grad_epoch != epoch_ || n.num_inputs == 0) continue;
    rec.gather_inputs(n, in_);
    slots_.prepare(rec, n, grads);
    if (collect && (n.products != 0 || !products_.empty())) products_.defer(rec, n, in_, slots_);
    // Not when every input shares n's buffer (Slots::prepare): there is nothing left to write.
    if (n.passes == 0 || std::any_of(slots_.mode.begin(), slots_.mode.end(),
                                     [](GradMode m) { return m != GradMode::none; })) {
      call_backward(n, in_.data(), slots_.slot.data(), slots_.mode.data(), n.grad, parts_);
    }
    if (anomaly) check_gradients(rec, n, i);
    slots_.finish(rec, n, grads);
    if (second != nullptr) second->node(rec, i, in_, *tangent);
  }
  products_.flush(rec);
  if (options.accumulate_parameters) accumulate(rec, second);
}

template <class T>
void ReverseSweep<T>::check_gradients(const Recording<T>& rec, const Node<T>& n,
                                      std::size_t i) const {
  for (std::size_t k = 0; k < n.num_inputs; ++k) {
    const TensorRef<T>& slot = slots_.slot[k];
    if (slots_.mode[k] == GradMode::none ||
        all_finite(ConstMap<T>(slot.data, slot.rows, slot.cols))) {
      continue;
    }
    const ConstMap<T> gy(n.grad, n.rows, n.cols);
    check_finite(rec, std::span<const TensorRef<T>>(in_), rec.op_name(i), n.scope,
                 fmt::format("the gradient it returns for input {} (incoming gradient in "
                             "[{:g}, {:g}])",
                             k, gy.minCoeff(), gy.maxCoeff()),
                 slot);
  }
}

template <class T>
void ReverseSweep<T>::accumulate(const Recording<T>& rec, const SecondOrderSweep<T>* second) const {
  const auto add_into = [&](Matrix<T>& acc, const T* data, const Node<T>& leaf, const char* what,
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
  for (const ParamSlot<T>& s : rec.params) {
    const Node<T>& leaf = rec.nodes[s.node];
    if (leaf.grad_epoch != epoch_) continue;
    add_into(s.param->grad, leaf.grad, leaf, "gradient", *s.param);
    if (second == nullptr) continue;
    if (const T* gt = second->at(s.node); gt != nullptr) {
      add_into(s.param->grad_tangent, gt, leaf, "gradient tangent", *s.param);
    } else if (s.param->grad_tangent.size() == 0) {
      s.param->grad_tangent.setZero(leaf.rows, leaf.cols);  // no tangent reached it: H·v = 0
    }
  }
}

template <class T>
T* ReverseSweep<T>::grad_of(Recording<T>& rec, std::uint32_t i) {
  if (backward_epoch_ == 0) {
    throw UsageError("grad: no gradient yet: call backward() on this recording first");
  }
  Node<T>& n = rec.nodes[i];
  if (n.grad_epoch != epoch_) {  // no gradient reached this node: it is zero
    n.grad = grads_.allocate(static_cast<std::size_t>(n.rows * n.cols));
    MutMap<T>(n.grad, n.rows, n.cols).setZero();
    n.grad_epoch = epoch_;
  }
  return n.grad;
}

template <class T>
std::optional<ConstMap<T>> ReverseSweep<T>::grad(const Recording<T>& rec, std::size_t i) const {
  const Node<T>& n = rec.nodes.at(i);
  if (backward_epoch_ == 0 || n.grad_epoch != epoch_) return std::nullopt;
  return ConstMap<T>(n.grad, n.rows, n.cols);
}

template <class T>
Matrix<T> ReverseSweep<T>::contribution(const Recording<T>& rec, std::size_t i, int k) {
  const Node<T>& n = rec.nodes.at(i);
  if (k < 0 || static_cast<std::uint32_t>(k) >= n.num_inputs) {
    throw UsageError(
        fmt::format("contribution: node {} ({}) has no input {}", i, rec.op_name(i), k));
  }
  const Node<T>& x = rec.nodes[rec.input(n, static_cast<std::uint32_t>(k))];
  Matrix<T> out = Matrix<T>::Zero(x.rows, x.cols);
  if (backward_epoch_ == 0 || n.grad_epoch != epoch_ || !x.requires_grad) return out;
  rec.gather_inputs(n, in_);
  std::vector<TensorRef<T>> slots(n.num_inputs);
  std::vector<GradMode> modes(n.num_inputs, GradMode::none);
  slots[static_cast<std::size_t>(k)] = TensorRef<T>{out.data(), x.rows, x.cols};
  modes[static_cast<std::size_t>(k)] = GradMode::assign;
  call_backward(n, in_.data(), slots.data(), modes.data(), n.grad, parts_);
  return out;
}

template <class T>
std::size_t ReverseSweep<T>::capacity_bytes() const {
  return grads_.capacity() * sizeof(T) + bytes_of(in_) + bytes_of(parts_) +
         slots_.capacity_bytes() + products_.capacity_bytes();
}

template class ReverseSweep<float>;
template class ReverseSweep<double>;

}  // namespace rwd::detail
