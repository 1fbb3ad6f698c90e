// A minimal gated unit, defined in mgu.hpp in a few lines of primitive ops, gets unrolling,
// BPTT, gradient checks and stacking for free.
#include "mgu.hpp"

#include "cell_demo.hpp"

int main() {
  const bool ok = demo_cell<MguCell<double>>(
      "MGU", [](rwd::Index input, rwd::Index hidden, rwd::layers::Rng& rng) {
        return MguCell<double>(input, hidden, rng);
      });
  return ok ? 0 : 1;
}
