// The unrolled graph as one interactive, self-contained HTML page (nothing is fetched: the data,
// the layout, the script and the styles are all in the file).
//
// The layout is made here, by Graphviz's library, when the page is written; the page only places
// precomputed pieces, so it never re-lays out and is byte-identical between runs:
// - one laid-out template per distinct step structure (all steps of an LSTM layer share one),
//   with a cluster per gate;
// - rows, one per unrolled sequence (layer/direction), whose steps sit in columns shared by all
//   rows (step t of every layer lines up); parameters at the head of their row; per-step data
//   used by several rows (each step's input x_t) at the top of its column; everything else (the
//   loss, ops outside any sequence) laid out as one more graph to the right;
// - the rolled view of write_dot as an overview picture, every element addressable by scope;
// - a table of every op: kind, scope, shape, inputs, value and gradient statistics.
// In the page: pan and zoom; expand and collapse rows (layers, directions), steps and gates; a
// window of K expanded steps that slides along the sequence (slider, ←/→); a card with each op's
// statistics; ancestors and descendants over the whole tape on click; search by scope path (glob
// or /regex/); colour by gradient norm or value; jump to the first NaN/Inf. A compare page shows
// two recordings side by side, synchronised by scope path, with the ops outlined whose gradient
// norms differ by more than a factor.
#pragma once

#include <cstddef>
#include <iosfwd>
#include <string>

#include "rewind/autograd/tape.hpp"

namespace rwd {

struct HtmlOptions {
  /// Page title (also the heading).
  std::string title;
  /// Steps expanded in the sliding window when the page opens.
  int window = 3;
  /// Steps kept at each end of each sequence in the overview (the rolled view).
  int keep_steps = 1;
  /// Draw the overview (a rolled write_dot laid out by Graphviz).
  bool overview = true;
};

struct HtmlCompareOptions {
  HtmlOptions page;
  /// Pane names.
  std::string left = "A", right = "B";
  /// Outline ops whose gradient norms differ by more than this factor.
  double threshold = 10;
};

/// What write_html wrote.
struct HtmlSummary {
  std::size_t ops = 0;        ///< tape nodes in the table (both panes when comparing)
  std::size_t rows = 0;       ///< unrolled sequences
  std::size_t steps = 0;      ///< step instances
  std::size_t templates = 0;  ///< distinct step structures laid out
  std::size_t differing = 0;  ///< compare: ops outlined (matched by scope path, kind, ordinal)
  std::size_t bytes = 0;
};

/// Writes the page for one tape (after a backward, gradients are in the table and the colours).
/// Needs Graphviz's library (libgvc) for the layout: without it, UsageError.
template <class T>
HtmlSummary write_html(const Tape<T>& tape, std::ostream& out, const HtmlOptions& options = {});

/// Writes a page comparing two recordings: ops are matched by scope path, op kind and their
/// ordinal among ops of that kind in that scope.
template <class T>
HtmlSummary write_html_compare(const Tape<T>& left, const Tape<T>& right, std::ostream& out,
                               const HtmlCompareOptions& options = {});

}  // namespace rwd
