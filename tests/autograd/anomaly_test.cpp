// Anomaly mode: the first non-finite value or gradient throws, naming the op, its scope, its
// input shapes and ranges; off, the same program runs through.
#include <boost/test/unit_test.hpp>
#include <rewind/rewind.hpp>

using namespace rwd;
using M = Matrix<double>;

BOOST_AUTO_TEST_SUITE(anomaly)

BOOST_AUTO_TEST_CASE(a_nan_value_names_the_op_and_its_scope) {
  Tape<double> tape;
  tape.set_anomaly_mode(true);
  Var<double> x = tape.input((M(1, 2) << -1.0, 4.0).finished(), "x");
  auto l = tape.scope("layer0");
  auto t = tape.scope("t3");
  try {
    (void)log(x);
    BOOST_ERROR("no exception");
  } catch (const NumericalError& e) {
    BOOST_TEST(std::string(e.what()) ==
               "anomaly: log at layer0/t3: NaN in its value; inputs: 1x2 in [-1, 4]");
  }
  BOOST_TEST(tape.size() == 1u);  // nothing half-recorded
  Var<double> ok = sqrt(x * x);   // the tape stays usable
  BOOST_TEST(ok.value()(0, 1) == 4.0);
}

BOOST_AUTO_TEST_CASE(an_infinite_gradient_names_the_op_and_the_input) {
  Tape<double> tape;
  tape.set_anomaly_mode(true);
  Var<double> x = tape.input((M(1, 2) << 0.0, 4.0).finished(), "x");
  Var<double> y;
  {
    auto s = tape.scope("gate");
    y = sqrt(x);  // finite value; d/dx at 0 is infinite
  }
  try {
    tape.backward(sum(y));
    BOOST_ERROR("no exception");
  } catch (const NumericalError& e) {
    BOOST_TEST(
        std::string(e.what()) ==
        "anomaly: sqrt at gate: Inf in the gradient it returns for input 0 (incoming gradient "
        "in [1, 1]); inputs: 1x2 in [0, 4]");
  }
}

BOOST_AUTO_TEST_CASE(off_by_default) {
  Tape<float> tape;
  BOOST_TEST(!tape.anomaly_mode());
  Var<float> x = tape.input(Matrix<float>::Constant(1, 1, -1.0f));
  tape.backward(sum(log(x)));
  BOOST_TEST(std::isnan(x.grad()(0, 0)) == false);  // d/dx log x = 1/x = -1: finite
  BOOST_TEST(std::isnan(log(x).item()));
}

BOOST_AUTO_TEST_SUITE_END()
