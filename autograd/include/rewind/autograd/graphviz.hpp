// Pictures of what a tape recorded: Graphviz DOT, and rendering through Graphviz's own library.
//
// Nodes are ops (name and output shape), leaves (their label), parameters (their name, filled
// blue) and the loss (double border). Scopes become nested clusters down to `cluster_depth`
// (layer / direction / time step / gate). A rolled view keeps the first and last `keep_steps`
// steps of every unrolled sequence and folds the rest into one node, with the recurrent edge
// labelled by the number of steps folded. After a backward, `gradients` colours each node by
// log10 of its gradient's norm (a legend is drawn) and marks NaN or Inf in red; tooltips carry
// value and gradient statistics. The output is deterministic: ids are tape indices and the same
// program gives byte-identical text.
#pragma once

#include <cstddef>
#include <filesystem>
#include <iosfwd>
#include <string>

#include "rewind/autograd/tape.hpp"

namespace rwd {

struct DotOptions {
  /// Scope levels drawn as clusters (0: none). 3 shows layer/direction/step, 4 adds gates.
  int cluster_depth = 4;
  /// Fold the middle of each unrolled sequence (scopes named t<k>).
  bool rolled = false;
  /// Steps kept at each end of a sequence in the rolled view.
  int keep_steps = 1;
  /// When more nodes than this would be drawn, fold (then collapse kept steps to one node
  /// each) until the picture fits. 0: no limit.
  std::size_t max_nodes = 0;
  /// Colour by gradient norm after a backward, with a legend.
  bool gradients = false;
  /// Value and gradient statistics in tooltips.
  bool tooltips = true;
  /// Graph title (a label at the top).
  std::string title;
  /// Element ids for SVG: `ov-n<i>` for tape node i, `ov-fold<k>`/`ov-step<k>_<t>` for folded
  /// and collapsed steps, `ov-c:<scope path>` for clusters (the HTML page's overview uses them).
  bool element_ids = false;
};

/// What write_dot drew, for tests and callers that want to report it.
struct DotSummary {
  std::size_t nodes = 0;  ///< nodes drawn, legend included
  std::size_t edges = 0;
  std::size_t clusters = 0;  ///< clusters drawn, legend included
  std::size_t folded_steps = 0;
  bool collapsed_steps = false;
};

/// Writes the tape as a DOT digraph.
template <class T>
DotSummary write_dot(const Tape<T>& tape, std::ostream& out, const DotOptions& options = {});

/// Whether this build can render (it found Graphviz's libgvc).
bool can_render();

/// Renders the tape to an image with Graphviz's library (dot layout); `format` is "svg", "png"
/// or "pdf", or empty to take it from the file extension. Graphviz's own errors come back as
/// exceptions (FileError); without libgvc this throws UsageError saying so.
template <class T>
DotSummary render(const Tape<T>& tape, const std::filesystem::path& path, std::string format = {},
                  const DotOptions& options = {});

/// Renders DOT text (as written by write_dot) to a file.
void render_dot(const std::string& dot, const std::filesystem::path& path, std::string format = {});

}  // namespace rwd
