// Inputs for the generated per-op tests. Every op in AllOps (leaves and the custom-op hook
// aside) is tested by the template test cases in ops_test.cpp; an op needs a specialisation of
// Sample here only when its valid inputs are unusual (attributes, domains, several shapes).
#pragma once

#include <functional>
#include <random>
#include <rewind/rewind.hpp>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

namespace rwd::test {

template <class T>
struct Case {
  std::string what;
  std::vector<Matrix<T>> inputs;
  std::function<Var<T>(std::span<const Var<T>>)> apply;
};

/// Values in ±[lo, hi], kept away from 0 (kinks of abs and relu) by lo.
template <class T>
Matrix<T> away_from_zero(Index rows, Index cols, std::mt19937_64& rng, double lo = 0.2,
                         double hi = 2.0) {
  std::uniform_real_distribution<double> mag(lo, hi);
  std::bernoulli_distribution sign(0.5);
  Matrix<T> m(rows, cols);
  for (Index i = 0; i < m.size(); ++i)
    m.data()[i] = static_cast<T>(sign(rng) ? mag(rng) : -mag(rng));
  return m;
}

template <class T>
Matrix<T> positive(Index rows, Index cols, std::mt19937_64& rng, double lo = 0.3, double hi = 2.0) {
  return away_from_zero<T>(rows, cols, rng, lo, hi).cwiseAbs();
}

/// Extreme inputs: magnitudes around 1000 of both signs.
template <class T>
Matrix<T> extreme(Index rows, Index cols, std::mt19937_64& rng) {
  return away_from_zero<T>(rows, cols, rng, 990, 1000);
}

template <class T>
Matrix<T> zero_one(Index rows, Index cols, std::mt19937_64& rng) {
  std::bernoulli_distribution b(0.5);
  Matrix<T> m(rows, cols);
  for (Index i = 0; i < m.size(); ++i) m.data()[i] = b(rng) ? T(1) : T(0);
  return m;
}

template <class T, class O>
std::function<Var<T>(std::span<const Var<T>>)> record_op(O op) {
  return [op](std::span<const Var<T>> x) { return x[0].tape().record(op, x); };
}

/// The default: unary and binary elementwise-shaped ops on 1x1 and 3x5.
template <class O>
struct Sample {
  template <class T>
  static std::vector<Case<T>> cases(std::mt19937_64& rng) {
    return make<T>(rng, [&](Index r, Index c) { return away_from_zero<T>(r, c, rng); });
  }
  template <class T>
  static std::vector<Case<T>> extremes(std::mt19937_64& rng) {
    return make<T>(rng, [&](Index r, Index c) { return extreme<T>(r, c, rng); });
  }
  template <class T, class Gen>
  static std::vector<Case<T>> make(std::mt19937_64&, Gen gen) {
    static_assert(O::arity == 1 || O::arity == 2, "give this op a Sample specialisation");
    std::vector<Case<T>> out;
    for (auto [r, c] : {std::pair<Index, Index>{1, 1}, {3, 5}}) {
      Case<T> k{fmt::format("{}x{}", r, c), {}, record_op<T>(O{})};
      for (int i = 0; i < O::arity; ++i) k.inputs.push_back(gen(r, c));
      out.push_back(std::move(k));
    }
    return out;
  }
};

/// Specialisations reuse this: a list of cases built by one function for both uses.
template <class Build>
struct SampleFrom {
  template <class T>
  static std::vector<Case<T>> cases(std::mt19937_64& rng) {
    return Build::template build<T>(rng, false);
  }
  template <class T>
  static std::vector<Case<T>> extremes(std::mt19937_64& rng) {
    return Build::template build<T>(rng, true);
  }
};

// Picks ordinary or extreme values of either sign.
template <class T>
Matrix<T> val(Index r, Index c, std::mt19937_64& rng, bool big) {
  return big ? extreme<T>(r, c, rng) : away_from_zero<T>(r, c, rng);
}

struct ScaleCases {
  template <class T>
  static std::vector<Case<T>> build(std::mt19937_64& rng, bool big) {
    return {{"1x1 c=2.5", {val<T>(1, 1, rng, big)}, record_op<T>(ops::Scale{2.5})},
            {"3x5 c=-0.5", {val<T>(3, 5, rng, big)}, record_op<T>(ops::Scale{-0.5})}};
  }
};
template <>
struct Sample<ops::Scale> : SampleFrom<ScaleCases> {};

struct AddScalarCases {
  template <class T>
  static std::vector<Case<T>> build(std::mt19937_64& rng, bool big) {
    return {{"1x1 c=0.7", {val<T>(1, 1, rng, big)}, record_op<T>(ops::AddScalar{0.7})},
            {"3x5 c=-3", {val<T>(3, 5, rng, big)}, record_op<T>(ops::AddScalar{-3})}};
  }
};
template <>
struct Sample<ops::AddScalar> : SampleFrom<AddScalarCases> {};

struct PowCases {
  template <class T>
  static std::vector<Case<T>> build(std::mt19937_64& rng, bool big) {
    // Integer exponents on either sign; fractional ones on positive inputs only.
    const auto pos = [&](Index r, Index c) {
      return big ? Matrix<T>(extreme<T>(r, c, rng).cwiseAbs()) : positive<T>(r, c, rng);
    };
    return {{"1x1 p=3", {val<T>(1, 1, rng, big)}, record_op<T>(ops::Pow{3})},
            {"3x5 p=2", {val<T>(3, 5, rng, big)}, record_op<T>(ops::Pow{2})},
            {"2x3 p=0.5", {pos(2, 3)}, record_op<T>(ops::Pow{0.5})},
            {"3x2 p=-1.5", {pos(3, 2)}, record_op<T>(ops::Pow{-1.5})},
            {"2x2 p=0", {val<T>(2, 2, rng, big)}, record_op<T>(ops::Pow{0})}};
  }
};
template <>
struct Sample<ops::Pow> : SampleFrom<PowCases> {};

// Positive-domain unary ops: sqrt and log.
template <class O>
struct PositiveCases {
  template <class T>
  static std::vector<Case<T>> build(std::mt19937_64& rng, bool big) {
    const auto pos = [&](Index r, Index c) {
      return big ? Matrix<T>(extreme<T>(r, c, rng).cwiseAbs()) : positive<T>(r, c, rng);
    };
    return {{"1x1", {pos(1, 1)}, record_op<T>(O{})}, {"3x5", {pos(3, 5)}, record_op<T>(O{})}};
  }
};
template <>
struct Sample<ops::Sqrt> : SampleFrom<PositiveCases<ops::Sqrt>> {};
template <>
struct Sample<ops::Log> : SampleFrom<PositiveCases<ops::Log>> {};

struct ExpCases {
  template <class T>
  static std::vector<Case<T>> build(std::mt19937_64& rng, bool big) {
    // e^1000 is not finite: the extreme sweep uses large negative inputs only.
    const auto x = [&](Index r, Index c) {
      return big ? Matrix<T>(-extreme<T>(r, c, rng).cwiseAbs()) : away_from_zero<T>(r, c, rng);
    };
    return {{"1x1", {x(1, 1)}, record_op<T>(ops::Exp{})},
            {"3x5", {x(3, 5)}, record_op<T>(ops::Exp{})}};
  }
};
template <>
struct Sample<ops::Exp> : SampleFrom<ExpCases> {};

struct MatmulCases {
  template <class T>
  static std::vector<Case<T>> build(std::mt19937_64& rng, bool big) {
    return {{"1x1 * 1x1",
             {val<T>(1, 1, rng, big), val<T>(1, 1, rng, big)},
             record_op<T>(ops::Matmul{})},
            {"3x4 * 4x2",
             {val<T>(3, 4, rng, big), val<T>(4, 2, rng, big)},
             record_op<T>(ops::Matmul{})}};
  }
};
template <>
struct Sample<ops::Matmul> : SampleFrom<MatmulCases> {};

struct MatmulNtCases {
  template <class T>
  static std::vector<Case<T>> build(std::mt19937_64& rng, bool big) {
    return {{"1x1 * (1x1)T",
             {val<T>(1, 1, rng, big), val<T>(1, 1, rng, big)},
             record_op<T>(ops::MatmulNt{})},
            {"3x4 * (2x4)T",
             {val<T>(3, 4, rng, big), val<T>(2, 4, rng, big)},
             record_op<T>(ops::MatmulNt{})}};
  }
};
template <>
struct Sample<ops::MatmulNt> : SampleFrom<MatmulNtCases> {};

struct AffineCases {
  template <class T>
  static std::vector<Case<T>> build(std::mt19937_64& rng, bool big) {
    return {{"1x1 * (1x1)T + 1x1",
             {val<T>(1, 1, rng, big), val<T>(1, 1, rng, big), val<T>(1, 1, rng, big)},
             record_op<T>(ops::Affine{})},
            {"3x4 * (2x4)T + 1x2",
             {val<T>(3, 4, rng, big), val<T>(2, 4, rng, big), val<T>(1, 2, rng, big)},
             record_op<T>(ops::Affine{})}};
  }
};
template <>
struct Sample<ops::Affine> : SampleFrom<AffineCases> {};

// A matrix and a row vector: add_row_vector and mul_row_vector.
template <class O>
struct RowVectorCases {
  template <class T>
  static std::vector<Case<T>> build(std::mt19937_64& rng, bool big) {
    return {{"1x1 with 1x1", {val<T>(1, 1, rng, big), val<T>(1, 1, rng, big)}, record_op<T>(O{})},
            {"3x4 with 1x4", {val<T>(3, 4, rng, big), val<T>(1, 4, rng, big)}, record_op<T>(O{})}};
  }
};
template <>
struct Sample<ops::AddRowVector> : SampleFrom<RowVectorCases<ops::AddRowVector>> {};
template <>
struct Sample<ops::MulRowVector> : SampleFrom<RowVectorCases<ops::MulRowVector>> {};

template <class O>
struct ConcatCases {
  template <class T>
  static std::vector<Case<T>> build(std::mt19937_64& rng, bool big) {
    const bool cols = std::is_same_v<O, ops::ConcatCols>;
    const auto m = [&](Index fixed, Index varying) {
      return cols ? val<T>(fixed, varying, rng, big) : val<T>(varying, fixed, rng, big);
    };
    return {{"1x1 ++ 1x1", {m(1, 1), m(1, 1)}, record_op<T>(O{})},
            {"three of 3 rows/cols", {m(3, 2), m(3, 1), m(3, 4)}, record_op<T>(O{})},
            {"one input", {m(2, 3)}, record_op<T>(O{})}};
  }
};
template <>
struct Sample<ops::ConcatCols> : SampleFrom<ConcatCases<ops::ConcatCols>> {};
template <>
struct Sample<ops::ConcatRows> : SampleFrom<ConcatCases<ops::ConcatRows>> {};

struct SliceColsCases {
  template <class T>
  static std::vector<Case<T>> build(std::mt19937_64& rng, bool big) {
    return {{"1x1 [0,1)", {val<T>(1, 1, rng, big)}, record_op<T>(ops::SliceCols{0, 1})},
            {"3x5 [1,4)", {val<T>(3, 5, rng, big)}, record_op<T>(ops::SliceCols{1, 4})}};
  }
};
template <>
struct Sample<ops::SliceCols> : SampleFrom<SliceColsCases> {};

struct SliceRowsCases {
  template <class T>
  static std::vector<Case<T>> build(std::mt19937_64& rng, bool big) {
    return {{"1x1 [0,1)", {val<T>(1, 1, rng, big)}, record_op<T>(ops::SliceRows{0, 1})},
            {"5x3 [2,5)", {val<T>(5, 3, rng, big)}, record_op<T>(ops::SliceRows{2, 5})}};
  }
};
template <>
struct Sample<ops::SliceRows> : SampleFrom<SliceRowsCases> {};

struct ReshapeCases {
  template <class T>
  static std::vector<Case<T>> build(std::mt19937_64& rng, bool big) {
    return {{"1x1 -> 1x1", {val<T>(1, 1, rng, big)}, record_op<T>(ops::Reshape{1, 1})},
            {"3x4 -> 2x6", {val<T>(3, 4, rng, big)}, record_op<T>(ops::Reshape{2, 6})}};
  }
};
template <>
struct Sample<ops::Reshape> : SampleFrom<ReshapeCases> {};

struct CrossEntropyCases {
  template <class T>
  static std::vector<Case<T>> build(std::mt19937_64& rng, bool big) {
    const auto ce = [](std::vector<std::int32_t> t) {
      return std::function<Var<T>(std::span<const Var<T>>)>(
          [t](std::span<const Var<T>> x) { return cross_entropy(x[0], t); });
    };
    return {{"1x1 logits", {val<T>(1, 1, rng, big)}, ce({0})},
            {"4x5 logits", {val<T>(4, 5, rng, big)}, ce({3, 0, 4, 3})}};
  }
};
template <>
struct Sample<ops::CrossEntropy> : SampleFrom<CrossEntropyCases> {};

struct BceCases {
  template <class T>
  static std::vector<Case<T>> build(std::mt19937_64& rng, bool big) {
    std::uniform_real_distribution<double> u(0, 1);
    Matrix<T> soft(3, 5);
    for (Index i = 0; i < soft.size(); ++i) soft.data()[i] = static_cast<T>(u(rng));
    return {
        {"1x1 target 1",
         {val<T>(1, 1, rng, big), Matrix<T>::Ones(1, 1)},
         record_op<T>(ops::BceWithLogits{})},
        {"3x5 soft targets", {val<T>(3, 5, rng, big), soft}, record_op<T>(ops::BceWithLogits{})},
        {"3x5 hard targets",
         {val<T>(3, 5, rng, big), zero_one<T>(3, 5, rng)},
         record_op<T>(ops::BceWithLogits{})}};
  }
};
template <>
struct Sample<ops::BceWithLogits> : SampleFrom<BceCases> {};

struct EmbeddingCases {
  template <class T>
  static std::vector<Case<T>> build(std::mt19937_64& rng, bool big) {
    const auto emb = [](std::vector<std::int32_t> ids) {
      return std::function<Var<T>(std::span<const Var<T>>)>(
          [ids](std::span<const Var<T>> x) { return embedding(x[0], ids); });
    };
    return {{"1x1 table, ids {0,0}", {val<T>(1, 1, rng, big)}, emb({0, 0})},
            {"6x3 table, repeated ids", {val<T>(6, 3, rng, big)}, emb({0, 2, 2, 5, 1})}};
  }
};
template <>
struct Sample<ops::Embedding> : SampleFrom<EmbeddingCases> {};

struct DropoutCases {
  template <class T>
  static std::vector<Case<T>> build(std::mt19937_64& rng, bool big) {
    return {{"1x1 kept",
             {val<T>(1, 1, rng, big), Matrix<T>::Ones(1, 1)},
             record_op<T>(ops::Dropout{1 / 0.75})},
            {"3x5 p=0.25",
             {val<T>(3, 5, rng, big), zero_one<T>(3, 5, rng)},
             record_op<T>(ops::Dropout{1 / 0.75})}};
  }
};
template <>
struct Sample<ops::Dropout> : SampleFrom<DropoutCases> {};

struct WhereCases {
  template <class T>
  static std::vector<Case<T>> build(std::mt19937_64& rng, bool big) {
    return {{"1x1",
             {Matrix<T>::Ones(1, 1), val<T>(1, 1, rng, big), val<T>(1, 1, rng, big)},
             record_op<T>(ops::Where{})},
            {"3x5 elementwise mask",
             {zero_one<T>(3, 5, rng), val<T>(3, 5, rng, big), val<T>(3, 5, rng, big)},
             record_op<T>(ops::Where{})},
            {"4x3 row mask",
             {zero_one<T>(4, 1, rng), val<T>(4, 3, rng, big), val<T>(4, 3, rng, big)},
             record_op<T>(ops::Where{})}};
  }
};
template <>
struct Sample<ops::Where> : SampleFrom<WhereCases> {};

// Binary ops whose inputs have different shapes: the (rows, cols) pairs to test, each with
// several examples (rows) where the op works per example.
template <class O>
struct PairShapes;
template <>
struct PairShapes<ops::RowOuter> {  // B×m, B×n
  static constexpr Index kShapes[][4] = {{1, 1, 1, 1}, {3, 2, 3, 4}};
};
template <>
struct PairShapes<ops::RowVecmat> {  // B×m, B×(m·n)
  static constexpr Index kShapes[][4] = {{1, 1, 1, 1}, {3, 2, 3, 8}};
};
template <>
struct PairShapes<ops::RowMatvec> {  // B×(m·n), B×n
  static constexpr Index kShapes[][4] = {{1, 1, 1, 1}, {3, 8, 3, 4}};
};
template <>
struct PairShapes<ops::AddColVector> {  // B×C, B×1
  static constexpr Index kShapes[][4] = {{1, 1, 1, 1}, {3, 5, 3, 1}};
};
template <>
struct PairShapes<ops::MulColVector> {
  static constexpr Index kShapes[][4] = {{1, 1, 1, 1}, {3, 5, 3, 1}};
};

template <class O>
struct PairCases {
  template <class T>
  static std::vector<Case<T>> build(std::mt19937_64& rng, bool big) {
    std::vector<Case<T>> out;
    for (const auto& s : PairShapes<O>::kShapes) {
      Matrix<T> a = val<T>(s[0], s[1], rng, big);
      Matrix<T> b = val<T>(s[2], s[3], rng, big);
      out.push_back({fmt::format("{}x{} with {}x{}", s[0], s[1], s[2], s[3]),
                     {std::move(a), std::move(b)},
                     record_op<T>(O{})});
    }
    return out;
  }
};
template <>
struct Sample<ops::RowOuter> : SampleFrom<PairCases<ops::RowOuter>> {};
template <>
struct Sample<ops::RowVecmat> : SampleFrom<PairCases<ops::RowVecmat>> {};
template <>
struct Sample<ops::RowMatvec> : SampleFrom<PairCases<ops::RowMatvec>> {};
template <>
struct Sample<ops::AddColVector> : SampleFrom<PairCases<ops::AddColVector>> {};
template <>
struct Sample<ops::MulColVector> : SampleFrom<PairCases<ops::MulColVector>> {};

// ---- the registry, minus what has no forward of its own -----------------------------------------

template <class O>
inline constexpr bool kTested = !kIsLeaf<O> && !std::is_same_v<O, ops::Custom>;

template <class Tuple>
struct Filter;
template <class... Os>
struct Filter<std::tuple<Os...>> {
  using type = decltype(std::tuple_cat(
      std::declval<std::conditional_t<kTested<Os>, std::tuple<Os>, std::tuple<>>>()...));
};

/// Every primitive in AllOps that a generated test exercises.
using TestedOps = Filter<AllOps>::type;

}  // namespace rwd::test
