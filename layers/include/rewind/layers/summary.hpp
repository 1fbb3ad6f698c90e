// A table of a model's layers, like Keras' model.summary(): each layer's name, kind, output
// shape for a given input shape (None is the batch), and parameter count, then the totals.
//
//   layers::Summary s("sentiment", {kNone, 500});
//   s.add("embedding", embedding);            // (None, 500) -> (None, 500, 32)
//   s.add("simple_rnn", rnn, false);          // return_sequences = false -> (None, 32)
//   s.add("dense", linear);                   // (None, 1)
//   std::cout << s;
#pragma once

#include <ostream>
#include <rewind/layers/linear.hpp>
#include <rewind/layers/sequence.hpp>
#include <string>
#include <vector>

namespace rwd::layers {

inline constexpr Index kNone = -1;  ///< an unknown extent (the batch), printed "None"

class Summary {
 public:
  Summary(std::string model, std::vector<Index> input_shape)
      : model_(std::move(model)), shape_(std::move(input_shape)) {}

  /// Embedding: (..., T) -> (..., T, dim).
  template <class T>
  Summary& add(const std::string& name, Embedding<T>& layer) {
    std::vector<Index> out = shape_;
    out.push_back(layer.weight.value.cols());
    return row(name, "Embedding", out, parameter_count(layer.named_parameters()));
  }
  /// Linear: (..., in) -> (..., out). Throws ShapeError if the last extent is not `in`.
  template <class T>
  Summary& add(const std::string& name, Linear<T>& layer) {
    expect_last(name, layer.in_features());
    std::vector<Index> out = shape_;
    out.back() = layer.out_features();
    return row(name, "Linear", out, parameter_count(layer.named_parameters()));
  }
  /// A recurrent stack: (batch, T, in) -> (batch, T, dirs·hidden) with return_sequences,
  /// else (batch, dirs·hidden): the last state, as Keras.
  template <class C>
  Summary& add(const std::string& name, Sequence<C>& layer, bool return_sequences,
               std::string kind = "") {
    const Index width =
        layer.cell(layer.options().num_layers - 1).state_sizes()[0] * layer.directions();
    expect_last(name, layer.cell(0).input_size());
    std::vector<Index> out = shape_;
    out.back() = width;
    if (!return_sequences) out.erase(out.end() - 2);
    if (kind.empty())
      kind = fmt::format("{}x{}{}", layer.options().num_layers, kind_of<C>(),
                         layer.directions() == 2 ? " bidir" : "");
    return row(name, kind, out, parameter_count(layer.named_parameters()));
  }
  /// A layer without parameters, given its output shape (pooling, an activation).
  Summary& add(const std::string& name, const std::string& kind, std::vector<Index> output_shape) {
    return row(name, kind, std::move(output_shape), 0);
  }

  Index total_parameters() const { return total_; }
  const std::vector<Index>& output_shape() const { return shape_; }
  std::string str() const;
  friend std::ostream& operator<<(std::ostream& out, const Summary& s) { return out << s.str(); }

  static std::string shape_string(const std::vector<Index>& shape);

 private:
  struct Row {
    std::string name, kind, shape;
    Index params;
  };
  template <class C>
  static std::string kind_of() {
    if constexpr (std::is_same_v<C, LstmCell<typename C::Scalar>>)
      return "Lstm";
    else if constexpr (std::is_same_v<C, GruCell<typename C::Scalar>>)
      return "Gru";
    else if constexpr (std::is_same_v<C, RnnCell<typename C::Scalar>>)
      return "Rnn";
    else
      return "Sequence";
  }
  void expect_last(const std::string& name, Index features) const {
    if (shape_.empty() || shape_.back() != features) {
      throw ShapeError(
          fmt::format("Summary: layer '{}' takes {} features, but the previous output is {}", name,
                      features, shape_string(shape_)));
    }
  }
  Summary& row(const std::string& name, std::string kind, std::vector<Index> out, Index params) {
    rows_.push_back({name, std::move(kind), shape_string(out), params});
    total_ += params;
    shape_ = std::move(out);
    return *this;
  }

  std::string model_;
  std::vector<Index> shape_;
  std::vector<Row> rows_;
  Index total_ = 0;
};

}  // namespace rwd::layers
