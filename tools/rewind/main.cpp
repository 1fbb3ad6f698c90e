// The `rewind` command: train, summary, graph, check, diagnose, spectrum.
#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>

#include "inspect.hpp"
#include "train.hpp"
#ifdef REWIND_HAVE_MPI
#include <rewind/optim/mpi.hpp>
#endif

using namespace rwd;

namespace {
// Validators with plain messages (CLI11's ranges print the limits of double).
CLI::Validator number(bool integer, double lowest, bool inclusive, const std::string& what) {
  return CLI::Validator(
      [=](std::string& s) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(s.c_str(), &end);
        const bool whole =
            integer ? s.find_first_not_of("+-0123456789") == std::string::npos : true;
        if (end == s.c_str() || *end != '\0' || !whole || !(inclusive ? v >= lowest : v > lowest)) {
          return fmt::format("must be {}, got '{}'", what, s);
        }
        return {};
      },
      what);
}
const CLI::Validator kCount = number(true, 1, true, "a positive integer");
const CLI::Validator kNonNegativeCount = number(true, 0, true, "a non-negative integer");
const CLI::Validator kPositive = number(false, 0, false, "a positive number");
const CLI::Validator kNonNegative = number(false, 0, true, "a non-negative number");
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "rewind: reverse-mode autodiff on a tape, with recurrent layers built from primitive ops"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Print help for every subcommand");

  cli::TrainOptions t;
  bool bar = false, lines = false;
  CLI::App* train = app.add_subcommand("train", "Train a recurrent model on a built-in task");
  train->add_option("--task", t.task, "Task")
      ->check(CLI::IsMember(cli::task_names()))
      ->capture_default_str();
  train->add_option("--text", t.text, "Text file for --task text (character-level language model)")
      ->check(CLI::ExistingFile);
  train->add_option("--cell", t.cell, "Recurrent cell")
      ->check(CLI::IsMember({"rnn", "lstm", "gru"}))
      ->capture_default_str();
  train
      ->add_option("--cell-file", t.cell_file, "A cell written as a .cell file (instead of --cell)")
      ->check(CLI::ExistingFile);
  train->add_option("--hidden", t.hidden, "Hidden units")->check(kCount)->capture_default_str();
  train->add_option("--layers", t.layers, "Stacked layers")->check(kCount)->capture_default_str();
  train->add_flag("--bidirectional", t.bidirectional, "Bidirectional layers");
  train->add_option("--steps", t.steps, "Training steps")->check(kCount)->capture_default_str();
  train->add_option("--batch", t.batch, "Batch size")->check(kCount)->capture_default_str();
  train->add_option("--seq-len", t.seq_len, "Sequence length")
      ->check(kCount)
      ->capture_default_str();
  train->add_option("--optimizer", t.optimizer, "Optimizer")
      ->check(CLI::IsMember({"sgd", "rmsprop", "adam", "adamw", "adagrad"}))
      ->capture_default_str();
  train->add_option("--lr", t.lr, "Learning rate")->check(kPositive)->capture_default_str();
  train->add_option("--clip", t.clip, "Clip the gradient norm to this (0: no clipping)")
      ->check(kNonNegative)
      ->capture_default_str();
  train->add_option("--seed", t.seed, "Random seed (data and initialisation)")
      ->capture_default_str();
  train->add_option("--save", t.save, "Write the trained weights to this safetensors file");
  train->add_option("--log", t.log, "Write step,loss,accuracy,seconds to this CSV file");
  train->add_option("--log-every", t.log_every, "Steps per progress line (default: steps/20)")
      ->check(kNonNegativeCount);
  train->add_option("--embed", t.embed, "Embedding width for --task text")
      ->check(kCount)
      ->capture_default_str();
  train->add_option("--sample", t.sample, "Characters to generate after training (--task text)")
      ->check(kNonNegativeCount)
      ->capture_default_str();
  train
      ->add_option("--checkpoints", t.checkpoints,
                   "Checkpointed BPTT: store the state at this many steps per sequence and "
                   "recompute the rest (0: plain BPTT)")
      ->check(CLI::NonNegativeNumber);
  train
      ->add_option("--memory-budget", t.memory_budget,
                   "Checkpointed BPTT: as many checkpoints as fit in this much memory besides one "
                   "step (64M = 64 MiB)")
      ->transform(CLI::AsSizeValue(false));
  train->add_option("--schedule", t.schedule, "Checkpointing schedule")
      ->check(CLI::IsMember({"revolve", "uniform", "online"}))
      ->capture_default_str();
  train
      ->add_option("--checkpoint-every", t.checkpoint_every,
                   "Write a training checkpoint every N steps (needs --checkpoint-dir)")
      ->check(kNonNegativeCount);
  train->add_option("--checkpoint-dir", t.checkpoint_dir,
                    "Folder of training checkpoints (step-<N>.safetensors)");
  train->add_option("--keep", t.keep, "Checkpoints kept (the newest; 0: all)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  train->add_option("--resume", t.resume,
                    "Continue from this checkpoint, or 'auto': the newest valid one in "
                    "--checkpoint-dir (none: start at step 0)");
  train->add_option("--accumulate", t.accumulate, "Micro-batches of --batch rows per step")
      ->check(kCount)
      ->capture_default_str();
  train->add_flag("--distributed", t.distributed,
                  "Data parallel over MPI (run under mpirun; --batch rows per rank)");
  train->add_option("--reduce", t.reduce, "Gradient reduction with --distributed")
      ->check(CLI::IsMember({"average", "ordered"}))
      ->capture_default_str();
  train
      ->add_option("--check-replicas", t.check_replicas,
                   "With --distributed: compare the ranks' parameters every N steps")
      ->check(kNonNegativeCount);
  train
      ->add_option("--step-timeout", t.step_timeout,
                   "End the job when a step takes longer than this many seconds")
      ->check(CLI::NonNegativeNumber);
  train->add_flag("--progress", bar, "Always draw a progress bar");
  train->add_flag("--no-progress", lines, "Print plain lines, even on a terminal");

  CLI::App* summary =
      app.add_subcommand("summary", "Print the model `rewind train` builds, layer by layer");
  summary->add_option("--task", t.task, "Task")
      ->check(CLI::IsMember(cli::task_names()))
      ->capture_default_str();
  summary->add_option("--text", t.text, "Text file for --task text")->check(CLI::ExistingFile);
  summary->add_option("--cell", t.cell, "Recurrent cell")
      ->check(CLI::IsMember({"rnn", "lstm", "gru"}))
      ->capture_default_str();
  summary->add_option("--cell-file", t.cell_file, "A cell written as a .cell file")
      ->check(CLI::ExistingFile);
  summary->add_option("--hidden", t.hidden, "Hidden units")->check(kCount)->capture_default_str();
  summary->add_option("--layers", t.layers, "Stacked layers")->check(kCount)->capture_default_str();
  summary->add_flag("--bidirectional", t.bidirectional, "Bidirectional layers");
  summary->add_option("--seq-len", t.seq_len, "Sequence length")
      ->check(kCount)
      ->capture_default_str();
  summary->add_option("--embed", t.embed, "Embedding width for --task text")
      ->check(kCount)
      ->capture_default_str();

  // graph, check, diagnose: a model recorded on a tape.
  cli::ModelOptions m;
  const auto model_options = [&](CLI::App* sub, long default_steps) {
    m.steps = default_steps;
    sub->add_option("--cell", m.cell, "Cell (mgu and peephole are the custom-cell examples)")
        ->check(CLI::IsMember(cli::cell_names()))
        ->capture_default_str();
    sub->add_option("--cell-file", m.cell_file,
                    "A cell written as a .cell file (instead of --cell)")
        ->check(CLI::ExistingFile);
    sub->add_option("--steps", m.steps, "Time steps")->check(kCount)->capture_default_str();
    sub->add_option("--layers", m.layers, "Stacked layers")->check(kCount)->capture_default_str();
    sub->add_flag("--bidirectional", m.bidirectional, "Bidirectional layers");
    sub->add_option("--hidden", m.hidden, "Hidden units")->check(kCount)->capture_default_str();
    sub->add_option("--input", m.input, "Input features")->check(kCount)->capture_default_str();
    sub->add_option("--batch", m.batch, "Batch size")->check(kCount)->capture_default_str();
    sub->add_option("--seed", m.seed, "Random seed")->capture_default_str();
    sub->add_option("--forget-bias", m.forget_bias,
                    "LSTM: add this to the forget gate's bias at init (Keras: 1)")
        ->capture_default_str();
  };
  cli::GraphOptions g;
  CLI::App* graph =
      app.add_subcommand("graph", "Draw the unrolled computation graph of a recurrent model");
  model_options(graph, 4);
  graph->add_flag("--rolled", g.rolled, "Fold the middle time steps into one node");
  graph->add_flag("--grad", g.gradients,
                  "Colour nodes by gradient norm (after a backward from the last step)");
  graph->add_option("--depth", g.depth, "Scope levels drawn as clusters")
      ->check(kNonNegativeCount)
      ->capture_default_str();
  graph
      ->add_option("--max-nodes", g.max_nodes,
                   "Fold until at most this many nodes are drawn (0: no limit)")
      ->check(kNonNegativeCount);
  graph->add_option("-o,--output", g.output,
                    "Output file: .dot, .svg, .png or .pdf (default: DOT on stdout)");
  auto* html = graph->add_option(
      "--html", g.html,
      "Write the interactive page (one offline HTML file: expand, collapse, a time window, "
      "tracing, search, colours) instead");
  graph
      ->add_option("--compare", g.compare,
                   "With --html: compare with a second recording with these options changed, "
                   "e.g. seed=2 or cell=gru (keys: seed, cell, cell-file, forget-bias)")
      ->needs(html);
  graph->add_option("--window", g.window, "With --html: steps expanded when the page opens")
      ->check(kCount)
      ->capture_default_str();
  bool fast = false;
  CLI::App* check = app.add_subcommand(
      "check", "Gradient-check a recurrent model in double, with blame on failure");
  model_options(check, 4);
  check->add_flag("--fast", fast, "Random directions instead of every element");
  int order = 1;
  check
      ->add_option("--order", order,
                   "1: gradients (gradcheck); 2: second order (gradgradcheck: H·v, J·v, the "
                   "transpose identity)")
      ->check(CLI::IsMember({1, 2}))
      ->capture_default_str();
  cli::DiagnoseOptions d;
  CLI::App* diagnose =
      app.add_subcommand("diagnose", "Show how gradients vanish or explode through time");
  model_options(diagnose, 100);
  diagnose->add_option("-o,--output", d.output, "Prefix of the CSV, JSON and SVG files")
      ->capture_default_str();
  diagnose->add_option("--probes", d.probes, "Random probes for the Jacobian norm")
      ->check(kCount)
      ->capture_default_str();

  cli::SpectrumOptions sp;
  CLI::App* spectrum = app.add_subcommand(
      "spectrum",
      "Curvature and stability spectra: Hessian eigenvalues, trace and density; singular values "
      "of ∂h_T/∂h_t; Lyapunov exponents");
  model_options(spectrum, 20);
  spectrum
      ->add_option("--task", sp.task,
                   "Loss of this `rewind train` task (default: mean square of the last output)")
      ->check(CLI::IsMember({"adding", "copy", "reber", "sine"}));
  spectrum->add_option("--weights", sp.weights, "Load these parameters first (rewind train --save)")
      ->check(CLI::ExistingFile);
  spectrum
      ->add_option("--hessian", sp.hessian,
                   "top-k (Lanczos), trace (Hutchinson) or density (stochastic Lanczos quadrature)")
      ->check(CLI::IsMember({"top-k", "trace", "density"}));
  spectrum->add_option("--top", sp.top, "Eigenvalues for --hessian top-k")
      ->check(kCount)
      ->capture_default_str();
  spectrum->add_option("--iterations", sp.iterations, "Lanczos steps for --hessian density")
      ->check(kCount)
      ->capture_default_str();
  spectrum->add_option("--samples", sp.samples, "Hutchinson samples for --hessian trace")
      ->check(number(true, 2, true, "an integer of at least 2"))
      ->capture_default_str();
  spectrum->add_flag("--jacobian", sp.jacobian,
                     "Every singular value of ∂h_T/∂h_t for every t (batch row 0)");
  spectrum->add_option("--probes", sp.probes, "Hutchinson probes next to the exact Jacobian norm")
      ->check(kNonNegativeCount)
      ->capture_default_str();
  spectrum->add_option("--lyapunov", sp.lyapunov, "Lyapunov exponents of layer 0's cell (k)")
      ->check(kCount);
  spectrum->add_option("--lyapunov-steps", sp.lyapunov_steps, "Steps averaged")
      ->check(kCount)
      ->capture_default_str();
  spectrum->add_option("--warmup", sp.warmup, "Steps run before averaging")
      ->check(kNonNegativeCount)
      ->capture_default_str();
  spectrum->add_option("--qr-every", sp.qr_every, "Steps between re-orthonormalisations")
      ->check(kCount)
      ->capture_default_str();
  spectrum->add_option("--input-std", sp.input_std, "Inputs of the Lyapunov trajectory: N(0, s²)")
      ->check(kNonNegative)
      ->capture_default_str();
  spectrum->add_option("-o,--output", sp.output, "Prefix of the files written")
      ->capture_default_str();

  if (argc > 1 && argv[1][0] != '-') {
    bool known = false;
    std::string names;
    for (const CLI::App* sub : app.get_subcommands({})) {
      known = known || sub->get_name() == argv[1];
      names += (names.empty() ? "" : ", ") + sub->get_name();
    }
    if (!known) {
      std::cerr << "rewind: unknown command '" << argv[1] << "' (commands: " << names << ")\n";
      return 2;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "rewind: " << e.what() << " (see rewind --help)\n";
    return 2;
  }
  // A file cell is named after its file in titles and summaries.
  if (!t.cell_file.empty()) t.cell = std::filesystem::path(t.cell_file).stem().string();
  if (!m.cell_file.empty()) m.cell = std::filesystem::path(m.cell_file).stem().string();
  try {
    if (train->parsed()) {
      if (t.task == "text" && t.text.empty()) throw UsageError("--task text needs --text FILE");
      t.progress = bar ? 1 : lines ? 0 : -1;
      if (!t.distributed) {
        cli::train(t, std::cout);
      } else {
#ifdef REWIND_HAVE_MPI
        optim::MpiCommunicator comm(&argc, &argv);
        // Only rank 0 speaks; an error on any rank still goes to stderr with its rank.
        std::ostream quiet(nullptr);  // discards everything
        try {
          cli::train(t, comm.rank() == 0 ? std::cout : quiet, &comm);
        } catch (const std::exception& e) {
          std::cerr << fmt::format("rewind: rank {}: {}\n", comm.rank(), e.what());
          std::cerr.flush();
          // The other ranks may be waiting in a reduction: end them all.
          comm.abort(1, fmt::format("rewind: rank {} failed; ending the job", comm.rank()));
        }
#else
        throw UsageError(
            "--distributed: this rewind was built without MPI (configure with -DREWIND_MPI=ON)");
#endif
      }
    } else if (summary->parsed()) {
      if (t.task == "text" && t.text.empty()) throw UsageError("--task text needs --text FILE");
      std::cout << cli::model_summary(t);
    } else if (graph->parsed()) {
      if (g.html.empty()) {
        cli::graph(m, g, std::cout);
      } else {
        cli::graph_html(m, g, std::cout);
      }
    } else if (check->parsed()) {
      return cli::check(m, fast, std::cout, order) ? 0 : 1;
    } else if (diagnose->parsed()) {
      if (diagnose->count("--hidden") == 0) m.hidden = 32;
      if (diagnose->count("--batch") == 0) m.batch = 16;
      if (diagnose->count("--input") == 0) m.input = 8;
      cli::diagnose(m, d, std::cout);
    } else if (spectrum->parsed()) {
      if (spectrum->count("--hidden") == 0) m.hidden = 16;
      if (spectrum->count("--batch") == 0) m.batch = 8;
      cli::spectrum(m, sp, std::cout, &std::cerr);
    }
  } catch (const std::exception& e) {
    std::cerr << "rewind: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
