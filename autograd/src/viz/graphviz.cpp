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

}  // namespace

template <class T>
DotSummary write_dot(const Tape<T>& tape, std::ostream& out, const DotOptions& o) {
  const std::size_t n = tape.size();
  // Where every node sits.
  const std::vector<Place> places = viz::places_of(tape);
  // Pick the first configuration that fits max_nodes.
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

  // Gradient norms and their range.
  const bool grads = o.gradients && tape.has_backward();
  std::vector<double> norms(n, 0);
  std::vector<bool> has_grad(n, false);
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  bool any_bad = false;
  if (grads) {
    for (std::size_t i = 0; i < n; ++i) {
      const auto g = tape.grad(i);
      if (!g) continue;
      const double v = viz::norm_of<T>(*g);
      norms[i] = v;
      has_grad[i] = true;
      if (!std::isfinite(v)) {
        any_bad = true;
      } else if (v > 0) {
        lo = std::min(lo, std::log10(v));
        hi = std::max(hi, std::log10(v));
      }
    }
  }
  const auto bin = [&](double v) {
    if (!(hi > lo)) return 4;
    return std::clamp(static_cast<int>((std::log10(v) - lo) / (hi - lo) * 9), 0, 8);
  };

  // Node statements, by cluster.
  const auto loss = tape.last_loss();
  std::map<std::string, std::vector<std::string>> cluster_nodes;
  std::vector<std::string> cluster_order;  // first appearance
  const auto cluster_of = [&](const std::vector<std::string>& path) {
    return join(path, static_cast<std::size_t>(std::max(o.cluster_depth, 0)));
  };
  const auto place_in = [&](const std::string& cluster, std::string stmt) {
    if (!cluster_nodes.count(cluster)) cluster_order.push_back(cluster);
    cluster_nodes[cluster].push_back(std::move(stmt));
  };
  std::set<std::string> emitted;
  const auto id_of = [&](const std::string& id) {
    return o.element_ids ? fmt::format(", id=\"ov-{}\"", id) : std::string();
  };
  for (std::size_t i = 0; i < n; ++i) {
    const std::string& id = L.rep[i];
    if (!emitted.insert(id).second) continue;
    if (id.rfind("fold", 0) == 0) {
      place_in(cluster_of(split_path(L.fold_cluster[id])),
               fmt::format("{} [label=\"{}\", style=\"dashed,rounded\", fillcolor=\"#f7f7f7\"{}];",
                           id, L.fold_label[id], id_of(id)));
      continue;
    }
    if (id.rfind("step", 0) == 0) {
      const Place& p = places[i];
      place_in(cluster_of(split_path(L.fold_cluster[id])),
               fmt::format("{} [label=\"t{}\\n{} ops\", shape=box3d, fillcolor=\"#f7f7f7\"{}];", id,
                           *p.step, L.summary_ops[id], id_of(id)));
      continue;
    }
    const Op& op = tape.op(i);
    const Shape s = tape.shape(i);
    const std::string shape = fmt::format("{}x{}", s.rows, s.cols);
    std::string label, fill = "#ffffff", extra;
    if (std::holds_alternative<ops::Param>(op)) {
      label = fmt::format("{}\\n{}", escape(tape.label(i)), shape);
      fill = "#cfe2f3";
      extra = ", penwidth=1.5, color=\"#1f4e79\"";
    } else if (std::holds_alternative<ops::Input>(op)) {
      label =
          fmt::format("{}\\n{}", tape.label(i).empty() ? "input" : escape(tape.label(i)), shape);
      fill = "#d9ead3";
    } else if (std::holds_alternative<ops::Constant>(op)) {
      label =
          fmt::format("{}\\n{}", tape.label(i).empty() ? "constant" : escape(tape.label(i)), shape);
      fill = "#eeeeee";
      extra = ", fontcolor=\"#555555\"";
    } else {
      label = fmt::format("{}\\n{}", escape(tape.op_name(i)), shape);
    }
    if (loss && *loss == i) {
      label = fmt::format("loss: {}\\n= {:.4g}", label, static_cast<double>(tape.value(i)(0, 0)));
      extra += ", peripheries=2, color=\"#c00000\"";
    }
    if (grads && has_grad[i]) {
      if (!std::isfinite(norms[i])) {
        fill = "#ff0000";
        label += std::isnan(norms[i]) ? "\\nNaN" : "\\nInf";
        extra += ", fontcolor=\"#ffffff\", penwidth=3";
      } else if (norms[i] > 0) {
        const int b = bin(norms[i]);
        fill = kPalette[b];
        if (b <= 1 || b >= 8) extra += ", fontcolor=\"#ffffff\"";
      }
    }
    std::string tooltip;
    if (o.tooltips) {
      tooltip = fmt::format(", tooltip=\"{} {} at {}\\nvalue: {}", tape.op_name(i), shape,
                            tape.scope_path(i).empty() ? "top level" : tape.scope_path(i),
                            stats(tape.value(i)));
      if (const auto g = tape.grad(i)) tooltip += fmt::format("\\ngradient: {}", stats(*g));
      tooltip += "\"";
    }
    place_in(cluster_of(places[i].path), fmt::format("n{} [label=\"{}\", fillcolor=\"{}\"{}{}{}];",
                                                     i, label, fill, extra, tooltip, id_of(id)));
  }

  // Edges, deduplicated, in tape order.
  std::vector<std::string> edges;
  std::set<std::pair<std::string, std::string>> seen_edges;
  for (std::size_t i = 0; i < n; ++i) {
    for (std::uint32_t j : tape.inputs_of(i)) {
      const std::string& a = L.rep[j];
      const std::string& b = L.rep[i];
      if (a == b || !seen_edges.emplace(a, b).second) continue;
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

  // Emit: clusters nested by path, iteratively.
  DotSummary summary;
  summary.nodes = emitted.size();
  summary.edges = edges.size();
  summary.folded_steps = L.folded;
  summary.collapsed_steps = L.collapsed;
  std::map<std::string, std::vector<std::string>> children;  // cluster path -> child paths
  std::vector<std::string> all{""};
  std::set<std::string> known{""};
  for (const std::string& c : cluster_order) {
    const auto parts = split_path(c);
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
    for (const std::string& stmt : cluster_nodes[path]) out << indent << stmt << "\n";
    const auto& kids = children[path];
    for (auto it = kids.rbegin(); it != kids.rend(); ++it) stack.push_back({*it, false});
  }
  for (const std::string& e : edges) out << "  " << e << "\n";
  if (grads && (hi >= lo || any_bad)) {
    out << "  subgraph \"cluster_legend\" { label=\"log10 of the gradient norm\"; "
           "style=\"rounded\"; color=\"#aaaaaa\"; fontsize=9;\n";
    ++summary.clusters;
    const int bins = hi > lo ? 9 : (hi == lo ? 1 : 0);
    for (int b = 0; b < bins; ++b) {
      const double a = hi > lo ? lo + (hi - lo) * b / 9 : lo,
                   z = hi > lo ? lo + (hi - lo) * (b + 1) / 9 : hi;
      const int colour = hi > lo ? b : 4;
      out << fmt::format("    legend{} [label=\"{:.1f} .. {:.1f}\", fillcolor=\"{}\"{}];\n", b, a,
                         z, kPalette[colour],
                         colour <= 1 || colour >= 8 ? ", fontcolor=\"#ffffff\"" : "");
      ++summary.nodes;
    }
    if (any_bad) {
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
  out << "}\n";
  return summary;
}

// ---- rendering ----------------------------------------------------------------------------------

#if REWIND_HAVE_GVC
namespace {
std::mutex gv_mutex;  // Graphviz's error handler and context are process-wide
std::string* gv_errors = nullptr;
// One context for the whole process, never freed: Graphviz 2.42 keeps a font cache across
// contexts, and freeing one context then creating another reads freed memory in the text-size
// code (AddressSanitizer caught it on the second render in one process).
GVC_t* gv_context() {
  static GVC_t* gvc = gvContext();
  return gvc;
}
int collect_error(char* message) {
  if (gv_errors != nullptr) *gv_errors += message;
  return 0;
}
}  // namespace

bool viz::have_gvc() { return true; }

namespace {
// Object ids in creation order. Graphviz's default id discipline makes a named object's id the
// address of its interned name, and orders subgraphs by id: a page laid out after other graphs
// in the same process came out with its clusters in a different order from run to run. With ids
// handed out in the order the DOT text names things, the layout depends on the text alone.
struct Ids {
  std::map<std::string, IDTYPE, std::less<>> by_name;
  std::vector<std::string> names;
  IDTYPE anonymous = 1;
};
void* ids_open(Agraph_t*, Agdisc_t*) { return new Ids; }
long ids_map(void* state, int, char* str, IDTYPE* id, int create) {
  auto* s = static_cast<Ids*>(state);
  if (str == nullptr) {
    *id = s->anonymous;
    s->anonymous += 2;
    return 1;
  }
  const auto it = s->by_name.find(std::string_view(str));
  if (it != s->by_name.end()) {
    *id = it->second;
    return 1;
  }
  if (create == 0) return 0;
  *id = static_cast<IDTYPE>(2 * s->names.size());
  s->names.emplace_back(str);
  s->by_name.emplace(str, *id);
  return 1;
}
long ids_alloc(void*, int, IDTYPE) { return 0; }
void ids_free(void*, int, IDTYPE) {}
char* ids_print(void* state, int, IDTYPE id) {
  auto* s = static_cast<Ids*>(state);
  if (id % 2 != 0 || id / 2 >= s->names.size()) return nullptr;
  return s->names[id / 2].data();
}
void ids_close(void* state) { delete static_cast<Ids*>(state); }
void ids_register(void*, int, void*) {}
Agiddisc_t ordered_ids{ids_open, ids_map, ids_alloc, ids_free, ids_print, ids_close, ids_register};

// Reads DOT text from memory, a line at a time (as Graphviz's own in-memory reader does).
struct Text {
  const char* at;
};
int text_read(void* chan, char* buf, int size) {
  auto* t = static_cast<Text*>(chan);
  int n = 0;
  while (n + 1 < size && *t->at != '\0') {
    const char c = *t->at++;
    buf[n++] = c;
    if (c == '\n') break;
  }
  return n;
}
Agiodisc_t text_io{text_read, nullptr, nullptr};

Agraph_t* read_ordered(const std::string& dot) {
  text_io.putstr = AgIoDisc.putstr;
  text_io.flush = AgIoDisc.flush;
  static Agdisc_t disc{&AgMemDisc, &ordered_ids, &text_io};
  Text text{dot.c_str()};
  return agread(&text, &disc);
}
}  // namespace

void viz::with_layout(const std::string& dot, std::string_view who,
                      const std::function<void(Agraph_s*)>& use) {
  std::lock_guard<std::mutex> lock(gv_mutex);
  std::string errors;
  gv_errors = &errors;
  const agusererrf previous = agseterrf(collect_error);
  const auto restore = [&] {
    agseterrf(previous);
    gv_errors = nullptr;
  };
  const auto fail = [&](const std::string& what) {
    restore();
    std::string detail = errors;
    while (!detail.empty() && (detail.back() == '\n' || detail.back() == ' ')) detail.pop_back();
    throw FileError(fmt::format("{}: {}{}{}", who, what, detail.empty() ? "" : ": ", detail));
  };
  GVC_t* gvc = gv_context();
  if (gvc == nullptr) fail("Graphviz could not start");
  Agraph_t* g = read_ordered(dot);
  if (g == nullptr) fail("Graphviz could not parse the graph");
  if (gvLayout(gvc, g, "dot") != 0) {
    agclose(g);
    fail("Graphviz layout failed (is the dot layout plugin installed?)");
  }
  try {
    use(g);
  } catch (const FileError& e) {
    gvFreeLayout(gvc, g);
    agclose(g);
    fail(e.what());
  } catch (...) {
    gvFreeLayout(gvc, g);
    agclose(g);
    restore();
    throw;
  }
  gvFreeLayout(gvc, g);
  agclose(g);
  restore();
}

std::string viz::render_data(Agraph_s* g, const char* format) {
  char* data = nullptr;
  unsigned int length = 0;
  if (gvRenderData(gv_context(), g, format, &data, &length) != 0 || data == nullptr)
    throw FileError(fmt::format("Graphviz could not render {}", format));
  std::string out(data, length);
  gvFreeRenderData(data);
  return out;
}

void render_dot(const std::string& dot, const std::filesystem::path& path, std::string format) {
  if (format.empty())
    format = path.extension().string().empty() ? "" : path.extension().string().substr(1);
  if (format != "svg" && format != "png" && format != "pdf") {
    throw UsageError(fmt::format("render: unsupported format '{}' (svg, png or pdf)", format));
  }
  viz::with_layout(dot, "render", [&](Agraph_s* g) {
    if (gvRenderFilename(gv_context(), g, format.c_str(), path.string().c_str()) != 0)
      throw FileError(fmt::format("Graphviz could not write '{}' as {}", path.string(), format));
  });
}

bool can_render() { return true; }
#else
bool viz::have_gvc() { return false; }

void viz::with_layout(const std::string&, std::string_view who,
                      const std::function<void(Agraph_s*)>&) {
  throw UsageError(fmt::format(
      "{}: this build of rewind has no Graphviz library (libgvc), which lays the graph out", who));
}

std::string viz::render_data(Agraph_s*, const char*) { return {}; }

bool can_render() { return false; }

void render_dot(const std::string&, const std::filesystem::path&, std::string) {
  throw UsageError(
      "render: this build of rewind has no Graphviz library (libgvc); write_dot still works, "
      "and `dot -Tsvg` renders its output");
}
#endif

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
