// `rewind train` driven directly: every task and cell runs, training is deterministic, the
// character model beats the unigram entropy, and (slow) the adding problem separates an LSTM
// from a tanh RNN.
#include "train.hpp"

#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "inspect.hpp"

using namespace rwd;
using cli::TrainOptions;

namespace {

cli::TrainResult quiet(TrainOptions o) {
  o.progress = 0;
  std::ostringstream out;
  return cli::train(o, out);
}

// A small text with structure: words from a fixed list in random order.
std::string make_text(const std::filesystem::path& path) {
  const char* words[] = {"the", "quick", "brown",  "fox", "jumps", "over", "lazy", "dog",   "while",
                         "a",   "cat",   "sleeps", "on",  "warm",  "mat",  "and",  "birds", "sing"};
  std::mt19937 rng(1);
  std::string text;
  for (int k = 0; k < 3000; ++k) text += std::string(words[rng() % 18]) + " ";
  std::ofstream(path) << text;
  return path.string();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(train)

BOOST_AUTO_TEST_CASE(every_task_and_cell_trains_a_little) {
  const std::string text = make_text(std::filesystem::temp_directory_path() / "rewind_tasks.txt");
  for (const std::string& task : cli::task_names()) {
    if (cli::is_data_task(task)) continue;  // trained in epochs: the fashion suite below
    for (const char* cell : {"rnn", "lstm", "gru"}) {
      BOOST_TEST_CONTEXT(task << " with " << cell) {
        TrainOptions o{.task = task,
                       .text = text,
                       .cell = cell,
                       .hidden = 16,
                       .layers = 2,
                       .bidirectional = task == "sine",
                       .steps = 20,
                       .batch = 8,
                       .seq_len = 24,
                       .lr = 0.01,
                       .sample = 20};
        const auto r = quiet(o);
        BOOST_TEST(std::isfinite(r.final_loss));
        BOOST_TEST(r.curve.size() == 20u);
        BOOST_TEST(r.parameters > 0);
        if (task == "text") BOOST_TEST(r.sample.size() == 21u);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(same_seed_same_build_gives_a_bit_identical_curve) {
  TrainOptions o{.task = "copy",
                 .cell = "gru",
                 .hidden = 32,
                 .steps = 60,
                 .batch = 16,
                 .seq_len = 30,
                 .lr = 0.01,
                 .seed = 7};
  const auto a = quiet(o), b = quiet(o);
  BOOST_REQUIRE(a.curve.size() == b.curve.size());
  for (std::size_t k = 0; k < a.curve.size(); ++k) {
    BOOST_TEST(a.curve[k].loss == b.curve[k].loss);  // exact, not approximate
    BOOST_TEST(a.curve[k].accuracy == b.curve[k].accuracy);
  }
  o.seed = 8;
  BOOST_TEST(quiet(o).curve.back().loss != a.curve.back().loss);
}

// The LSTM and GRU written as files record the built-in cells' tapes and draw their weights in
// the same order: training gives the same loss curve, bit for bit.
BOOST_AUTO_TEST_CASE(file_cells_train_to_the_builtin_cells_loss_curve) {
  for (const char* cell : {"lstm", "gru"}) {
    BOOST_TEST_CONTEXT(cell) {
      TrainOptions o{.task = "adding",
                     .cell = cell,
                     .hidden = 16,
                     .layers = 2,
                     .steps = 40,
                     .batch = 8,
                     .seq_len = 20,
                     .lr = 0.01,
                     .seed = 3};
      const auto builtin = quiet(o);
      o.cell_file = fmt::format("{}/cells/{}.cell", REWIND_EXAMPLES, cell);
      const auto file = quiet(o);
      BOOST_REQUIRE(builtin.curve.size() == file.curve.size());
      for (std::size_t k = 0; k < builtin.curve.size(); ++k)
        BOOST_TEST(builtin.curve[k].loss == file.curve[k].loss);  // exact
      BOOST_TEST(builtin.parameters == file.parameters);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_character_lstm_beats_the_unigram_entropy) {
  const std::string text = make_text(std::filesystem::temp_directory_path() / "rewind_chars.txt");
  const auto r = quiet({.task = "text",
                        .text = text,
                        .cell = "lstm",
                        .hidden = 64,
                        .steps = 300,
                        .batch = 16,
                        .seq_len = 32,
                        .lr = 0.01,
                        .sample = 100});
  BOOST_TEST_MESSAGE("char LSTM: loss " << r.final_loss << " nats/char, unigram entropy "
                                        << r.baseline);
  BOOST_TEST(r.final_loss < 0.5 * r.baseline);
}

BOOST_AUTO_TEST_CASE(sine_prediction_learns) {
  const auto r = quiet({.task = "sine",
                        .cell = "gru",
                        .hidden = 32,
                        .steps = 300,
                        .batch = 16,
                        .seq_len = 40,
                        .lr = 0.01});
  BOOST_TEST_MESSAGE("sine GRU: mse " << r.final_loss << ", predicting 0 gives " << r.baseline);
  BOOST_TEST(r.final_loss < 0.05 * r.baseline);
}

BOOST_AUTO_TEST_CASE(bad_options_are_refused) {
  BOOST_CHECK_THROW(quiet({.task = "nope"}), UsageError);
  BOOST_CHECK_THROW(quiet({.cell = "transformer"}), UsageError);
  BOOST_CHECK_THROW(quiet({.optimizer = "lbfgs"}), UsageError);
  BOOST_CHECK_THROW(quiet({.hidden = 0}), UsageError);
  BOOST_CHECK_THROW(quiet({.task = "text", .text = "/nonexistent/file.txt"}), FileError);
}

BOOST_AUTO_TEST_CASE(a_tanh_rnn_forgets_faster_than_an_lstm_with_an_open_forget_gate) {
  std::ostringstream out;
  const auto dir = std::filesystem::temp_directory_path();
  const cli::ModelOptions base{.input = 8, .hidden = 32, .batch = 16, .steps = 60};
  cli::ModelOptions rnn = base, lstm = base, lstm_pytorch = base;
  rnn.cell = "rnn";
  lstm.cell = lstm_pytorch.cell = "lstm";
  lstm.forget_bias = 1;
  const double r =
      cli::diagnose(rnn, {.output = (dir / "rewind_d_rnn").string()}, out).series[0].decay_per_step;
  const double l = cli::diagnose(lstm, {.output = (dir / "rewind_d_lstm").string()}, out)
                       .series[0]
                       .decay_per_step;
  const double p = cli::diagnose(lstm_pytorch, {.output = (dir / "rewind_d_lstm0").string()}, out)
                       .series[0]
                       .decay_per_step;
  BOOST_TEST_MESSAGE("decay per step: tanh RNN " << r << ", LSTM (forget bias 1) " << l
                                                 << ", LSTM (PyTorch init) " << p);
  BOOST_TEST(r < 0.8);      // exponential decay
  BOOST_TEST(l > r + 0.1);  // much slower with the forget gate open
}

BOOST_AUTO_TEST_SUITE_END()

// The evidence that training works on the problem LSTMs were invented for. Slow: run with
// REWIND_SLOW=1 tools/test, or `build/tests/tools_test --run_test=adding_problem`.
BOOST_AUTO_TEST_SUITE(adding_problem, *boost::unit_test::label("slow"))

BOOST_AUTO_TEST_CASE(lstm_solves_it_where_a_tanh_rnn_cannot) {
  const TrainOptions base{.task = "adding",
                          .hidden = 64,
                          .steps = 6000,
                          .batch = 64,
                          .seq_len = 50,
                          .optimizer = "adam",
                          .lr = 1e-3,
                          .clip = 5,
                          .seed = 1,
                          .log_every = 500};
  TrainOptions lstm = base, rnn = base;
  lstm.cell = "lstm";
  rnn.cell = "rnn";
  const auto a = quiet(lstm), b = quiet(rnn);
  for (std::size_t k = 0; k < a.curve.size(); ++k) {
    BOOST_TEST_MESSAGE("step " << a.curve[k].step << "  lstm " << a.curve[k].loss << "  rnn "
                               << b.curve[k].loss);
  }
  BOOST_TEST(a.final_loss < 0.01);
  BOOST_TEST(b.final_loss > 0.1);  // the 0.167 baseline, give or take
}

BOOST_AUTO_TEST_SUITE_END()

// Fashion-MNIST from Debian's dataset-fashion-mnist (tools/test installs it; without it these
// tests pass with a message saying they were skipped).
namespace {

bool have_fashion() {
  if (layers::has_fashion_mnist()) return true;
  BOOST_TEST_MESSAGE("skipped: Debian's dataset-fashion-mnist is not installed ("
                     << layers::kFashionMnistDir << "); tools/setup --data installs it");
  return false;
}

// The tensors of a weights file, by name, as bytes.
std::map<std::string, std::vector<std::uint8_t>> tensor_bytes(const std::string& path) {
  std::vector<std::uint8_t> bytes;
  const layers::TensorFile f = layers::read_tensor_file(path, bytes);
  std::map<std::string, std::vector<std::uint8_t>> out;
  for (const auto& e : f.entries)
    out[e.name].assign(f.data.begin() + static_cast<std::ptrdiff_t>(e.begin),
                       f.data.begin() + static_cast<std::ptrdiff_t>(e.end));
  return out;
}

std::filesystem::path scratch(const std::string& name) {
  const auto dir =
      std::filesystem::temp_directory_path() / fmt::format("rewind_fashion_test_{}", ::getpid());
  std::filesystem::create_directories(dir);
  return dir / name;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(fashion)

// The bar for CI: one epoch over 2 000 images, seeded. (Seeds 1 to 6 of this setting
// gave 0.697 to 0.728 when it was chosen; the default seed is 1.)
BOOST_AUTO_TEST_CASE(a_gru_reading_rows_passes_70_percent_after_one_epoch_of_2000_images) {
  if (!have_fashion()) return;
  const auto r = quiet({.task = "fashion-rows",
                        .cell = "gru",
                        .hidden = 128,
                        .batch = 10,
                        .lr = 1e-2,
                        .epochs = 1,
                        .validation = 1000,
                        .subset = 2000});
  BOOST_TEST_MESSAGE("fashion-rows, GRU 128, 2 000 images, one epoch: test accuracy "
                     << r.test_accuracy << ", validation " << r.epochs.at(0).validation);
  BOOST_TEST(r.epochs.size() == 1u);
  BOOST_TEST(r.best_epoch == 1);
  BOOST_TEST(r.test_accuracy >= 0.70);
  BOOST_TEST(r.class_accuracy.size() == 10u);
}

BOOST_AUTO_TEST_CASE(a_run_resumed_mid_epoch_is_the_uninterrupted_run) {
  if (!have_fashion()) return;
  // 300 images in batches of 20: 15 steps an epoch; checkpoints every 7 steps, the one at step
  // 22 in the middle of the second epoch, with the best weights of epoch 1 in it.
  const auto dir = scratch("resume");
  TrainOptions o{.task = "fashion-rows",
                 .cell = "gru",
                 .hidden = 12,
                 .batch = 20,
                 .lr = 5e-3,
                 .save = scratch("whole.safetensors").string(),
                 .checkpoint_every = 11,
                 .checkpoint_dir = dir.string(),
                 .keep = 0,
                 .epochs = 3,
                 .validation = 200,
                 .subset = 300};
  const auto whole = quiet(o);
  o.save = scratch("resumed.safetensors").string();
  o.checkpoint_every = 0;
  o.resume = (dir / "step-00000022.safetensors").string();
  const auto resumed = quiet(o);
  BOOST_TEST(whole.epochs.size() == 3u);
  BOOST_TEST(resumed.epochs.size() == 3u);
  for (std::size_t e = 0; e < 3; ++e) {
    BOOST_TEST(resumed.epochs[e].loss == whole.epochs[e].loss);
    BOOST_TEST(resumed.epochs[e].validation == whole.epochs[e].validation);
  }
  BOOST_TEST(resumed.best_epoch == whole.best_epoch);
  BOOST_TEST(resumed.test_accuracy == whole.test_accuracy);
  BOOST_TEST((tensor_bytes(o.save) == tensor_bytes(scratch("whole.safetensors").string())));
  std::filesystem::remove_all(scratch("").parent_path());
}

// The 784-step task under a memory budget: checkpointed BPTT's gradients are plain BPTT's, so
// an epoch of them gives the same weights, bit for bit.
BOOST_AUTO_TEST_CASE(checkpointed_bptt_over_784_pixels_trains_plain_bptts_weights) {
  if (!have_fashion()) return;
  TrainOptions o{.task = "fashion-pixels",
                 .cell = "lstm",
                 .hidden = 8,
                 .batch = 16,
                 .lr = 1e-2,
                 .save = scratch("plain.safetensors").string(),
                 .epochs = 1,
                 .validation = 0,
                 .subset = 48};
  const auto plain = quiet(o);
  o.save = scratch("budget.safetensors").string();
  o.memory_budget = 256 << 10;  // 256 KiB: one step's recording and about 120 of the 784 states
  const auto budget = quiet(o);
  BOOST_TEST(budget.epochs.at(0).loss == plain.epochs.at(0).loss);
  BOOST_TEST((tensor_bytes(o.save) == tensor_bytes(scratch("plain.safetensors").string())));
  BOOST_TEST(budget.test_accuracy == plain.test_accuracy);
  std::filesystem::remove_all(scratch("").parent_path());
}

BOOST_AUTO_TEST_CASE(evaluate_gives_the_test_accuracy_training_reported) {
  if (!have_fashion()) return;
  const std::string weights = scratch("w.safetensors").string();
  const auto r = quiet({.task = "fashion-permuted",
                        .cell = "rnn",
                        .hidden = 8,
                        .batch = 32,
                        .seed = 3,
                        .save = weights,
                        .epochs = 2,
                        .validation = 100,
                        .subset = 96});
  std::ostringstream out;
  const std::string stem = scratch("confusion").string();
  const double a = cli::evaluate({.weights = weights, .batch = 333, .confusion = stem}, out);
  BOOST_TEST(a == r.test_accuracy);
  BOOST_TEST(out.str().find("fashion-permuted: test accuracy") != std::string::npos);
  std::ifstream csv(stem + ".csv");
  std::string header;
  std::getline(csv, header);
  BOOST_TEST(header ==
             "true,T-shirt/top,Trouser,Pullover,Dress,Coat,Sandal,Shirt,Sneaker,Bag,Ankle "
             "boot,accuracy");
  // The rows' counts add up to the test set.
  long total = 0;
  for (std::string line; std::getline(csv, line);) {
    std::istringstream fields(line);
    std::string field;
    std::getline(fields, field, ',');
    for (int k = 0; k < 10 && std::getline(fields, field, ','); ++k) total += std::stol(field);
  }
  BOOST_TEST(total == 10000);
  std::ifstream svg(stem + ".svg");
  const std::string picture((std::istreambuf_iterator<char>(svg)), {});
  BOOST_TEST(picture.starts_with("<svg"));
  BOOST_TEST(picture.find("Ankle boot") != std::string::npos);

  // Weights of a generated task are not evaluated.
  const std::string adding = scratch("adding.safetensors").string();
  quiet({.task = "adding", .hidden = 4, .steps = 2, .seq_len = 4, .save = adding});
  BOOST_CHECK_EXCEPTION(
      cli::evaluate({.weights = adding}, out), UsageError, [&](const UsageError& e) {
        return std::string(e.what()) == fmt::format(
                                            "evaluate: '{}' was trained on 'adding', not a data "
                                            "task (fashion-rows, fashion-pixels, "
                                            "fashion-permuted); give --task",
                                            adding);
      });
  std::filesystem::remove_all(scratch("").parent_path());
}

// A file cell trains on the data like a built-in one, and its weights evaluate with the cell
// file their metadata names.
BOOST_AUTO_TEST_CASE(a_file_cell_trains_and_evaluates_on_fashion_rows) {
  if (!have_fashion()) return;
  const std::string weights = scratch("mingru.safetensors").string();
  const auto r = quiet({.task = "fashion-rows",
                        .cell = "mingru",
                        .cell_file = std::string(REWIND_EXAMPLES) + "/cells/mingru.cell",
                        .hidden = 16,
                        .batch = 20,
                        .lr = 1e-2,
                        .save = weights,
                        .epochs = 1,
                        .validation = 100,
                        .subset = 400});
  BOOST_TEST(r.epochs.size() == 1u);
  BOOST_TEST(r.test_accuracy > 0.3);  // ten classes: 0.1 by chance
  std::ostringstream out;
  BOOST_TEST(cli::evaluate({.weights = weights}, out) == r.test_accuracy);
  BOOST_TEST(out.str().find("(mingru, 1 layer, hidden 16) on fashion-rows") != std::string::npos);
  std::filesystem::remove_all(scratch("").parent_path());
}

BOOST_AUTO_TEST_CASE(data_options_are_checked) {
  BOOST_CHECK_EXCEPTION(quiet({.task = "adding", .steps = 2, .epochs = 3}), UsageError,
                        [](const UsageError& e) {
                          return std::string(e.what()) ==
                                 "--epochs is for the data tasks (fashion-*); 'adding' trains "
                                 "--steps";
                        });
  const auto empty = scratch("empty");
  std::filesystem::create_directories(empty);
  BOOST_CHECK_THROW(quiet({.task = "fashion-rows", .data = empty.string()}), FileError);
  if (have_fashion()) {
    BOOST_CHECK_THROW(quiet({.task = "fashion-rows", .validation = 60000}), UsageError);
    BOOST_CHECK_THROW(quiet({.task = "fashion-rows", .subset = 56000}), UsageError);
    BOOST_CHECK_EXCEPTION(quiet({.task = "fashion-rows", .batch = 64, .subset = 50}), UsageError,
                          [](const UsageError& e) {
                            return std::string(e.what()) ==
                                   "a global batch of 64 rows is more than the 50 training images";
                          });
  }
  std::filesystem::remove_all(scratch("").parent_path());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(shards)

// Copy puts a sequence's 10 symbols first; selective copy scatters them, in order, among blanks
// before the delimiter, at places drawn for each sequence. Both ask for them, in order, in the
// last 10 steps.
BOOST_AUTO_TEST_CASE(selective_copy_scatters_the_symbols_and_asks_for_them_in_order) {
  for (const bool selective : {false, true}) {
    BOOST_TEST_CONTEXT((selective ? "selective-copy" : "copy")) {
      const auto task = cli::make_task(selective ? "selective-copy" : "copy");
      cli::Rng rng(5);
      const Index rows = 64, steps = 40, length = 10, delimiter = steps - length - 1;
      const cli::Batch b = task->sample(rows, steps, rng);
      BOOST_REQUIRE(static_cast<Index>(b.xs.size()) == steps);
      std::set<std::vector<Index>> placements;
      for (Index r = 0; r < rows; ++r) {
        std::vector<std::int32_t> symbols, asked;
        std::vector<Index> where;
        for (Index t = 0; t < steps; ++t) {
          const auto& x = b.xs[static_cast<std::size_t>(t)];
          BOOST_TEST(x.row(r).sum() == 1.0f);  // one-hot
          Index c = 0;
          x.row(r).maxCoeff(&c);
          if (t < delimiter && c != 0) {
            symbols.push_back(static_cast<std::int32_t>(c));
            where.push_back(t);
          }
          if (t == delimiter) BOOST_TEST(c == 9);
          if (t > delimiter) BOOST_TEST(c == 0);
          if (t >= steps - length)
            asked.push_back(b.classes[static_cast<std::size_t>(t * rows + r)]);
        }
        BOOST_TEST(static_cast<Index>(symbols.size()) == length);
        BOOST_TEST(asked == symbols, "row " << r << ": the targets are the symbols in order");
        placements.insert(where);
      }
      if (selective) {
        BOOST_TEST(placements.size() == static_cast<std::size_t>(rows));  // each its own places
      } else {
        BOOST_TEST((placements == std::set<std::vector<Index>>{{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}}));
      }
    }
  }
}

// A micro-batch (or a rank's share) is rows [begin, begin + count) of one batch, every field
// cut alike: checked field by field against the whole batch for every task.
BOOST_AUTO_TEST_CASE(a_shard_is_the_batchs_rows_in_every_field) {
  const std::filesystem::path text =
      std::filesystem::temp_directory_path() / fmt::format("rewind-shard-{}.txt", ::getpid());
  std::ofstream(text) << "the quick brown fox jumps over the lazy dog, again and again.\n";
  for (const std::string& name : cli::task_names()) {
    if (cli::is_data_task(name) && !have_fashion()) continue;
    const auto task = cli::make_task(name, text.string());
    cli::Rng rng(3);
    const Index rows = 6;
    const cli::Batch b = task->sample(rows, 9, rng);
    const auto steps = static_cast<Index>(b.xs.size());
    std::size_t scored = 0;
    for (const auto& [begin, count] : {std::pair<Index, Index>{0, 2}, {2, 3}, {5, 1}}) {
      const cli::Batch s = cli::shard(b, rows, begin, count);
      BOOST_TEST_CONTEXT(name << " rows " << begin << "+" << count) {
        BOOST_REQUIRE(s.xs.size() == b.xs.size());
        for (Index t = 0; t < steps; ++t) {
          const auto k = static_cast<std::size_t>(t);
          BOOST_TEST((s.xs[k].array() == b.xs[k].middleRows(begin, count).array()).all());
          for (Index r = 0; r < count; ++r) {
            const auto in_shard = static_cast<std::size_t>(t * count + r);
            const auto in_batch = static_cast<std::size_t>(t * rows + begin + r);
            if (!b.ids.empty()) BOOST_TEST(s.ids[in_shard] == b.ids[in_batch]);
            // Classes per (t, row), or one per row (a classification task's).
            if (b.classes.size() == static_cast<std::size_t>(steps * rows)) {
              BOOST_TEST(s.classes[in_shard] == b.classes[in_batch]);
            } else if (!b.classes.empty() && t == 0) {
              BOOST_REQUIRE(b.classes.size() == static_cast<std::size_t>(rows));
              BOOST_REQUIRE(s.classes.size() == static_cast<std::size_t>(count));
              BOOST_TEST(s.classes[static_cast<std::size_t>(r)] ==
                         b.classes[static_cast<std::size_t>(begin + r)]);
            }
            if (b.target.rows() == steps * rows)
              BOOST_TEST((s.target.row(t * count + r).array() ==
                          b.target.row(t * rows + begin + r).array())
                             .all());
          }
        }
        BOOST_TEST(s.ids.size() == (b.ids.empty() ? 0 : static_cast<std::size_t>(steps * count)));
        if (b.target.rows() == rows)
          BOOST_TEST((s.target.array() == b.target.middleRows(begin, count).array()).all());
        if (!b.lengths.empty()) {
          BOOST_TEST(std::equal(s.lengths.begin(), s.lengths.end(), b.lengths.begin() + begin));
          BOOST_TEST(s.lengths.size() == static_cast<std::size_t>(count));
        }
        for (std::size_t k = 0; k < s.scored_rows.size(); ++k) {
          const Index t = s.scored_rows[k] / count, r = s.scored_rows[k] % count;
          const auto at = std::find(b.scored_rows.begin(), b.scored_rows.end(),
                                    static_cast<std::int32_t>(t * rows + begin + r));
          BOOST_REQUIRE(at != b.scored_rows.end());
          BOOST_TEST(s.acceptable[k] ==
                     b.acceptable[static_cast<std::size_t>(at - b.scored_rows.begin())]);
        }
        scored += s.scored_rows.size();
      }
    }
    BOOST_TEST(scored == b.scored_rows.size(), name << ": the shards score every row once");
  }
  std::filesystem::remove(text);
  BOOST_CHECK_THROW(cli::shard(cli::Batch{}, 4, 3, 2), UsageError);
}

BOOST_AUTO_TEST_SUITE_END()
