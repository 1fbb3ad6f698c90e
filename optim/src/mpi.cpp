#include <mpi.h>

#include <cstdio>
#include <rewind/autograd/errors.hpp>
#include <rewind/optim/mpi.hpp>

namespace rwd::optim {
namespace {

int live = 0;  // MpiCommunicators alive
bool we_initialised = false;

void check(int rc, const char* what) {
  if (rc != MPI_SUCCESS) {
    char text[MPI_MAX_ERROR_STRING];
    int n = 0;
    MPI_Error_string(rc, text, &n);
    throw UsageError(fmt::format("MPI: {} failed: {}", what, std::string(text, n)));
  }
}

template <class T>
MPI_Datatype mpi_type() {
  return sizeof(T) == 4 ? MPI_FLOAT : MPI_DOUBLE;
}

}  // namespace

MpiCommunicator::MpiCommunicator(int* argc, char*** argv) {
  int initialised = 0;
  MPI_Initialized(&initialised);
  int provided = MPI_THREAD_SINGLE;
  if (!initialised) {
    check(MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided), "MPI_Init_thread");
    we_initialised = true;
  } else {
    MPI_Query_thread(&provided);
  }
  any_thread_ = provided == MPI_THREAD_MULTIPLE;
  // Errors come back as codes (and become exceptions here) instead of ending the job unasked.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  ++live;
}

MpiCommunicator::~MpiCommunicator() {
  if (--live == 0 && we_initialised) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }
}

template <class T>
void MpiCommunicator::reduce(std::span<T> x, bool ordered) {
  if (size_ == 1 || x.empty()) return;
  const int n = static_cast<int>(x.size());
  if (!ordered) {
    check(MPI_Allreduce(MPI_IN_PLACE, x.data(), n, mpi_type<T>(), MPI_SUM, MPI_COMM_WORLD),
          "MPI_Allreduce");
    return;
  }
  // Rank 0 adds the ranks' values in rank order, exactly as one process accumulating them would;
  // the result goes back to everyone, so every replica has the same bits.
  if (rank_ == 0) gathered_.resize(x.size() * sizeof(T) * static_cast<std::size_t>(size_));
  check(MPI_Gather(x.data(), n, mpi_type<T>(), rank_ == 0 ? gathered_.data() : nullptr, n,
                   mpi_type<T>(), 0, MPI_COMM_WORLD),
        "MPI_Gather");
  if (rank_ == 0) {
    const T* all = reinterpret_cast<const T*>(gathered_.data());
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = all[i];
    for (int r = 1; r < size_; ++r) {
      const T* from = all + static_cast<std::size_t>(r) * x.size();
      for (std::size_t i = 0; i < x.size(); ++i) x[i] += from[i];
    }
  }
  check(MPI_Bcast(x.data(), n, mpi_type<T>(), 0, MPI_COMM_WORLD), "MPI_Bcast");
}

void MpiCommunicator::allreduce_sum(std::span<float> x, bool ordered) { reduce(x, ordered); }
void MpiCommunicator::allreduce_sum(std::span<double> x, bool ordered) { reduce(x, ordered); }

void MpiCommunicator::broadcast(std::span<std::uint8_t> bytes, int root) {
  // MPI counts are ints: large payloads go in pieces of 1 GiB.
  constexpr std::size_t kPiece = std::size_t{1} << 30;
  for (std::size_t at = 0; at < bytes.size(); at += kPiece) {
    const auto n = static_cast<int>(std::min(kPiece, bytes.size() - at));
    check(MPI_Bcast(bytes.data() + at, n, MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
  }
}

std::vector<std::uint64_t> MpiCommunicator::allgather(std::uint64_t v) {
  std::vector<std::uint64_t> all(static_cast<std::size_t>(size_));
  check(MPI_Allgather(&v, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, MPI_COMM_WORLD),
        "MPI_Allgather");
  return all;
}

void MpiCommunicator::abort(int code, const std::string& why) {
  std::fprintf(stderr, "%s\n", why.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);  // MPI_Abort does not return; this is for the compiler and odd transports
}

}  // namespace rwd::optim
