// Explicit instantiations of the layers for float and double, so programs do not compile them.
#include <Eigen/QR>
#include <rewind/layers/layers.hpp>
#include <rewind/layers/summary.hpp>

namespace rwd::layers {

template <class T>
Linear<T>::Linear(const Options& o, Rng& rng) : options_(o) {
  if (o.in <= 0 || o.out <= 0) {
    throw UsageError(
        fmt::format("Linear: sizes must be positive, got in {} and out {}", o.in, o.out));
  }
  const double bound = 1.0 / std::sqrt(static_cast<double>(o.in));
  weight = Parameter<T>(o.prefix + "weight", uniform<T>(o.out, o.in, bound, rng));
  if (o.bias) bias = Parameter<T>(o.prefix + "bias", uniform<T>(1, o.out, bound, rng));
}

template <class T>
Var<T> Linear<T>::operator()(Tape<T>& tape, const Var<T>& x) {
  detail::check_input("Linear", x.shape(), options_.in);
  const Var<T> w = tape.param(weight);  // recorded before the bias on every compiler
  return options_.bias ? affine(x, w, tape.param(bias)) : matmul_nt(x, w);
}

template <class T>
std::vector<Parameter<T>*> Linear<T>::named_parameters() {
  if (!options_.bias) return {&weight};
  return {&weight, &bias};
}

template <class T>
Embedding<T>::Embedding(const Options& o, Rng& rng) {
  if (o.num <= 0 || o.dim <= 0) {
    throw UsageError(
        fmt::format("Embedding: sizes must be positive, got num {} and dim {}", o.num, o.dim));
  }
  weight = Parameter<T>(o.prefix + "weight", normal<T>(o.num, o.dim, 0.0, 1.0, rng));
}

template <class T>
Var<T> Embedding<T>::operator()(Tape<T>& tape, std::span<const std::int32_t> ids) {
  return embedding(tape.param(weight), ids);
}

std::string Summary::shape_string(const std::vector<Index>& shape) {
  std::string s = "(";
  for (std::size_t k = 0; k < shape.size(); ++k) {
    s += (k ? ", " : "") + (shape[k] == kNone ? std::string("None") : std::to_string(shape[k]));
  }
  return s + (shape.size() == 1 ? ",)" : ")");
}

std::string Summary::str() const {
  // Thousands separators, as Keras prints them.
  const auto grouped = [](Index n) {
    std::string d = std::to_string(n), out;
    for (std::size_t k = 0; k < d.size(); ++k) {
      if (k > 0 && (d.size() - k) % 3 == 0) out += ',';
      out += d[k];
    }
    return out;
  };
  const std::string rule(72, '_'), double_rule(72, '=');
  std::string s = fmt::format("Model: \"{}\"\n{}\n {:<30}{:<26}{:>12}\n{}\n", model_, rule,
                              "Layer (type)", "Output Shape", "Param #", double_rule);
  for (std::size_t k = 0; k < rows_.size(); ++k) {
    const Row& r = rows_[k];
    s += fmt::format(" {:<30}{:<26}{:>12}\n", fmt::format("{} ({})", r.name, r.kind), r.shape,
                     grouped(r.params));
    if (k + 1 < rows_.size()) s += "\n";
  }
  s += fmt::format("{}\nTotal params: {}\nTrainable params: {}\nNon-trainable params: 0\n{}\n",
                   double_rule, grouped(total_), grouped(total_), rule);
  return s;
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

namespace rwd::layers {

namespace detail {
Eigen::MatrixXd thin_q(const Eigen::MatrixXd& a) {
  return Eigen::HouseholderQR<Eigen::MatrixXd>(a).householderQ() *
         Eigen::MatrixXd::Identity(a.rows(), a.cols());
}

Eigen::MatrixXd positive_qr(const Eigen::MatrixXd& a, Eigen::VectorXd* r_diagonal) {
  const Index k = a.cols();
  const Eigen::HouseholderQR<Eigen::MatrixXd> qr(a);
  Eigen::MatrixXd q = qr.householderQ() * Eigen::MatrixXd::Identity(a.rows(), k);
  const Eigen::VectorXd diagonal = qr.matrixQR().diagonal().head(k);
  for (Index j = 0; j < k; ++j) {
    if (diagonal[j] < 0) q.col(j) = -q.col(j);
  }
  if (r_diagonal != nullptr) *r_diagonal = diagonal.cwiseAbs();
  return q;
}

std::string format_bytes(double bytes) {
  if (bytes < 1024) return fmt::format("{:.0f} B", bytes);
  if (bytes < 1024.0 * 1024) return fmt::format("{:.1f} KiB", bytes / 1024);
  if (bytes < 1024.0 * 1024 * 1024) return fmt::format("{:.2f} MiB", bytes / (1024.0 * 1024));
  return fmt::format("{:.2f} GiB", bytes / (1024.0 * 1024 * 1024));
}
}  // namespace detail

std::string CheckpointReport::summary() const {
  if (schedule == "plain") {
    return fmt::format("plain BPTT: {} steps recorded, tape {}", steps,
                       detail::format_bytes(static_cast<double>(peak_tape_bytes)));
  }
  return fmt::format(
      "{}: {} steps, {} checkpoints ({} used, {} each), {:.3f} step evaluations per step "
      "(advances predicted {}, actual {}; {} steps recorded), tape {}, memory {}",
      schedule, steps, checkpoints, slots_used,
      detail::format_bytes(static_cast<double>(checkpoint_bytes)), overhead(), predicted_advances,
      advances, recorded_steps, detail::format_bytes(static_cast<double>(peak_tape_bytes)),
      detail::format_bytes(static_cast<double>(memory_bytes())));
}

}  // namespace rwd::layers
