#include <algorithm>
#include <bit>
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

}  // namespace

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
  return file;
}

template <class T>
void save_parameters(const std::filesystem::path& path, const std::vector<Parameter<T>*>& params,
                     const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header;
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::size_t at = 0;
  for (const Parameter<T>* p : params) {
    if (header.contains(p->name)) fail(fmt::format("two parameters are named '{}'", p->name));
    const std::size_t bytes = static_cast<std::size_t>(p->value.size()) * sizeof(T);
    header[p->name] = {{"dtype", dtype_of<T>()},
                       {"shape", {p->value.rows(), p->value.cols()}},
                       {"data_offsets", {at, at + bytes}}};
    at += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // data starts 8-byte aligned
  const std::uint64_t n = text.size();
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail(fmt::format("cannot write '{}'", tmp.string()));
    out.write(reinterpret_cast<const char*>(&n), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const Parameter<T>* p : params) {
      out.write(
          reinterpret_cast<const char*>(p->value.data()),
          static_cast<std::streamsize>(static_cast<std::size_t>(p->value.size()) * sizeof(T)));
    }
    out.close();
    if (!out) fail(fmt::format("writing '{}' failed", tmp.string()));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec)
    fail(fmt::format("cannot rename '{}' to '{}': {}", tmp.string(), path.string(), ec.message()));
}

template <class T>
void load_parameters(const std::filesystem::path& path, const std::vector<Parameter<T>*>& params,
                     const LoadOptions& options) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(fmt::format("cannot open '{}'", path.string()));
  const std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                        std::istreambuf_iterator<char>());
  TensorFile file;
  try {
    file = parse_tensor_file(bytes);
  } catch (const FileError& e) {
    throw FileError(fmt::format("{} ({})", e.what(), path.string()));
  }
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
  const auto join = [](const std::vector<std::string>& v) {
    std::string s;
    for (const std::string& x : v) s += (s.empty() ? "" : ", ") + x;
    return s;
  };
  if (!missing.empty()) problems.insert(problems.begin(), "missing: " + join(missing));
  if (!unexpected.empty()) problems.push_back("not in the model: " + join(unexpected));
  if (!problems.empty()) {
    fail(fmt::format("cannot load '{}' into the model: {}", path.string(), join(problems)));
  }
  for (Parameter<T>* p : params) {
    const TensorEntry* e = file.find(p->name);
    if (e == nullptr) continue;
    const std::uint8_t* src = file.data.data() + e->begin;
    const auto count = static_cast<std::size_t>(p->value.size());
    if (e->dtype == "F32") {
      std::vector<float> v(count);
      std::memcpy(v.data(), src, count * 4);
      for (std::size_t i = 0; i < count; ++i) p->value.data()[i] = static_cast<T>(v[i]);
    } else {
      std::vector<double> v(count);
      std::memcpy(v.data(), src, count * 8);
      for (std::size_t i = 0; i < count; ++i) p->value.data()[i] = static_cast<T>(v[i]);
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

}  // namespace rwd::layers
