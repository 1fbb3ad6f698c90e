// Parameter: a named tensor that outlives tapes. Layers own parameters, tapes record them with
// `tape.param(p)` and, after `backward`, add the leaf's gradient into `p.grad`; optimizers read
// `grad` and update `value`. It lives in autograd (not layers) because it is the one type the
// tape and the optimizers share; layers only create and name parameters.
#pragma once

#include <cstdint>
#include <string>

#include "rewind/autograd/tensor.hpp"

namespace rwd {

template <class T>
struct Parameter {
  std::string name;
  Matrix<T> value;
  /// Accumulated gradient: same shape as `value` once a backward has reached it, empty before.
  Matrix<T> grad;
  /// Second order. `tangent` is this parameter's part of the direction v of a tangent sweep
  /// (Tape::jvp, Tape::hvp); empty means zero. `grad_tangent` accumulates, like `grad`, the
  /// derivative of the gradient along the tangents: (H·v) for this parameter after Tape::hvp.
  Matrix<T> tangent;
  Matrix<T> grad_tangent;
  /// Counts the changes of `value` made through the library: an optimizer's step,
  /// load_parameters, loading a training checkpoint, DataParallel's broadcast. A tape refuses to
  /// go on with a recording that read an older value (Tape::param, Tape::backward: "call
  /// tape.clear() before recording the next step"). After changing `value` by hand between
  /// recordings, call mark_changed() so that such a mistake is caught too.
  std::uint64_t version = 0;

  Parameter() = default;
  Parameter(std::string n, Matrix<T> v) : name(std::move(n)), value(std::move(v)) {}

  /// Sets the gradient to zero (keeps its storage), and grad_tangent if it has one.
  void zero_grad() {
    grad.setZero(value.rows(), value.cols());
    if (grad_tangent.size() != 0) grad_tangent.setZero();
  }
  /// Records that `value` changed (see `version`).
  void mark_changed() { ++version; }
  Shape shape() const { return {value.rows(), value.cols()}; }
  Index size() const { return value.size(); }
};

}  // namespace rwd
