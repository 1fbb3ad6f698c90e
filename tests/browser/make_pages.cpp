// Writes the pages tests/browser/page_test.py opens in Chromium, and a JSON file of what it
// checks them against, computed here from the tapes (not from the page): every node's ancestors
// and descendants for 20 probes, search counts, the first NaN/Inf, the ops whose gradient norms
// differ by more than 10x between two recordings.
// Usage: make_pages <output folder>
// (No std::regex here: g++ 12 warns falsely inside it under the sanitizers, and -Werror.)
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <rewind/rewind.hpp>
#include <set>

using namespace rwd;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr int kSteps = 20;

Var<double> record(Tape<double>& tape, layers::Lstm<double>& net, int steps, layers::Rng& rng,
                   int nan_step = -1) {
  std::vector<Var<double>> xs;
  for (int t = 0; t < steps; ++t) {
    Matrix<double> x = layers::uniform<double>(2, 3, 1.0, rng);
    if (t == nan_step) x(1, 2) = std::numeric_limits<double>::quiet_NaN();
    xs.push_back(tape.input(x, "x"));
  }
  const auto run = net(tape, xs);
  const Var<double> loss = mean(square(run.outputs.back()));
  tape.backward(loss);
  return loss;
}

// What the page calls an op's kind: the op's name, or a leaf's label.
std::string kind(const Tape<double>& tape, std::size_t i) {
  const Op& op = tape.op(i);
  const bool leaf = std::holds_alternative<ops::Param>(op) ||
                    std::holds_alternative<ops::Input>(op) ||
                    std::holds_alternative<ops::Constant>(op);
  if (leaf && !tape.label(i).empty()) return std::string(tape.label(i));
  if (std::holds_alternative<ops::Input>(op)) return "input";
  if (std::holds_alternative<ops::Constant>(op)) return "constant";
  return std::string(tape.op_name(i));
}

std::string text(const Tape<double>& tape, std::size_t i) {
  const std::string s = tape.scope_path(i);
  return s.empty() ? kind(tape, i) : s + "/" + kind(tape, i);
}

// Ancestors and descendants of i, and i, by a breadth-first walk over inputs_of.
std::vector<std::size_t> traced(const Tape<double>& tape, std::size_t i) {
  std::set<std::size_t> up{i}, down{i};
  std::vector<std::size_t> queue{i};
  while (!queue.empty()) {
    const std::size_t v = queue.back();
    queue.pop_back();
    for (const std::uint32_t u : tape.inputs_of(v))
      if (up.insert(u).second) queue.push_back(u);
  }
  for (std::size_t v = i + 1; v < tape.size(); ++v) {  // inputs precede their users on a tape
    for (const std::uint32_t u : tape.inputs_of(v)) {
      if (down.count(u)) {
        down.insert(v);
        break;
      }
    }
  }
  up.insert(down.begin(), down.end());
  return {up.begin(), up.end()};
}

std::vector<std::string> split(const std::string& path) {
  std::vector<std::string> parts;
  std::size_t at = 0;
  while (at <= path.size() && !path.empty()) {
    const std::size_t slash = std::min(path.find('/', at), path.size());
    parts.push_back(path.substr(at, slash - at));
    at = slash + 1;
  }
  return parts;
}

bool is_step(const std::string& part) {
  return part.size() >= 2 && part[0] == 't' &&
         std::all_of(part.begin() + 1, part.end(),
                     [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; });
}

std::size_t count(const Tape<double>& tape, const std::function<bool(const std::string&)>& f) {
  std::size_t c = 0;
  for (std::size_t i = 0; i < tape.size(); ++i) c += f(text(tape, i)) ? 1 : 0;
  return c;
}

json stats(const Eigen::Ref<const Matrix<double>>& m) {
  return {m.minCoeff(), m.maxCoeff(), m.norm()};
}

void write(const fs::path& path, const std::function<void(std::ostream&)>& f) {
  std::ofstream out(path, std::ios::binary);
  f(out);
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: make_pages <output folder>\n";
    return 2;
  }
  const fs::path dir = argv[1];
  fs::create_directories(dir);
  json ref;

  // A 2-layer bidirectional LSTM.
  {
    layers::Rng rng(7);
    layers::Lstm<double> net({.input = 3, .hidden = 4, .num_layers = 2, .bidirectional = true},
                             rng);
    Tape<double> tape;
    record(tape, net, kSteps, rng);
    write(dir / "lstm.html", [&](std::ostream& o) {
      write_html(tape, o, {.title = "lstm 2 layers bidirectional", .window = 3});
    });
    json& r = ref["lstm"];
    r["n"] = tape.size();
    std::set<std::string> sequences;  // the scope before a t<digits> component
    for (std::size_t i = 0; i < tape.size(); ++i) {
      if (std::holds_alternative<ops::Param>(tape.op(i))) continue;
      const auto parts = split(tape.scope_path(i));
      for (std::size_t c = 0; c < parts.size(); ++c) {
        if (is_step(parts[c])) {
          std::string prefix;
          for (std::size_t k = 0; k < c; ++k) prefix += (k ? "/" : "") + parts[k];
          sequences.insert(prefix);
          break;
        }
      }
    }
    r["sequences"] = sequences;
    for (int k = 0; k < 20; ++k) {
      const std::size_t i = (static_cast<std::size_t>(k) * 7919 + 13) % tape.size();
      r["probes"].push_back({{"node", i}, {"traced", traced(tape, i)}});
    }
    for (const std::size_t i : {std::size_t{40}, tape.size() / 2, tape.size() - 3}) {
      const Shape s = tape.shape(i);
      r["cards"].push_back({{"node", i},
                            {"kind", kind(tape, i)},
                            {"shape", fmt::format("{}x{}", s.rows, s.cols)},
                            {"scope", tape.scope_path(i)},
                            {"value", stats(tape.value(i))},
                            {"grad", tape.grad(i) ? stats(*tape.grad(i)) : json()}});
    }
    // Each query's hits, by a predicate written here over the path's components.
    r["search"] = json::array();
    r["search"].push_back(
        {{"query", "layer1/bwd/t7/**"}, {"hits", count(tape, [](const std::string& t) {
                                           return t.rfind("layer1/bwd/t7/", 0) == 0;
                                         })}});
    r["search"].push_back({{"query", "layer0/*/t1?/f/sigmoid"},
                           {"hits", count(tape, [](const std::string& t) {
                              const auto c = split(t);
                              return c.size() == 5 && c[0] == "layer0" && c[2].size() == 3 &&
                                     c[2].rfind("t1", 0) == 0 && c[3] == "f" && c[4] == "sigmoid";
                            })}});
    r["search"].push_back({{"query", "/^layer[01]\\/fwd\\/t1[0-9]\\/(i|o)\\//"},
                           {"hits", count(tape, [](const std::string& t) {
                              const auto c = split(t);
                              return c.size() >= 5 && (c[0] == "layer0" || c[0] == "layer1") &&
                                     c[1] == "fwd" && c[2].size() == 3 &&
                                     c[2].rfind("t1", 0) == 0 &&
                                     std::isdigit(static_cast<unsigned char>(c[2][2])) &&
                                     (c[3] == "i" || c[3] == "o");
                            })}});
    r["first_bad"] = -1;
  }

  // Issue 16's workload: a 2-layer bidirectional LSTM over 500 steps (about 34 000 ops), and
  // 20 probes traced here.
  {
    layers::Rng rng(1);
    layers::Lstm<double> net({.input = 3, .hidden = 4, .num_layers = 2, .bidirectional = true},
                             rng);
    Tape<double> tape;
    record(tape, net, 500, rng);
    write(dir / "big.html", [&](std::ostream& o) {
      write_html(tape, o, {.title = "lstm 2 layers bidirectional, 500 steps"});
    });
    json& r = ref["big"];
    r["n"] = tape.size();
    for (int k = 0; k < 20; ++k) {
      const std::size_t i = (static_cast<std::size_t>(k) * 7919 + 13) % tape.size();
      r["probes"].push_back({{"node", i}, {"traced", traced(tape, i)}});
    }
  }

  // The same shape of model with a NaN in one input element at step 4.
  {
    layers::Rng rng(3);
    layers::Lstm<double> net({.input = 3, .hidden = 4}, rng);
    Tape<double> tape;
    record(tape, net, 10, rng, 4);
    write(dir / "nan.html", [&](std::ostream& o) { write_html(tape, o, {.title = "NaN at t4"}); });
    long first = -1;
    for (std::size_t i = 0; i < tape.size() && first < 0; ++i) {
      const bool bad = !tape.value(i).allFinite() || (tape.grad(i) && !tape.grad(i)->allFinite());
      if (bad) first = static_cast<long>(i);
    }
    ref["nan"] = {{"n", tape.size()}, {"first_bad", first}};
  }

  // Two recordings: the second with its recurrent weights scaled by 6 (saturated gates).
  {
    layers::Rng rng_a(5), rng_b(5);
    layers::Lstm<double> a({.input = 3, .hidden = 4}, rng_a), b({.input = 3, .hidden = 4}, rng_b);
    for (Parameter<double>* p : b.named_parameters())
      if (p->name.find("weight_hh") != std::string::npos) p->value *= 6;
    Tape<double> ta, tb;
    record(ta, a, 12, rng_a);
    record(tb, b, 12, rng_b);
    HtmlCompareOptions options;  // member by member: see tools/rewind/inspect.cpp
    options.page.title = "W_hh x1 vs x6";
    options.left = "x1";
    options.right = "x6";
    write(dir / "compare.html", [&](std::ostream& o) { write_html_compare(ta, tb, o, options); });
    // Match by scope path, kind and ordinal; count the pairs whose gradient norms differ by
    // more than 10x (or where exactly one is zero).
    const auto keys = [](const Tape<double>& t) {
      std::map<std::string, std::size_t> seen;
      std::map<std::string, std::size_t> out;
      for (std::size_t i = 0; i < t.size(); ++i) {
        const std::string k = t.scope_path(i) + "|" + kind(t, i);
        out[k + "|" + std::to_string(seen[k]++)] = i;
      }
      return out;
    };
    const auto ka = keys(ta), kb = keys(tb);
    std::vector<std::size_t> differ;
    for (const auto& [k, i] : ka) {
      const auto it = kb.find(k);
      if (it == kb.end()) continue;
      const auto ga = ta.grad(i), gb = tb.grad(it->second);
      const double x = ga ? ga->norm() : 0, y = gb ? gb->norm() : 0;
      if (x == 0 && y == 0) continue;
      if ((x == 0) != (y == 0) || std::max(x, y) / std::min(x, y) > 10) differ.push_back(i);
    }
    std::sort(differ.begin(), differ.end());
    ref["compare"] = {{"n", {ta.size(), tb.size()}}, {"differ", differ}};
  }

  write(dir / "reference.json", [&](std::ostream& o) { o << ref.dump(1) << "\n"; });
  std::cout << "wrote the pages and reference.json to " << dir.string() << "\n";
  return 0;
}
