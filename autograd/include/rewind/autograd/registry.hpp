// The one list of primitives. It decides the node storage (`Op`, a variant of the structs),
// dispatch, the generated per-op tests and the names in graphs. Adding an op: write its struct
// in ops/<family>.hpp, add it here, add its free function in functional.hpp.
#pragma once

#include <cstdint>
#include <tuple>
#include <type_traits>
#include <variant>

#include "rewind/autograd/ops/activation.hpp"
#include "rewind/autograd/ops/arithmetic.hpp"
#include "rewind/autograd/ops/custom.hpp"
#include "rewind/autograd/ops/leaf.hpp"
#include "rewind/autograd/ops/linalg.hpp"
#include "rewind/autograd/ops/loss.hpp"
#include "rewind/autograd/ops/reduce.hpp"
#include "rewind/autograd/ops/select.hpp"
#include "rewind/autograd/ops/shape.hpp"

namespace rwd {

using AllOps = std::tuple<
    // leaves
    ops::Input, ops::Constant, ops::Param,
    // arithmetic
    ops::Add, ops::Sub, ops::Mul, ops::Div, ops::Neg, ops::Scale, ops::AddScalar, ops::Pow,
    ops::Square, ops::Sqrt, ops::Exp, ops::Log, ops::Abs, ops::Sin, ops::Cos, ops::Maximum,
    ops::Minimum,
    // activations
    ops::Sigmoid, ops::Tanh, ops::Relu, ops::Softplus, ops::LogSigmoid,
    // linear algebra
    ops::Matmul, ops::MatmulNt, ops::Affine, ops::Transpose, ops::AddRowVector, ops::MulRowVector,
    ops::RowOuter, ops::RowVecmat, ops::RowMatvec, ops::AddColVector, ops::MulColVector,
    // reductions
    ops::Sum, ops::Mean, ops::SumRows, ops::SumCols,
    // shape
    ops::ConcatCols, ops::ConcatRows, ops::SliceCols, ops::SliceRows, ops::Reshape, ops::Detach,
    // softmax and losses
    ops::LogSoftmaxRows, ops::SoftmaxRows, ops::CrossEntropy, ops::Mse, ops::BceWithLogits,
    // selection
    ops::Embedding, ops::Dropout, ops::Where,
    // user-defined
    ops::Custom>;

namespace detail {
template <class Tuple>
struct VariantOf;
template <class... Ts>
struct VariantOf<std::tuple<Ts...>> {
  using type = std::variant<Ts...>;
};
}  // namespace detail

/// A recorded op: one alternative per registry entry, attributes included.
using Op = detail::VariantOf<AllOps>::type;
static_assert(std::is_trivially_copyable_v<Op>, "node records must stay trivially copyable");

/// True for the leaf kinds (no inputs, nothing to run).
template <class O>
inline constexpr bool kIsLeaf = O::arity == 0;

/// The op's output shares its first input's storage (reshape, detach).
template <class O>
constexpr bool aliases_input() {
  if constexpr (requires { O::kAliasesInput; }) {
    return O::kAliasesInput;
  } else {
    return false;
  }
}

/// No gradient flows through the op (detach).
template <class O>
constexpr bool stops_gradient() {
  if constexpr (requires { O::kStopsGradient; }) {
    return O::kStopsGradient;
  } else {
    return false;
  }
}

/// The op's backward adds into a gradient that is already there (Grads::put).
template <class O>
constexpr bool accumulates() {
  if constexpr (requires { O::kAccumulates; }) {
    return O::kAccumulates;
  } else {
    return false;
  }
}

/// Bit k set: input k's gradient is the incoming gradient itself, same shape and same elements
/// in the same order (add, sub's first input, add_scalar, add_row_vector's matrix, reshape). When
/// such an input has no other consumer, the reverse sweep lets it share the op's gradient buffer
/// instead of copying it (autograd/src/sweep/slots.hpp); the op's backward still computes it
/// everywhere else (scratch slots, contributions, the tangent and block sweeps, the generated
/// tests).
template <class O>
constexpr std::uint8_t passes_gradient() {
  if constexpr (requires { O::kPassesGradient; }) {
    return O::kPassesGradient;
  } else {
    return 0;
  }
}

/// Row r of the output, and of every input gradient, depends on row r of the inputs, output and
/// incoming gradient only: the tape may run the op on row ranges in parallel.
template <class O>
constexpr bool rowwise() {
  if constexpr (requires { O::kRowwise; }) {
    return O::kRowwise && !aliases_input<O>();
  } else {
    return false;
  }
}

/// The inputs whose rows are the output's rows in the backward: row r of their gradient depends
/// on row r of the incoming gradient (and of the values) only. The other inputs are read whole
/// and their gradient is a sum over rows (a weight's gyᵀ·x, a bias's column sums). Bit k for
/// input k (inputs 0-7); a rowwise op has all of them. The parallel reverse sweep runs an op
/// with any such input on two threads, each over half of the rows (Tape::backward).
template <class O>
constexpr std::uint8_t row_local_inputs() {
  if constexpr (rowwise<O>()) {
    return 0xff;
  } else if constexpr (requires { O::kRowLocalInputs; }) {
    return aliases_input<O>() ? 0 : O::kRowLocalInputs;
  } else {
    return 0;
  }
}

/// The inputs whose gradient the op's backward writes with exactly one detail::gradient_product
/// and nothing else (a product's weight). Such an op also names that product's operands:
/// `static std::pair<const T*, const T*> product_operands(const Inputs<T>& x, const T* gy, int k)`
/// returns (a, b) with g[k] (+)= aᵀ·b, each the value of one of its inputs or gy, so that they
/// stay valid until the tape is cleared. The reverse sweep collects a parameter's terms and runs
/// them together when the sweep ends (detail::gradient_products); the parallel sweep lets both
/// threads compute them, each its share of every product (detail::ProductShare). Bit k for
/// input k.
template <class O>
constexpr std::uint8_t product_gradient_inputs() {
  if constexpr (requires { O::kProductGradientInputs; }) {
    static_assert(
        requires(const Inputs<float>& x, const float* gy) { O::product_operands(x, gy, 0); },
        "an op with kProductGradientInputs gives product_operands(x, gy, k)");
    return O::kProductGradientInputs;
  } else {
    return 0;
  }
}

/// Where the op's tangent and second-order rules come from (op_support.hpp); hand by default.
template <class O>
constexpr Rules rules() {
  if constexpr (requires { O::kRules; }) {
    return O::kRules;
  } else {
    return Rules::hand;
  }
}

namespace detail {
// Every registry entry has the members its rules need: a missing one is a compile error that
// names the op here rather than deep inside the tape.
template <class O>
constexpr bool has_second_order_rules() {
  if constexpr (kIsLeaf<O>) {
    return true;
  } else if constexpr (rules<O>() == Rules::hand) {
    return requires(const O& o, const Inputs<double>& x, ConstMap<double> y, MutMap<double> m,
                    Grads<double>& g) {
      o.tangent(x, y, x, m);
      o.second_order(x, y, y, x, y, g);
    };
  } else if constexpr (rules<O>() == Rules::symmetric) {
    return requires(const O& o, const Inputs<double>& x, ConstMap<double> y, Grads<double>& g) {
      o.second_order(x, y, y, x, y, g);
    };
  } else if constexpr (rules<O>() == Rules::elementwise) {
    return requires(const O& o, const Inputs<double>& x, ConstMap<double> y, MutMap<double> m) {
      o.curvature(x, y, y, y, m, true);
    };
  } else if constexpr (rules<O>() == Rules::bilinear) {
    return O::arity == 2;
  } else {
    return true;
  }
}
template <class Tuple>
struct AllHaveRules;
template <class... Ts>
struct AllHaveRules<std::tuple<Ts...>> {
  static constexpr bool value = (has_second_order_rules<Ts>() && ...);
};
}  // namespace detail
static_assert(detail::AllHaveRules<AllOps>::value,
              "an op lacks the members its kRules needs: `tangent` and `second_order` (hand), "
              "`second_order` (symmetric), `curvature` (elementwise) or arity 2 (bilinear)");

/// The registry name of a recorded op ("custom" for every CustomOp; Tape::op_name resolves it).
inline std::string_view op_name(const Op& op) {
  return std::visit([](const auto& o) { return std::decay_t<decltype(o)>::name; }, op);
}

}  // namespace rwd
