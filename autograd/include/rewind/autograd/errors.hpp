// User errors. Both are thrown when an op is recorded (never deferred to backward) and do not
// depend on NDEBUG. Messages read `<op or layer>: <what is wrong>: <details>`.
#pragma once

#include <stdexcept>
#include <string>

namespace rwd {

/// Tensors of the wrong shape were given to an op or a layer.
class ShapeError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// The API was used in a way that cannot work: a stale handle, a handle from another tape,
/// backward on a non-scalar, a corrupt file.
class UsageError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

/// Anomaly mode found a NaN or Inf where an op produced a value or a gradient. The message names
/// the op, its scope (layer, time step, gate), its input shapes and their ranges.
class NumericalError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A file could not be read or written, or its contents are not what they claim (a truncated or
/// corrupt weight file). Nothing was changed when it is thrown.
class FileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// `<who> at <scope>: <rest>` from `<who>: <rest>`: where in the model a recording error
/// happened (`matmul_nt at layer1/fwd/t0/f: inner dimensions differ: ...`). Unchanged when the
/// scope is empty or the message already names one.
inline std::string with_scope(const std::string& message, const std::string& scope) {
  const auto colon = message.find(": ");
  // Not twice, and not into a located message (`file:line:column: ...`).
  if (scope.empty() || colon == std::string::npos ||
      message.substr(0, colon).find(" at ") != std::string::npos ||
      message.substr(0, colon).find(':') != std::string::npos) {
    return message;
  }
  return message.substr(0, colon) + " at " + scope + message.substr(colon);
}

}  // namespace rwd
