// Many directions at once (private header): k tangent sweeps in one (J·V, Tape::jvp_block) and k
// reverse sweeps in one (Uᵀ·J, Tape::vjp_block). Each node holds its k tangents or cotangents as
// one block; a product whose weight has no tangent multiplies all k at once (one GEMM with k
// times the rows), other ops run their rule once per direction.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "slots.hpp"
#include "tangent.hpp"

namespace rwd::detail {

template <class T>
class BlockSweeps {
 public:
  void set_block_tangent(const Recording<T>& rec, std::uint32_t node,
                         const Eigen::Ref<const Matrix<T>>& v);
  void jvp_block(const Recording<T>& rec, Index k);
  Matrix<T> block_tangent(const Recording<T>& rec, std::uint32_t node) const;
  void vjp_block(const Recording<T>& rec, std::uint32_t output,
                 const Eigen::Ref<const Matrix<T>>& seeds);
  Matrix<T> block_grad(const Recording<T>& rec, std::uint32_t node) const;
  void clear();
  std::size_t capacity_bytes() const;

 private:
  void tangent_node(const Recording<T>& rec, std::size_t i);
  void backward_node(const Recording<T>& rec, std::size_t i);

  // Per node its k tangents (btan_, block j at btan_[i] + j·bstride_[i]; a view keeps its
  // input's stride) and its k cotangents (bgrad_, contiguous), their arenas and seeds.
  std::vector<const T*> btan_;
  std::vector<std::size_t> bstride_;
  std::vector<T*> bgrad_;
  Arena<T> block_tangents_;
  Arena<T> block_grads_;
  struct Seed {
    std::uint32_t node = 0;
    T* data = nullptr;  // in seed_values_
    Index rows = 0;     // k·(the node's rows)
  };
  std::vector<Seed> seeds_;
  Arena<T> seed_values_;
  Slots<T> slots_;
  std::vector<TensorRef<T>> in_, tin_, all_slots_, parts_;
  Zeros<T> zeros_;
  std::vector<T> scratch_;
  Index k_ = 0;                // directions of the latest jvp_block, 0 if none
  Index rev_k_ = 0;            // cotangents of the latest vjp_block, 0 if none
  std::size_t nodes_ = 0;      // nodes covered by the latest jvp_block
  std::size_t rev_nodes_ = 0;  // nodes covered by the latest vjp_block
};

extern template class BlockSweeps<float>;
extern template class BlockSweeps<double>;

}  // namespace rwd::detail
