// Sentiment classification the way it is taught with Keras (Embedding -> SimpleRNN -> Dense,
// binary cross-entropy, RMSprop 1e-3, batch 32, 10 epochs, sequences of 500 tokens, validation
// split, held-out test set), on a corpus generated here from a seed (no downloads), in three
// variants: the last state of a simple RNN, all its states mean-pooled (return_sequences=True),
// and the last state of an LSTM.
//
// The corpus: a vocabulary of 10000 ids (0 pads; 100 positive words, 100 negative words, the
// rest neutral, drawn with Zipf-like frequencies). A review has 40 to 160 tokens; its opinion is in
// its first 20 tokens, the rest is neutral filler, so the words that decide the label lie 20 to 160
// steps before the end. Reviews are padded to 500 with id 0 and their lengths are respected (packed
// semantics: the last state is each review's own).
//
// Usage: sentiment [--epochs N] [--train N] [--test N] [--quick]
#include <cmath>
#include <cstring>
#include <iostream>
#include <rewind/rewind.hpp>

using namespace rwd;
using layers::Rng;

namespace {

constexpr Index kVocab = 10000, kMaxLen = 500, kEmbed = 32, kHidden = 32, kBatch = 32;

struct Review {
  std::vector<std::int32_t> ids;  // padded to kMaxLen
  std::int32_t length = 0;
  float label = 0;
};

std::vector<Review> corpus(std::size_t n, Rng& rng) {
  std::uniform_int_distribution<std::int32_t> length(40, 160), positive(1, 100), negative(101, 200);
  std::bernoulli_distribution coin(0.5), opinion(0.5), agrees(0.8);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<Review> out(n);
  for (Review& r : out) {
    r.label = coin(rng) ? 1.0f : 0.0f;
    r.length = length(rng);
    r.ids.assign(kMaxLen, 0);
    for (std::int32_t t = 0; t < r.length; ++t) {
      // Filler follows a Zipf-like law, as words in text do: a few hundred ids make most of it.
      std::int32_t id = 201 + static_cast<std::int32_t>(static_cast<double>(kVocab - 202) *
                                                        std::pow(unit(rng), 4.0));
      if (t < 20 && opinion(rng))
        id = (agrees(rng) == (r.label > 0.5f)) ? positive(rng) : negative(rng);
      r.ids[static_cast<std::size_t>(t)] = id;
    }
  }
  return out;
}

enum class Variant { kRnnLast, kRnnPooled, kLstmLast };

struct Model {
  Variant variant;
  layers::Embedding<float> embedding;
  std::optional<layers::Rnn<float>> rnn;
  std::optional<layers::Lstm<float>> lstm;
  layers::Linear<float> dense;

  Model(Variant v, Rng& rng)
      : variant(v),
        embedding({kVocab, kEmbed, "embedding."}, rng),
        dense({.in = kHidden, .out = 1, .prefix = "dense."}, rng) {
    if (v == Variant::kLstmLast) {
      // Keras' LSTM starts with its forget gate open (unit_forget_bias=True): so does this one.
      lstm.emplace(
          layers::Lstm<float>::Options{.input = kEmbed, .hidden = kHidden, .forget_bias = 1.0},
          rng);
    } else {
      rnn.emplace(layers::Rnn<float>::Options{.input = kEmbed, .hidden = kHidden}, rng);
    }
  }

  std::vector<Parameter<float>*> parameters() {
    auto p = embedding.named_parameters();
    layers::append(p, rnn ? rnn->named_parameters() : lstm->named_parameters());
    layers::append(p, dense.named_parameters());
    return p;
  }

  layers::Summary summary() {
    layers::Summary s(variant == Variant::kLstmLast  ? "lstm_last_state"
                      : variant == Variant::kRnnLast ? "rnn_last_state"
                                                     : "rnn_all_states_pooled",
                      {layers::kNone, kMaxLen});
    s.add("embedding", embedding);
    if (variant == Variant::kLstmLast) {
      s.add("lstm", *lstm, false);
    } else {
      s.add("simple_rnn", *rnn, variant == Variant::kRnnPooled, "Rnn");
      if (variant == Variant::kRnnPooled)
        s.add("average_pooling", "MeanOverTime", {layers::kNone, kHidden});
    }
    s.add("dense", dense);
    s.add("sigmoid", "Activation", {layers::kNone, 1});
    return s;
  }

  // Logits for a batch of reviews (trimmed to the batch's longest review: steps past every
  // review's end would change nothing).
  Var<float> logits(Tape<float>& tape, const std::vector<const Review*>& batch) {
    std::int32_t longest = 0;
    std::vector<std::int32_t> lengths;
    for (const Review* r : batch) {
      lengths.push_back(r->length);
      longest = std::max(longest, r->length);
    }
    std::vector<Var<float>> xs;
    std::vector<std::int32_t> ids(batch.size());
    for (std::int32_t t = 0; t < longest; ++t) {
      for (std::size_t b = 0; b < batch.size(); ++b)
        ids[b] = batch[b]->ids[static_cast<std::size_t>(t)];
      xs.push_back(embedding(tape, ids));
    }
    if (variant == Variant::kLstmLast)
      return dense(tape, (*lstm)(tape, xs, {.lengths = lengths}).final_states[0][0]);
    const auto out = (*rnn)(tape, xs, {.lengths = lengths});
    if (variant == Variant::kRnnLast) return dense(tape, out.final_states[0][0]);
    // return_sequences=True: padded steps output zeros, so the mean over a review's own steps
    // is the sum over all steps divided by its length.
    Var<float> total = out.outputs[0];
    for (std::size_t t = 1; t < out.outputs.size(); ++t) total = total + out.outputs[t];
    Matrix<float> inv(static_cast<Index>(batch.size()), kHidden);
    for (std::size_t b = 0; b < batch.size(); ++b)
      inv.row(static_cast<Index>(b)).setConstant(1.0f / static_cast<float>(lengths[b]));
    return dense(tape, total * tape.constant(inv));
  }
};

struct Score {
  double loss = 0, accuracy = 0;
};

Score evaluate(Model& m, const std::vector<Review>& data, std::size_t begin, std::size_t end) {
  Tape<float> tape;
  Score s;
  for (std::size_t at = begin; at < end; at += kBatch) {
    std::vector<const Review*> batch;
    Matrix<float> y(static_cast<Index>(std::min<std::size_t>(kBatch, end - at)), 1);
    for (std::size_t k = at; k < std::min(end, at + kBatch); ++k) {
      batch.push_back(&data[k]);
      y(static_cast<Index>(k - at), 0) = data[k].label;
    }
    tape.clear();
    const Var<float> z = m.logits(tape, batch);
    s.loss += bce_with_logits(z, tape.constant(y)).item() * static_cast<double>(batch.size());
    for (Index b = 0; b < y.rows(); ++b)
      s.accuracy += ((z.value()(b, 0) > 0) == (y(b, 0) > 0.5f)) ? 1 : 0;
  }
  s.loss /= static_cast<double>(end - begin);
  s.accuracy /= static_cast<double>(end - begin);
  return s;
}

double run(Variant v, const std::vector<Review>& train, const std::vector<Review>& test, int epochs,
           std::uint64_t seed) {
  Rng rng(seed);
  Model m(v, rng);
  std::cout << m.summary() << "\n";
  const auto params = m.parameters();
  optim::RmsProp<float> opt(params, {.lr = 0.001});
  const std::size_t validation = train.size() / 5,
                    fit = train.size() - validation;  // validation_split=0.2
  std::vector<std::size_t> order(fit);
  std::iota(order.begin(), order.end(), 0);
  Tape<float> tape;
  for (int epoch = 1; epoch <= epochs; ++epoch) {
    std::shuffle(order.begin(), order.end(), rng);
    Score s;
    for (std::size_t at = 0; at < fit; at += kBatch) {
      std::vector<const Review*> batch;
      Matrix<float> y(static_cast<Index>(std::min<std::size_t>(kBatch, fit - at)), 1);
      for (std::size_t k = at; k < std::min(fit, at + kBatch); ++k) {
        batch.push_back(&train[order[k]]);
        y(static_cast<Index>(k - at), 0) = train[order[k]].label;
      }
      tape.clear();
      const Var<float> z = m.logits(tape, batch);
      const Var<float> loss = bce_with_logits(z, tape.constant(y));
      opt.zero_grad();
      tape.backward(loss);
      opt.step();
      s.loss += loss.item() * static_cast<double>(batch.size());
      for (Index b = 0; b < y.rows(); ++b)
        s.accuracy += ((z.value()(b, 0) > 0) == (y(b, 0) > 0.5f)) ? 1 : 0;
    }
    const Score val = evaluate(m, train, fit, train.size());
    std::cout << fmt::format(
        "epoch {:>2}/{}  loss {:.4f}  acc {:.4f}  val_loss {:.4f}  val_acc {:.4f}\n", epoch, epochs,
        s.loss / static_cast<double>(fit), s.accuracy / static_cast<double>(fit), val.loss,
        val.accuracy);
  }
  const Score t = evaluate(m, test, 0, test.size());
  std::cout << fmt::format("test: loss {:.4f}  accuracy {:.4f}\n\n", t.loss, t.accuracy);
  return t.accuracy;
}

}  // namespace

int main(int argc, char** argv) {
  int epochs = 10;
  std::size_t train_size = 20000, test_size = 1000;  // IMDB has 25000 reviews to train on
  for (int k = 1; k < argc; ++k) {
    if (!std::strcmp(argv[k], "--quick"))
      epochs = 1, train_size = 320, test_size = 128;
    else if (!std::strcmp(argv[k], "--epochs") && k + 1 < argc)
      epochs = std::atoi(argv[++k]);
    else if (!std::strcmp(argv[k], "--train") && k + 1 < argc)
      train_size = static_cast<std::size_t>(std::atol(argv[++k]));
    else if (!std::strcmp(argv[k], "--test") && k + 1 < argc)
      test_size = static_cast<std::size_t>(std::atol(argv[++k]));
    else {
      std::cerr << "usage: sentiment [--epochs N] [--train N] [--test N] [--quick]\n";
      return 2;
    }
  }
  if (epochs < 1 || train_size < 10 || test_size < 1) {
    std::cerr << "sentiment: --epochs must be >= 1, --train >= 10, --test >= 1\n";
    return 2;
  }
  Rng data(2024);
  const std::vector<Review> train = corpus(train_size, data), test = corpus(test_size, data);
  std::cout << "The simple RNN layer has 2112 parameters here and 2080 in Keras: 32x32 input "
               "weights + 32x32\n"
               "recurrent weights + biases; Keras keeps one bias vector (32), PyTorch and rewind "
               "keep two\n"
               "(b_ih and b_hh, 64), so weights move to and from PyTorch unchanged. Only their sum "
               "matters.\n\n";
  const double a = run(Variant::kRnnLast, train, test, epochs, 1);
  const double b = run(Variant::kRnnPooled, train, test, epochs, 1);
  const double c = run(Variant::kLstmLast, train, test, epochs, 1);
  std::cout << fmt::format(
      "test accuracy: simple RNN, last state {:.3f}; simple RNN, all states pooled {:.3f}; LSTM, "
      "last state {:.3f}\n",
      a, b, c);
}
