// A peephole LSTM, defined in peephole_lstm.hpp on top of the same RecurrentWeights the
// built-in LstmCell uses, plus three peephole vectors.
#include "peephole_lstm.hpp"

#include "cell_demo.hpp"

int main() {
  const bool ok = demo_cell<PeepholeLstmCell<double>>(
      "Peephole LSTM", [](rwd::Index input, rwd::Index hidden, rwd::layers::Rng& rng) {
        return PeepholeLstmCell<double>(input, hidden, rng);
      });
  return ok ? 0 : 1;
}
