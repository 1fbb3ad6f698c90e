// Graphs laid out by Graphviz for the interactive page: a Sketch (labels, cluster paths, edges)
// becomes DOT, dot lays it out through libgvc, and the positions come back as a Laid.
#include "page_layout.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <set>

#include "structure.hpp"

#if REWIND_HAVE_GVC
#include <graphviz/cgraph.h>
#include <graphviz/gvc.h>
#endif

namespace rwd::viz {
namespace {
std::string sketch_dot(const Sketch& s) {
  std::string dot =
      "digraph t {\n graph [fontname=\"Helvetica\", fontsize=9, nodesep=0.2, ranksep=0.25, "
      "newrank=true];\n node [fontname=\"Helvetica\", fontsize=9, shape=box, height=0.3];\n";
  // Clusters nested by path; nodes in their cluster.
  std::map<std::string, std::vector<long>> members;
  std::set<std::string> paths;
  for (std::size_t k = 0; k < s.labels.size(); ++k) {
    members[s.clusters[k]].push_back(static_cast<long>(k));
    const auto parts = split_path(s.clusters[k]);
    for (std::size_t c = 1; c <= parts.size(); ++c) paths.insert(join(parts, c));
  }
  std::map<std::string, std::vector<std::string>> children;
  for (const std::string& p : paths) {
    const auto parts = split_path(p);
    children[join(parts, parts.size() - 1)].push_back(p);
  }
  std::vector<std::pair<std::string, bool>> stack{{"", false}};
  while (!stack.empty()) {
    const auto [path, closing] = stack.back();
    stack.pop_back();
    if (closing) {
      dot += "}\n";
      continue;
    }
    if (!path.empty()) {
      dot += fmt::format("subgraph \"cluster_{}\" {{ label=\"{}\";\n", viz::escape(path),
                         viz::escape(split_path(path).back()));
      stack.push_back({path, true});
    }
    for (long k : members[path])
      dot += fmt::format("s{} [label=\"{}\"];\n", k,
                         viz::escape(s.labels[static_cast<std::size_t>(k)]));
    const auto& kids = children[path];
    for (auto it = kids.rbegin(); it != kids.rend(); ++it) stack.push_back({*it, false});
  }
  std::set<std::pair<long, long>> seen;
  for (const auto& [a, b] : s.edges) {
    if (a != b && seen.emplace(a, b).second) dot += fmt::format("s{} -> s{};\n", a, b);
  }
  dot += "}\n";
  return dot;
}

#if REWIND_HAVE_GVC
double attr_number(const char* s) { return s == nullptr ? 0 : std::strtod(s, nullptr); }

// "llx,lly,urx,ury"
std::array<double, 4> parse_bb(const char* s) {
  std::array<double, 4> bb{0, 0, 0, 0};
  if (s != nullptr) std::sscanf(s, "%lf,%lf,%lf,%lf", &bb[0], &bb[1], &bb[2], &bb[3]);
  return bb;
}

// Graphviz's spline "e,x,y s,x,y x0,y0 x1,y1 ..." as an SVG path with y flipped.
std::string spline_path(const char* pos, double top) {
  if (pos == nullptr) return {};
  std::istringstream in(pos);
  std::string token, path;
  std::vector<std::pair<double, double>> points;
  std::optional<std::pair<double, double>> end;
  while (in >> token) {
    double x = 0, y = 0;
    if (token.rfind("e,", 0) == 0) {
      if (std::sscanf(token.c_str() + 2, "%lf,%lf", &x, &y) == 2) end = {{x, y}};
    } else if (token.rfind("s,", 0) == 0) {
      continue;
    } else if (std::sscanf(token.c_str(), "%lf,%lf", &x, &y) == 2) {
      points.emplace_back(x, y);
      if (token.find(';') != std::string::npos) break;  // only the first of several splines
    }
  }
  if (points.empty()) return {};
  const auto pt = [&](const std::pair<double, double>& p) {
    return coord(p.first) + "," + coord(top - p.second);
  };
  path = "M" + pt(points[0]);
  for (std::size_t k = 1; k + 2 < points.size(); k += 3)
    path += "C" + pt(points[k]) + " " + pt(points[k + 1]) + " " + pt(points[k + 2]);
  if (end) path += "L" + pt(*end);
  return path;
}
#endif

}  // namespace

Laid lay_out(const Sketch& s) {
  Laid L;
  L.nodes.resize(s.labels.size());
  L.rel = s.clusters;
#if REWIND_HAVE_GVC
  viz::with_layout(sketch_dot(s), "write_html", [&](Agraph_s* g) {
    viz::render_data(g, "dot");  // attaches pos, width, height and bb as attributes
    const auto bb = parse_bb(agget(g, const_cast<char*>("bb")));
    const double left = bb[0], top = bb[3];
    L.w = bb[2] - bb[0];
    L.h = bb[3] - bb[1];
    for (Agnode_t* n = agfstnode(g); n != nullptr; n = agnxtnode(g, n)) {
      const long k = std::strtol(agnameof(n) + 1, nullptr, 10);
      double x = 0, y = 0;
      std::sscanf(agget(n, const_cast<char*>("pos")), "%lf,%lf", &x, &y);
      const double w = attr_number(agget(n, const_cast<char*>("width"))) * 72;
      const double h = attr_number(agget(n, const_cast<char*>("height"))) * 72;
      L.nodes[static_cast<std::size_t>(k)] = {x - left - w / 2, top - y - h / 2, w, h};
      for (Agedge_t* e = agfstout(g, n); e != nullptr; e = agnxtout(g, e)) {
        const long to = std::strtol(agnameof(aghead(e)) + 1, nullptr, 10);
        L.edges.emplace_back(k, to, spline_path(agget(e, const_cast<char*>("pos")), top));
      }
    }
    std::vector<Agraph_t*> stack{g};
    while (!stack.empty()) {
      Agraph_t* sub = stack.back();
      stack.pop_back();
      for (Agraph_t* c = agfstsubg(sub); c != nullptr; c = agnxtsubg(c)) {
        const std::string name = agnameof(c);
        if (name.rfind("cluster_", 0) == 0) {
          const auto cb = parse_bb(agget(c, const_cast<char*>("bb")));
          L.clusters.push_back(
              {name.substr(8), {cb[0] - left, top - cb[3], cb[2] - cb[0], cb[3] - cb[1]}});
        }
        stack.push_back(c);
      }
    }
  });
  // Graphviz's iteration order follows its internal ids, which follow creation: sort anyway so
  // the output never depends on it.
  std::sort(L.edges.begin(), L.edges.end());
  std::sort(L.clusters.begin(), L.clusters.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
#else
  viz::with_layout({}, "write_html", {});
#endif
  return L;
}

// A grid for regions too big to lay out as a graph (thousands of loose ops).
Laid grid(const Sketch& s) {
  Laid L;
  L.rel = s.clusters;
  const std::size_t per_row = 40;
  constexpr double kW = 72, kH = 28, kGap = 8;
  for (std::size_t k = 0; k < s.labels.size(); ++k) {
    const double x = static_cast<double>(k % per_row) * (kW + kGap);
    const double y = static_cast<double>(k / per_row) * (kH + kGap);
    L.nodes.push_back({x, y, kW, kH});
    L.w = std::max(L.w, x + kW);
    L.h = std::max(L.h, y + kH);
  }
  return L;
}

void put_laid(std::string& out, const Laid& L, Strings& strings) {
  out += fmt::format("\"w\":{},\"h\":{},\"x\":", coord(L.w), coord(L.h));
  put_array(out, L.nodes, [&](const Box& b) { out += coord(b.x); });
  out += ",\"y\":";
  put_array(out, L.nodes, [&](const Box& b) { out += coord(b.y); });
  out += ",\"nw\":";
  put_array(out, L.nodes, [&](const Box& b) { out += coord(b.w); });
  out += ",\"nh\":";
  put_array(out, L.nodes, [&](const Box& b) { out += coord(b.h); });
  out += ",\"rel\":";
  put_array(out, L.rel, [&](const std::string& r) { out += std::to_string(strings.of(r)); });
  out += ",\"clusters\":";
  put_array(out, L.clusters, [&](const auto& c) {
    out += fmt::format("[{},{},{},{},{}]", strings.of(c.first), coord(c.second.x),
                       coord(c.second.y), coord(c.second.w), coord(c.second.h));
  });
  out += ",\"edges\":";
  put_array(out, L.edges, [&](const auto& e) {
    out += fmt::format("[{},{},", std::get<0>(e), std::get<1>(e));
    put_string(out, std::get<2>(e));
    out += ']';
  });
}

}  // namespace rwd::viz
