// Training that survives a crash: a truncated-BPTT loop over an endless stream writes a
// checkpoint every few chunks (parameters, Adam's state, the step, the generator that draws the
// data, and the recurrent state carried between chunks). A second "process" (a fresh model,
// optimizer and generator) resumes from the newest checkpoint and must end with the same weights
// as the run that never stopped, bit for bit; the program exits non-zero otherwise.
//
//   resumable_training [--folder DIR]   (default: a temporary folder, removed at the end)
#include <cstring>
#include <filesystem>
#include <iostream>
#include <rewind/rewind.hpp>

using namespace rwd;
namespace fs = std::filesystem;

namespace {

constexpr int kChunks = 40, kChunk = 10, kBatch = 8, kHidden = 16, kEvery = 5;

struct Run {
  layers::Rng init{1};
  layers::LstmCell<float> cell{{.input = 1, .hidden = kHidden}, init};
  layers::Linear<float> head{{.in = kHidden, .out = 1}, init};
  std::vector<Parameter<float>*> params = all_parameters(cell, head);
  optim::Adam<float> adam{params, {.lr = 1e-2}};
  layers::Rng data{7};  // the stream: each chunk's noisy sine values come from it
  std::array<Matrix<float>, 2> carried{Matrix<float>::Zero(kBatch, kHidden),
                                       Matrix<float>::Zero(kBatch, kHidden)};

  static std::vector<Parameter<float>*> all_parameters(layers::LstmCell<float>& cell,
                                                       layers::Linear<float>& head) {
    auto all = cell.named_parameters();
    layers::append(all, head.named_parameters());
    return all;
  }

  // One chunk of truncated BPTT: predict x_{t+1} from x_≤t, the state carried in.
  void chunk(Tape<float>& tape, long k) {
    tape.clear();
    std::normal_distribution<float> noise(0, 0.05f);
    std::vector<Matrix<float>> values;
    for (int t = 0; t <= kChunk; ++t) {
      Matrix<float> x(kBatch, 1);
      for (int b = 0; b < kBatch; ++b)
        x(b, 0) = std::sin(0.3f * static_cast<float>(k * kChunk + t) + static_cast<float>(b)) +
                  noise(data);
      values.push_back(x);
    }
    std::vector<Var<float>> xs, ys;
    for (int t = 0; t < kChunk; ++t) {
      xs.push_back(tape.constant(values[static_cast<std::size_t>(t)]));
      ys.push_back(tape.constant(values[static_cast<std::size_t>(t + 1)]));
    }
    const auto out =
        layers::unroll(cell, tape, xs, {tape.constant(carried[0]), tape.constant(carried[1])});
    std::vector<Var<float>> predictions;
    for (const auto& y : out.outputs) predictions.push_back(head(tape, y));
    adam.zero_grad();
    tape.backward(mse(concat_rows(predictions), concat_rows(ys)));
    adam.step();
    carried = {out.state[0].value(), out.state[1].value()};
  }

  optim::TrainingState<float> state(long k) const {
    return {.step = k,
            .rng = optim::engine_state(data),
            .tensors = {{"h", carried[0]}, {"c", carried[1]}}};
  }
};

}  // namespace

int main(int argc, char** argv) {
  fs::path folder = fs::temp_directory_path() / fmt::format("rewind-resumable-{}", ::getpid());
  const bool temporary = !(argc == 3 && std::strcmp(argv[1], "--folder") == 0);
  if (!temporary) folder = argv[2];
  const optim::CheckpointDir checkpoints(folder, 2);
  Tape<float> tape;

  // The run that never stops, writing a checkpoint every kEvery chunks.
  Run whole;
  for (long k = 1; k <= kChunks; ++k) {
    whole.chunk(tape, k - 1);
    if (k % kEvery == 0 && k < 27)
      checkpoints.save<float>(whole.params, whole.adam, whole.state(k));
  }
  // The crash: say the process died at chunk 27. A new process builds everything afresh...
  Run resumed;
  std::filesystem::path from;
  const auto st = checkpoints.load_latest<float>(resumed.params, resumed.adam, nullptr, &from);
  if (!st) {
    std::cerr << "no checkpoint found in " << folder << "\n";
    return 1;
  }
  // ...and takes back what the loop itself keeps: the generator and the carried state.
  optim::set_engine_state(resumed.data, st->rng);
  resumed.carried = {st->tensor("h"), st->tensor("c")};
  std::cout << "resumed from " << from.filename().string() << " at chunk " << st->step << "\n";
  for (long k = st->step + 1; k <= kChunks; ++k) resumed.chunk(tape, k - 1);

  bool same = true;
  for (std::size_t i = 0; i < whole.params.size(); ++i)
    same = same && (whole.params[i]->value.array() == resumed.params[i]->value.array()).all();
  std::cout << "kept: " << checkpoints.list().size() << " checkpoints; after " << kChunks
            << " chunks the resumed weights " << (same ? "equal" : "DIFFER FROM")
            << " the uninterrupted run's, bit for bit\n";
  if (temporary) fs::remove_all(folder);
  return same ? 0 : 1;
}
