// The gradient checker: it passes correct gradients, fails wrong ones (in both modes), reports
// where, and leaves parameters exactly as it found them.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <rewind/rewind.hpp>

#include "support.hpp"

using namespace rwd;

namespace {

using M = Matrix<double>;

// y = sin(x) with a deliberately wrong backward: it returns sin(x)·gy instead of cos(x)·gy.
class WrongSin : public CustomOp<double> {
 public:
  std::string_view name() const override { return "wrong_sin"; }
  int arity() const override { return 1; }
  Shape shape(std::span<const Shape> x) const override { return x[0]; }
  void forward(const Inputs<double>& x, MutMap<double> y) const override {
    y.array() = x[0].array().sin();
  }
  void backward(const Inputs<double>& x, ConstMap<double>, ConstMap<double> gy,
                Grads<double>& g) const override {
    g[0].array() = x[0].array().sin() * gy.array();
  }
};

// The same op with the right backward.
class RightSin : public WrongSin {
 public:
  void backward(const Inputs<double>& x, ConstMap<double>, ConstMap<double> gy,
                Grads<double>& g) const override {
    g[0].array() = x[0].array().cos() * gy.array();
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(gradcheck_suite)

BOOST_AUTO_TEST_CASE(passes_a_correct_function_over_inputs_and_parameters) {
  std::mt19937_64 rng(1);
  Parameter<double> w("w", M::Random(3, 2)), b("b", M::Random(1, 2));
  const auto f = [&](Tape<double>& t, std::span<const Var<double>> in) {
    return cross_entropy(add_row_vector(matmul(tanh(in[0]), t.param(w)), t.param(b)),
                         std::vector<std::int32_t>{0, 1, 1, 0});
  };
  const GradcheckReport r = gradcheck(f, {{"x", M::Random(4, 3)}}, {&w, &b});
  BOOST_TEST(r.passed(), r.to_string());
  BOOST_TEST(r.tensors.size() == 3u);
  BOOST_TEST(r.at("w").shape == (Shape{3, 2}));
  BOOST_TEST(r.at("x").max_abs_error < 1e-8);
  BOOST_CHECK_THROW((void)r.at("nope"), UsageError);
  const GradcheckReport fast = gradcheck(f, {{"x", M::Random(4, 3)}}, {&w, &b}, {.fast = true});
  BOOST_TEST(fast.passed(), fast.to_string());
}

BOOST_AUTO_TEST_CASE(fails_a_wrong_backward_and_says_where) {
  auto wrong = std::make_shared<WrongSin>();
  Parameter<double> w("w", M::Constant(2, 2, 0.3));
  const auto f = [&](Tape<double>& t, std::span<const Var<double>> in) {
    // x goes through the wrong op, w does not.
    return sum(matmul(custom<double>(wrong, {in[0]}), t.param(w)));
  };
  const M x = (M(2, 2) << 0.1, 0.7, 1.3, -0.4).finished();
  const GradcheckReport r = gradcheck(f, {{"x", x}}, {&w});
  BOOST_TEST(!r.passed());
  BOOST_TEST(!r.at("x").passed);
  BOOST_TEST(r.at("w").passed);
  // The worst element and both values there: analytic sin(x)·Σw, numeric cos(x)·Σw.
  const TensorCheck& c = r.at("x");
  const double xv = x(c.worst_row, c.worst_col);
  BOOST_TEST(std::abs(c.analytic - std::sin(xv) * 0.6) < 1e-12);
  BOOST_TEST(std::abs(c.numeric - std::cos(xv) * 0.6) < 1e-8);
  BOOST_TEST(r.to_string().find("FAILED") != std::string::npos);
  BOOST_TEST(r.to_string().find("FAIL\n") != std::string::npos);

  const GradcheckReport fast = gradcheck(f, {{"x", x}}, {&w}, {.fast = true, .directions = 2});
  BOOST_TEST(!fast.at("x").passed);
  BOOST_TEST(fast.at("w").passed);
  BOOST_TEST(fast.at("x").worst_row == -1);

  // The same function with the right backward passes: the failure was the backward's.
  auto right = std::make_shared<RightSin>();
  const GradcheckReport ok = gradcheck(
      [&](Tape<double>& t, std::span<const Var<double>> in) {
        return sum(matmul(custom<double>(right, {in[0]}), t.param(w)));
      },
      {{"x", x}}, {&w});
  BOOST_TEST(ok.passed(), ok.to_string());
}

BOOST_AUTO_TEST_CASE(non_scalar_outputs_are_contracted) {
  const GradcheckReport r =
      gradcheck([](Tape<double>&, std::span<const Var<double>> in) { return softmax_rows(in[0]); },
                {{"x", M::Random(3, 4)}});
  BOOST_TEST(r.passed(), r.to_string());
  // A wrong VJP in a non-scalar function is caught through the contraction too.
  auto wrong = std::make_shared<WrongSin>();
  const GradcheckReport bad =
      gradcheck([&](Tape<double>&,
                    std::span<const Var<double>> in) { return custom<double>(wrong, {in[0]}); },
                {{"x", M::Random(3, 4)}});
  BOOST_TEST(!bad.passed());
}

BOOST_AUTO_TEST_CASE(parameters_are_restored_bit_for_bit) {
  Parameter<double> w("w", M::Random(3, 3));
  w.grad = M::Constant(3, 3, 7.0);
  const M value = w.value, grad = w.grad;
  (void)gradcheck(
      [&](Tape<double>& t, std::span<const Var<double>>) { return sum(exp(t.param(w))); }, {},
      {&w});
  BOOST_TEST((w.value.array() == value.array()).all());
  BOOST_TEST((w.grad.array() == grad.array()).all());
}

BOOST_AUTO_TEST_CASE(non_finite_gradients_fail) {
  // d/dx sqrt(x) at 0 is +inf analytically; the numeric estimate is NaN or huge: never a pass.
  const GradcheckReport r =
      gradcheck([](Tape<double>&, std::span<const Var<double>> in) { return sum(sqrt(in[0])); },
                {{"x", M::Zero(1, 1)}});
  BOOST_TEST(!r.passed());
}

BOOST_AUTO_TEST_SUITE_END()
