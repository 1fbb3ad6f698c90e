// The tangent sweep (forward mode over a recorded tape, private header): ẏ = J·ẋ for every node
// from the seeds on inputs (Tape::set_tangent) and parameters (Parameter::tangent). Nothing is
// re-recorded; each op's rule comes from its struct through the traits of op_support.hpp.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "common.hpp"
#include "rewind/autograd/gemm.hpp"

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
class TangentSweep {
 public:
  /// Seeds input leaf `node`'s tangent (Tape::set_tangent; `who` names the node in errors).
  void set_tangent(const Recording<T>& rec, std::uint32_t node,
                   const Eigen::Ref<const Matrix<T>>& v);
  /// Tangents for every node of the recording (Tape::jvp).
  void jvp(const Recording<T>& rec);
  /// Nodes covered by the latest jvp (0: none on this recording).
  std::size_t covered() const { return covered_; }
  /// Node i's tangent, zeros where none reached it (kept, so the view stays valid).
  const T* tangent_of(const Recording<T>& rec, std::uint32_t i, std::string_view who);
  std::optional<ConstMap<T>> tangent(const Recording<T>& rec, std::size_t i) const;
  /// Node i's tangent or null (read by the second-order sweep).
  const T* at(std::size_t i) const { return tan_[i]; }
  /// tin = the tangents of n's inputs (null data where none; a parameter's with its packing).
  /// True if any has one.
  bool gather(const Recording<T>& rec, const Node<T>& n, std::vector<TensorRef<T>>& tin) const;
  void clear();
  std::size_t capacity_bytes() const;

 private:
  void node(const Recording<T>& rec, std::size_t i);

  std::vector<const T*> tan_;  // per node: its tangent (null: zero)
  Arena<T> tangents_;
  Arena<T> seed_values_;
  std::vector<std::pair<std::uint32_t, T*>> seeds_;  // input seeds, kept until clear()
  std::vector<TensorRef<T>> in_, tin_;
  Zeros<T> zeros_;
  std::vector<T> scratch_;
  // Per parameter slot: its tangent's packing, fixed for a sweep, so products with it reuse one
  // packing as products with the parameter do.
  std::vector<std::unique_ptr<PackedWeight<T>>> packs_;
  std::size_t covered_ = 0;
};

extern template class TangentSweep<float>;
extern template class TangentSweep<double>;

}  // namespace rwd::detail
