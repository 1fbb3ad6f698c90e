#include <algorithm>
#include <charconv>
#include <fstream>
#include <rewind/layers/safetensors.hpp>
#include <rewind/optim/checkpoint.hpp>
#include <set>

namespace rwd::optim {
namespace {

constexpr const char* kFormat = "rewind training checkpoint 1";
constexpr const char* kOptimizerPrefix = "optimizer/";
constexpr const char* kStatePrefix = "state/";

template <class T>
constexpr const char* dtype_name() {
  return sizeof(T) == 4 ? "F32" : "F64";
}

// Shortest round-trip text (fmt's default for double), so reading it back gives the same bits.
std::string exact(double v) { return fmt::format("{}", v); }

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// A number from the metadata; on failure the problem is recorded and 0 returned.
template <class N>
N number(const std::map<std::string, std::string>& meta, const std::string& key,
         std::vector<std::string>& problems) {
  const auto it = meta.find(key);
  if (it == meta.end()) {
    problems.push_back(fmt::format("'{}' is missing", key));
    return N{};
  }
  N v{};
  const char* end = it->second.data() + it->second.size();
  const auto r = std::from_chars(it->second.data(), end, v);
  if (r.ec != std::errc() || r.ptr != end) {
    problems.push_back(fmt::format("'{}' is not a number: '{}'", key, it->second));
    return N{};
  }
  return v;
}

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string s;
  for (const std::string& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

}  // namespace

template <class T>
const Matrix<T>& TrainingState<T>::tensor(const std::string& name) const {
  for (const auto& [n, m] : tensors) {
    if (n == name) return m;
  }
  throw UsageError(fmt::format("TrainingState: no tensor named '{}'", name));
}

template <class T>
const std::string& TrainingState<T>::at(const std::string& key) const {
  const auto it = info.find(key);
  if (it == info.end()) throw FileError(fmt::format("checkpoint: '{}' is missing", key));
  return it->second;
}

template <class T>
void save_checkpoint(const std::filesystem::path& path, const std::vector<Parameter<T>*>& params,
                     const Optimizer<T>& optimizer, const TrainingState<T>& state) {
  const OptimizerState<T> opt = optimizer.state();
  std::vector<layers::TensorData> tensors;
  for (const Parameter<T>* p : params) {
    if (starts_with(p->name, kOptimizerPrefix) || starts_with(p->name, kStatePrefix))
      throw UsageError(fmt::format("save_checkpoint: parameter name '{}' is reserved", p->name));
    tensors.push_back(layers::tensor_data(p->name, p->value));
  }
  for (const auto& t : opt.tensors)
    tensors.push_back(layers::tensor_data(kOptimizerPrefix + t.param + "/" + t.name, t.value));
  for (const auto& [name, m] : state.tensors)
    tensors.push_back(layers::tensor_data(kStatePrefix + name, m));
  std::map<std::string, std::string> meta{
      {"rewind.format", kFormat},           {"dtype", dtype_name<T>()},
      {"step", std::to_string(state.step)}, {"rng", state.rng},
      {"optimizer.kind", opt.kind},         {"optimizer.step", std::to_string(opt.step)},
      {"optimizer.lr", exact(opt.lr)}};
  for (const auto& [k, v] : opt.hyperparameters) meta["optimizer.hp." + k] = exact(v);
  for (const auto& [k, v] : state.info) meta["info." + k] = v;
  layers::save_tensors(path, tensors, meta, {.checksum = true});
}

// Parses a checkpoint's bytes: FileError for a damaged file or one that is not a checkpoint.
layers::TensorFile parse_checkpoint(std::span<const std::uint8_t> bytes, const std::string& name) {
  layers::TensorFile file;
  try {
    file = layers::parse_tensor_file(bytes);
  } catch (const FileError& e) {
    throw FileError(fmt::format("{} ({})", e.what(), name));
  }
  const auto format = file.metadata.find("rewind.format");
  if (format == file.metadata.end() || format->second != kFormat ||
      file.metadata.count("rewind.crc32") == 0) {
    throw FileError(fmt::format(
        "checkpoint: cannot resume from '{}': not a rewind training checkpoint (a weight file?)",
        name));
  }
  return file;
}

template <class T>
TrainingState<T> load_checkpoint(const std::filesystem::path& path,
                                 const std::vector<Parameter<T>*>& params,
                                 Optimizer<T>& optimizer) {
  std::vector<std::uint8_t> bytes;
  try {
    bytes = layers::read_file(path);
  } catch (const FileError&) {
    throw FileError(fmt::format("checkpoint: cannot open '{}'", path.string()));
  }
  return load_checkpoint(bytes, path.string(), params, optimizer);
}

template <class T>
TrainingState<T> load_checkpoint(std::span<const std::uint8_t> bytes, const std::string& name,
                                 const std::vector<Parameter<T>*>& params,
                                 Optimizer<T>& optimizer) {
  const layers::TensorFile file = parse_checkpoint(bytes, name);
  const auto& meta = file.metadata;
  std::vector<std::string> problems;
  if (meta.count("dtype") == 0 || meta.at("dtype") != dtype_name<T>()) {
    problems.push_back(fmt::format("it holds {} values, the model is {}",
                                   meta.count("dtype") ? meta.at("dtype") : "unknown",
                                   dtype_name<T>()));
  }
  // Parameters: every one present with its shape; nothing else outside the two prefixes.
  std::set<std::string> names;
  for (const Parameter<T>* p : params) names.insert(p->name);
  std::vector<std::string> unexpected;
  for (const layers::TensorEntry& e : file.entries) {
    if (!starts_with(e.name, kOptimizerPrefix) && !starts_with(e.name, kStatePrefix) &&
        names.count(e.name) == 0)
      unexpected.push_back(e.name);
  }
  for (std::string& p : layers::check_parameters(file, params, {.allow_unexpected = true}))
    problems.push_back(std::move(p));
  if (!unexpected.empty()) problems.push_back("not in the model: " + join(unexpected, ", "));
  // The optimizer's state.
  OptimizerState<T> opt;
  opt.kind = meta.count("optimizer.kind") ? meta.at("optimizer.kind") : "";
  opt.step = number<long>(meta, "optimizer.step", problems);
  opt.lr = number<double>(meta, "optimizer.lr", problems);
  for (const auto& [k, v] : meta) {
    if (starts_with(k, "optimizer.hp."))
      opt.hyperparameters[k.substr(13)] = number<double>(meta, k, problems);
  }
  TrainingState<T> state;
  state.step = number<long>(meta, "step", problems);
  if (const auto rng = meta.find("rng"); rng != meta.end()) state.rng = rng->second;
  for (const auto& [k, v] : meta) {
    if (starts_with(k, "info.")) state.info[k.substr(5)] = v;
  }
  for (const layers::TensorEntry& e : file.entries) {
    const bool is_opt = starts_with(e.name, kOptimizerPrefix);
    if (!is_opt && !starts_with(e.name, kStatePrefix)) continue;
    const Index rows = e.shape.size() == 2 ? e.shape[0] : 1;
    const Index cols = e.shape.empty() ? 1 : e.shape.back();
    Matrix<T> m(rows, cols);
    layers::copy_tensor(file, e, m);
    if (is_opt) {
      const std::string rest = e.name.substr(std::string(kOptimizerPrefix).size());
      const std::size_t slash = rest.rfind('/');
      if (slash == std::string::npos || slash == 0) {
        problems.push_back(fmt::format("tensor '{}' names no parameter and buffer", e.name));
        continue;
      }
      opt.tensors.push_back({rest.substr(0, slash), rest.substr(slash + 1), std::move(m)});
    } else {
      state.tensors.emplace_back(e.name.substr(std::string(kStatePrefix).size()), std::move(m));
    }
  }
  for (std::string& p : optimizer.check_state(opt)) problems.push_back("optimizer: " + p);
  // The file itself is sound (its checksum matched): what is left is a model or optimizer that
  // is not the one it was made for, a mistake of the caller's rather than a damaged file.
  if (!problems.empty()) {
    throw UsageError(fmt::format("checkpoint: '{}' does not fit this model and optimizer: {}", name,
                                 join(problems, "; ")));
  }
  for (Parameter<T>* p : params) {
    layers::copy_tensor(file, *file.find(p->name), p->value);
    p->mark_changed();
  }
  optimizer.load_state(opt);
  return state;
}

CheckpointDir::CheckpointDir(std::filesystem::path dir, int keep)
    : dir_(std::move(dir)), keep_(keep) {}

std::filesystem::path CheckpointDir::path_for(long step) const {
  return dir_ / fmt::format("step-{:08d}.safetensors", step);
}

std::vector<std::pair<long, std::filesystem::path>> CheckpointDir::list() const {
  std::vector<std::pair<long, std::filesystem::path>> out;
  std::error_code ec;
  if (!std::filesystem::is_directory(dir_, ec)) return out;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
    const std::string name = entry.path().filename().string();
    long step = 0;
    const char* b = name.data() + 5;
    const char* e = name.data() + name.size() - 12;
    if (name.size() > 17 && starts_with(name, "step-") &&
        name.compare(name.size() - 12, 12, ".safetensors") == 0 &&
        std::from_chars(b, e, step).ptr == e)
      out.emplace_back(step, entry.path());
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  return out;
}

template <class T>
std::filesystem::path CheckpointDir::save(const std::vector<Parameter<T>*>& params,
                                          const Optimizer<T>& optimizer,
                                          const TrainingState<T>& state) const {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec)
    throw FileError(fmt::format("checkpoint: cannot create '{}': {}", dir_.string(), ec.message()));
  const std::filesystem::path path = path_for(state.step);
  save_checkpoint(path, params, optimizer, state);
  if (keep_ > 0) {
    const auto all = list();
    for (std::size_t k = static_cast<std::size_t>(keep_); k < all.size(); ++k)
      std::filesystem::remove(all[k].second, ec);
  }
  return path;
}

std::optional<CheckpointDir::Found> CheckpointDir::latest(
    std::vector<std::string>* rejected) const {
  for (auto& [step, path] : list()) {
    try {
      std::vector<std::uint8_t> bytes = layers::read_file(path);
      parse_checkpoint(bytes, path.string());
      return Found{std::move(path), std::move(bytes)};
    } catch (const FileError& e) {
      if (rejected) rejected->push_back(e.what());
    }
  }
  return std::nullopt;
}

template <class T>
std::optional<TrainingState<T>> CheckpointDir::load_latest(const std::vector<Parameter<T>*>& params,
                                                           Optimizer<T>& optimizer,
                                                           std::vector<std::string>* rejected,
                                                           std::filesystem::path* chosen) const {
  const auto found = latest(rejected);
  if (!found) return std::nullopt;
  if (chosen) *chosen = found->path;
  return load_checkpoint<T>(found->bytes, found->path.string(), params, optimizer);
}

#define REWIND_INSTANTIATE_CHECKPOINT(T)                                                          \
  template struct TrainingState<T>;                                                               \
  template void save_checkpoint<T>(const std::filesystem::path&,                                  \
                                   const std::vector<Parameter<T>*>&, const Optimizer<T>&,        \
                                   const TrainingState<T>&);                                      \
  template TrainingState<T> load_checkpoint<T>(const std::filesystem::path&,                      \
                                               const std::vector<Parameter<T>*>&, Optimizer<T>&); \
  template std::filesystem::path CheckpointDir::save<T>(                                          \
      const std::vector<Parameter<T>*>&, const Optimizer<T>&, const TrainingState<T>&) const;     \
  template TrainingState<T> load_checkpoint<T>(std::span<const std::uint8_t>, const std::string&, \
                                               const std::vector<Parameter<T>*>&, Optimizer<T>&); \
  template std::optional<TrainingState<T>> CheckpointDir::load_latest<T>(                         \
      const std::vector<Parameter<T>*>&, Optimizer<T>&, std::vector<std::string>*,                \
      std::filesystem::path*) const;
REWIND_INSTANTIATE_CHECKPOINT(float)
REWIND_INSTANTIATE_CHECKPOINT(double)
#undef REWIND_INSTANTIATE_CHECKPOINT

}  // namespace rwd::optim
