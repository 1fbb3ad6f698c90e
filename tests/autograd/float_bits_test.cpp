// Float gradients against Eigen's float arithmetic, bit for bit. This file compiles at the
// libraries' optimisation level, not the test programs' (tests/CMakeLists.txt): at -O2 and above
// with FMA, GCC contracts a*b+c in the library's rules, so a reference built at -O0 would differ
// in the last bit where the library is right.
#include <boost/test/unit_test.hpp>
#include <random>
#include <rewind/rewind.hpp>

#include "support.hpp"

using namespace rwd;

BOOST_AUTO_TEST_SUITE(ops)

// An elementwise backward multiplies a vanishing float gradient (below 2^-63) through double,
// which avoids the processor's microcode assist for denormal products (detail::times_gradient);
// the bits must be those of the plain float product, computed here by Eigen: tanh, sigmoid,
// scale and mul backward (both of mul's operands), and mul's gradient added into an input's
// existing one. Incoming gradients mix normal values, tiny normal ones, denormals (down to the
// smallest, 2^-149), zeros and signs, at sizes 1 to 40 and 37x50 (partial packets, whole ones).
BOOST_AUTO_TEST_CASE(vanishing_gradients_get_the_bits_of_float_products) {
  using F = Matrix<float>;
  std::mt19937_64 rng(11);
  const float kTiny[] = {1e-30f, -3e-25f, 1e-38f, 1e-40f, -7e-42f, 0x1p-149f, 0.0f, 2e-20f};
  int checked = 0;
  for (const Shape s :
       {Shape{1, 1}, Shape{1, 7}, Shape{2, 8}, Shape{3, 13}, Shape{1, 40}, Shape{37, 50}}) {
    const F x = test::normal_matrix(s.rows, s.cols, rng).cast<float>();
    const F b = test::normal_matrix(s.rows, s.cols, rng).cast<float>();
    for (const bool vanishing : {true, false}) {
      F gy = test::normal_matrix(s.rows, s.cols, rng).cast<float>();
      if (vanishing) {
        for (Index i = 0; i < gy.size(); ++i)
          if (i % 3 != 1) gy.data()[i] = kTiny[i % 8] * (i % 2 == 0 ? 1.0f : 3.7f);
      }
      const ConstMap<float> g(gy.data(), s.rows, s.cols);
      // x's gradient from y = f(x) alone (assigned), against Eigen's float product.
      const auto gradient = [&](auto f) {
        Tape<float> tape;
        const Var<float> xv = tape.input(x);
        const Var<float> y = f(tape, xv);
        const GradSeed<float> seeds[] = {{y, g}};
        tape.backward(std::span<const GradSeed<float>>(seeds));
        return std::pair<F, F>(xv.grad(), y.value());
      };
      BOOST_TEST_CONTEXT(s << (vanishing ? ", vanishing gradient" : ", normal gradient")) {
        const auto [gt, ty] = gradient([](Tape<float>&, const Var<float>& v) { return tanh(v); });
        BOOST_TEST(test::same(gt, F(((1.0f - ty.array().square()) * gy.array()).matrix())));
        const auto [gs, sy] =
            gradient([](Tape<float>&, const Var<float>& v) { return sigmoid(v); });
        BOOST_TEST(test::same(gs, F((sy.array() * (1.0f - sy.array()) * gy.array()).matrix())));
        const auto [gc, cy] =
            gradient([](Tape<float>&, const Var<float>& v) { return scale(v, 0.9); });
        BOOST_TEST(test::same(gc, F((gy.array() * 0.9f).matrix())));
        // mul(x, b): both operands; then x also in mul(x, x·0.5) recorded first, so that mul(x,
        // b)'s gradient for x is added to the one already there.
        Tape<float> tape;
        const Var<float> xv = tape.input(x), bv = tape.input(b);
        const Var<float> first = mul(xv, tape.constant(F(x * 0.5f))), m = mul(xv, bv);
        const GradSeed<float> seeds[] = {{first, g}, {m, g}};
        tape.backward(std::span<const GradSeed<float>>(seeds));
        BOOST_TEST(test::same(bv.grad(), F((gy.array() * x.array()).matrix())));
        F added = F((gy.array() * b.array()).matrix());
        added.array() += gy.array() * (x * 0.5f).array();
        BOOST_TEST(test::same(xv.grad(), added));
      }
      ++checked;
    }
  }
  BOOST_TEST(checked == 12);
}

BOOST_AUTO_TEST_SUITE_END()
