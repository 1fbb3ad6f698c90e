#include "inspect.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "mgu.hpp"
#include "model.hpp"
#include "peephole_lstm.hpp"

namespace rwd::cli {
namespace {

// Calls f with the sequence layer the options describe (its type depends on the cell).
template <class T, class F>
void with_model(const ModelOptions& m, layers::Rng& rng, F&& f) {
  if (m.forget_bias != 0 && (m.cell != "lstm" || !m.cell_file.empty()))
    throw UsageError("--forget-bias applies to the lstm cell only");
  if (m.steps <= 0 || m.hidden <= 0 || m.input <= 0 || m.batch <= 0 || m.layers <= 0) {
    throw UsageError("sizes and counts must be positive");
  }
  const layers::SequenceOptions so{m.layers, m.bidirectional, 0.0};
  if (!m.cell_file.empty()) {
    const auto program = layers::load_cell_file(m.cell_file);
    layers::with_state_count(*program, [&](auto n) {
      using Cell = layers::FileCell<T, decltype(n)::value>;
      layers::Sequence<Cell> net(program->name, so, m.input, [&](int, bool, Index in) {
        return Cell(program, in, m.hidden, rng);
      });
      f(net);
    });
  } else if (m.cell == "lstm") {
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

// What `diagnose` and `spectrum` examine. Without a task: the layer alone, inputs uniform in
// [-1, 1] and the loss the mean square of the last step's output. With a task: the model
// `rewind train` forms for it (its head and loss) on one batch of its data. With weights: those
// parameters loaded first (with_subject has checked the flags against the file's).
template <class Net>
class Subject {
 public:
  Subject(Net net, const ModelOptions& m, const Task* task, const std::string& weights,
          layers::Rng& rng)
      : net_(std::move(net)), batch_rows_(m.batch) {
    if (task != nullptr) {
      TrainOptions to;
      to.hidden = m.hidden;
      to.bidirectional = m.bidirectional;
      batch_ = task->sample(m.batch, m.steps, rng);
      model_.emplace(*task, to, std::move(net_), rng);
    }
    params_ = model_ ? model_->parameters() : layer().named_parameters();
    if (!weights.empty()) layers::load_parameters(weights, params_, {.convert_dtype = true});
    for (long t = 0; t < m.steps; ++t) {
      xs_.push_back(task != nullptr
                        ? Matrix<double>(batch_.xs[static_cast<std::size_t>(t)].cast<double>())
                        : layers::uniform<double>(m.batch, m.input, 1.0, rng));
    }
  }
  Net& layer() { return model_ ? model_->layer() : net_; }
  const std::vector<Parameter<double>*>& parameters() const { return params_; }
  const std::vector<Matrix<double>>& inputs() const { return xs_; }
  // Records the loss; `hidden` (if given) receives the layer's h_t series.
  Var<double> loss(Tape<double>& tape, std::vector<HiddenSeries<double>>* hidden = nullptr) {
    if (model_) {
      Var<double> logits;
      return model_->loss(tape, batch_, batch_rows_, &logits, hidden);
    }
    std::vector<Var<double>> in;
    for (const auto& x : xs_) in.push_back(tape.constant(x));
    auto run = layer()(tape, in);
    if (hidden != nullptr) *hidden = std::move(run.hidden);
    return mean(square(run.outputs.back()));
  }

 private:
  Net net_;
  Index batch_rows_;
  std::optional<Model<Net>> model_;
  Batch batch_;
  std::vector<Parameter<double>*> params_;
  std::vector<Matrix<double>> xs_;
};

// `rewind train` saves its flags with the weights (task, cell, hidden, layers, bidirectional):
// weights loaded under other flags are refused, with the flags that fit them.
void check_weights_fit(const std::string& command, const std::string& path, const ModelOptions& m,
                       const std::string& task) {
  std::vector<std::uint8_t> bytes;
  const auto file = layers::read_tensor_file(path, bytes);
  const auto saved = [&](const char* key) {
    const auto it = file.metadata.find(key);
    return it == file.metadata.end() ? std::optional<std::string>() : it->second;
  };
  const std::string cell = saved("cell").value_or("");
  const bool builtin = std::ranges::find(cell_names(), cell) != cell_names().end();
  struct Flag {
    const char* key;
    std::string here;
    std::string fit;  // the flag that gives the file's value ("" for a switch left off)
  };
  const auto value = [&](const char* key) { return saved(key).value_or(""); };
  const Flag flags[] = {
      {"task", task.empty() ? "none" : task, "--task " + value("task")},
      {"cell", m.cell, builtin ? "--cell " + cell : "--cell-file " + cell + ".cell"},
      {"hidden", std::to_string(m.hidden), "--hidden " + value("hidden")},
      {"layers", std::to_string(m.layers), "--layers " + value("layers")},
      {"bidirectional", m.bidirectional ? "1" : "0",
       value("bidirectional") == "1" ? "--bidirectional" : ""}};
  std::string differ, fit;
  for (const Flag& f : flags) {
    const auto there = saved(f.key);
    if (!there) continue;  // not saved by `rewind train`
    if (!f.fit.empty()) fit += " " + f.fit;
    if (*there != f.here) {
      differ += fmt::format("{}{} is {} here, {} there", differ.empty() ? "" : "; ", f.key, f.here,
                            *there);
    }
  }
  if (!differ.empty()) {
    throw UsageError(fmt::format(
        "{}: {} was saved by `rewind train` with other flags ({}): run with{} --weights {}",
        command, path, differ, fit, path));
  }
}

// Calls f(subject) with what `diagnose` or `spectrum` examines (see Subject).
template <class F>
void with_subject(const std::string& command, ModelOptions m, const std::string& task_name,
                  const std::string& weights, F&& f) {
  std::unique_ptr<Task> task;
  if (!task_name.empty()) {
    task = make_task(task_name);
    if (task->embeds()) {
      throw UsageError(
          fmt::format("{}: --task {} embeds its inputs: not supported", command, task_name));
    }
    m.input = task->input_size();
  }
  if (!weights.empty()) check_weights_fit(command, weights, m, task_name);
  layers::Rng rng(m.seed);
  with_model<double>(m, rng, [&](auto& net) {
    Subject<std::decay_t<decltype(net)>> subject(std::move(net), m, task.get(), weights, rng);
    f(subject);
  });
}

}  // namespace

const std::vector<std::string>& cell_names() {
  static const std::vector<std::string> names{"rnn", "rnn-relu", "lstm", "gru", "mgu", "peephole"};
  return names;
}

namespace {
// The model recorded on a loss at the last step, with a backward when gradients are wanted.
void record(const ModelOptions& m, bool gradients, Tape<double>& tape) {
  layers::Rng rng(m.seed);
  with_model<double>(m, rng, [&](auto& net) {
    const auto xs = make_inputs(tape, m, rng);
    const auto run = net(tape, xs);
    const Var<double> loss = mean(square(run.outputs.back()));
    if (gradients) tape.backward(loss);
  });
}

std::string title_of(const ModelOptions& m) {
  return fmt::format(
      "{} ({} layer{}{}, {} steps{})",
      m.cell_file.empty() ? m.cell : std::filesystem::path(m.cell_file).filename().string(),
      m.layers, m.layers > 1 ? "s" : "", m.bidirectional ? ", bidirectional" : "", m.steps,
      m.seed == 1 ? "" : fmt::format(", seed {}", m.seed));
}
}  // namespace

ModelOptions with_overrides(ModelOptions m, const std::string& spec) {
  std::size_t at = 0;
  while (at < spec.size()) {
    std::size_t comma = spec.find(',', at);
    if (comma == std::string::npos) comma = spec.size();
    const std::string item = spec.substr(at, comma - at);
    at = comma + 1;
    const std::size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == item.size())
      throw UsageError(fmt::format("--compare: expected key=value, got '{}'", item));
    const std::string key = item.substr(0, eq), value = item.substr(eq + 1);
    const auto number = [&](auto& field) {
      std::istringstream in(value);
      if (!(in >> field) || !in.eof())
        throw UsageError(fmt::format("--compare: {} must be a number, got '{}'", key, value));
    };
    if (key == "seed") {
      number(m.seed);
    } else if (key == "cell") {
      const auto& names = cell_names();
      if (std::find(names.begin(), names.end(), value) == names.end())
        throw UsageError(fmt::format("--compare: unknown cell '{}'", value));
      m.cell = value;
      m.cell_file.clear();
    } else if (key == "cell-file") {
      m.cell_file = value;
    } else if (key == "forget-bias") {
      number(m.forget_bias);
    } else {
      throw UsageError(
          fmt::format("--compare: unknown key '{}' (seed, cell, cell-file or forget-bias)", key));
    }
  }
  return m;
}

HtmlSummary graph_html(const ModelOptions& m, const GraphOptions& g, std::ostream& out) {
  Tape<double> tape;
  record(m, true, tape);
  std::ofstream file(g.html, std::ios::binary);
  if (!file) throw FileError(fmt::format("cannot write '{}'", g.html));
  HtmlSummary s;
  // Options set member by member: g++ 12 warns (maybe-uninitialized, a false positive under
  // the sanitizers) on nested designated initializers holding strings.
  HtmlOptions page;
  page.title = title_of(m);
  page.window = g.window;
  if (g.compare.empty()) {
    s = write_html(tape, file, page);
  } else {
    const ModelOptions b = with_overrides(m, g.compare);
    Tape<double> other;
    record(b, true, other);
    HtmlCompareOptions c;
    c.page = page;
    c.page.title = fmt::format("{} vs {}", title_of(m), title_of(b));
    c.left = title_of(m);
    c.right = title_of(b);
    s = write_html_compare(tape, other, file, c);
  }
  file.close();
  if (!file) throw FileError(fmt::format("could not finish writing '{}'", g.html));
  out << fmt::format("wrote {}: {} ops, {} sequences, {} step layouts, {:.1f} MB{}\n", g.html,
                     s.ops, s.rows, s.templates, static_cast<double>(s.bytes) / 1e6,
                     g.compare.empty() ? "" : fmt::format(", {} ops differ", s.differing));
  return s;
}

DotSummary graph(const ModelOptions& m, const GraphOptions& g, std::ostream& out) {
  Tape<double> tape;
  record(m, g.gradients, tape);
  const DotOptions o{.cluster_depth = g.depth,
                     .rolled = g.rolled,
                     .max_nodes = g.max_nodes,
                     .gradients = g.gradients,
                     .title = title_of(m)};
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
      // Each state its own width (a matrix memory's is not the hidden size).
      const auto sizes = net.cell(static_cast<int>(s) / net.directions(),
                                  static_cast<int>(s) % net.directions() == 1)
                             .state_sizes();
      for (std::size_t k = 0; k < per_state; ++k) {
        const std::string name = k == 0 ? "h" : k == 1 ? "c" : fmt::format("s{}_", k);
        inputs.push_back({fmt::format("{}0[{}]", name, s),
                          layers::uniform<double>(m.batch, sizes[k], 1.0, rng)});
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
  BpttReport report;
  with_subject("diagnose", m, d.task, d.weights, [&](auto& subject) {
    Tape<double> tape;
    std::vector<HiddenSeries<double>> hidden;
    tape.backward(subject.loss(tape, &hidden));
    std::vector<Parameter<double>*> recurrent;
    for (Parameter<double>* p : subject.layer().named_parameters()) {
      if (p->name.find("weight_hh") != std::string::npos || p->name.starts_with("u_f") ||
          p->name.starts_with("u_h"))
        recurrent.push_back(p);
    }
    report = bptt_diagnostics(tape, hidden, recurrent, {.probes = d.probes, .seed = m.seed});
  });
  const std::string title = fmt::format("{}{}: gradient flow through {} steps (loss {})", m.cell,
                                        d.task.empty() ? "" : " on " + d.task, m.steps,
                                        d.task.empty() ? "at the last step" : "of the task");
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

namespace {

void write_file(const std::string& path, const std::string& text, std::vector<std::string>& wrote) {
  std::ofstream file(path);
  if (!file) throw FileError(fmt::format("cannot write '{}'", path));
  file << text;
  wrote.push_back(path);
}

// "\r<what> <done>/<total>" on a terminal; on anything else a line at each quarter.
class Progress {
 public:
  Progress(std::ostream* out, std::string what) : out_(out), what_(std::move(what)) {}
  void operator()(long done, long total) {
    if (out_ == nullptr || total <= 0) return;
    const int quarter = static_cast<int>(4 * done / total);
    if (done == total || quarter != last_quarter_) {
      *out_ << fmt::format("{}: {}/{}\n", what_, done, total) << std::flush;
      last_quarter_ = quarter;
    }
  }

 private:
  std::ostream* out_;
  std::string what_;
  int last_quarter_ = 0;
};

}  // namespace

SpectrumResult spectrum(const ModelOptions& m, const SpectrumOptions& s, std::ostream& out,
                        std::ostream* progress) {
  if (s.hessian.empty() && !s.jacobian && s.lyapunov == 0) {
    throw UsageError("spectrum: nothing to do: ask for --hessian, --jacobian or --lyapunov");
  }
  if (!s.hessian.empty() && s.hessian != "top-k" && s.hessian != "trace" &&
      s.hessian != "density") {
    throw UsageError(
        fmt::format("spectrum: --hessian {}: expected top-k, trace or density", s.hessian));
  }
  SpectrumResult result;
  std::vector<std::string> wrote;
  // An analysis's CSV and SVG: <output>-<what>.csv, .svg.
  const auto write_plot = [&](const std::string& what, const std::string& csv,
                              const std::string& svg) {
    write_file(s.output + "-" + what + ".csv", csv, wrote);
    write_file(s.output + "-" + what + ".svg", svg, wrote);
  };
  std::string json = "{";
  with_subject("spectrum", m, s.task, s.weights, [&](auto& subject) {
    auto& layer = subject.layer();
    const std::vector<Parameter<double>*>& params = subject.parameters();
    const std::vector<Matrix<double>>& xs = subject.inputs();
    Index count = 0;
    for (const Parameter<double>* p : params) count += p->size();
    result.parameters = count;
    out << fmt::format("{}{}: {} layer{}{}, hidden {}, {} steps, batch {}, {} parameters\n", m.cell,
                       s.task.empty() ? "" : " on " + s.task, m.layers, m.layers > 1 ? "s" : "",
                       m.bidirectional ? ", bidirectional" : "", m.hidden, m.steps, m.batch, count);
    if (!s.hessian.empty()) {
      Tape<double> tape;
      const Var<double> loss = subject.loss(tape);
      HessianOperator<double> h(tape, loss, params);
      Progress p(progress, "hessian-vector products");
      const long planned = s.hessian == "top-k"   ? std::min<long>(count, 300)
                           : s.hessian == "trace" ? s.samples
                                                  : s.iterations;
      SymmetricOperator op{h.size(), [&](const Eigen::VectorXd& v) {
                             Eigen::VectorXd r = h.apply(v);
                             p(std::min<long>(h.products(), planned), planned);
                             return r;
                           }};
      if (s.hessian == "top-k") {
        result.top = lanczos(op, {.top = std::min<int>(s.top, static_cast<int>(count)),
                                  .max_iterations = 300,
                                  .tolerance = 1e-10,
                                  .seed = m.seed});
        std::string csv = "i,eigenvalue,residual\n";
        std::string list;
        for (std::size_t i = 0; i < result.top.values.size(); ++i) {
          csv += fmt::format("{},{:.12g},{:.3g}\n", i + 1, result.top.values[i],
                             result.top.residuals[i]);
          list += fmt::format("{}{:.12g}", i ? "," : "", result.top.values[i]);
        }
        write_file(s.output + "-hessian.csv", csv, wrote);
        json += fmt::format(
            "\n\"hessian_top\": {{\"values\": [{}], \"products\": {}, "
            "\"converged\": {}}},",
            list, result.top.products, result.top.converged);
        out << "Hessian, Lanczos: " << result.top.to_string() << "\n";
      } else if (s.hessian == "trace") {
        result.trace = hutchinson_trace(op, s.samples, m.seed);
        json += fmt::format(
            "\n\"hessian_trace\": {{\"estimate\": {:.12g}, "
            "\"standard_error\": {:.6g}, \"samples\": {}}},",
            result.trace.estimate, result.trace.standard_error, s.samples);
        out << fmt::format("Hessian trace (Hutchinson, {} samples): {:.6g} ± {:.3g}\n", s.samples,
                           result.trace.estimate, result.trace.standard_error);
      } else {
        result.density = slq_density(op, {.iterations = s.iterations, .seed = m.seed});
        write_plot("density", result.density.csv(),
                   result.density.svg(
                       fmt::format("{}: Hessian spectral density (SLQ, {} Lanczos iterations)",
                                   m.cell, s.iterations)));
        json += fmt::format(
            "\n\"hessian_density\": {{\"min\": {:.12g}, \"max\": {:.12g}, "
            "\"iterations\": {}}},",
            result.density.min_node(), result.density.max_node(), s.iterations);
        out << fmt::format(
            "Hessian spectral density (SLQ, {} Lanczos iterations): eigenvalues in "
            "[{:.6g}, {:.6g}]\n",
            s.iterations, result.density.min_node(), result.density.max_node());
      }
    }
    if (s.jacobian) {
      Tape<double> tape;
      std::vector<Var<double>> in;
      for (const auto& x : xs) in.push_back(tape.constant(x));
      const auto run = layer(tape, in);
      result.jacobian = jacobians_through_time(tape, run.hidden,
                                               {.sample = 0, .probes = s.probes, .seed = m.seed});
      write_plot("jacobian", result.jacobian.csv(),
                 result.jacobian.svg(fmt::format("{}: singular values of ∂h_T/∂h_t", m.cell)));
      json += "\n\"jacobian\": " + result.jacobian.json() + ",";
      out << result.jacobian.summary();
    }
    if (s.lyapunov > 0) {
      Progress p(progress, "lyapunov steps");
      auto& cell = layer.cell(0);
      result.lyapunov =
          layers::lyapunov_spectrum(cell, {}, {},
                                    {.exponents = s.lyapunov,
                                     .steps = s.lyapunov_steps,
                                     .warmup = s.warmup,
                                     .qr_every = s.qr_every,
                                     .input_std = s.input_std,
                                     .seed = m.seed,
                                     .progress = [&](int done, int total) { p(done, total); }});
      write_plot("lyapunov", result.lyapunov.csv(),
                 result.lyapunov.svg(fmt::format("{}: Lyapunov spectrum of layer 0", m.cell)));
      json += "\n\"lyapunov\": " + result.lyapunov.json() + ",";
      out << result.lyapunov.summary();
    }
  });
  json.back() = '\n';
  write_file(s.output + ".json", json + "}\n", wrote);
  std::string list;
  for (const std::string& w : wrote) list += (list.empty() ? "" : ", ") + w;
  out << "wrote " << list << "\n";
  return result;
}

}  // namespace rwd::cli
