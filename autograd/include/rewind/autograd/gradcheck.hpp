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

/// The outcome of checking one recorded op on its own.
struct OpCheck {
  std::size_t node = 0;
  std::string op;     ///< op name (a custom op's own name)
  std::string scope;  ///< where it was recorded: `layer0/fwd/t3/f`
  double max_abs_error = 0;
  double max_rel_error = 0;
  bool passed = true;
};

/// Blame: checks the backward of every op recorded on `tape` on its own, against central
/// differences of that op alone at the inputs it was recorded with (a random contraction of
/// its output; exhaustive for small inputs, random directions for large ones). When a
/// gradient check of a whole model fails, the failing entries name the op, its scope (layer,
/// time step, gate) and its error. Ops that stop the gradient (detach) are skipped.
std::vector<OpCheck> blame(const Tape<double>& tape, const GradcheckOptions& options = {});

}  // namespace rwd
