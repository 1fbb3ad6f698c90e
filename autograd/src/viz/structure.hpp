// What the graph writers (DOT, the HTML page) share: scope paths split into components, time-step
// components (t<k>), where each tape node sits in the unrolled structure, and Graphviz's library
// behind one lock. Internal to autograd/src/viz.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rewind/autograd/tape.hpp"

struct Agraph_s;

namespace rwd::viz {

/// DOT string escape (quotes and backslashes).
std::string escape(std::string_view s);
/// "a/b/c" -> {"a", "b", "c"}; "" -> {}.
std::vector<std::string> split_path(const std::string& path);
/// The first `count` components joined by '/'.
std::string join(const std::vector<std::string>& parts, std::size_t count);
/// A time-step component: t followed by digits.
std::optional<long> step_of(const std::string& part);

/// The parameters an op takes, as the second label line ends in both graphs (" · w_f,b_f" under
/// `affine 2x16`); "" for a leaf or an op that takes none.
template <class T>
std::string parameter_suffix(const Tape<T>& tape, std::size_t i) {
  std::string out;
  for (const std::uint32_t j : tape.inputs_of(i)) {  // none for a leaf
    if (std::holds_alternative<ops::Param>(tape.op(j)))
      out += (out.empty() ? " · " : ",") + std::string(tape.label(j));
  }
  return out;
}

/// 9 colours from cool (small) to warm (large): ColorBrewer RdYlBu, reversed.
inline constexpr const char* kPalette[9] = {"#313695", "#4575b4", "#74add1", "#abd9e9", "#e0f3f8",
                                            "#fee090", "#fdae61", "#f46d43", "#d73027"};

/// Where a node sits in the unrolled structure.
struct Place {
  std::vector<std::string> path;  ///< scope components (parameters lifted out of time steps)
  std::string sequence;           ///< the scope path before the time-step component, if any
  std::optional<long> step;
  std::size_t step_component = 0;  ///< index of the t<k> component in the full scope path
};

/// Places of every node of a tape: parameters belong to their sequence, not to a step.
template <class T>
std::vector<Place> places_of(const Tape<T>& tape) {
  std::vector<Place> places(tape.size());
  for (std::size_t i = 0; i < tape.size(); ++i) {
    Place& p = places[i];
    p.path = split_path(tape.scope_path(i));
    for (std::size_t c = 0; c < p.path.size(); ++c) {
      if (const auto s = step_of(p.path[c])) {
        p.step = s;
        p.step_component = c;
        p.sequence = join(p.path, c);
        if (std::holds_alternative<ops::Param>(tape.op(i))) {
          p.path.resize(c);
          p.step.reset();
        }
        break;
      }
    }
  }
  return places;
}

/// The Frobenius norm, accumulated in double.
template <class T>
double norm_of(const ConstMap<T>& m) {
  return static_cast<double>(m.template cast<double>().norm());
}

/// Whether this build has Graphviz's library.
bool have_gvc();
/// Parses DOT, lays it out with `dot` and calls `use` on the laid-out graph, under the process-
/// wide Graphviz lock. Graphviz's errors come back as FileError naming `who`; without libgvc it
/// throws UsageError.
void with_layout(const std::string& dot, std::string_view who,
                 const std::function<void(Agraph_s*)>& use);
/// Renders a laid-out graph (inside with_layout's callback) to a string in `format` ("svg",
/// "dot" attaches positions as attributes).
std::string render_data(Agraph_s* g, const char* format);

}  // namespace rwd::viz
