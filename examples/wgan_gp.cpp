// WGAN-GP's gradient penalty for an LSTM critic, with rewind's mixed second-order sweep: the
// penalty's gradient with respect to the critic's parameters, checked against central
// differences of the penalty itself, and a few steps that push ‖∇ₓD‖ towards 1.
#include "wgan_gp.hpp"

#include <iostream>

using namespace rwd;

int main() {
  layers::Rng rng(7);
  RecurrentCritic<double> critic(3, 8, rng);
  std::vector<Matrix<double>> xs;
  for (int t = 0; t < 6; ++t) xs.push_back(layers::uniform<double>(4, 3, 1.0, rng));
  const double lambda = 10;

  // dP/dθ by one mixed H·v, against central differences of P for a few parameter entries.
  for (Parameter<double>* p : critic.parameters()) p->zero_grad();
  const double penalty = gradient_penalty(critic, xs, lambda);
  std::cout << "penalty " << penalty << "\n";
  Parameter<double>& w = *critic.parameters()[1];  // weight_hh_l0
  const Matrix<double> analytic = w.grad_tangent;
  for (const auto& [r, c] : {std::pair{0, 0}, std::pair{5, 3}, std::pair{17, 7}}) {
    const double eps = 1e-6, w0 = w.value(r, c);
    w.value(r, c) = w0 + eps;
    const double up = gradient_penalty(critic, xs, lambda);
    w.value(r, c) = w0 - eps;
    const double down = gradient_penalty(critic, xs, lambda);
    w.value(r, c) = w0;
    std::cout << "dP/d" << w.name << "(" << r << "," << c << "): second-order sweep "
              << analytic(r, c) << ", central difference " << (up - down) / (2 * eps) << "\n";
  }

  // Gradient descent on the penalty alone: the critic becomes 1-Lipschitz along the data.
  for (int step = 0; step <= 50; ++step) {
    for (Parameter<double>* p : critic.parameters()) p->zero_grad();
    const double pen = gradient_penalty(critic, xs, lambda);
    if (step % 10 == 0) std::cout << "step " << step << ": penalty " << pen << "\n";
    for (Parameter<double>* p : critic.parameters()) p->value -= 0.01 * p->grad_tangent;
  }
}
