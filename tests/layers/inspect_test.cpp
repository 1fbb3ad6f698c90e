// Blame and BPTT diagnostics on recurrent models.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <rewind/rewind.hpp>

using namespace rwd;
using M = Matrix<double>;

namespace {

// y = x ⊙ x with a wrong backward (returns x·gy instead of 2x·gy): a bug planted in a custom op.
class WrongSquare : public CustomOp<double> {
 public:
  std::string_view name() const override { return "wrong_square"; }
  int arity() const override { return 1; }
  Shape shape(std::span<const Shape> x) const override { return x[0]; }
  void forward(const Inputs<double>& x, MutMap<double> y) const override {
    y.array() = x[0].array().square();
  }
  void backward(const Inputs<double>& x, ConstMap<double>, ConstMap<double> gy,
                Grads<double>& g) const override {
    g[0].array() = x[0].array() * gy.array();
  }
};

// An RNN-like custom cell whose candidate goes through the faulty op under scope "cand".
class BuggyCell {
 public:
  using Scalar = double;
  using State = std::array<Var<double>, 1>;
  explicit BuggyCell(layers::Rng& rng)
      : w("w", layers::uniform<double>(3, 2, 0.5, rng)),
        u("u", layers::uniform<double>(3, 3, 0.5, rng)) {}
  State step(Tape<double>& tape, const Var<double>& x, const State& s) {
    const Var<double> pre = matmul_nt(x, tape.param(w)) + matmul_nt(s[0], tape.param(u));
    auto scope = tape.scope("cand");
    return {tanh(custom<double>(op_, {pre}))};
  }
  std::array<Index, 1> state_sizes() const { return {3}; }
  Index input_size() const { return 2; }
  std::vector<Parameter<double>*> named_parameters() { return {&w, &u}; }
  Parameter<double> w, u;

 private:
  std::shared_ptr<WrongSquare> op_ = std::make_shared<WrongSquare>();
};

}  // namespace

BOOST_AUTO_TEST_SUITE(inspect)

BOOST_AUTO_TEST_CASE(blame_names_the_planted_wrong_backward_and_where_it_ran) {
  layers::Rng rng(1);
  BuggyCell cell(rng);
  std::vector<NamedTensor> inputs;
  for (int t = 0; t < 3; ++t)
    inputs.push_back({fmt::format("x{}", t), layers::uniform<double>(2, 2, 1.0, rng)});
  const auto f = [&](Tape<double>& tape, std::span<const Var<double>> in) {
    auto run = layers::unroll(cell, tape, in, layers::zero_state(cell, tape, 2));
    return mean(square(concat_rows(run.outputs)));
  };
  const GradcheckReport report = gradcheck(f, inputs, cell.named_parameters());
  BOOST_TEST(!report.passed());  // the model-level check fails...
  Tape<double> tape;
  std::vector<Var<double>> vars;
  for (const auto& t : inputs) vars.push_back(tape.input(t.value, t.name));
  (void)f(tape, vars);
  std::vector<std::string> failing;
  std::size_t checked = 0;
  for (const OpCheck& c : blame(tape)) {
    ++checked;
    if (!c.passed) failing.push_back(c.op + " at " + c.scope);
  }
  // ...and blame names exactly the faulty op, once per step, with its scope.
  const std::vector<std::string> expected{"wrong_square at t0/cand", "wrong_square at t1/cand",
                                          "wrong_square at t2/cand"};
  BOOST_TEST(failing == expected, boost::test_tools::per_element());
  BOOST_TEST(checked > 10u);  // every other op was checked and passed
}

BOOST_AUTO_TEST_CASE(diagnostics_add_up_and_match_a_linear_recurrence) {
  // A relu RNN kept in its linear region (positive weights and inputs, no bias):
  // h_t = W_ih x_t + W_hh h_{t-1}, so ∂h_T/∂h_t = W_hh^(T-t) for each batch row.
  layers::Rng rng(2);
  layers::Rnn<double> rnn(
      {.input = 2, .hidden = 3, .activation = layers::Activation::kRelu, .bias = false}, rng);
  auto& cell = rnn.cell(0);
  cell.weight_ih.value = layers::uniform<double>(3, 2, 0.5, rng).cwiseAbs();
  cell.weight_hh.value = layers::uniform<double>(3, 3, 0.5, rng).cwiseAbs();
  Tape<double> tape;
  std::vector<Var<double>> xs;
  for (int t = 0; t < 6; ++t)
    xs.push_back(tape.constant(layers::uniform<double>(4, 2, 1.0, rng).cwiseAbs()));
  const auto run = rnn(tape, xs);
  for (auto* p : rnn.named_parameters()) p->zero_grad();
  tape.backward(mean(square(run.outputs.back())));
  const M grad_before = cell.weight_hh.grad;
  const BpttReport r =
      bptt_diagnostics(tape, run.hidden, {&cell.weight_hh}, {.probes = 4000, .seed = 3});
  BOOST_REQUIRE(r.series.size() == 1u);
  const SeriesReport& s = r.series[0];
  BOOST_TEST(s.name == "layer0/fwd");
  // ‖dL/dh_t‖ is read straight off the tape (and the tape's gradients are restored).
  for (std::size_t t = 0; t < 6; ++t)
    BOOST_TEST(s.grad_norm[t] == run.hidden[0].states[t].grad().norm());
  BOOST_TEST((cell.weight_hh.grad - grad_before).norm() == 0.0);  // parameters untouched
  // Shares sum to 1, and step 0's part is zero (h_{-1} = 0 multiplies W_hh).
  double total = 0;
  for (double v : s.weight_share[0]) total += v;
  BOOST_TEST(std::abs(total - 1.0) < 1e-12);
  BOOST_TEST(s.weight_share[0][0] == 0.0);
  // ‖∂h_T/∂h_t‖_F per sequence against powers of W_hh (the estimator uses 4000 probes).
  M power = M::Identity(3, 3);
  for (int t = 5; t >= 0; --t) {
    const double exact = power.norm();
    BOOST_TEST(
        std::abs(s.jacobian_norm[static_cast<std::size_t>(t)] - exact) < 0.05 * exact,
        "t=" << t << ": " << s.jacobian_norm[static_cast<std::size_t>(t)] << " vs " << exact);
    power = power * cell.weight_hh.value;
  }
  BOOST_TEST(
      r.csv().rfind("series,t,grad_norm,jacobian_norm,share_weight_hh_l0\nlayer0/fwd,0,", 0) == 0);
  BOOST_TEST(r.json().find("\"name\": \"layer0/fwd\"") != std::string::npos);
  BOOST_TEST(r.svg("t").rfind("<svg", 0) == 0);
}

BOOST_AUTO_TEST_SUITE_END()
