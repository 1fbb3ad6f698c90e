// What every custom-cell example shows: the cell unrolled, gradient-checked through time with
// respect to inputs, initial state and parameters, and stacked into a 2-layer bidirectional
// variable-length layer. Uses only the public API.
#pragma once

#include <iostream>
#include <rewind/rewind.hpp>

template <class Cell, class Make>
bool demo_cell(const std::string& title, Make make) {
  using namespace rwd;
  using M = Matrix<double>;
  layers::Rng rng(7);
  Cell cell = make(/*input=*/3, /*hidden=*/4, rng);
  const Index batch = 2, steps = 5;

  // 1. Unroll: one tensor per step, batch in rows.
  std::vector<NamedTensor> inputs;
  for (Index t = 0; t < steps; ++t) inputs.push_back({fmt::format("x{}", t), M::Random(batch, 3)});
  for (std::size_t k = 0; k < cell.state_sizes().size(); ++k) {
    inputs.push_back({fmt::format("state0_{}", k), M::Random(batch, cell.state_sizes()[k])});
  }
  const auto run = [&](Tape<double>& tape, std::span<const Var<double>> in) {
    typename Cell::State s0;
    for (std::size_t k = 0; k < s0.size(); ++k) s0[k] = in[static_cast<std::size_t>(steps) + k];
    auto out = layers::unroll(cell, tape, in.first(static_cast<std::size_t>(steps)), s0);
    return mean(square(concat_rows(out.outputs)));
  };
  Tape<double> tape;
  std::vector<Var<double>> vars;
  for (const auto& t : inputs) vars.push_back(tape.input(t.value, t.name));
  std::cout << title << ": unrolled " << steps << " steps, loss " << run(tape, vars).item() << ", "
            << tape.size() << " nodes on the tape\n";

  // 2. Gradient check through time, every input, initial state and parameter.
  const GradcheckReport report = gradcheck(run, inputs, cell.named_parameters());
  std::cout << report;

  // 3. The same cell type as a 2-layer bidirectional layer over sequences of lengths 5 and 3.
  layers::Sequence<Cell> stack(title, {.num_layers = 2, .bidirectional = true}, 3,
                               [&](int, bool, Index input) { return make(input, 4, rng); });
  tape.clear();
  std::vector<Var<double>> xs;
  for (Index t = 0; t < steps; ++t) xs.push_back(tape.constant(M::Random(batch, 3)));
  const std::vector<std::int32_t> lengths{5, 3};
  auto out = stack(tape, xs, {.lengths = lengths});
  std::cout << "2-layer bidirectional: output per step " << to_string(out.outputs[0].shape())
            << ", " << out.final_states.size() << " final states, "
            << layers::parameter_count(stack.named_parameters()) << " parameters\n\n";
  return report.passed();
}
