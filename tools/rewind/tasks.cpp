#include "tasks.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <fstream>
#include <map>
#include <numbers>
#include <numeric>

namespace rwd::cli {
namespace {

Matrix<float> one_hot_rows(const std::vector<std::int32_t>& ids, Index classes) {
  Matrix<float> m = Matrix<float>::Zero(static_cast<Index>(ids.size()), classes);
  for (std::size_t r = 0; r < ids.size(); ++r) m(static_cast<Index>(r), ids[r]) = 1.0f;
  return m;
}

// The adding problem (Hochreiter & Schmidhuber 1997): each step carries a value in [0, 1) and
// a marker; exactly two steps are marked, one in each half; the target is the sum of the two
// marked values. Predicting the mean, 1, scores the variance of that sum: 2/12 = 0.167.
class Adding : public Task {
 public:
  std::string name() const override { return "adding"; }
  Index input_size() const override { return 2; }
  Index output_size() const override { return 1; }
  LossKind loss() const override { return LossKind::kMseLast; }
  double baseline(Index) const override { return 1.0 / 6.0; }
  Batch sample(Index batch, Index steps, Rng& rng) const override {
    if (steps < 2) throw UsageError("adding: --seq-len must be at least 2");
    Batch b;
    b.xs.assign(static_cast<std::size_t>(steps), Matrix<float>::Zero(batch, 2));
    b.target.resize(batch, 1);
    std::uniform_real_distribution<float> value(0.0f, 1.0f);
    std::uniform_int_distribution<Index> first(0, steps / 2 - 1), second(steps / 2, steps - 1);
    for (Index r = 0; r < batch; ++r) {
      for (auto& x : b.xs) x(r, 0) = value(rng);
      const Index i = first(rng), j = second(rng);
      b.xs[static_cast<std::size_t>(i)](r, 1) = 1;
      b.xs[static_cast<std::size_t>(j)](r, 1) = 1;
      b.target(r, 0) =
          b.xs[static_cast<std::size_t>(i)](r, 0) + b.xs[static_cast<std::size_t>(j)](r, 0);
    }
    return b;
  }
};

// The copy (memory) task: 10 symbols from an alphabet of 8, blanks, a delimiter, then the 10
// symbols must be reproduced. Classes: 0 blank, 1..8 symbols; inputs add 9, the delimiter.
// A model without memory at best knows when to answer and guesses: 10·ln 8 / T nats per step.
// Selective copy (Gu & Dao 2023, Mamba's §4.1.1; Feng et al. 2024): the 10 symbols stand at
// random places among blanks before the delimiter, a new draw for each sequence, so a model
// must choose what to keep by content, not by time (a fixed linear recurrence cannot).
class Copy : public Task {
 public:
  static constexpr Index kLength = 10, kSymbols = 8;
  explicit Copy(bool selective = false) : selective_(selective) {}
  std::string name() const override { return selective_ ? "selective-copy" : "copy"; }
  Index input_size() const override { return kSymbols + 2; }
  Index output_size() const override { return kSymbols + 1; }
  LossKind loss() const override { return LossKind::kCrossEntropyEvery; }
  double baseline(Index steps) const override {
    return static_cast<double>(kLength) * std::log(static_cast<double>(kSymbols)) /
           static_cast<double>(std::max(steps, 2 * kLength + 2));
  }
  Batch sample(Index batch, Index steps, Rng& rng) const override {
    steps = std::max(steps, 2 * kLength + 2);
    Batch b;
    std::vector<std::vector<std::int32_t>> in(static_cast<std::size_t>(steps)),
        out(static_cast<std::size_t>(steps));
    std::uniform_int_distribution<std::int32_t> symbol(1, static_cast<std::int32_t>(kSymbols));
    const Index before = steps - kLength - 1;  // the steps before the delimiter
    std::vector<Index> at(static_cast<std::size_t>(before));
    for (Index r = 0; r < batch; ++r) {
      std::array<std::int32_t, kLength> s{};
      for (auto& v : s) v = symbol(rng);
      // Where the symbols stand: the first kLength steps, or (selective) kLength of the steps
      // before the delimiter, in order, drawn for this sequence.
      std::iota(at.begin(), at.end(), Index{0});
      if (selective_) {
        for (Index k = 0; k < kLength; ++k) {  // a partial Fisher-Yates shuffle
          std::uniform_int_distribution<Index> pick(k, before - 1);
          std::swap(at[static_cast<std::size_t>(k)], at[static_cast<std::size_t>(pick(rng))]);
        }
        std::sort(at.begin(), at.begin() + kLength);
      }
      std::vector<std::int32_t> place(static_cast<std::size_t>(before), 0);
      for (Index k = 0; k < kLength; ++k)
        place[static_cast<std::size_t>(at[static_cast<std::size_t>(k)])] =
            s[static_cast<std::size_t>(k)];
      for (Index t = 0; t < steps; ++t) {
        std::int32_t x = 0, y = 0;
        if (t < before) x = place[static_cast<std::size_t>(t)];
        if (t == steps - kLength - 1) x = static_cast<std::int32_t>(kSymbols + 1);
        if (t >= steps - kLength) y = s[static_cast<std::size_t>(t - (steps - kLength))];
        in[static_cast<std::size_t>(t)].push_back(x);
        out[static_cast<std::size_t>(t)].push_back(y);
      }
    }
    for (Index t = 0; t < steps; ++t) {
      b.xs.push_back(one_hot_rows(in[static_cast<std::size_t>(t)], input_size()));
      for (Index r = 0; r < batch; ++r) {
        b.classes.push_back(out[static_cast<std::size_t>(t)][static_cast<std::size_t>(r)]);
        if (t >= steps - kLength) {
          b.scored_rows.push_back(static_cast<std::int32_t>(t * batch + r));
          b.acceptable.push_back(1u
                                 << out[static_cast<std::size_t>(t)][static_cast<std::size_t>(r)]);
        }
      }
    }
    return b;
  }

 private:
  bool selective_;
};

// The embedded Reber grammar (Hochreiter & Schmidhuber 1997): B, then T or P, then a Reber
// string, then the same T or P again, then E. The model predicts the next symbol; a prediction
// counts as right when the grammar allows it, and the symbol before the final E can only be
// predicted by remembering the second one. Sequences have their own lengths.
class Reber : public Task {
 public:
  enum : std::int32_t { B, T, P, S, X, V, E, kCount };
  std::string name() const override { return "reber"; }
  Index input_size() const override { return kCount; }
  Index output_size() const override { return kCount; }
  LossKind loss() const override { return LossKind::kCrossEntropyEvery; }
  double baseline(Index) const override { return std::log(static_cast<double>(kCount)); }
  Batch sample(Index batch, Index, Rng& rng) const override {
    std::vector<std::vector<std::int32_t>> strings;
    std::vector<std::vector<std::uint32_t>> allowed;  // allowed next symbols after each position
    Index longest = 0;
    for (Index r = 0; r < batch; ++r) {
      std::vector<std::int32_t> s;
      std::vector<std::uint32_t> a;
      generate(rng, s, a);
      longest = std::max(longest, static_cast<Index>(s.size()) - 1);
      strings.push_back(std::move(s));
      allowed.push_back(std::move(a));
    }
    Batch b;
    for (Index t = 0; t < longest; ++t) {
      std::vector<std::int32_t> in;
      for (Index r = 0; r < batch; ++r) {
        const auto& s = strings[static_cast<std::size_t>(r)];
        const bool valid = t + 1 < static_cast<Index>(s.size());
        in.push_back(valid ? s[static_cast<std::size_t>(t)] : 0);
        b.classes.push_back(valid ? s[static_cast<std::size_t>(t + 1)] : -1);
        if (valid) {
          b.scored_rows.push_back(static_cast<std::int32_t>(t * batch + r));
          b.acceptable.push_back(allowed[static_cast<std::size_t>(r)][static_cast<std::size_t>(t)]);
        }
      }
      b.xs.push_back(one_hot_rows(in, kCount));
      if (t == 0) {
        for (Index r = 0; r < batch; ++r) b.xs[0](r, 0) = 1;  // every string starts with B
      }
    }
    for (const auto& s : strings) b.lengths.push_back(static_cast<std::int32_t>(s.size()) - 1);
    return b;
  }

 private:
  static std::uint32_t bit(std::int32_t s) { return 1u << s; }
  // Appends a Reber string (B ... E) and, per symbol, the set of symbols allowed after it.
  static void inner(Rng& rng, std::vector<std::int32_t>& s, std::vector<std::uint32_t>& a) {
    // node -> two (symbol, next node) choices; node 5 ends with E.
    static constexpr std::array<std::array<std::pair<std::int32_t, int>, 2>, 5> graph{
        {{{{T, 1}, {P, 2}}},
         {{{S, 1}, {X, 3}}},
         {{{T, 2}, {V, 4}}},
         {{{X, 2}, {S, 5}}},
         {{{P, 3}, {V, 5}}}}};
    std::bernoulli_distribution coin(0.5);
    s.push_back(B);
    a.push_back(bit(T) | bit(P));
    for (int node = 0; node != 5;) {
      const auto& [sym, next] = graph[static_cast<std::size_t>(node)][coin(rng) ? 1 : 0];
      s.push_back(sym);
      node = next;
      a.push_back(node == 5 ? bit(E)
                            : bit(graph[static_cast<std::size_t>(node)][0].first) |
                                  bit(graph[static_cast<std::size_t>(node)][1].first));
    }
    s.push_back(E);
  }
  static void generate(Rng& rng, std::vector<std::int32_t>& s, std::vector<std::uint32_t>& a) {
    std::bernoulli_distribution coin(0.5);
    const std::int32_t outer = coin(rng) ? T : P;
    s = {B, outer};
    a = {bit(T) | bit(P), bit(B)};
    inner(rng, s, a);
    a.push_back(bit(outer));  // after the inner E: only the remembered symbol
    s.push_back(outer);
    a.push_back(bit(E));
    s.push_back(E);
    // `a` has one entry per symbol but the last; it describes what may follow each.
    a.resize(s.size() - 1);
  }
};

// Predicting the next value of a sine wave of random frequency and phase. Predicting 0 scores
// the wave's mean square, 0.5.
class Sine : public Task {
 public:
  std::string name() const override { return "sine"; }
  Index input_size() const override { return 1; }
  Index output_size() const override { return 1; }
  LossKind loss() const override { return LossKind::kMseEvery; }
  double baseline(Index) const override { return 0.5; }
  Batch sample(Index batch, Index steps, Rng& rng) const override {
    Batch b;
    std::uniform_real_distribution<double> freq(0.1, 0.5), phase(0, 2 * std::numbers::pi);
    b.xs.assign(static_cast<std::size_t>(steps), Matrix<float>(batch, 1));
    b.target.resize(steps * batch, 1);
    for (Index r = 0; r < batch; ++r) {
      const double w = freq(rng), p = phase(rng);
      for (Index t = 0; t < steps; ++t) {
        b.xs[static_cast<std::size_t>(t)](r, 0) =
            static_cast<float>(std::sin(w * static_cast<double>(t) + p));
        b.target(t * batch + r, 0) =
            static_cast<float>(std::sin(w * static_cast<double>(t + 1) + p));
      }
    }
    return b;
  }
};

// Character-level language modelling on a text file: predict each next byte. The baseline is
// the unigram entropy of the text, what a model that knows only character frequencies scores.
class Text : public Task {
 public:
  explicit Text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw FileError(fmt::format("text: cannot open '{}'", path));
    text_.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (text_.size() < 3)
      throw FileError(
          fmt::format("text: '{}' has {} characters, too few to learn from", path, text_.size()));
    std::map<unsigned char, std::size_t> counts;
    for (char c : text_) ++counts[static_cast<unsigned char>(c)];
    for (const auto& [c, n] : counts) {
      index_[c] = static_cast<std::int32_t>(alphabet_.size());
      alphabet_.push_back(static_cast<char>(c));
      const double p = static_cast<double>(n) / static_cast<double>(text_.size());
      entropy_ -= p * std::log(p);
    }
  }
  std::string name() const override { return "text"; }
  Index input_size() const override { return static_cast<Index>(alphabet_.size()); }
  Index output_size() const override { return static_cast<Index>(alphabet_.size()); }
  LossKind loss() const override { return LossKind::kCrossEntropyEvery; }
  bool embeds() const override { return true; }
  double baseline(Index) const override { return entropy_; }
  std::string decode(std::int32_t id) const override {
    return std::string(1, alphabet_[static_cast<std::size_t>(id)]);
  }
  std::int32_t encode(char c) const override { return index_.at(static_cast<unsigned char>(c)); }
  Batch sample(Index batch, Index steps, Rng& rng) const override {
    steps = std::min<Index>(steps, static_cast<Index>(text_.size()) - 1);
    std::uniform_int_distribution<std::size_t> start(
        0, text_.size() - static_cast<std::size_t>(steps) - 1);
    Batch b;
    b.ids.resize(static_cast<std::size_t>(steps * batch));
    b.classes.resize(static_cast<std::size_t>(steps * batch));
    for (Index r = 0; r < batch; ++r) {
      const std::size_t s = start(rng);
      for (Index t = 0; t < steps; ++t) {
        const auto row = static_cast<std::size_t>(t * batch + r);
        b.ids[row] = encode(text_[s + static_cast<std::size_t>(t)]);
        b.classes[row] = encode(text_[s + static_cast<std::size_t>(t) + 1]);
      }
    }
    b.xs.resize(static_cast<std::size_t>(steps));  // inputs come from ids
    return b;
  }

 private:
  std::string text_;
  std::vector<char> alphabet_;
  std::map<unsigned char, std::int32_t> index_;
  double entropy_ = 0;
};

// Fashion-MNIST (Debian's dataset-fashion-mnist) as sequence classification: an image read row
// by row, pixel by pixel or in a fixed pixel permutation, its class predicted from the last
// step. The training file's 60 000 images are split by the seed into training and validation;
// the test file's 10 000 are the test part.
class Fashion : public DataTask {
 public:
  Fashion(layers::ImageView view, const DataOptions& o)
      : data_(layers::load_fashion_mnist(o.dir.empty() ? layers::kFashionMnistDir : o.dir)),
        view_(view, data_.train.rows, data_.train.cols, o.seed) {
    // Inputs standardised with the training file's pixel mean and std (0.2860, 0.3530), as
    // torchvision's Normalize is used with them: one epoch of a GRU on 2 000 images went from
    // 0.700 to 0.728 test accuracy with them (PyTorch: 0.585 to 0.670).
    const auto [mean, sd] = layers::pixel_moments(data_.train);
    view_.standardize(mean, sd);
    if (o.validation < 0 || o.validation >= data_.train.size())
      throw UsageError(
          fmt::format("--validation {}: it must leave some of the {} training images "
                      "to train on",
                      o.validation, data_.train.size()));
    layers::Split split = layers::split_indices(data_.train.size(), o.validation, o.seed);
    train_ = std::move(split.train);
    validation_ = std::move(split.validation);
    if (o.subset < 0 || o.subset > static_cast<Index>(train_.size()))
      throw UsageError(
          fmt::format("--subset {}: the training part holds {} images", o.subset, train_.size()));
    if (o.subset > 0) {
      // A seeded choice of N training images, not the first N of the file.
      const std::array<std::uint64_t, 2> words{o.seed, 0x737562736574ull};  // "subset"
      const std::vector<Index> pick = layers::permutation(static_cast<Index>(train_.size()), words);
      std::vector<Index> kept;
      for (Index k = 0; k < o.subset; ++k)
        kept.push_back(train_[static_cast<std::size_t>(pick[k])]);
      std::sort(kept.begin(), kept.end());
      train_ = std::move(kept);
    }
    for (const std::string& c : layers::fashion_mnist_classes()) names_.push_back(c);
  }
  std::string name() const override {
    switch (view_.view()) {
      case layers::ImageView::rows:
        return "fashion-rows";
      case layers::ImageView::pixels:
        return "fashion-pixels";
      case layers::ImageView::permuted:
        return "fashion-permuted";
    }
    return "fashion";
  }
  Index input_size() const override { return view_.features(); }
  Index output_size() const override { return 10; }
  LossKind loss() const override { return LossKind::kCrossEntropyLast; }
  // Ten balanced classes: a model that ignores its input scores ln 10.
  double baseline(Index) const override { return std::log(10.0); }
  Index steps() const override { return view_.steps(); }
  Index size(Part part) const override {
    switch (part) {
      case Part::train:
        return static_cast<Index>(train_.size());
      case Part::validation:
        return static_cast<Index>(validation_.size());
      case Part::test:
        return data_.test.size();
    }
    return 0;
  }
  Batch sample(Index batch, Index, Rng& rng) const override {
    std::uniform_int_distribution<Index> pick(0, size(Part::train) - 1);
    std::vector<Index> which(static_cast<std::size_t>(batch));
    for (Index& i : which) i = pick(rng);
    return examples(Part::train, which);
  }
  Batch examples(Part part, std::span<const Index> which) const override {
    const layers::ImageSet& set = part == Part::test ? data_.test : data_.train;
    std::vector<Index> images(which.begin(), which.end());
    for (Index& i : images) {
      if (i < 0 || i >= size(part))
        throw UsageError(fmt::format("{}: example {} of the {} part, which holds {}", name(), i,
                                     part_name(part), size(part)));
      if (part != Part::test)
        i = (part == Part::train ? train_ : validation_)[static_cast<std::size_t>(i)];
    }
    Batch b;
    b.xs = view_.operator()<float>(set, images);
    for (Index i : images) b.classes.push_back(set.labels[static_cast<std::size_t>(i)]);
    return b;
  }
  const std::vector<std::string>& class_names() const override { return names_; }

 private:
  layers::FashionMnist data_;
  layers::SequenceView view_;
  std::vector<Index> train_, validation_;
  std::vector<std::string> names_;
};

}  // namespace

const char* part_name(DataTask::Part part) {
  switch (part) {
    case DataTask::Part::train:
      return "train";
    case DataTask::Part::validation:
      return "validation";
    case DataTask::Part::test:
      return "test";
  }
  return "?";
}

const std::vector<std::string>& task_names() {
  static const std::vector<std::string> names{"adding",       "copy",           "selective-copy",
                                              "reber",        "sine",           "text",
                                              "fashion-rows", "fashion-pixels", "fashion-permuted"};
  return names;
}

bool is_data_task(const std::string& name) {
  return name == "fashion-rows" || name == "fashion-pixels" || name == "fashion-permuted";
}

Batch shard(const Batch& b, Index rows, Index begin, Index count) {
  if (begin < 0 || count <= 0 || begin + count > rows)
    throw UsageError(
        fmt::format("shard: rows [{}, {}) of a batch of {}", begin, begin + count, rows));
  Batch s;
  const auto steps = static_cast<Index>(b.xs.size());
  for (const Matrix<float>& x : b.xs) s.xs.push_back(x.middleRows(begin, count));
  // Per (t, row) fields are stored at t·rows + row; a field of one value per row (the classes of
  // a classification task) is cut as one step.
  const auto per_step = [&](const auto& v, auto& out) {
    if (v.empty()) return;
    if (v.size() == static_cast<std::size_t>(rows)) {
      out.insert(out.end(), v.begin() + begin, v.begin() + begin + count);
      return;
    }
    for (Index t = 0; t < steps; ++t) {
      const auto from = v.begin() + t * rows + begin;
      out.insert(out.end(), from, from + count);
    }
  };
  per_step(b.ids, s.ids);
  per_step(b.classes, s.classes);
  if (b.target.rows() == rows) {
    s.target = b.target.middleRows(begin, count);
  } else if (b.target.rows() == steps * rows) {
    s.target.resize(steps * count, b.target.cols());
    for (Index t = 0; t < steps; ++t)
      s.target.middleRows(t * count, count) = b.target.middleRows(t * rows + begin, count);
  }
  if (!b.lengths.empty())
    s.lengths.assign(b.lengths.begin() + begin, b.lengths.begin() + begin + count);
  for (std::size_t k = 0; k < b.scored_rows.size(); ++k) {
    const Index t = b.scored_rows[k] / rows, r = b.scored_rows[k] % rows;
    if (r >= begin && r < begin + count) {
      s.scored_rows.push_back(static_cast<std::int32_t>(t * count + r - begin));
      s.acceptable.push_back(b.acceptable[k]);
    }
  }
  return s;
}

std::unique_ptr<Task> make_task(const std::string& name, const std::string& text_file,
                                const DataOptions& data) {
  if (name == "adding") return std::make_unique<Adding>();
  if (name == "copy") return std::make_unique<Copy>();
  if (name == "selective-copy") return std::make_unique<Copy>(true);
  if (name == "reber") return std::make_unique<Reber>();
  if (name == "sine") return std::make_unique<Sine>();
  if (name == "text") {
    if (text_file.empty()) throw UsageError("the text task needs --text FILE");
    return std::make_unique<Text>(text_file);
  }
  if (is_data_task(name)) {
    return std::make_unique<Fashion>(layers::image_view(name.substr(8)), data);
  }
  throw UsageError(fmt::format(
      "unknown task '{}' (expected adding, copy, selective-copy, reber, sine, text, fashion-rows, "
      "fashion-pixels or fashion-permuted)",
      name));
}

}  // namespace rwd::cli
