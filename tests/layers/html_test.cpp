// The interactive page's file (write_html): deterministic, self-contained, and a faithful table
// of the tape: every node placed once, inputs as on the tape, statistics of its values, laid-out
// templates that hold their nodes. The page's behaviour is tested in Chromium
// (tests/browser/page_test.py).
#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>
#include <rewind/rewind.hpp>
#include <set>
#include <sstream>

#include "mgu.hpp"

using namespace rwd;
using json = nlohmann::json;

namespace {

// A 2-layer bidirectional LSTM over `steps` steps, after a backward.
void record(Tape<double>& tape, int steps, std::string_view label = "x") {
  layers::Rng rng(11);
  layers::Lstm<double> net({.input = 3, .hidden = 4, .num_layers = 2, .bidirectional = true}, rng);
  std::vector<Var<double>> xs;
  for (int t = 0; t < steps; ++t)
    xs.push_back(tape.input(layers::uniform<double>(2, 3, 1, rng), label));
  tape.backward(mean(square(net(tape, xs).outputs.back())));
}

std::string page_of(const Tape<double>& tape, const HtmlOptions& o = {}) {
  std::ostringstream out;
  const HtmlSummary s = write_html(tape, out, o);
  BOOST_TEST(s.bytes == out.str().size());
  return out.str();
}

json data_of(const std::string& html) {
  const std::string open = "<script type=\"application/json\" id=\"rewind-data\">";
  const std::size_t a = html.find(open);
  BOOST_REQUIRE(a != std::string::npos);
  const std::size_t b = html.find("</script>", a);
  BOOST_REQUIRE(b != std::string::npos);
  return json::parse(html.substr(a + open.size(), b - a - open.size()));
}

double number(const json& v) {
  return v.is_string() ? std::stod(v.get<std::string>()) : v.get<double>();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(html_page)

BOOST_AUTO_TEST_CASE(the_page_is_byte_identical_between_writes) {
  Tape<double> a, b;
  record(a, 6);
  record(b, 6);
  BOOST_TEST(page_of(a) == page_of(b));
  BOOST_TEST(page_of(a) == page_of(a));
  Tape<double> c;
  record(c, 7);
  BOOST_TEST(page_of(a) != page_of(c));
}

BOOST_AUTO_TEST_CASE(the_table_is_the_tape) {
  Tape<double> tape;
  record(tape, 6);
  const json d = data_of(page_of(tape));
  BOOST_TEST(d["version"] == 1);
  const json& p = d["panes"][0];
  const std::size_t n = tape.size();
  BOOST_TEST(p["n"].get<std::size_t>() == n);
  BOOST_TEST(p["grads"] == true);
  BOOST_TEST(p["loss"].get<std::size_t>() == *tape.last_loss());
  // Inputs exactly as on the tape.
  for (std::size_t i = 0; i < n; ++i) {
    const auto in = tape.inputs_of(i);
    const std::size_t from = p["pofs"][i], to = p["pofs"][i + 1];
    BOOST_REQUIRE(to - from == in.size());
    for (std::size_t k = 0; k < in.size(); ++k) BOOST_TEST(p["par"][from + k] == in[k]);
    // Scope and shape; value and gradient norms to the four digits written.
    BOOST_TEST(p["strings"][p["scope"][i].get<std::size_t>()] == tape.scope_path(i));
    BOOST_TEST(p["shape"][2 * i] == tape.shape(i).rows);
    BOOST_TEST(p["shape"][2 * i + 1] == tape.shape(i).cols);
    const double norm = tape.value(i).norm();
    BOOST_TEST(number(p["val"][3 * i + 2]) == norm, boost::test_tools::tolerance(5e-4));
    if (const auto g = tape.grad(i)) {
      BOOST_TEST(number(p["grad"][3 * i + 2]) == g->norm(), boost::test_tools::tolerance(5e-4));
    } else {
      BOOST_TEST(p["grad"][3 * i + 2].is_null());
    }
  }
  // Every node is placed exactly once: in a step, at the head of a row, at the top of a column
  // or among the others.
  std::vector<int> placed(n, 0);
  for (const json& row : p["rows"]) {
    for (const json& nodes : row["nodes"])
      for (const json& i : nodes) ++placed[i.get<std::size_t>()];
    for (const json& i : row["params"]) ++placed[i.get<std::size_t>()];
  }
  for (const json& c : p["columns"])
    for (const json& i : c[1]) ++placed[i.get<std::size_t>()];
  for (const json& i : p["other"]["nodes"]) ++placed[i.get<std::size_t>()];
  BOOST_TEST((std::count(placed.begin(), placed.end(), 1) == static_cast<long>(n)));
  // Rows: the four directions and the two layers' per-step concatenations; every direction's
  // parameters at its head.
  std::set<std::string> rows;
  for (const json& row : p["rows"]) rows.insert(row["path"]);
  BOOST_TEST((rows == std::set<std::string>{"layer0", "layer0/bwd", "layer0/fwd", "layer1",
                                            "layer1/bwd", "layer1/fwd"}));
  for (const json& row : p["rows"]) {
    if (std::string(row["path"]).find('/') != std::string::npos)
      BOOST_TEST(row["params"].size() == 4u);
  }
  // Few templates: per direction one for its first step (its initial state is a leaf in it) and
  // one for the rest (a direction's products name its own parameters, so directions share none),
  // and the concatenation rows'; each holds its nodes inside its bounding box, and its gates'
  // nodes inside the gate.
  BOOST_TEST(p["templates"].size() <= 10u);
  for (const json& t : p["templates"]) {
    const double w = t["w"], h = t["h"];
    for (std::size_t k = 0; k < t["x"].size(); ++k) {
      const double x = t["x"][k], y = t["y"][k], nw = t["nw"][k], nh = t["nh"][k];
      BOOST_TEST((x >= -0.5 && y >= -0.5 && x + nw <= w + 0.5 && y + nh <= h + 0.5));
      const std::string rel = p["strings"][t["rel"][k].get<std::size_t>()];
      if (rel.empty()) continue;
      bool inside = false;
      for (const json& c : t["clusters"]) {
        if (p["strings"][c[0].get<std::size_t>()] != rel) continue;
        const double cx = c[1], cy = c[2], cw = c[3], ch = c[4];
        inside =
            x >= cx - 0.5 && y >= cy - 0.5 && x + nw <= cx + cw + 0.5 && y + nh <= cy + ch + 0.5;
      }
      BOOST_TEST(inside, "node " << k << " outside its gate " << rel);
    }
  }
}

BOOST_AUTO_TEST_CASE(the_page_fetches_nothing_and_labels_cannot_break_it) {
  Tape<double> tape;
  record(tape, 3, "</script><img src=x onerror=alert(1)>");
  const std::string html = page_of(tape);
  BOOST_TEST(html.find("<img") == std::string::npos);
  BOOST_TEST(html.find("<link") == std::string::npos);
  BOOST_TEST(html.find("<script src") == std::string::npos);
  // The only addresses are the SVG and XLink namespaces.
  for (std::size_t at = html.find("http"); at != std::string::npos;
       at = html.find("http", at + 1)) {
    const std::string u = html.substr(at, html.find_first_of("\"' )", at) - at);
    if (u.rfind("http://", 0) != 0 && u.rfind("https://", 0) != 0) continue;
    BOOST_TEST((u == "http://www.w3.org/2000/svg" || u == "http://www.w3.org/1999/xlink"), u);
  }
  const json d = data_of(html);
  bool found = false;
  for (const json& s : d["panes"][0]["strings"])
    found = found || s == "</script><img src=x onerror=alert(1)>";
  BOOST_TEST(found);
  BOOST_TEST(html.find("<template id=\"overview-0\"><svg") != std::string::npos);
  // Graphviz writes the hyphen as a character reference; the browser reads it as "ov-c:...".
  BOOST_TEST(html.find("id=\"ov&#45;c:layer0/fwd\"") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(custom_cells_and_compare_pages) {
  layers::Rng rng(2);
  layers::Sequence<MguCell<double>> net(
      "Mgu", {2, false, 0.0}, 3, [&](int, bool, Index in) { return MguCell<double>(in, 4, rng); });
  Tape<double> a, b;
  for (Tape<double>* t : {&a, &b}) {
    std::vector<Var<double>> xs;
    for (int s = 0; s < 5; ++s) xs.push_back(t->input(layers::uniform<double>(2, 3, 1, rng), "x"));
    t->backward(mean(square(net(*t, xs).outputs.back())));
  }
  const json d = data_of(page_of(a));
  std::set<std::string> gates;
  for (const json& t : d["panes"][0]["templates"])
    for (const json& k : t["rel"]) gates.insert(d["panes"][0]["strings"][k.get<std::size_t>()]);
  BOOST_TEST(gates.count("f") == 1u);
  BOOST_TEST(gates.count("h~") == 1u);
  std::ostringstream out;
  HtmlCompareOptions options;
  options.left = "first";
  options.right = "second";
  const HtmlSummary s = write_html_compare(a, b, out, options);
  BOOST_TEST(s.ops == a.size() + b.size());
  const json c = data_of(out.str());
  BOOST_TEST(c["panes"].size() == 2u);
  BOOST_TEST(c["panes"][1]["name"] == "second");
  BOOST_TEST(c["compare"]["matched"].get<std::size_t>() == a.size());  // the same structure
  BOOST_TEST(c["compare"]["differ"][0].size() == s.differing);
}

BOOST_AUTO_TEST_CASE(bad_options_are_rejected) {
  Tape<double> tape;
  record(tape, 2);
  std::ostringstream out;
  BOOST_CHECK_EXCEPTION(write_html(tape, out, {.window = 0}), UsageError, [](const UsageError& e) {
    return std::string(e.what()) == "write_html: window must be at least 1, got 0";
  });
  HtmlCompareOptions one;
  one.threshold = 1;
  BOOST_CHECK_EXCEPTION(
      write_html_compare(tape, tape, out, one), UsageError, [](const UsageError& e) {
        return std::string(e.what()) == "write_html_compare: threshold must be above 1, got 1";
      });
  BOOST_TEST(out.str().empty());
}

BOOST_AUTO_TEST_SUITE_END()
