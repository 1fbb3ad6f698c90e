// The shipped variant cells (examples/cells/<variant>.cell) against the same recurrences written in
// plain PyTorch: outputs, final states, the gradient of a loss over every step and state with
// respect to every input, initial state and parameter, and a Hessian-vector product.
// Reference data: tests/data/variant_*.json, made by tools/torch_variants.py.
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <rewind/rewind.hpp>

#include "support.hpp"

using namespace rwd;
using M = Matrix<double>;
using json = nlohmann::ordered_json;  // keeps the file's parameter order

namespace {

std::vector<M> to_matrices(const json& list) {
  std::vector<M> out;
  for (const json& m : list) out.push_back(test::to_matrix(m));
  return out;
}

// max |a - b| / max |b|: relative to the tensor's largest element; where b is zero (the gradient
// of an initial state the cell never reads), max |a| itself.
double error(const Eigen::Ref<const M>& a, const M& b) {
  BOOST_REQUIRE(a.rows() == b.rows() && a.cols() == b.cols());
  const double scale = b.cwiseAbs().maxCoeff();
  return (a - b).cwiseAbs().maxCoeff() / (scale == 0 ? 1.0 : scale);
}

constexpr double kTolerance = 1e-10;

// What a run recorded, in the fixture's order: inputs, initial states (h_n order), per-step
// outputs of the top layer, final states, and the parameters by the fixture's names.
struct Recorded {
  std::vector<Var<double>> xs, initial, outputs, finals;
  std::vector<Parameter<double>*> params;
};

// Sets the parameters to the fixture's values (by name; every one must be there, shaped alike).
void load_fixture_parameters(const json& d, const std::vector<Parameter<double>*>& params) {
  BOOST_TEST_REQUIRE(params.size() == d["params"].size());
  for (Parameter<double>* p : params) {
    const M v = test::to_matrix(d["params"].at(p->name));
    BOOST_TEST_REQUIRE(p->shape() == (Shape{v.rows(), v.cols()}), p->name);
    p->value = v;
  }
}

// The loss the fixture formed, its gradients and an H·v, against PyTorch's.
void compare(const std::string& name, const json& d, Tape<double>& tape, const Recorded& r) {
  Var<double> loss = tape.constant(M::Zero(1, 1));
  const std::vector<M> r_out = to_matrices(d["r_out"]), r_state = to_matrices(d["r_state"]);
  BOOST_TEST_REQUIRE(r.finals.size() == r_state.size());
  for (std::size_t t = 0; t < r.xs.size(); ++t)
    loss = loss + sum(r.outputs[t] * tape.constant(r_out[t]));
  for (std::size_t k = 0; k < r.finals.size(); ++k)
    loss = loss + sum(r.finals[k] * tape.constant(r_state[k]));
  tape.backward(loss);

  double worst = 0;
  const auto note = [&](const std::string& what, double e) {
    BOOST_TEST(e <= kTolerance, name << " " << what << ": relative error " << e);
    worst = std::max(worst, e);
  };
  note("loss", std::abs(loss.item() - d["loss"].get<double>()) / std::abs(d["loss"].get<double>()));
  const std::vector<M> out = to_matrices(d["out"]), fin = to_matrices(d["states"]);
  for (std::size_t t = 0; t < r.xs.size(); ++t) note("output", error(r.outputs[t].value(), out[t]));
  for (std::size_t k = 0; k < fin.size(); ++k)
    note("final state", error(r.finals[k].value(), fin[k]));
  const std::vector<M> gx = to_matrices(d["grad_x"]), gs = to_matrices(d["grad_states0"]);
  for (std::size_t t = 0; t < r.xs.size(); ++t) note("grad x", error(r.xs[t].grad(), gx[t]));
  for (std::size_t k = 0; k < gs.size(); ++k) note("grad state", error(r.initial[k].grad(), gs[k]));
  for (Parameter<double>* p : r.params)
    note("grad " + p->name, error(p->grad, test::to_matrix(d["grad_params"].at(p->name))));

  // H·v along PyTorch's direction, against its double backward.
  const json& v = d["hvp_v"];
  const json& hv = d["hvp"];
  for (std::size_t t = 0; t < r.xs.size(); ++t)
    tape.set_tangent(r.xs[t], test::to_matrix(v["x"][t]));
  for (std::size_t k = 0; k < r.initial.size(); ++k)
    tape.set_tangent(r.initial[k], test::to_matrix(v["states0"][k]));
  for (Parameter<double>* p : r.params) p->tangent = test::to_matrix(v["params"].at(p->name));
  tape.hvp(loss, {.accumulate_parameters = false});
  for (std::size_t t = 0; t < r.xs.size(); ++t)
    note("H·v x", error(r.xs[t].grad_tangent(), test::to_matrix(hv["x"][t])));
  for (std::size_t k = 0; k < r.initial.size(); ++k)
    note("H·v state", error(r.initial[k].grad_tangent(), test::to_matrix(hv["states0"][k])));
  for (Parameter<double>* p : r.params) {
    note("H·v " + p->name,
         error(tape.param(*p).grad_tangent(), test::to_matrix(hv["params"].at(p->name))));
    p->tangent.resize(0, 0);
  }
  BOOST_TEST_MESSAGE(name << ": largest relative error " << worst);
}

// One cell unrolled (variant_<name>.json), or with `layers` 2 a Sequence of two
// (variant_<name>_2layers.json: layer 1 reads layer 0's h; parameters named _l0, _l1).
void check_variant(const std::string& name, int layers = 1) {
  const std::string file = "/variant_" + name + (layers == 1 ? "" : "_2layers") + ".json";
  std::ifstream in(std::string(REWIND_TEST_DATA) + file);
  BOOST_TEST_REQUIRE(in.good(), "no reference data for " << name);
  const json d = json::parse(in);
  BOOST_TEST_REQUIRE(d.value("layers", 1) == layers);
  const auto program =
      layers::load_cell_file(std::filesystem::path(REWIND_EXAMPLES) / "cells" / (name + ".cell"));
  const auto input = d["input"].get<Index>(), hidden = d["hidden"].get<Index>();
  layers::Rng rng(1);
  layers::with_state_count(*program, [&](auto n) {
    using Cell = layers::FileCell<double, decltype(n)::value>;
    using State = typename Cell::State;
    constexpr std::size_t kStates = std::tuple_size_v<State>;
    Tape<double> tape;
    Recorded r;
    for (const M& x : to_matrices(d["x"])) r.xs.push_back(tape.input(x, "x"));
    const std::vector<M> s0 = to_matrices(d["states0"]);
    BOOST_TEST_REQUIRE(s0.size() == kStates * static_cast<std::size_t>(layers));
    std::vector<State> initial(static_cast<std::size_t>(layers));
    for (std::size_t k = 0; k < s0.size(); ++k) {
      r.initial.push_back(tape.input(s0[k], "s0"));
      initial[k / kStates][k % kStates] = r.initial.back();
    }
    const auto finish = [&](const std::vector<Var<double>>& outputs,
                            const std::vector<State>& finals) {
      r.outputs = outputs;
      for (const State& f : finals) r.finals.insert(r.finals.end(), f.begin(), f.end());
      compare(name + (layers == 1 ? "" : " (2 layers)"), d, tape, r);
    };
    if (layers == 1) {
      Cell cell(program, input, hidden, rng);
      r.params = cell.named_parameters();
      load_fixture_parameters(d, r.params);
      State state = initial[0];
      const auto run = layers::unroll(cell, tape, std::span<const Var<double>>(r.xs), state);
      finish(run.outputs, {run.state});
    } else {
      layers::Sequence<Cell> stack(
          program->name, {.num_layers = layers}, input,
          [&](int, bool, Index i) { return Cell(program, i, hidden, rng); });
      r.params = stack.named_parameters();
      load_fixture_parameters(d, r.params);
      const auto run = stack(tape, r.xs, {.initial = initial});
      finish(run.outputs, run.final_states);
    }
  });
}

}  // namespace

BOOST_AUTO_TEST_SUITE(variants)

BOOST_AUTO_TEST_CASE(deltanet_matches_pytorch) { check_variant("deltanet"); }
BOOST_AUTO_TEST_CASE(gated_deltanet_matches_pytorch) { check_variant("gated_deltanet"); }
BOOST_AUTO_TEST_CASE(mingru_matches_pytorch) { check_variant("mingru"); }
BOOST_AUTO_TEST_CASE(minlstm_matches_pytorch) { check_variant("minlstm"); }
BOOST_AUTO_TEST_CASE(mlstm_matches_pytorch) { check_variant("mlstm"); }
BOOST_AUTO_TEST_CASE(slstm_matches_pytorch) { check_variant("slstm"); }
BOOST_AUTO_TEST_CASE(lru_matches_pytorch) { check_variant("lru"); }
BOOST_AUTO_TEST_CASE(s6_matches_pytorch) { check_variant("s6"); }
BOOST_AUTO_TEST_CASE(gla_matches_pytorch) { check_variant("gla"); }
BOOST_AUTO_TEST_CASE(two_layer_stacks_match_pytorch) {
  for (const char* name :
       {"mingru", "minlstm", "lru", "slstm", "s6", "gla", "deltanet", "mlstm", "gated_deltanet"}) {
    BOOST_TEST_CONTEXT(name) { check_variant(name, 2); }
  }
}

// Each variant in a 2-layer bidirectional Sequence over sequences of their own lengths: a
// sequence in a padded batch gives what it gives alone, the gradient reaches every parameter,
// and the weights saved and loaded into a stack drawn otherwise give the same outputs, bit for bit.
BOOST_AUTO_TEST_CASE(every_variant_stacks_bidirectionally_over_variable_lengths_and_round_trips) {
  for (const char* name :
       {"mingru", "minlstm", "lru", "slstm", "s6", "gla", "deltanet", "mlstm", "gated_deltanet"}) {
    BOOST_TEST_CONTEXT(name) {
      const auto program = layers::load_cell_file(std::filesystem::path(REWIND_EXAMPLES) / "cells" /
                                                  (std::string(name) + ".cell"));
      layers::with_state_count(*program, [&](auto n) {
        using Cell = layers::FileCell<double, decltype(n)::value>;
        const Index in = 3, hidden = 8, batch = 3, steps = 5;
        const auto make = [&](std::uint64_t seed) {
          layers::Rng rng(seed);
          return layers::Sequence<Cell>(
              program->name, {.num_layers = 2, .bidirectional = true}, in,
              [&](int, bool, Index i) { return Cell(program, i, hidden, rng); });
        };
        auto net = make(1);
        layers::Rng rng(2);
        std::vector<M> xs;
        for (Index t = 0; t < steps; ++t)
          xs.push_back(layers::uniform<double>(batch, in, 1.0, rng));
        const std::vector<std::int32_t> lengths{5, 2, 4};
        const auto outputs = [&](layers::Sequence<Cell>& stack, Tape<double>& tape, Index row,
                                 Index count) {
          std::vector<Var<double>> v;
          for (Index t = 0; t < count; ++t)
            v.push_back(tape.constant(row < 0 ? xs[static_cast<std::size_t>(t)]
                                              : M(xs[static_cast<std::size_t>(t)].row(row))));
          return row < 0 ? stack(tape, v, {.lengths = lengths}) : stack(tape, v);
        };
        Tape<double> tape;
        const auto run = outputs(net, tape, -1, steps);
        Tape<double> alone_tape;
        const auto alone = outputs(net, alone_tape, 1, 2);
        for (Index t = 0; t < 2; ++t) {
          const auto k = static_cast<std::size_t>(t);
          BOOST_TEST((run.outputs[k].value().row(1) - alone.outputs[k].value().row(0))
                         .cwiseAbs()
                         .maxCoeff() < 1e-12);
        }
        tape.backward(sum(square(concat_rows(run.outputs))));
        for (const Parameter<double>* p : net.named_parameters()) {
          BOOST_TEST_REQUIRE(p->grad.size() == p->value.size(), p->name);
          BOOST_TEST(p->grad.allFinite(), p->name);
          BOOST_TEST(p->grad.cwiseAbs().maxCoeff() > 0, p->name << " gets no gradient");
        }
        const auto path = std::filesystem::temp_directory_path() /
                          fmt::format("rewind-variant-{}-{}.safetensors", name, ::getpid());
        layers::save_parameters(path, net.named_parameters());
        auto other = make(7);
        layers::load_parameters(path, other.named_parameters());
        std::filesystem::remove(path);
        Tape<double> other_tape;
        const auto again = outputs(other, other_tape, -1, steps);
        for (Index t = 0; t < steps; ++t) {
          const auto k = static_cast<std::size_t>(t);
          BOOST_TEST((again.outputs[k].value().array() == run.outputs[k].value().array()).all());
        }
      });
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
