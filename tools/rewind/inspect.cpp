#include "inspect.hpp"

#include <filesystem>
#include <fstream>
#include <iostream>

#include "mgu.hpp"
#include "peephole_lstm.hpp"

namespace rwd::cli {
namespace {

// Calls f with the sequence layer the options describe (its type depends on the cell).
template <class T, class F>
void with_model(const ModelOptions& m, layers::Rng& rng, F&& f) {
  if (m.forget_bias != 0 && m.cell != "lstm")
    throw UsageError("--forget-bias applies to the lstm cell only");
  if (m.steps <= 0 || m.hidden <= 0 || m.input <= 0 || m.batch <= 0 || m.layers <= 0) {
    throw UsageError("sizes and counts must be positive");
  }
  const layers::SequenceOptions so{m.layers, m.bidirectional, 0.0};
  if (m.cell == "lstm") {
    layers::Lstm<T> net({.input = m.input,
                         .hidden = m.hidden,
                         .num_layers = m.layers,
                         .bidirectional = m.bidirectional,
                         .forget_bias = m.forget_bias},
                        rng);
    f(net);
  } else if (m.cell == "gru") {
    layers::Gru<T> net({m.input, m.hidden, m.layers, m.bidirectional}, rng);
    f(net);
  } else if (m.cell == "rnn" || m.cell == "rnn-relu") {
    const auto act = m.cell == "rnn" ? layers::Activation::kTanh : layers::Activation::kRelu;
    layers::Rnn<T> net({m.input, m.hidden, m.layers, m.bidirectional, 0.0, act}, rng);
    f(net);
  } else if (m.cell == "mgu") {
    layers::Sequence<MguCell<T>> net(
        "Mgu", so, m.input, [&](int, bool, Index in) { return MguCell<T>(in, m.hidden, rng); });
    f(net);
  } else if (m.cell == "peephole") {
    layers::Sequence<PeepholeLstmCell<T>> net(
        "PeepholeLstm", so, m.input,
        [&](int, bool, Index in) { return PeepholeLstmCell<T>(in, m.hidden, rng); });
    f(net);
  } else {
    throw UsageError(fmt::format(
        "unknown cell '{}' (expected rnn, rnn-relu, lstm, gru, mgu or peephole)", m.cell));
  }
}

template <class T>
std::vector<Var<T>> make_inputs(Tape<T>& tape, const ModelOptions& m, layers::Rng& rng) {
  std::vector<Var<T>> xs;
  for (long t = 0; t < m.steps; ++t)
    xs.push_back(tape.input(layers::uniform<T>(m.batch, m.input, 1.0, rng), "x"));
  return xs;
}

}  // namespace

const std::vector<std::string>& cell_names() {
  static const std::vector<std::string> names{"rnn", "rnn-relu", "lstm", "gru", "mgu", "peephole"};
  return names;
}

DotSummary graph(const ModelOptions& m, const GraphOptions& g, std::ostream& out) {
  layers::Rng rng(m.seed);
  Tape<double> tape;
  with_model<double>(m, rng, [&](auto& net) {
    const auto xs = make_inputs(tape, m, rng);
    const auto run = net(tape, xs);
    const Var<double> loss = mean(square(run.outputs.back()));
    if (g.gradients) tape.backward(loss);
  });
  const DotOptions o{
      .cluster_depth = g.depth,
      .rolled = g.rolled,
      .max_nodes = g.max_nodes,
      .gradients = g.gradients,
      .title = fmt::format("{} ({} layer{}{}, {} steps)", m.cell, m.layers, m.layers > 1 ? "s" : "",
                           m.bidirectional ? ", bidirectional" : "", m.steps)};
  const std::filesystem::path path(g.output);
  DotSummary s;
  if (path.extension() == ".dot" || g.output.empty() || g.output == "-") {
    if (g.output.empty() || g.output == "-") {
      s = write_dot(tape, out, o);
      return s;
    }
    std::ofstream file(path);
    if (!file) throw FileError(fmt::format("cannot write '{}'", g.output));
    s = write_dot(tape, file, o);
  } else {
    s = render(tape, path, "", o);
  }
  out << fmt::format("wrote {}: {} nodes, {} edges, {} clusters{} ({} ops on the tape)\n", g.output,
                     s.nodes, s.edges, s.clusters,
                     s.folded_steps ? fmt::format(", {} steps folded", s.folded_steps) : "",
                     tape.size());
  return s;
}

bool check(const ModelOptions& m, bool fast, std::ostream& out, int order) {
  layers::Rng rng(m.seed);
  bool passed = false;
  with_model<double>(m, rng, [&](auto& net) {
    using Net = std::decay_t<decltype(net)>;
    using State = typename Net::State;
    const std::size_t per_state = std::tuple_size_v<State>;
    const std::size_t count = static_cast<std::size_t>(m.layers * (m.bidirectional ? 2 : 1));
    std::vector<NamedTensor> inputs;
    for (long t = 0; t < m.steps; ++t)
      inputs.push_back(
          {fmt::format("x{}", t), layers::uniform<double>(m.batch, m.input, 1.0, rng)});
    for (std::size_t s = 0; s < count; ++s) {
      for (std::size_t k = 0; k < per_state; ++k) {
        inputs.push_back({fmt::format("{}0[{}]", k == 0 ? "h" : "c", s),
                          layers::uniform<double>(m.batch, m.hidden, 1.0, rng)});
      }
    }
    const auto f = [&](Tape<double>& tape, std::span<const Var<double>> in) {
      typename Net::Call call;
      std::size_t next = static_cast<std::size_t>(m.steps);
      for (std::size_t s = 0; s < count; ++s) {
        State st;
        for (std::size_t k = 0; k < per_state; ++k) st[k] = in[next++];
        call.initial.push_back(st);
      }
      auto run = net(tape, in.first(static_cast<std::size_t>(m.steps)), call);
      std::vector<Var<double>> all = run.outputs;
      for (const State& st : run.final_states) all.insert(all.end(), st.begin(), st.end());
      std::vector<Var<double>> flat;
      for (const Var<double>& v : all) flat.push_back(reshape(v, 1, v.rows() * v.cols()));
      return concat_cols(flat);  // contracted with a fixed random tensor by gradcheck
    };
    GradcheckOptions o;
    o.fast = fast;
    out << fmt::format("{}: {} layer{}{}, hidden {}, {} steps, batch {}\n", m.cell, m.layers,
                       m.layers > 1 ? "s" : "", m.bidirectional ? ", bidirectional" : "", m.hidden,
                       m.steps, m.batch);
    if (order == 2) {
      const GradgradcheckReport report = gradgradcheck(f, inputs, net.named_parameters(), o);
      out << report;
      passed = report.passed();
    } else {
      const GradcheckReport report = gradcheck(f, inputs, net.named_parameters(), o);
      out << report;
      passed = report.passed();
    }
    if (!passed) {
      Tape<double> tape;
      std::vector<Var<double>> vars;
      for (const NamedTensor& t : inputs) vars.push_back(tape.input(t.value, t.name));
      (void)f(tape, vars);
      std::size_t shown = 0;
      out << (order == 2 ? "blame: ops whose own rules (backward, tangent, second-order) "
                           "disagree with finite differences:\n"
                         : "blame: ops whose own backward disagrees with finite differences:\n");
      for (const OpCheck& c : blame(tape, {}, order)) {
        if (c.passed) continue;
        if (shown++ < 20) {
          out << fmt::format("  node {:>5}  {:<16} at {:<28} {:<13} max abs error {:.3e}\n", c.node,
                             c.op, c.scope.empty() ? "(top level)" : c.scope, c.rule,
                             c.max_abs_error);
        }
      }
      if (shown == 0)
        out << "  none: every op passes on its own (look at how the ops are combined)\n";
      if (shown > 20) out << fmt::format("  ... and {} more\n", shown - 20);
    }
  });
  return passed;
}

BpttReport diagnose(const ModelOptions& m, const DiagnoseOptions& d, std::ostream& out) {
  layers::Rng rng(m.seed);
  BpttReport report;
  with_model<double>(m, rng, [&](auto& net) {
    Tape<double> tape;
    const auto xs = make_inputs(tape, m, rng);
    const auto run = net(tape, xs);
    tape.backward(mean(square(run.outputs.back())));  // the loss sits at the last step
    std::vector<Parameter<double>*> recurrent;
    for (Parameter<double>* p : net.named_parameters()) {
      if (p->name.find("weight_hh") != std::string::npos || p->name == "u_f" || p->name == "u_h")
        recurrent.push_back(p);
    }
    report = bptt_diagnostics(tape, run.hidden, recurrent, {.probes = d.probes, .seed = m.seed});
  });
  const std::string title =
      fmt::format("{}: gradient flow through {} steps (loss at the last step)", m.cell, m.steps);
  for (const auto& [ext, text] : {std::pair<std::string, std::string>{".csv", report.csv()},
                                  {".json", report.json()},
                                  {".svg", report.svg(title)}}) {
    std::ofstream file(d.output + ext);
    if (!file) throw FileError(fmt::format("cannot write '{}{}'", d.output, ext));
    file << text;
  }
  out << title << "\n"
      << report.summary() << fmt::format("wrote {0}.csv, {0}.json, {0}.svg\n", d.output);
  return report;
}

}  // namespace rwd::cli
