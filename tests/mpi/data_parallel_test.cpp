// Under mpirun: N ranks × B rows with DataParallel against one model trained on all N·B rows in
// the same process, in double (the large-batch equivalence of data parallelism: the mean of the
// shards' mean gradients is the mean gradient of the whole batch). Run by ctest as
// `mpirun -np 4 --oversubscribe data_parallel_test`; exits non-zero on any failure.
#include <cstdio>
#include <rewind/optim/mpi.hpp>
#include <rewind/rewind.hpp>

using namespace rwd;

namespace {

struct Model {
  layers::Rng rng;
  layers::Lstm<double> lstm;
  layers::Linear<double> head;
  std::vector<Parameter<double>*> params;
  explicit Model(std::uint64_t seed)
      : rng(seed), lstm({.input = 3, .hidden = 6}, rng), head({.in = 6, .out = 1}, rng) {
    params = lstm.named_parameters();
    layers::append(params, head.named_parameters());
  }
  // mean((head(h_T) − y)²) over rows [begin, begin + rows) of the step's data.
  void gradient(const std::vector<Matrix<double>>& xs, const Matrix<double>& y, Index begin,
                Index rows) {
    Tape<double> tape;
    std::vector<Var<double>> in;
    for (const auto& x : xs) in.push_back(tape.constant(x.middleRows(begin, rows)));
    const auto out = lstm(tape, in);
    for (Parameter<double>* p : params) p->zero_grad();
    tape.backward(mse(head(tape, out.outputs.back()), tape.constant(y.middleRows(begin, rows))));
  }
};

}  // namespace

int main(int argc, char** argv) {
  optim::MpiCommunicator comm(&argc, &argv);
  const int n = comm.size(), rank = comm.rank();
  constexpr Index kRows = 8, kSteps = 12;
  int failures = 0;
  for (const char* name : {"sgd", "rmsprop", "adam", "adamw", "adagrad"}) {
    for (const auto reduction : {optim::Reduction::average, optim::Reduction::ordered}) {
      // Rank r starts from other weights than rank 0: broadcast_parameters must fix that.
      Model ranked(rank == 0 ? 5 : 100 + static_cast<std::uint64_t>(rank)), whole(5);
      auto opt = optim::make_optimizer<double>(name, ranked.params, 0.01);
      auto opt_whole = optim::make_optimizer<double>(name, whole.params, 0.01);
      // Small buckets, so parameters are split across buckets too.
      optim::DataParallel<double> dp(comm, ranked.params,
                                     {.bucket_bytes = 200, .reduction = reduction});
      dp.broadcast_parameters(name);
      for (int step = 0; step < 10; ++step) {
        layers::Rng data(1000 + static_cast<std::uint64_t>(step));
        std::vector<Matrix<double>> xs;
        for (Index t = 0; t < kSteps; ++t)
          xs.push_back(layers::normal<double>(n * kRows, 3, 0, 1, data));
        const Matrix<double> y = layers::normal<double>(n * kRows, 1, 0, 1, data);
        ranked.gradient(xs, y, rank * kRows, kRows);
        dp.reduce_gradients(n);
        opt->step();
        whole.gradient(xs, y, 0, n * kRows);
        opt_whole->step();
      }
      dp.check_replicas(10);
      double worst = 0;
      for (std::size_t k = 0; k < whole.params.size(); ++k) {
        const auto& a = ranked.params[k]->value;
        const auto& b = whole.params[k]->value;
        worst = std::max(worst, ((a - b).array().abs() / (1 + b.array().abs())).maxCoeff());
      }
      const double limit = std::string(name) == "sgd" ? 1e-10 : 1e-8;
      const bool ok = worst <= limit;
      failures += ok ? 0 : 1;
      if (rank == 0) {
        std::printf(
            "%s  %d ranks x %ld rows vs 1 x %ld, %s, %s reduction, 10 steps: max "
            "|dθ|/(1+|θ|) = %.2e (<= %.0e), %zu buckets\n",
            ok ? "ok  " : "FAIL", n, static_cast<long>(kRows), static_cast<long>(n * kRows), name,
            reduction == optim::Reduction::ordered ? "ordered" : "average", worst, limit,
            dp.buckets());
      }
    }
  }
  // A rank that built another model is refused on every rank, naming it (needs two ranks).
  if (n < 2) return failures == 0 ? 0 : 1;
  Model other(5);
  std::vector<Parameter<double>*> params = other.params;
  if (rank == n - 1) params.pop_back();
  optim::DataParallel<double> dp(comm, params);
  std::string what;
  try {
    dp.broadcast_parameters("x");
  } catch (const UsageError& e) {
    what = e.what();
  }
  const std::string expected = fmt::format("DataParallel: rank {} built another model", n - 1);
  const bool refused = what.find(expected) != std::string::npos;
  failures += refused ? 0 : 1;
  if (rank == 0)
    std::printf("%s  a rank with another model is refused: %s\n", refused ? "ok  " : "FAIL",
                what.c_str());
  double total = failures;
  comm.allreduce_sum(std::span(&total, 1), true);
  return total == 0 ? 0 : 1;
}
