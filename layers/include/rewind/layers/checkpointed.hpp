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

#include <functional>
#include <optional>
#include <rewind/autograd/tape.hpp>
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
}  // namespace detail

/// Backpropagation through `steps` steps of `unit` from the state `initial` (one matrix per
/// state tensor): returns Σ_t loss_t and dL/ds_0, and adds every parameter's gradient into
/// Parameter::grad, as backward does. Plain BPTT unless options ask for checkpoints or a memory
/// budget (see the file comment); the results are the same bits either way. With checkpoints,
/// `tape` is used as scratch and cleared. Throws ShapeError when `initial` or a step's state
/// does not match unit.state_shapes, UsageError for a budget below the minimum.
template <class T>
BpttResult<T> bptt(Tape<T>& tape, Index steps, std::vector<Matrix<T>> initial,
                   const StepUnit<T>& unit, const BackpropOptions<T>& options = {});

extern template BpttResult<float> bptt(Tape<float>&, Index, std::vector<Matrix<float>>,
                                       const StepUnit<float>&, const BackpropOptions<float>&);
extern template BpttResult<double> bptt(Tape<double>&, Index, std::vector<Matrix<double>>,
                                        const StepUnit<double>&, const BackpropOptions<double>&);

}  // namespace rwd::layers
