// The tape's semantics: leaves, repeated backward, clear and stale handles, scopes, detach,
// skipped nodes, storage reuse, deep graphs, several tapes at once.
#include <boost/mpl/list.hpp>
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <rewind/rewind.hpp>
#include <thread>

#include "support.hpp"

using namespace rwd;

namespace {

// Counts its backward calls; y = 2x.
template <class T>
class CountingDouble : public CustomOp<T> {
 public:
  explicit CountingDouble(int* calls) : calls_(calls) {}
  std::string_view name() const override { return "counting_double"; }
  int arity() const override { return 1; }
  Shape shape(std::span<const Shape> x) const override { return x[0]; }
  void forward(const Inputs<T>& x, MutMap<T> y) const override { y = 2 * x[0]; }
  void backward(const Inputs<T>&, ConstMap<T>, ConstMap<T> gy, Grads<T>& g) const override {
    ++*calls_;
    g[0] = 2 * gy;
  }

 private:
  int* calls_;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(tape)

using Scalars = std::tuple<float, double>;

BOOST_AUTO_TEST_CASE_TEMPLATE(gradients_of_a_small_network, T, Scalars) {
  // L = Σ tanh(x·w + b)²; checked against the hand-derived gradient.
  Tape<T> tape;
  Matrix<T> xv(2, 3), wv(3, 2), bv(1, 2);
  xv << 0.1f, -0.2f, 0.3f, 0.4f, 0.5f, -0.6f;
  wv << 0.7f, -0.8f, 0.9f, 0.1f, -0.2f, 0.3f;
  bv << 0.05f, -0.05f;
  Parameter<T> w("w", wv), b("b", bv);
  Var<T> x = tape.input(xv, "x");
  Var<T> h = tanh(add_row_vector(matmul(x, tape.param(w)), tape.param(b)));
  tape.backward(sum(square(h)));
  const Matrix<T> hv = h.value();
  const Matrix<T> dz = (2 * hv.array() * (1 - hv.array().square())).matrix();
  const T tol = sizeof(T) == 4 ? T(1e-5) : T(1e-12);
  BOOST_TEST((x.grad() - dz * wv.transpose()).cwiseAbs().maxCoeff() < tol);
  BOOST_TEST((w.grad - xv.transpose() * dz).cwiseAbs().maxCoeff() < tol);
  BOOST_TEST((b.grad - dz.colwise().sum()).cwiseAbs().maxCoeff() < tol);
}

BOOST_AUTO_TEST_CASE(repeated_backward_recomputes_nodes_and_accumulates_parameters) {
  Tape<double> tape;
  Parameter<double> w("w", Matrix<double>::Constant(1, 1, 3.0));
  Var<double> x = tape.input(Matrix<double>::Constant(1, 1, 2.0), "x");
  Var<double> wx = mul(x, tape.param(w));
  Var<double> l1 = square(wx);    // dl1/dx = 2·w²x = 36, dl1/dw = 2·x²w = 24
  Var<double> l2 = scale(wx, 5);  // dl2/dx = 5w = 15,     dl2/dw = 5x = 10
  tape.backward(l1);
  BOOST_TEST(x.grad()(0, 0) == 36.0);
  BOOST_TEST(w.grad(0, 0) == 24.0);
  tape.backward(l1);  // same loss again: node gradient unchanged, parameter accumulates
  BOOST_TEST(x.grad()(0, 0) == 36.0);
  BOOST_TEST(w.grad(0, 0) == 48.0);
  tape.backward(l2);  // another loss of the same recording
  BOOST_TEST(x.grad()(0, 0) == 15.0);
  BOOST_TEST(w.grad(0, 0) == 58.0);
  w.zero_grad();
  BOOST_TEST(w.grad(0, 0) == 0.0);
}

BOOST_AUTO_TEST_CASE(a_node_used_many_times_accumulates) {
  Tape<double> tape;
  Var<double> x = tape.input(Matrix<double>::Constant(1, 1, 3.0));
  // y = x·x + x + x·x·x  =>  dy/dx = 2x + 1 + 3x² = 34
  Var<double> y = add(add(mul(x, x), x), mul(mul(x, x), x));
  tape.backward(y);
  BOOST_TEST(x.grad()(0, 0) == 34.0);
  Var<double> c = concat_cols({x, x, x});  // the same node three times in one op
  tape.backward(sum(c));
  BOOST_TEST(x.grad()(0, 0) == 3.0);
}

BOOST_AUTO_TEST_CASE(param_is_recorded_once_per_recording) {
  Tape<double> tape;
  Parameter<double> w("weight_hh_l0", Matrix<double>::Ones(2, 2));
  Var<double> a = tape.param(w);
  Var<double> b = tape.param(w);
  BOOST_TEST(a.index() == b.index());
  BOOST_TEST(tape.label(a.index()) == "weight_hh_l0");
  BOOST_TEST(tape.op_name(a.index()) == "param");
  tape.backward(sum(mul(a, b)));
  BOOST_TEST(test::same(w.grad, Matrix<double>::Constant(2, 2, 2.0)));
}

BOOST_AUTO_TEST_CASE(constants_get_no_gradient_and_unreached_nodes_are_zero) {
  Tape<double> tape;
  Var<double> x = tape.input(Matrix<double>::Ones(2, 2));
  Var<double> c = tape.constant(Matrix<double>::Ones(2, 2));
  Var<double> unused = tape.input(Matrix<double>::Ones(2, 2));
  tape.backward(sum(mul(x, c)));
  BOOST_TEST(!tape.requires_grad(c.index()));
  BOOST_TEST(!tape.grad(c.index()).has_value());
  BOOST_TEST(!tape.grad(unused.index()).has_value());
  BOOST_TEST(test::same(unused.grad(), Matrix<double>::Zero(2, 2)));
  BOOST_TEST(test::same(c.grad(), Matrix<double>::Zero(2, 2)));
}

BOOST_AUTO_TEST_CASE(the_sweep_skips_what_cannot_reach_the_loss) {
  Tape<double> tape;
  int calls = 0;
  auto op = std::make_shared<CountingDouble<double>>(&calls);
  Var<double> x = tape.input(Matrix<double>::Ones(1, 3));
  Var<double> c = tape.constant(Matrix<double>::Ones(1, 3));
  Var<double> on_path = custom<double>(op, {x});
  Var<double> side_branch = custom<double>(op, {x});  // depends on x, but the loss ignores it
  Var<double> no_grad = custom<double>(op, {c});      // needs no gradient at all
  Var<double> loss = sum(on_path);
  Var<double> after_loss = custom<double>(op, {loss});  // recorded after the loss
  tape.backward(loss);
  BOOST_TEST(calls == 1);
  BOOST_TEST(test::same(x.grad(), Matrix<double>::Constant(1, 3, 2.0)));
  BOOST_TEST(tape.op_name(side_branch.index()) == "counting_double");
  BOOST_TEST(!tape.requires_grad(no_grad.index()));
  BOOST_TEST(!tape.grad(after_loss.index()).has_value());
}

BOOST_AUTO_TEST_CASE(detach_stops_the_gradient_and_truncates_bptt) {
  Tape<double> tape;
  Var<double> x = tape.input(Matrix<double>::Constant(1, 1, 0.5));
  Var<double> h = x, cut;
  for (int t = 0; t < 6; ++t) {
    if (t == 3) h = cut = detach(h);  // a truncation point, as between two BPTT chunks
    h = tanh(scale(h, 2.0));
  }
  tape.backward(sum(h));
  BOOST_TEST(x.grad()(0, 0) == 0.0);
  BOOST_TEST(!tape.requires_grad(cut.index()));
  BOOST_TEST(cut.value().data() == tape.value(cut.index() - 1).data());  // shares storage
  // Gradient through the last three steps only, against the hand-unrolled chain rule.
  Var<double> y = tape.input(Matrix<double>::Constant(1, 1, 0.5));
  Var<double> g = y;
  for (int t = 0; t < 3; ++t) g = tanh(scale(g, 2.0));
  Var<double> z = tanh(scale(detach(g), 2.0));
  tape.backward(sum(add(z, g)));
  double expected = 1, v = 0.5;
  for (int t = 0; t < 3; ++t) {
    v = std::tanh(2 * v);
    expected *= 2 * (1 - v * v);
  }
  BOOST_TEST(std::abs(y.grad()(0, 0) - expected) < 1e-15);
}

BOOST_AUTO_TEST_CASE(clear_makes_handles_stale_and_keeps_storage) {
  Tape<double> tape;
  Var<double> x = tape.input(Matrix<double>::Ones(3, 3));
  tape.backward(sum(tanh(x)));
  BOOST_TEST(x.valid());
  const auto gen = tape.generation();
  tape.clear();
  BOOST_TEST(tape.size() == 0u);
  BOOST_TEST(tape.generation() == gen + 1);
  BOOST_TEST(!x.valid());
  BOOST_TEST(!tape.has_backward());
  BOOST_CHECK_THROW((void)x.value(), UsageError);
  BOOST_CHECK_THROW((void)tanh(x), UsageError);
  // A new recording reuses the old handle's index without confusing the two.
  Var<double> y = tape.input(Matrix<double>::Zero(3, 3));
  BOOST_TEST(y.index() == x.index());
  BOOST_TEST(y.valid());
  BOOST_TEST(!x.valid());
}

BOOST_AUTO_TEST_CASE(values_stay_valid_while_the_tape_grows) {
  Tape<double> tape;
  Var<double> x = tape.input(Matrix<double>::Constant(4, 4, 0.25));
  const ConstMap<double> early = x.value();
  Var<double> y = x;
  for (int k = 0; k < 5000; ++k) y = add_scalar(y, 0.0);  // forces new arena blocks
  BOOST_TEST(early(3, 3) == 0.25);
  BOOST_TEST(early.data() == x.value().data());
}

BOOST_AUTO_TEST_CASE(scopes_nest_and_survive_clear) {
  Tape<double> tape;
  Var<double> x = tape.input(Matrix<double>::Ones(1, 1), "x");
  Var<double> f;
  {
    auto l = tape.scope("layer0");
    auto d = tape.scope("fwd");
    auto t = tape.scope("t3");
    auto g = tape.scope("f");
    f = sigmoid(x);
  }
  Var<double> top = tanh(x);
  BOOST_TEST(tape.scope_path(x.index()) == "");
  BOOST_TEST(tape.scope_path(f.index()) == "layer0/fwd/t3/f");
  BOOST_TEST(tape.scope_path(top.index()) == "");
  BOOST_TEST(tape.label(x.index()) == "x");
  {
    auto outer = tape.scope("train");
    tape.clear();  // the open scope stays open across clear
    Var<double> z = tape.input(Matrix<double>::Ones(1, 1));
    BOOST_TEST(tape.scope_path(z.index()) == "train");
  }
  Var<double> w = tape.input(Matrix<double>::Ones(1, 1));
  BOOST_TEST(tape.scope_path(w.index()) == "");
}

BOOST_AUTO_TEST_CASE(storage_stops_growing_over_100000_cycles) {
  Tape<float> tape;
  Parameter<float> w("w", Matrix<float>::Constant(4, 4, 0.1f));
  const Matrix<float> xv = Matrix<float>::Constant(2, 4, 0.5f);
  const std::vector<std::int32_t> targets{1, 3};
  std::size_t after_warmup = 0;
  for (int cycle = 0; cycle < 100000; ++cycle) {
    tape.clear();
    auto s = tape.scope("step");
    Var<float> h = tanh(matmul(tape.input(xv, "x"), tape.param(w)));
    tape.backward(cross_entropy(matmul(h, tape.param(w)), targets));
    if (cycle == 10) after_warmup = tape.capacity_bytes();
  }
  BOOST_TEST(after_warmup > 0u);
  BOOST_TEST(tape.capacity_bytes() == after_warmup);
  BOOST_TEST(w.grad.allFinite());
}

BOOST_AUTO_TEST_CASE(a_100000_step_chain_needs_no_recursion) {
  Tape<double> tape;
  Var<double> x = tape.input(Matrix<double>::Constant(1, 2, 0.1));
  Var<double> h = x;
  for (int t = 0; t < 100000; ++t) h = add(scale(h, 0.5), scale(x, 0.5));  // h_t -> x
  tape.backward(sum(h));
  // h_T = x (fixed point); dh_T/dx = Σ 0.5·0.5^k over the chain = 1 - 0.5^T ≈ 1.
  BOOST_TEST(std::abs(x.grad()(0, 0) - 1.0) < 1e-12);
}

BOOST_AUTO_TEST_CASE(tapes_on_two_threads_are_independent) {
  const auto run = [](double seed, double* out) {
    Tape<double> tape;
    for (int rep = 0; rep < 200; ++rep) {
      tape.clear();
      Var<double> x = tape.input(Matrix<double>::Constant(8, 8, seed));
      Var<double> y = x;
      for (int k = 0; k < 50; ++k) y = tanh(add_scalar(y, 0.01));
      tape.backward(mean(y));
      *out = x.grad()(0, 0);
    }
  };
  double a = 0, b = 0, a_alone = 0;
  std::thread ta(run, 0.3, &a), tb(run, -0.7, &b);
  ta.join();
  tb.join();
  run(0.3, &a_alone);
  BOOST_TEST(a == a_alone);
  BOOST_TEST(a != b);
}

BOOST_AUTO_TEST_SUITE_END()
