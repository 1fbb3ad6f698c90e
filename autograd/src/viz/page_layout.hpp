// The interactive page's data (private header of autograd/src/viz): JSON text, and graphs laid
// out by Graphviz (nodes, clusters, edge paths) as the page draws them. page_layout.cpp lays out;
// html.cpp writes the page.
#pragma once

#include <fmt/format.h>

#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

namespace rwd::viz {

// ---- JSON text ------------------------------------------------------------------------------

// A JSON string, safe inside <script>: '<', '>' and '&' are escaped too.
inline void put_string(std::string& out, std::string_view s) {
  out += '"';
  for (const char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '<':
        out += "\\u003c";
        break;
      case '>':
        out += "\\u003e";
        break;
      case '&':
        out += "\\u0026";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<int>(c));
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

// Four significant digits; NaN and infinities as strings the page turns back into numbers.
inline void put_number(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "\"NaN\"";
  } else if (std::isinf(v)) {
    out += v > 0 ? "\"Infinity\"" : "\"-Infinity\"";
  } else if (v == 0) {
    out += '0';
  } else {
    out += fmt::format("{:.4g}", v);
  }
}

// One decimal, for coordinates.
inline std::string coord(double v) {
  std::string s = fmt::format("{:.1f}", v);
  if (s.size() > 2 && s.compare(s.size() - 2, 2, ".0") == 0) s.resize(s.size() - 2);
  if (s == "-0") s = "0";
  return s;
}

template <class Range, class F>
void put_array(std::string& out, const Range& r, F&& put) {
  out += '[';
  bool first = true;
  for (const auto& x : r) {
    if (!first) out += ',';
    first = false;
    put(x);
  }
  out += ']';
}

inline void put_ints(std::string& out, const std::vector<long>& v) {
  put_array(out, v, [&](long x) { out += std::to_string(x); });
}

// Interned strings: the page's table refers to them by index.
struct Strings {
  std::vector<std::string> list;
  std::map<std::string, long, std::less<>> index;
  long of(std::string_view s) {
    const auto it = index.find(s);
    if (it != index.end()) return it->second;
    list.emplace_back(s);
    index.emplace(std::string(s), static_cast<long>(list.size() - 1));
    return static_cast<long>(list.size() - 1);
  }
};

// ---- Graphviz layout ---------------------------------------------------------------------------

struct Box {
  double x = 0, y = 0, w = 0, h = 0;  // top-left corner, points, y down
};

struct Laid {
  double w = 0, h = 0;
  std::vector<Box> nodes;  // by node number (DOT names s<k>)
  std::vector<std::pair<std::string, Box>> clusters;
  std::vector<std::tuple<long, long, std::string>> edges;  // from, to, SVG path
  std::vector<std::string> rel;  // cluster path of each node (templates: below the step)
};

// The parts of a graph to lay out: node labels (two lines), the cluster path of each node, and
// edges between node numbers.
struct Sketch {
  std::vector<std::string> labels;
  std::vector<std::string> clusters;
  std::vector<std::pair<long, long>> edges;
};

/// A sketch laid out by Graphviz's dot (libgvc; check_options made sure it is there).
Laid lay_out(const Sketch& s);
/// A sketch too big for dot: its nodes in a grid, no edges.
Laid grid(const Sketch& s);
/// L's fields as JSON members (no braces).
void put_laid(std::string& out, const Laid& L, Strings& strings);

}  // namespace rwd::viz
