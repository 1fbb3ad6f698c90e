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

/// n's single-direction tangent rule into dy, from `in` (its inputs) and `tin` (their tangents;
/// null data where none, which a linear op's rule replaces with zeros). Defined once, in
/// tangent.cpp, for float and double (the block sweep calls it too).
template <class T>
void call_tangent(const Node<T>& n, const std::vector<TensorRef<T>>& in,
                  std::vector<TensorRef<T>>& tin, T* dy_data, Zeros<T>& zeros,
                  std::vector<T>& scratch);

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
