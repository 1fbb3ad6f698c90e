// Linear and Embedding: the layers around a recurrent core.
#pragma once

#include <cmath>
#include <rewind/autograd/functional.hpp>
#include <rewind/layers/init.hpp>
#include <rewind/layers/module.hpp>
#include <span>
#include <string>
#include <vector>

namespace rwd::layers {

/// y = x·Wᵀ + b, with W in PyTorch's out×in layout (`weight`, `bias`).
/// Initialised as PyTorch does: W and b from U(-1/√in, 1/√in).
template <class T>
class Linear {
 public:
  struct Options {
    Index in = 0;
    Index out = 0;
    bool bias = true;
    std::string prefix;  ///< prepended to the parameter names ("head." gives "head.weight")
  };

  Linear(const Options& o, Rng& rng);

  /// x is batch×in; returns batch×out.
  Var<T> operator()(Tape<T>& tape, const Var<T>& x);

  std::vector<Parameter<T>*> named_parameters();
  Index in_features() const { return options_.in; }
  Index out_features() const { return options_.out; }

  Parameter<T> weight;
  Parameter<T> bias;  ///< empty when Options::bias is false

 private:
  Options options_;
};

/// y[r] = W[ids[r]]: a table of `num` rows of size `dim` (`weight`), initialised N(0, 1).
template <class T>
class Embedding {
 public:
  struct Options {
    Index num = 0;
    Index dim = 0;
    std::string prefix;
  };

  Embedding(const Options& o, Rng& rng);

  /// One row per id: ids.size()×dim. Ids out of range throw ShapeError.
  Var<T> operator()(Tape<T>& tape, std::span<const std::int32_t> ids);

  std::vector<Parameter<T>*> named_parameters() { return {&weight}; }

  Parameter<T> weight;
};

extern template class Linear<float>;
extern template class Linear<double>;
extern template class Embedding<float>;
extern template class Embedding<double>;

}  // namespace rwd::layers
