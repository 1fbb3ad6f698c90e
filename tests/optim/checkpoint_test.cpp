// Optimizer state (torch.optim's names and values), training checkpoints (exact round trips,
// atomic files, corrupt and truncated files rejected without side effects), checkpoint folders.
#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <rewind/rewind.hpp>

#include "support.hpp"

using namespace rwd;
using M = Matrix<double>;
using json = nlohmann::json;
using test::to_matrix;
namespace fs = std::filesystem;

namespace {

json reference() {
  std::ifstream in(std::string(REWIND_TEST_DATA) + "/optim_reference.json");
  BOOST_REQUIRE(in);
  return json::parse(in);
}

// torch.optim's configuration `run` as a rewind optimizer (the same mapping as optim_test's).
template <class T>
std::unique_ptr<optim::Optimizer<T>> make(const json& run, std::vector<Parameter<T>*> params) {
  const std::string cls = run["class"];
  const json& o = run["options"];
  const auto get = [&](const char* k, double d) { return o.contains(k) ? o[k].get<double>() : d; };
  const double b1 = o.contains("betas") ? o["betas"][0].get<double>() : 0.9;
  const double b2 = o.contains("betas") ? o["betas"][1].get<double>() : 0.999;
  if (cls == "SGD")
    return std::make_unique<optim::Sgd<T>>(
        params, optim::SgdOptions{get("lr", 0), get("momentum", 0), get("dampening", 0),
                                  get("weight_decay", 0), o.value("nesterov", false)});
  if (cls == "RMSprop")
    return std::make_unique<optim::RmsProp<T>>(
        params, optim::RmsPropOptions{get("lr", 0), get("alpha", 0.99), get("eps", 1e-8),
                                      get("weight_decay", 0), get("momentum", 0),
                                      o.value("centered", false)});
  if (cls == "Adam" || cls == "AdamW") {
    const optim::AdamOptions a{get("lr", 0), b1, b2, get("eps", 1e-8),
                               get("weight_decay", cls == "AdamW" ? 0.01 : 0)};
    if (cls == "AdamW") return std::make_unique<optim::AdamW<T>>(params, a);
    return std::make_unique<optim::Adam<T>>(params, a);
  }
  return std::make_unique<optim::Adagrad<T>>(
      params, optim::AdagradOptions{get("lr", 0), get("lr_decay", 0), get("weight_decay", 0),
                                    get("initial_accumulator_value", 0), get("eps", 1e-10)});
}

// The reference problem: loss = mean((X·Wᵀ + b − Y)²); `steps` optimizer steps.
template <class T>
void train(const json& ref, Parameter<T>& w, Parameter<T>& b, optim::Optimizer<T>& opt, int steps) {
  const Matrix<T> X = to_matrix(ref["X"]).cast<T>(), Y = to_matrix(ref["Y"]).cast<T>();
  Tape<T> tape;
  for (int s = 0; s < steps; ++s) {
    tape.clear();
    opt.zero_grad();
    tape.backward(mse(add_row_vector(matmul_nt(tape.constant(X), tape.param(w)), tape.param(b)),
                      tape.constant(Y)));
    opt.step();
  }
}

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() /
           fmt::format("rewind-ckpt-{}-{}", ::getpid(), std::random_device{}());
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

std::vector<std::uint8_t> read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
void write_bytes(const fs::path& p, const std::vector<std::uint8_t>& b) {
  std::ofstream(p, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

bool same_bits(const M& a, const M& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.size()) * sizeof(double)) == 0;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(training_state)

BOOST_AUTO_TEST_CASE(optimizer_state_has_torch_optims_names_and_values) {
  const json ref = reference();
  for (const auto& [name, run] : ref["runs"].items()) {
    Parameter<double> w("W", to_matrix(ref["W0"])), b("b", to_matrix(ref["b0"]));
    auto opt = make<double>(run, {&w, &b});
    train(ref, w, b, *opt, 10);
    const optim::OptimizerState<double> s = opt->state();
    BOOST_TEST(s.step == 10);
    BOOST_TEST(s.lr == run["options"]["lr"].get<double>());
    std::size_t expected = 0;
    for (const auto& [param, buffers] : run["state"].items()) {
      for (const auto& [buffer, value] : buffers.items()) {
        ++expected;
        const auto it = std::find_if(s.tensors.begin(), s.tensors.end(),
                                     [&param = param, &buffer = buffer](const auto& t) {
                                       return t.param == param && t.name == buffer;
                                     });
        BOOST_REQUIRE_MESSAGE(it != s.tensors.end(), name << ": no " << buffer << " of " << param);
        const M e = to_matrix(value);
        const double worst =
            ((it->value - e).array().abs() / e.array().abs().max(1e-12)).maxCoeff();
        BOOST_TEST(worst < 1e-10, name << ": " << buffer << " of " << param << " differs from "
                                       << "torch's by " << worst);
      }
    }
    BOOST_TEST(s.tensors.size() == expected,
               name << ": rewind keeps " << s.tensors.size() << " buffers, torch " << expected);
  }
}

BOOST_AUTO_TEST_CASE(a_resumed_optimizer_continues_bit_for_bit) {
  const json ref = reference();
  TempDir dir;
  for (const auto& [name, run] : ref["runs"].items()) {
    // The uninterrupted run: 20 steps.
    Parameter<double> w("W", to_matrix(ref["W0"])), b("b", to_matrix(ref["b0"]));
    auto opt = make<double>(run, {&w, &b});
    train(ref, w, b, *opt, 10);
    const fs::path path = dir.path / (name + ".safetensors");
    std::mt19937_64 rng(7);
    rng.discard(1234);
    optim::TrainingState<double> st{.step = 10, .rng = optim::engine_state(rng)};
    st.info["cursor"] = "42";
    st.tensors.emplace_back("h", M::Constant(2, 3, 0.1));
    optim::save_checkpoint(path, {&w, &b}, *opt, st);
    train(ref, w, b, *opt, 10);
    // A fresh process's view: other values, a fresh optimizer, everything from the file.
    Parameter<double> w2("W", M::Zero(3, 4)), b2("b", M::Zero(1, 3));
    auto opt2 = make<double>(run, {&w2, &b2});
    const auto back = optim::load_checkpoint<double>(path, {&w2, &b2}, *opt2);
    BOOST_TEST(back.step == 10);
    BOOST_TEST(back.at("cursor") == "42");
    BOOST_TEST(same_bits(back.tensor("h"), M::Constant(2, 3, 0.1)));
    std::mt19937_64 rng2;
    optim::set_engine_state(rng2, back.rng);
    BOOST_TEST((rng2() == rng()));
    BOOST_TEST(opt2->steps() == 10);
    train(ref, w2, b2, *opt2, 10);
    BOOST_TEST(same_bits(w.value, w2.value), name << ": W differs after resuming");
    BOOST_TEST(same_bits(b.value, b2.value), name << ": b differs after resuming");
  }
}

BOOST_AUTO_TEST_CASE(float_checkpoints_round_trip_and_refuse_double_models) {
  const json ref = reference();
  TempDir dir;
  Parameter<float> w("W", to_matrix(ref["W0"]).cast<float>()),
      b("b", to_matrix(ref["b0"]).cast<float>());
  optim::Adam<float> adam({&w, &b}, {.lr = 0.01});
  train(ref, w, b, adam, 3);
  const fs::path path = dir.path / "f.safetensors";
  optim::save_checkpoint<float>(path, {&w, &b}, adam, {.step = 3});
  Parameter<float> w2("W", Matrix<float>::Zero(3, 4)), b2("b", Matrix<float>::Zero(1, 3));
  optim::Adam<float> adam2({&w2, &b2}, {.lr = 0.01});
  optim::load_checkpoint<float>(path, {&w2, &b2}, adam2);
  train(ref, w, b, adam, 3);
  train(ref, w2, b2, adam2, 3);
  BOOST_TEST((w.value.array() == w2.value.array()).all());
  Parameter<double> wd("W", M::Zero(3, 4)), bd("b", M::Zero(1, 3));
  optim::Adam<double> adamd({&wd, &bd}, {.lr = 0.01});
  BOOST_CHECK_EXCEPTION(optim::load_checkpoint<double>(path, {&wd, &bd}, adamd), UsageError,
                        [&](const UsageError& e) {
                          return std::string(e.what()).find(
                                     "it holds F32 values, the model is F64") != std::string::npos;
                        });
  BOOST_TEST(adamd.steps() == 0);
}

BOOST_AUTO_TEST_CASE(a_mismatched_state_is_refused_and_changes_nothing) {
  Parameter<double> w("W", M::Ones(3, 4)), b("b", M::Ones(1, 3));
  w.grad = M::Constant(3, 4, 0.5);
  b.grad = M::Constant(1, 3, 0.5);
  optim::Adam<double> adam({&w, &b}, {.lr = 0.1});
  adam.step();
  const auto before = adam.state();
  const auto refused = [&](optim::OptimizerState<double> s, const std::string& says) {
    std::string what;
    try {
      adam.load_state(s);
    } catch (const UsageError& e) {
      what = e.what();
    }
    BOOST_TEST(what.find(says) != std::string::npos, "'" << what << "' lacks '" << says << "'");
    const auto now = adam.state();
    BOOST_TEST(now.step == before.step);
    BOOST_TEST(now.tensors.size() == before.tensors.size());
    for (std::size_t k = 0; k < now.tensors.size(); ++k)
      BOOST_TEST(same_bits(now.tensors[k].value, before.tensors[k].value));
  };
  auto s = before;
  s.kind = "sgd";
  refused(s, "Optimizer: cannot load the state: the state is sgd's, this optimizer is adam");
  s = before;
  s.hyperparameters["beta1"] = 0.8;
  refused(s, "beta1 is 0.8 in the state but 0.9 here");
  s = before;
  s.tensors[0].value = M::Zero(4, 3);
  refused(s, "exp_avg of 'W' is 4x3, the parameter is 3x4");
  s = before;
  s.tensors[0].param = "V";
  refused(s, "exp_avg of 'V': no such parameter");
  s = before;
  s.tensors[0].name = "momentum_buffer";
  refused(s, "'W' has a buffer named momentum_buffer, which adam does not keep");
  s = before;
  s.step = 5;
  s.tensors.clear();
  adam.load_state(s);  // a valid state: no buffers, as before any update
  BOOST_TEST(adam.steps() == 5);
  BOOST_TEST(adam.state().tensors.empty());
}

BOOST_AUTO_TEST_CASE(every_flipped_byte_and_every_truncation_is_rejected) {
  TempDir dir;
  Parameter<double> w("W", M::Random(3, 4)), b("b", M::Random(1, 3));
  w.grad = M::Random(3, 4);
  b.grad = M::Random(1, 3);
  optim::Sgd<double> sgd({&w, &b}, {.lr = 0.1, .momentum = 0.9});
  sgd.step();
  const fs::path path = dir.path / "c.safetensors";
  optim::save_checkpoint<double>(path, {&w, &b}, sgd, {.step = 1, .info = {{"k", "v"}}});
  const std::vector<std::uint8_t> good = read_bytes(path);
  Parameter<double> w2("W", M::Zero(3, 4)), b2("b", M::Zero(1, 3));
  optim::Sgd<double> sgd2({&w2, &b2}, {.lr = 0.1, .momentum = 0.9});
  const fs::path bad = dir.path / "bad.safetensors";
  int accepted = 0;
  std::string sample;
  for (std::size_t at = 0; at < good.size(); ++at) {
    std::vector<std::uint8_t> bytes = good;
    bytes[at] ^= 0x01;
    write_bytes(bad, bytes);
    try {
      optim::load_checkpoint<double>(bad, {&w2, &b2}, sgd2);
      ++accepted;
    } catch (const FileError& e) {
      if (at == good.size() - 1) sample = e.what();
    }
  }
  BOOST_TEST(accepted == 0, accepted << " of " << good.size() << " one-bit changes were accepted");
  BOOST_TEST(sample.find("corrupt: the content's CRC-32 is") != std::string::npos, sample);
  for (std::size_t n = 0; n < good.size(); ++n) {
    write_bytes(bad, std::vector<std::uint8_t>(good.begin(), good.begin() + n));
    BOOST_CHECK_THROW(optim::load_checkpoint<double>(bad, {&w2, &b2}, sgd2), FileError);
  }
  BOOST_TEST((w2.value.array() == 0).all());  // nothing was loaded by any failed attempt
  BOOST_TEST(sgd2.steps() == 0);
  BOOST_TEST(sgd2.state().tensors.empty());
  // A weight file is not a checkpoint.
  layers::save_parameters<double>(bad, {&w, &b});
  BOOST_CHECK_EXCEPTION(
      optim::load_checkpoint<double>(bad, {&w2, &b2}, sgd2), FileError, [](const FileError& e) {
        return std::string(e.what()).find("not a rewind training checkpoint") != std::string::npos;
      });
  // The intact file loads, and its weights are readable as a weight file too.
  optim::load_checkpoint<double>(path, {&w2, &b2}, sgd2);
  BOOST_TEST(same_bits(w.value, w2.value));
  Parameter<double> w3("W", M::Zero(3, 4)), b3("b", M::Zero(1, 3));
  layers::load_parameters<double>(path, {&w3, &b3}, {.allow_unexpected = true});
  BOOST_TEST(same_bits(w.value, w3.value));
  BOOST_TEST(!fs::exists(path.string() + ".tmp"));
}

BOOST_AUTO_TEST_CASE(a_checkpoint_folder_keeps_the_newest_and_skips_bad_ones) {
  TempDir dir;
  Parameter<double> w("W", M::Random(3, 4));
  w.grad = M::Random(3, 4);
  optim::Adam<double> adam({&w}, {.lr = 0.1});
  const optim::CheckpointDir ckpts(dir.path / "run", 3);
  BOOST_TEST(ckpts.list().empty());
  for (long step = 10; step <= 50; step += 10) {
    adam.step();
    ckpts.save<double>({&w}, adam, {.step = step});
  }
  const auto all = ckpts.list();
  BOOST_REQUIRE(all.size() == 3u);
  BOOST_TEST(all[0].first == 50);
  BOOST_TEST(all[2].first == 30);
  BOOST_TEST(all[0].second.filename() == "step-00000050.safetensors");
  // The newest is damaged (a crash while copying it, say): the one before is used.
  auto bytes = read_bytes(all[0].second);
  bytes.resize(bytes.size() / 2);
  write_bytes(all[0].second, bytes);
  Parameter<double> w2("W", M::Zero(3, 4));
  optim::Adam<double> adam2({&w2}, {.lr = 0.1});
  std::vector<std::string> rejected;
  const auto st = ckpts.load_latest<double>({&w2}, adam2, &rejected);
  BOOST_REQUIRE(st.has_value());
  BOOST_TEST(st->step == 40);
  BOOST_TEST(adam2.steps() == 4);
  BOOST_REQUIRE(rejected.size() == 1u);
  BOOST_TEST(rejected[0].find("step-00000050.safetensors") != std::string::npos, rejected[0]);
  BOOST_TEST(rejected[0].find("truncated") != std::string::npos, rejected[0]);
  // A model with another parameter set is refused at the first sound checkpoint, saying why
  // (skipping it and starting afresh would hide that the folder is another run's).
  Parameter<double> v("V", M::Zero(3, 4));
  optim::Adam<double> adam3({&v}, {.lr = 0.1});
  rejected.clear();
  BOOST_CHECK_EXCEPTION(
      ckpts.load_latest<double>({&v}, adam3, &rejected), UsageError, [](const UsageError& e) {
        const std::string w = e.what();
        return w.find(
                   "step-00000040.safetensors' does not fit this model and "
                   "optimizer: missing: V; not in the model: W") != std::string::npos;
      });
  BOOST_TEST(rejected.size() == 1u);
}

BOOST_AUTO_TEST_SUITE_END()

namespace {

// N ranks that all hold the same values, in one process: a sum is N times the value. Enough to
// check DataParallel's bucketing (gather, reduce, scatter, divide) without MPI.
class Mirror final : public optim::Communicator {
 public:
  explicit Mirror(int n) : n_(n) {}
  int rank() const override { return 0; }
  int size() const override { return n_; }
  void allreduce_sum(std::span<float> x, bool o) override { sum(x, o); }
  void allreduce_sum(std::span<double> x, bool o) override { sum(x, o); }
  void broadcast(std::span<std::uint8_t>, int) override {}
  std::vector<std::uint64_t> allgather(std::uint64_t v) override {
    return std::vector<std::uint64_t>(static_cast<std::size_t>(n_), v);
  }
  [[noreturn]] void abort(int, const std::string& why) override { throw UsageError(why); }
  std::vector<std::size_t> sizes;  // elements per reduction call

 private:
  template <class T>
  void sum(std::span<T> x, bool) {
    sizes.push_back(x.size());
    for (T& v : x) v = v * static_cast<T>(n_);
  }
  int n_;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(data_parallel)

BOOST_AUTO_TEST_CASE(gradients_are_reduced_in_buckets_in_parameter_order) {
  // 12 + 3 + 7 = 22 numbers; buckets of 5 doubles split every parameter somewhere.
  Parameter<double> a("a", M::Random(3, 4)), b("b", M::Random(1, 3)), c("c", M::Random(7, 1));
  a.grad = M::Random(3, 4);
  c.grad = M::Random(7, 1);  // b has no gradient: it takes part as zeros
  const M ga = a.grad, gc = c.grad;
  for (const std::size_t bytes :
       {std::size_t{8}, std::size_t{40}, std::size_t{200}, std::size_t{25} << 20}) {
    a.grad = ga;
    b.grad.resize(0, 0);
    c.grad = gc;
    Mirror four(4);
    optim::DataParallel<double> dp(four, {&a, &b, &c}, {.bucket_bytes = bytes});
    dp.reduce_gradients(4);  // (4·g) / 4 = g exactly
    BOOST_TEST(same_bits(a.grad, ga));
    BOOST_TEST(same_bits(c.grad, gc));
    BOOST_TEST((b.grad.array() == 0).all());
    BOOST_TEST(b.grad.rows() == 1);
    const std::size_t per = std::min<std::size_t>(22, bytes / 8);
    BOOST_TEST(dp.buckets() == (22 + per - 1) / per);
    std::size_t total = 0;
    for (std::size_t n : four.sizes) {
      BOOST_TEST(n <= per);
      total += n;
    }
    BOOST_TEST(total == 22u);
  }
  Mirror two(2);
  BOOST_CHECK_EXCEPTION(optim::DataParallel<double>(two, {&a}, {.bucket_bytes = 4}), UsageError,
                        [](const UsageError& e) {
                          return std::string(e.what()) ==
                                 "DataParallel: a bucket of 4 bytes holds no number";
                        });
}

BOOST_AUTO_TEST_CASE(a_single_process_is_the_identity) {
  Parameter<float> w("w", Matrix<float>::Random(2, 3));
  w.grad = Matrix<float>::Random(2, 3);
  const Matrix<float> g = w.grad;
  optim::SingleProcess one;
  optim::DataParallel<float> dp(one, {&w});
  dp.broadcast_parameters("config");
  dp.reduce_gradients(1);
  BOOST_TEST((w.grad.array() == g.array()).all());
  BOOST_TEST(dp.sum(2.5) == 2.5);
  dp.check_replicas(1);
  const std::vector<std::uint8_t> bytes{1, 2, 3};
  BOOST_TEST((optim::broadcast_bytes(one, bytes) == bytes));
}

BOOST_AUTO_TEST_SUITE_END()
