// write_html: the page's data, laid out here with Graphviz, then the page's script and styles
// (autograd/src/viz/page.js, page.css, embedded at build time). The data format is the contract
// between this file and page.js; `version` changes when it does.
#include "rewind/autograd/html.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <ostream>
#include <set>
#include <sstream>
#include <vector>

#include "page_assets.hpp"
#include "page_layout.hpp"
#include "rewind/autograd/graphviz.hpp"
#include "structure.hpp"

#if REWIND_HAVE_GVC
#include <graphviz/cgraph.h>
#include <graphviz/gvc.h>
#endif

namespace rwd {
namespace {

using viz::coord;
using viz::grid;
using viz::join;
using viz::Laid;
using viz::lay_out;
using viz::norm_of;
using viz::parameter_suffix;
using viz::Place;
using viz::put_array;
using viz::put_ints;
using viz::put_laid;
using viz::put_number;
using viz::put_string;
using viz::Sketch;
using viz::split_path;
using viz::Strings;

constexpr int kFormatVersion = 1;
// Ops outside every sequence are laid out by Graphviz up to this many; beyond, in a grid.
constexpr std::size_t kMaxOtherLayout = 1500;

// ---- the tape's structure ------------------------------------------------------------------

enum Category : int { kOp = 0, kParam = 1, kInput = 2, kConstant = 3 };

template <class T>
Category category(const Tape<T>& tape, std::size_t i) {
  const Op& op = tape.op(i);
  if (std::holds_alternative<ops::Param>(op)) return kParam;
  if (std::holds_alternative<ops::Input>(op)) return kInput;
  if (std::holds_alternative<ops::Constant>(op)) return kConstant;
  return kOp;
}

template <class T>
std::string kind_of(const Tape<T>& tape, std::size_t i) {
  const Category c = category(tape, i);
  if (c == kOp || tape.label(i).empty()) {
    return c == kInput ? "input" : c == kConstant ? "constant" : std::string(tape.op_name(i));
  }
  return std::string(tape.label(i));
}

// The two-line label the layout sizes nodes by (the page draws the same two lines, page.js's
// nodeLines): the kind, then the shape and, for an op that takes parameters (a product, an
// affine map), their names.
template <class T>
std::string label_of(const Tape<T>& tape, std::size_t i) {
  const Shape s = tape.shape(i);
  return fmt::format("{}\n{}x{}{}", kind_of(tape, i), s.rows, s.cols, parameter_suffix(tape, i));
}

struct Instance {
  long row = 0;
  long step = 0;
  std::vector<long> nodes;  // tape indices in slot order
  long tpl = -1;
};

struct Structure {
  std::vector<std::string> rows;                    // sequence paths, first appearance
  std::vector<std::vector<long>> row_params;        // per row
  std::vector<Instance> instances;                  // by (row, step) in row then step order
  std::map<long, std::vector<long>> column_inputs;  // step -> data leaves used only at that step
  std::vector<long> other;
  std::vector<long> where;  // per node: instance index, or -1
};

template <class T>
Structure structure_of(const Tape<T>& tape, const std::vector<Place>& places) {
  Structure S;
  const std::size_t n = tape.size();
  std::map<std::string, long> row_index;
  std::map<std::pair<long, long>, long> instance_index;
  S.where.assign(n, -1);
  // Rows and instances, in order of first appearance; instances sorted afterwards.
  for (std::size_t i = 0; i < n; ++i) {
    const Place& p = places[i];
    if (!p.step) continue;
    if (!row_index.count(p.sequence)) {
      row_index.emplace(p.sequence, static_cast<long>(S.rows.size()));
      S.rows.push_back(p.sequence);
    }
    instance_index.emplace(std::pair{row_index[p.sequence], *p.step}, 0);
  }
  for (auto& [key, index] : instance_index) {
    index = static_cast<long>(S.instances.size());
    S.instances.push_back({key.first, key.second, {}, -1});
  }
  S.row_params.resize(S.rows.size());
  for (std::size_t i = 0; i < n; ++i) {
    const Place& p = places[i];
    if (p.step) S.where[i] = instance_index[{row_index[p.sequence], *p.step}];
  }
  // Users of each node, to place the leaves.
  std::vector<std::set<long>> user_instances(n);
  std::vector<bool> used_outside(n, false);
  for (std::size_t i = 0; i < n; ++i) {
    for (const std::uint32_t j : tape.inputs_of(i)) {
      if (S.where[i] >= 0) {
        user_instances[j].insert(S.where[i]);
      } else {
        used_outside[j] = true;
      }
    }
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (S.where[i] >= 0) continue;
    const Category c = category(tape, i);
    const Place& p = places[i];
    if (c == kParam && row_index.count(p.sequence)) {
      S.row_params[static_cast<std::size_t>(row_index[p.sequence])].push_back(static_cast<long>(i));
      continue;
    }
    if ((c == kInput || c == kConstant) && !used_outside[i] && !user_instances[i].empty()) {
      if (user_instances[i].size() == 1) {
        S.where[i] = *user_instances[i].begin();
        continue;
      }
      std::set<long> steps;
      for (long k : user_instances[i]) steps.insert(S.instances[static_cast<std::size_t>(k)].step);
      if (steps.size() == 1) {
        S.column_inputs[*steps.begin()].push_back(static_cast<long>(i));
        continue;
      }
    }
    S.other.push_back(static_cast<long>(i));
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (S.where[i] >= 0)
      S.instances[static_cast<std::size_t>(S.where[i])].nodes.push_back(static_cast<long>(i));
  }
  return S;
}

// A step's ops relative to the step: their kinds, shapes, scopes below the step and the
// in-step edges. Steps with the same key share one laid-out template.
template <class T>
Sketch step_sketch(const Tape<T>& tape, const std::vector<Place>& places, const Instance& in,
                   std::string* key) {
  Sketch s;
  std::map<long, long> slot;
  for (std::size_t k = 0; k < in.nodes.size(); ++k) slot[in.nodes[k]] = static_cast<long>(k);
  for (std::size_t k = 0; k < in.nodes.size(); ++k) {
    const auto i = static_cast<std::size_t>(in.nodes[k]);
    const Place& p = places[i];
    std::string rel;
    if (p.step) {
      for (std::size_t c = p.step_component + 1; c < p.path.size(); ++c)
        rel += (rel.empty() ? "" : "/") + p.path[c];
    }
    s.labels.push_back(label_of(tape, i));
    s.clusters.push_back(rel);
    *key += fmt::format("{}|{}|{}|", s.labels.back(), rel, static_cast<int>(category(tape, i)));
    for (const std::uint32_t j : tape.inputs_of(i)) {
      const auto it = slot.find(static_cast<long>(j));
      if (it != slot.end()) {
        s.edges.emplace_back(it->second, static_cast<long>(k));
        *key += fmt::format("{},", it->second);
      } else {
        *key += "x,";
      }
    }
    *key += ';';
  }
  return s;
}

template <class T>
void put_stats(std::string& out, ConstMap<T> m) {
  if (m.size() == 0) {
    out += "0,0,0";
    return;
  }
  put_number(out, static_cast<double>(m.minCoeff()));
  out += ',';
  put_number(out, static_cast<double>(m.maxCoeff()));
  out += ',';
  put_number(out, norm_of<T>(m));
}

// Matching between two recordings: scope path, kind and ordinal among equal (scope, kind).
template <class T>
std::vector<std::string> keys_of(const Tape<T>& tape) {
  std::vector<std::string> keys(tape.size());
  std::map<std::string, long> seen;
  for (std::size_t i = 0; i < tape.size(); ++i) {
    const std::string base = fmt::format("{}\x1f{}", tape.scope_path(i), kind_of(tape, i));
    keys[i] = fmt::format("{}\x1f{}", base, seen[base]++);
  }
  return keys;
}

struct PaneResult {
  std::string json;
  std::string overview;  // SVG markup, or empty
  HtmlSummary summary;
};

std::string strip_prolog(std::string svg) {
  const std::size_t at = svg.find("<svg");
  if (at != std::string::npos) svg.erase(0, at);
  // Graphviz writes comments with node names; they are not needed in the page.
  std::size_t c;
  while ((c = svg.find("<!--")) != std::string::npos) {
    const std::size_t e = svg.find("-->", c);
    if (e == std::string::npos) break;
    svg.erase(c, e + 3 - c);
  }
  return svg;
}

// One layout per distinct step (a template); each instance refers to its template.
template <class T>
std::vector<Laid> lay_out_templates(const Tape<T>& tape, const std::vector<Place>& places,
                                    Structure& S) {
  std::map<std::string, long> template_of;
  std::vector<Laid> templates;
  for (Instance& in : S.instances) {
    std::string key;
    const Sketch sketch = step_sketch(tape, places, in, &key);
    const auto it = template_of.find(key);
    if (it != template_of.end()) {
      in.tpl = it->second;
      continue;
    }
    in.tpl = static_cast<long>(templates.size());
    template_of.emplace(std::move(key), in.tpl);
    templates.push_back(lay_out(sketch));
  }
  return templates;
}

// The ops outside every sequence, laid out together (in a grid when there are many).
template <class T>
Laid lay_out_other(const Tape<T>& tape, const Structure& S) {
  Sketch other;
  std::map<long, long> other_slot;
  for (std::size_t k = 0; k < S.other.size(); ++k) {
    const auto i = static_cast<std::size_t>(S.other[k]);
    other_slot[S.other[k]] = static_cast<long>(k);
    other.labels.push_back(label_of(tape, i));
    other.clusters.emplace_back();
  }
  for (std::size_t k = 0; k < S.other.size(); ++k) {
    for (const std::uint32_t j : tape.inputs_of(static_cast<std::size_t>(S.other[k]))) {
      const auto it = other_slot.find(static_cast<long>(j));
      if (it != other_slot.end()) other.edges.emplace_back(it->second, static_cast<long>(k));
    }
  }
  return S.other.empty()                     ? Laid{}
         : S.other.size() <= kMaxOtherLayout ? lay_out(other)
                                             : grid(other);
}

// The table of every node: kind, category, scope, shape, inputs, value and gradient statistics.
template <class T>
void put_table(std::string& out, const Tape<T>& tape, const std::string& name, Strings& strings) {
  const std::size_t n = tape.size();
  const bool grads = tape.has_backward();
  const auto loss = tape.last_loss();
  long first_bad = -1;
  std::size_t bad_count = 0;
  std::vector<long> kind(n), scope(n), cat(n);
  for (std::size_t i = 0; i < n; ++i) {
    kind[i] = strings.of(kind_of(tape, i));
    scope[i] = strings.of(tape.scope_path(i));
    cat[i] = category(tape, i);
    const auto g = tape.grad(i);
    if (!tape.value(i).allFinite() || (g && !g->allFinite())) {
      ++bad_count;
      if (first_bad < 0) first_bad = static_cast<long>(i);
    }
  }
  out += fmt::format("{{\"name\":");
  put_string(out, name);
  out += fmt::format(",\"n\":{},\"grads\":{},\"loss\":{},\"first_bad\":{},\"bad\":{}", n,
                     grads ? "true" : "false", loss ? static_cast<long>(*loss) : -1L, first_bad,
                     bad_count);
  out += ",\"kind\":";
  put_ints(out, kind);
  out += ",\"cat\":";
  put_ints(out, cat);
  out += ",\"scope\":";
  put_ints(out, scope);
  out += ",\"shape\":[";
  for (std::size_t i = 0; i < n; ++i) {
    const Shape s = tape.shape(i);
    out += fmt::format("{}{},{}", i == 0 ? "" : ",", s.rows, s.cols);
  }
  out += "],\"pofs\":[0";
  std::size_t offset = 0;
  for (std::size_t i = 0; i < n; ++i) {
    offset += tape.inputs_of(i).size();
    out += fmt::format(",{}", offset);
  }
  out += "],\"par\":[";
  bool first = true;
  for (std::size_t i = 0; i < n; ++i) {
    for (const std::uint32_t j : tape.inputs_of(i)) {
      out += fmt::format("{}{}", first ? "" : ",", j);
      first = false;
    }
  }
  out += "],\"val\":[";
  for (std::size_t i = 0; i < n; ++i) {
    if (i > 0) out += ',';
    put_stats<T>(out, tape.value(i));
  }
  out += "],\"grad\":[";
  for (std::size_t i = 0; i < n; ++i) {
    if (i > 0) out += ',';
    if (const auto g = tape.grad(i)) {
      put_stats<T>(out, *g);
    } else {
      out += "null,null,null";
    }
  }
  out += ']';
}

// The rows (one per sequence path) with their steps, the templates, the other ops, the strings.
void put_rows(std::string& out, const Structure& S, const std::vector<Laid>& templates,
              const Laid& other_laid, Strings& strings) {
  out += ",\"rows\":[";
  for (std::size_t r = 0; r < S.rows.size(); ++r) {
    std::vector<long> steps, tpls;
    std::vector<const Instance*> mine;
    for (const Instance& in : S.instances) {
      if (in.row != static_cast<long>(r)) continue;
      steps.push_back(in.step);
      tpls.push_back(in.tpl);
      mine.push_back(&in);
    }
    out += r == 0 ? "{\"path\":" : ",{\"path\":";
    put_string(out, S.rows[r]);
    out += ",\"params\":";
    put_ints(out, S.row_params[r]);
    out += ",\"steps\":";
    put_ints(out, steps);
    out += ",\"tpl\":";
    put_ints(out, tpls);
    out += ",\"nodes\":";
    put_array(out, mine, [&](const Instance* in) { put_ints(out, in->nodes); });
    out += '}';
  }
  out += "],\"columns\":";
  put_array(out, S.column_inputs, [&](const auto& c) {
    out += fmt::format("[{},", c.first);
    put_ints(out, c.second);
    out += ']';
  });
  out += ",\"templates\":";
  put_array(out, templates, [&](const Laid& L) {
    out += '{';
    put_laid(out, L, strings);
    out += '}';
  });
  out += ",\"other\":{\"nodes\":";
  put_ints(out, S.other);
  out += ',';
  put_laid(out, other_laid, strings);
  out += "},\"strings\":";
  put_array(out, strings.list, [&](const std::string& s) { put_string(out, s); });
  out += '}';
}

// The rolled overview: the whole graph drawn by Graphviz, as SVG.
template <class T>
std::string overview(const Tape<T>& tape, const HtmlOptions& o) {
  std::string svg;
  std::ostringstream dot;
  DotOptions d;
  d.rolled = true;
  d.keep_steps = std::max(o.keep_steps, 1);
  d.max_nodes = 800;
  d.gradients = tape.has_backward();
  d.element_ids = true;
  write_dot(tape, dot, d);
  viz::with_layout(dot.str(), "write_html",
                   [&](Agraph_s* g) { svg = strip_prolog(viz::render_data(g, "svg")); });
  return svg;
}

template <class T>
PaneResult pane(const Tape<T>& tape, const std::string& name, const HtmlOptions& o) {
  PaneResult R;
  const std::vector<Place> places = viz::places_of(tape);
  Structure S = structure_of(tape, places);
  Strings strings;
  R.json.reserve(tape.size() * 96);
  const std::vector<Laid> templates = lay_out_templates(tape, places, S);
  const Laid other_laid = lay_out_other(tape, S);
  put_table(R.json, tape, name, strings);
  put_rows(R.json, S, templates, other_laid, strings);
  if (o.overview) R.overview = overview(tape, o);  // check_options made sure libgvc is there
  R.summary.ops = tape.size();
  R.summary.rows = S.rows.size();
  R.summary.steps = S.instances.size();
  R.summary.templates = templates.size();
  return R;
}

std::string page(const HtmlOptions& o, const std::vector<PaneResult>& panes,
                 const std::string& compare) {
  const std::string& title = o.title;
  std::string html;
  html += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>";
  for (const char c : title) {
    if (c == '<')
      html += "&lt;";
    else if (c == '&')
      html += "&amp;";
    else
      html += c;
  }
  html += "</title>\n<style>\n";
  html += viz::kPageCss;
  html += "</style>\n</head>\n<body>\n";
  for (std::size_t k = 0; k < panes.size(); ++k) {
    html += fmt::format("<template id=\"overview-{}\">", k);
    html += panes[k].overview;
    html += "</template>\n";
  }
  html += "<script type=\"application/json\" id=\"rewind-data\">";
  html += fmt::format("{{\"version\":{},\"title\":", kFormatVersion);
  put_string(html, title);
  html += ",\"palette\":";
  put_array(html, viz::kPalette, [&](const char* c) { put_string(html, c); });
  html += ",\"panes\":[";
  for (std::size_t k = 0; k < panes.size(); ++k) {
    if (k > 0) html += ',';
    html += panes[k].json;
  }
  html += fmt::format("],\"options\":{{\"window\":{}}},\"compare\":", o.window);
  html += compare.empty() ? "null" : compare;
  html += "}</script>\n<script>\n";
  html += viz::kPageJs;
  html += "</script>\n</body>\n</html>\n";
  return html;
}

void check_options(const HtmlOptions& o, std::string_view who) {
  if (o.window < 1)
    throw UsageError(fmt::format("{}: window must be at least 1, got {}", who, o.window));
  if (o.keep_steps < 1)
    throw UsageError(fmt::format("{}: keep_steps must be at least 1, got {}", who, o.keep_steps));
  // The layout needs Graphviz's library: say so before any work.
  if (!viz::have_gvc()) viz::with_layout({}, who, {});
}

}  // namespace

template <class T>
HtmlSummary write_html(const Tape<T>& tape, std::ostream& out, const HtmlOptions& o) {
  check_options(o, "write_html");
  std::vector<PaneResult> panes;
  panes.push_back(pane(tape, o.title, o));
  const std::string html = page(o, panes, {});
  out << html;
  HtmlSummary s = panes[0].summary;
  s.bytes = html.size();
  return s;
}

template <class T>
HtmlSummary write_html_compare(const Tape<T>& left, const Tape<T>& right, std::ostream& out,
                               const HtmlCompareOptions& o) {
  check_options(o.page, "write_html_compare");
  if (!(o.threshold > 1))
    throw UsageError(
        fmt::format("write_html_compare: threshold must be above 1, got {}", o.threshold));
  std::vector<PaneResult> panes;
  panes.push_back(pane(left, o.left, o.page));
  panes.push_back(pane(right, o.right, o.page));
  // Match by key; outline where the gradient norms differ by more than the threshold (or one
  // is zero, absent or not finite and the other is not).
  const auto ka = keys_of(left), kb = keys_of(right);
  std::map<std::string, long> in_b;
  for (std::size_t j = 0; j < kb.size(); ++j) in_b.emplace(kb[j], static_cast<long>(j));
  std::vector<long> match(left.size(), -1), differ_a, differ_b;
  std::size_t matched = 0;
  for (std::size_t i = 0; i < left.size(); ++i) {
    const auto it = in_b.find(ka[i]);
    if (it == in_b.end()) continue;
    match[i] = it->second;
    ++matched;
    const auto ga = left.grad(i);
    const auto gb = right.grad(static_cast<std::size_t>(it->second));
    if (!ga && !gb) continue;
    const double a = ga ? norm_of<T>(*ga) : 0, b = gb ? norm_of<T>(*gb) : 0;
    bool differs = false;
    if (!std::isfinite(a) || !std::isfinite(b)) {
      differs = std::isfinite(a) != std::isfinite(b);
    } else if (a == 0 || b == 0) {
      differs = (a == 0) != (b == 0);
    } else {
      differs = std::max(a, b) / std::min(a, b) > o.threshold;
    }
    if (differs) {
      differ_a.push_back(static_cast<long>(i));
      differ_b.push_back(it->second);
    }
  }
  std::string compare =
      fmt::format("{{\"threshold\":{},\"matched\":{},\"match\":", o.threshold, matched);
  put_ints(compare, match);
  compare += ",\"differ\":[";
  put_ints(compare, differ_a);
  compare += ',';
  put_ints(compare, differ_b);
  compare += "]}";
  const std::string html = page(o.page, panes, compare);
  out << html;
  HtmlSummary s = panes[0].summary;
  s.ops += panes[1].summary.ops;
  s.steps += panes[1].summary.steps;
  s.differing = differ_a.size();
  s.bytes = html.size();
  return s;
}

template HtmlSummary write_html<float>(const Tape<float>&, std::ostream&, const HtmlOptions&);
template HtmlSummary write_html<double>(const Tape<double>&, std::ostream&, const HtmlOptions&);
template HtmlSummary write_html_compare<float>(const Tape<float>&, const Tape<float>&,
                                               std::ostream&, const HtmlCompareOptions&);
template HtmlSummary write_html_compare<double>(const Tape<double>&, const Tape<double>&,
                                                std::ostream&, const HtmlCompareOptions&);

}  // namespace rwd
