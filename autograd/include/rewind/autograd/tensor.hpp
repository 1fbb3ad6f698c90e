// Tensor aliases and shapes. The C++ namespace is `rwd`: `rewind` itself is taken by the C
// library function ::rewind(FILE*) from <stdio.h>, which a namespace may not share a name with.
//
// Tensor aliases and shapes. rewind's tensors are row-major Eigen matrices: rows are the batch,
// columns are features. Everything the tape records is a matrix; a scalar is 1x1.
#pragma once

#include <fmt/format.h>

#include <Eigen/Core>
#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>

namespace rwd {

using Index = Eigen::Index;

template <class T>
using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
/// Read-only view of a matrix stored on a tape (or anywhere else).
template <class T>
using ConstMap = Eigen::Map<const Matrix<T>>;
/// Writable view of a matrix stored on a tape.
template <class T>
using MutMap = Eigen::Map<Matrix<T>>;

/// Rows x columns of a tensor.
struct Shape {
  Index rows = 0;
  Index cols = 0;
  /// A parameter's name where the shape is a recorded parameter's (the tape sets it for an op's
  /// shape checks, so that an error says `rhs is w_f (4x3)`); not part of the shape: == ignores it.
  std::string_view name{};
  Index size() const { return rows * cols; }
  friend bool operator==(const Shape& a, const Shape& b) {
    return a.rows == b.rows && a.cols == b.cols;
  }
};

namespace detail {
/// dst = e, or dst += e when `add` (a gradient slot that already holds a contribution).
template <class Dst, class E>
void assign_or_add(Dst&& dst, bool add, const E& e) {
  if (add) {
    dst.noalias() += e;
  } else {
    dst.noalias() = e;
  }
}
/// out = e, or out += e when `add`, for an array expression e (elementwise rules).
template <class Out, class E>
void put(Out&& out, bool add, const E& e) {
  if (add) {
    out.array() += e;
  } else {
    out.array() = e;
  }
}
}  // namespace detail

/// "3x4", the form every error message uses.
inline std::string to_string(Shape s) {
  return s.name.empty() ? fmt::format("{}x{}", s.rows, s.cols)
                        : fmt::format("{} ({}x{})", s.name, s.rows, s.cols);
}
inline std::ostream& operator<<(std::ostream& out, Shape s) { return out << to_string(s); }

}  // namespace rwd

template <>
struct fmt::formatter<rwd::Shape> : fmt::formatter<std::string> {
  auto format(rwd::Shape s, format_context& ctx) const {
    return fmt::formatter<std::string>::format(rwd::to_string(s), ctx);
  }
};
