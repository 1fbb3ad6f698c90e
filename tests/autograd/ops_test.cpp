// Generated per-op tests (one Boost.Test case per op in the registry) and forward values
// against straightforward scalar formulas.
#include <algorithm>
#include <array>
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <random>
#include <vector>

#include "op_samples.hpp"
#include "support.hpp"

using namespace rwd;
using rwd::test::Sample;
using rwd::test::TestedOps;

namespace {

/// A fixed, uneven weighting of an op's output (so every output element matters differently).
Matrix<double> weights(Index rows, Index cols) {
  Matrix<double> w(rows, cols);
  for (Index i = 0; i < w.size(); ++i) w.data()[i] = 0.5 + 0.37 * static_cast<double>(i % 7);
  return w;
}

// The checks take an op's name and cases, so each is compiled once, not once an op.
void check_gradients(std::string_view name, const std::vector<test::Case<double>>& cases,
                     bool stops) {
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(name << " on " << c.what) {
      std::vector<NamedTensor> inputs;
      for (std::size_t k = 0; k < c.inputs.size(); ++k) {
        inputs.push_back({fmt::format("x{}", k), c.inputs[k]});
      }
      const auto f = [&](Tape<double>&, std::span<const Var<double>> x) { return c.apply(x); };
      if (stops) {
        Tape<double> tape;
        Var<double> x = tape.input(c.inputs[0]);
        Var<double> y = c.apply(std::span<const Var<double>>(&x, 1));
        BOOST_TEST(test::same(y.value(), x.value()));
        tape.backward(sum(add(y, x)));  // only the direct path reaches x
        BOOST_TEST(test::same(x.grad(), Matrix<double>::Ones(x.rows(), x.cols())));
      } else {
        const GradcheckReport report = gradcheck(f, inputs);
        BOOST_TEST(report.passed(), report.to_string());
        // The same op when its inputs already hold a gradient: consumers recorded after it
        // reach the inputs first in the reverse sweep, so the op's backward adds (ops with
        // kAccumulates) or goes through the tape's scratch (the others).
        const auto g = [&](Tape<double>& tape, std::span<const Var<double>> x) {
          Var<double> y = c.apply(x);
          const Shape s = y.shape();
          Var<double> loss = sum(mul(y, tape.constant(weights(s.rows, s.cols))));
          for (const Var<double>& xk : x) loss = add(loss, sum(mul(xk, tanh(xk))));
          return loss;
        };
        const GradcheckReport shared = gradcheck(g, inputs);
        BOOST_TEST(shared.passed(), "inputs with other consumers: " << shared.to_string());
      }
    }
  }
}

template <class T>
void check_extremes(std::string_view name, const std::vector<test::Case<T>>& cases) {
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(name << " on " << c.what << " in "
                            << (sizeof(T) == 4 ? "float" : "double")) {
      Tape<T> tape;
      std::vector<Var<T>> xs;
      for (const auto& m : c.inputs) xs.push_back(tape.input(m));
      Var<T> y = c.apply(xs);
      BOOST_TEST(y.value().allFinite(), "value " << y.value());
      tape.backward(sum(y));
      for (std::size_t k = 0; k < xs.size(); ++k) {
        BOOST_TEST(xs[k].grad().allFinite(), "gradient of input " << k << ": " << xs[k].grad());
      }
    }
  }
}

}  // namespace

namespace {

// fl(a·b): the product of two floats is exact in double; rounded to float once, it is the float
// product's bits (denormal results included).
float product(float a, float b) {
  return static_cast<float>(static_cast<double>(a) * static_cast<double>(b));
}

// Every element i of got equals one of candidates(i) (an array of floats), bit for bit up to
// the sign of zero.
template <class F>
bool each_is_one_of(const Matrix<float>& got, F&& candidates) {
  for (Index i = 0; i < got.size(); ++i) {
    const auto c = candidates(i);
    if (std::find(c.begin(), c.end(), got.data()[i]) == c.end()) return false;
  }
  return true;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(ops)

BOOST_AUTO_TEST_CASE_TEMPLATE(gradient_matches_central_differences, O, TestedOps) {
  std::mt19937_64 rng(42);
  check_gradients(O::name, Sample<O>::template cases<double>(rng), stops_gradient<O>());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(finite_at_magnitude_1000, O, TestedOps) {
  std::mt19937_64 rng(7);
  check_extremes<float>(O::name, Sample<O>::template extremes<float>(rng));
  rng.seed(7);
  check_extremes<double>(O::name, Sample<O>::template extremes<double>(rng));
}

// ---- forward values against scalar formulas -------------------------------------------------

using M = Matrix<double>;

M elementwise(const M& x, double (*f)(double)) {
  M y(x.rows(), x.cols());
  for (Index i = 0; i < x.size(); ++i) y.data()[i] = f(x.data()[i]);
  return y;
}

BOOST_AUTO_TEST_CASE(activations_match_scalar_formulas) {
  Tape<double> tape;
  M v(2, 3);
  v << -3.5, -0.25, 0, 0.5, 2, 7;
  Var<double> x = tape.constant(v);
  const auto close = [](const M& a, const M& b) { return (a - b).cwiseAbs().maxCoeff() < 1e-12; };
  BOOST_TEST(
      close(sigmoid(x).value(), elementwise(v, [](double t) { return 1 / (1 + std::exp(-t)); })));
  BOOST_TEST(close(tanh(x).value(), elementwise(v, [](double t) { return std::tanh(t); })));
  BOOST_TEST(close(relu(x).value(), elementwise(v, [](double t) { return t > 0 ? t : 0.0; })));
  BOOST_TEST(close(softplus(x).value(),
                   elementwise(v, [](double t) { return std::log(1 + std::exp(t)); })));
  BOOST_TEST(close(log_sigmoid(x).value(),
                   elementwise(v, [](double t) { return std::log(1 / (1 + std::exp(-t))); })));
  BOOST_TEST(close(abs(x).value(), elementwise(v, [](double t) { return std::abs(t); })));
  BOOST_TEST(close(sin(x).value(), elementwise(v, [](double t) { return std::sin(t); })));
  BOOST_TEST(close(cos(x).value(), elementwise(v, [](double t) { return std::cos(t); })));
  BOOST_TEST(close(pow(add_scalar(abs(x), 1.0), 1.5).value(),
                   elementwise(v, [](double t) { return std::pow(std::abs(t) + 1, 1.5); })));
}

// tanh and sigmoid compute every element on Eigen's packet path (detail::packetwise): a tensor
// that does not fill whole packets ends in a padded one. An element's value must not depend on
// the tensor's size, offset or alignment, must match the scalar formula, and nothing past the
// tensor may be written.
template <class T>
void check_packetwise_tails(double tolerance) {
  constexpr Index kLong = 96;  // whole packets for float and double, with and without AVX-512
  Matrix<T> longer(1, kLong);
  for (Index i = 0; i < kLong; ++i) longer(0, i) = static_cast<T>(-4.0 + 8.0 * i / (kLong - 1));
  Tape<T> tape;
  const Matrix<T> long_tanh = tanh(tape.constant(longer)).value();
  const Matrix<T> long_sigmoid = sigmoid(tape.constant(longer)).value();
  for (Index i = 0; i < kLong; ++i) {
    const double v = static_cast<double>(longer(0, i));
    BOOST_TEST(std::abs(static_cast<double>(long_tanh(0, i)) - std::tanh(v)) < tolerance);
    BOOST_TEST(std::abs(static_cast<double>(long_sigmoid(0, i)) - 1 / (1 + std::exp(-v))) <
               tolerance);
  }
  for (Index n = 1; n <= 40; ++n) {
    for (const Index offset : {Index{0}, Index{3}, Index{40}}) {
      const Matrix<T> part = longer.middleCols(offset, n);
      BOOST_TEST((tanh(tape.constant(part)).value() == long_tanh.middleCols(offset, n)),
                 "tanh of 1x" << n << " at offset " << offset);
      BOOST_TEST((sigmoid(tape.constant(part)).value() == long_sigmoid.middleCols(offset, n)),
                 "sigmoid of 1x" << n << " at offset " << offset);
      // Straight into unaligned memory with sentinels after it.
      std::vector<T> in(static_cast<std::size_t>(n + 1)), out(static_cast<std::size_t>(n + 33));
      std::copy(part.data(), part.data() + n, in.begin() + 1);
      std::fill(out.begin(), out.end(), T(-7));
      detail::packetwise<T>(ConstMap<T>(in.data() + 1, 1, n), MutMap<T>(out.data() + 1, 1, n),
                            [](const auto& a) { return a.tanh(); });
      BOOST_TEST(out[0] == T(-7));
      BOOST_TEST((ConstMap<T>(out.data() + 1, 1, n) == long_tanh.middleCols(offset, n)));
      BOOST_TEST(std::all_of(out.begin() + 1 + n, out.end(), [](T v) { return v == T(-7); }),
                 "tanh of " << n << " wrote past the end");
    }
  }
}

BOOST_AUTO_TEST_CASE(short_tensors_get_the_values_of_long_ones) {
  check_packetwise_tails<float>(2e-6);
  check_packetwise_tails<double>(1e-14);
}

// An elementwise backward multiplies a vanishing float gradient (below 2^-63) through double,
// which avoids the processor's microcode assist for denormal products (detail::times_gradient);
// the bits must be those of the plain float product d·gy of the op's factor d: tanh, sigmoid,
// scale and mul backward (both of mul's operands), and mul's gradient added into an input's
// existing one. Incoming gradients mix normal values, tiny normal ones, denormals (down to the
// smallest, 2^-149), zeros and signs, at sizes 1 to 40 and 37x50 (partial packets, whole ones).
// The references are written out element by element: a float product as the double product of
// two floats (exact) rounded once; where the compiler may fuse a multiply and an add into one
// rounding (tanh's 1 − y², an added gradient e + d·gy: GCC does from -O2 with FMA), either
// rounding is accepted, and nothing else.
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
        // (Named, not structured bindings: Clang 14 cannot capture those in a lambda.)
        const std::pair<F, F> tanh_run =
            gradient([](Tape<float>&, const Var<float>& v) { return tanh(v); });
        const F &gt = tanh_run.first, &ty = tanh_run.second;
        BOOST_TEST(each_is_one_of(gt, [&](Index i) {
          const float y = ty.data()[i], yy = y * y, unfused = 1.0f - yy;
          return std::array{product(unfused, gy.data()[i]),
                            product(std::fma(-y, y, 1.0f), gy.data()[i])};
        }));
        const std::pair<F, F> sigmoid_run =
            gradient([](Tape<float>&, const Var<float>& v) { return sigmoid(v); });
        const F &gs = sigmoid_run.first, &sy = sigmoid_run.second;
        BOOST_TEST(each_is_one_of(gs, [&](Index i) {
          const float y = sy.data()[i], rest = 1.0f - y, d = y * rest;
          return std::array{product(d, gy.data()[i])};
        }));
        const auto [gc, cy] =
            gradient([](Tape<float>&, const Var<float>& v) { return scale(v, 0.9); });
        BOOST_TEST(
            each_is_one_of(gc, [&](Index i) { return std::array{product(0.9f, gy.data()[i])}; }));
        // mul(x, b): both operands; then x also in mul(x, x·0.5) recorded first, so that mul(x,
        // b)'s gradient for x is added to the one already there.
        Tape<float> tape;
        const Var<float> xv = tape.input(x), bv = tape.input(b);
        const Var<float> first = mul(xv, tape.constant(F(x * 0.5f))), m = mul(xv, bv);
        const GradSeed<float> seeds[] = {{first, g}, {m, g}};
        tape.backward(std::span<const GradSeed<float>>(seeds));
        BOOST_TEST(each_is_one_of(
            bv.grad(), [&](Index i) { return std::array{product(x.data()[i], gy.data()[i])}; }));
        BOOST_TEST(each_is_one_of(xv.grad(), [&](Index i) {
          const float e = product(b.data()[i], gy.data()[i]), h = x.data()[i] * 0.5f;
          const float unfused = e + product(h, gy.data()[i]);
          return std::array{unfused, std::fma(h, gy.data()[i], e)};
        }));
      }
      ++checked;
    }
  }
  BOOST_TEST(checked == 12);
}

BOOST_AUTO_TEST_CASE(extreme_values_are_exact) {
  Tape<double> tape;
  M v(1, 2);
  v << -1000, 1000;
  Var<double> x = tape.constant(v);
  BOOST_TEST(softplus(x).value()(0, 0) == 0.0);
  BOOST_TEST(softplus(x).value()(0, 1) == 1000.0);
  BOOST_TEST(log_sigmoid(x).value()(0, 0) == -1000.0);
  BOOST_TEST(log_sigmoid(x).value()(0, 1) == 0.0);
  BOOST_TEST(sigmoid(x).value()(0, 0) == 0.0);
  BOOST_TEST(sigmoid(x).value()(0, 1) == 1.0);
  // log_softmax([-1000, 1000]) = [-2000, 0]
  BOOST_TEST(log_softmax_rows(x).value()(0, 0) == -2000.0);
  BOOST_TEST(log_softmax_rows(x).value()(0, 1) == 0.0);
}

BOOST_AUTO_TEST_CASE(softmax_family_and_losses_match_scalar_formulas) {
  Tape<double> tape;
  M z(2, 3);
  z << 0.5, -1, 2, 3, 0.25, -0.75;
  Var<double> x = tape.constant(z);
  M softmax(2, 3), log_softmax(2, 3);
  double ce = 0;
  const std::vector<std::int32_t> t{2, 0};
  for (Index r = 0; r < 2; ++r) {
    double s = 0;
    for (Index c = 0; c < 3; ++c) s += std::exp(z(r, c));
    for (Index c = 0; c < 3; ++c) {
      softmax(r, c) = std::exp(z(r, c)) / s;
      log_softmax(r, c) = std::log(softmax(r, c));
    }
    ce -= log_softmax(r, t[static_cast<std::size_t>(r)]) / 2;
  }
  BOOST_TEST((softmax_rows(x).value() - softmax).cwiseAbs().maxCoeff() < 1e-12);
  BOOST_TEST((log_softmax_rows(x).value() - log_softmax).cwiseAbs().maxCoeff() < 1e-12);
  BOOST_TEST(std::abs(cross_entropy(x, t).item() - ce) < 1e-12);

  M target(2, 3);
  target << 1, 0, 1, 0, 0.5, 1;
  double bce = 0, mse_ref = 0;
  for (Index i = 0; i < 6; ++i) {
    const double p = 1 / (1 + std::exp(-z.data()[i])), y = target.data()[i];
    bce -= (y * std::log(p) + (1 - y) * std::log(1 - p)) / 6;
    mse_ref += (z.data()[i] - y) * (z.data()[i] - y) / 6;
  }
  Var<double> tv = tape.constant(target);
  BOOST_TEST(std::abs(bce_with_logits(x, tv).item() - bce) < 1e-12);
  BOOST_TEST(std::abs(mse(x, tv).item() - mse_ref) < 1e-12);
}

// Per-example matrices: row i of a B×(m·n) tensor holds example i's m×n matrix, row-major.
// Every element against a sum written out, with m ≠ n so a swapped index cannot pass.
BOOST_AUTO_TEST_CASE(per_example_products_and_column_broadcasts_match_scalar_sums) {
  std::mt19937_64 rng(5);
  const Index batch = 3, m = 2, n = 4;
  const M a = test::normal_matrix(batch, m, rng), b = test::normal_matrix(batch, n, rng);
  const M s = test::normal_matrix(batch, m * n, rng), c = test::normal_matrix(batch, 1, rng);
  Tape<double> tape;
  const Var<double> av = tape.constant(a), bv = tape.constant(b), sv = tape.constant(s),
                    cv = tape.constant(c);
  const M outer = row_outer(av, bv).value(), vecmat = row_vecmat(av, sv).value(),
          matvec = row_matvec(sv, bv).value(), added = add_col_vector(bv, cv).value(),
          scaled = mul_col_vector(bv, cv).value();
  BOOST_TEST((outer.rows() == batch && outer.cols() == m * n && vecmat.cols() == n &&
              matvec.cols() == m && added.cols() == n && scaled.cols() == n));
  double worst = 0;
  for (Index i = 0; i < batch; ++i) {
    for (Index p = 0; p < m; ++p) {
      for (Index q = 0; q < n; ++q) {
        worst = std::max(worst, std::abs(outer(i, p * n + q) - a(i, p) * b(i, q)));
      }
      double sum = 0;
      for (Index q = 0; q < n; ++q) sum += s(i, p * n + q) * b(i, q);
      worst = std::max(worst, std::abs(matvec(i, p) - sum));
    }
    for (Index q = 0; q < n; ++q) {
      double sum = 0;
      for (Index p = 0; p < m; ++p) sum += a(i, p) * s(i, p * n + q);
      worst = std::max(worst, std::abs(vecmat(i, q) - sum));
      worst = std::max(worst, std::abs(added(i, q) - (b(i, q) + c(i, 0))));
      worst = std::max(worst, std::abs(scaled(i, q) - b(i, q) * c(i, 0)));
    }
  }
  BOOST_TEST(worst < 1e-14);
}

BOOST_AUTO_TEST_CASE(structural_ops_move_the_right_elements) {
  Tape<double> tape;
  M a(2, 3);
  a << 1, 2, 3, 4, 5, 6;
  Var<double> x = tape.constant(a);
  M expected_rows(2, 1), expected_cols(1, 3);
  expected_rows << 6, 15;
  expected_cols << 5, 7, 9;
  BOOST_TEST(test::same(sum_rows(x).value(), expected_rows));
  BOOST_TEST(test::same(sum_cols(x).value(), expected_cols));
  BOOST_TEST(sum(x).item() == 21.0);
  BOOST_TEST(mean(x).item() == 3.5);
  BOOST_TEST(test::same(transpose(x).value(), a.transpose()));
  BOOST_TEST(test::same(matmul_nt(x, x).value(), a * a.transpose()));
  BOOST_TEST(test::same(slice_cols(x, 1, 3).value(), a.rightCols(2)));
  BOOST_TEST(test::same(slice_rows(x, 1, 2).value(), a.bottomRows(1)));
  M cc(2, 6), cr(4, 3);
  cc << a, a;
  cr << a, a;
  BOOST_TEST(test::same(concat_cols({x, x}).value(), cc));
  BOOST_TEST(test::same(concat_rows({x, x}).value(), cr));
  M r(3, 2);
  r << 1, 2, 3, 4, 5, 6;  // row-major order is kept
  BOOST_TEST(test::same(reshape(x, 3, 2).value(), r));
  const std::vector<std::int32_t> ids{1, 1, 0};
  M e(3, 3);
  e << 4, 5, 6, 4, 5, 6, 1, 2, 3;
  BOOST_TEST(test::same(embedding(x, ids).value(), e));
  M b(1, 3);
  b << 10, 20, 30;
  M biased(2, 3);
  biased << 11, 22, 33, 14, 25, 36;
  BOOST_TEST(test::same(add_row_vector(x, tape.constant(b)).value(), biased));
  M scaled(2, 3);
  scaled << 10, 40, 90, 40, 100, 180;
  BOOST_TEST(test::same(mul_row_vector(x, tape.constant(b)).value(), scaled));
  M mask(2, 1);
  mask << 0, 1;
  M picked(2, 3);
  picked << -1, -2, -3, 4, 5, 6;
  BOOST_TEST(test::same(where(tape.constant(mask), x, -x).value(), picked));
}

BOOST_AUTO_TEST_CASE(seeded_dropout_is_deterministic_and_scaled) {
  Tape<double> tape;
  Var<double> x = tape.constant(M::Ones(20, 50));
  std::mt19937_64 a(3), b(3);
  const M ya = dropout(x, 0.3, a).value(), yb = dropout(x, 0.3, b).value();
  BOOST_TEST(test::same(ya, yb));
  Index kept = 0;
  for (Index i = 0; i < ya.size(); ++i) {
    const double v = ya.data()[i];
    BOOST_TEST((v == 0.0 || std::abs(v - 1 / 0.7) < 1e-15));
    kept += v != 0.0;
  }
  BOOST_TEST(std::abs(static_cast<double>(kept) / 1000 - 0.7) < 0.06);  // 4 standard deviations
  BOOST_TEST(dropout(x, 0.0, a).index() == x.index());                  // p = 0 records nothing
}

// maximum and minimum: the larger (smaller) value, and its gradient; on a tie each input gets
// half, PyTorch's rule for torch.maximum/torch.minimum (derivatives.yaml: grad / 2 where
// self == other), in the tangent too (ẏ = ½(ȧ + ḃ) there).
BOOST_AUTO_TEST_CASE(maximum_and_minimum_split_ties_evenly) {
  M a(1, 4), b(1, 4);
  a << 1, 2, -3, 5;
  b << 1, -2, 4, 5;
  for (const bool larger : {true, false}) {
    BOOST_TEST_CONTEXT((larger ? "maximum" : "minimum")) {
      Tape<double> tape;
      Var<double> va = tape.input(a, "a"), vb = tape.input(b, "b");
      tape.set_tangent(va, M::Constant(1, 4, 1.0));
      tape.set_tangent(vb, M::Constant(1, 4, 10.0));
      const Var<double> y = larger ? maximum(va, vb) : minimum(va, vb);
      tape.jvp();
      tape.backward(sum(y * tape.constant((M(1, 4) << 1, 2, 3, 4).finished())));
      M value(1, 4), ga(1, 4), gb(1, 4), dy(1, 4);
      if (larger) {  // ties at 0 and 3; a wins at 1, b at 2
        value << 1, 2, 4, 5;
        ga << 0.5, 2, 0, 2;
        gb << 0.5, 0, 3, 2;
        dy << 5.5, 1, 10, 5.5;
      } else {
        value << 1, -2, -3, 5;
        ga << 0.5, 0, 3, 2;
        gb << 0.5, 2, 0, 2;
        dy << 5.5, 10, 1, 5.5;
      }
      BOOST_TEST(test::same(y.value(), value));
      BOOST_TEST(test::same(va.grad(), ga));
      BOOST_TEST(test::same(vb.grad(), gb));
      BOOST_TEST(test::same(y.tangent(), dy));
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
