// The `rewind` command: train, evaluate, summary, graph, check, diagnose, spectrum.
#include <CLI/CLI.hpp>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>

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

// A subcommand: its options live in the closure of `run`, each subcommand's its own (a variable
// shared by two subcommands showed one's default in the other's --help).
struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
};

// --cell or --cell-file (one of them: giving both is an error).
void add_cell_choice(CLI::App* sub, std::string& cell, std::string& cell_file,
                     const std::vector<std::string>& names, const std::string& help) {
  auto* choice =
      sub->add_option("--cell", cell, help)->check(CLI::IsMember(names))->capture_default_str();
  sub->add_option("--cell-file", cell_file, "A cell written as a .cell file (instead of --cell)")
      ->check(CLI::ExistingFile)
      ->excludes(choice);
}

// A file cell is named after its file in titles and summaries.
void name_file_cell(std::string& cell, const std::string& cell_file) {
  if (!cell_file.empty()) cell = std::filesystem::path(cell_file).stem().string();
}

// The model `rewind train` builds: train and summary.
void add_train_model_options(CLI::App* sub, cli::TrainOptions& t) {
  sub->add_option("--task", t.task, "Task")
      ->check(CLI::IsMember(cli::task_names()))
      ->capture_default_str();
  sub->add_option("--text", t.text, "Text file for --task text (character-level language model)")
      ->check(CLI::ExistingFile);
  add_cell_choice(sub, t.cell, t.cell_file, {"rnn", "lstm", "gru"}, "Recurrent cell");
  sub->add_option("--hidden", t.hidden, "Hidden units")->check(kCount)->capture_default_str();
  sub->add_option("--layers", t.layers, "Stacked layers")->check(kCount)->capture_default_str();
  sub->add_flag("--bidirectional", t.bidirectional, "Bidirectional layers");
  sub->add_option("--seq-len", t.seq_len, "Sequence length")->check(kCount)->capture_default_str();
  sub->add_option("--embed", t.embed, "Embedding width for --task text")
      ->check(kCount)
      ->capture_default_str();
  sub->add_option("--data", t.data,
                  std::string("Folder of the Fashion-MNIST files for the fashion-* tasks "
                              "(default: Debian's dataset-fashion-mnist, ") +
                      layers::kFashionMnistDir + ")")
      ->check(CLI::ExistingDirectory);
}

// What train and summary check after parsing: options that belong to the other kind of task.
void finish_train_options(cli::TrainOptions& t, const CLI::App& sub) {
  if (t.task == "text" && t.text.empty()) throw UsageError("--task text needs --text FILE");
  const bool data = cli::is_data_task(t.task);
  const auto given = [&](const char* name) {
    return sub.get_option_no_throw(name) != nullptr && sub.count(name) > 0;
  };
  for (const char* name : {"--steps", "--seq-len"}) {
    if (data && given(name))
      throw UsageError(fmt::format(
          "{} is for the generated tasks: {} trains --epochs over its images, whose view fixes "
          "the sequence length",
          name, t.task));
  }
  for (const char* name :
       {"--epochs", "--data", "--validation", "--subset", "--eval-batch", "--confusion"}) {
    if (!data && given(name))
      throw UsageError(
          fmt::format("{} is for the data tasks (fashion-rows, fashion-pixels, "
                      "fashion-permuted), not '{}'",
                      name, t.task));
  }
  name_file_cell(t.cell, t.cell_file);
}

// The model graph, check, diagnose and spectrum record, with `m`'s values as the defaults.
void add_model_options(CLI::App* sub, cli::ModelOptions& m) {
  add_cell_choice(sub, m.cell, m.cell_file, cli::cell_names(),
                  "Cell (mgu and peephole are the custom-cell examples)");
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
}

void finish_model_options(cli::ModelOptions& m) { name_file_cell(m.cell, m.cell_file); }

// A model command's options with its own defaults (what --help shows is what runs).
std::shared_ptr<cli::ModelOptions> model_defaults(long steps, Index hidden, Index batch,
                                                  Index input) {
  auto m = std::make_shared<cli::ModelOptions>();
  m->steps = steps;
  m->hidden = hidden;
  m->batch = batch;
  m->input = input;
  return m;
}

int run_train(cli::TrainOptions& t, int& argc, char**& argv) {
  if (!t.distributed) {
    cli::train(t, std::cout);
    return 0;
  }
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
  return 0;
#else
  static_cast<void>(argc);
  static_cast<void>(argv);
  throw UsageError(
      "--distributed: this rewind was built without MPI (configure with -DREWIND_MPI=ON)");
#endif
}

Command add_train(CLI::App& app, int& argc, char**& argv) {
  auto t = std::make_shared<cli::TrainOptions>();
  auto bar = std::make_shared<bool>(false), lines = std::make_shared<bool>(false);
  CLI::App* sub =
      app.add_subcommand("train", "Train a recurrent model on a built-in task or on Fashion-MNIST");
  add_train_model_options(sub, *t);
  sub->add_option("--steps", t->steps, "Training steps (generated tasks)")
      ->check(kCount)
      ->capture_default_str();
  sub->add_option("--epochs", t->epochs,
                  "Passes over the training images (fashion-* tasks; default 10)")
      ->check(kCount);
  sub->add_option("--validation", t->validation,
                  "Training images held out and validated after each epoch; the best epoch's "
                  "weights are tested and saved (fashion-*)")
      ->check(kNonNegativeCount)
      ->capture_default_str();
  sub->add_option("--subset", t->subset,
                  "Train on a seeded choice of this many training images (fashion-*; 0: all)")
      ->check(kNonNegativeCount);
  sub->add_option("--eval-batch", t->eval_batch,
                  "Images per forward pass of validation and test (fashion-*)")
      ->check(kCount)
      ->capture_default_str();
  sub->add_option("--confusion", t->confusion,
                  "Write the test confusion matrix to STEM.csv and STEM.svg (fashion-*)");
  sub->add_option("--batch", t->batch, "Batch size")->check(kCount)->capture_default_str();
  sub->add_option("--optimizer", t->optimizer, "Optimizer")
      ->check(CLI::IsMember({"sgd", "rmsprop", "adam", "adamw", "adagrad"}))
      ->capture_default_str();
  sub->add_option("--lr", t->lr, "Learning rate")->check(kPositive)->capture_default_str();
  sub->add_option("--clip", t->clip, "Clip the gradient norm to this (0: no clipping)")
      ->check(kNonNegative)
      ->capture_default_str();
  sub->add_option("--seed", t->seed, "Random seed (data and initialisation)")
      ->capture_default_str();
  sub->add_flag("--anomaly", t->anomaly,
                "Check every value and gradient: the first NaN or Inf stops training, naming its "
                "op and scope (an exp that overflows, a log of 0); about 6% slower");
  sub->add_option("--save", t->save, "Write the trained weights to this safetensors file");
  sub->add_option("--log", t->log, "Write step,loss,accuracy,seconds to this CSV file");
  sub->add_option("--log-every", t->log_every, "Steps per progress line (default: steps/20)")
      ->check(kNonNegativeCount);
  sub->add_option("--sample", t->sample, "Characters to generate after training (--task text)")
      ->check(kNonNegativeCount)
      ->capture_default_str();
  sub->add_option("--checkpoints", t->checkpoints,
                  "Checkpointed BPTT: store the state at this many steps per sequence and "
                  "recompute the rest (0: plain BPTT)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--memory-budget", t->memory_budget,
                  "Checkpointed BPTT: as many checkpoints as fit in this much memory besides one "
                  "step (64M = 64 MiB)")
      ->transform(CLI::AsSizeValue(false));
  sub->add_option("--schedule", t->schedule, "Checkpointing schedule")
      ->check(CLI::IsMember({"revolve", "uniform", "online"}))
      ->capture_default_str();
  sub->add_option("--checkpoint-every", t->checkpoint_every,
                  "Write a training checkpoint every N steps (needs --checkpoint-dir)")
      ->check(kNonNegativeCount);
  sub->add_option("--checkpoint-dir", t->checkpoint_dir,
                  "Folder of training checkpoints (step-<N>.safetensors)");
  sub->add_option("--keep", t->keep, "Checkpoints kept (the newest; 0: all)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  sub->add_option("--resume", t->resume,
                  "Continue from this checkpoint, or 'auto': the newest valid one in "
                  "--checkpoint-dir (none: start at step 0)");
  sub->add_option("--accumulate", t->accumulate, "Micro-batches of --batch rows per step")
      ->check(kCount)
      ->capture_default_str();
  sub->add_flag("--distributed", t->distributed,
                "Data parallel over MPI (run under mpirun; --batch rows per rank)");
  sub->add_option("--reduce", t->reduce, "Gradient reduction with --distributed")
      ->check(CLI::IsMember({"average", "ordered"}))
      ->capture_default_str();
  sub->add_option("--check-replicas", t->check_replicas,
                  "With --distributed: compare the ranks' parameters every N steps")
      ->check(kNonNegativeCount);
  sub->add_option("--step-timeout", t->step_timeout,
                  "End the job when a step takes longer than this many seconds")
      ->check(CLI::NonNegativeNumber);
  sub->add_flag("--progress", *bar, "Always draw a progress bar");
  sub->add_flag("--no-progress", *lines, "Print plain lines, even on a terminal");

  return {sub, [t, bar, lines, sub, &argc, &argv] {
            finish_train_options(*t, *sub);
            t->progress = *bar ? 1 : *lines ? 0 : -1;
            return run_train(*t, argc, argv);
          }};
}

Command add_summary(CLI::App& app) {
  auto t = std::make_shared<cli::TrainOptions>();
  CLI::App* sub =
      app.add_subcommand("summary", "Print the model `rewind train` builds, layer by layer");
  add_train_model_options(sub, *t);
  return {sub, [t, sub] {
            finish_train_options(*t, *sub);
            std::cout << cli::model_summary(*t);
            return 0;
          }};
}

Command add_evaluate(CLI::App& app) {
  auto e = std::make_shared<cli::EvaluateOptions>();
  CLI::App* sub = app.add_subcommand(
      "evaluate", "Test accuracy and confusion matrix of weights saved by rewind train --save");
  sub->add_option("--weights", e->weights,
                  "The weights file (rewind train --task fashion-* --save)")
      ->required()
      ->check(CLI::ExistingFile);
  sub->add_option("--task", e->task, "Task (default: the one the weights were trained on)")
      ->check(CLI::IsMember({"fashion-rows", "fashion-pixels", "fashion-permuted"}));
  sub->add_option("--cell-file", e->cell_file,
                  "The .cell file of a file cell (default: the path the weights name)")
      ->check(CLI::ExistingFile);
  sub->add_option("--data", e->data, "Folder of the Fashion-MNIST files")
      ->check(CLI::ExistingDirectory);
  sub->add_option("--batch", e->batch, "Images per forward pass")
      ->check(kCount)
      ->capture_default_str();
  sub->add_option("--confusion", e->confusion,
                  "Write the confusion matrix to STEM.csv and STEM.svg");
  return {sub, [e] {
            cli::evaluate(*e, std::cout);
            return 0;
          }};
}

Command add_graph(CLI::App& app) {
  auto m = model_defaults(4, 4, 2, 3);
  auto g = std::make_shared<cli::GraphOptions>();
  CLI::App* sub =
      app.add_subcommand("graph", "Draw the unrolled computation graph of a recurrent model");
  add_model_options(sub, *m);
  sub->add_flag("--rolled", g->rolled, "Fold the middle time steps into one node");
  sub->add_flag("--grad", g->gradients,
                "Colour nodes by gradient norm (after a backward from the last step)");
  sub->add_option("--depth", g->depth, "Scope levels drawn as clusters")
      ->check(kNonNegativeCount)
      ->capture_default_str();
  sub->add_option("--max-nodes", g->max_nodes,
                  "Fold until at most this many nodes are drawn (0: no limit)")
      ->check(kNonNegativeCount);
  sub->add_option("-o,--output", g->output,
                  "Output file: .dot, .svg, .png or .pdf (default: DOT on stdout)");
  auto* html = sub->add_option(
      "--html", g->html,
      "Write the interactive page (one offline HTML file: expand, collapse, a time window, "
      "tracing, search, colours) instead");
  sub->add_option("--compare", g->compare,
                  "With --html: compare with a second recording with these options changed, "
                  "e.g. seed=2 or cell=gru (keys: seed, cell, cell-file, forget-bias)")
      ->needs(html);
  sub->add_option("--window", g->window, "With --html: steps expanded when the page opens")
      ->check(kCount)
      ->capture_default_str();
  return {sub, [m, g] {
            finish_model_options(*m);
            if (g->html.empty()) {
              cli::graph(*m, *g, std::cout);
            } else {
              cli::graph_html(*m, *g, std::cout);
            }
            return 0;
          }};
}

// diagnose and spectrum: a task's loss instead of the last output's, trained weights.
void add_subject_options(CLI::App* sub, std::string& task, std::string& weights) {
  sub->add_option("--task", task,
                  "Loss of this `rewind train` task (default: mean square of the last output)")
      ->check(CLI::IsMember({"adding", "copy", "selective-copy", "reber", "sine"}));
  sub->add_option("--weights", weights,
                  "Load these parameters first (rewind train --save; give the flags it was "
                  "trained with)")
      ->check(CLI::ExistingFile);
}

Command add_check(CLI::App& app) {
  auto m = model_defaults(4, 4, 2, 3);
  auto fast = std::make_shared<bool>(false);
  auto order = std::make_shared<int>(1);
  CLI::App* sub = app.add_subcommand(
      "check", "Gradient-check a recurrent model in double, with blame on failure");
  add_model_options(sub, *m);
  sub->add_flag("--fast", *fast, "Random directions instead of every element");
  sub->add_option("--order", *order,
                  "1: gradients (gradcheck); 2: second order (gradgradcheck: H·v, J·v, the "
                  "transpose identity)")
      ->check(CLI::IsMember({1, 2}))
      ->capture_default_str();
  return {sub, [m, fast, order] {
            finish_model_options(*m);
            return cli::check(*m, *fast, std::cout, *order) ? 0 : 1;
          }};
}

Command add_diagnose(CLI::App& app) {
  auto m = model_defaults(100, 32, 16, 8);
  auto d = std::make_shared<cli::DiagnoseOptions>();
  CLI::App* sub =
      app.add_subcommand("diagnose", "Show how gradients vanish or explode through time");
  add_model_options(sub, *m);
  sub->add_option("-o,--output", d->output, "Prefix of the CSV, JSON and SVG files")
      ->capture_default_str();
  sub->add_option("--probes", d->probes, "Random probes for the Jacobian norm")
      ->check(kCount)
      ->capture_default_str();
  add_subject_options(sub, d->task, d->weights);
  return {sub, [m, d] {
            finish_model_options(*m);
            cli::diagnose(*m, *d, std::cout);
            return 0;
          }};
}

Command add_spectrum(CLI::App& app) {
  auto m = model_defaults(20, 16, 8, 3);
  auto sp = std::make_shared<cli::SpectrumOptions>();
  CLI::App* sub = app.add_subcommand(
      "spectrum",
      "Curvature and stability spectra: Hessian eigenvalues, trace and density; singular values "
      "of ∂h_T/∂h_t; Lyapunov exponents");
  add_model_options(sub, *m);
  add_subject_options(sub, sp->task, sp->weights);
  sub->add_option("--hessian", sp->hessian,
                  "top-k (Lanczos), trace (Hutchinson) or density (stochastic Lanczos quadrature)")
      ->check(CLI::IsMember({"top-k", "trace", "density"}));
  sub->add_option("--top", sp->top, "Eigenvalues for --hessian top-k")
      ->check(kCount)
      ->capture_default_str();
  sub->add_option("--iterations", sp->iterations, "Lanczos iterations for --hessian density")
      ->check(kCount)
      ->capture_default_str();
  sub->add_option("--samples", sp->samples, "Hutchinson samples for --hessian trace")
      ->check(number(true, 2, true, "an integer of at least 2"))
      ->capture_default_str();
  sub->add_flag("--jacobian", sp->jacobian,
                "Every singular value of ∂h_T/∂h_t for every t (batch row 0)");
  sub->add_option("--probes", sp->probes, "Hutchinson probes next to the exact Jacobian norm")
      ->check(kNonNegativeCount)
      ->capture_default_str();
  sub->add_option("--lyapunov", sp->lyapunov, "Lyapunov exponents of layer 0's cell (k)")
      ->check(kCount);
  sub->add_option("--lyapunov-steps", sp->lyapunov_steps, "Steps averaged")
      ->check(kCount)
      ->capture_default_str();
  sub->add_option("--warmup", sp->warmup, "Steps run before averaging")
      ->check(kNonNegativeCount)
      ->capture_default_str();
  sub->add_option("--qr-every", sp->qr_every, "Steps between re-orthonormalisations")
      ->check(kCount)
      ->capture_default_str();
  sub->add_option("--input-std", sp->input_std, "Inputs of the Lyapunov trajectory: N(0, s²)")
      ->check(kNonNegative)
      ->capture_default_str();
  sub->add_option("-o,--output", sp->output, "Prefix of the files written")->capture_default_str();
  return {sub, [m, sp] {
            finish_model_options(*m);
            cli::spectrum(*m, *sp, std::cout, &std::cerr);
            return 0;
          }};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "rewind: reverse-mode autodiff on a tape, with recurrent layers built from primitive ops"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Print help for every subcommand");
  const std::vector<Command> commands{add_train(app, argc, argv),
                                      add_evaluate(app),
                                      add_summary(app),
                                      add_graph(app),
                                      add_check(app),
                                      add_diagnose(app),
                                      add_spectrum(app)};
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
  try {
    for (const Command& c : commands) {
      if (c.app->parsed()) return c.run();
    }
  } catch (const std::exception& e) {
    std::cerr << "rewind: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
