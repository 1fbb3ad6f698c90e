// Runs the hand-wired memory cell (memory_cell.hpp) on the lecture's sequence, prints the
// memory and the output at every step, and draws the unrolled graph (memory_cell.svg, or the
// path given as the first argument; .dot works without Graphviz).
#include "memory_cell.hpp"

#include <fstream>
#include <iostream>

using namespace rwd;

int main(int argc, char** argv) {
  MemoryCell<double> cell;
  Tape<double> tape;
  const double inputs[7][3] = {{3, 1, 0},  {4, 1, 0}, {2, 0, 0}, {1, 0, 1},
                               {3, -1, 0}, {6, 1, 0}, {1, 0, 1}};
  std::vector<Var<double>> xs;
  for (const auto& x : inputs)
    xs.push_back(tape.constant((Matrix<double>(1, 3) << x[0], x[1], x[2]).finished(), "x"));
  MemoryCell<double>::State state = layers::zero_state(cell, tape, 1);
  std::cout << "step   x1   x2   x3   memory   output\n";
  for (std::size_t t = 0; t < xs.size(); ++t) {
    auto scope = tape.scope(fmt::format("t{}", t));
    state = cell.step(tape, xs[t], state);
    std::cout << fmt::format("{:>4} {:>4} {:>4} {:>4} {:>8.3f} {:>8.3f}\n", t + 1, inputs[t][0],
                             inputs[t][1], inputs[t][2], state[1].item(), state[0].item());
  }
  const std::string path = argc > 1 ? argv[1] : "memory_cell.svg";
  if (path.ends_with(".dot")) {
    std::ofstream out(path);
    write_dot(tape, out, {.title = "hand-wired memory cell"});
  } else if (can_render()) {
    render(tape, path, "", {.title = "hand-wired memory cell"});
  } else {
    std::cout << "(no Graphviz library in this build: pass a .dot path to get the graph)\n";
    return 0;
  }
  std::cout << "graph: " << path << "\n";
}
