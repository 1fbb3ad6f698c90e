// Optimizers against torch.optim (10 steps on a fixed problem, reference data made by
// tools/torch_optim.py), clipping and schedules.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <rewind/rewind.hpp>

#include "support.hpp"

using namespace rwd;
using M = Matrix<double>;
using json = nlohmann::json;
using test::to_matrix;

namespace {

std::unique_ptr<optim::Optimizer<double>> make(const std::string& cls, const json& o,
                                               std::vector<Parameter<double>*> params) {
  const auto get = [&](const char* k, double d) { return o.contains(k) ? o[k].get<double>() : d; };
  if (cls == "SGD") {
    return std::make_unique<optim::Sgd<double>>(
        params, optim::SgdOptions{.lr = get("lr", 0),
                                  .momentum = get("momentum", 0),
                                  .dampening = get("dampening", 0),
                                  .weight_decay = get("weight_decay", 0),
                                  .nesterov = o.value("nesterov", false)});
  }
  if (cls == "RMSprop") {
    return std::make_unique<optim::RmsProp<double>>(
        params, optim::RmsPropOptions{.lr = get("lr", 0),
                                      .alpha = get("alpha", 0.99),
                                      .eps = get("eps", 1e-8),
                                      .weight_decay = get("weight_decay", 0),
                                      .momentum = get("momentum", 0),
                                      .centered = o.value("centered", false)});
  }
  const double b1 = o.contains("betas") ? o["betas"][0].get<double>() : 0.9;
  const double b2 = o.contains("betas") ? o["betas"][1].get<double>() : 0.999;
  if (cls == "Adam") {
    return std::make_unique<optim::Adam<double>>(
        params, optim::AdamOptions{.lr = get("lr", 0),
                                   .beta1 = b1,
                                   .beta2 = b2,
                                   .eps = get("eps", 1e-8),
                                   .weight_decay = get("weight_decay", 0)});
  }
  if (cls == "AdamW") {
    return std::make_unique<optim::AdamW<double>>(
        params, optim::AdamOptions{.lr = get("lr", 0),
                                   .beta1 = b1,
                                   .beta2 = b2,
                                   .eps = get("eps", 1e-8),
                                   .weight_decay = get("weight_decay", 0.01)});
  }
  return std::make_unique<optim::Adagrad<double>>(
      params,
      optim::AdagradOptions{.lr = get("lr", 0),
                            .lr_decay = get("lr_decay", 0),
                            .weight_decay = get("weight_decay", 0),
                            .initial_accumulator_value = get("initial_accumulator_value", 0),
                            .eps = get("eps", 1e-10)});
}

}  // namespace

BOOST_AUTO_TEST_SUITE(optimizers)

BOOST_AUTO_TEST_CASE(ten_steps_match_torch_optim) {
  std::ifstream in(std::string(REWIND_TEST_DATA) + "/optim_reference.json");
  BOOST_REQUIRE(in);
  const json ref = json::parse(in);
  const M X = to_matrix(ref["X"]), Y = to_matrix(ref["Y"]);
  for (const auto& [name, run] : ref["runs"].items()) {
    Parameter<double> w("W", to_matrix(ref["W0"])), b("b", to_matrix(ref["b0"]));
    auto opt = make(run["class"].get<std::string>(), run["options"], {&w, &b});
    Tape<double> tape;
    double worst = 0;
    for (std::size_t step = 0; step < 10; ++step) {
      tape.clear();
      opt->zero_grad();
      tape.backward(mse(add_row_vector(matmul_nt(tape.constant(X), tape.param(w)), tape.param(b)),
                        tape.constant(Y)));
      opt->step();
      const json& expected = run["trajectory"][step];
      const M ew = to_matrix(expected["W"]), eb = to_matrix(expected["b"]);
      worst =
          std::max({worst, ((w.value - ew).array().abs() / ew.array().abs().max(1e-12)).maxCoeff(),
                    ((b.value - eb).array().abs() / eb.array().abs().max(1e-12)).maxCoeff()});
    }
    BOOST_TEST(worst < 1e-10, name << ": worst relative difference from torch.optim " << worst);
    BOOST_TEST_MESSAGE(name << ": worst relative difference from torch.optim over 10 steps "
                            << worst);
  }
}

BOOST_AUTO_TEST_CASE(parameters_without_gradient_are_left_alone) {
  Parameter<double> used("used", M::Ones(2, 2)), unused("unused", M::Ones(2, 2));
  optim::Adam<double> adam({&used, &unused}, {.lr = 0.1});
  used.grad = M::Ones(2, 2);
  adam.step();
  BOOST_TEST(unused.value.isApprox(M::Ones(2, 2)));
  BOOST_TEST(!used.value.isApprox(M::Ones(2, 2)));
  BOOST_TEST(adam.steps() == 1);
}

BOOST_AUTO_TEST_CASE(make_optimizer_by_name) {
  Parameter<double> p("p", M::Ones(1, 1));
  for (const char* name : {"sgd", "rmsprop", "adam", "adamw", "adagrad"}) {
    auto opt = optim::make_optimizer<double>(name, {&p}, 0.5);
    BOOST_TEST(opt->lr() == 0.5);
  }
  try {
    (void)optim::make_optimizer<double>("lbfgs", {&p}, 0.1);
    BOOST_ERROR("no exception");
  } catch (const UsageError& e) {
    BOOST_TEST(std::string(e.what()) ==
               "unknown optimizer 'lbfgs' (expected sgd, rmsprop, adam, adamw or adagrad)");
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(clipping)

BOOST_AUTO_TEST_CASE(clip_grad_norm_scales_to_max_norm) {
  Parameter<double> a("a", M::Zero(1, 2)), b("b", M::Zero(1, 1));
  a.grad = (M(1, 2) << 3, 0).finished();
  b.grad = (M(1, 1) << 4).finished();
  const double norm = optim::clip_grad_norm<double>({&a, &b}, 1.0);
  BOOST_TEST(norm == 5.0);
  const double after = std::sqrt(a.grad.squaredNorm() + b.grad.squaredNorm());
  BOOST_TEST(std::abs(after - 5.0 / (5.0 + 1e-6)) < 1e-12);  // torch's max_norm / (norm + 1e-6)
  const double again = optim::clip_grad_norm<double>({&a, &b}, 10.0);  // below the limit
  BOOST_TEST(std::abs(again - after) < 1e-15);
  BOOST_TEST(std::abs(std::sqrt(a.grad.squaredNorm() + b.grad.squaredNorm()) - after) < 1e-15);
}

BOOST_AUTO_TEST_CASE(non_finite_norms_name_the_parameters) {
  Parameter<float> w("weight_hh_l0", Matrix<float>::Zero(2, 2)),
      ok("bias", Matrix<float>::Zero(1, 2)), b("bias_ih_l0", Matrix<float>::Zero(1, 2));
  w.grad = Matrix<float>::Zero(2, 2);
  w.grad(1, 1) = std::numeric_limits<float>::quiet_NaN();
  ok.grad = Matrix<float>::Ones(1, 2);
  b.grad = Matrix<float>::Zero(1, 2);
  b.grad(0, 0) = std::numeric_limits<float>::infinity();
  try {
    (void)optim::clip_grad_norm<float>({&w, &ok, &b}, 1.0, {.error_if_nonfinite = true});
    BOOST_ERROR("no exception");
  } catch (const UsageError& e) {
    BOOST_TEST(
        std::string(e.what()) ==
        "clip_grad_norm: gradient norm is not finite: NaN in 'weight_hh_l0', Inf in 'bias_ih_l0'");
  }
  BOOST_TEST(std::isnan(optim::clip_grad_norm<float>({&w, &ok, &b}, 1.0)));
}

BOOST_AUTO_TEST_CASE(clip_grad_value_clamps) {
  Parameter<double> a("a", M::Zero(1, 3));
  a.grad = (M(1, 3) << -5, 0.5, 7).finished();
  optim::clip_grad_value<double>({&a}, 1.0);
  BOOST_TEST(a.grad(0, 0) == -1.0);
  BOOST_TEST(a.grad(0, 1) == 0.5);
  BOOST_TEST(a.grad(0, 2) == 1.0);
}

BOOST_AUTO_TEST_CASE(schedules) {
  const optim::StepSchedule step{.base_lr = 1.0, .step_size = 10, .gamma = 0.5};
  BOOST_TEST(step.lr(0) == 1.0);
  BOOST_TEST(step.lr(9) == 1.0);
  BOOST_TEST(step.lr(10) == 0.5);
  BOOST_TEST(step.lr(25) == 0.25);
  const optim::CosineSchedule cos{.base_lr = 1.0, .t_max = 100, .eta_min = 0.1};
  BOOST_TEST(cos.lr(0) == 1.0);
  BOOST_TEST(std::abs(cos.lr(50) - 0.55) < 1e-15);
  BOOST_TEST(cos.lr(100) == 0.1);
  BOOST_TEST(cos.lr(1000) == 0.1);
}

BOOST_AUTO_TEST_SUITE_END()
