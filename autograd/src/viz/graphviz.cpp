#include "rewind/autograd/graphviz.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <mutex>
#include <optional>
#include <ostream>
#include <set>
#include <sstream>
#include <vector>

#include "structure.hpp"

#if REWIND_HAVE_GVC
#include <graphviz/cgraph.h>
#include <graphviz/gvc.h>
#endif

namespace rwd {
namespace viz {

std::string escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  std::size_t at = 0;
  while (at < path.size()) {
    const std::size_t slash = path.find('/', at);
    parts.push_back(path.substr(at, slash == std::string::npos ? std::string::npos : slash - at));
    if (slash == std::string::npos) break;
    at = slash + 1;
  }
  return parts;
}

std::string join(const std::vector<std::string>& parts, std::size_t count) {
  std::string s;
  for (std::size_t k = 0; k < std::min(count, parts.size()); ++k)
    s += (k == 0 ? "" : "/") + parts[k];
  return s;
}

std::optional<long> step_of(const std::string& part) {
  if (part.size() < 2 || part[0] != 't') return std::nullopt;
  long v = 0;
  const auto [end, ec] = std::from_chars(part.data() + 1, part.data() + part.size(), v);
  if (ec != std::errc() || end != part.data() + part.size()) return std::nullopt;
  return v;
}

}  // namespace viz

namespace {
using viz::escape;
using viz::join;
using viz::kPalette;
using viz::Place;
using viz::split_path;

// How a configuration maps tape nodes to drawn nodes.
struct Layout {
  std::vector<std::string> rep;                     // drawn id per tape node
  std::map<std::string, std::size_t> folded_steps;  // placeholder id -> steps folded
  std::map<std::string, std::string> fold_label;    // placeholder id -> label
  std::map<std::string, std::string> fold_cluster;  // placeholder/summary id -> cluster path
  std::map<std::string, std::size_t> summary_ops;   // summary id -> ops inside
  std::size_t drawn = 0;
  std::size_t folded = 0;
  bool collapsed = false;
};

template <class T>
Layout plan(const Tape<T>& tape, const std::vector<Place>& places, bool rolled, int keep,
            bool collapse) {
  Layout L;
  const std::size_t n = tape.size();
  L.rep.resize(n);
  std::map<std::string, std::vector<long>> steps;  // sequence -> sorted distinct steps
  for (const Place& p : places) {
    if (p.step) steps[p.sequence].push_back(*p.step);
  }
  std::map<std::string, std::set<long>> folded;
  std::map<std::string, std::size_t> seq_index;
  for (auto& [seq, v] : steps) {
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    seq_index.emplace(seq, seq_index.size());
    const auto k = static_cast<std::size_t>(std::max(keep, 1));
    if (rolled && v.size() > 2 * k) {
      for (std::size_t j = k; j + k < v.size(); ++j) folded[seq].insert(v[j]);
    }
  }
  std::set<std::string> seen;
  for (std::size_t i = 0; i < n; ++i) {
    const Place& p = places[i];
    if (p.step && folded.count(p.sequence) && folded[p.sequence].count(*p.step)) {
      const std::string id = fmt::format("fold{}", seq_index[p.sequence]);
      L.rep[i] = id;
      const auto& f = folded[p.sequence];
      L.folded_steps[id] = f.size();
      L.fold_label[id] =
          fmt::format("⋯ t{}..t{}\\n{} steps folded", *f.begin(), *f.rbegin(), f.size());
      L.fold_cluster[id] = p.sequence;
    } else if (collapse && p.step) {
      const std::string id = fmt::format("step{}_{}", seq_index[p.sequence], *p.step);
      L.rep[i] = id;
      ++L.summary_ops[id];
      L.fold_cluster[id] = p.sequence;
      L.collapsed = true;
    } else {
      L.rep[i] = fmt::format("n{}", i);
    }
    seen.insert(L.rep[i]);
  }
  // Leaves used only inside one folded stretch (each step's input x_t) fold with it.
  std::map<std::string, std::string> shared_leaves;  // set of folded users -> placeholder id
  std::vector<std::set<std::string>> users(n);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::uint32_t j : tape.inputs_of(i)) users[j].insert(L.rep[i]);
  }
  for (std::size_t i = 0; i < n; ++i) {
    const Op& op = tape.op(i);
    const bool data_leaf =
        std::holds_alternative<ops::Input>(op) || std::holds_alternative<ops::Constant>(op);
    if (!data_leaf || users[i].empty()) continue;
    const bool all_folded = std::all_of(users[i].begin(), users[i].end(), [](const std::string& u) {
      return u.rfind("fold", 0) == 0;
    });
    if (!all_folded) continue;
    seen.erase(L.rep[i]);
    if (users[i].size() == 1) {
      L.rep[i] = *users[i].begin();
      continue;
    }
    // Shared by several folded stretches (x_t of a bidirectional layer): one node per set of
    // stretches, standing for all such leaves, at the top level.
    std::string key;
    for (const std::string& u : users[i]) key += u + ",";
    auto [it, added] = shared_leaves.emplace(key, fmt::format("foldin{}", shared_leaves.size()));
    L.rep[i] = it->second;
    ++L.folded_steps[it->second];
    L.fold_cluster[it->second] = "";
  }
  for (auto& [key, id] : shared_leaves) {
    L.fold_label[id] = fmt::format("⋯ {} inputs of the folded steps", L.folded_steps[id]);
  }
  for (const auto& [seq, f] : folded) L.folded += f.size();
  seen.clear();
  for (const std::string& r : L.rep) seen.insert(r);
  L.drawn = seen.size();
  return L;
}

template <class T>
std::string stats(ConstMap<T> m) {
  if (m.size() == 0) return "empty";
  const double norm = viz::norm_of<T>(m);
  return fmt::format("min {:.4g}, max {:.4g}, norm {:.4g}", static_cast<double>(m.minCoeff()),
                     static_cast<double>(m.maxCoeff()), norm);
}

// Gradient norms of the nodes and their log10 range: the nodes' colours and the legend.
struct GradientScale {
  bool on = false;
  std::vector<double> norms;
  std::vector<bool> has;
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  bool any_bad = false;
  // The palette bin of a finite positive norm.
  int bin(double v) const {
    if (!(hi > lo)) return 4;
    return std::clamp(static_cast<int>((std::log10(v) - lo) / (hi - lo) * 9), 0, 8);
  }
};

template <class T>
GradientScale gradient_scale(const Tape<T>& tape, bool on) {
  const std::size_t n = tape.size();
  GradientScale g;
  g.on = on;
  g.norms.assign(n, 0);
  g.has.assign(n, false);
  if (!on) return g;
  for (std::size_t i = 0; i < n; ++i) {
    const auto grad = tape.grad(i);
    if (!grad) continue;
    const double v = viz::norm_of<T>(*grad);
    g.norms[i] = v;
    g.has[i] = true;
    if (!std::isfinite(v)) {
      g.any_bad = true;
    } else if (v > 0) {
      g.lo = std::min(g.lo, std::log10(v));
      g.hi = std::max(g.hi, std::log10(v));
    }
  }
  return g;
}

// The first configuration that fits max_nodes: as asked, then rolled, one step kept, collapsed.
template <class T>
Layout choose_layout(const Tape<T>& tape, const std::vector<Place>& places, const DotOptions& o) {
  struct Config {
    bool rolled;
    int keep;
    bool collapse;
  };
  std::vector<Config> configs{{o.rolled, o.keep_steps, false}};
  if (o.max_nodes > 0)
    configs.insert(configs.end(), {{true, o.keep_steps, false}, {true, 1, false}, {true, 1, true}});
  Layout L;
  for (const Config& c : configs) {
    L = plan(tape, places, c.rolled, c.keep, c.collapse);
    if (o.max_nodes == 0 || L.drawn <= o.max_nodes) break;
  }
  return L;
}

// Node statements grouped by cluster path, the clusters in order of first appearance.
struct Clustered {
  std::map<std::string, std::vector<std::string>> nodes;
  std::vector<std::string> order;
  std::set<std::string> emitted;  // node ids written
  void place(const std::string& cluster, std::string stmt) {
    if (!nodes.count(cluster)) order.push_back(cluster);
    nodes[cluster].push_back(std::move(stmt));
  }
};

// Node i's statement: its op (or leaf) and shape, the loss marked, the gradient's colour.
template <class T>
std::string node_statement(const Tape<T>& tape, std::size_t i, const GradientScale& g,
                           const DotOptions& o, const std::string& id_attr) {
  const Op& op = tape.op(i);
  const Shape s = tape.shape(i);
  const std::string shape = fmt::format("{}x{}", s.rows, s.cols);
  std::string label, fill = "#ffffff", extra;
  if (std::holds_alternative<ops::Param>(op)) {
    label = fmt::format("{}\\n{}", escape(tape.label(i)), shape);
    fill = "#cfe2f3";
    extra = ", penwidth=1.5, color=\"#1f4e79\"";
  } else if (std::holds_alternative<ops::Input>(op)) {
    label = fmt::format("{}\\n{}", tape.label(i).empty() ? "input" : escape(tape.label(i)), shape);
    fill = "#d9ead3";
  } else if (std::holds_alternative<ops::Constant>(op)) {
    label =
        fmt::format("{}\\n{}", tape.label(i).empty() ? "constant" : escape(tape.label(i)), shape);
    fill = "#eeeeee";
    extra = ", fontcolor=\"#555555\"";
  } else {
    label = fmt::format("{}\\n{}{}", escape(tape.op_name(i)), shape,
                        escape(viz::parameter_suffix(tape, i)));
  }
  if (const auto loss = tape.last_loss(); loss && *loss == i) {
    label = fmt::format("loss: {}\\n= {:.4g}", label, static_cast<double>(tape.value(i)(0, 0)));
    extra += ", peripheries=2, color=\"#c00000\"";
  }
  if (g.on && g.has[i]) {
    if (!std::isfinite(g.norms[i])) {
      fill = "#ff0000";
      label += std::isnan(g.norms[i]) ? "\\nNaN" : "\\nInf";
      extra += ", fontcolor=\"#ffffff\", penwidth=3";
    } else if (g.norms[i] > 0) {
      const int b = g.bin(g.norms[i]);
      fill = kPalette[b];
      if (b <= 1 || b >= 8) extra += ", fontcolor=\"#ffffff\"";
    }
  }
  std::string tooltip;
  if (o.tooltips) {
    tooltip = fmt::format(", tooltip=\"{} {} at {}\\nvalue: {}", tape.op_name(i), shape,
                          tape.scope_path(i).empty() ? "top level" : tape.scope_path(i),
                          stats(tape.value(i)));
    if (const auto grad = tape.grad(i)) tooltip += fmt::format("\\ngradient: {}", stats(*grad));
    tooltip += "\"";
  }
  return fmt::format("n{} [label=\"{}\", fillcolor=\"{}\"{}{}{}];", i, label, fill, extra, tooltip,
                     id_attr);
}

// Every drawn node's statement (folded steps and collapsed steps as one node each), by cluster.
template <class T>
Clustered node_statements(const Tape<T>& tape, const std::vector<Place>& places, Layout& L,
                          const GradientScale& g, const DotOptions& o) {
  Clustered c;
  const auto cluster_of = [&](const std::vector<std::string>& path) {
    return join(path, static_cast<std::size_t>(std::max(o.cluster_depth, 0)));
  };
  const auto id_of = [&](const std::string& id) {
    return o.element_ids ? fmt::format(", id=\"ov-{}\"", id) : std::string();
  };
  for (std::size_t i = 0; i < tape.size(); ++i) {
    const std::string& id = L.rep[i];
    if (!c.emitted.insert(id).second) continue;
    if (id.rfind("fold", 0) == 0) {
      c.place(cluster_of(split_path(L.fold_cluster[id])),
              fmt::format("{} [label=\"{}\", style=\"dashed,rounded\", fillcolor=\"#f7f7f7\"{}];",
                          id, L.fold_label[id], id_of(id)));
    } else if (id.rfind("step", 0) == 0) {
      c.place(cluster_of(split_path(L.fold_cluster[id])),
              fmt::format("{} [label=\"t{}\\n{} ops\", shape=box3d, fillcolor=\"#f7f7f7\"{}];", id,
                          *places[i].step, L.summary_ops[id], id_of(id)));
    } else {
      c.place(cluster_of(places[i].path), node_statement(tape, i, g, o, id_of(id)));
    }
  }
  return c;
}

// Edges between drawn nodes, deduplicated, in tape order.
template <class T>
std::vector<std::string> edge_statements(const Tape<T>& tape, Layout& L) {
  std::vector<std::string> edges;
  std::set<std::pair<std::string, std::string>> seen;
  for (std::size_t i = 0; i < tape.size(); ++i) {
    for (std::uint32_t j : tape.inputs_of(i)) {
      const std::string& a = L.rep[j];
      const std::string& b = L.rep[i];
      if (a == b || !seen.emplace(a, b).second) continue;
      std::string attrs;
      if (a.rfind("fold", 0) == 0) {
        attrs = fmt::format(" [style=dashed, label=\"×{}\", fontsize=8]", L.folded_steps[a]);
      } else if (b.rfind("fold", 0) == 0) {
        attrs = " [style=dashed]";
      } else if (std::holds_alternative<ops::Detach>(tape.op(i))) {
        attrs = " [style=dotted, label=\"stop\", fontsize=8]";
      }
      edges.push_back(fmt::format("{} -> {}{};", a, b, attrs));
    }
  }
  return edges;
}

// The graph's header and its clusters nested by path (iteratively), with their nodes.
void emit_clusters(std::ostream& out, Clustered& c, const DotOptions& o, DotSummary& summary) {
  std::map<std::string, std::vector<std::string>> children;  // cluster path -> child paths
  std::set<std::string> known{""};
  for (const std::string& cluster : c.order) {
    const auto parts = split_path(cluster);
    for (std::size_t k = 1; k <= parts.size(); ++k) {
      const std::string path = join(parts, k), parent = join(parts, k - 1);
      if (known.insert(path).second) children[parent].push_back(path);
    }
  }
  summary.clusters = known.size() - 1;
  out << "digraph rewind {\n";
  out << "  graph [fontname=\"Helvetica\", fontsize=10, nodesep=0.25, ranksep=0.3, newrank=true";
  if (!o.title.empty())
    out << fmt::format(", label=\"{}\", labelloc=t, fontsize=14", escape(o.title));
  out << "];\n";
  out << "  node [fontname=\"Helvetica\", fontsize=9, shape=box, style=\"rounded,filled\", "
         "height=0.3];\n";
  out << "  edge [arrowsize=0.6, color=\"#555555\"];\n";
  std::vector<std::pair<std::string, bool>> stack{{"", false}};
  while (!stack.empty()) {
    auto [path, closing] = stack.back();
    stack.pop_back();
    const std::string indent(2 * (split_path(path).size() + 1), ' ');
    if (closing) {
      out << std::string(indent.size() - 2, ' ') << "}\n";
      continue;
    }
    if (!path.empty()) {
      const auto parts = split_path(path);
      out << std::string(indent.size() - 2, ' ')
          << fmt::format(
                 "subgraph \"cluster_{}\" {{ label=\"{}\"; style=\"rounded\"; color=\"#aaaaaa\"; "
                 "fontsize=9;{}\n",
                 escape(path), escape(parts.back()),
                 o.element_ids ? fmt::format(" id=\"ov-c:{}\";", escape(path)) : "");
      stack.push_back({path, true});
    }
    for (const std::string& stmt : c.nodes[path]) out << indent << stmt << "\n";
    const auto& kids = children[path];
    for (auto it = kids.rbegin(); it != kids.rend(); ++it) stack.push_back({*it, false});
  }
}

// The legend of the gradient colours (and of NaN/Inf when any).
void emit_legend(std::ostream& out, const GradientScale& g, DotSummary& summary) {
  const double lo = g.lo, hi = g.hi;
  out << "  subgraph \"cluster_legend\" { label=\"log10 of the gradient norm\"; "
         "style=\"rounded\"; color=\"#aaaaaa\"; fontsize=9;\n";
  ++summary.clusters;
  const int bins = hi > lo ? 9 : (hi == lo ? 1 : 0);
  for (int b = 0; b < bins; ++b) {
    const double a = hi > lo ? lo + (hi - lo) * b / 9 : lo,
                 z = hi > lo ? lo + (hi - lo) * (b + 1) / 9 : hi;
    const int colour = hi > lo ? b : 4;
    out << fmt::format("    legend{} [label=\"{:.1f} .. {:.1f}\", fillcolor=\"{}\"{}];\n", b, a, z,
                       kPalette[colour],
                       colour <= 1 || colour >= 8 ? ", fontcolor=\"#ffffff\"" : "");
    ++summary.nodes;
  }
  if (g.any_bad) {
    out << "    legend_bad [label=\"NaN or Inf\", fillcolor=\"#ff0000\", "
           "fontcolor=\"#ffffff\"];\n";
    ++summary.nodes;
  }
  if (bins > 1) {  // left to right, small to large
    out << "    { rank=same;";
    for (int b = 0; b < bins; ++b) out << fmt::format(" legend{};", b);
    out << " }\n    ";
    for (int b = 0; b < bins; ++b) out << fmt::format("{}legend{}", b == 0 ? "" : " -> ", b);
    out << " [style=invis];\n";
    summary.edges += static_cast<std::size_t>(bins - 1);
  }
  out << "  }\n";
}

}  // namespace

template <class T>
DotSummary write_dot(const Tape<T>& tape, std::ostream& out, const DotOptions& o) {
  const std::vector<Place> places = viz::places_of(tape);  // where every node sits
  Layout L = choose_layout(tape, places, o);
  const GradientScale g = gradient_scale(tape, o.gradients && tape.has_backward());
  Clustered nodes = node_statements(tape, places, L, g, o);
  const std::vector<std::string> edges = edge_statements(tape, L);
  DotSummary summary;
  summary.nodes = nodes.emitted.size();
  summary.edges = edges.size();
  summary.folded_steps = L.folded;
  summary.collapsed_steps = L.collapsed;
  emit_clusters(out, nodes, o, summary);
  for (const std::string& e : edges) out << "  " << e << "\n";
  if (g.on && (g.hi >= g.lo || g.any_bad)) emit_legend(out, g, summary);
  out << "}\n";
  return summary;
}

template <class T>
DotSummary render(const Tape<T>& tape, const std::filesystem::path& path, std::string format,
                  const DotOptions& options) {
  std::ostringstream dot;
  const DotSummary s = write_dot(tape, dot, options);
  render_dot(dot.str(), path, std::move(format));
  return s;
}

template DotSummary write_dot<float>(const Tape<float>&, std::ostream&, const DotOptions&);
template DotSummary write_dot<double>(const Tape<double>&, std::ostream&, const DotOptions&);
template DotSummary render<float>(const Tape<float>&, const std::filesystem::path&, std::string,
                                  const DotOptions&);
template DotSummary render<double>(const Tape<double>&, const std::filesystem::path&, std::string,
                                   const DotOptions&);

}  // namespace rwd
