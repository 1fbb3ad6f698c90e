// Backpropagation through time in bounded memory: checkpointed BPTT, exact to plain BPTT.
//
// The unit is one time step of a chain: a step function records step t from the state s_t (a
// few tensors: every layer's h and c) and returns s_{t+1}, the step's loss (or none) and any
// tensors a per-step callback wants to read. The loss is Σ_t loss_t.
//
// Plain (no checkpoints): every step is recorded on the tape and backward runs once; the tape
// keeps the recording, as unroll does. Checkpointed: a schedule (schedule.hpp; revolve by
// default) runs steps forward without keeping them (one step on the tape at a time), stores the
// state at a few steps, and re-records each step from a stored state when the reverse sweep
// reaches it, seeded with the gradient of its output state from the steps after it. The tape is
// the scratch space: it is cleared on the way and on return.
//
// Exactness. Each re-recording is the same ops on the same values, so the forward values are
// the same bits. The gradients are too: every node's gradient is summed from its consumers in
// the same order as in the one-tape sweep, because (1) a step's output state starts with the
// gradient its next step gave the state, as in plain BPTT where the next step's consumers come
// first in the reverse sweep; (2) each parameter's gradient is carried from one reversal to the
// next in the tape's own buffer (Tape::backward with seeds), so it is summed step after step in
// plain BPTT's order rather than per segment; (3) the random generator is stored with every
// checkpoint and restored with it, so dropout masks are redrawn identically, and it ends where
// plain BPTT leaves it. The tests check max |Δ| = 0 against plain BPTT for every built-in cell.
//
// Memory: the stored states plus one step's recording (a segment's with the uniform schedule),
// instead of T steps. Time: plain BPTT evaluates each step once forward; revolve with c slots
// evaluates r·T − C(c+r, c+1) steps in its advances plus T re-recordings (the report says both).
#pragma once

#include <algorithm>
#include <functional>
#include <optional>
#include <rewind/autograd/schedule.hpp>
#include <rewind/layers/init.hpp>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace rwd::layers {

/// revolve: offline binomial (fewest recomputations for the length); uniform: evenly spaced
/// segments, each recorded whole; online: the schedule for a chain of unknown length, told the
/// length only when it ends (see schedule.hpp).
enum class Schedule { revolve, uniform, online };

/// What one step recorded.
template <class T>
struct StepRecord {
  std::vector<Var<T>> state;  ///< s_{t+1}, one tensor per StepUnit::state_shapes entry
  Var<T> loss;                ///< 1x1, or empty: this step adds nothing to the loss
  std::vector<Var<T>> watch;  ///< tensors to hand to BackpropOptions::on_step (x_t, h_t, ...)
};

/// A step as the callback sees it, after its reverse sweep: every Var is on the tape and has its
/// gradient (the same bits as plain BPTT's). Valid during the callback only.
template <class T>
struct StepView {
  Index t = 0;
  std::span<const Var<T>> state_in;   ///< s_t (leaves)
  std::span<const Var<T>> state_out;  ///< s_{t+1}
  std::span<const Var<T>> watch;
  Var<T> loss;
  bool recomputed = false;  ///< re-recorded from a checkpoint (false in plain BPTT)
};

/// One time step of a recurrent model (see the file comment).
template <class T>
struct StepUnit {
  /// The state tensors' shapes (batch × width), in the order the step takes and returns them.
  std::vector<Shape> state_shapes;
  /// Records step t from the state.
  std::function<StepRecord<T>(Tape<T>&, Index t, std::span<const Var<T>> state)> step;
};

template <class T>
struct BackpropOptions {
  /// Stored states for a checkpointed sweep; 0 (and no budget): plain BPTT. More than the steps
  /// is allowed (every state is stored then).
  int checkpoints = 0;
  /// Or: as many checkpoints as fit in this many bytes besides one step's recording (measured
  /// by recording step 0 once). Less than one step plus one checkpoint is a UsageError naming
  /// the minimum.
  std::size_t memory_budget_bytes = 0;
  Schedule schedule = Schedule::revolve;
  /// The generator the steps draw from (dropout). Stored with every checkpoint; on return it is
  /// where plain BPTT leaves it.
  Rng* rng = nullptr;
  /// Called once per step as its reverse sweep ends, from the last step to the first.
  std::function<void(const StepView<T>&)> on_step;
};

/// What a sweep did. Advances are step evaluations without recording; recorded steps are the
/// re-recordings of the reverse sweep (plain BPTT records each step once and advances none).
struct CheckpointReport {
  std::string schedule = "plain";
  Index steps = 0;
  int checkpoints = 0;                  ///< slots available
  int slots_used = 0;                   ///< slots written
  std::int64_t predicted_advances = 0;  ///< revolve: r·T − C(c+r, c+1)
  std::int64_t advances = 0;            ///< steps evaluated without recording
  std::int64_t recorded_steps = 0;      ///< steps recorded (for the reverse sweep)
  std::size_t checkpoint_bytes = 0;     ///< one slot: the state (+ the generator)
  std::size_t step_bytes = 0;           ///< one step's recording on the tape
  std::size_t peak_tape_bytes = 0;      ///< the tape's storage at the end (its high-water mark)
  /// Step evaluations relative to plain BPTT's one per step: (advances + recorded) / steps.
  double overhead() const {
    return steps == 0 ? 1.0
                      : static_cast<double>(advances + recorded_steps) / static_cast<double>(steps);
  }
  /// Stored states + the tape: the memory the sweep needed.
  std::size_t memory_bytes() const {
    return static_cast<std::size_t>(slots_used) * checkpoint_bytes + peak_tape_bytes;
  }
  /// One line: `revolve: 1000 steps, 10 checkpoints (10 used, 32.0 KiB each), 3.847 step
  /// evaluations per step (advances predicted 2847, actual 2847; 1000 steps recorded), tape
  /// 1.06 MiB, memory 1.37 MiB`.
  std::string summary() const;
};

template <class T>
struct BpttResult {
  T loss = 0;                            ///< Σ_t loss_t, summed in step order
  std::vector<Matrix<T>> initial_grads;  ///< dL/ds_0, one per state tensor
  CheckpointReport report;
};

namespace detail {

std::string format_bytes(double bytes);  // "32.0 KiB", "1.20 MiB" (layers.cpp)

template <class T>
void check_state(const StepUnit<T>& unit, Index t, const std::vector<Var<T>>& state) {
  if (state.size() != unit.state_shapes.size()) {
    throw ShapeError(fmt::format("bptt: step {} returned {} state tensors, expected {}", t,
                                 state.size(), unit.state_shapes.size()));
  }
  for (std::size_t k = 0; k < state.size(); ++k) {
    if (state[k].shape() != unit.state_shapes[k]) {
      throw ShapeError(fmt::format("bptt: step {} returned state {} as {}, expected {}", t, k,
                                   state[k].shape(), unit.state_shapes[k]));
    }
  }
}

// The checkpointed sweep; one object per call.
template <class T>
class CheckpointedSweep {
 public:
  CheckpointedSweep(Tape<T>& tape, Index steps, const StepUnit<T>& unit,
                    const BackpropOptions<T>& options)
      : tape_(tape), steps_(steps), unit_(unit), options_(options) {}

  BpttResult<T> run(std::vector<Matrix<T>> initial) {
    BpttResult<T> out;
    CheckpointReport& rep = out.report;
    rep.schedule = options_.schedule == Schedule::revolve   ? "revolve"
                   : options_.schedule == Schedule::uniform ? "uniform"
                                                            : "online";
    rep.steps = steps_;
    for (const Shape& s : unit_.state_shapes)
      rep.checkpoint_bytes += static_cast<std::size_t>(s.rows * s.cols) * sizeof(T);
    if (options_.rng != nullptr) rep.checkpoint_bytes += sizeof(Rng);
    cur_ = std::move(initial);
    if (options_.rng != nullptr) end_rng_ = *options_.rng;
    rep.step_bytes = measure_step();
    int slots = options_.checkpoints;
    if (options_.memory_budget_bytes > 0) slots = slots_for_budget(rep);
    rep.checkpoints = slots;
    slots_.resize(static_cast<std::size_t>(std::max(1, slots)));
    if (options_.schedule == Schedule::revolve) {
      rep.predicted_advances = checkpointing::revolve_advances(steps_, slots);
      checkpointing::Revolve s(steps_, slots);
      execute(s);
      rep.slots_used = s.slots_used();
    } else if (options_.schedule == Schedule::online) {
      // The length is known here, but the schedule hears of it only as the chain ends.
      rep.predicted_advances = checkpointing::revolve_advances(steps_, slots);
      struct AtLength {
        checkpointing::OnlineSchedule s;
        Index steps;
        checkpointing::Action next() {
          if (steps == 0) return {};
          return s.next(s.position() + 1 >= steps);
        }
      } online{checkpointing::OnlineSchedule(slots), steps_};
      execute(online);
      rep.slots_used = online.s.slots_used();
    } else {
      checkpointing::UniformSchedule s(steps_, slots);
      rep.predicted_advances = steps_ - std::min<std::int64_t>(steps_, s.segment());
      execute(s);
      rep.slots_used = s.slots_used();
    }
    rep.advances = advances_;
    rep.recorded_steps = recorded_;
    rep.peak_tape_bytes = tape_.capacity_bytes();
    tape_.clear();
    // Plain backward adds each parameter's summed gradient into Parameter::grad: the same sum.
    for (auto& [p, g] : grads_) {
      if (p->grad.size() == 0) {
        p->grad = g;
      } else if (p->grad.rows() != g.rows() || p->grad.cols() != g.cols()) {
        throw UsageError(
            fmt::format("bptt: parameter '{}' holds a {}x{} gradient but was recorded as {}x{}",
                        p->name, p->grad.rows(), p->grad.cols(), g.rows(), g.cols()));
      } else {
        p->grad += g;
      }
    }
    out.loss = loss_;
    out.initial_grads = std::move(state_grad_);
    for (std::size_t k = 0; k < unit_.state_shapes.size(); ++k) {
      if (out.initial_grads.size() <= k) out.initial_grads.emplace_back();
      if (out.initial_grads[k].size() == 0) {
        out.initial_grads[k].setZero(unit_.state_shapes[k].rows, unit_.state_shapes[k].cols);
      }
    }
    if (options_.rng != nullptr) *options_.rng = *end_rng_;
    return out;
  }

 private:
  struct Slot {
    std::vector<Matrix<T>> state;
    std::optional<Rng> rng;
  };

  template <class S>
  void execute(S& schedule) {
    using checkpointing::ActionKind;
    for (;;) {
      const checkpointing::Action a = schedule.next();
      switch (a.kind) {
        case ActionKind::terminate:
          return;
        case ActionKind::takeshot: {
          Slot& s = slots_[static_cast<std::size_t>(a.slot)];
          s.state = cur_;
          if (options_.rng != nullptr) s.rng = *options_.rng;
          break;
        }
        case ActionKind::restore: {
          const Slot& s = slots_[static_cast<std::size_t>(a.slot)];
          cur_ = s.state;
          if (options_.rng != nullptr) *options_.rng = *s.rng;
          break;
        }
        case ActionKind::advance:
          for (std::int64_t t = a.from; t < a.to; ++t) advance(static_cast<Index>(t));
          break;
        case ActionKind::reverse:
          reverse(static_cast<Index>(a.from), static_cast<Index>(a.to));
          break;
      }
    }
  }

  // Step t's first evaluation adds its loss (in step order, as plain BPTT's chain of adds) and,
  // for the last step, fixes where the generator ends.
  void first_evaluation(Index t, const StepRecord<T>& rec) {
    if (t != evaluated_) return;
    ++evaluated_;
    if (rec.loss.valid()) loss_ = have_loss_ ? T(loss_ + rec.loss.item()) : rec.loss.item();
    have_loss_ = have_loss_ || rec.loss.valid();
    if (t + 1 == steps_ && options_.rng != nullptr) end_rng_ = *options_.rng;
  }

  // Runs `f` and names the recomputation in a NaN/Inf report (anomaly mode).
  template <class F>
  void guarded(Index from, Index to, F&& f) {
    const bool recomputing = from < evaluated_;
    try {
      f();
    } catch (const NumericalError& e) {
      if (!recomputing) throw;
      throw NumericalError(fmt::format(
          "{} (during the recomputation of step{} {})", e.what(), to - from > 1 ? "s" : "",
          to - from > 1 ? fmt::format("{}..{}", from, to - 1) : std::to_string(from)));
    }
  }

  void advance(Index t) {
    guarded(t, t + 1, [&] {
      tape_.clear();
      std::vector<Var<T>> state;
      for (const Matrix<T>& m : cur_) state.push_back(tape_.constant(m));
      StepRecord<T> rec = unit_.step(tape_, t, state);
      check_state(unit_, t, rec.state);
      first_evaluation(t, rec);
      for (std::size_t k = 0; k < cur_.size(); ++k) cur_[k] = rec.state[k].value();
    });
    ++advances_;
  }

  void reverse(Index from, Index to) {
    guarded(from, to, [&] {
      const bool recomputed = from < evaluated_;
      tape_.clear();
      std::vector<Var<T>> s0;
      for (const Matrix<T>& m : cur_) s0.push_back(tape_.input(m));
      recs_.clear();
      std::vector<Var<T>> state = s0;
      for (Index t = from; t < to; ++t) {
        recs_.push_back(unit_.step(tape_, t, state));
        check_state(unit_, t, recs_.back().state);
        first_evaluation(t, recs_.back());
        state = recs_.back().state;
      }
      recorded_ += to - from;
      // Seeds: the output state's gradient from the steps after, 1 on every loss, and each
      // parameter's gradient so far (carried in place).
      seeds_.clear();
      const Matrix<T> one = Matrix<T>::Ones(1, 1);
      for (std::size_t k = 0; k < state_grad_.size(); ++k) {
        if (state_grad_[k].size() == 0) continue;
        seeds_.push_back({state[k], ConstMap<T>(state_grad_[k].data(), state_grad_[k].rows(),
                                                state_grad_[k].cols())});
      }
      for (const StepRecord<T>& rec : recs_) {
        if (rec.loss.valid()) seeds_.push_back({rec.loss, ConstMap<T>(one.data(), 1, 1)});
      }
      const std::vector<Parameter<T>*> params = tape_.parameters();
      for (Parameter<T>* p : params) {
        if (Matrix<T>* g = carried(p)) {
          seeds_.push_back({tape_.var(*tape_.find_param(*p)),
                            ConstMap<T>(g->data(), g->rows(), g->cols()), true});
        }
      }
      tape_.backward(std::span<const GradSeed<T>>(seeds_), {.accumulate_parameters = false});
      for (Parameter<T>* p : params) {
        if (carried(p) != nullptr) continue;  // summed in place
        if (const auto g = tape_.grad(*tape_.find_param(*p))) grads_.emplace_back(p, *g);
      }
      state_grad_.resize(s0.size());
      for (std::size_t k = 0; k < s0.size(); ++k) {
        if (const auto g = tape_.grad(s0[k].index())) {
          state_grad_[k] = *g;
        } else {
          state_grad_[k].resize(0, 0);
        }
      }
      if (options_.on_step) {
        std::vector<Var<T>> in = s0;
        for (std::size_t j = recs_.size(); j-- > 0;) {
          const Index t = from + static_cast<Index>(j);
          const std::span<const Var<T>> state_in =
              j == 0 ? std::span<const Var<T>>(in) : std::span<const Var<T>>(recs_[j - 1].state);
          options_.on_step(
              {t, state_in, recs_[j].state, recs_[j].watch, recs_[j].loss, recomputed});
        }
      }
    });
  }

  // p's gradient carried from earlier reversals, or null.
  Matrix<T>* carried(const Parameter<T>* p) {
    for (auto& [q, g] : grads_) {
      if (q == p) return &g;
    }
    return nullptr;
  }

  // One step recorded and swept back from the initial state, to measure a step's tape storage;
  // the generator is put back and nothing is added anywhere.
  std::size_t measure_step() {
    if (steps_ == 0) return 0;
    std::optional<Rng> saved;
    if (options_.rng != nullptr) saved = *options_.rng;
    tape_.clear();
    std::vector<Var<T>> s0;
    for (const Matrix<T>& m : cur_) s0.push_back(tape_.input(m));
    const StepRecord<T> rec = unit_.step(tape_, 0, s0);
    check_state(unit_, 0, rec.state);
    std::vector<Matrix<T>> ones;
    std::vector<GradSeed<T>> seeds;
    for (const Var<T>& v : rec.state) ones.push_back(Matrix<T>::Ones(v.rows(), v.cols()));
    for (std::size_t k = 0; k < ones.size(); ++k)
      seeds.push_back({rec.state[k], ConstMap<T>(ones[k].data(), ones[k].rows(), ones[k].cols())});
    tape_.backward(std::span<const GradSeed<T>>(seeds), {.accumulate_parameters = false});
    const std::size_t bytes = tape_.capacity_bytes();
    tape_.clear();
    if (saved) *options_.rng = *saved;
    return bytes;
  }

  int slots_for_budget(const CheckpointReport& rep) const {
    const std::size_t budget = options_.memory_budget_bytes;
    const std::size_t slot = rep.checkpoint_bytes, step = rep.step_bytes;
    const std::size_t minimum = step + slot;
    if (budget < minimum) {
      throw UsageError(fmt::format(
          "bptt: a memory budget of {} is too small: the minimum is {} ({} bytes: one step's "
          "recording, {}, plus one checkpoint, {})",
          format_bytes(static_cast<double>(budget)), format_bytes(static_cast<double>(minimum)),
          minimum, format_bytes(static_cast<double>(step)),
          format_bytes(static_cast<double>(slot))));
    }
    const auto most = static_cast<std::int64_t>(std::max<Index>(steps_, 1));
    if (options_.schedule == Schedule::revolve) {
      return static_cast<int>(
          std::min<std::int64_t>(most, static_cast<std::int64_t>((budget - step) / slot)));
    }
    // Uniform: c slots and a segment of ⌈T/c⌉ steps on the tape; the fastest that fits is the
    // one with the shortest segment.
    for (std::int64_t c = 1; c <= most; ++c) {
      const std::int64_t segment = (most + c - 1) / c;
      if (static_cast<std::size_t>(c) * slot + static_cast<std::size_t>(segment) * step <= budget &&
          (c == most || static_cast<std::size_t>(c + 1) * slot +
                                static_cast<std::size_t>((most + c) / (c + 1)) * step >
                            budget)) {
        return static_cast<int>(c);
      }
    }
    std::size_t best = static_cast<std::size_t>(-1);
    for (std::int64_t c = 1; c <= most; ++c) {
      best = std::min(best, static_cast<std::size_t>(c) * slot +
                                static_cast<std::size_t>((most + c - 1) / c) * step);
    }
    throw UsageError(fmt::format(
        "bptt: a memory budget of {} is too small for the uniform schedule over {} steps: the "
        "minimum is {} ({} bytes)",
        format_bytes(static_cast<double>(budget)), steps_, format_bytes(static_cast<double>(best)),
        best));
  }

  Tape<T>& tape_;
  Index steps_;
  const StepUnit<T>& unit_;
  const BackpropOptions<T>& options_;
  std::vector<Matrix<T>> cur_;         // the state at the schedule's current position
  std::vector<Matrix<T>> state_grad_;  // dL/d(state at the position reversed last)
  std::vector<std::pair<Parameter<T>*, Matrix<T>>> grads_;  // each parameter's gradient so far
  std::vector<Slot> slots_;
  std::vector<StepRecord<T>> recs_;
  std::vector<GradSeed<T>> seeds_;
  std::optional<Rng> end_rng_;
  T loss_ = 0;
  bool have_loss_ = false;
  Index evaluated_ = 0;  // steps evaluated at least once (in order)
  std::int64_t advances_ = 0, recorded_ = 0;
};

// Plain BPTT: everything on the tape, one backward.
template <class T>
BpttResult<T> plain_bptt(Tape<T>& tape, Index steps, const std::vector<Matrix<T>>& initial,
                         const StepUnit<T>& unit, const BackpropOptions<T>& options) {
  BpttResult<T> out;
  out.report.steps = steps;
  std::vector<Var<T>> s0;
  for (const Matrix<T>& m : initial) s0.push_back(tape.input(m));
  std::vector<StepRecord<T>> recs;
  std::vector<Var<T>> state = s0;
  Var<T> total;
  for (Index t = 0; t < steps; ++t) {
    recs.push_back(unit.step(tape, t, state));
    check_state(unit, t, recs.back().state);
    if (recs.back().loss.valid())
      total = total.valid() ? add(total, recs.back().loss) : recs.back().loss;
    state = recs.back().state;
  }
  out.report.recorded_steps = steps;
  if (total.valid()) {
    tape.backward(total);
    out.loss = total.item();
  }
  for (const Var<T>& s : s0) {
    const auto g = total.valid() ? tape.grad(s.index()) : std::nullopt;
    out.initial_grads.push_back(g ? Matrix<T>(*g) : Matrix<T>::Zero(s.rows(), s.cols()));
  }
  out.report.peak_tape_bytes = tape.capacity_bytes();
  if (options.on_step && total.valid()) {
    for (Index t = steps; t-- > 0;) {
      const auto j = static_cast<std::size_t>(t);
      const std::span<const Var<T>> in =
          j == 0 ? std::span<const Var<T>>(s0) : std::span<const Var<T>>(recs[j - 1].state);
      options.on_step({t, in, recs[j].state, recs[j].watch, recs[j].loss, false});
    }
  }
  return out;
}

}  // namespace detail

/// Backpropagation through `steps` steps of `unit` from the state `initial` (one matrix per
/// state tensor): returns Σ_t loss_t and dL/ds_0, and adds every parameter's gradient into
/// Parameter::grad, as backward does. Plain BPTT unless options ask for checkpoints or a memory
/// budget (see the file comment); the results are the same bits either way. With checkpoints,
/// `tape` is used as scratch and cleared. Throws ShapeError when `initial` or a step's state
/// does not match unit.state_shapes, UsageError for a budget below the minimum.
template <class T>
BpttResult<T> bptt(Tape<T>& tape, Index steps, std::vector<Matrix<T>> initial,
                   const StepUnit<T>& unit, const BackpropOptions<T>& options = {}) {
  if (steps < 0) throw UsageError(fmt::format("bptt: {} steps", steps));
  if (initial.size() != unit.state_shapes.size()) {
    throw ShapeError(fmt::format("bptt: {} initial state tensors, expected {}", initial.size(),
                                 unit.state_shapes.size()));
  }
  for (std::size_t k = 0; k < initial.size(); ++k) {
    const Shape s{initial[k].rows(), initial[k].cols()};
    if (s != unit.state_shapes[k]) {
      throw ShapeError(
          fmt::format("bptt: initial state {} is {}, expected {}", k, s, unit.state_shapes[k]));
    }
  }
  if (options.checkpoints < 0) {
    throw UsageError(
        fmt::format("bptt: {} checkpoints: expected 0 (plain BPTT) or more", options.checkpoints));
  }
  if (options.checkpoints == 0 && options.memory_budget_bytes == 0) {
    return detail::plain_bptt(tape, steps, initial, unit, options);
  }
  if (options.checkpoints > 0 && options.memory_budget_bytes > 0) {
    throw UsageError("bptt: give checkpoints or a memory budget, not both");
  }
  const bool held = tape.parameters_held();
  tape.hold_parameters(true);
  try {
    detail::CheckpointedSweep<T> sweep(tape, steps, unit, options);
    BpttResult<T> out = sweep.run(std::move(initial));
    tape.hold_parameters(held);
    return out;
  } catch (...) {
    tape.clear();
    tape.hold_parameters(held);
    throw;
  }
}

}  // namespace rwd::layers
