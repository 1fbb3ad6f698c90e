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
//   static constexpr std::uint8_t kRowLocalInputs = 0b01;  // backward: these inputs' gradient
//                                           // rows follow gy's rows; the others' are sums over
//                                           // rows (a product's weight, a bias): see registry.hpp
//   static constexpr std::uint8_t kProductGradientInputs = 0b10;  // these inputs' gradient is
//                                           // one detail::gradient_product, nothing else
// `backward` returns the gradient of each input k with g.wants(k) by assigning every element of
// g[k]; the tape accumulates. The slot may be fresh memory: never read it, never `+=` into it.
// An op that declares kAccumulates instead writes through `g.put(k, expr)` (or checks
// `g.adds(k)`): when the input already holds a gradient from another consumer, the tape hands
// the op that buffer and the op adds into it. That saves a scratch pass and an addition per
// input, and lets a product add in place (GEMM with beta = 1) and a slice touch only its part.
// The generated tests run every op both ways.
//
// Second order. Every op also has a tangent rule (forward mode, ẏ = J·ẋ) and a second-order
// term (the derivative of its backward along the tangents with gy held fixed:
// S_k = d/dε backward_k(x + εẋ, y + εẏ, gy)). The tape's second-order sweep gives input k
// backward_k(ġy) + S_k. An op says where its rules come from with `kRules` (default: hand):
//   Rules::linear            y = L(x₀, …) linear: ẏ = forward on the tangents, S = 0
//   Rules::bilinear          y = B(a, b): ẏ = B(ȧ, b) + B(a, ḃ); S_a = backward_a with b := ḃ,
//                            S_b = backward_b with a := ȧ (the op's own forward and backward)
//   Rules::elementwise       y = f(x) elementwise: ẏ = backward with gy := ẋ, and the op writes
//                            `curvature(x, y, gy, dx, out, add)`: out (+)= f''(x) ⊙ ẋ ⊙ gy, with
//                            detail::put(out, add, expr)
//   Rules::piecewise_linear  the same with f'' = 0 (relu, abs, add_scalar)
//   Rules::symmetric         J is symmetric: ẏ = backward with gy := ẋ; `second_order` by hand
//   Rules::hand              the op writes both:
//     template <class T> void tangent(const Inputs<T>& x, ConstMap<T> y, const Inputs<T>& dx,
//                                     MutMap<T> dy) const;               // assign every element
//     template <class T> void second_order(const Inputs<T>& x, ConstMap<T> y, ConstMap<T> gy,
//                                          const Inputs<T>& dx, ConstMap<T> dy,
//                                          Grads<T>& g) const;           // g[k] = S_k, as backward
// In tangent and second_order, `dx.has(k)` is false where input k has no tangent (it is zero).
// Optional, for speed: `second_order_sweep(x, y, gy, gdot, dx, dy, g)` writes backward(ġy) + S
// in one call (gdot null when ġy = 0); the tape then calls it instead of the two.
// Optional, for many directions at once (Tape::jvp_block, Tape::vjp_block), on products:
//   template <class T> void tangent_lhs(const Inputs<T>& x, ConstMap<T> dx0, MutMap<T> dy) const;
//   template <class T> void backward_lhs(const Inputs<T>& x, ConstMap<T> gy, MutMap<T> g0,
//                                        bool add) const;
// ẏ for a tangent on input 0 alone, and input 0's gradient, where dx0 / gy hold k directions
// stacked by rows (k times the rows of x[0] / y): one product for all k instead of k products.
// Without them the tape runs the op's single-direction rules once per direction.
#pragma once

#include <algorithm>
#include <cmath>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "rewind/autograd/errors.hpp"
#include "rewind/autograd/gemm.hpp"
#include "rewind/autograd/tensor.hpp"

namespace rwd {

inline constexpr int kVariadic = -1;

/// Where an op's tangent and second-order rules come from (see the file comment).
enum class Rules : unsigned char {
  hand,
  linear,
  bilinear,
  elementwise,
  piecewise_linear,
  symmetric,
};

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
  /// False when input k has no data: in a tangent or second-order rule, a zero tangent.
  bool has(int k) const { return refs_[k].data != nullptr; }
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

/// The explicit broadcast that fits where a 1×n row meets a batch of n columns, or a B×1
/// column (one value per example) meets B rows, in add, sub or mul ("" where none does): the
/// hint of require_same_shape's error.
inline std::string broadcast_hint(std::string_view op, Shape a, Shape b) {
  const bool b_row = b.rows == 1 && a.rows > 1 && a.cols == b.cols;
  const bool a_row = a.rows == 1 && b.rows > 1 && a.cols == b.cols;
  const bool b_col = b.cols == 1 && a.cols > 1 && a.rows == b.rows;
  const bool a_col = a.cols == 1 && b.cols > 1 && a.rows == b.rows;
  const bool rows = a_row || b_row;
  if (!rows && !a_col && !b_col) return {};
  const bool b_small = rows ? b_row : b_col;  // rhs is the row or column
  const std::string_view big = b_small ? "lhs" : "rhs", small = b_small ? "rhs" : "lhs";
  const std::string_view kind = rows ? "row" : "col";
  std::string call;
  if (op == "add") call = fmt::format("add_{}_vector({}, {})", kind, big, small);
  if (op == "mul") call = fmt::format("mul_{}_vector({}, {})", kind, big, small);
  if (op == "sub") {
    call = b_small ? fmt::format("add_{}_vector(lhs, neg(rhs))", kind)
                   : fmt::format("add_{}_vector(neg(rhs), lhs)", kind);
  }
  if (call.empty()) return {};
  const Shape whole = b_small ? a : b;
  if (rows) {
    return fmt::format(" (no implicit broadcasting: {} broadcasts the 1x{} row over the {} rows)",
                       call, whole.cols, whole.rows);
  }
  return fmt::format(
      " (no implicit broadcasting: {} broadcasts the {}x1 column over the {} columns)", call,
      whole.rows, whole.cols);
}

/// Elementwise ops take equal shapes; there is no implicit broadcasting (the error names the
/// explicit op that broadcasts, where one fits).
inline void require_same_shape(std::string_view op, Shape a, Shape b,
                               std::string_view a_name = "lhs", std::string_view b_name = "rhs") {
  if (a != b)
    throw_shape(
        op, "shapes differ",
        fmt::format("{} is {}, {} is {}{}", a_name, a, b_name, b, broadcast_hint(op, a, b)));
}

// n < L elements from x into pad (L of them, 64-byte aligned, zeros after n), and back. With
// AVX-512, one masked load or store: pad is then written by a store as wide as Eigen's load of
// it (copying element by element makes that load wait for the stores to drain, which was a
// third of a 1x8 tanh).
template <class T, int L>
void load_tail(const T* x, Index n, T* pad) {
#ifdef __AVX512F__
  if constexpr (std::is_same_v<T, float> && L == 16) {
    _mm512_store_ps(pad, _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n) - 1), x));
    return;
  } else if constexpr (std::is_same_v<T, double> && L == 8) {
    _mm512_store_pd(pad, _mm512_maskz_loadu_pd(static_cast<__mmask8>((1u << n) - 1), x));
    return;
  }
#endif
  std::fill(pad + n, pad + L, T(0));
  std::copy(x, x + n, pad);
}
template <class T, int L>
void store_tail(const T* pad, Index n, T* y) {
#ifdef __AVX512F__
  if constexpr (std::is_same_v<T, float> && L == 16) {
    _mm512_mask_storeu_ps(y, static_cast<__mmask16>((1u << n) - 1), _mm512_load_ps(pad));
    return;
  } else if constexpr (std::is_same_v<T, double> && L == 8) {
    _mm512_mask_storeu_pd(y, static_cast<__mmask8>((1u << n) - 1), _mm512_load_pd(pad));
    return;
  }
#endif
  std::copy(pad, pad + n, y);
}

/// y = f(x) for an elementwise Eigen array function f (a generic lambda on an array expression,
/// e.g. `[](const auto& a) { return a.tanh(); }`), every element on Eigen's packet path: one
/// packet at a time, and the last partial packet through a zero-padded buffer. Eigen itself
/// computes what does not fill a packet (and what precedes the first aligned address) one
/// element at a time, with an out-of-line call per element: under AVX-512 a float tanh on 1x8
/// (half a packet) took about 6 ns an element, and an element there could round otherwise than
/// its neighbours. Here an element's value depends on its input alone, not on the tensor's size
/// or alignment. Only for the costly functions (transcendentals): a cheap one is not worth it.
template <class T, class F>
void packetwise(ConstMap<T> x, MutMap<T> y, F f) {
  constexpr int kLanes = Eigen::internal::packet_traits<T>::size;
  using Packet = Eigen::Array<T, kLanes, 1>;
  const Index n = x.size();
  Index i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    Eigen::Map<Packet> out(y.data() + i);
    out = f(Eigen::Map<const Packet>(x.data() + i));
  }
  if (i < n) {
    alignas(64) T in[kLanes];
    alignas(64) T out[kLanes];
    load_tail<T, kLanes>(x.data() + i, n - i, in);
    Eigen::Map<Packet, Eigen::Aligned64> result(out);
    result = f(Eigen::Map<const Packet, Eigen::Aligned64>(in));
    store_tail<T, kLanes>(out, n - i, y.data() + i);
  }
}

/// Whether x looks like a gradient that has vanished so far that its product with a local
/// derivative may fall under float's smallest normal number (2⁻¹²⁶): some element tiny but not
/// zero, 0 < |x| < 2⁻⁶³ (1.1·10⁻¹⁹). Every element of up to 256, else 64 spread over x: the
/// answer only picks between two ways to the same bits (times_gradient), and a pass over a large
/// gradient at every op would cost more than the rare assist it avoids.
inline bool has_tiny(const float* x, Index n) {
  const Index step = n <= 256 ? 1 : n / 64;
  int tiny = 0;
  for (Index i = 0; i < n; i += step) {
    const float a = std::abs(x[i]);
    tiny |= static_cast<int>(a < 0x1p-63f) & static_cast<int>(a > 0.0f);
  }
  return tiny != 0;
}

/// out = d ⊙ gy, assigned or added (`add`): an elementwise op's gradient, d its local derivative
/// (an array expression of out's size, or a scalar) and gy the incoming gradient. The same bits
/// as `put(out, add, d * gy.array())`. For float, when the product is assigned and gy holds
/// tiny values (has_tiny: a gradient vanishing down a long chain), the products are taken in
/// double and rounded to float once. A product of two floats is exact in double, so the result
/// is the float product's bits; but a float multiply whose result is denormal and inexact costs
/// a microcode assist on x86 (about 60 ns an instruction here, against 2 ns through double:
/// docs/benchmarks.md), and such a chain has one at every step. Not when adding: the compiler
/// may fuse the float path's multiply and add into one rounding (GCC does), which a product
/// rounded on its own would not match. The sweep adds most later contributions from scratch,
/// where the product is assigned; additions of denormals cost nothing extra.
template <class T, class D>
void times_gradient(MutMap<T> out, bool add, const D& d, ConstMap<T> gy) {
  if constexpr (std::is_same_v<T, float>) {
    if (!add && has_tiny(gy.data(), gy.size())) {
      const Index n = gy.size();
      // d in float as the plain product would compute it (a scalar: broadcast), then each
      // product through double, 8 at a time where AVX-512 has the conversions.
      thread_local std::vector<float> buffer;
      if (static_cast<Index>(buffer.size()) < n) buffer.resize(static_cast<std::size_t>(n));
      MutMap<float> dv(buffer.data(), out.rows(), out.cols());
      if constexpr (std::is_arithmetic_v<D>) {
        dv.setConstant(static_cast<float>(d));
      } else {
        dv.array() = d;
      }
      const float* a = buffer.data();
      const float* g = gy.data();
      float* y = out.data();
      Index i = 0;
#ifdef __AVX512F__
      const auto at = [](__m256 da, __m256 ga) {
        return _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtps_pd(da), _mm512_cvtps_pd(ga)));
      };
      for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, at(_mm256_loadu_ps(a + i), _mm256_loadu_ps(g + i)));
      if (i < n) {
        const auto m = static_cast<__mmask8>((1u << (n - i)) - 1);
        _mm256_mask_storeu_ps(y + i, m,
                              at(_mm256_maskz_loadu_ps(m, a + i), _mm256_maskz_loadu_ps(m, g + i)));
      }
#else
      for (; i < n; ++i)
        y[i] = static_cast<float>(static_cast<double>(a[i]) * static_cast<double>(g[i]));
#endif
      return;
    }
  }
  if constexpr (std::is_arithmetic_v<D>) {
    put(out, add, gy.array() * static_cast<T>(d));
  } else {
    put(out, add, d * gy.array());
  }
}

}  // namespace detail

/// Base for ops with one input whose output has the input's shape (elementwise by default: such
/// an op writes `curvature`, or declares another kRules).
struct UnaryShape {
  static constexpr Rules kRules = Rules::elementwise;
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
