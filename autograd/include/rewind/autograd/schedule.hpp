// Checkpointing schedules: in which order to run, store, restore and reverse the steps of a
// chain s_{t+1} = F_t(s_t) so that its adjoint needs only a few stored states.
//
// A schedule is a sequence of actions over positions 0..l (position t holds the state s_t, the
// state *before* step t):
//   advance(a, b)   run steps a..b-1 without recording, from s_a to s_b
//   takeshot(p, k)  store the current state s_p in slot k
//   restore(p, k)   load s_p from slot k
//   reverse(a, b)   record steps a..b-1 from s_a and sweep them back, with the gradient of s_b
//                   from the steps after; `first` on the first reversal (the end of the chain)
// Every step is reversed exactly once, from the last to the first.
//
// revolve: Griewank & Walther's binomial checkpointing (ACM TOMS Algorithm 799, 2000), the
// schedule with the fewest advances for l steps and c slots: r·l − C(c+r, c+1), where r is the
// smallest integer with C(c+r, c) ≥ l; every reversal is one step. The actions follow TOMS 799's
// rules (its choice among the optimal splits), so traces compare with revolve's own output.
// uniform: states stored every ⌈l/c⌉ steps on the way forward, each segment re-recorded whole
// and reversed at once (torch.utils.checkpoint_sequential's scheme): l − ⌈l/c⌉ advances but a
// segment of steps on the tape.
// online: for chains whose length is not known while they run (see OnlineSchedule): optimal up
// to (c+1)(c+2)/2 steps, a documented fallback past it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace rwd::checkpointing {

enum class ActionKind : unsigned char { advance, takeshot, restore, reverse, terminate };

struct Action {
  ActionKind kind = ActionKind::terminate;
  std::int64_t from = 0;  ///< advance/reverse: first step; takeshot/restore: the position
  std::int64_t to = 0;    ///< advance/reverse: one past the last step
  int slot = -1;          ///< takeshot/restore
  bool first = false;     ///< reverse: the first reversal (TOMS 799's firsturn)
};

/// `advance 0 -> 4`, `takeshot 4 in slot 1`, `restore 4 from slot 1`, `firsturn 13`,
/// `youturn 12`, `reverse 8..11`, `terminate`.
std::string to_string(const Action& a);

/// TOMS 799's revolve as a generator: next() gives one action at a time, in O(1) memory besides
/// the c slot positions, so 100 000 steps cost nothing to schedule.
class Revolve {
 public:
  /// l ≥ 0 steps, c ≥ 1 slots (more slots than steps are allowed; the extra ones stay unused).
  Revolve(std::int64_t steps, int slots);
  Action next();
  std::int64_t advances() const { return advances_; }  ///< steps advanced so far
  int slots_used() const { return used_; }             ///< distinct slots written so far

 private:
  std::int64_t capo_ = 0, fine_ = 0;
  int snaps_ = 0, check_ = -1, used_ = 0;
  bool turned_ = false;
  std::int64_t advances_ = 0;
  std::vector<std::int64_t> ch_;
};

/// r·l − C(c+r, c+1): the advances revolve takes for l steps and c slots (0 when l ≤ 1).
std::int64_t revolve_advances(std::int64_t steps, int slots);
/// The repetition number r: the smallest r with C(c+r, c) ≥ l (0 when l ≤ 1).
int repetition_number(std::int64_t steps, int slots);

/// Stored states every ⌈l/c⌉ steps; each segment reversed whole.
class UniformSchedule {
 public:
  UniformSchedule(std::int64_t steps, int slots);
  Action next();
  std::int64_t advances() const { return advances_; }
  int slots_used() const { return static_cast<int>(starts_.size()); }
  std::int64_t segment() const { return stride_; }  ///< steps per segment

 private:
  std::int64_t steps_ = 0, stride_ = 1, capo_ = 0, advances_ = 0;
  std::vector<std::int64_t> starts_;  // segment starts, slot k = starts_[k]
  int phase_ = 0;                     // 0: forward, 1: restore next, 2: reverse next, 3: done
  int segment_ = 0;                   // the segment being reversed
  int slots_used_now_ = 0;            // forward: the segment whose start is current
  bool stored_ = false;               // forward: its start is stored
};

/// For a chain whose length is not known while it runs (a stream). The forward sweep stores
/// states as it goes; when the chain ends, each stored segment is reversed with revolve using
/// the slots the later segments freed (segment i from the start gets c − i).
///
/// Optimal up to β(c, 2) = (c+1)(c+2)/2 steps: whatever length the chain turns out to have, it
/// takes exactly revolve's advances for that length (the tests check every length). The
/// positions follow the structure of the optimal repetition-2 schedules (Stumm & Walther 2010):
/// stored segments of at most c+1, c, ..., 2 steps from the start; the states 0..c−1 are stored,
/// then every step moves the checkpoint after the last settled one to the current step, until
/// its segment has its full length and it settles. Past β(c, 2) no online placement can match
/// revolve for every length. The fallback is a-revolve's rule (Hinze & Sternberg 2005): before
/// each step, the current state replaces the checkpoint whose removal lowers the predicted
/// reversal cost (revolve's advances per segment) the most, if any does. The report shows the
/// price: revolve's advances for the final length against the actual ones.
class OnlineSchedule {
 public:
  explicit OnlineSchedule(int slots);
  /// The next action. In the forward sweep `last` says whether the step at the current
  /// position() is the chain's last (then the reversal starts); afterwards it is ignored.
  Action next(bool last);
  std::int64_t position() const { return capo_; }
  std::int64_t advances() const { return advances_; }
  int slots_used() const { return used_; }
  /// Steps the forward sweep can take before the fallback: β(c, 2) = (c+1)(c+2)/2.
  std::int64_t optimal_range() const;

 private:
  void store_for_advance();  // forward: maybe store capo_, before advancing from it
  Action next_reversal();

  struct Stored {
    std::int64_t pos;
    int slot;
  };
  int snaps_;
  std::vector<Stored> stored_;  // by position
  std::vector<int> free_;       // slots not holding a position
  std::int64_t capo_ = 0, advances_ = 0;
  int settled_ = 0;  // stored_[0..settled_] are in their final place (repetition 2)
  int used_ = 0;
  bool pending_advance_ = false;  // a takeshot was returned; the advance comes next
  // Reversal: the segment being reversed (an index into stored_) and revolve on it.
  bool reversing_ = false;
  int segment_ = -1;
  std::int64_t end_ = 0;  // one past the segment's last step
  std::vector<int> segment_slots_;
  std::optional<Revolve> inner_;
};

/// The whole trace of a schedule, for tests and `--print-schedule` style output.
template <class S>
std::vector<Action> trace(S schedule) {
  std::vector<Action> out;
  for (Action a = schedule.next();; a = schedule.next()) {
    out.push_back(a);
    if (a.kind == ActionKind::terminate) return out;
  }
}

}  // namespace rwd::checkpointing
