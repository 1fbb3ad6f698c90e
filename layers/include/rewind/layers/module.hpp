// What every layer offers: its parameters by name, in a fixed order.
#pragma once

#include <rewind/autograd/errors.hpp>
#include <rewind/autograd/parameter.hpp>
#include <string_view>
#include <vector>

namespace rwd::layers {

/// Total number of scalars in a list of parameters.
template <class T>
Index parameter_count(const std::vector<Parameter<T>*>& params) {
  Index n = 0;
  for (const Parameter<T>* p : params) n += p->size();
  return n;
}

/// The parameter with this name; UsageError naming the known ones if there is none, and one
/// if two parameters have the name (a stack of cells that were not given unique names).
template <class T>
Parameter<T>& find_parameter(const std::vector<Parameter<T>*>& params, std::string_view name) {
  std::string known;
  Parameter<T>* found = nullptr;
  for (Parameter<T>* p : params) {
    if (p->name == name) {
      if (found != nullptr) {
        throw UsageError(fmt::format(
            "find_parameter: two parameters are named '{}': give them unique names", name));
      }
      found = p;
    }
    known += known.empty() ? p->name : ", " + p->name;
  }
  if (found != nullptr) return *found;
  throw UsageError(fmt::format("find_parameter: no parameter named '{}' (have: {})", name, known));
}

/// Appends `more` to `all` (for layers made of layers).
template <class T>
void append(std::vector<Parameter<T>*>& all, const std::vector<Parameter<T>*>& more) {
  all.insert(all.end(), more.begin(), more.end());
}

}  // namespace rwd::layers
