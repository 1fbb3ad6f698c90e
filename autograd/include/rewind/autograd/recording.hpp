// The recording: everything a tape holds between two clear()s. Nodes (small trivially-copyable
// records: op + attributes, input range, scope, shape), the edges between them, the value arena,
// labels, parameters, scopes, custom ops, the parameters' packings for products, and the
// generation that makes old Var handles detectable.
//
// It is one room of the tape; the sweeps (autograd/src/sweep/: reverse, parallel reverse, product
// terms, tangent, second order, block) are the others. Tape writes the recording; the sweeps read
// it, except that the reverse sweep (and its product terms) write each node's gradient fields.
// Recording order is topological, so every sweep is one loop over `nodes`, forward or back.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "rewind/autograd/arena.hpp"
#include "rewind/autograd/parameter.hpp"
#include "rewind/autograd/registry.hpp"
#include "rewind/autograd/tensor.hpp"

namespace rwd::detail {

/// One recorded op. record() writes one per op (about 20 ns): keep it small and flat.
template <class T>
struct Node {
  Op op;
  T* value = nullptr;
  T* grad = nullptr;  // written by the reverse sweep only
  Index rows = 0;
  Index cols = 0;
  std::uint32_t first_input = 0;
  std::uint32_t num_inputs = 0;
  std::uint32_t scope = 0;
  std::uint32_t grad_epoch = 0;  // grad is valid iff grad_epoch is the reverse sweep's epoch
  std::uint32_t uses = 0;        // edges into this node: how many times ops consume it
  bool requires_grad = false;
  bool accumulates = false;   // the op adds into an existing input gradient (Grads::put)
  std::uint8_t passes = 0;    // passes_gradient<op>(): inputs whose gradient is gy itself
  std::uint8_t products = 0;  // product_gradient_inputs<op>(): a weight's one product
};

struct ScopeEntry {
  std::uint32_t parent = 0;
  std::string name;
};

template <class T>
struct ParamSlot {
  Parameter<T>* param = nullptr;
  std::uint32_t node = 0;
  std::uint64_t version = 0;  // param->version when it was recorded
};

template <class T>
class Recording {
 public:
  Recording();

  std::vector<Node<T>> nodes;
  std::vector<std::uint32_t> edges;  // node inputs, node by node
  Arena<T> values;
  Arena<std::int32_t> indices;
  std::vector<ScopeEntry> scopes;  // scopes[0] is the root
  std::uint32_t current_scope = 0;
  std::vector<std::string> labels;
  std::vector<ParamSlot<T>> params;
  std::vector<std::shared_ptr<const CustomOpBase>> customs;
  // Per parameter slot, the weight's packings for products; kept across clear() for reuse.
  std::vector<std::unique_ptr<PackedWeight<T>>> packs;
  std::vector<const Parameter<T>*> pack_owner;  // whose weight packs[slot] holds (held mode)
  std::vector<std::uint64_t> pack_version;      // and the owner's version it was made from
  bool hold = false;                            // Tape::hold_parameters
  std::uint32_t generation = 1;

  /// The node index of input k of n.
  std::uint32_t input(const Node<T>& n, std::uint32_t k) const { return edges[n.first_input + k]; }
  /// r = x's view (with its packing when x is a parameter leaf).
  void set_ref(TensorRef<T>& r, const Node<T>& x) const {
    // Field by field, into r where it is kept: a TensorRef made elsewhere and copied into a
    // vector is written as four 8-byte stores and read back as one 32-byte load, which the
    // processor cannot forward from its store buffer (10% of tiny-ops' samples).
    r.data = x.value;
    r.rows = x.rows;
    r.cols = x.cols;
    r.packed = nullptr;
    if (const auto* p = std::get_if<ops::Param>(&x.op)) r.packed = packs[p->slot].get();
  }
  TensorRef<T> ref_of(const Node<T>& x) const {
    TensorRef<T> r;
    set_ref(r, x);
    return r;
  }
  /// refs = n's inputs.
  void gather_inputs(const Node<T>& n, std::vector<TensorRef<T>>& refs) const {
    refs.clear();
    for (std::uint32_t k = 0; k < n.num_inputs; ++k)
      set_ref(refs.emplace_back(), nodes[input(n, k)]);
  }
  /// Node i's op name; a custom op's own name.
  std::string_view op_name(std::size_t i) const;
  /// "layer0/fwd/t3/f", or "" at the top level.
  std::string scope_string(std::uint32_t scope) const;
  /// Forgets the nodes and keeps every buffer; the open scopes stay open, as a new chain.
  void clear();
  /// Bytes held across clear(), packings included.
  std::size_t capacity_bytes() const;
};

extern template class Recording<float>;
extern template class Recording<double>;

}  // namespace rwd::detail
