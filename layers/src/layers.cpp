// Explicit instantiations of the layers for float and double, so programs do not compile them.
#include <rewind/layers/layers.hpp>

namespace rwd::layers {

template <class T>
Linear<T>::Linear(const Options& o, Rng& rng) : options_(o) {
  if (o.in <= 0 || o.out <= 0) {
    throw UsageError(fmt::format("Linear: sizes must be positive, got in {} and out {}", o.in, o.out));
  }
  const double bound = 1.0 / std::sqrt(static_cast<double>(o.in));
  weight = Parameter<T>(o.prefix + "weight", uniform<T>(o.out, o.in, bound, rng));
  if (o.bias) bias = Parameter<T>(o.prefix + "bias", uniform<T>(1, o.out, bound, rng));
}

template <class T>
Var<T> Linear<T>::operator()(Tape<T>& tape, const Var<T>& x) {
  detail::check_input("Linear", x.shape(), options_.in);
  Var<T> y = matmul_nt(x, tape.param(weight));
  return options_.bias ? add_row_vector(y, tape.param(bias)) : y;
}

template <class T>
std::vector<Parameter<T>*> Linear<T>::named_parameters() {
  if (!options_.bias) return {&weight};
  return {&weight, &bias};
}

template <class T>
Embedding<T>::Embedding(const Options& o, Rng& rng) {
  if (o.num <= 0 || o.dim <= 0) {
    throw UsageError(fmt::format("Embedding: sizes must be positive, got num {} and dim {}", o.num, o.dim));
  }
  weight = Parameter<T>(o.prefix + "weight", normal<T>(o.num, o.dim, 0.0, 1.0, rng));
}

template <class T>
Var<T> Embedding<T>::operator()(Tape<T>& tape, std::span<const std::int32_t> ids) {
  return embedding(tape.param(weight), ids);
}

template class Linear<float>;
template class Linear<double>;
template class Embedding<float>;
template class Embedding<double>;
template class Sequence<RnnCell<float>>;
template class Sequence<RnnCell<double>>;
template class Sequence<LstmCell<float>>;
template class Sequence<LstmCell<double>>;
template class Sequence<GruCell<float>>;
template class Sequence<GruCell<double>>;

}  // namespace rwd::layers
