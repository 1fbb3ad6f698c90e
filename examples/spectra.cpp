// Curvature and stability of a custom cell (the minimal gated unit of mgu.hpp), with nothing
// written for it: how sharp its loss is (Hessian eigenvalues by Lanczos, the trace by
// Hutchinson), how perturbations of h_t reach h_T (every singular value of ∂h_T/∂h_t), and
// whether its dynamics forget or amplify (the Lyapunov spectrum), at two recurrent gains.
// Exits non-zero if a cross-check fails.
#include <iostream>
#include <rewind/rewind.hpp>

#include "mgu.hpp"

using namespace rwd;
using M = Matrix<double>;

int main() {
  layers::Rng rng(3);
  const Index input = 4, hidden = 12, batch = 6, steps = 15;
  MguCell<double> cell(input, hidden, rng);
  std::vector<M> xs;
  for (Index t = 0; t < steps; ++t) xs.push_back(layers::uniform<double>(batch, input, 1.0, rng));
  const M target = layers::uniform<double>(batch, hidden, 1.0, rng);

  // 1. The Hessian of a loss with respect to all the cell's parameters, on one recording.
  Tape<double> tape;
  std::vector<Var<double>> in;
  for (const M& x : xs) in.push_back(tape.constant(x));
  const auto run = layers::unroll(cell, tape, std::span<const Var<double>>(in),
                                  layers::zero_state(cell, tape, batch));
  const Var<double> loss = mse(run.state[0], tape.constant(target));
  HessianOperator<double> hessian(tape, loss, cell.named_parameters());
  const EigenResult top = lanczos(hessian.op(), {.top = 3});
  const EigenResult power =
      power_iteration(hessian.op(), {.top = 1, .max_iterations = 1000, .tolerance = 1e-10});
  const TraceEstimate trace = hutchinson_trace(hessian.op(), 200);
  std::cout << hessian.size()
            << " parameters; Hessian top eigenvalues (Lanczos): " << top.to_string() << "\n"
            << fmt::format("largest |λ| by power iteration: {:.10g} ({} products)\n",
                           power.values[0], power.products)
            << fmt::format("trace ≈ {:.6g} ± {:.2g} (Hutchinson, 200 samples)\n\n", trace.estimate,
                           trace.standard_error);
  // Power iteration finds the largest |λ|: Lanczos asked for that must agree.
  const EigenResult magnitude = lanczos(hessian.op(), {.top = 1, .by_magnitude = true});
  bool ok = top.converged;
  if (std::abs(power.values[0] - magnitude.values[0]) > 1e-6 * std::abs(magnitude.values[0])) {
    std::cerr << "power iteration and Lanczos disagree on the largest |λ|\n";
    ok = false;
  }

  // 2. Exact Jacobians through time for batch row 0, next to the Hutchinson estimate.
  const JacobianReport jac = jacobians_through_time(tape, {{"mgu", run.outputs, false}});
  std::cout << "Jacobians through time (exact, and the Hutchinson estimate):\n" << jac.summary();
  for (std::size_t t = 0; t < jac.series[0].frobenius.size(); t += 7) {
    const auto& sv = jac.series[0].singular_values[t];
    std::cout << fmt::format("  t = {:>2}: σ_max {:.3e}  σ_min {:.3e}  ‖·‖_F {:.3e}\n", t,
                             sv.front(), sv.back(), jac.series[0].frobenius[t]);
  }

  // 3. The Lyapunov spectrum along a trajectory driven by random inputs, at the trained-from-
  // scratch gain and with the recurrent weights scaled up eightfold.
  std::cout << "\n";
  double lambda1[2];
  for (int k = 0; k < 2; ++k) {
    MguCell<double> c = cell;
    if (k == 1) {
      c.u_f.value *= 8;
      c.u_h.value *= 8;
    }
    const layers::LyapunovReport r =
        layers::lyapunov_spectrum(c, {}, {}, {.exponents = 4, .steps = 2000, .warmup = 500});
    std::cout << (k == 0 ? "as initialised: " : "recurrent weights ×8: ") << r.summary();
    lambda1[k] = r.exponents[0];
  }
  if (!(lambda1[0] < 0) || !(lambda1[1] > lambda1[0])) {
    std::cerr << "expected a contracting cell, less so with larger recurrent weights\n";
    ok = false;
  }
  return ok ? 0 : 1;
}
