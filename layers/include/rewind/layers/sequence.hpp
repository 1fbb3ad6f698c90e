// Stacked and bidirectional sequence layers over any cell, and PyTorch's nn.RNN, nn.LSTM and
// nn.GRU built on them.
//
// Layer k runs its forward cell over the sequence (scope `layer<k>/fwd`) and, when
// bidirectional, its reverse cell from the last step back (scope `layer<k>/bwd`); the outputs of
// both are concatenated per step ([fwd | bwd], as PyTorch) and feed layer k+1, through dropout
// when a dropout generator is given. Final states are listed as PyTorch's h_n:
// [layer0 fwd, layer0 bwd, layer1 fwd, ...].
#pragma once

#include <algorithm>
#include <functional>
#include <optional>
#include <rewind/autograd/diagnostics.hpp>
#include <rewind/layers/checkpointed.hpp>
#include <rewind/layers/gru_cell.hpp>
#include <rewind/layers/lstm_cell.hpp>
#include <rewind/layers/rnn_cell.hpp>
#include <rewind/layers/unroll.hpp>
#include <span>
#include <string>
#include <vector>

namespace rwd::layers {

struct SequenceOptions {
  int num_layers = 1;
  bool bidirectional = false;
  /// Dropout probability on the outputs of every layer but the last (applied only when a
  /// generator is passed to the call, i.e. in training).
  double dropout = 0.0;
};

namespace detail {
/// PyTorch's parameter name suffix: `_l1`, `_l1_reverse`.
inline std::string suffix(int layer, bool reverse) {
  return fmt::format("_l{}{}", layer, reverse ? "_reverse" : "");
}
}  // namespace detail

/// Layers of cells over a sequence. The factory builds the cell of one layer and direction for
/// that layer's input width: `make(layer, reverse, input)`. Each cell's input_size() is checked
/// against it, and every parameter gets the name suffix of its layer and direction (`_l0`,
/// `_l1_reverse`, PyTorch's) unless its name already ends with it (the built-in cells name
/// theirs so), so a stack of custom cells has unique, predictable names.
template <RecurrentCell C>
class Sequence {
 public:
  using Scalar = typename C::Scalar;
  using T = typename C::Scalar;
  using State = typename C::State;
  /// Builds the cell of one layer and direction, given that layer's input width.
  using Factory = std::function<C(int layer, bool reverse, Index input)>;

  struct Call {
    /// Initial states in h_n order; empty means zeros.
    std::vector<State> initial;
    /// Per batch row, the sequence's length; empty means all run every step.
    std::span<const std::int32_t> lengths;
    /// Dropout between layers is applied when this is set (training mode).
    Rng* dropout_rng = nullptr;
  };
  struct Output {
    std::vector<Var<T>> outputs;      ///< per step, batch × (directions·hidden)
    std::vector<State> final_states;  ///< h_n order
    /// h_t of every layer and direction ("layer0/fwd", ...), for bptt_diagnostics.
    std::vector<HiddenSeries<T>> hidden;
  };

  Sequence(std::string name, const SequenceOptions& options, Index input, const Factory& make)
      : name_(std::move(name)), options_(options) {
    if (options.num_layers < 1) {
      throw UsageError(
          fmt::format("{}: num_layers is {}, expected at least 1", name_, options.num_layers));
    }
    if (!(options.dropout >= 0 && options.dropout < 1)) {
      throw UsageError(fmt::format("{}: dropout {} not in [0, 1)", name_, options.dropout));
    }
    Index width = input;
    for (int layer = 0; layer < options.num_layers; ++layer) {
      for (int d = 0; d < directions(); ++d) {
        cells_.push_back(make(layer, d == 1, width));
        const Index takes = cells_.back().input_size();
        if (takes != width) {
          throw ShapeError(
              fmt::format("{}: the cell of layer {}{} takes {} input features, expected {} ({})",
                          name_, layer, d == 1 ? " (reverse)" : "", takes, width,
                          layer == 0 ? "the input's width"
                                     : fmt::format("layer {}'s output: {} directions x hidden {}",
                                                   layer - 1, directions(), width / directions())));
        }
      }
      width = cells_.back().state_sizes()[0] * directions();
    }
    for (int layer = 0; layer < options.num_layers; ++layer) {
      for (int d = 0; d < directions(); ++d) {
        const std::string tail = detail::suffix(layer, d == 1);
        for (Parameter<T>* p : cell(layer, d == 1).named_parameters()) {
          const bool named = p->name.size() >= tail.size() &&
                             p->name.compare(p->name.size() - tail.size(), tail.size(), tail) == 0;
          if (!named) p->name += tail;
        }
      }
    }
    std::vector<std::string> names;
    for (Parameter<T>* p : named_parameters()) names.push_back(p->name);
    std::sort(names.begin(), names.end());
    const auto twice = std::adjacent_find(names.begin(), names.end());
    if (twice != names.end()) {
      throw UsageError(
          fmt::format("{}: two parameters are named '{}' within one cell", name_, *twice));
    }
  }

  Output operator()(Tape<T>& tape, std::span<const Var<T>> xs, const Call& call = {}) {
    if (!call.initial.empty() && call.initial.size() != cells_.size()) {
      throw UsageError(fmt::format("{}: {} initial states given, expected {} (layers x directions)",
                                   name_, call.initial.size(), cells_.size()));
    }
    Output out;
    std::vector<Var<T>> in(xs.begin(), xs.end());
    const Index batch = in.empty() ? 0 : in[0].rows();
    for (int layer = 0; layer < options_.num_layers; ++layer) {
      auto layer_scope = tape.scope(fmt::format("layer{}", layer));
      std::vector<std::vector<Var<T>>> per_direction;
      for (int d = 0; d < directions(); ++d) {
        auto dir_scope = tape.scope(d == 0 ? "fwd" : "bwd");
        const std::size_t k = static_cast<std::size_t>(layer * directions() + d);
        C& cell = cells_[k];
        State s0 = call.initial.empty() ? zero_state(cell, tape, batch) : call.initial[k];
        auto run = unroll(cell, tape, std::span<const Var<T>>(in), s0,
                          {.reverse = d == 1, .lengths = call.lengths});
        out.final_states.push_back(run.state);
        out.hidden.push_back(
            {fmt::format("layer{}/{}", layer, d == 0 ? "fwd" : "bwd"), run.outputs, d == 1});
        per_direction.push_back(std::move(run.outputs));
      }
      const bool drop =
          call.dropout_rng != nullptr && options_.dropout > 0 && layer + 1 < options_.num_layers;
      if (directions() == 1 && !drop) {  // nothing recorded between the layers
        in = std::move(per_direction[0]);
        continue;
      }
      std::vector<Var<T>> next(in.size());
      for (std::size_t t = 0; t < in.size(); ++t) {
        // Under the step's scope (layer<k>/t<t>), so graphs and diagnostics see these per-step
        // ops as part of step t rather than as loose ops of the layer.
        auto step_scope = tape.scope(fmt::format("t{}", t));
        next[t] = directions() == 1 ? per_direction[0][t]
                                    : concat_cols({per_direction[0][t], per_direction[1][t]});
        if (drop) next[t] = dropout(next[t], options_.dropout, *call.dropout_rng);
      }
      in = std::move(next);
    }
    out.outputs = std::move(in);
    return out;
  }

  /// Records x_t on the tape (a constant, an input leaf, an embedding lookup).
  using InputFn = std::function<Var<T>(Tape<T>& tape, Index t)>;
  /// Records step t's loss from the last layer's output y_t (1x1), or returns an empty Var.
  using LossFn = std::function<Var<T>(Tape<T>& tape, Index t, const Var<T>& y)>;

  /// One time step of this stack as a bptt() unit: x_t = input(t) and the step's loss under
  /// scope `t<t>`; every layer's cell under `layer<k>/fwd/t<t>` as operator() records it, with
  /// the same length masking and the same dropout between layers (from call.dropout_rng). The
  /// state is every layer's state tensors, layer by layer; watch holds x_t and then each layer's
  /// output y^k_t (what operator() lists in Output::hidden). Unidirectional stacks only: the
  /// reverse direction of a bidirectional layer needs every step of the layer below before its
  /// own first step, so it has no per-step unit (UsageError). `call.lengths` must outlive the
  /// unit.
  StepUnit<T> step_unit(Index batch, InputFn input, LossFn loss, const Call& call = {}) {
    if (options_.bidirectional) {
      throw UsageError(fmt::format(
          "{}: step_unit: a bidirectional stack has no per-step unit (its reverse direction needs "
          "the whole sequence of the layer below); checkpoint a unidirectional stack, or use "
          "operator() for plain BPTT",
          name_));
    }
    StepUnit<T> unit;
    for (const C& cell : cells_) {
      for (const Index width : cell.state_sizes()) unit.state_shapes.push_back({batch, width});
    }
    unit.step = [this, input = std::move(input), loss = std::move(loss), lengths = call.lengths,
                 rng = call.dropout_rng](Tape<T>& tape, Index t, std::span<const Var<T>> state) {
      constexpr std::size_t n = std::tuple_size_v<State>;
      StepRecord<T> rec;
      const std::string step = fmt::format("t{}", t);
      Var<T> x;
      {
        auto scope = tape.scope(step);
        x = input(tape, t);
      }
      rec.watch.push_back(x);
      for (int layer = 0; layer < options_.num_layers; ++layer) {
        auto layer_scope = tape.scope(fmt::format("layer{}", layer));
        State s;
        std::copy_n(state.begin() + static_cast<std::ptrdiff_t>(layer * n), n, s.begin());
        Var<T> y;
        {
          auto dir_scope = tape.scope("fwd");
          auto step_scope = tape.scope(step);
          Var<T> zeros;
          y = detail::masked_step(cells_[static_cast<std::size_t>(layer)], tape, x, s, t, lengths,
                                  zeros);
        }
        rec.state.insert(rec.state.end(), s.begin(), s.end());
        rec.watch.push_back(y);
        x = rng != nullptr && options_.dropout > 0 && layer + 1 < options_.num_layers
                ? dropout(y, options_.dropout, *rng)
                : y;
      }
      auto scope = tape.scope(step);
      rec.loss = loss(tape, t, x);
      return rec;
    };
    return unit;
  }

  /// A training step's backward: bptt() over `steps` steps of step_unit(batch, input, loss,
  /// call) from call.initial (zeros when empty; their values are read, then they may go
  /// stale), plain or checkpointed as `options` says. Adds the parameters' gradients into
  /// Parameter::grad; returns the loss, dL/d(initial states) (layer by layer, each cell's state
  /// tensors in order) and the report. options.rng defaults to call.dropout_rng.
  BpttResult<T> backprop(Tape<T>& tape, Index steps, Index batch, InputFn input, LossFn loss,
                         const Call& call = {}, BackpropOptions<T> options = {}) {
    if (!call.initial.empty() && call.initial.size() != cells_.size()) {
      throw UsageError(fmt::format("{}: {} initial states given, expected {} (layers x directions)",
                                   name_, call.initial.size(), cells_.size()));
    }
    detail::check_lengths(name_, call.lengths, batch, steps);
    const StepUnit<T> unit = step_unit(batch, std::move(input), std::move(loss), call);
    std::vector<Matrix<T>> initial;
    for (std::size_t k = 0; k < unit.state_shapes.size(); ++k) {
      constexpr std::size_t n = std::tuple_size_v<State>;
      initial.push_back(call.initial.empty()
                            ? Matrix<T>::Zero(unit.state_shapes[k].rows, unit.state_shapes[k].cols)
                            : Matrix<T>(call.initial[k / n][k % n].value()));
    }
    if (options.rng == nullptr) options.rng = call.dropout_rng;
    return bptt(tape, steps, std::move(initial), unit, options);
  }

  /// Every cell's parameters, layer by layer, forward before reverse (PyTorch's order).
  std::vector<Parameter<T>*> named_parameters() {
    std::vector<Parameter<T>*> all;
    for (C& c : cells_) append(all, c.named_parameters());
    return all;
  }

  C& cell(int layer, bool reverse = false) {
    return cells_.at(static_cast<std::size_t>(layer * directions() + (reverse ? 1 : 0)));
  }
  int directions() const { return options_.bidirectional ? 2 : 1; }
  const SequenceOptions& options() const { return options_; }

 private:
  std::string name_;
  SequenceOptions options_;
  std::vector<C> cells_;
};

/// nn.RNN: a stack of RnnCell, tanh or relu.
template <class T>
class Rnn : public Sequence<RnnCell<T>> {
 public:
  struct Options {
    Index input = 0;
    Index hidden = 0;
    int num_layers = 1;
    bool bidirectional = false;
    double dropout = 0.0;
    Activation activation = Activation::kTanh;
    bool bias = true;
  };
  Rnn(const Options& o, Rng& rng)
      : Sequence<RnnCell<T>>(
            "Rnn", {o.num_layers, o.bidirectional, o.dropout}, o.input,
            [&](int layer, bool reverse, Index input) {
              return RnnCell<T>(
                  {input, o.hidden, o.activation, o.bias, detail::suffix(layer, reverse)}, rng);
            }) {}
};

/// nn.LSTM: a stack of LstmCell.
template <class T>
class Lstm : public Sequence<LstmCell<T>> {
 public:
  struct Options {
    Index input = 0;
    Index hidden = 0;
    int num_layers = 1;
    bool bidirectional = false;
    double dropout = 0.0;
    bool bias = true;
    double forget_bias = 0;  ///< see LstmCell::Options
  };
  Lstm(const Options& o, Rng& rng)
      : Sequence<LstmCell<T>>(
            "Lstm", {o.num_layers, o.bidirectional, o.dropout}, o.input,
            [&](int layer, bool reverse, Index input) {
              return LstmCell<T>(
                  {input, o.hidden, o.bias, detail::suffix(layer, reverse), o.forget_bias}, rng);
            }) {}
};

/// nn.GRU: a stack of GruCell.
template <class T>
class Gru : public Sequence<GruCell<T>> {
 public:
  struct Options {
    Index input = 0;
    Index hidden = 0;
    int num_layers = 1;
    bool bidirectional = false;
    double dropout = 0.0;
    bool bias = true;
  };
  Gru(const Options& o, Rng& rng)
      : Sequence<GruCell<T>>(
            "Gru", {o.num_layers, o.bidirectional, o.dropout}, o.input,
            [&](int layer, bool reverse, Index input) {
              return GruCell<T>({input, o.hidden, o.bias, detail::suffix(layer, reverse)}, rng);
            }) {}
};

extern template class Sequence<RnnCell<float>>;
extern template class Sequence<RnnCell<double>>;
extern template class Sequence<LstmCell<float>>;
extern template class Sequence<LstmCell<double>>;
extern template class Sequence<GruCell<float>>;
extern template class Sequence<GruCell<double>>;

}  // namespace rwd::layers
