#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <rewind/autograd/errors.hpp>
#include <rewind/layers/safetensors.hpp>
#include <rewind/optim/distributed.hpp>

namespace rwd::optim {
namespace {

// A 64-bit checksum: the CRC-32 of the bytes in the high half, their length in the low one.
struct Checksum {
  std::uint32_t crc = 0;
  std::uint64_t length = 0;
  void add(const void* p, std::size_t n) {
    crc = layers::crc32_update(crc, {static_cast<const std::uint8_t*>(p), n});
    length += n;
  }
  void add(const std::string& s) { add(s.data(), s.size() + 1); }
  std::uint64_t value() const { return (static_cast<std::uint64_t>(crc) << 32) ^ length; }
};

std::string ranks_text(const std::vector<int>& ranks) {
  std::string s;
  for (int r : ranks) s += (s.empty() ? "" : ", ") + std::to_string(r);
  return (ranks.size() == 1 ? "rank " : "ranks ") + s;
}

}  // namespace

void SingleProcess::abort(int code, const std::string& why) {
  // _Exit, not exit: abort may come from a watchdog thread while main is still running, and
  // static destructors must not run under it.
  std::fprintf(stderr, "%s\n", why.c_str());
  std::fflush(stderr);
  std::_Exit(code);
}

std::vector<std::uint8_t> broadcast_bytes(Communicator& comm, std::vector<std::uint8_t> bytes,
                                          int root) {
  std::uint64_t n = bytes.size();
  comm.broadcast(std::span(reinterpret_cast<std::uint8_t*>(&n), sizeof n), root);
  bytes.resize(n);
  comm.broadcast(bytes, root);
  return bytes;
}

template <class T>
DataParallel<T>::DataParallel(Communicator& comm, std::vector<Parameter<T>*> params,
                              DataParallelOptions options)
    : comm_(comm), params_(std::move(params)), options_(options) {
  if (options_.bucket_bytes < sizeof(T))
    throw UsageError(
        fmt::format("DataParallel: a bucket of {} bytes holds no number", options_.bucket_bytes));
}

template <class T>
std::vector<int> DataParallel<T>::differing(std::uint64_t v) {
  const std::vector<std::uint64_t> all = comm_.allgather(v);
  std::vector<int> out;
  for (std::size_t r = 1; r < all.size(); ++r) {
    if (all[r] != all[0]) out.push_back(static_cast<int>(r));
  }
  return out;
}

template <class T>
void DataParallel<T>::broadcast_parameters(const std::string& config) {
  Checksum c;
  c.add(config);
  c.add(sizeof(T) == 4 ? "F32" : "F64");
  for (const Parameter<T>* p : params_) {
    c.add(p->name);
    const Index shape[2] = {p->value.rows(), p->value.cols()};
    c.add(shape, sizeof shape);
  }
  if (const auto bad = differing(c.value()); !bad.empty()) {
    throw UsageError(fmt::format(
        "DataParallel: {} built another model than rank 0 (parameter names, shapes, dtype or "
        "options differ); every rank must run the same command",
        ranks_text(bad)));
  }
  for (Parameter<T>* p : params_) {
    comm_.broadcast(std::span(reinterpret_cast<std::uint8_t*>(p->value.data()),
                              static_cast<std::size_t>(p->value.size()) * sizeof(T)),
                    0);
    p->mark_changed();
  }
}

template <class T>
void DataParallel<T>::reduce_gradients(double count) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::size_t capacity = options_.bucket_bytes / sizeof(T);
  std::size_t total = 0;
  for (Parameter<T>* p : params_) {
    if (p->grad.size() == 0) p->grad.setZero(p->value.rows(), p->value.cols());
    total += static_cast<std::size_t>(p->grad.size());
  }
  bucket_.resize(std::min(capacity, total));
  const bool ordered = options_.reduction == Reduction::ordered;
  const T divisor = static_cast<T>(count);
  // Walk the parameters' gradients as one concatenated vector, a bucket at a time: gather,
  // reduce, scatter (divided).
  std::size_t param = 0, offset = 0;  // where the next bucket starts
  buckets_ = 0;
  while (param < params_.size()) {
    std::size_t filled = 0;
    std::size_t p = param, o = offset;
    while (p < params_.size() && filled < bucket_.size()) {
      const auto n = static_cast<std::size_t>(params_[p]->grad.size());
      const std::size_t take = std::min(n - o, bucket_.size() - filled);
      if (take > 0)
        std::memcpy(bucket_.data() + filled, params_[p]->grad.data() + o, take * sizeof(T));
      filled += take;
      o += take;
      if (o == n) ++p, o = 0;
    }
    comm_.allreduce_sum(std::span(bucket_.data(), filled), ordered);
    ++buckets_;
    std::size_t read = 0;
    while (read < filled) {
      Parameter<T>& q = *params_[param];
      const auto n = static_cast<std::size_t>(q.grad.size());
      const std::size_t take = std::min(n - offset, filled - read);
      T* g = q.grad.data() + offset;
      for (std::size_t k = 0; k < take; ++k) g[k] = bucket_[read + k] / divisor;
      read += take;
      offset += take;
      if (offset == n) ++param, offset = 0;
    }
    while (param < params_.size() && params_[param]->grad.size() == 0) ++param;
  }
  reduce_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

template <class T>
double DataParallel<T>::sum(double v) {
  comm_.allreduce_sum(std::span(&v, 1), true);
  return v;
}

template <class T>
void DataParallel<T>::check_replicas(long step) {
  Checksum c;
  for (const Parameter<T>* p : params_)
    c.add(p->value.data(), static_cast<std::size_t>(p->value.size()) * sizeof(T));
  if (const auto bad = differing(c.value()); !bad.empty()) {
    throw UsageError(
        fmt::format("DataParallel: after step {} the parameters of {} differ from rank 0's", step,
                    ranks_text(bad)));
  }
}

template class DataParallel<float>;
template class DataParallel<double>;

}  // namespace rwd::optim
