#include "rewind/autograd/schedule.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "rewind/autograd/errors.hpp"

namespace rwd::checkpointing {

std::string to_string(const Action& a) {
  switch (a.kind) {
    case ActionKind::advance:
      return fmt::format("advance {} -> {}", a.from, a.to);
    case ActionKind::takeshot:
      return fmt::format("takeshot {} in slot {}", a.from, a.slot);
    case ActionKind::restore:
      return fmt::format("restore {} from slot {}", a.from, a.slot);
    case ActionKind::reverse:
      if (a.to == a.from + 1) return fmt::format("{} {}", a.first ? "firsturn" : "youturn", a.from);
      return fmt::format("reverse {}..{}{}", a.from, a.to - 1, a.first ? " (first)" : "");
    case ActionKind::terminate:
      return "terminate";
  }
  return "?";
}

namespace {

// C(c + r, c) ≥ l: the smallest such r, and β = C(c + r, c) itself. The running product
// β·(r + 1 + c)/(r + 1) stays an integer at every step (it is C(c + r + 1, c)).
struct Repetitions {
  int r = 0;
  std::int64_t beta = 1;
};

Repetitions repetitions(std::int64_t steps, int slots) {
  Repetitions out;
  while (out.beta < steps) {
    ++out.r;
    out.beta = out.beta * (out.r + slots) / out.r;
  }
  return out;
}

void check_arguments(const char* who, std::int64_t steps, int slots) {
  if (steps < 0) throw UsageError(fmt::format("{}: {} steps: expected at least 0", who, steps));
  if (slots < 1) throw UsageError(fmt::format("{}: {} slots: expected at least 1", who, slots));
}

}  // namespace

int repetition_number(std::int64_t steps, int slots) {
  check_arguments("repetition_number", steps, slots);
  return steps <= 1 ? 0 : repetitions(steps, slots).r;
}

std::int64_t revolve_advances(std::int64_t steps, int slots) {
  check_arguments("revolve_advances", steps, slots);
  if (steps <= 1) return 0;
  const auto [r, beta] = repetitions(steps, slots);
  // C(c + r, c + 1) = C(c + r, c)·r/(c + 1), exact.
  return r * steps - beta * r / (slots + 1);
}

Revolve::Revolve(std::int64_t steps, int slots)
    : fine_(steps), snaps_(slots), ch_(static_cast<std::size_t>(std::max(slots, 1)), 0) {
  check_arguments("Revolve", steps, slots);
}

// TOMS 799's rules. check_ is the slot of the latest stored position (−1 before the first),
// capo_ the current position, fine_ one past the last step not yet reversed.
Action Revolve::next() {
  Action a;
  const std::int64_t left = fine_ - capo_;
  if (left == 0) {  // the step at fine_ was reversed: back to the latest stored state, or done
    if (check_ == -1 || capo_ == ch_[0]) return a;  // terminate
    capo_ = ch_[static_cast<std::size_t>(check_)];
    return {ActionKind::restore, capo_, capo_, check_, false};
  }
  if (left == 1) {  // record and reverse the step at capo_; its stored state is free after it
    fine_ -= 1;
    if (check_ >= 0 && ch_[static_cast<std::size_t>(check_)] == capo_) check_ -= 1;
    const bool first = !turned_;
    turned_ = true;
    return {ActionKind::reverse, capo_, capo_ + 1, -1, first};
  }
  if (check_ == -1 || ch_[static_cast<std::size_t>(check_)] != capo_) {  // store capo_
    check_ += 1;
    if (check_ >= snaps_) {
      throw UsageError(fmt::format("Revolve: slot {} needed with {} slots", check_, snaps_));
    }
    ch_[static_cast<std::size_t>(check_)] = capo_;
    used_ = std::max(used_, check_ + 1);
    return {ActionKind::takeshot, capo_, capo_, check_, false};
  }
  // Advance: to the split TOMS 799 chooses for `left` steps and ds = slots − check_ slots (the
  // one at capo_ included).
  const std::int64_t ds = snaps_ - check_;
  const auto [reps, range] = repetitions(left, static_cast<int>(ds));
  const std::int64_t bino1 = range * reps / (ds + reps);
  const std::int64_t bino2 = ds > 1 ? bino1 * ds / (ds + reps - 1) : 1;
  const std::int64_t bino3 = ds == 1 ? 0 : (ds > 2 ? bino2 * (ds - 1) / (ds + reps - 2) : 1);
  const std::int64_t bino4 = bino2 * (reps - 1) / ds;
  const std::int64_t bino5 = ds < 3 ? 0 : (ds > 3 ? bino3 * (ds - 2) / reps : 1);
  const std::int64_t from = capo_;
  if (left <= bino1 + bino3) {
    capo_ += bino4;
  } else if (left >= range - bino5) {
    capo_ += bino1;
  } else {
    capo_ = fine_ - bino2 - bino3;
  }
  if (capo_ == from) capo_ = from + 1;
  advances_ += capo_ - from;
  return {ActionKind::advance, from, capo_, -1, false};
}

UniformSchedule::UniformSchedule(std::int64_t steps, int slots) : steps_(steps) {
  check_arguments("UniformSchedule", steps, slots);
  stride_ = std::max<std::int64_t>(1, (steps + slots - 1) / slots);
  for (std::int64_t s = 0; s < steps; s += stride_) starts_.push_back(s);
  segment_ = static_cast<int>(starts_.size()) - 1;
}

Action UniformSchedule::next() {
  if (steps_ == 0 || phase_ == 3) return {};
  if (phase_ == 0) {  // forward: store each segment's start, advance to the next one
    const auto k = static_cast<std::size_t>(slots_used_now_);
    if (capo_ == starts_[k] && !stored_) {
      stored_ = true;
      return {ActionKind::takeshot, capo_, capo_, static_cast<int>(k), false};
    }
    if (k + 1 < starts_.size()) {
      const std::int64_t from = capo_;
      capo_ = starts_[k + 1];
      advances_ += capo_ - from;
      ++slots_used_now_;
      stored_ = false;
      return {ActionKind::advance, from, capo_, -1, false};
    }
    phase_ = 2;  // at the last segment's start: reverse it without a restore
  }
  const auto k = static_cast<std::size_t>(segment_);
  const std::int64_t end = k + 1 < starts_.size() ? starts_[k + 1] : steps_;
  if (phase_ == 1) {
    phase_ = 2;
    capo_ = starts_[k];
    return {ActionKind::restore, capo_, capo_, segment_, false};
  }
  const bool first = k + 1 == starts_.size();
  phase_ = segment_ == 0 ? 3 : 1;
  --segment_;
  return {ActionKind::reverse, starts_[k], end, -1, first};
}

}  // namespace rwd::checkpointing
