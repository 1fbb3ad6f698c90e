// Gradient checking as a library API: compares the tape's gradients with central finite
// differences, in double, for every input and parameter of a function, and reports per tensor.
//
//   auto report = gradcheck(
//       [&](Tape<double>& tape, std::span<const Var<double>> in) {
//         return mean(square(tanh(matmul(in[0], tape.param(w)))));
//       },
//       {{"x", x}}, {&w});
//   if (!report.passed()) std::cerr << report;
//
// An element passes when |analytic - numeric| <= atol + rtol·|numeric| (PyTorch's allclose
// criterion, with gradcheck's defaults). A function whose output is not 1x1 is contracted with
// a fixed random tensor R (loss = Σ y ⊙ R), which checks the whole vector-Jacobian product.
//
// gradgradcheck checks second order the same way: along directions v (every unit vector, or
// random ones in fast mode) it compares the tape's H·v (Tape::hvp) with central differences of
// the gradient, the tangent of the output (Tape::jvp) with central differences of the output,
// and checks the transpose identity ⟨R, J·v⟩ = ⟨Jᵀ·R, v⟩ between the tangent and the
// gradient, which holds to rounding with no finite-difference step at all.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <span>
#include <string>
#include <vector>

#include "rewind/autograd/functional.hpp"

namespace rwd {

struct GradcheckOptions {
  double eps = 1e-6;   ///< finite-difference step
  double atol = 1e-5;  ///< absolute tolerance
  double rtol = 1e-3;  ///< relative tolerance
  /// Random-direction mode: per tensor, compare ⟨∇f, v⟩ with (f(x + εv) - f(x - εv)) / 2ε for
  /// `directions` random unit directions v instead of every element. Two evaluations per
  /// direction instead of two per element: for big graphs.
  bool fast = false;
  int directions = 4;
  std::uint64_t seed = 20240229;  ///< directions and the output contraction R
};

/// The outcome for one tensor (an input or a parameter).
struct TensorCheck {
  std::string name;
  Shape shape;
  double max_abs_error = 0;  ///< max |analytic - numeric|
  double max_rel_error = 0;  ///< max |analytic - numeric| / max(|analytic|, |numeric|)
  /// The element (or, in fast mode, the direction number in worst_col, with worst_row = -1)
  /// whose error is largest relative to its tolerance.
  Index worst_row = -1;
  Index worst_col = -1;
  double analytic = 0;  ///< at the worst element or direction
  double numeric = 0;
  bool passed = true;
};

struct GradcheckReport {
  std::vector<TensorCheck> tensors;
  GradcheckOptions options;
  double loss = 0;  ///< f at the unperturbed point (after contraction)

  bool passed() const;
  /// The entry for a tensor name; throws UsageError if there is none.
  const TensorCheck& at(std::string_view name) const;
  /// A table, one line per tensor.
  std::string to_string() const;
};
std::ostream& operator<<(std::ostream& out, const GradcheckReport& report);

/// A named input tensor for gradcheck; it is recorded with `tape.input(value, name)`.
struct NamedTensor {
  std::string name;
  Matrix<double> value;
};

/// The function under test: records onto `tape` from the given input handles (in the order of
/// `inputs`) and from parameters it captures, and returns its output.
using GradcheckFunction =
    std::function<Var<double>(Tape<double>& tape, std::span<const Var<double>> inputs)>;

/// Checks d f / d(every input and every listed parameter). Parameters are perturbed in place
/// and restored bit for bit; their `grad` is left as it was.
GradcheckReport gradcheck(const GradcheckFunction& f, const std::vector<NamedTensor>& inputs,
                          const std::vector<Parameter<double>*>& params = {},
                          const GradcheckOptions& options = {});

/// The outcome of gradgradcheck.
struct GradgradcheckReport {
  /// Per input and parameter: H·v against central differences of the gradient, over all
  /// directions (worst_col: the direction; worst_row: the element, or -1).
  std::vector<TensorCheck> tensors;
  /// The output's tangent J·v against central differences of the output ("output").
  TensorCheck output;
  /// ⟨R, J·v⟩ and ⟨Jᵀ·R, v⟩ at the worst direction, and the largest relative gap over the
  /// directions: |a - b| / (Σ|Rᵢ (J·v)ᵢ| + Σ|(Jᵀ·R)ⱼ vⱼ|), rounding error only.
  double transpose_lhs = 0;
  double transpose_rhs = 0;
  double transpose_error = 0;
  double transpose_tolerance = 1e-10;
  GradcheckOptions options;
  int directions = 0;  ///< directions checked
  double loss = 0;

  bool passed() const;
  bool transpose_passed() const { return transpose_error <= transpose_tolerance; }
  /// The entry for a tensor name ("output" for the tangent check); throws UsageError if none.
  const TensorCheck& at(std::string_view name) const;
  std::string to_string() const;
};
std::ostream& operator<<(std::ostream& out, const GradgradcheckReport& report);

/// Checks second derivatives of f with respect to every input and listed parameter, in
/// double: H·v (Tape::hvp) against central differences of the gradient along v, J·v
/// (Tape::jvp) against central differences of f, and the transpose identity. Directions: every
/// unit vector of the inputs and parameters together (n Hessian columns, 2n + n sweeps), or with
/// options.fast `options.directions` random unit directions. Parameters are perturbed in place
/// and restored bit for bit; their grad, tangent and grad_tangent are left as they were.
GradgradcheckReport gradgradcheck(const GradcheckFunction& f,
                                  const std::vector<NamedTensor>& inputs,
                                  const std::vector<Parameter<double>*>& params = {},
                                  const GradcheckOptions& options = {});

/// The outcome of checking one recorded op on its own.
struct OpCheck {
  std::size_t node = 0;
  std::string op;     ///< op name (a custom op's own name)
  std::string scope;  ///< where it was recorded: `layer0/fwd/t3/f`
  double max_abs_error = 0;
  double max_rel_error = 0;
  bool passed = true;
  /// Which of its rules is wrong when it failed: "backward", "tangent" or "second-order"
  /// (blame with order 2 checks all three); empty when it passed.
  std::string rule;
};

/// Blame: checks the backward of every op recorded on `tape` on its own, against central
/// differences of that op alone at the inputs it was recorded with (a random contraction of
/// its output; exhaustive for small inputs, random directions for large ones). When a
/// gradient check of a whole model fails, the failing entries name the op, its scope (layer,
/// time step, gate) and its error. Ops that stop the gradient (detach) are skipped.
/// order 2 also checks each op's tangent and second-order rules: gradgradcheck of
/// Σ op(x) ⊙ G over the op's inputs and G (so the second-order term is checked over (x, gy)).
std::vector<OpCheck> blame(const Tape<double>& tape, const GradcheckOptions& options = {},
                           int order = 1);

}  // namespace rwd
