// `rewind graph`, `rewind check` and `rewind diagnose`: a recurrent model recorded on a tape,
// drawn, gradient-checked (with blame), or examined for vanishing and exploding gradients.
#pragma once

#include <iosfwd>
#include <rewind/rewind.hpp>
#include <string>

namespace rwd::cli {

struct ModelOptions {
  std::string cell = "lstm";  ///< rnn, rnn-relu, lstm, gru, mgu, peephole
  std::string cell_file;      ///< a .cell file: its cell instead of `cell`
  Index input = 3;
  Index hidden = 4;
  Index batch = 2;
  int layers = 1;
  bool bidirectional = false;
  long steps = 5;
  std::uint64_t seed = 1;
  double forget_bias = 0;  ///< LSTM only
};

/// The cells these commands know (the built-in ones and the two custom-cell examples).
const std::vector<std::string>& cell_names();

struct GraphOptions {
  bool rolled = false;
  bool gradients = false;
  int depth = 4;
  std::size_t max_nodes = 0;
  std::string output;   ///< .dot, .svg, .png or .pdf
  std::string html;     ///< the interactive page (write_html)
  std::string compare;  ///< with html: a second recording, "seed=2,cell=gru,..."
  int window = 3;       ///< steps expanded when the page opens
};
/// Records the model on a loss at the last step and writes its graph. Returns what was drawn.
DotSummary graph(const ModelOptions& m, const GraphOptions& g, std::ostream& out);

/// Records the model (with a backward) and writes the interactive page to g.html; with
/// g.compare, a second recording with those options changed and a compare page.
HtmlSummary graph_html(const ModelOptions& m, const GraphOptions& g, std::ostream& out);
/// The options with "key=value,..." applied (seed, cell, cell-file, forget-bias).
ModelOptions with_overrides(ModelOptions m, const std::string& spec);

/// Gradient check in double over inputs, initial states and parameters; on failure, blame.
/// order 2: gradgradcheck instead (H·v, J·v and the transpose identity), and blame of every
/// op's backward, tangent and second-order rules. Returns true when every check passes.
bool check(const ModelOptions& m, bool fast, std::ostream& out, int order = 1);

struct DiagnoseOptions {
  std::string output = "diagnose";  ///< writes <output>.csv, .json, .svg
  int probes = 8;
  /// A task of `rewind train` (adding, copy, selective-copy, reber, sine): its loss on one batch,
  /// with a linear head. Empty: the mean square of the last step's output.
  std::string task;
  /// Parameters to load first (a `rewind train --save` file; its saved flags must match).
  std::string weights;
};
/// ‖dL/dh_t‖, per-step shares of dL/dW_hh and ‖∂h_T/∂h_t‖ for the loss (the task's, or the
/// mean square of the last step's output).
BpttReport diagnose(const ModelOptions& m, const DiagnoseOptions& d, std::ostream& out);

struct SpectrumOptions {
  std::string output = "spectrum";  ///< prefix of the files written
  /// A task of `rewind train` (adding, copy, selective-copy, reber, sine): its loss on one batch,
  /// with a linear head. Empty: the mean square of the last step's output, as `diagnose`.
  std::string task;
  std::string weights;   ///< parameters to load first (as DiagnoseOptions::weights)
  std::string hessian;   ///< "", "top-k", "trace" or "density"
  int top = 5;           ///< top-k eigenvalues
  int iterations = 100;  ///< Lanczos steps of the density (PyHessian: 100)
  int samples = 100;     ///< Hutchinson samples
  bool jacobian = false;
  int probes = 8;    ///< Hutchinson probes next to the exact ‖∂h_T/∂h_t‖_F
  int lyapunov = 0;  ///< exponents wanted (0: none)
  int lyapunov_steps = 1000;
  int warmup = 200;
  int qr_every = 1;
  double input_std = 1;  ///< the Lyapunov trajectory's inputs, N(0, input_std²)
};
struct SpectrumResult {
  EigenResult top;
  TraceEstimate trace;
  SpectralDensity density;
  JacobianReport jacobian;
  layers::LyapunovReport lyapunov;
  Index parameters = 0;
};
/// Hessian spectra of the loss over all parameters (top-k by Lanczos, Hutchinson's trace, SLQ
/// density), exact Jacobians through time of every layer and direction for batch row 0, and the
/// Lyapunov spectrum of layer 0's cell; writes <output>.json and CSV/SVG per analysis, a
/// progress line on `progress` (null: none).
SpectrumResult spectrum(const ModelOptions& m, const SpectrumOptions& s, std::ostream& out,
                        std::ostream* progress = nullptr);

}  // namespace rwd::cli
