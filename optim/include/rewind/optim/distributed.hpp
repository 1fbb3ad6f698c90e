// Data-parallel training behind a small communicator interface, PyTorch DDP's contract: rank 0's
// parameters (and, on resume, its optimizer state) are broadcast after a check that every rank
// built the same model; each rank computes gradients on its shard of the global batch; the
// gradients are summed over the ranks in a fixed order of buckets (parameter order, ≤ 25 MiB
// each) and divided by the global number of micro-batches; then every rank clips by the same
// norm and steps the same optimizer, so the replicas stay equal.
//
// The library needs no MPI: SingleProcess is the one-rank communicator, and the MPI one lives in
// its own optional target (rewind::optim_mpi, `-DREWIND_MPI=ON`, rewind/optim/mpi.hpp).
#pragma once

#include <cstdint>
#include <rewind/autograd/parameter.hpp>
#include <span>
#include <string>
#include <vector>

namespace rwd::optim {

/// What a data-parallel job needs from its processes.
class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  /// Sums `x` over the ranks in place; every rank gets the sum. `ordered`: added in rank order,
  /// ((x₀ + x₁) + x₂) + …, the same bits on every rank and the same bits as one process adding
  /// the ranks' values in that order; otherwise the transport's own (faster) order.
  virtual void allreduce_sum(std::span<float> x, bool ordered) = 0;
  virtual void allreduce_sum(std::span<double> x, bool ordered) = 0;
  /// `root`'s bytes into every rank's `bytes` (the same size on every rank).
  virtual void broadcast(std::span<std::uint8_t> bytes, int root) = 0;
  /// Every rank's `v`, in rank order.
  virtual std::vector<std::uint64_t> allgather(std::uint64_t v) = 0;
  /// Ends every process of the job with exit code `code`, after printing `why` to stderr.
  [[noreturn]] virtual void abort(int code, const std::string& why) = 0;
};

/// One process: sums and broadcasts are the identity.
class SingleProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void allreduce_sum(std::span<float>, bool) override {}
  void allreduce_sum(std::span<double>, bool) override {}
  void broadcast(std::span<std::uint8_t>, int) override {}
  std::vector<std::uint64_t> allgather(std::uint64_t v) override { return {v}; }
  [[noreturn]] void abort(int code, const std::string& why) override;
};

/// `root`'s byte string, of any length, on every rank (its size first, then the bytes).
std::vector<std::uint8_t> broadcast_bytes(Communicator& comm, std::vector<std::uint8_t> bytes,
                                          int root = 0);

enum class Reduction {
  average,  ///< the transport's sum (MPI_Allreduce), then ÷ count
  ordered   ///< the sum in rank order, then ÷ count: bit-identical to gradient accumulation
};

struct DataParallelOptions {
  std::size_t bucket_bytes = std::size_t{25} << 20;  ///< DDP's default bucket size
  Reduction reduction = Reduction::average;
};

/// Keeps `params` equal on every rank of `comm`.
template <class T>
class DataParallel {
 public:
  DataParallel(Communicator& comm, std::vector<Parameter<T>*> params,
               DataParallelOptions options = {});

  /// Checks that every rank has the same parameter names and shapes and the same `config` (the
  /// optimizer and training options as text), then copies rank 0's values to every rank. On a
  /// difference every rank throws the same UsageError, naming the ranks that differ.
  void broadcast_parameters(const std::string& config = {});
  /// Sums every gradient over the ranks, bucket by bucket in parameter order, and divides it by
  /// `count` (the global number of micro-batches, so the result is their mean gradient). A
  /// parameter without a gradient takes part as zeros.
  void reduce_gradients(double count);
  /// The sum of `v` over the ranks, in rank order (the same bits everywhere).
  double sum(double v);
  /// Compares a checksum of every parameter's bits across the ranks; on a difference every rank
  /// throws the same UsageError naming the step and the ranks whose replicas differ from rank 0's.
  void check_replicas(long step);

  Communicator& comm() { return comm_; }
  /// Seconds spent in reduce_gradients so far, and the buckets one call uses.
  double reduce_seconds() const { return reduce_seconds_; }
  std::size_t buckets() const { return buckets_; }

 private:
  // Ranks whose `v` differs from rank 0's (empty: all agree).
  std::vector<int> differing(std::uint64_t v);
  Communicator& comm_;
  std::vector<Parameter<T>*> params_;
  DataParallelOptions options_;
  std::vector<T> bucket_;
  double reduce_seconds_ = 0;
  std::size_t buckets_ = 0;
};

}  // namespace rwd::optim
