// Checkpointed BPTT: the schedules (revolve's trace against an independent transcription of
// TOMS 799, the advance counts against the binomial formula and a brute-force optimum, every
// schedule replayed by a simulator), and exactness: loss, input, initial-state and parameter
// gradients, per-step gradients of every layer's output and the generator's end state equal to
// plain BPTT's bit for bit, for every built-in stack.
#include <boost/test/unit_test.hpp>
#include <functional>
#include <map>
#include <rewind/rewind.hpp>

#include "support.hpp"

using namespace rwd;
using namespace rwd::layers;
namespace cp = rwd::checkpointing;

namespace {

// Replays a schedule on positions only: stored slots, the current position, which steps are
// reversed in which order. Fails the test on any impossible action.
struct Replay {
  std::int64_t advances = 0, recorded = 0;
  int slots = 0;
};

template <class Next>
Replay replay_actions(Next next, std::int64_t steps, int slots);

template <class S>
Replay replay(S schedule, std::int64_t steps, int slots) {
  return replay_actions([&] { return schedule.next(); }, steps, slots);
}

// The online schedule is told the chain ends only when it reaches its last step.
Replay replay_online(std::int64_t steps, int slots) {
  cp::OnlineSchedule s(slots);
  return replay_actions(
      [&] { return steps == 0 ? cp::Action{} : s.next(s.position() + 1 >= steps); }, steps, slots);
}

template <class Next>
Replay replay_actions(Next next, std::int64_t steps, int slots) {
  Replay r;
  std::map<int, std::int64_t> stored;
  std::int64_t capo = 0, next_reverse = steps;  // steps >= next_reverse are reversed
  bool first = true;
  for (int guard = 0; guard < 100'000'000; ++guard) {
    const cp::Action a = next();
    switch (a.kind) {
      case cp::ActionKind::terminate:
        BOOST_TEST(next_reverse == 0);
        r.slots = static_cast<int>(stored.size());
        return r;
      case cp::ActionKind::advance:
        BOOST_TEST(a.from == capo);
        BOOST_TEST(a.to > a.from);
        BOOST_TEST(a.to < next_reverse);  // never past a step not yet reversed
        r.advances += a.to - a.from;
        capo = a.to;
        break;
      case cp::ActionKind::takeshot:
        BOOST_TEST(a.from == capo);
        BOOST_TEST((a.slot >= 0 && a.slot < slots));
        stored[a.slot] = capo;
        break;
      case cp::ActionKind::restore:
        BOOST_TEST(stored.count(a.slot) == 1u);
        BOOST_TEST(stored[a.slot] == a.from);
        capo = a.from;
        break;
      case cp::ActionKind::reverse:
        BOOST_TEST(a.from == capo);
        BOOST_TEST(a.to == next_reverse);  // from the last step back, each once
        BOOST_TEST(a.first == first);
        first = false;
        r.recorded += a.to - a.from;
        next_reverse = a.from;
        break;
    }
  }
  BOOST_ERROR("the schedule never terminates");
  return r;
}

// The fewest advances to reverse l steps with c slots, by brute force over the first split
// (Griewank's recursion: advance m steps, store, reverse the last l − m with c − 1 slots, then
// the first m with c): t(l, c) = min_m m + t(l − m, c − 1) + t(m, c), t(1, c) = 0, t(l, 1) =
// l(l − 1)/2.
std::int64_t fewest_advances(std::int64_t l, int c,
                             std::map<std::pair<std::int64_t, int>, std::int64_t>& memo) {
  if (l <= 1) return 0;
  if (c == 1) return l * (l - 1) / 2;
  const auto key = std::make_pair(l, c);
  if (const auto it = memo.find(key); it != memo.end()) return it->second;
  std::int64_t best = fewest_advances(l, c - 1, memo);  // not using a slot is allowed
  for (std::int64_t m = 1; m < l; ++m) {
    best = std::min(best, m + fewest_advances(l - m, c - 1, memo) + fewest_advances(m, c, memo));
  }
  memo[key] = best;
  return best;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(checkpoint_schedules)

// TOMS 799's rules transcribed independently (tools/revolve_trace.py, in Python) for 14 steps and
// 3 snapshots, the sample of the paper's driver program.
BOOST_AUTO_TEST_CASE(revolve_trace_of_14_steps_with_3_snapshots) {
  const std::vector<std::string> expected = {
#include "revolve_14_3.inc"
  };
  std::vector<std::string> got;
  for (const cp::Action& a : cp::trace(cp::Revolve(14, 3))) got.push_back(cp::to_string(a));
  BOOST_TEST(got == expected, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(revolve_advances_are_binomial_and_optimal) {
  BOOST_TEST(cp::revolve_advances(225, 15) == 522);
  BOOST_TEST(cp::revolve_advances(100'000, 100) == 294'747);
  BOOST_TEST(cp::repetition_number(10'000, 100) == 3);
  BOOST_TEST(cp::revolve_advances(10'000, 100) == 24'747);
  std::map<std::pair<std::int64_t, int>, std::int64_t> memo;
  for (std::int64_t l : {0, 1, 2, 3, 7, 10, 14, 50, 100}) {
    for (int c : {1, 2, 3, 5, 9, 100}) {
      BOOST_TEST_CONTEXT("l = " << l << ", c = " << c) {
        const Replay r = replay(cp::Revolve(l, c), l, c);
        BOOST_TEST(r.recorded == l);
        BOOST_TEST(r.advances == cp::revolve_advances(l, c));
        BOOST_TEST(r.advances == fewest_advances(l, c, memo));
        BOOST_TEST(r.slots <= std::max<std::int64_t>(std::min<std::int64_t>(c, l), 0));
      }
    }
  }
  // Long chains: the generator's count equals the formula (nothing recorded, positions only).
  for (const auto& [l, c] :
       {std::pair<std::int64_t, int>{225, 15}, {10'000, 100}, {100'000, 100}, {100'000, 2000}}) {
    cp::Revolve s(l, c);
    while (s.next().kind != cp::ActionKind::terminate) {
    }
    BOOST_TEST(s.advances() == cp::revolve_advances(l, c));
  }
}

BOOST_AUTO_TEST_CASE(uniform_schedule_replays) {
  for (std::int64_t l : {0, 1, 2, 3, 7, 10, 50}) {
    for (int c : {1, 2, 3, 4, 60}) {
      BOOST_TEST_CONTEXT("l = " << l << ", c = " << c) {
        const cp::UniformSchedule u(l, c);
        const Replay r = replay(u, l, c);
        BOOST_TEST(r.recorded == l);
        BOOST_TEST(r.advances == (l == 0 ? 0 : (l - 1) / u.segment() * u.segment()));
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(online_schedule_is_optimal_up_to_its_range) {
  for (int c : {1, 2, 3, 4, 7, 12}) {
    const std::int64_t range = cp::OnlineSchedule(c).optimal_range();
    BOOST_TEST(range == (c + 1) * (c + 2) / 2);
    for (std::int64_t l = 0; l <= range + 3 * c + 40; ++l) {
      BOOST_TEST_CONTEXT("l = " << l << ", c = " << c) {
        const Replay r = replay_online(l, c);
        BOOST_TEST(r.recorded == l);
        if (l <= range) {
          BOOST_TEST(r.advances == cp::revolve_advances(l, c));
        } else {
          BOOST_TEST(r.advances >= cp::revolve_advances(l, c));
        }
      }
    }
  }
  // Far past the range the fallback stays within a small factor of revolve.
  for (const auto& [l, c] :
       {std::pair<std::int64_t, int>{2000, 10}, {10'000, 100}, {100'000, 100}}) {
    const Replay r = replay_online(l, c);
    const double ratio =
        static_cast<double>(r.advances + l) / static_cast<double>(cp::revolve_advances(l, c) + l);
    BOOST_TEST_MESSAGE("online, l = " << l << ", c = " << c << ": " << r.advances
                                      << " advances, revolve " << cp::revolve_advances(l, c)
                                      << ", evaluations ratio " << ratio);
    BOOST_TEST(ratio < 1.05);
  }
}

BOOST_AUTO_TEST_CASE(schedule_arguments) {
  test::expect_message<UsageError>([] { cp::Revolve(10, 0); },
                                   "Revolve: 0 slots: expected at least 1");
  test::expect_message<UsageError>([] { cp::UniformSchedule(-1, 2); },
                                   "UniformSchedule: -1 steps: expected at least 0");
}

BOOST_AUTO_TEST_SUITE_END()

namespace {

// Everything a training step produces that checkpointing must not change.
template <class T>
struct Outcome {
  T loss = 0;
  std::vector<Matrix<T>> initial_grads, input_grads, param_grads;
  std::vector<std::vector<Matrix<T>>> output_grads;  // [t][layer]: dL/dy^k_t
  std::vector<T> step_losses;                        // loss_t as each step is rewound
  Rng rng;
  CheckpointReport report;
};

template <class T>
bool identical(const Outcome<T>& a, const Outcome<T>& b) {
  bool ok = a.loss == b.loss || (std::isnan(a.loss) && std::isnan(b.loss));
  BOOST_TEST(ok, "loss " << a.loss << " vs " << b.loss);
  const auto same_list = [&](const std::vector<Matrix<T>>& x, const std::vector<Matrix<T>>& y,
                             const char* what) {
    BOOST_TEST(x.size() == y.size(), what);
    for (std::size_t k = 0; k < std::min(x.size(), y.size()); ++k) {
      const bool eq = test::same(x[k], y[k]);
      if (!eq) {
        BOOST_ERROR(what << " " << k << " differs: max |Δ| = "
                         << (x[k].rows() == y[k].rows() && x[k].cols() == y[k].cols()
                                 ? static_cast<double>((x[k] - y[k]).cwiseAbs().maxCoeff())
                                 : -1.0));
      }
      ok = ok && eq;
    }
  };
  same_list(a.initial_grads, b.initial_grads, "initial state gradient");
  same_list(a.input_grads, b.input_grads, "input gradient");
  same_list(a.param_grads, b.param_grads, "parameter gradient");
  BOOST_TEST(a.output_grads.size() == b.output_grads.size());
  for (std::size_t t = 0; t < std::min(a.output_grads.size(), b.output_grads.size()); ++t)
    same_list(a.output_grads[t], b.output_grads[t], "layer output gradient");
  BOOST_TEST(a.rng == b.rng, "the generator ends elsewhere");
  ok = ok && a.rng == b.rng;
  return ok;
}

struct Config {
  Index steps = 10;
  int layers = 1;
  bool lengths = false;
  double dropout = 0;
};

// A stack with a linear head: inputs are leaves (their gradients are checked), the loss is a
// mean squared error at two steps out of three (none at the others), the head's parameters are
// recorded only at those steps.
template <class Stack>
struct Problem {
  using T = typename Stack::Scalar;
  static constexpr Index kBatch = 3, kInput = 3, kHidden = 4;

  Problem(const Config& c, std::function<Stack(Rng&)> make) : config(c) {
    Rng init(7);
    stack.emplace(make(init));
    head.emplace(typename Linear<T>::Options{kHidden, 2, true, "head."}, init);
    std::mt19937_64 data(11);
    for (Index t = 0; t < c.steps; ++t) {
      xs.push_back(test::normal_matrix(kBatch, kInput, data).cast<T>());
      targets.push_back(test::normal_matrix(kBatch, 2, data).cast<T>());
    }
    if (c.lengths)
      lengths = {static_cast<std::int32_t>(c.steps), 0, static_cast<std::int32_t>(c.steps / 2)};
  }

  Outcome<T> run(const BackpropOptions<T>& options_in) {
    Outcome<T> out;
    Rng dropout_rng(99);
    std::vector<Parameter<T>*> params = stack->named_parameters();
    append(params, head->named_parameters());
    for (Parameter<T>* p : params) p->zero_grad();
    out.input_grads.resize(xs.size());
    out.output_grads.resize(xs.size());
    out.step_losses.resize(xs.size());
    BackpropOptions<T> options = options_in;
    options.on_step = [&](const StepView<T>& v) {
      const auto t = static_cast<std::size_t>(v.t);
      out.input_grads[t] = v.watch[0].grad();
      out.output_grads[t].clear();
      for (std::size_t k = 1; k < v.watch.size(); ++k)
        out.output_grads[t].push_back(v.watch[k].grad());
      out.step_losses[t] = v.loss.valid() ? v.loss.item() : T(0);
    };
    Tape<T> tape;
    typename Stack::Call call;
    call.lengths = lengths;
    if (config.dropout > 0) call.dropout_rng = &dropout_rng;
    const auto result = stack->backprop(
        tape, config.steps, kBatch,
        [&](Tape<T>& tp, Index t) { return tp.input(xs[static_cast<std::size_t>(t)]); },
        [&](Tape<T>& tp, Index t, const Var<T>& y) {
          if (t % 3 == 1) return Var<T>();
          return mse((*head)(tp, y), tp.constant(targets[static_cast<std::size_t>(t)]));
        },
        call, options);
    out.loss = result.loss;
    out.initial_grads = result.initial_grads;
    for (Parameter<T>* p : params) out.param_grads.push_back(p->grad);
    out.rng = dropout_rng;
    out.report = result.report;
    return out;
  }

  Config config;
  std::optional<Stack> stack;
  std::optional<Linear<T>> head;
  std::vector<Matrix<T>> xs, targets;
  std::vector<std::int32_t> lengths;
};

template <class Stack>
void check_grid(const std::string& name, const Config& c, std::function<Stack(Rng&)> make,
                std::vector<int> ks) {
  using T = typename Stack::Scalar;
  Problem<Stack> problem(c, make);
  const Outcome<T> plain = problem.run({});
  if (c.steps > 0) BOOST_TEST(plain.loss != 0);
  for (const int k : ks) {
    for (const Schedule s : {Schedule::revolve, Schedule::uniform, Schedule::online}) {
      if (s != Schedule::revolve && k != ks.front() && k != ks.back()) continue;
      BOOST_TEST_CONTEXT(name << " " << (sizeof(T) == 4 ? "float" : "double") << ", T = " << c.steps
                              << ", " << c.layers << " layer(s), k = " << k
                              << (s == Schedule::revolve   ? ", revolve"
                                  : s == Schedule::uniform ? ", uniform"
                                                           : ", online")
                              << (c.lengths ? ", lengths" : "")
                              << (c.dropout > 0 ? ", dropout" : "")) {
        const Outcome<T> cp = problem.run({.checkpoints = k, .schedule = s});
        identical(plain, cp);
        BOOST_TEST(cp.report.recorded_steps == c.steps);
        if (s == Schedule::revolve) {
          BOOST_TEST(cp.report.advances == cp.report.predicted_advances);
        }
      }
    }
  }
}

template <class T>
void exact_for_every_stack(const Config& c, const std::vector<int>& ks) {
  const Index in = Problem<Rnn<T>>::kInput, h = Problem<Rnn<T>>::kHidden;
  check_grid<Rnn<T>>(
      "rnn tanh", c,
      [&](Rng& r) {
        return Rnn<T>({.input = in, .hidden = h, .num_layers = c.layers, .dropout = c.dropout}, r);
      },
      ks);
  check_grid<Rnn<T>>(
      "rnn relu", c,
      [&](Rng& r) {
        return Rnn<T>({.input = in,
                       .hidden = h,
                       .num_layers = c.layers,
                       .dropout = c.dropout,
                       .activation = Activation::kRelu},
                      r);
      },
      ks);
  check_grid<Lstm<T>>(
      "lstm", c,
      [&](Rng& r) {
        return Lstm<T>({.input = in, .hidden = h, .num_layers = c.layers, .dropout = c.dropout}, r);
      },
      ks);
  check_grid<Gru<T>>(
      "gru", c,
      [&](Rng& r) {
        return Gru<T>({.input = in, .hidden = h, .num_layers = c.layers, .dropout = c.dropout}, r);
      },
      ks);
}

// k ∈ {1, 2, 3, T − 1, ≥ T} (those that are at least 1).
std::vector<int> grid_ks(Index steps) {
  std::vector<int> ks = {1, 2, 3};
  if (steps - 1 > 3) ks.push_back(static_cast<int>(steps - 1));
  ks.push_back(static_cast<int>(std::max<Index>(steps, 1) + 2));
  return ks;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(checkpointed_bptt)

BOOST_AUTO_TEST_CASE(bit_identical_to_plain_bptt) {
  for (const Index steps : {0, 1, 2, 3, 7, 10, 50}) {
    for (const int layers : {1, 2}) {
      exact_for_every_stack<double>({steps, layers}, grid_ks(steps));
      exact_for_every_stack<float>({steps, layers}, grid_ks(steps));
    }
  }
}

BOOST_AUTO_TEST_CASE(bit_identical_with_lengths_and_dropout) {
  for (const Index steps : {1, 3, 10, 50}) {
    exact_for_every_stack<double>({steps, 2, true, 0.3}, grid_ks(steps));
    exact_for_every_stack<float>({steps, 2, true, 0.3}, grid_ks(steps));
  }
}

BOOST_AUTO_TEST_CASE(bit_identical_over_1000_steps, *boost::unit_test::label("heavy")) {
  // k = 1 over 1000 steps replays ~500 000 steps per stack: one stack here, all in the slow set.
  exact_for_every_stack<double>({1000, 2, true, 0.3}, {2, 3, 999, 1002});
  exact_for_every_stack<float>({1000, 1}, {2, 3, 999, 1002});
  check_grid<Lstm<double>>("lstm", {1000, 1},
                           [](Rng& r) { return Lstm<double>({.input = 3, .hidden = 4}, r); }, {1});
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(checkpointed_bptt_use)

// One LSTM layer, batch 3, hidden 4, a loss at the last step.
struct Small {
  Rng rng{5};
  Lstm<double> lstm{{.input = 3, .hidden = 4}, rng};
  std::vector<Matrix<double>> xs;
  explicit Small(Index steps) {
    std::mt19937_64 data(3);
    for (Index t = 0; t < steps; ++t) xs.push_back(test::normal_matrix(3, 3, data));
  }
  BpttResult<double> run(Tape<double>& tape, const BackpropOptions<double>& o,
                         Sequence<LstmCell<double>>::LossFn loss = {}) {
    const auto steps = static_cast<Index>(xs.size());
    if (!loss) {
      loss = [steps](Tape<double>&, Index t, const Var<double>& y) {
        return t + 1 == steps ? sum(square(y)) : Var<double>();
      };
    }
    return lstm.backprop(
        tape, steps, 3,
        [&](Tape<double>& tp, Index t) { return tp.constant(xs[static_cast<std::size_t>(t)]); },
        loss, {}, o);
  }
};

BOOST_AUTO_TEST_CASE(memory_budget_sets_the_checkpoints) {
  Small m(200);
  Tape<double> tape;
  const auto plain = m.run(tape, {});
  const std::size_t slot = 2 * 3 * 4 * sizeof(double);  // h and c
  const auto probe = m.run(tape, {.checkpoints = 1});
  const std::size_t step = probe.report.step_bytes;
  BOOST_TEST(step > 0u);
  BOOST_TEST(probe.report.checkpoint_bytes == slot);
  const auto r = m.run(tape, {.memory_budget_bytes = step + 10 * slot});
  BOOST_TEST(r.report.checkpoints == 10);
  BOOST_TEST(r.report.slots_used <= 10);
  BOOST_TEST(r.report.advances == cp::revolve_advances(200, 10));
  BOOST_TEST(r.loss == plain.loss);
  BOOST_TEST(r.report.schedule == "revolve");
  BOOST_TEST(r.report.summary().find("revolve: 200 steps, 10 checkpoints") == 0u);
  test::expect_message<UsageError>(
      [&] { m.run(tape, {.memory_budget_bytes = step + slot - 1}); },
      fmt::format("bptt: a memory budget of {} is too small: the minimum is {} ({} bytes: one "
                  "step's recording, {}, plus one checkpoint, 192 B)",
                  layers::detail::format_bytes(static_cast<double>(step + slot - 1)),
                  layers::detail::format_bytes(static_cast<double>(step + slot)), step + slot,
                  layers::detail::format_bytes(static_cast<double>(step))));
  // The uniform schedule fits its segment and slots in the budget.
  const auto u =
      m.run(tape, {.memory_budget_bytes = step * 20 + slot * 20, .schedule = Schedule::uniform});
  BOOST_TEST(u.report.checkpoints * slot +
                 (200 + u.report.checkpoints - 1) / u.report.checkpoints * step <=
             step * 20 + slot * 20);
  BOOST_TEST(u.loss == plain.loss);
}

BOOST_AUTO_TEST_CASE(anomaly_names_the_recomputed_step) {
  Small m(10);
  Tape<double> tape;
  tape.set_anomaly_mode(true);
  // sqrt at 0: a finite value, an infinite gradient, first met when step 4 is re-recorded.
  const auto loss = [](Tape<double>&, Index t, const Var<double>& y) {
    return t == 4 ? sum(sqrt(scale(square(y), 0.0))) : Var<double>();
  };
  test::expect_message<NumericalError>(
      [&] { m.run(tape, {.checkpoints = 2}, loss); },
      "anomaly: sqrt at t4: Inf in the gradient it returns for input 0 (incoming gradient in [1, "
      "1]); inputs: 3x4 in [0, 0] (during the recomputation of step 4)");
  // Plain BPTT reports the same op without the note.
  tape.clear();
  test::expect_message<NumericalError>(
      [&] { m.run(tape, {}, loss); },
      "anomaly: sqrt at t4: Inf in the gradient it returns for input 0 (incoming gradient in [1, "
      "1]); inputs: 3x4 in [0, 0]");
}

BOOST_AUTO_TEST_CASE(errors) {
  Rng rng(1);
  Lstm<double> bi({.input = 3, .hidden = 4, .bidirectional = true}, rng);
  Tape<double> tape;
  test::expect_message<UsageError>(
      [&] {
        bi.backprop(
            tape, 5, 3,
            [](Tape<double>& tp, Index) { return tp.constant(Matrix<double>::Zero(3, 3)); },
            [](Tape<double>&, Index, const Var<double>&) { return Var<double>(); });
      },
      "Lstm: step_unit: a bidirectional stack has no per-step unit (its reverse direction needs "
      "the whole sequence of the layer below); checkpoint a unidirectional stack, or use "
      "operator() for plain BPTT");
  Small m(5);
  test::expect_message<UsageError>([&] { m.run(tape, {.checkpoints = -1}); },
                                   "bptt: -1 checkpoints: expected 0 (plain BPTT) or more");
  test::expect_message<UsageError>(
      [&] { m.run(tape, {.checkpoints = 2, .memory_budget_bytes = 1000}); },
      "bptt: give checkpoints or a memory budget, not both");
  StepUnit<double> unit;
  unit.state_shapes = {{2, 3}};
  unit.step = [](Tape<double>&, Index, std::span<const Var<double>> s) {
    StepRecord<double> r;
    r.state = {concat_cols({s[0], s[0]})};
    return r;
  };
  test::expect_message<ShapeError>(
      [&] { bptt(tape, 3, {Matrix<double>::Zero(2, 3)}, unit, {.checkpoints = 2}); },
      "bptt: step 0 returned state 0 as 2x6, expected 2x3");
  test::expect_message<ShapeError>([&] { bptt(tape, 3, {Matrix<double>::Zero(3, 3)}, unit); },
                                   "bptt: initial state 0 is 3x3, expected 2x3");
  // A failed sweep leaves the tape usable and the parameters' holding off.
  BOOST_TEST(!tape.parameters_held());
  tape.clear();
  BOOST_TEST(tape.size() == 0u);
}

// One layer, no dropout: the one-tape unit records the same ops in the same order as
// operator() followed by the losses, so plain BPTT through the unit is operator()'s gradients.
BOOST_AUTO_TEST_CASE(one_layer_matches_the_sequence_call) {
  Small m(12);
  std::vector<Parameter<double>*> params = m.lstm.named_parameters();
  Tape<double> tape;
  for (Parameter<double>* p : params) p->zero_grad();
  std::vector<Var<double>> xs;
  for (const auto& x : m.xs) xs.push_back(tape.constant(x));
  const auto out = m.lstm(tape, xs);
  tape.backward(sum(square(out.outputs.back())));
  std::vector<Matrix<double>> direct;
  for (Parameter<double>* p : params) direct.push_back(p->grad);
  for (const int k : {0, 3}) {
    for (Parameter<double>* p : params) p->zero_grad();
    Tape<double> t2;
    m.run(t2, {.checkpoints = k});
    for (std::size_t i = 0; i < params.size(); ++i)
      BOOST_TEST(test::same(params[i]->grad, direct[i]));
  }
}

BOOST_AUTO_TEST_SUITE_END()
