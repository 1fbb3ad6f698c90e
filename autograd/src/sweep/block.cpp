#include "block.hpp"

namespace rwd::detail {

template <class T>
void BlockSweeps<T>::set_block_tangent(const Recording<T>& rec, std::uint32_t node,
                                       const Eigen::Ref<const Matrix<T>>& v) {
  const Node<T>& n = rec.nodes[node];
  require_input(rec, node, "set_block_tangent",
                "block tangents are seeded on inputs (Tape::input)");
  if (v.cols() != n.cols || n.rows == 0 || v.rows() == 0 || v.rows() % n.rows != 0) {
    throw ShapeError(fmt::format(
        "set_block_tangent: tangents are {}, expected k·{} rows and {} columns for a {} input",
        Shape{v.rows(), v.cols()}, n.rows, n.cols, Shape{n.rows, n.cols}));
  }
  const auto size = static_cast<std::size_t>(v.size());
  Seed* seed = nullptr;
  for (Seed& s : seeds_) {
    if (s.node == node) seed = &s;
  }
  if (seed == nullptr) seed = &seeds_.emplace_back(Seed{node});
  if (seed->data == nullptr || static_cast<std::size_t>(seed->rows * n.cols) < size) {
    seed->data = seed_values_.allocate(size);
  }
  seed->rows = v.rows();
  MutMap<T>(seed->data, v.rows(), v.cols()) = v;
}

template <class T>
void BlockSweeps<T>::jvp_block(const Recording<T>& rec, Index k) {
  if (k < 1) throw UsageError(fmt::format("jvp_block: {} directions: need at least one", k));
  for (const Seed& s : seeds_) {
    if (s.rows != k * rec.nodes[s.node].rows) {
      const std::string& label = rec.labels[std::get<ops::Input>(rec.nodes[s.node].op).label];
      throw ShapeError(fmt::format(
          "jvp_block: the block tangent of node {} ({}) holds {} directions, expected {}", s.node,
          label.empty() ? "input" : label, s.rows / rec.nodes[s.node].rows, k));
    }
  }
  k_ = k;
  nodes_ = 0;
  block_tangents_.reset();
  btan_.assign(rec.nodes.size(), nullptr);
  bstride_.assign(rec.nodes.size(), 0);
  for (const Seed& s : seeds_) {
    btan_[s.node] = s.data;
    bstride_[s.node] = static_cast<std::size_t>(rec.nodes[s.node].rows * rec.nodes[s.node].cols);
  }
  for (std::size_t i = 0; i < rec.nodes.size(); ++i) {
    if (rec.nodes[i].num_inputs != 0) tangent_node(rec, i);
  }
  nodes_ = rec.nodes.size();
}

template <class T>
void BlockSweeps<T>::tangent_node(const Recording<T>& rec, std::size_t i) {
  const Node<T>& n = rec.nodes[i];
  const std::uint32_t* in = rec.edges.data() + n.first_input;
  bool any = false;
  for (std::uint32_t k = 0; k < n.num_inputs; ++k) any = any || btan_[in[k]] != nullptr;
  if (!any) return;
  std::visit(
      [&](const auto& o) {
        using O = std::decay_t<decltype(o)>;
        if constexpr (!kIsLeaf<O> && !stops_gradient<O>()) {
          if constexpr (aliases_input<O>()) {
            // The same view of each of the input's tangents: same stride, shifted start.
            const Node<T>& x = rec.nodes[in[0]];
            btan_[i] = btan_[in[0]] + (n.value - x.value);
            bstride_[i] = bstride_[in[0]];
          } else {
            const auto size = static_cast<std::size_t>(n.rows * n.cols);
            T* dy = block_tangents_.allocate(size * static_cast<std::size_t>(k_));
            btan_[i] = dy;
            bstride_[i] = size;
            rec.gather_inputs(n, in_);
            const Node<T>& x0 = rec.nodes[in[0]];
            bool lhs_only = btan_[in[0]] != nullptr &&
                            bstride_[in[0]] == static_cast<std::size_t>(x0.rows * x0.cols);
            for (std::uint32_t k = 1; k < n.num_inputs; ++k)
              lhs_only = lhs_only && btan_[in[k]] == nullptr;
            if constexpr (requires { &O::template tangent_lhs<T>; }) {
              if (lhs_only) {  // all k directions in one product
                o.template tangent_lhs<T>(Inputs<T>(in_.data(), static_cast<int>(n.num_inputs)),
                                          ConstMap<T>(btan_[in[0]], x0.rows * k_, x0.cols),
                                          MutMap<T>(dy, n.rows * k_, n.cols));
                return;
              }
            }
            for (Index b = 0; b < k_; ++b) {
              tin_.clear();
              for (std::uint32_t k = 0; k < n.num_inputs; ++k) {
                const Node<T>& x = rec.nodes[in[k]];
                T* t = btan_[in[k]] == nullptr ? nullptr
                                               : const_cast<T*>(btan_[in[k]]) +
                                                     static_cast<std::size_t>(b) * bstride_[in[k]];
                tin_.push_back({t, x.rows, x.cols});
              }
              call_tangent(n, in_, tin_, dy + static_cast<std::size_t>(b) * size, zeros_, scratch_);
            }
          }
        }
      },
      n.op);
}

template <class T>
Matrix<T> BlockSweeps<T>::block_tangent(const Recording<T>& rec, std::uint32_t node) const {
  const Node<T>& n = rec.nodes[node];
  if (nodes_ == 0) {
    throw UsageError("block_tangent: no block tangents yet: call jvp_block(k) on this recording");
  }
  if (node >= nodes_) {
    throw UsageError(fmt::format(
        "block_tangent: node {} was recorded after the latest jvp_block: call it again", node));
  }
  Matrix<T> out = Matrix<T>::Zero(n.rows * k_, n.cols);
  if (btan_[node] == nullptr) return out;
  for (Index b = 0; b < k_; ++b) {
    out.middleRows(b * n.rows, n.rows) =
        ConstMap<T>(btan_[node] + static_cast<std::size_t>(b) * bstride_[node], n.rows, n.cols);
  }
  return out;
}

template <class T>
void BlockSweeps<T>::vjp_block(const Recording<T>& rec, std::uint32_t output,
                               const Eigen::Ref<const Matrix<T>>& seeds) {
  const Node<T>& out = rec.nodes[output];
  if (seeds.cols() != out.cols || out.rows == 0 || seeds.rows() == 0 ||
      seeds.rows() % out.rows != 0) {
    throw ShapeError(fmt::format(
        "vjp_block: cotangents are {}, expected k·{} rows and {} columns for a {} output",
        Shape{seeds.rows(), seeds.cols()}, out.rows, out.cols, Shape{out.rows, out.cols}));
  }
  rev_k_ = seeds.rows() / out.rows;
  rev_nodes_ = std::size_t{output} + 1;
  block_grads_.reset();
  bgrad_.assign(rec.nodes.size(), nullptr);
  if (!out.requires_grad) return;
  T* seed = block_grads_.allocate(static_cast<std::size_t>(seeds.size()));
  MutMap<T>(seed, seeds.rows(), seeds.cols()) = seeds;
  bgrad_[output] = seed;
  for (std::size_t i = std::size_t{output} + 1; i-- > 0;) {
    if (bgrad_[i] != nullptr && rec.nodes[i].num_inputs != 0) backward_node(rec, i);
  }
}

template <class T>
void BlockSweeps<T>::backward_node(const Recording<T>& rec, std::size_t i) {
  const Node<T>& n = rec.nodes[i];
  const int count = static_cast<int>(n.num_inputs);
  rec.gather_inputs(n, in_);
  BufferTarget<T> target{bgrad_, block_grads_, rev_k_, true};
  slots_.prepare(rec, n, target);
  std::vector<GradMode>& modes = slots_.mode;
  bool wanted = false, lhs_only = modes[0] != GradMode::none;
  for (int k = 0; k < count; ++k) {
    wanted = wanted || modes[static_cast<std::size_t>(k)] != GradMode::none;
    if (k > 0) lhs_only = lhs_only && modes[static_cast<std::size_t>(k)] == GradMode::none;
  }
  if (!wanted) return;
  const T* gy = bgrad_[i];
  const bool stacked = std::visit(
      [&](const auto& o) -> bool {
        using O = std::decay_t<decltype(o)>;
        if constexpr (requires { &O::template backward_lhs<T>; }) {
          if (lhs_only) {  // all k cotangents in one product
            const TensorRef<T>& s0 = slots_.slot[0];
            o.template backward_lhs<T>(
                Inputs<T>(in_.data(), count), ConstMap<T>(gy, n.rows * rev_k_, n.cols),
                MutMap<T>(s0.data, s0.rows, s0.cols), modes[0] == GradMode::add);
            return true;
          }
        }
        return false;
      },
      n.op);
  if (!stacked) {
    all_slots_ = slots_.slot;
    const auto size = static_cast<std::size_t>(n.rows * n.cols);
    for (Index b = 0; b < rev_k_; ++b) {
      for (int k = 0; k < count; ++k) {
        const TensorRef<T>& s = all_slots_[static_cast<std::size_t>(k)];
        const Index rows = s.rows / rev_k_;
        slots_.slot[static_cast<std::size_t>(k)] = {
            s.data == nullptr ? nullptr : s.data + b * rows * s.cols, rows, s.cols};
      }
      call_backward(n, in_.data(), slots_.slot.data(), modes.data(),
                    gy + static_cast<std::size_t>(b) * size, parts_);
    }
  }
  slots_.finish(rec, n, target);
}

template <class T>
Matrix<T> BlockSweeps<T>::block_grad(const Recording<T>& rec, std::uint32_t node) const {
  const Node<T>& n = rec.nodes[node];
  if (rev_nodes_ == 0) {
    throw UsageError("block_grad: no block cotangents yet: call vjp_block on this recording");
  }
  if (node >= bgrad_.size() || bgrad_[node] == nullptr)
    return Matrix<T>::Zero(n.rows * rev_k_, n.cols);
  return ConstMap<T>(bgrad_[node], n.rows * rev_k_, n.cols);
}

template <class T>
void BlockSweeps<T>::clear() {
  block_tangents_.reset();
  block_grads_.reset();
  seeds_.clear();
  seed_values_.reset();
  btan_.clear();
  bstride_.clear();
  bgrad_.clear();
  nodes_ = rev_nodes_ = 0;
  k_ = rev_k_ = 0;
}

template <class T>
std::size_t BlockSweeps<T>::capacity_bytes() const {
  std::size_t b =
      bytes_of(btan_) + bytes_of(bstride_) + bytes_of(bgrad_) +
      (block_tangents_.capacity() + block_grads_.capacity() + seed_values_.capacity()) * sizeof(T) +
      bytes_of(seeds_) + slots_.capacity_bytes() + bytes_of(in_) + bytes_of(tin_) +
      bytes_of(all_slots_) + bytes_of(parts_) + zeros_.capacity_bytes() + bytes_of(scratch_);
  return b;
}

template class BlockSweeps<float>;
template class BlockSweeps<double>;

}  // namespace rwd::detail
