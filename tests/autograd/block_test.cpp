// Many directions at once: jvp_block and vjp_block against k single sweeps (jvp, backward),
// generated for every op, through a recurrent recording whose products take the stacked path,
// and their errors.
#include <boost/test/unit_test.hpp>

#include "op_samples.hpp"
#include "support.hpp"

using namespace rwd;
using rwd::test::Sample;
using rwd::test::TestedOps;
using M = Matrix<double>;
using rwd::test::normal_matrix;

namespace {

// |a - b| ≤ 1e-12 (1 + max|b|): the stacked product may add in another order than k products.
bool close(const M& a, const M& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         (a - b).cwiseAbs().maxCoeff() <= 1e-12 * (1 + b.cwiseAbs().maxCoeff());
}

constexpr Index kDirections = 3;

// Block j of a stacked (k·rows)×cols matrix.
M block(const M& stacked, Index j, Index rows) { return stacked.middleRows(j * rows, rows); }

// One function for every op (the per-op test cases only make the cases): compiled once, not once
// an op.
void check_blocks(std::string_view name, const std::vector<test::Case<double>>& cases,
                  std::mt19937_64& rng) {
  for (const auto& c : cases) {
    // lhs_only: only input 0 has tangents / wants cotangents, so products take the stacked path.
    for (const bool lhs_only : {false, true}) {
      BOOST_TEST_CONTEXT(name << " on " << c.what << (lhs_only ? ", input 0 only" : "")) {
        Tape<double> tape;
        std::vector<Var<double>> xs;
        std::vector<M> seeds;
        for (std::size_t k = 0; k < c.inputs.size(); ++k) {
          const M& v = c.inputs[k];
          const bool varies = !lhs_only || k == 0;
          xs.push_back(varies ? tape.input(v) : tape.constant(v));
          seeds.push_back(normal_matrix(v.rows() * kDirections, v.cols(), rng));
        }
        const Var<double> y = c.apply(xs);
        for (std::size_t k = 0; k < xs.size(); ++k) {
          if (!lhs_only || k == 0) tape.set_block_tangent(xs[k], seeds[k]);
        }
        tape.jvp_block(kDirections);
        const M stacked = tape.block_tangent(y);
        const M u = normal_matrix(y.rows() * kDirections, y.cols(), rng);
        std::vector<Var<double>> losses;
        for (Index j = 0; j < kDirections; ++j)
          losses.push_back(sum(mul(y, tape.constant(block(u, j, y.rows())))));
        tape.vjp_block(y, u);
        for (Index j = 0; j < kDirections; ++j) {
          for (std::size_t k = 0; k < xs.size(); ++k) {
            if (!lhs_only || k == 0) tape.set_tangent(xs[k], block(seeds[k], j, xs[k].rows()));
          }
          tape.jvp();
          BOOST_TEST(close(block(stacked, j, y.rows()), M(y.tangent())), "direction " << j);
          tape.backward(losses[static_cast<std::size_t>(j)]);
          for (std::size_t k = 0; k < xs.size(); ++k) {
            if (lhs_only && k > 0) continue;
            const M blocks = tape.block_grad(xs[k]);
            BOOST_TEST(close(block(blocks, j, xs[k].rows()), M(xs[k].grad())),
                       "cotangent " << j << ", input " << k);
          }
        }
      }
    }
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(block_directions)

BOOST_AUTO_TEST_CASE_TEMPLATE(blocks_equal_single_sweeps, O, TestedOps) {
  std::mt19937_64 rng(7);
  const auto cases = Sample<O>::template cases<double>(rng);
  check_blocks(O::name, cases, rng);
}

// A recurrent recording: products with parameter weights take the stacked path (one GEMM for
// all k), elementwise ops run per direction; tangents from h0, cotangents from h_T.
BOOST_AUTO_TEST_CASE(recurrent_recording_stacks_its_products) {
  std::mt19937_64 rng(3);
  const Index batch = 2, in = 3, hidden = 5, steps = 4, k = 7;
  Parameter<double> w_ih{"w_ih", normal_matrix(hidden, in, rng)};
  Parameter<double> w_hh{"w_hh", normal_matrix(hidden, hidden, rng) / 2};
  Parameter<double> b{"b", normal_matrix(1, hidden, rng)};
  Tape<double> tape;
  const Var<double> h0 = tape.input(normal_matrix(batch, hidden, rng), "h0");
  std::vector<Var<double>> hs{h0};
  for (Index t = 0; t < steps; ++t) {
    const Var<double> x = tape.constant(normal_matrix(batch, in, rng));
    hs.push_back(tanh(
        add(affine(x, tape.param(w_ih), tape.param(b)), matmul_nt(hs.back(), tape.param(w_hh)))));
  }
  const Var<double> last = reshape(hs.back(), 1, batch * hidden);  // a view: strides carry over
  const M v = normal_matrix(batch * k, hidden, rng);
  tape.set_block_tangent(h0, v);
  tape.jvp_block(k);
  const M u = normal_matrix(k, batch * hidden, rng);
  tape.vjp_block(last, u);
  for (Index j = 0; j < k; ++j) {
    tape.set_tangent(h0, block(v, j, batch));
    tape.jvp();
    for (const Var<double>& h : hs) {
      BOOST_TEST(close(block(tape.block_tangent(h), j, batch), M(h.tangent())));
    }
    BOOST_TEST(close(block(tape.block_tangent(last), j, 1), M(last.tangent())));
    tape.backward(sum(mul(last, tape.constant(block(u, j, 1)))), {.accumulate_parameters = false});
    for (const Var<double>& h : hs) {
      BOOST_TEST(close(block(tape.block_grad(h), j, batch), M(h.grad())));
    }
  }
  BOOST_TEST(w_hh.grad.size() == 0);  // vjp_block adds nothing into parameters
}

BOOST_AUTO_TEST_CASE(errors_are_clear) {
  Tape<double> tape;
  const Var<double> x = tape.input(M::Ones(2, 3), "x");
  const Var<double> y = tanh(x);
  test::expect_message<UsageError>(
      [&] { (void)tape.block_tangent(y); },
      "block_tangent: no block tangents yet: call jvp_block(k) on this recording");
  test::expect_message<UsageError>(
      [&] { (void)tape.block_grad(y); },
      "block_grad: no block cotangents yet: call vjp_block on this recording");
  test::expect_message<ShapeError>(
      [&] { tape.set_block_tangent(x, M::Ones(5, 3)); },
      "set_block_tangent: tangents are 5x3, expected k·2 rows and 3 columns for a 2x3 input");
  test::expect_message<UsageError>([&] { tape.set_block_tangent(y, M::Ones(4, 3)); },
                                   "set_block_tangent: node 1 is an op tanh, not an input: block "
                                   "tangents are seeded on inputs (Tape::input)");
  tape.set_block_tangent(x, M::Ones(4, 3));
  test::expect_message<ShapeError>(
      [&] { tape.jvp_block(3); },
      "jvp_block: the block tangent of node 0 (x) holds 2 directions, expected 3");
  test::expect_message<UsageError>([&] { tape.jvp_block(0); },
                                   "jvp_block: 0 directions: need at least one");
  tape.jvp_block(2);
  const Var<double> z = exp(y);
  test::expect_message<UsageError>(
      [&] { (void)tape.block_tangent(z); },
      "block_tangent: node 2 was recorded after the latest jvp_block: call it again");
  test::expect_message<ShapeError>(
      [&] { tape.vjp_block(z, M::Ones(3, 2)); },
      "vjp_block: cotangents are 3x2, expected k·2 rows and 3 columns for a 2x3 output");
  tape.clear();
  BOOST_TEST(tape.capacity_bytes() > 0);
}

BOOST_AUTO_TEST_SUITE_END()
