#include "products.hpp"

#include <algorithm>
#include <span>
#include <stdexcept>
#include <utility>

namespace rwd::detail {

template <class T>
void ProductCollector<T>::collect(const Recording<T>& rec, const Node<T>& n, const Inputs<T>& x,
                                  int k, GradMode mode) {
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
  const std::uint32_t leaf = rec.input(n, static_cast<std::uint32_t>(k));
  pending_.push_back({leaf, {a, b, n.rows, mode == GradMode::add}});
  if (std::find(pending_leaves_.begin(), pending_leaves_.end(), leaf) == pending_leaves_.end())
    pending_leaves_.push_back(leaf);
}

template <class T>
void ProductCollector<T>::defer(const Recording<T>& rec, const Node<T>& n,
                                const std::vector<TensorRef<T>>& in, Slots<T>& slots) {
  const std::uint32_t* edge = rec.edges.data() + n.first_input;
  const int count = static_cast<int>(n.num_inputs);
  for (int k = 0; k < count && k < 8; ++k) {
    const auto kk = static_cast<std::size_t>(k);
    if ((n.products >> k & 1) == 0 || slots.mode[kk] == GradMode::none) continue;
    const Node<T>& x = rec.nodes[edge[k]];
    if (x.num_inputs != 0 || slots.slot[kk].data != x.grad) continue;  // a leaf's own buffer only
    collect(rec, n, Inputs<T>(in.data(), count), k, slots.mode[kk]);
    slots.mode[kk] = GradMode::none;
  }
  // Any other contribution to a leaf with collected terms comes after them.
  for (int k = 0; k < count; ++k) {
    if (slots.mode[static_cast<std::size_t>(k)] == GradMode::none) continue;
    if (std::find(pending_leaves_.begin(), pending_leaves_.end(), edge[k]) !=
        pending_leaves_.end()) {
      flush(rec);
      return;
    }
  }
}

template <class T>
void ProductCollector<T>::group() {
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
void ProductCollector<T>::run(const Recording<T>& rec) const {
  for (const TermGroup& g : term_groups_) {
    const Node<T>& x = rec.nodes[g.leaf];
    gradient_products<T>(
        MutMap<T>(x.grad, x.rows, x.cols),
        std::span<const GradientTerm<T>>(terms_.data() + g.begin, g.end - g.begin));
  }
}

template <class T>
void ProductCollector<T>::flush(const Recording<T>& rec) {
  if (pending_.empty()) return;
  group();
  run(rec);
}

template class ProductCollector<float>;
template class ProductCollector<double>;

}  // namespace rwd::detail
