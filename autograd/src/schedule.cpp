#include "rewind/autograd/schedule.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

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

namespace rwd::checkpointing {

OnlineSchedule::OnlineSchedule(int slots) : snaps_(slots) {
  check_arguments("OnlineSchedule", 0, slots);
  for (int k = slots - 1; k >= 0; --k) free_.push_back(k);  // slot 0 is used first
}

std::int64_t OnlineSchedule::optimal_range() const {
  return static_cast<std::int64_t>(snaps_ + 1) * (snaps_ + 2) / 2;
}

void OnlineSchedule::store_for_advance() {
  const std::int64_t m = capo_;
  const auto take = [&](std::size_t remove) {  // store m in the slot of stored_[remove]
    const int slot = stored_[remove].slot;
    stored_.erase(stored_.begin() + static_cast<std::ptrdiff_t>(remove));
    stored_.push_back({m, slot});
  };
  if (!free_.empty()) {  // repetition 1: every state while slots are free
    stored_.push_back({m, free_.back()});
    free_.pop_back();
    used_ = static_cast<int>(stored_.size());
    return;
  }
  const auto c = static_cast<std::size_t>(snaps_);
  const auto f = static_cast<std::size_t>(settled_);
  if (f + 1 < c) {  // repetition 2: move the first unsettled checkpoint to m
    take(f + 1);
    if (stored_[f + 1].pos - stored_[f].pos == static_cast<std::int64_t>(c + 1 - f)) ++settled_;
    return;
  }
  // Past the optimal range (the open segment would outgrow its 2 steps): store m in place of
  // the checkpoint whose removal lowers the predicted reversal cost most, if any does (a-revolve's
  // rule: the cost of segment i is revolve's advances for its length with c − i slots).
  const std::int64_t open = m - stored_.back().pos;  // steps from the last stored state to m
  if (c < 2 || open < 2) return;
  const auto cost = [](std::int64_t d, std::size_t slots) {
    return d <= 1 ? std::int64_t{0} : revolve_advances(d, static_cast<int>(slots));
  };
  std::vector<std::int64_t> d(c - 1), prefix(c, 0), shifted(c, 0);
  for (std::size_t i = 0; i + 1 < c; ++i) d[i] = stored_[i + 1].pos - stored_[i].pos;
  for (std::size_t i = 0; i + 1 < c; ++i) prefix[i + 1] = prefix[i] + cost(d[i], c - i);
  for (std::size_t i = c - 1; i-- > 0;) shifted[i] = shifted[i + 1] + cost(d[i], c - i + 1);
  const std::int64_t keep = prefix[c - 1] + cost(open + 1, 1);
  std::int64_t best = keep;
  std::size_t remove = 0;
  for (std::size_t j = 1; j < c; ++j) {
    const std::int64_t with = j + 1 < c ? prefix[j - 1] + cost(d[j - 1] + d[j], c - j + 1) +
                                              shifted[j + 1] + cost(open, 2)
                                        : prefix[c - 2] + cost(d[c - 2] + open, 2);
    if (with < best) {
      best = with;
      remove = j;
    }
  }
  if (remove != 0) take(remove);
}

Action OnlineSchedule::next(bool last) {
  if (reversing_) return next_reversal();
  if (pending_advance_) {
    pending_advance_ = false;
    ++capo_;
    ++advances_;
    return {ActionKind::advance, capo_ - 1, capo_, -1, false};
  }
  if (last) {  // the step at capo_ ends the chain: reverse it, then each stored segment
    reversing_ = true;
    segment_ = static_cast<int>(stored_.size());
    end_ = capo_;
    return {ActionKind::reverse, capo_, capo_ + 1, -1, true};
  }
  store_for_advance();
  if (!stored_.empty() && stored_.back().pos == capo_) {  // stored now
    pending_advance_ = true;
    return {ActionKind::takeshot, capo_, capo_, stored_.back().slot, false};
  }
  ++capo_;
  ++advances_;
  return {ActionKind::advance, capo_ - 1, capo_, -1, false};
}

// Segment i = [stored_[i], end_) is reversed by revolve with c − i slots: its own and those the
// segments after it freed. Local positions and slots are translated; revolve's first takeshot
// (of the segment's start, stored already) is skipped.
Action OnlineSchedule::next_reversal() {
  for (;;) {
    if (!inner_) {
      if (--segment_ < 0) return {};  // terminate
      const auto i = static_cast<std::size_t>(segment_);
      const std::int64_t start = stored_[i].pos;
      if (i + 1 < stored_.size()) end_ = stored_[i + 1].pos;
      segment_slots_.assign(1, stored_[i].slot);
      for (int s = 0; s < snaps_; ++s) {
        bool held = s == stored_[i].slot;
        for (std::size_t k = 0; k < i; ++k) held = held || stored_[k].slot == s;
        if (!held) segment_slots_.push_back(s);
      }
      inner_.emplace(end_ - start, snaps_ - segment_);
      return {ActionKind::restore, start, start, stored_[i].slot, false};
    }
    const std::int64_t start = stored_[static_cast<std::size_t>(segment_)].pos;
    const std::int64_t before = inner_->advances();
    Action a = inner_->next();
    switch (a.kind) {
      case ActionKind::terminate:
        inner_.reset();
        continue;
      case ActionKind::takeshot:
        if (a.from == 0) continue;  // the segment's start: stored already
        break;
      default:
        break;
    }
    advances_ += inner_->advances() - before;
    a.from += start;
    a.to += start;
    if (a.slot >= 0) a.slot = segment_slots_[static_cast<std::size_t>(a.slot)];
    a.first = false;
    return a;
  }
}

}  // namespace rwd::checkpointing
