// The second-order examples, gradient-checked: WGAN-GP's penalty gradient for an LSTM critic
// (one mixed H·v) and the exact one-step MAML meta-gradient of a GRU (one H·v), each against
// central differences of the scalar it differentiates, for every parameter element.
#include <boost/test/unit_test.hpp>
#include <cmath>

#include "maml.hpp"
#include "wgan_gp.hpp"

using namespace rwd;
using M = Matrix<double>;

namespace {

// |analytic - numeric| <= atol + rtol·|numeric| (PyTorch's gradcheck defaults), every element.
template <class F>
void check_against_central_differences(const std::vector<Parameter<double>*>& params,
                                       const std::vector<M>& analytic, F&& scalar,
                                       const std::string& what) {
  const double eps = 1e-6, atol = 1e-5, rtol = 1e-3;
  Index checked = 0;
  for (std::size_t k = 0; k < params.size(); ++k) {
    M& v = params[k]->value;
    for (Index i = 0; i < v.size(); ++i) {
      const double v0 = v.data()[i];
      v.data()[i] = v0 + eps;
      const double up = scalar();
      v.data()[i] = v0 - eps;
      const double down = scalar();
      v.data()[i] = v0;
      const double numeric = (up - down) / (2 * eps), a = analytic[k].data()[i];
      BOOST_TEST(std::abs(a - numeric) <= atol + rtol * std::abs(numeric),
                 what << " " << params[k]->name << "[" << i << "]: " << a << " vs " << numeric);
      ++checked;
    }
  }
  BOOST_TEST_MESSAGE(what << ": " << checked << " parameter elements checked");
}

}  // namespace

BOOST_AUTO_TEST_SUITE(second_order_examples)

BOOST_AUTO_TEST_CASE(wgan_gp_penalty_gradient_matches_central_differences) {
  layers::Rng rng(11);
  RecurrentCritic<double> critic(2, 3, rng);
  std::vector<M> xs;
  for (int t = 0; t < 4; ++t) xs.push_back(layers::uniform<double>(3, 2, 1.0, rng));
  const auto params = critic.parameters();
  for (Parameter<double>* p : params) p->zero_grad();
  const double penalty = gradient_penalty(critic, xs, 10.0);
  BOOST_TEST(penalty > 0);
  std::vector<M> analytic;
  for (Parameter<double>* p : params) analytic.push_back(p->grad_tangent);
  check_against_central_differences(
      params, analytic, [&] { return gradient_penalty(critic, xs, 10.0); }, "WGAN-GP");
}

BOOST_AUTO_TEST_CASE(maml_meta_gradient_matches_central_differences) {
  layers::Rng rng(12);
  GruRegressor<double> model(1, 3, rng);
  Task<double> train, val;
  for (int s = 0; s < 4; ++s) {
    for (Task<double>* t : {&train, &val}) {
      M x = layers::uniform<double>(3, 1, 2.0, rng);
      t->ys.push_back(x.array().sin() * 1.5);
      t->xs.push_back(std::move(x));
    }
  }
  const double alpha = 0.3;
  const auto meta = meta_gradient(model, train, val, alpha);
  check_against_central_differences(
      model.parameters(), meta, [&] { return adapted_loss(model, train, val, alpha); }, "MAML");
  // The Hessian term matters here: first-order MAML (∇L_val(θ') alone) is measurably off.
  const auto params = model.parameters();
  const auto g_train = gradient(model, train);
  std::vector<M> theta;
  for (std::size_t k = 0; k < params.size(); ++k) {
    theta.push_back(params[k]->value);
    params[k]->value -= alpha * g_train[k];
  }
  const auto first_order = gradient(model, val);
  for (std::size_t k = 0; k < params.size(); ++k) params[k]->value = theta[k];
  double gap = 0;
  for (std::size_t k = 0; k < params.size(); ++k)
    gap = std::max(gap, (first_order[k] - meta[k]).cwiseAbs().maxCoeff());
  BOOST_TEST(gap > 1e-3);
}

BOOST_AUTO_TEST_SUITE_END()
