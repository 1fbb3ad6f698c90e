// The checkpointed BPTT driver (checkpointed.hpp says what it does and why it is exact): the
// schedule's actions (schedule.hpp) replayed on a tape, and plain BPTT, for float and double.
#include <algorithm>
#include <rewind/autograd/functional.hpp>
#include <rewind/autograd/schedule.hpp>
#include <rewind/layers/checkpointed.hpp>

namespace rwd::layers {

namespace detail {

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

template <class T>
BpttResult<T> bptt(Tape<T>& tape, Index steps, std::vector<Matrix<T>> initial,
                   const StepUnit<T>& unit, const BackpropOptions<T>& options) {
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

template BpttResult<float> bptt(Tape<float>&, Index, std::vector<Matrix<float>>,
                                const StepUnit<float>&, const BackpropOptions<float>&);
template BpttResult<double> bptt(Tape<double>&, Index, std::vector<Matrix<double>>,
                                 const StepUnit<double>&, const BackpropOptions<double>&);

}  // namespace rwd::layers
