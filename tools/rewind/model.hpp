// The model `rewind train` trains and `rewind spectrum` examines: Embedding (text only), a
// recurrent stack, a linear head, and the task's loss of one batch, in float or double.
#pragma once

#include <optional>
#include <rewind/rewind.hpp>
#include <vector>

#include "confusion.hpp"
#include "tasks.hpp"
#include "train.hpp"

namespace rwd::cli {

// Embedding (text only) -> recurrent stack -> linear head, and the loss of one batch.
template <class Layer>
class Model {
 public:
  using T = typename Layer::Scalar;
  Model(const Task& task, const TrainOptions& o, Layer layer, Rng& rng)
      : task_(task),
        bidirectional_(o.bidirectional),
        layer_(std::move(layer)),
        head_({.in = o.hidden * (o.bidirectional ? 2 : 1),
               .out = task.output_size(),
               .prefix = "head."},
              rng) {
    if (task.embeds())
      embedding_.emplace(
          typename layers::Embedding<T>::Options{task.input_size(), o.embed, "embedding."}, rng);
  }

  std::vector<Parameter<T>*> parameters() {
    std::vector<Parameter<T>*> all;
    if (embedding_) layers::append(all, embedding_->named_parameters());
    layers::append(all, layer_.named_parameters());
    layers::append(all, head_.named_parameters());
    return all;
  }

  std::vector<Var<T>> inputs(Tape<T>& tape, const Batch& b, Index batch) {
    std::vector<Var<T>> xs;
    for (std::size_t t = 0; t < b.xs.size(); ++t) {
      if (embedding_) {
        xs.push_back(
            (*embedding_)(tape, std::span(b.ids).subspan(t * static_cast<std::size_t>(batch),
                                                         static_cast<std::size_t>(batch))));
      } else {
        xs.push_back(tape.constant(b.xs[t].template cast<T>()));
      }
    }
    return xs;
  }

  // Records the loss; `logits` receives the per-row outputs used for accuracy, `hidden` (if
  // given) the recurrent stack's h_t series, for bptt_diagnostics.
  Var<T> loss(Tape<T>& tape, const Batch& b, Index batch, Var<T>* logits,
              std::vector<HiddenSeries<T>>* hidden = nullptr) {
    auto out = layer_(tape, inputs(tape, b, batch), {.lengths = b.lengths});
    if (hidden != nullptr) *hidden = std::move(out.hidden);
    switch (task_.loss()) {
      case LossKind::kMseLast:
        return mse(head_(tape, out.outputs.back()), tape.constant(b.target.template cast<T>()));
      case LossKind::kMseEvery:
        return mse(head_(tape, concat_rows(out.outputs)),
                   tape.constant(b.target.template cast<T>()));
      case LossKind::kCrossEntropyLast:
        *logits = head_(tape, out.outputs.back());
        return cross_entropy(*logits, b.classes);
      case LossKind::kCrossEntropyEvery: {
        *logits = head_(tape, concat_rows(out.outputs));
        valid_rows_.clear();
        valid_classes_.clear();
        for (std::size_t r = 0; r < b.classes.size(); ++r) {
          if (b.classes[r] >= 0) {
            valid_rows_.push_back(static_cast<std::int32_t>(r));
            valid_classes_.push_back(b.classes[r]);
          }
        }
        if (valid_rows_.size() == b.classes.size()) return cross_entropy(*logits, b.classes);
        // Padded steps take no part: gather the valid rows (embedding works on any table).
        return cross_entropy(embedding(*logits, valid_rows_), valid_classes_);
      }
    }
    throw UsageError("unknown loss");
  }

  // The same loss formed step by step, and its gradients, through Sequence::backprop (plain or
  // checkpointed BPTT): the loss at the last step (adding), 1/T of each step's squared error
  // (sine), or each step's cross-entropy weighted by its share of the valid rows (text, copy,
  // Reber). `logits` receives every row's outputs, for accuracy.
  layers::BpttResult<T> backprop(Tape<T>& tape, const Batch& b, Index batch,
                                 const layers::BackpropOptions<T>& options, Matrix<T>* logits) {
    const auto steps = static_cast<Index>(b.xs.size());
    const auto rows = static_cast<std::size_t>(batch);
    std::size_t valid = 0;
    for (const std::int32_t c : b.classes) valid += c >= 0 ? 1 : 0;
    if (logits != nullptr && task_.loss() == LossKind::kCrossEntropyEvery)
      logits->resize(steps * batch, task_.output_size());
    if (logits != nullptr && task_.loss() == LossKind::kCrossEntropyLast)
      logits->resize(batch, task_.output_size());
    const auto input = [&](Tape<T>& tp, Index t) {
      const auto k = static_cast<std::size_t>(t);
      if (embedding_) return (*embedding_)(tp, std::span(b.ids).subspan(k * rows, rows));
      return tp.constant(b.xs[k].template cast<T>());
    };
    const auto loss = [&](Tape<T>& tp, Index t, const Var<T>& y) -> Var<T> {
      const auto k = static_cast<std::size_t>(t);
      switch (task_.loss()) {
        case LossKind::kMseLast:
          if (t + 1 != steps) return {};
          return mse(head_(tp, y), tp.constant(b.target.template cast<T>()));
        case LossKind::kCrossEntropyLast: {
          if (t + 1 != steps) return {};
          const Var<T> out = head_(tp, y);
          if (logits != nullptr) *logits = out.value();
          return cross_entropy(out, b.classes);
        }
        case LossKind::kMseEvery:
          return scale(mse(head_(tp, y),
                           tp.constant(b.target.middleRows(t * batch, batch).template cast<T>())),
                       T(1) / static_cast<T>(steps));
        case LossKind::kCrossEntropyEvery: {
          const Var<T> out = head_(tp, y);
          if (logits != nullptr) logits->middleRows(t * batch, batch) = out.value();
          std::vector<std::int32_t> at, classes;
          for (std::size_t r = 0; r < rows; ++r) {
            const std::int32_t c = b.classes[k * rows + r];
            if (c >= 0) {
              at.push_back(static_cast<std::int32_t>(r));
              classes.push_back(c);
            }
          }
          if (at.empty()) return {};
          const Var<T> ce = at.size() == rows ? cross_entropy(out, classes)
                                              : cross_entropy(embedding(out, at), classes);
          return scale(ce, static_cast<T>(at.size()) / static_cast<T>(valid));
        }
      }
      throw UsageError("unknown loss");
    };
    return layer_.backprop(tape, steps, batch, input, loss, {.lengths = b.lengths}, options);
  }

  using Carried = std::vector<std::array<Matrix<T>, std::tuple_size_v<typename Layer::State>>>;

  /// One step of a unidirectional stack from carried state values (zeros when empty), recorded
  /// on `tape`: the top layer's output; `carried` becomes the new state's values. The tape can be
  /// cleared before the next step, so running a sequence this way holds one step in memory.
  Var<T> step(Tape<T>& tape, const Var<T>& x, Carried& carried) {
    typename Layer::Call call;
    for (const auto& c : carried) {
      typename Layer::State s;
      for (std::size_t j = 0; j < s.size(); ++j) s[j] = tape.constant(c[j]);
      call.initial.push_back(s);
    }
    const std::vector<Var<T>> xs{x};
    auto out = layer_(tape, xs, call);
    carried.resize(out.final_states.size());
    for (std::size_t k = 0; k < out.final_states.size(); ++k) {
      for (std::size_t j = 0; j < carried[k].size(); ++j)
        carried[k][j] = out.final_states[k][j].value();
    }
    return out.outputs[0];
  }

  /// The last step's logits of a batch of a classification task, forward only: step by step
  /// for a unidirectional stack (memory of one step, 784-pixel sequences included), the whole
  /// sequence recorded for a bidirectional one.
  Matrix<T> predict(Tape<T>& tape, const Batch& b, Index batch) {
    tape.clear();
    if (bidirectional_ || !b.lengths.empty()) {
      auto out = layer_(tape, inputs(tape, b, batch), {.lengths = b.lengths});
      return head_(tape, out.outputs.back()).value();
    }
    Carried carried;
    Var<T> y;
    for (std::size_t t = 0; t < b.xs.size(); ++t) {
      if (t > 0) tape.clear();
      y = step(tape, tape.constant(b.xs[t].template cast<T>()), carried);
    }
    return head_(tape, y).value();
  }

  /// The confusion matrix of a data task's part, in batches of `batch` examples.
  Confusion evaluate(const DataTask& data, DataTask::Part part, Index batch) {
    Confusion c(data.class_names());
    Tape<T> tape;
    const Index n = data.size(part);
    std::vector<Index> which;
    for (Index begin = 0; begin < n; begin += batch) {
      const Index count = std::min(batch, n - begin);
      which.resize(static_cast<std::size_t>(count));
      for (Index k = 0; k < count; ++k) which[static_cast<std::size_t>(k)] = begin + k;
      const Batch b = data.examples(part, which);
      c.add(predict(tape, b, count).template cast<float>(), b.classes);
    }
    return c;
  }

  layers::Summary summary(const TrainOptions& o) {
    const bool every_step =
        task_.loss() != LossKind::kMseLast && task_.loss() != LossKind::kCrossEntropyLast;
    const Index steps = task_.data() != nullptr ? task_.data()->steps() : o.seq_len;
    layers::Summary s(fmt::format("{} on {}", o.cell, task_.name()),
                      embedding_ ? std::vector<Index>{layers::kNone, steps}
                                 : std::vector<Index>{layers::kNone, steps, task_.input_size()});
    if (embedding_) s.add("embedding", *embedding_);
    s.add(o.cell, layer_, every_step);
    s.add("head", head_);
    return s;
  }

  Layer& layer() { return layer_; }
  layers::Linear<T>& head() { return head_; }
  std::optional<layers::Embedding<T>>& embedder() { return embedding_; }

 private:
  const Task& task_;
  bool bidirectional_;
  Layer layer_;
  layers::Linear<T> head_;
  std::optional<layers::Embedding<T>> embedding_;
  std::vector<std::int32_t> valid_rows_, valid_classes_;
};

// Calls f with the model the options describe.
template <class F>
auto with_model(const TrainOptions& o, F&& f) {
  if (o.hidden <= 0 || o.layers <= 0 || o.steps <= 0 || o.batch <= 0 || o.seq_len <= 0 ||
      o.embed <= 0) {
    throw UsageError("sizes and counts must be positive");
  }
  if (!(o.lr > 0)) throw UsageError(fmt::format("--lr must be positive, got {}", o.lr));
  const auto task = make_task(o.task, o.text, {o.data, o.validation, o.subset, o.seed});
  Rng rng(o.seed);
  const Index input = task->embeds() ? o.embed : task->input_size();
  if (!o.cell_file.empty()) {
    const auto program = layers::load_cell_file(o.cell_file);
    return layers::with_state_count(*program, [&](auto n) {
      using Cell = layers::FileCell<float, decltype(n)::value>;
      return f(*task,
               layers::Sequence<Cell>(
                   program->name, {o.layers, o.bidirectional, 0.0}, input,
                   [&](int, bool, Index in) { return Cell(program, in, o.hidden, rng); }),
               rng);
    });
  }
  if (o.cell == "lstm")
    return f(*task, layers::Lstm<float>({input, o.hidden, o.layers, o.bidirectional}, rng), rng);
  if (o.cell == "gru")
    return f(*task, layers::Gru<float>({input, o.hidden, o.layers, o.bidirectional}, rng), rng);
  if (o.cell == "rnn")
    return f(*task, layers::Rnn<float>({input, o.hidden, o.layers, o.bidirectional}, rng), rng);
  throw UsageError(fmt::format("unknown cell '{}' (expected rnn, lstm or gru)", o.cell));
}

}  // namespace rwd::cli
