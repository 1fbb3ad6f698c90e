// The reverse sweep on two threads (REWIND_OPENMP builds, tape.cpp): each thread owns half of the
// rows of the gradients whose ops allow it, weights' and biases' gradients are deferred to after
// the row phase. Its gradients must agree with the one-thread sweep's to rounding, be the same
// bits on every run, and an error inside the parallel region must come out as an exception.
// ctest runs this suite twice: as part of `autograd` (REWIND_SPLIT unset: the measured policy,
// which splits nodes of 16 rows or more in recordings big enough) and as
// `autograd_parallel_sweep_always` (REWIND_SPLIT=always: every node of two rows or more).
#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <random>
#include <rewind/rewind.hpp>
#include <string>
#include <vector>

#include "support.hpp"

using namespace rwd;

namespace {

#ifdef _OPENMP
// A recurrence in the shape of an LSTM, with the paths the parallel sweep treats apart: a
// batch of 33 rows (odd halves); an input that takes a gradient (a leaf split by rows); a
// recurrent weight (a deferred leaf, packed for both threads); a peephole row vector (deferred,
// and mul_row_vector does not accumulate: its later contributions go through scratch); c used
// twice (scratch on split rows); one step whose weight is computed (scale(W)), so its product
// cannot split; the steps stacked by concat_rows into a head and a mean (thread 0 alone, with
// barriers around it).
template <class T>
struct Net {
  static constexpr Index kBatch = 33, kIn = 8, kHidden = 16, kSteps = 24;
  Parameter<T> w_ih, w_hh, b, peep, head_w, head_b;
  Matrix<T> x0;
  explicit Net(std::mt19937_64& rng)
      : w_ih("w_ih", (test::normal_matrix(4 * kHidden, kIn, rng) * 0.3).cast<T>()),
        w_hh("w_hh", (test::normal_matrix(4 * kHidden, kHidden, rng) * 0.3).cast<T>()),
        b("b", test::normal_matrix(1, 4 * kHidden, rng).cast<T>()),
        peep("peep", test::normal_matrix(1, kHidden, rng).cast<T>()),
        head_w("head_w", (test::normal_matrix(5, kHidden, rng) * 0.3).cast<T>()),
        head_b("head_b", test::normal_matrix(1, 5, rng).cast<T>()),
        x0(test::normal_matrix(kBatch, kIn, rng).cast<T>()) {}

  std::vector<Parameter<T>*> params() { return {&w_ih, &w_hh, &b, &peep, &head_w, &head_b}; }

  // Records the loss; `x` receives the input leaf (it takes a gradient).
  Var<T> record(Tape<T>& tape, Var<T>& x) {
    x = tape.input(x0, "x");
    Var<T> h = tape.constant(Matrix<T>::Zero(kBatch, kHidden));
    Var<T> c = tape.constant(Matrix<T>::Zero(kBatch, kHidden));
    std::vector<Var<T>> hs;
    for (Index t = 0; t < kSteps; ++t) {
      const Var<T> in = t % 2 == 0 ? x : tanh(x);
      const Var<T> w = t == kSteps / 2 ? scale(tape.param(w_hh), T(1)) : tape.param(w_hh);
      const Var<T> z = add(affine(in, tape.param(w_ih), tape.param(b)), matmul_nt(h, w));
      const Var<T> i = sigmoid(slice_cols(z, 0, kHidden));
      const Var<T> f =
          sigmoid(add(slice_cols(z, kHidden, 2 * kHidden), mul_row_vector(c, tape.param(peep))));
      const Var<T> g = tanh(slice_cols(z, 2 * kHidden, 3 * kHidden));
      const Var<T> o = sigmoid(slice_cols(z, 3 * kHidden, 4 * kHidden));
      c = add(mul(f, c), mul(i, g));
      h = mul(o, tanh(c));
      hs.push_back(h);
    }
    const Var<T> y = affine(concat_rows(hs), tape.param(head_w), tape.param(head_b));
    return mean(square(y));
  }
};

struct Result {
  Matrix<double> x;
  std::vector<Matrix<double>> params;
  int threads = 0;
};

template <class T>
Result backward_on(int threads, Net<T>& net) {
  const int before = Eigen::nbThreads();
  Eigen::setNbThreads(threads);
  Tape<T> tape;
  Var<T> x;
  const Var<T> loss = net.record(tape, x);
  for (Parameter<T>* p : net.params()) p->zero_grad();
  tape.backward(loss);
  Result g;
  g.threads = tape.backward_threads();
  g.x = x.grad().template cast<double>();
  for (Parameter<T>* p : net.params()) g.params.push_back(p->grad.template cast<double>());
  Eigen::setNbThreads(before);
  return g;
}

// Largest |a - b| relative to the largest |b|.
double relative(const Matrix<double>& a, const Matrix<double>& b) {
  return (a - b).cwiseAbs().maxCoeff() / b.cwiseAbs().maxCoeff();
}

template <class T>
void check_against_one_thread(double tolerance) {
  std::mt19937_64 rng(7);
  Net<T> net(rng);
  const Result one = backward_on(1, net);
  const Result two = backward_on(2, net);
  BOOST_TEST(one.threads == 1);
  BOOST_TEST(two.threads == 2);  // the recording is big enough to split
  BOOST_TEST(relative(two.x, one.x) < tolerance);
  for (std::size_t k = 0; k < one.params.size(); ++k) {
    BOOST_TEST_CONTEXT("parameter " << net.params()[k]->name) {
      BOOST_TEST(one.params[k].cwiseAbs().maxCoeff() > 0);
      BOOST_TEST(relative(two.params[k], one.params[k]) < tolerance);
    }
  }
}

// A custom op in the middle of the recurrence whose backward throws.
class Throws : public CustomOp<double> {
 public:
  std::string_view name() const override { return "throws"; }
  int arity() const override { return 1; }
  Shape shape(std::span<const Shape> x) const override { return x[0]; }
  void forward(const Inputs<double>& x, MutMap<double> y) const override { y = x[0]; }
  void backward(const Inputs<double>&, ConstMap<double>, ConstMap<double>,
                Grads<double>&) const override {
    throw NumericalError("throws: backward failed on purpose");
  }
};
#endif

}  // namespace

BOOST_AUTO_TEST_SUITE(parallel_sweep)

#ifdef _OPENMP
BOOST_AUTO_TEST_CASE(two_threads_agree_with_one_to_rounding) {
  // Double: the products over half the rows add in another order; nothing else differs.
  check_against_one_thread<double>(1e-13);
  check_against_one_thread<float>(2e-5);
}

BOOST_AUTO_TEST_CASE(two_thread_sweeps_are_the_same_bits_every_time) {
  std::mt19937_64 rng(8);
  Net<float> net(rng);
  const Result first = backward_on(2, net);
  for (int run = 0; run < 5; ++run) {
    const Result again = backward_on(2, net);
    BOOST_TEST(again.threads == 2);
    BOOST_TEST(test::same(again.x, first.x));
    for (std::size_t k = 0; k < first.params.size(); ++k) {
      BOOST_TEST(test::same(again.params[k], first.params[k]));
    }
  }
}

BOOST_AUTO_TEST_CASE(an_error_inside_the_region_is_thrown_and_the_tape_stays_usable) {
  std::mt19937_64 rng(9);
  Net<double> net(rng);
  const int before = Eigen::nbThreads();
  Eigen::setNbThreads(2);
  Tape<double> tape;
  Var<double> x;
  const Var<double> loss = net.record(tape, x);
  // Through the custom op (thread 0 alone, between split steps) into a second loss term.
  const Var<double> inner[] = {tanh(x)};
  const Var<double> thrown = add(loss, mean(tape.record_custom(std::make_shared<Throws>(), inner)));
  test::expect_message<NumericalError>([&] { tape.backward(thrown); },
                                       "throws: backward failed on purpose");
  tape.clear();
  Var<double> x2;
  const Var<double> again = net.record(tape, x2);
  tape.backward(again);
  BOOST_TEST(tape.backward_threads() == 2);
  BOOST_TEST(x2.grad().cwiseAbs().maxCoeff() > 0);
  Eigen::setNbThreads(before);
}

BOOST_AUTO_TEST_CASE(small_recordings_and_second_order_stay_on_one_thread) {
  const int before = Eigen::nbThreads();
  Eigen::setNbThreads(2);
  std::mt19937_64 rng(10);
  Tape<double> tape;
  Parameter<double> w("w", test::normal_matrix(4, 3, rng));
  w.tangent = test::normal_matrix(4, 3, rng);
  const Var<double> x = tape.input(test::normal_matrix(5, 3, rng), "x");
  const Var<double> loss = mean(square(tanh(matmul_nt(x, tape.param(w)))));
  tape.hvp(loss);  // a second-order sweep: always the one-thread sweep
  BOOST_TEST(tape.backward_threads() == 1);
  tape.backward(loss);
  // 5 rows: below the measured policy's 16; REWIND_SPLIT=always splits it.
  const char* split = std::getenv("REWIND_SPLIT");
  const bool always = split != nullptr && std::string(split) == "always";
  BOOST_TEST(tape.backward_threads() == (always ? 2 : 1));
  Eigen::setNbThreads(before);
}
#else
BOOST_AUTO_TEST_CASE(one_thread_without_openmp) {
  Tape<double> tape;
  const Var<double> x = tape.input(Matrix<double>::Ones(64, 64), "x");
  tape.backward(mean(square(x)));
  BOOST_TEST(tape.backward_threads() == 1);
}
#endif

BOOST_AUTO_TEST_SUITE_END()
