// Second order: generated per-op tests of every op's tangent and second-order rules (the
// registry drives them, as for first order), the tape's jvp/hvp API, its errors, and blame.
#include <boost/test/unit_test.hpp>
#include <cmath>

#include "op_samples.hpp"
#include "support.hpp"

using namespace rwd;
using rwd::test::Sample;
using rwd::test::TestedOps;
using M = Matrix<double>;
using rwd::test::normal_matrix;

namespace {

// f(x, G) = Σ op(x) ⊙ G with G an input too: its Hessian holds the op's second-order term
// (the x-x block, the derivative of the backward over x) and its Jacobian (the x-G blocks, the
// derivative of the backward over gy). Checked along every unit direction.
// The checks take an op's name and cases, so each is compiled once, not once an op.
void check_second_order(std::string_view name, const std::vector<test::Case<double>>& cases,
                        std::mt19937_64& rng) {
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(name << " on " << c.what) {
      std::vector<NamedTensor> inputs;
      for (std::size_t k = 0; k < c.inputs.size(); ++k) {
        inputs.push_back({fmt::format("x{}", k), c.inputs[k]});
      }
      const std::size_t arity = inputs.size();
      Shape ys;
      {
        Tape<double> probe;
        std::vector<Var<double>> xs;
        for (const M& m : c.inputs) xs.push_back(probe.input(m));
        ys = c.apply(xs).shape();
      }
      inputs.push_back({"gy", normal_matrix(ys.rows, ys.cols, rng)});
      const auto f = [&](Tape<double>&, std::span<const Var<double>> x) {
        return sum(mul(c.apply(x.first(arity)), x[arity]));
      };
      const GradgradcheckReport r = gradgradcheck(f, inputs);
      BOOST_TEST(r.passed(), r.to_string());
      BOOST_TEST(r.transpose_error <= 1e-12, r.to_string());
      // Inputs that already hold a gradient (and a gradient tangent) from later consumers, so
      // the op's second-order terms are added, by the op or through the tape's scratch.
      const auto g = [&](Tape<double>&, std::span<const Var<double>> x) {
        Var<double> loss = f(x[0].tape(), x);
        for (std::size_t k = 0; k < arity; ++k) loss = add(loss, sum(mul(x[k], tanh(x[k]))));
        return loss;
      };
      const GradgradcheckReport shared = gradgradcheck(g, inputs);
      BOOST_TEST(shared.passed(), "inputs with other consumers: " << shared.to_string());
    }
  }
}

template <class T>
void check_extreme_tangents(std::string_view name, const std::vector<test::Case<T>>& cases) {
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(name << " on " << c.what << " in "
                            << (sizeof(T) == 4 ? "float" : "double")) {
      Tape<T> tape;
      std::vector<Var<T>> xs;
      for (const auto& m : c.inputs) {
        xs.push_back(tape.input(m));
        tape.set_tangent(xs.back(), Matrix<T>::Ones(m.rows(), m.cols()));
      }
      Var<T> y = c.apply(xs);
      tape.hvp(sum(y));
      BOOST_TEST(y.tangent().allFinite(), "tangent " << y.tangent());
      for (std::size_t k = 0; k < xs.size(); ++k) {
        BOOST_TEST(xs[k].grad_tangent().allFinite(),
                   "gradient tangent of input " << k << ": " << xs[k].grad_tangent());
      }
    }
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(second_order)

BOOST_AUTO_TEST_CASE_TEMPLATE(tangent_and_second_order_match_central_differences, O, TestedOps) {
  if constexpr (stops_gradient<O>()) {
    // detach: zero tangent and no second-order flow, like its gradient.
    Tape<double> tape;
    Var<double> x = tape.input(M::Constant(2, 3, 0.5));
    tape.set_tangent(x, M::Ones(2, 3));
    Var<double> y = detach(x);
    tape.hvp(sum(add(square(y), square(x))));
    BOOST_TEST(test::same(y.tangent(), M::Zero(2, 3)));
    BOOST_TEST(test::same(x.grad_tangent(), M::Constant(2, 3, 2.0)));  // from square(x) only
  } else {
    std::mt19937_64 rng(42);
    const auto cases = Sample<O>::template cases<double>(rng);
    check_second_order(O::name, cases, rng);
  }
}

BOOST_AUTO_TEST_CASE_TEMPLATE(tangents_finite_at_magnitude_1000, O, TestedOps) {
  std::mt19937_64 rng(7);
  check_extreme_tangents<float>(O::name, Sample<O>::template extremes<float>(rng));
  rng.seed(7);
  check_extreme_tangents<double>(O::name, Sample<O>::template extremes<double>(rng));
}

// ---- the API -----------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(hvp_of_a_known_function) {
  // f(x, w) = Σ (x·w)³ / 3 for x 1x2, w 2x1: with s = x·w, ∇ₓf = s²wᵀ, ∇_w f = s²xᵀ,
  // H·(u, v) = (2s(u·w + x·v)wᵀ + s²vᵀ, 2s(u·w + x·v)xᵀ + s²uᵀ).
  M xv(1, 2), wv(2, 1), u(1, 2), v(2, 1);
  xv << 0.5, -1.5;
  wv << 2.0, 0.25;
  u << 1.0, 3.0;
  v << -2.0, 0.5;
  Tape<double> tape;
  Parameter<double> w("w", wv);
  w.tangent = v;
  Var<double> x = tape.input(xv, "x");
  tape.set_tangent(x, u);
  Var<double> s = matmul(x, tape.param(w));
  Var<double> loss = scale(sum(pow(s, 3.0)), 1.0 / 3);
  tape.hvp(loss);
  const double sv = (xv * wv)(0, 0);
  const double ds = (u * wv)(0, 0) + (xv * v)(0, 0);
  BOOST_TEST(std::abs(s.tangent()(0, 0) - ds) < 1e-14);
  BOOST_TEST(std::abs(loss.tangent()(0, 0) - sv * sv * ds) < 1e-13);
  const M hx = 2 * sv * ds * wv.transpose() + sv * sv * v.transpose();
  const M hw = 2 * sv * ds * xv.transpose() + sv * sv * u.transpose();
  BOOST_TEST((x.grad_tangent() - hx).cwiseAbs().maxCoeff() < 1e-13);
  BOOST_TEST((w.grad_tangent - hw).cwiseAbs().maxCoeff() < 1e-13);
  BOOST_TEST((x.grad() - sv * sv * wv.transpose()).cwiseAbs().maxCoeff() < 1e-13);
  BOOST_TEST((w.grad - sv * sv * xv.transpose()).cwiseAbs().maxCoeff() < 1e-13);
  // A second hvp on the same recording with a new direction (a power iteration's loop):
  // gradients and gradient tangents accumulate into the parameter like grad does.
  w.zero_grad();
  w.tangent = 2 * v;
  tape.set_tangent(x, 2 * u);
  tape.hvp(loss);
  BOOST_TEST((w.grad_tangent - 2 * hw).cwiseAbs().maxCoeff() < 1e-12);
  BOOST_TEST((x.grad_tangent() - 2 * hx).cwiseAbs().maxCoeff() < 1e-12);
}

BOOST_AUTO_TEST_CASE(first_order_is_unchanged_by_a_second_order_sweep) {
  std::mt19937_64 rng(3);
  Tape<double> tape;
  Parameter<double> w("w", normal_matrix(4, 3, rng));
  Parameter<double> b("b", normal_matrix(1, 4, rng));
  w.tangent = normal_matrix(4, 3, rng);
  Var<double> x = tape.input(normal_matrix(5, 3, rng), "x");
  Var<double> loss = mean(square(tanh(affine(x, tape.param(w), tape.param(b)))));
  tape.backward(loss);
  const M gx = x.grad(), gw = w.grad;
  w.zero_grad();
  tape.hvp(loss);
  BOOST_TEST(test::same(x.grad(), gx));  // bit for bit: the same code path
  BOOST_TEST(test::same(w.grad, gw));
  // b has no tangent but its gradient depends on w: H·v reaches it (the mixed block).
  BOOST_TEST(b.grad_tangent.cwiseAbs().maxCoeff() > 0);
}

BOOST_AUTO_TEST_CASE(mixed_block_tangent_on_inputs_read_on_parameters) {
  // The WGAN-GP shape: tangent on the input only, second derivative read on the parameter:
  // d/dε ∇_w f(x + εu) = (∂²f/∂w∂x)·u, against central differences.
  std::mt19937_64 rng(5);
  const M xv = normal_matrix(3, 4, rng), u = normal_matrix(3, 4, rng);
  Parameter<double> w("w", normal_matrix(4, 2, rng));
  const auto grad_w = [&](const M& at) {
    Tape<double> t;
    w.grad.resize(0, 0);
    t.backward(sum(sigmoid(matmul(t.input(at), t.param(w)))));
    return M(w.grad);
  };
  const double eps = 1e-6;
  const M numeric = (grad_w(xv + eps * u) - grad_w(xv - eps * u)) / (2 * eps);
  Tape<double> tape;
  w.grad.resize(0, 0);
  w.grad_tangent.resize(0, 0);
  Var<double> x = tape.input(xv);
  tape.set_tangent(x, u);
  tape.hvp(sum(sigmoid(matmul(x, tape.param(w)))));
  BOOST_TEST((w.grad_tangent - numeric).cwiseAbs().maxCoeff() < 1e-8);
}

BOOST_AUTO_TEST_CASE(float_hvp_follows_double) {
  std::mt19937_64 rng(9);
  const M xv = normal_matrix(4, 6, rng), u = normal_matrix(4, 6, rng);
  const M wv = normal_matrix(5, 6, rng), v = normal_matrix(5, 6, rng);
  const auto run = [&]<class T>(T) {
    Tape<T> tape;
    Parameter<T> w("w", wv.cast<T>());
    w.tangent = v.cast<T>();
    Var<T> x = tape.input(xv.cast<T>());
    tape.set_tangent(x, u.cast<T>());
    tape.hvp(mean(log_sigmoid(matmul_nt(x, tape.param(w)))));
    return std::pair<M, M>(x.grad_tangent().template cast<double>(),
                           w.grad_tangent.template cast<double>());
  };
  const auto [xd, wd] = run(0.0);
  const auto [xf, wf] = run(0.0f);
  BOOST_TEST((xf - xd).cwiseAbs().maxCoeff() < 1e-5 * (1 + xd.cwiseAbs().maxCoeff()));
  BOOST_TEST((wf - wd).cwiseAbs().maxCoeff() < 1e-5 * (1 + wd.cwiseAbs().maxCoeff()));
}

BOOST_AUTO_TEST_CASE(zero_tangents_stay_valid_views) {
  // Nodes no tangent reached read as zeros; each view stays valid while others are taken, and
  // an op whose inputs mostly lack tangents (concat of three, one seeded) is right.
  Tape<double> tape;
  Var<double> a = tape.input(M::Ones(1, 2)), b = tape.input(M::Ones(3, 4));
  Var<double> c = tape.input(M::Ones(5, 6)), s = tape.input(M::Ones(2, 2));
  tape.set_tangent(s, M::Constant(2, 2, 3.0));
  Var<double> cat = concat_cols({reshape(a, 2, 1), reshape(b, 2, 6), reshape(c, 2, 15), s});
  Var<double> loss = sum(square(cat));
  tape.hvp(loss);
  const ConstMap<double> ta = a.tangent();
  const ConstMap<double> tb = b.tangent();
  const ConstMap<double> tc = c.tangent();
  BOOST_TEST(test::same(ta, M::Zero(1, 2)));
  BOOST_TEST(test::same(tb, M::Zero(3, 4)));
  BOOST_TEST(test::same(tc, M::Zero(5, 6)));
  M expected = M::Zero(2, 24);
  expected.rightCols(2).setConstant(3.0);
  BOOST_TEST(test::same(cat.tangent(), expected));
  BOOST_TEST(test::same(s.grad_tangent(), M::Constant(2, 2, 6.0)));  // H = 2I on s
  const ConstMap<double> ga = a.grad_tangent();
  const ConstMap<double> gc = c.grad_tangent();
  BOOST_TEST(test::same(ga, M::Zero(1, 2)));
  BOOST_TEST(test::same(gc, M::Zero(5, 6)));
  Var<double> later = tanh(a);  // recorded after the sweep
  BOOST_TEST(test::same(later.grad_tangent(), M::Zero(1, 2)));
}

BOOST_AUTO_TEST_CASE(api_errors_are_clear) {
  Tape<double> tape;
  Var<double> x = tape.input(M::Ones(2, 3), "x");
  Var<double> c = tape.constant(M::Ones(2, 3), "c");
  Var<double> y = tanh(x);
  Var<double> loss = sum(y);
  test::expect_message<UsageError>(
      [&] { tape.backward(loss, {.second_order = true}); },
      "backward: second_order needs the tangents of this recording: call jvp() first");
  test::expect_message<UsageError>([&] { (void)y.tangent(); },
                                   "tangent: no tangents yet: call jvp() on this recording first");
  test::expect_message<UsageError>(
      [&] { tape.set_tangent(y, M::Ones(2, 3)); },
      "set_tangent: node 2 is an op tanh, not an input: tangents are seeded on inputs "
      "(Tape::input) and on parameters (Parameter::tangent)");
  test::expect_message<UsageError>(
      [&] { tape.set_tangent(c, M::Ones(2, 3)); },
      "set_tangent: node 1 is a constant, not an input: tangents are seeded on inputs "
      "(Tape::input) and on parameters (Parameter::tangent)");
  test::expect_message<ShapeError>([&] { tape.set_tangent(x, M::Ones(3, 2)); },
                                   "set_tangent: shapes differ: tangent is 3x2, input is 2x3");
  Parameter<double> w("w", M::Ones(3, 3));
  w.tangent = M::Ones(2, 2);
  Var<double> z = sum(matmul(x, tape.param(w)));
  test::expect_message<ShapeError>([&] { tape.jvp(); },
                                   "jvp: parameter 'w': tangent is 2x2, parameter is 3x3");
  w.tangent.resize(0, 0);
  tape.jvp();
  Var<double> later = sum(square(x));
  test::expect_message<UsageError>(
      [&] { tape.backward(later, {.second_order = true}); },
      "backward: second_order: the loss was recorded after the latest jvp(): call jvp() again");
  test::expect_message<UsageError>(
      [&] { (void)later.tangent(); },
      "tangent: node 8 was recorded after the latest jvp(): call jvp() again");
  tape.backward(z);
  test::expect_message<UsageError>([&] { (void)x.grad_tangent(); },
                                   "grad_tangent: no gradient tangents: run backward(loss, "
                                   "{.second_order = true}) or hvp(loss) on this recording first");
  tape.hvp(z);
  BOOST_TEST(test::same(x.grad_tangent(), M::Zero(2, 3)));  // no tangent anywhere: H·0 = 0
  tape.clear();
  test::expect_message<UsageError>([&] { (void)x.tangent(); },
                                   "tangent: stale Var: node 0 was recorded before the tape's "
                                   "last clear()");
}

// ---- custom ops and blame
// ------------------------------------------------------------------------

namespace {

/// y = x³ with a correct backward and tangent, and a second-order rule that may be planted wrong.
class Cube : public CustomOp<double> {
 public:
  explicit Cube(double curvature_factor, bool with_rules = true, double tangent_factor = 3)
      : factor_(curvature_factor), tangent_factor_(tangent_factor), rules_(with_rules) {}
  std::string_view name() const override { return rules_ ? "cube" : "cube_first_order_only"; }
  int arity() const override { return 1; }
  Shape shape(std::span<const Shape> x) const override { return x[0]; }
  void forward(const Inputs<double>& x, MutMap<double> y) const override {
    y.array() = x[0].array().cube();
  }
  void backward(const Inputs<double>& x, ConstMap<double>, ConstMap<double> gy,
                Grads<double>& g) const override {
    g[0].array() = 3 * x[0].array().square() * gy.array();
  }
  void tangent(const Inputs<double>& x, ConstMap<double> y, const Inputs<double>& dx,
               MutMap<double> dy) const override {
    if (!rules_) return CustomOp<double>::tangent(x, y, dx, dy);
    dy.array() = tangent_factor_ * x[0].array().square() * dx[0].array();
  }
  void second_order(const Inputs<double>& x, ConstMap<double> y, ConstMap<double> gy,
                    const Inputs<double>& dx, ConstMap<double> dy,
                    Grads<double>& g) const override {
    if (!rules_) return CustomOp<double>::second_order(x, y, gy, dx, dy, g);
    // f'' = 6x; factor_ != 6 plants a wrong curvature.
    g[0].array() = factor_ * x[0].array() * dx[0].array() * gy.array();
  }

 private:
  double factor_;
  double tangent_factor_;
  bool rules_;
};

// Records f at x0 and returns "op at scope: rule" for every op that blame of this order finds
// wrong.
std::vector<std::string> culprits(const GradcheckFunction& f, const M& x0, int order) {
  Tape<double> tape;
  Var<double> x = tape.input(x0);
  (void)f(tape, std::span<const Var<double>>(&x, 1));
  std::vector<std::string> failed;
  for (const OpCheck& c : blame(tape, {}, order)) {
    if (!c.passed) failed.push_back(fmt::format("{} at {}: {}", c.op, c.scope, c.rule));
  }
  return failed;
}

}  // namespace

BOOST_AUTO_TEST_CASE(custom_op_with_rules_passes_gradgradcheck) {
  const std::shared_ptr<const CustomOp<double>> op = std::make_shared<Cube>(6.0);
  const GradgradcheckReport r =
      gradgradcheck([&](Tape<double>&,
                        std::span<const Var<double>> in) { return sum(tanh(custom(op, {in[0]}))); },
                    {{"x", (M(2, 2) << 0.3, -0.7, 0.9, 0.1).finished()}});
  BOOST_TEST(r.passed(), r.to_string());
}

BOOST_AUTO_TEST_CASE(planted_wrong_curvature_is_caught_and_blamed_by_name) {
  const std::shared_ptr<const CustomOp<double>> op =
      std::make_shared<Cube>(5.0);  // f'' written as 5x instead of 6x
  const auto f = [&](Tape<double>& t, std::span<const Var<double>> in) {
    auto s = t.scope("t1");
    return sum(sigmoid(custom(op, {tanh(in[0])})));
  };
  const M x0 = (M(2, 3) << 0.3, -0.7, 0.9, 0.1, 0.5, -0.2).finished();
  const GradgradcheckReport r = gradgradcheck(f, {{"x", x0}});
  BOOST_TEST(!r.passed());
  BOOST_TEST(r.output.passed);       // the tangent rule is right...
  BOOST_TEST(r.transpose_passed());  // ...so the transpose identity holds
  BOOST_TEST(!r.at("x").passed, r.to_string());
  // First-order blame finds nothing wrong; second-order blame names the op, scope and rule.
  BOOST_TEST(culprits(f, x0, 1).empty());
  const std::vector<std::string> failed = culprits(f, x0, 2);
  BOOST_TEST_REQUIRE(failed.size() == 1u);
  BOOST_TEST(failed[0] == "cube at t1: second-order");
}

BOOST_AUTO_TEST_CASE(planted_wrong_tangent_is_blamed_as_the_tangent_rule) {
  // f' written as 2x² instead of 3x² in the tangent only: backward and curvature are right.
  const std::shared_ptr<const CustomOp<double>> op = std::make_shared<Cube>(6.0, true, 2.0);
  const auto f = [&](Tape<double>& t, std::span<const Var<double>> in) {
    auto s = t.scope("t4");
    return sum(tanh(custom(op, {in[0]})));
  };
  const M x0 = (M(1, 3) << 0.3, -0.7, 0.9).finished();
  const GradgradcheckReport r = gradgradcheck(f, {{"x", x0}});
  BOOST_TEST(!r.output.passed, r.to_string());  // J·v is wrong...
  BOOST_TEST(!r.transpose_passed());            // ...and disagrees with Jᵀ·u
  const std::vector<std::string> failed = culprits(f, x0, 2);
  BOOST_TEST_REQUIRE(failed.size() == 1u);
  BOOST_TEST(failed[0] == "cube at t4: tangent");
}

BOOST_AUTO_TEST_CASE(custom_op_without_rules_fails_naming_it) {
  const std::shared_ptr<const CustomOp<double>> op = std::make_shared<Cube>(6.0, false);
  Tape<double> tape;
  Var<double> x = tape.input(M::Ones(1, 2));
  tape.set_tangent(x, M::Ones(1, 2));
  Var<double> loss = sum(custom(op, {x}));
  test::expect_message<UsageError>(
      [&] { tape.hvp(loss); },
      "cube_first_order_only: custom op has no tangent rule: override CustomOp::tangent to use "
      "it in jvp or hvp");
  // Without a tangent reaching it, a sweep passes the op by.
  Tape<double> other;
  Var<double> y = other.input(M::Ones(1, 2));
  Var<double> l2 = add(sum(custom(op, {y})), sum(square(y)));
  other.jvp();
  other.backward(l2, {.second_order = true});
  BOOST_TEST(test::same(y.grad_tangent(), M::Zero(1, 2)));
}

BOOST_AUTO_TEST_SUITE_END()
