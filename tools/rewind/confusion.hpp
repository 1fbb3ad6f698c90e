// A classifier's confusion matrix over a data set: accuracy, per-class accuracy, a text table,
// and the matrix as CSV and as an SVG picture.
#pragma once

#include <cstdint>
#include <rewind/rewind.hpp>
#include <span>
#include <string>
#include <vector>

namespace rwd::cli {

class Confusion {
 public:
  explicit Confusion(std::vector<std::string> classes);
  /// Counts each row's argmax (ties: the lowest class) against its label.
  void add(const ConstMap<float>& logits, std::span<const std::int32_t> labels);
  void add(const Matrix<float>& logits, std::span<const std::int32_t> labels) {
    add(ConstMap<float>(logits.data(), logits.rows(), logits.cols()), labels);
  }
  long count(Index truth, Index predicted) const { return counts_(truth, predicted); }
  long total() const { return counts_.sum(); }
  double accuracy() const;
  /// Right predictions among the examples of class k (-1 when it has none).
  double class_accuracy(Index k) const;
  /// The matrix with a row per true class and its accuracy, for a terminal.
  std::string table() const;
  /// `stem`.csv (true class, then a count per predicted class, then the class's accuracy) and
  /// `stem`.svg (rows normalised to the class's examples, darker = more). FileError when a file
  /// cannot be written.
  void write(const std::string& stem) const;

 private:
  std::vector<std::string> classes_;
  Eigen::Matrix<long, Eigen::Dynamic, Eigen::Dynamic> counts_;
};

}  // namespace rwd::cli
