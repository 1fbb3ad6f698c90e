// The MPI communicator (Open MPI 4.1 from Debian), in the optional target rewind::optim_mpi
// (`-DREWIND_MPI=ON`). This header does not include <mpi.h>: a program links the target and
// needs MPI only at run time (mpirun).
#pragma once

#include <rewind/optim/distributed.hpp>

namespace rwd::optim {

/// MPI_COMM_WORLD as a Communicator. The first one made initialises MPI (with
/// MPI_THREAD_MULTIPLE where the library offers it, so a watchdog thread may abort the job)
/// and the last one destroyed finalises it.
class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(int* argc, char*** argv);
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  /// Unordered: MPI_Allreduce (MPI_SUM, in place). Ordered: MPI_Gather to rank 0, summed there
  /// in rank order, MPI_Bcast.
  void allreduce_sum(std::span<float> x, bool ordered) override;
  void allreduce_sum(std::span<double> x, bool ordered) override;
  void broadcast(std::span<std::uint8_t> bytes, int root) override;
  std::vector<std::uint64_t> allgather(std::uint64_t v) override;
  /// MPI_Abort on MPI_COMM_WORLD: mpirun ends every rank.
  [[noreturn]] void abort(int code, const std::string& why) override;
  /// Whether MPI granted MPI_THREAD_MULTIPLE (abort may then be called from any thread).
  bool any_thread() const { return any_thread_; }

 private:
  template <class T>
  void reduce(std::span<T> x, bool ordered);
  int rank_ = 0, size_ = 1;
  bool any_thread_ = false;
  std::vector<unsigned char> gathered_;
};

}  // namespace rwd::optim
