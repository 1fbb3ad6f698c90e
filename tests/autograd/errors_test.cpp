// User errors: the exact messages, the exception types, thrown when the op is recorded.
#include <boost/test/unit_test.hpp>
#include <rewind/rewind.hpp>

#include "support.hpp"

using namespace rwd;

// A suite's fixture is the base of its test cases, so it lives in a named namespace: in a unity
// unit this file is not the main file, and GCC warns about a base from an anonymous one.
using M = Matrix<double>;

namespace errors_fixture {

struct Fixture {
  Tape<double> tape;
  Var<double> a = tape.input(M::Ones(3, 4), "a");
  Var<double> b = tape.input(M::Ones(5, 2), "b");
  Var<double> c = tape.input(M::Ones(4, 3), "c");
};

}  // namespace errors_fixture

BOOST_FIXTURE_TEST_SUITE(errors, errors_fixture::Fixture)

BOOST_AUTO_TEST_CASE(error_types_derive_from_the_standard_ones) {
  static_assert(std::is_base_of_v<std::invalid_argument, ShapeError>);
  static_assert(std::is_base_of_v<std::logic_error, UsageError>);
}

BOOST_AUTO_TEST_CASE(shape_errors_name_the_op_and_both_shapes) {
  test::expect_message<ShapeError>([&] { (void)matmul(a, b); },
                                   "matmul: inner dimensions differ: lhs is 3x4, rhs is 5x2");
  test::expect_message<ShapeError>(
      [&] { (void)matmul_nt(a, b); },
      "matmul_nt: inner dimensions differ: lhs is 3x4, rhs is 5x2 (used transposed)");
  test::expect_message<ShapeError>([&] { (void)add(a, c); },
                                   "add: shapes differ: lhs is 3x4, rhs is 4x3");
  // A row against a batch: the error names the explicit broadcast (issue 38).
  test::expect_message<ShapeError>(
      [&] { (void)add(tape.input(M::Ones(2, 3)), tape.input(M::Ones(1, 3))); },
      "add: shapes differ: lhs is 2x3, rhs is 1x3 (no implicit broadcasting: "
      "add_row_vector(lhs, rhs) broadcasts the 1x3 row over the 2 rows)");
  // A column (one value per example) against a batch: the column broadcasts.
  test::expect_message<ShapeError>(
      [&] { (void)mul(tape.input(M::Ones(2, 3)), tape.input(M::Ones(2, 1))); },
      "mul: shapes differ: lhs is 2x3, rhs is 2x1 (no implicit broadcasting: "
      "mul_col_vector(lhs, rhs) broadcasts the 2x1 column over the 3 columns)");
  test::expect_message<ShapeError>(
      [&] { (void)sub(tape.input(M::Ones(4, 1)), tape.input(M::Ones(4, 5))); },
      "sub: shapes differ: lhs is 4x1, rhs is 4x5 (no implicit broadcasting: "
      "add_col_vector(neg(rhs), lhs) broadcasts the 4x1 column over the 5 columns)");
  // Per-example matrices (row i of a B×(m·n) tensor) and column broadcasts.
  const Var<double> x32 = tape.input(M::Ones(3, 2)), s37 = tape.input(M::Ones(3, 7));
  test::expect_message<ShapeError>(
      [&] { (void)row_vecmat(x32, s37); },
      "row_vecmat: expects x B×m and matrices B×(m·n): x is 3x2, matrices are 3x7 (7 columns "
      "are not m·n for m = 2)");
  test::expect_message<ShapeError>(
      [&] { (void)row_matvec(s37, x32); },
      "row_matvec: expects matrices B×(m·n) and v B×n: matrices are 3x7, v is 3x2 (7 columns "
      "are not m·n for n = 2)");
  test::expect_message<ShapeError>([&] { (void)row_outer(x32, tape.input(M::Ones(4, 2))); },
                                   "row_outer: the batches differ: lhs is 3x2, rhs is 4x2");
  test::expect_message<ShapeError>(
      [&] { (void)mul_col_vector(x32, x32); },
      "mul_col_vector: column vector has the wrong shape: vector is 3x2, expected 3x1 for a "
      "3x2 input");
  test::expect_message<ShapeError>(
      [&] { (void)add_col_vector(x32, tape.input(M::Ones(2, 1))); },
      "add_col_vector: column vector has the wrong shape: vector is 2x1, expected 3x1 for a "
      "3x2 input");
  test::expect_message<ShapeError>(
      [&] { (void)sub(tape.input(M::Ones(1, 3)), tape.input(M::Ones(4, 3))); },
      "sub: shapes differ: lhs is 1x3, rhs is 4x3 (no implicit broadcasting: "
      "add_row_vector(neg(rhs), lhs) broadcasts the 1x3 row over the 4 rows)");
  test::expect_message<ShapeError>(
      [&] { (void)mul(tape.input(M::Ones(2, 3)), tape.input(M::Ones(1, 3))); },
      "mul: shapes differ: lhs is 2x3, rhs is 1x3 (no implicit broadcasting: "
      "mul_row_vector(lhs, rhs) broadcasts the 1x3 row over the 2 rows)");
  test::expect_message<ShapeError>([&] { (void)mul(a, b); },
                                   "mul: shapes differ: lhs is 3x4, rhs is 5x2");
  test::expect_message<ShapeError>([&] { (void)(a - c); },
                                   "sub: shapes differ: lhs is 3x4, rhs is 4x3");
  test::expect_message<ShapeError>([&] { (void)mse(a, c); },
                                   "mse: shapes differ: lhs is 3x4, rhs is 4x3");
  test::expect_message<ShapeError>([&] { (void)bce_with_logits(a, c); },
                                   "bce_with_logits: shapes differ: logits is 3x4, targets is 4x3");
  // a 3x4, b 5x2, c 4x3
  test::expect_message<ShapeError>(
      [&] { (void)affine(a, b, a); },
      "affine: inner dimensions differ: input is 3x4, weight is 5x2 (used transposed)");
  test::expect_message<ShapeError>(
      [&] { (void)affine(b, b, a); },
      "affine: bias has the wrong shape: bias is 3x4, expected 1x5 for a 5x2 weight");
  test::expect_message<ShapeError>(
      [&] { (void)add_row_vector(a, b); },
      "add_row_vector: bias has the wrong shape: bias is 5x2, expected 1x4 for a 3x4 input");
  test::expect_message<ShapeError>([&] { (void)mul_row_vector(a, c); },
                                   "mul_row_vector: row vector has the wrong shape: vector is 4x3, "
                                   "expected 1x4 for a 3x4 input");
  test::expect_message<ShapeError>(
      [&] {
        (void)concat_cols({a, c});
      },
      "concat_cols: row counts differ: input 0 is 3x4, input 1 is 4x3");
  test::expect_message<ShapeError>(
      [&] {
        (void)concat_rows({a, a, b});
      },
      "concat_rows: column counts differ: input 0 is 3x4, input 2 is 5x2");
  test::expect_message<ShapeError>([&] { (void)reshape(a, 5, 2); },
                                   "reshape: element counts differ: cannot view 3x4 as 5x2");
  test::expect_message<ShapeError>(
      [&] { (void)where(b, a, a); },
      "where: mask has the wrong shape: mask is 5x2, expected 3x4 or 3x1");
  test::expect_message<ShapeError>([&] { (void)dropout(a, c, 0.5); },
                                   "dropout: shapes differ: input is 3x4, mask is 4x3");
}

BOOST_AUTO_TEST_CASE(slices_out_of_range) {
  test::expect_message<ShapeError>([&] { (void)slice_cols(a, 2, 9); },
                                   "slice_cols: columns out of range: [2, 9) for a 3x4 input");
  test::expect_message<ShapeError>([&] { (void)slice_cols(a, 3, 2); },
                                   "slice_cols: columns out of range: [3, 2) for a 3x4 input");
  test::expect_message<ShapeError>([&] { (void)slice_rows(a, -1, 2); },
                                   "slice_rows: rows out of range: [-1, 2) for a 3x4 input");
}

BOOST_AUTO_TEST_CASE(index_errors) {
  const std::vector<std::int32_t> bad{0, 1, 7};
  test::expect_message<ShapeError>(
      [&] { (void)cross_entropy(a, bad); },
      "cross_entropy: target out of range: target 7 at row 2, expected [0, 4)");
  const std::vector<std::int32_t> negative{0, -1, 2};
  test::expect_message<ShapeError>(
      [&] { (void)cross_entropy(a, negative); },
      "cross_entropy: target out of range: target -1 at row 1, expected [0, 4)");
  const std::vector<std::int32_t> two{0, 1};
  test::expect_message<ShapeError>([&] { (void)cross_entropy(a, two); },
                                   "cross_entropy: target count differs: 2 targets for 3x4 logits");
  const std::vector<std::int32_t> ids{2, 5};
  test::expect_message<ShapeError>([&] { (void)embedding(b, ids); },
                                   "embedding: id out of range: id 5 at position 1, table is 5x2");
}

BOOST_AUTO_TEST_CASE(backward_needs_a_scalar) {
  test::expect_message<UsageError>(
      [&] { tape.backward(tanh(a)); },
      "backward: loss must be 1x1, got 3x4: reduce it with sum or mean first");
}

BOOST_AUTO_TEST_CASE(stale_and_foreign_handles) {
  Var<double> t = tanh(a);
  tape.clear();
  test::expect_message<UsageError>(
      [&] { (void)t.value(); },
      "value: stale Var: node 3 was recorded before the tape's last clear()");
  test::expect_message<UsageError>(
      [&] { (void)sigmoid(t); },
      "sigmoid: stale Var: node 3 was recorded before the tape's last clear()");
  test::expect_message<UsageError>(
      [&] { tape.backward(t); },
      "backward: stale Var: node 3 was recorded before the tape's last clear()");
  Tape<double> other;
  Var<double> x = tape.input(M::Ones(2, 2));
  Var<double> y = other.input(M::Ones(2, 2));
  test::expect_message<UsageError>([&] { (void)add(x, y); },
                                   "add: Var belongs to a different tape");
  test::expect_message<UsageError>([&] { tape.backward(sum(y)); },
                                   "backward: Var belongs to a different tape");
  Var<double> empty;
  test::expect_message<UsageError>([&] { (void)empty.value(); },
                                   "Var: empty handle: it was default-constructed");
  test::expect_message<UsageError>([&] { (void)add(x, empty); },
                                   "add: empty Var: the handle was default-constructed");
}

BOOST_AUTO_TEST_CASE(usage_errors) {
  test::expect_message<UsageError>(
      [&] { (void)a.grad(); }, "grad: no gradient yet: call backward() on this recording first");
  test::expect_message<UsageError>([&] { (void)a.item(); }, "item: tensor is 3x4, expected 1x1");
  test::expect_message<UsageError>(
      [&] { (void)tape.scope("a/b"); },
      "scope: invalid name 'a/b': names are non-empty and contain no '/'");
  test::expect_message<UsageError>([&] { (void)tape.record(rwd::ops::Add{}, {a}); },
                                   "add: wrong number of inputs: expects 2, got 1");
  test::expect_message<UsageError>(
      [&] { (void)tape.record(rwd::ops::Input{}, {a}); },
      "input: leaves are recorded with Tape::input, Tape::constant or Tape::param");
  std::mt19937_64 rng(1);
  test::expect_message<UsageError>([&] { (void)dropout(a, 1.0, rng); },
                                   "dropout: probability 1 not in [0, 1)");
}

BOOST_AUTO_TEST_CASE(a_failed_record_leaves_the_tape_usable) {
  const auto before = tape.size();
  BOOST_CHECK_THROW((void)matmul(a, b), ShapeError);
  BOOST_TEST(tape.size() == before);
  tape.backward(sum(matmul(a, c)));
  BOOST_TEST(test::same(a.grad(), M::Constant(3, 4, 3.0)));
}

BOOST_AUTO_TEST_SUITE_END()
