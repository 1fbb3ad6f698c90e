// Graph export: golden DOT for small RNN/LSTM/GRU unrolls (full and rolled), every DOT parsed
// back with Graphviz's libcgraph and counted, folding under max_nodes, gradient colouring, NaN
// marking, rendering through libgvc.
#include <graphviz/cgraph.h>

#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <rewind/rewind.hpp>
#include <set>
#include <sstream>

#include "mgu.hpp"

using namespace rwd;
using M = Matrix<double>;
namespace fs = std::filesystem;

namespace {

struct Counts {
  std::size_t nodes = 0, edges = 0, clusters = 0;
};

// Parses DOT with libcgraph and counts nodes, edges and clusters (subgraphs named cluster*).
Counts parse(const std::string& dot) {
  Agraph_t* g = agmemread(dot.c_str());
  BOOST_REQUIRE_MESSAGE(g != nullptr, "libcgraph could not parse the DOT");
  Counts c{static_cast<std::size_t>(agnnodes(g)), static_cast<std::size_t>(agnedges(g)), 0};
  std::vector<Agraph_t*> stack{g};
  while (!stack.empty()) {
    Agraph_t* s = stack.back();
    stack.pop_back();
    for (Agraph_t* sub = agfstsubg(s); sub != nullptr; sub = agnxtsubg(sub)) {
      if (std::string(agnameof(sub)).rfind("cluster", 0) == 0) ++c.clusters;
      stack.push_back(sub);
    }
  }
  agclose(g);
  return c;
}

// Counts straight from the tape, independent of the writer: every node, every distinct
// (input, node) pair, every distinct scope prefix up to `depth`.
Counts expected_full(const Tape<double>& tape, int depth) {
  Counts c{tape.size(), 0, 0};
  std::set<std::string> prefixes;
  for (std::size_t i = 0; i < tape.size(); ++i) {
    const auto in = tape.inputs_of(i);
    c.edges += std::set<std::uint32_t>(in.begin(), in.end()).size();
    std::string path = tape.scope_path(i), prefix;
    if (std::holds_alternative<ops::Param>(tape.op(i))) {  // weights are drawn at sequence level
      const auto t = path.find("/t");
      if (t != std::string::npos) path = path.substr(0, t);
    }
    std::stringstream parts(path);
    std::string part;
    for (int d = 0; d < depth && std::getline(parts, part, '/'); ++d) {
      prefix += (prefix.empty() ? "" : "/") + part;
      prefixes.insert(prefix);
    }
  }
  c.clusters = prefixes.size();
  return c;
}

// A small recorded unroll of a cell (4 steps, batch 1), after backward.
template <class Layer>
std::unique_ptr<Tape<double>> record(Layer& layer, int steps = 4) {
  auto tape = std::make_unique<Tape<double>>();
  std::vector<Var<double>> xs;
  for (int t = 0; t < steps; ++t) xs.push_back(tape->input(M::Constant(1, 2, 0.1 * (t + 1)), "x"));
  auto out = layer(*tape, xs);
  tape->backward(sum(out.outputs.back()));
  return tape;
}

std::string dot_of(const Tape<double>& tape, const DotOptions& o, DotSummary* s = nullptr) {
  std::ostringstream out;
  const DotSummary summary = write_dot(tape, out, o);
  if (s) *s = summary;
  const Counts c = parse(out.str());
  BOOST_TEST(c.nodes == summary.nodes);
  BOOST_TEST(c.edges == summary.edges);
  BOOST_TEST(c.clusters == summary.clusters);
  return out.str();
}

// Compares with tests/data/golden/<name>.dot; REWIND_UPDATE_GOLDEN=1 rewrites the file instead
// (then look at the pictures before committing).
void golden(const std::string& name, const std::string& dot) {
  const fs::path path = fs::path(REWIND_TEST_DATA) / "golden" / (name + ".dot");
  if (std::getenv("REWIND_UPDATE_GOLDEN") != nullptr) {
    std::ofstream(path) << dot;
    return;
  }
  std::ifstream in(path);
  BOOST_REQUIRE_MESSAGE(in, "missing golden file " << path);
  const std::string expected((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
  BOOST_TEST(dot == expected, "DOT differs from " << path);
}

template <class Layer>
void check_cell(const std::string& name, Layer& layer) {
  auto tape = record(layer);
  const DotOptions structure{.cluster_depth = 4, .tooltips = false};
  DotSummary s;
  const std::string full = dot_of(*tape, structure, &s);
  const Counts e = expected_full(*tape, 4);
  BOOST_TEST(s.nodes == e.nodes);
  BOOST_TEST(s.edges == e.edges);
  BOOST_TEST(s.clusters == e.clusters);
  golden(name + "_full", full);
  DotOptions rolled = structure;
  rolled.rolled = true;
  const std::string folded = dot_of(*tape, rolled, &s);
  BOOST_TEST(s.folded_steps == 2u);  // t1 and t2 of t0..t3
  BOOST_TEST(s.nodes < e.nodes);
  BOOST_TEST(folded.find("label=\"×2\"") != std::string::npos);
  BOOST_TEST(folded.find("t1..t2") != std::string::npos);
  golden(name + "_rolled", folded);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(graphs)

BOOST_AUTO_TEST_CASE(golden_unrolls_of_rnn_lstm_gru) {
  layers::Rng rng(1);
  layers::Rnn<double> rnn({.input = 2, .hidden = 3}, rng);
  check_cell("rnn", rnn);
  layers::Lstm<double> lstm({.input = 2, .hidden = 3}, rng);
  check_cell("lstm", lstm);
  layers::Gru<double> gru({.input = 2, .hidden = 3}, rng);
  check_cell("gru", gru);
}

BOOST_AUTO_TEST_CASE(output_is_deterministic_and_names_parameters_and_loss) {
  layers::Rng r1(3), r2(3);
  layers::Lstm<double> a({.input = 2, .hidden = 3, .num_layers = 2, .bidirectional = true}, r1);
  layers::Lstm<double> b({.input = 2, .hidden = 3, .num_layers = 2, .bidirectional = true}, r2);
  const DotOptions o{.gradients = true};
  const std::string da = dot_of(*record(a), o), db = dot_of(*record(b), o);
  BOOST_TEST(da == db);  // byte-identical
  BOOST_TEST(da.find("label=\"weight_hh_l1_reverse\\n12x3\", fillcolor=") != std::string::npos);
  // A product names the parameters it takes under its shape.
  BOOST_TEST(da.find("label=\"affine\\n1x12 · weight_hh_l1_reverse,bias_hh_l1_reverse\"") !=
             std::string::npos);
  BOOST_TEST(da.find("subgraph \"cluster_layer1/bwd/t2/f\"") != std::string::npos);
  BOOST_TEST(da.find("peripheries=2") != std::string::npos);  // the loss
  BOOST_TEST(da.find("cluster_legend") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(max_nodes_folds_a_long_unroll) {
  layers::Rng rng(4);
  layers::Lstm<double> lstm({.input = 2, .hidden = 3}, rng);
  auto tape = record(lstm, 500);
  DotSummary s;
  (void)dot_of(*tape, {.max_nodes = 150}, &s);
  BOOST_TEST(s.nodes <= 150u);
  BOOST_TEST(s.folded_steps == 498u);
  (void)dot_of(*tape, {.keep_steps = 3, .max_nodes = 40}, &s);  // even one step is too many
  BOOST_TEST(s.nodes <= 40u);
  BOOST_TEST(s.collapsed_steps);
}

BOOST_AUTO_TEST_CASE(custom_cells_get_the_same_pictures) {
  layers::Rng rng(5);
  layers::Sequence<MguCell<double>> mgu(
      "Mgu", {}, 2, [&](int, bool, Index in) { return MguCell<double>(in, 3, rng); });
  const std::string dot = dot_of(*record(mgu), {.rolled = true});
  BOOST_TEST(dot.find("subgraph \"cluster_layer0/fwd/t3/h~\"") != std::string::npos);
  BOOST_TEST(dot.find("label=\"u_f_l0\\n3x3\"") != std::string::npos);  // named per layer
}

BOOST_AUTO_TEST_CASE(nan_and_inf_are_marked_red) {
  Tape<double> tape;
  Var<double> x = tape.input((M(1, 2) << -1.0, 2.0).finished(), "x");
  tape.backward(sum(sqrt(x)));  // sqrt(-1) = NaN
  const std::string dot = dot_of(tape, {.gradients = true});
  BOOST_TEST(dot.find("fillcolor=\"#ff0000\"") != std::string::npos);
  BOOST_TEST(dot.find("\\nNaN\"") != std::string::npos);
  BOOST_TEST(dot.find("legend_bad") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(rendering_through_libgvc) {
  BOOST_REQUIRE(can_render());
  layers::Rng rng(6);
  layers::Gru<double> gru({.input = 2, .hidden = 3}, rng);
  auto tape = record(gru);
  const fs::path dir = fs::temp_directory_path() / fmt::format("rewind_render_{}", ::getpid());
  fs::create_directories(dir);
  const std::pair<const char*, std::string> formats[] = {
      {"svg", "<?xml"}, {"png", "\x89PNG"}, {"pdf", "%PDF"}};
  for (const auto& [ext, magic] : formats) {
    const fs::path file = dir / (std::string("g.") + ext);
    render(*tape, file, "", {.rolled = true, .gradients = true});
    std::ifstream in(file, std::ios::binary);
    std::string head(magic.size(), '\0');
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    BOOST_TEST(head == magic, ext);
  }
  BOOST_CHECK_THROW(render(*tape, dir / "g.gif"), UsageError);
  try {
    render_dot("digraph { a -> }", dir / "bad.svg");
    BOOST_ERROR("no exception");
  } catch (const FileError& e) {
    BOOST_TEST(std::string(e.what()).find("render: Graphviz could not parse the graph") == 0,
               e.what());
    BOOST_TEST(std::string(e.what()).find("syntax error") != std::string::npos, e.what());
  }
  fs::remove_all(dir);
}

BOOST_AUTO_TEST_SUITE_END()
