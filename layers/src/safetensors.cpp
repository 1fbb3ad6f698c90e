#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <rewind/layers/safetensors.hpp>
#include <set>

namespace rwd::layers {
namespace {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; add byte swapping for this platform");

[[noreturn]] void fail(const std::string& what) { throw FileError("safetensors: " + what); }

std::size_t dtype_size(const std::string& dtype) {
  if (dtype == "F32") return 4;
  if (dtype == "F64") return 8;
  static const std::set<std::string> known{"F16", "BF16", "F8_E4M3", "F8_E5M2", "I8",  "I16", "I32",
                                           "I64", "U8",   "U16",     "U32",     "U64", "BOOL"};
  if (known.count(dtype) != 0)
    fail(fmt::format("dtype {} is not supported (F32 and F64 are)", dtype));
  fail(fmt::format("unknown dtype '{}'", dtype));
}

template <class T>
constexpr const char* dtype_of() {
  return sizeof(T) == 4 ? "F32" : "F64";
}

std::size_t as_size(const nlohmann::json& v, const std::string& what) {
  if (!v.is_number_unsigned()) fail(fmt::format("{} is not a non-negative integer", what));
  return v.get<std::size_t>();
}

constexpr const char* kCrcKey = "rewind.crc32";

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const std::string& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

// The checksum of a file's content: each tensor's name, dtype, shape, then the data (given in
// pieces, as the writer holds it), then every metadata entry but the checksum itself (a
// std::map: sorted, so both sides agree).
std::string content_crc(const std::vector<std::pair<std::string, std::string>>& described,
                        std::span<const std::span<const std::uint8_t>> data,
                        const std::map<std::string, std::string>& metadata) {
  std::uint32_t crc = 0;
  const auto add = [&](const std::string& s) {
    crc = crc32_update(crc, {reinterpret_cast<const std::uint8_t*>(s.data()), s.size() + 1});
  };
  for (const auto& [name, desc] : described) {
    add(name);
    add(desc);
  }
  for (const auto piece : data) crc = crc32_update(crc, piece);
  for (const auto& [k, v] : metadata) {
    if (k == kCrcKey) continue;
    add(k);
    add(v);
  }
  return fmt::format("{:08x}", crc);
}

std::string describe(const std::string& dtype, const std::vector<Index>& shape) {
  std::string s = dtype;
  for (Index d : shape) s += fmt::format(" {}", d);
  return s;
}

// Writes all of `n` bytes to a POSIX file descriptor.
void write_all(int fd, const void* p, std::size_t n, const std::string& name) {
  const auto* b = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t w = ::write(fd, b, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) fail(fmt::format("writing '{}' failed: {}", name, std::strerror(errno)));
    b += w;
    n -= static_cast<std::size_t>(w);
  }
}

}  // namespace

std::uint32_t crc32_update(std::uint32_t crc, std::span<const std::uint8_t> bytes) {
  uLong c = crc;
  const Bytef* b = bytes.data();
  std::size_t n = bytes.size();
  while (n > 0) {  // zlib takes a uInt length
    const auto chunk = static_cast<uInt>(std::min<std::size_t>(n, 1u << 30));
    c = crc32(c, b, chunk);
    b += chunk;
    n -= chunk;
  }
  return static_cast<std::uint32_t>(c);
}

std::vector<std::uint8_t> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(fmt::format("cannot open '{}'", path.string()));
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

const TensorEntry* TensorFile::find(std::string_view name) const {
  for (const TensorEntry& e : entries) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

TensorFile parse_tensor_file(std::span<const std::uint8_t> bytes) {
  if (bytes.size() < 8) {
    fail(fmt::format("truncated: {} bytes, but the header length alone takes 8", bytes.size()));
  }
  std::uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  if (n > bytes.size() - 8) {
    fail(fmt::format("truncated or corrupt: the header claims {} bytes but only {} follow", n,
                     bytes.size() - 8));
  }
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.begin() + 8,
                                   bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n));
  } catch (const nlohmann::json::exception& e) {
    fail(fmt::format("the header is not valid JSON: {}", e.what()));
  }
  if (!header.is_object()) fail("the header is not a JSON object");
  TensorFile file;
  file.data = bytes.subspan(8 + n);
  for (const auto& [name, v] : header.items()) {
    if (name == "__metadata__") {
      if (!v.is_object()) fail("__metadata__ is not an object");
      for (const auto& [k, s] : v.items()) {
        if (!s.is_string()) fail(fmt::format("metadata '{}' is not a string", k));
        file.metadata[k] = s.get<std::string>();
      }
      continue;
    }
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") ||
        !v.contains("data_offsets")) {
      fail(fmt::format("tensor '{}' needs dtype, shape and data_offsets", name));
    }
    TensorEntry e;
    e.name = name;
    if (!v["dtype"].is_string()) fail(fmt::format("tensor '{}': dtype is not a string", name));
    e.dtype = v["dtype"].get<std::string>();
    const std::size_t elem = dtype_size(e.dtype);
    const auto& shape = v["shape"];
    if (!shape.is_array() || shape.size() > 2) {
      fail(fmt::format("tensor '{}': shape must be an array of at most 2 dimensions", name));
    }
    std::size_t count = 1;
    for (const auto& d : shape) {
      const std::size_t dim = as_size(d, fmt::format("tensor '{}': a dimension", name));
      // Bound every dimension by the data size first, so the product cannot overflow.
      if (dim > file.data.size() && dim > 0 && count > 0) {
        fail(fmt::format("tensor '{}': dimension {} exceeds the {} bytes of data", name, dim,
                         file.data.size()));
      }
      count *= dim;
      if (count > file.data.size()) {
        fail(fmt::format("tensor '{}': {} elements exceed the {} bytes of data", name, count,
                         file.data.size()));
      }
      e.shape.push_back(static_cast<Index>(dim));
    }
    const auto& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2)
      fail(fmt::format("tensor '{}': data_offsets must be [begin, end]", name));
    e.begin = as_size(off[0], fmt::format("tensor '{}': begin offset", name));
    e.end = as_size(off[1], fmt::format("tensor '{}': end offset", name));
    if (e.begin > e.end || e.end > file.data.size()) {
      fail(fmt::format("tensor '{}': offsets [{}, {}) lie outside the {} bytes of data", name,
                       e.begin, e.end, file.data.size()));
    }
    if (e.end - e.begin != count * elem) {
      fail(fmt::format("tensor '{}': {} bytes of data for {} elements of {} ({} expected)", name,
                       e.end - e.begin, count, e.dtype, count * elem));
    }
    file.entries.push_back(std::move(e));
  }
  // The data section must be tiled exactly: no overlaps, no holes, nothing after the last tensor.
  std::vector<const TensorEntry*> order;
  for (const TensorEntry& e : file.entries) order.push_back(&e);
  std::sort(order.begin(), order.end(), [](const TensorEntry* a, const TensorEntry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  std::size_t at = 0;
  for (const TensorEntry* e : order) {
    if (e->begin < at) fail(fmt::format("tensor '{}' overlaps another tensor's data", e->name));
    if (e->begin > at)
      fail(fmt::format("a hole in the data before tensor '{}' (bytes [{}, {}))", e->name, at,
                       e->begin));
    at = e->end;
  }
  if (at != file.data.size()) {
    fail(fmt::format("{} bytes of data after the last tensor", file.data.size() - at));
  }
  if (const auto crc = file.metadata.find(kCrcKey); crc != file.metadata.end()) {
    std::vector<std::pair<std::string, std::string>> described;
    for (const TensorEntry* e : order)
      described.emplace_back(e->name, describe(e->dtype, e->shape));
    const std::span<const std::uint8_t> all[] = {file.data};
    const std::string actual = content_crc(described, all, file.metadata);
    if (actual != crc->second) {
      fail(fmt::format("corrupt: the content's CRC-32 is {}, the file says {}", actual,
                       crc->second));
    }
  }
  return file;
}

TensorFile read_tensor_file(const std::filesystem::path& path, std::vector<std::uint8_t>& bytes) {
  bytes = read_file(path);
  try {
    return parse_tensor_file(bytes);
  } catch (const FileError& e) {
    throw FileError(fmt::format("{} ({})", e.what(), path.string()));
  }
}

void save_tensors(const std::filesystem::path& path, std::span<const TensorData> tensors,
                  const std::map<std::string, std::string>& metadata, const SaveOptions& options) {
  nlohmann::ordered_json header;
  std::map<std::string, std::string> meta = metadata;
  std::size_t at = 0;
  std::vector<std::pair<std::string, std::string>> described;
  std::vector<std::span<const std::uint8_t>> pieces;  // each tensor's bytes, in file order
  std::set<std::string> names;
  for (const TensorData& t : tensors) {
    if (!names.insert(t.name).second || t.name == "__metadata__")
      fail(fmt::format("two tensors are named '{}'", t.name));
    const std::size_t bytes =
        static_cast<std::size_t>(t.rows * t.cols) * dtype_size(std::string(t.dtype));
    header[t.name] = {
        {"dtype", t.dtype}, {"shape", {t.rows, t.cols}}, {"data_offsets", {at, at + bytes}}};
    described.emplace_back(t.name, describe(t.dtype, {t.rows, t.cols}));
    pieces.emplace_back(static_cast<const std::uint8_t*>(t.data), bytes);
    at += bytes;
  }
  if (options.checksum) {
    meta.erase(kCrcKey);
    meta[kCrcKey] = content_crc(described, pieces, meta);
  }
  if (!meta.empty()) {
    nlohmann::ordered_json m = meta;
    nlohmann::ordered_json h;
    h["__metadata__"] = m;
    for (auto& [k, v] : header.items()) h[k] = v;
    header = std::move(h);
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // data starts 8-byte aligned
  const std::uint64_t n = text.size();
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(fmt::format("cannot write '{}': {}", tmp.string(), std::strerror(errno)));
  try {
    write_all(fd, &n, 8, tmp.string());
    write_all(fd, text.data(), text.size(), tmp.string());
    for (const auto piece : pieces) write_all(fd, piece.data(), piece.size(), tmp.string());
    if (::fsync(fd) != 0)
      fail(fmt::format("cannot flush '{}' to the disk: {}", tmp.string(), std::strerror(errno)));
  } catch (...) {
    ::close(fd);
    std::filesystem::remove(tmp);
    throw;
  }
  if (::close(fd) != 0)
    fail(fmt::format("writing '{}' failed: {}", tmp.string(), std::strerror(errno)));
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec)
    fail(fmt::format("cannot rename '{}' to '{}': {}", tmp.string(), path.string(), ec.message()));
  // The rename is durable once the directory entry is on the disk too.
  const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : ".";
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

template <class T>
void save_parameters(const std::filesystem::path& path, const std::vector<Parameter<T>*>& params,
                     const std::map<std::string, std::string>& metadata) {
  std::vector<TensorData> tensors;
  std::set<std::string> names;
  for (const Parameter<T>* p : params) {
    if (!names.insert(p->name).second) fail(fmt::format("two parameters are named '{}'", p->name));
    tensors.push_back(tensor_data(p->name, p->value));
  }
  save_tensors(path, tensors, metadata);
}

template <class T>
std::vector<std::string> check_parameters(const TensorFile& file,
                                          const std::vector<Parameter<T>*>& params,
                                          const LoadOptions& options) {
  std::vector<std::string> problems, missing, unexpected;
  std::set<std::string> names;
  for (const Parameter<T>* p : params) {
    names.insert(p->name);
    const TensorEntry* e = file.find(p->name);
    if (e == nullptr) {
      if (!options.allow_missing) missing.push_back(p->name);
      continue;
    }
    if (e->dtype != dtype_of<T>() && !options.convert_dtype) {
      problems.push_back(fmt::format("'{}' is {} in the file but {} in the model", p->name,
                                     e->dtype, dtype_of<T>()));
    }
    const bool same =
        (e->shape.size() == 2 && e->shape[0] == p->value.rows() &&
         e->shape[1] == p->value.cols()) ||
        (e->shape.size() == 1 && p->value.rows() == 1 && e->shape[0] == p->value.cols());
    if (!same) {
      std::string s;
      for (Index d : e->shape) s += (s.empty() ? "" : "x") + std::to_string(d);
      problems.push_back(fmt::format("'{}' has shape {} in the file but {}x{} in the model",
                                     p->name, s.empty() ? "scalar" : s, p->value.rows(),
                                     p->value.cols()));
    }
  }
  for (const TensorEntry& e : file.entries) {
    if (names.count(e.name) == 0 && !options.allow_unexpected) unexpected.push_back(e.name);
  }
  if (!missing.empty()) problems.insert(problems.begin(), "missing: " + join(missing));
  if (!unexpected.empty()) problems.push_back("not in the model: " + join(unexpected));
  return problems;
}

template <class T>
void copy_tensor(const TensorFile& file, const TensorEntry& e, Matrix<T>& out) {
  const std::uint8_t* src = file.data.data() + e.begin;
  const auto count = static_cast<std::size_t>(out.size());
  if ((e.end - e.begin) != count * (e.dtype == "F32" ? 4 : 8))
    fail(fmt::format("tensor '{}' does not fit a {}x{} matrix", e.name, out.rows(), out.cols()));
  if (e.dtype == dtype_of<T>()) {
    if (count > 0) std::memcpy(out.data(), src, count * sizeof(T));
  } else if (e.dtype == "F32") {
    std::vector<float> v(count);
    std::memcpy(v.data(), src, count * 4);
    for (std::size_t i = 0; i < count; ++i) out.data()[i] = static_cast<T>(v[i]);
  } else {
    std::vector<double> v(count);
    std::memcpy(v.data(), src, count * 8);
    for (std::size_t i = 0; i < count; ++i) out.data()[i] = static_cast<T>(v[i]);
  }
}

template <class T>
void load_parameters(const std::filesystem::path& path, const std::vector<Parameter<T>*>& params,
                     const LoadOptions& options) {
  std::vector<std::uint8_t> bytes;
  const TensorFile file = read_tensor_file(path, bytes);
  const std::vector<std::string> problems = check_parameters(file, params, options);
  if (!problems.empty()) {
    fail(fmt::format("cannot load '{}' into the model: {}", path.string(), join(problems)));
  }
  for (Parameter<T>* p : params) {
    if (const TensorEntry* e = file.find(p->name)) {
      copy_tensor(file, *e, p->value);
      p->mark_changed();
    }
  }
}

template void save_parameters<float>(const std::filesystem::path&,
                                     const std::vector<Parameter<float>*>&,
                                     const std::map<std::string, std::string>&);
template void save_parameters<double>(const std::filesystem::path&,
                                      const std::vector<Parameter<double>*>&,
                                      const std::map<std::string, std::string>&);
template void load_parameters<float>(const std::filesystem::path&,
                                     const std::vector<Parameter<float>*>&, const LoadOptions&);
template void load_parameters<double>(const std::filesystem::path&,
                                      const std::vector<Parameter<double>*>&, const LoadOptions&);
template std::vector<std::string> check_parameters<float>(const TensorFile&,
                                                          const std::vector<Parameter<float>*>&,
                                                          const LoadOptions&);
template std::vector<std::string> check_parameters<double>(const TensorFile&,
                                                           const std::vector<Parameter<double>*>&,
                                                           const LoadOptions&);
template void copy_tensor<float>(const TensorFile&, const TensorEntry&, Matrix<float>&);
template void copy_tensor<double>(const TensorFile&, const TensorEntry&, Matrix<double>&);

}  // namespace rwd::layers
