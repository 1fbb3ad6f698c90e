// Where an op's backward writes each input's gradient, in any reverse sweep (private header).
//
// An input's first contribution is written straight into its buffer. Later ones are added into
// it by ops that declare kAccumulates; for the others they go to scratch and finish() adds them,
// so such an op only ever assigns. An input used twice by one op (mul(x, x)) gets its buffer
// from the first use: the second goes to scratch, so no op has to care in which order it writes
// its slots. The sweeps differ only in where their buffers are, which a Target says:
//   Index blocks()                  rows of a buffer per row of the node (k for block sweeps)
//   bool wanted(const Node&)        whether this input gets a gradient in this sweep at all
//   T*& buffer(std::uint32_t x)     node x's buffer in this sweep
//   bool fresh(std::uint32_t x)     no contribution has reached x yet
//   void claim(std::uint32_t x)     x's buffer is now this sweep's
//   T* allocate(std::size_t)        a new buffer
//   static constexpr bool kShares   an input whose whole gradient is gy may share n's buffer
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "common.hpp"

namespace rwd::detail {

template <class T>
struct Slots {
  std::vector<TensorRef<T>> slot;  // per input of the node: where its gradient goes
  std::vector<GradMode> mode;      // and how
  std::vector<std::pair<std::uint32_t, std::size_t>> accumulate;  // (input, scratch offset)

  /// Fills slot/mode for n's inputs. Inputs k with skip[k] get no slot; skip may be null.
  template <class Target>
  void prepare(const Recording<T>& rec, const Node<T>& n, Target& target,
               const bool* skip = nullptr) {
    const int count = static_cast<int>(n.num_inputs);
    slot.clear();
    mode.clear();
    accumulate.clear();
    const Index blocks = target.blocks();
    std::size_t scratch = 0;
    const std::uint32_t* in = rec.edges.data() + n.first_input;
    for (int k = 0; k < count; ++k) {
      const std::uint32_t xi = in[k];
      const Node<T>& x = rec.nodes[xi];
      TensorRef<T>& s = slot.emplace_back();  // in place: see Recording::set_ref
      s.rows = x.rows * blocks;
      s.cols = x.cols;
      GradMode m = GradMode::none;
      if (x.requires_grad && (skip == nullptr || !skip[k]) && target.wanted(x)) {
        const auto size = static_cast<std::size_t>(x.rows * x.cols * blocks);
        T*& buffer = target.buffer(xi);
        m = GradMode::assign;
        const bool fresh = target.fresh(xi);
        if (Target::kShares && fresh && x.uses == 1 && k < 8 && (n.passes >> k & 1) != 0) {
          // The input's whole gradient is gy (an add's operand, say) and nothing else adds to
          // it: it shares n's buffer instead of a copy. Gradients are only read once complete,
          // so the two nodes reading one buffer cannot tell.
          buffer = n.grad;
          target.claim(xi);
          m = GradMode::none;
        } else if (fresh) {
          buffer = target.allocate(size);
          target.claim(xi);
          s.data = buffer;
        } else if (n.accumulates && std::find(in, in + k, xi) == in + k) {
          m = GradMode::add;
          s.data = buffer;
        } else {
          accumulate.push_back({static_cast<std::uint32_t>(k), scratch});
          scratch += size;
        }
      }
      mode.push_back(m);
    }
    if (scratch > scratch_.size()) scratch_.resize(scratch);
    for (const auto& [k, offset] : accumulate) slot[k].data = scratch_.data() + offset;
  }

  /// Adds the contributions prepare() sent to scratch into their buffers.
  template <class Target>
  void finish(const Recording<T>& rec, const Node<T>& n, Target& target) {
    const Index blocks = target.blocks();
    for (const auto& [k, offset] : accumulate) {
      const std::uint32_t xi = rec.input(n, k);
      const Node<T>& x = rec.nodes[xi];
      MutMap<T>(target.buffer(xi), x.rows * blocks, x.cols) +=
          ConstMap<T>(scratch_.data() + offset, x.rows * blocks, x.cols);
    }
  }

  std::size_t capacity_bytes() const {
    return bytes_of(slot) + bytes_of(mode) + bytes_of(accumulate) + bytes_of(scratch_);
  }

 private:
  std::vector<T> scratch_;
};

/// The first-order sweep's buffers: each node's own gradient, valid for one epoch.
template <class T>
struct GradTarget {
  static constexpr bool kShares = true;
  Recording<T>& rec;
  Arena<T>& arena;
  std::uint32_t epoch;

  Index blocks() const { return 1; }
  bool wanted(const Node<T>&) const { return true; }
  T*& buffer(std::uint32_t x) { return rec.nodes[x].grad; }
  bool fresh(std::uint32_t x) const { return rec.nodes[x].grad_epoch != epoch; }
  void claim(std::uint32_t x) { rec.nodes[x].grad_epoch = epoch; }
  T* allocate(std::size_t size) { return arena.allocate(size); }
};

/// A sweep's own per-node buffers (gradient tangents; a block sweep's k cotangents, which skip
/// parameter leaves): null until a contribution arrives.
template <class T>
struct BufferTarget {
  static constexpr bool kShares = false;
  std::vector<T*>& buffers;
  Arena<T>& arena;
  Index k = 1;
  bool skip_parameters = false;

  Index blocks() const { return k; }
  bool wanted(const Node<T>& x) const {
    return !(skip_parameters && std::holds_alternative<ops::Param>(x.op));
  }
  T*& buffer(std::uint32_t x) { return buffers[x]; }
  bool fresh(std::uint32_t x) const { return buffers[x] == nullptr; }
  void claim(std::uint32_t) {}
  T* allocate(std::size_t size) { return arena.allocate(size); }
};

}  // namespace rwd::detail
