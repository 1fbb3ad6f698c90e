// What an op struct sees. An op is a plain struct with
//   static constexpr std::string_view name;   // equal to its free function
//   static constexpr int arity;               // number of inputs, or kVariadic
//   Shape shape(std::span<const Shape> x) const;                        // checks, throws
//   template <class T> void forward(const Inputs<T>& x, MutMap<T> y) const;
//   template <class T> void backward(const Inputs<T>& x, ConstMap<T> y, ConstMap<T> gy,
//                                    Grads<T>& g) const;
// plus its attributes as plain (trivially copyable) members. Optional traits:
//   static constexpr bool kAliasesInput = true;   // y is x[0]'s storage (reshape, detach),
//                                                 // from `Index alias_offset(shapes)` if any
//   static constexpr bool kStopsGradient = true;  // no gradient flows through (detach)
//   static constexpr bool kAccumulates = true;    // backward writes with g.put (see below)
//   static constexpr bool kRowwise = true;  // rows are independent, forward and backward: a
//                                           // REWIND_OPENMP build runs big ones on two threads
// `backward` returns the gradient of each input k with g.wants(k) by assigning every element of
// g[k]; the tape accumulates. The slot may be fresh memory: never read it, never `+=` into it.
// An op that declares kAccumulates instead writes through `g.put(k, expr)` (or checks
// `g.adds(k)`): when the input already holds a gradient from another consumer, the tape hands
// the op that buffer and the op adds into it. That saves a scratch pass and an addition per
// input, and lets a product add in place (GEMM with beta = 1) and a slice touch only its part.
// The generated tests run every op both ways.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "rewind/autograd/errors.hpp"
#include "rewind/autograd/gemm.hpp"
#include "rewind/autograd/tensor.hpp"

namespace rwd {

inline constexpr int kVariadic = -1;

/// A tensor the tape hands to an op: pointer and shape (row-major); for a parameter leaf, also
/// its packing for products (see gemm.hpp).
template <class T>
struct TensorRef {
  T* data = nullptr;
  Index rows = 0;
  Index cols = 0;
  detail::PackedWeight<T>* packed = nullptr;
};

/// The inputs of an op: `x[k]` is a read-only row-major matrix view.
template <class T>
class Inputs {
 public:
  Inputs(const TensorRef<T>* refs, int count) : refs_(refs), count_(count) {}
  ConstMap<T> operator[](int k) const {
    return ConstMap<T>(refs_[k].data, refs_[k].rows, refs_[k].cols);
  }
  Shape shape(int k) const { return {refs_[k].rows, refs_[k].cols}; }
  int size() const { return count_; }
  /// Input k's packing as a product's weight when it is a parameter leaf, else null: pass it
  /// to detail::weight_product.
  detail::PackedWeight<T>* packed(int k) const { return refs_[k].packed; }

 private:
  const TensorRef<T>* refs_;
  int count_;
};

/// What the tape asks of an op for one input: nothing, assign the slot, or add into it.
enum class GradMode : unsigned char { none = 0, assign = 1, add = 2 };

/// The gradient slots of an op's inputs: assign `g[k]` when `g.wants(k)` (ops declaring
/// kAccumulates: `g.put(k, expr)`, which adds when `g.adds(k)`).
template <class T>
class Grads {
 public:
  Grads(const TensorRef<T>* slots, const GradMode* modes, int count)
      : slots_(slots), modes_(modes), count_(count) {}
  bool wants(int k) const { return modes_[k] != GradMode::none; }
  /// The slot already holds a gradient to add to (only for ops declaring kAccumulates).
  bool adds(int k) const { return modes_[k] == GradMode::add; }
  MutMap<T> operator[](int k) const {
    return MutMap<T>(slots_[k].data, slots_[k].rows, slots_[k].cols);
  }
  /// g[k] = e, or g[k] += e when the tape asks to add. `e` must not read g[k].
  template <class E>
  void put(int k, const E& e) const {
    detail::assign_or_add((*this)[k], adds(k), e);
  }
  int size() const { return count_; }

 private:
  const TensorRef<T>* slots_;
  const GradMode* modes_;
  int count_;
};

namespace detail {

[[noreturn]] inline void throw_shape(std::string_view op, std::string_view what,
                                     std::string_view details) {
  throw ShapeError(fmt::format("{}: {}: {}", op, what, details));
}

/// Elementwise ops take equal shapes; there is no implicit broadcasting.
inline void require_same_shape(std::string_view op, Shape a, Shape b,
                               std::string_view a_name = "lhs", std::string_view b_name = "rhs") {
  if (a != b)
    throw_shape(op, "shapes differ", fmt::format("{} is {}, {} is {}", a_name, a, b_name, b));
}

}  // namespace detail

/// Base for ops with one input whose output has the input's shape.
struct UnaryShape {
  static constexpr int arity = 1;
  static constexpr bool kRowwise = true;
  Shape shape(std::span<const Shape> x) const { return x[0]; }
};

/// Base for elementwise ops on two equally shaped inputs (CRTP for the op's name in errors).
template <class Op>
struct BinaryShape {
  static constexpr int arity = 2;
  static constexpr bool kRowwise = true;
  Shape shape(std::span<const Shape> x) const {
    detail::require_same_shape(Op::name, x[0], x[1]);
    return x[0];
  }
};

}  // namespace rwd
