#include "rewind/autograd/recording.hpp"

#include <utility>

#include "sweep/common.hpp"

namespace rwd::detail {

template <class T>
Recording<T>::Recording() {
  scopes.push_back(ScopeEntry{0, ""});
}

template <class T>
std::string_view Recording<T>::op_name(std::size_t i) const {
  const Op& o = nodes.at(i).op;
  if (const auto* c = std::get_if<ops::Custom>(&o)) return c->fn->name();
  return rwd::op_name(o);
}

template <class T>
std::string Recording<T>::scope_string(std::uint32_t scope) const {
  std::vector<std::string_view> parts;
  for (std::uint32_t s = scope; s != 0; s = scopes[s].parent) parts.push_back(scopes[s].name);
  std::string path;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    if (!path.empty()) path += '/';
    path += *it;
  }
  return path;
}

template <class T>
void Recording<T>::clear() {
  nodes.clear();
  edges.clear();
  values.reset();
  indices.reset();
  labels.clear();
  params.clear();
  customs.clear();
  // Keep the open scopes (guards still alive) as the new chain from the root.
  std::vector<std::string> open;
  for (std::uint32_t s = current_scope; s != 0; s = scopes[s].parent) {
    open.push_back(std::move(scopes[s].name));
  }
  scopes.resize(1);
  current_scope = 0;
  for (auto it = open.rbegin(); it != open.rend(); ++it) {
    scopes.push_back(ScopeEntry{current_scope, std::move(*it)});
    current_scope = static_cast<std::uint32_t>(scopes.size() - 1);
  }
  ++generation;
}

template <class T>
std::size_t Recording<T>::capacity_bytes() const {
  std::size_t b = bytes_of(nodes) + bytes_of(edges) + values.capacity() * sizeof(T) +
                  indices.capacity() * sizeof(std::int32_t) + bytes_of(scopes) + bytes_of(labels) +
                  bytes_of(params) + bytes_of(customs) + bytes_of(packs) + bytes_of(pack_owner) +
                  bytes_of(pack_version);
  for (const auto& p : packs) b += sizeof(*p) + p->capacity() * sizeof(T);
  return b;
}

// Anomaly mode's check lives with the recording: record() and the reverse sweep both use it.
template <class T>
void check_finite(const Recording<T>& rec, std::span<const TensorRef<T>> inputs,
                  std::string_view op, std::uint32_t scope, std::string_view what,
                  const TensorRef<T>& t) {
  const ConstMap<T> m(t.data, t.rows, t.cols);
  if (all_finite(m)) return;
  std::string listed;
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    const ConstMap<T> v(inputs[k].data, inputs[k].rows, inputs[k].cols);
    listed += fmt::format("{}{}x{}", k == 0 ? "" : ", ", v.rows(), v.cols());
    if (v.size() > 0) listed += fmt::format(" in [{:g}, {:g}]", v.minCoeff(), v.maxCoeff());
  }
  const std::string where = rec.scope_string(scope);
  throw NumericalError(fmt::format(
      "anomaly: {} at {}: {} in {}; inputs: {}", op, where.empty() ? "the top level" : where,
      m.array().isNaN().any() ? "NaN" : "Inf", what, listed.empty() ? "none" : listed));
}

template class Recording<float>;
template class Recording<double>;
template void check_finite<float>(const Recording<float>&, std::span<const TensorRef<float>>,
                                  std::string_view, std::uint32_t, std::string_view,
                                  const TensorRef<float>&);
template void check_finite<double>(const Recording<double>&, std::span<const TensorRef<double>>,
                                   std::string_view, std::uint32_t, std::string_view,
                                   const TensorRef<double>&);

}  // namespace rwd::detail
