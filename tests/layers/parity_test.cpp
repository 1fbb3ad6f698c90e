// Parity with PyTorch 1.13: outputs, final states, every gradient and a Hessian-vector product
// (PyTorch's double backward) of nn.RNN (tanh, relu), nn.LSTM and nn.GRU, one and two layers,
// bidirectional, packed variable-length batches.
// Reference data: tests/data/parity_*.json, made by tools/torch_parity.py.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <rewind/rewind.hpp>

#include "support.hpp"

using namespace rwd;
using M = Matrix<double>;
using json = nlohmann::ordered_json;  // keeps PyTorch's parameter order
using test::to_matrix;

namespace {

std::vector<M> to_matrices(const json& list) {
  std::vector<M> out;
  for (const json& m : list) out.push_back(to_matrix(m));
  return out;
}

json load(const std::string& name) {
  std::ifstream in(std::string(REWIND_TEST_DATA) + "/parity_" + name + ".json");
  BOOST_REQUIRE_MESSAGE(in, "missing reference data for " << name);
  return json::parse(in);
}

// Largest |a - b| / (|b| + 1e-12) over the elements: the relative error with a floor for exact
// zeros (padded outputs).
double rel_error(const Eigen::Ref<const M>& a, const M& b) {
  BOOST_REQUIRE(a.rows() == b.rows() && a.cols() == b.cols());
  return ((a - b).array().abs() / (b.array().abs() + 1e-12)).maxCoeff();
}

constexpr double kTolerance = 1e-6;
constexpr double kSecondOrderTolerance = 1e-10;

template <class Layer>
void check(const json& d, Layer& layer, double& worst, double& worst_hvp) {
  constexpr bool lstm = std::tuple_size_v<typename Layer::State> == 2;  // {h, c}
  BOOST_TEST_REQUIRE(lstm == (d["kind"] == "lstm"));
  // Parameters: PyTorch's names in PyTorch's order and shapes, set to PyTorch's values.
  const auto params = layer.named_parameters();
  std::vector<std::string> names;
  Index torch_count = 0;
  for (const auto& [name, value] : d["params"].items()) {
    names.push_back(name);
    torch_count += to_matrix(value).size();
  }
  BOOST_TEST_REQUIRE(names.size() == params.size());
  for (std::size_t k = 0; k < names.size(); ++k) {
    const M v = to_matrix(d["params"][names[k]]);
    BOOST_TEST(params[k]->name == names[k]);
    BOOST_TEST(params[k]->shape() == (Shape{v.rows(), v.cols()}), names[k]);
    params[k]->value = v;
  }
  BOOST_TEST(layers::parameter_count(params) == torch_count);

  Tape<double> tape;
  std::vector<Var<double>> xs;
  for (const M& x : to_matrices(d["x"])) xs.push_back(tape.input(x, "x"));
  const std::vector<M> h0 = to_matrices(d["h0"]);
  std::vector<M> c0;
  if constexpr (lstm) c0 = to_matrices(d["c0"]);
  typename Layer::Call call;
  std::vector<Var<double>> h0v, c0v;
  for (std::size_t s = 0; s < h0.size(); ++s) {
    typename Layer::State st;
    h0v.push_back(tape.input(h0[s], "h0"));
    st[0] = h0v.back();
    if constexpr (lstm) {
      c0v.push_back(tape.input(c0[s], "c0"));
      st[1] = c0v.back();
    }
    call.initial.push_back(st);
  }
  const std::vector<std::int32_t> lengths = d["lengths"].get<std::vector<std::int32_t>>();
  call.lengths = lengths;
  auto out = layer(tape, xs, call);

  Var<double> loss = tape.constant(M::Zero(1, 1));
  const std::vector<M> r_out = to_matrices(d["r_out"]), r_h = to_matrices(d["r_h"]);
  for (std::size_t t = 0; t < xs.size(); ++t)
    loss = loss + sum(out.outputs[t] * tape.constant(r_out[t]));
  for (std::size_t s = 0; s < out.final_states.size(); ++s) {
    loss = loss + sum(out.final_states[s][0] * tape.constant(r_h[s]));
  }
  if constexpr (lstm) {
    const std::vector<M> r_c = to_matrices(d["r_c"]);
    for (std::size_t s = 0; s < out.final_states.size(); ++s) {
      loss = loss + sum(out.final_states[s][1] * tape.constant(r_c[s]));
    }
  }
  tape.backward(loss);

  const auto note = [&](const char* what, double e) {
    BOOST_TEST(e <= kTolerance, d["name"].get<std::string>()
                                    << " " << what << ": relative error " << e);
    worst = std::max(worst, e);
  };
  note("loss", std::abs(loss.item() - d["loss"].get<double>()) / std::abs(d["loss"].get<double>()));
  const std::vector<M> ref_out = to_matrices(d["out"]), ref_h = to_matrices(d["h_n"]);
  for (std::size_t t = 0; t < xs.size(); ++t)
    note("output", rel_error(out.outputs[t].value(), ref_out[t]));
  for (std::size_t s = 0; s < ref_h.size(); ++s)
    note("h_n", rel_error(out.final_states[s][0].value(), ref_h[s]));
  const std::vector<M> gx = to_matrices(d["grad_x"]), gh = to_matrices(d["grad_h0"]);
  for (std::size_t t = 0; t < xs.size(); ++t) note("grad x", rel_error(xs[t].grad(), gx[t]));
  for (std::size_t s = 0; s < gh.size(); ++s) note("grad h0", rel_error(h0v[s].grad(), gh[s]));
  if constexpr (lstm) {
    const std::vector<M> ref_c = to_matrices(d["c_n"]), gc = to_matrices(d["grad_c0"]);
    for (std::size_t s = 0; s < ref_c.size(); ++s)
      note("c_n", rel_error(out.final_states[s][1].value(), ref_c[s]));
    for (std::size_t s = 0; s < gc.size(); ++s) note("grad c0", rel_error(c0v[s].grad(), gc[s]));
  }
  for (const std::string& n : names) {
    note(("grad " + n).c_str(),
         rel_error(layers::find_parameter(params, n).grad, to_matrix(d["grad_params"][n])));
  }

  // Second order: H·v along PyTorch's direction v, against its double backward. Relative to
  // each tensor's largest element (an elementwise ratio would divide by near-zero entries).
  const json& v = d["hvp_v"];
  const json& hv = d["hvp"];
  for (std::size_t t = 0; t < xs.size(); ++t) tape.set_tangent(xs[t], to_matrix(v["x"][t]));
  for (std::size_t s = 0; s < h0v.size(); ++s) tape.set_tangent(h0v[s], to_matrix(v["h0"][s]));
  if constexpr (lstm) {
    for (std::size_t s = 0; s < c0v.size(); ++s) tape.set_tangent(c0v[s], to_matrix(v["c0"][s]));
  }
  for (const std::string& n : names) layers::find_parameter(params, n).tangent = to_matrix(v[n]);
  tape.hvp(loss, {.accumulate_parameters = false});
  const auto norm_error = [](const Eigen::Ref<const M>& a, const M& b) {
    BOOST_REQUIRE(a.rows() == b.rows() && a.cols() == b.cols());
    return (a - b).cwiseAbs().maxCoeff() / b.cwiseAbs().maxCoeff();
  };
  const auto note2 = [&](const std::string& what, double e) {
    BOOST_TEST(e <= kSecondOrderTolerance, d["name"].get<std::string>()
                                               << " H·v " << what << ": relative error " << e);
    worst_hvp = std::max(worst_hvp, e);
  };
  for (std::size_t t = 0; t < xs.size(); ++t)
    note2("x", norm_error(xs[t].grad_tangent(), to_matrix(hv["x"][t])));
  for (std::size_t s = 0; s < h0v.size(); ++s)
    note2("h0", norm_error(h0v[s].grad_tangent(), to_matrix(hv["h0"][s])));
  if constexpr (lstm) {
    for (std::size_t s = 0; s < c0v.size(); ++s)
      note2("c0", norm_error(c0v[s].grad_tangent(), to_matrix(hv["c0"][s])));
  }
  for (const std::string& n : names) {
    Parameter<double>& p = layers::find_parameter(params, n);
    note2(n, norm_error(tape.param(p).grad_tangent(), to_matrix(hv[n])));
    p.tangent.resize(0, 0);
  }
}

void run_case(const std::string& name) {
  const json d = load(name);
  layers::Rng rng(0);
  const Index input = d["input"].get<Index>(), hidden = d["hidden"].get<Index>();
  const int num_layers = d["num_layers"].get<int>();
  const bool bidirectional = d["bidirectional"].get<bool>();
  double worst = 0, worst_hvp = 0;
  if (d["kind"] == "rnn") {
    const auto act =
        d["nonlinearity"] == "relu" ? layers::Activation::kRelu : layers::Activation::kTanh;
    layers::Rnn<double> net({input, hidden, num_layers, bidirectional, 0.0, act}, rng);
    check(d, net, worst, worst_hvp);
  } else if (d["kind"] == "lstm") {
    layers::Lstm<double> net({input, hidden, num_layers, bidirectional}, rng);
    check(d, net, worst, worst_hvp);
  } else {
    layers::Gru<double> net({input, hidden, num_layers, bidirectional}, rng);
    check(d, net, worst, worst_hvp);
  }
  BOOST_TEST_MESSAGE("parity " << name << ": worst relative error " << worst
                               << ", H·v worst relative error " << worst_hvp);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(parity)

BOOST_AUTO_TEST_CASE(rnn_tanh) { run_case("rnn_tanh"); }
BOOST_AUTO_TEST_CASE(rnn_relu) { run_case("rnn_relu"); }
BOOST_AUTO_TEST_CASE(rnn_tanh_2layer_bidir) { run_case("rnn_tanh_2layer_bidir"); }
BOOST_AUTO_TEST_CASE(rnn_relu_2layer_bidir) { run_case("rnn_relu_2layer_bidir"); }
BOOST_AUTO_TEST_CASE(lstm) { run_case("lstm"); }
BOOST_AUTO_TEST_CASE(lstm_2layer_bidir) { run_case("lstm_2layer_bidir"); }
BOOST_AUTO_TEST_CASE(gru) { run_case("gru"); }
BOOST_AUTO_TEST_CASE(gru_2layer_bidir) { run_case("gru_2layer_bidir"); }
BOOST_AUTO_TEST_CASE(rnn_tanh_2layer_bidir_varlen) { run_case("rnn_tanh_2layer_bidir_varlen"); }
BOOST_AUTO_TEST_CASE(lstm_2layer_bidir_varlen) { run_case("lstm_2layer_bidir_varlen"); }
BOOST_AUTO_TEST_CASE(gru_2layer_bidir_varlen) { run_case("gru_2layer_bidir_varlen"); }

BOOST_AUTO_TEST_SUITE_END()
