// Products with a packed weight and weight-gradient products (gemm.hpp) against Eigen's own, and
// the tape's use of the packing: reused within a recording, never across a clear() (the weight may
// have changed).
#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <rewind/rewind.hpp>
#include <string>
#include <vector>

#include "support.hpp"

using namespace rwd;

namespace {

template <class T>
Matrix<T> random_matrix(Index r, Index c, unsigned seed) {
  std::srand(seed);
  return Matrix<T>::Random(r, c);
}

/// max |a - b| / max(1, max |b|)
template <class T>
double rel_error(const Matrix<T>& a, const Matrix<T>& b) {
  return static_cast<double>((a - b).cwiseAbs().maxCoeff() /
                             std::max(T(1), b.cwiseAbs().maxCoeff()));
}

// Shapes: small (Eigen's path), odd sizes (partial register blocks in m, n and k), and a depth
// beyond one cache block so the packing has several depth panels.
struct ProductShape {
  Index n, k, m;
};
struct GradientShape {
  Index n, m, k;  // a's rows and columns, b's columns: y (m×k) = aᵀ·b
};
const ProductShape kShapes[] = {{3, 5, 7},     {4, 16, 16},    {5, 17, 49},   {32, 64, 512},
                                {33, 129, 97}, {32, 2500, 70}, {7, 300, 2049}};

template <class T>
void check_products(double tol) {
  unsigned seed = 1;
  for (const auto& s : kShapes) {
    for (const bool transpose_w : {true, false}) {
      BOOST_TEST_CONTEXT("l " << s.n << "x" << s.k << ", m " << s.m << ", "
                              << (transpose_w ? "l*W^T" : "l*W") << ", "
                              << (sizeof(T) == 4 ? "float" : "double")) {
        const Matrix<T> l = random_matrix<T>(s.n, s.k, seed++);
        const Matrix<T> w =
            transpose_w ? random_matrix<T>(s.m, s.k, seed++) : random_matrix<T>(s.k, s.m, seed++);
        const Matrix<T> base = random_matrix<T>(s.n, s.m, seed++);
        const Matrix<T> expect = transpose_w ? Matrix<T>(l * w.transpose()) : Matrix<T>(l * w);
        detail::PackedWeight<T> packed;
        for (int use = 0; use < 2; ++use) {  // the second use reads the packing of the first
          Matrix<T> y = base;
          detail::weight_product<T>(
              MutMap<T>(y.data(), s.n, s.m), false, ConstMap<T>(l.data(), s.n, s.k),
              ConstMap<T>(w.data(), w.rows(), w.cols()), transpose_w, &packed);
          BOOST_TEST(rel_error(y, expect) < tol);
          y = base;
          detail::weight_product<T>(
              MutMap<T>(y.data(), s.n, s.m), true, ConstMap<T>(l.data(), s.n, s.k),
              ConstMap<T>(w.data(), w.rows(), w.cols()), transpose_w, &packed);
          BOOST_TEST(rel_error(y, Matrix<T>(base + expect)) < tol);
        }
        // A weight's gradient from a batch: aᵀ·b, m×k.
        const Matrix<T> a = random_matrix<T>(s.n, s.m, seed++);
        const Matrix<T> gbase = random_matrix<T>(s.m, s.k, seed++);
        const Matrix<T> gexpect = a.transpose() * l;
        for (const bool add : {false, true}) {
          Matrix<T> g = gbase;
          detail::gradient_product<T>(MutMap<T>(g.data(), s.m, s.k), add,
                                      ConstMap<T>(a.data(), s.n, s.m),
                                      ConstMap<T>(l.data(), s.n, s.k));
          BOOST_TEST(rel_error(g, add ? Matrix<T>(gbase + gexpect) : gexpect) < tol);
        }
      }
    }
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(packed_products)

// The kernel is chosen by the build (REWIND_LIBXSMM) and at run time (REWIND_GEMM=eigen): ctest
// runs this suite both ways (autograd, autograd_eigen_kernel).
BOOST_AUTO_TEST_CASE(the_kernel_follows_the_build_and_the_environment) {
  const char* choice = std::getenv("REWIND_GEMM");
  const bool forced_eigen = choice != nullptr && std::string(choice) == "eigen";
  const std::string expect = REWIND_HAVE_LIBXSMM && !forced_eigen ? "libxsmm" : "eigen";
  BOOST_TEST(detail::product_kernel() == expect);
  // The large float weight gradients: libxsmm's where the products use it, else oneDNN
  // (REWIND_ONEDNN) unless REWIND_GEMM=eigen.
  BOOST_TEST(detail::gradient_kernel() == std::string(expect == "libxsmm" ? "libxsmm"
                                                      : REWIND_HAVE_DNNL && !forced_eigen
                                                          ? "onednn"
                                                          : "eigen"));
}

BOOST_AUTO_TEST_CASE(match_eigen_products) {
  check_products<double>(1e-13);
  check_products<float>(1e-5);
}

#ifdef _OPENMP
// REWIND_OPENMP builds split a product's row blocks between threads (the sanitizer build of
// tools/test is one); the threads must give the same products.
BOOST_AUTO_TEST_CASE(match_eigen_products_on_two_threads) {
  const int before = Eigen::nbThreads();
  Eigen::setNbThreads(2);
  check_products<double>(1e-13);
  check_products<float>(1e-5);
  Eigen::setNbThreads(before);
}

// A product's result does not depend on the thread count: the threads split the weight's rows
// (2048 outputs: 32 libxsmm panels) or, for an odd number of panels (192 outputs: 3), the rows and
// two column halves of the batch. With two threads allowed, whether a shape runs on both is
// measured over its first runs (REWIND_SPLIT=measure, the default: the first, then one and two
// threads in turn); kRepeats runs cover those trials and the choice after them, and every run
// must give the same bits. ctest also runs this with REWIND_SPLIT=always (two threads each time).
constexpr int kRepeats = 12;

BOOST_AUTO_TEST_CASE(products_with_a_packed_weight_are_identical_on_one_and_two_threads) {
  const int before = Eigen::nbThreads();
  for (const Index m : {2048, 192}) {
    const Matrix<float> l = random_matrix<float>(32, 512, 21), w = random_matrix<float>(m, 512, 22);
    Matrix<float> y[2];
    bool same = true;
    for (const int threads : {1, 2}) {
      Eigen::setNbThreads(threads);
      detail::PackedWeight<float> packed;
      for (int run = 0; run < (threads == 1 ? 1 : kRepeats); ++run) {
        y[threads - 1] = Matrix<float>::Zero(32, m);
        detail::weight_product<float>(MutMap<float>(y[threads - 1].data(), 32, m), false,
                                      ConstMap<float>(l.data(), 32, 512),
                                      ConstMap<float>(w.data(), m, 512), true, &packed);
        if (threads == 2) same = same && (y[0].array() == y[1].array()).all();
      }
    }
    BOOST_TEST_CONTEXT("y 32x" << m) {
      BOOST_TEST(same);
      BOOST_TEST(rel_error(y[0], Matrix<float>(l * w.transpose())) < 1e-5);
    }
  }
  Eigen::setNbThreads(before);
}

// Nor does a weight gradient's: libxsmm's panels (a result up to 512 KiB), cut into column
// halves too when there is one panel (an input weight's gradient over a whole sequence: 64
// inputs, 50 steps of 32), and Eigen's row halves (larger) each compute whole sums.
namespace {
void check_weight_gradients_on_two_threads(std::initializer_list<GradientShape> shapes) {
  const int before = Eigen::nbThreads();
  for (const GradientShape s : shapes) {
    const Matrix<float> a = random_matrix<float>(s.n, s.m, 23),
                        b = random_matrix<float>(s.n, s.k, 24);
    const Matrix<float> base = random_matrix<float>(s.m, s.k, 25);
    Matrix<float> y[2];
    bool same = true;
    for (const int threads : {1, 2}) {
      Eigen::setNbThreads(threads);
      for (int run = 0; run < (threads == 1 ? 1 : kRepeats); ++run) {
        y[threads - 1] = base;
        detail::gradient_product<float>(MutMap<float>(y[threads - 1].data(), s.m, s.k), true,
                                        ConstMap<float>(a.data(), s.n, s.m),
                                        ConstMap<float>(b.data(), s.n, s.k));
        if (threads == 2) same = same && (y[0].array() == y[1].array()).all();
      }
    }
    BOOST_TEST_CONTEXT("y " << s.m << "x" << s.k << " from " << s.n << " rows") {
      BOOST_TEST(same);
      const Matrix<double> expect =
          base.cast<double>() + a.cast<double>().transpose() * b.cast<double>();
      BOOST_TEST(rel_error(Matrix<double>(y[0].cast<double>()), expect) < 1e-4);
    }
  }
  Eigen::setNbThreads(before);
}
}  // namespace

BOOST_AUTO_TEST_CASE(weight_gradients_are_identical_on_one_and_two_threads) {
  // 720 KiB (600x300 float) is past libxsmm's panels: Eigen's row halves.
  check_weight_gradients_on_two_threads({{32, 512, 128}, {32, 600, 300}, {1600, 512, 64}});
}

// The same at 4 MiB (2048x512 float): Eigen's row halves with several blocks each; the case
// above runs the same code (heavy: the sanitizer build leaves it out).
BOOST_AUTO_TEST_CASE(weight_gradients_of_a_4_mib_result_are_identical_on_two_threads,
                     *boost::unit_test::label("heavy")) {
  check_weight_gradients_on_two_threads({{32, 2048, 512}});
}

#endif

// A weight's gradient over many uses at once (gradient_products, as the reverse sweep runs a
// parameter's product terms): the same bits as one gradient_product per term in that order,
// whether the result is one tile (512x128 float, 256 KiB) or several (2048x512 float: 4 MiB,
// 8 tiles of 256 rows; 600x300: tiles of 432 and 168 rows), and a double result past libxsmm's
// size (Eigen's kernel, term by term); the first term assigns over whatever y held. On two
// threads (a REWIND_OPENMP build) the same bits again, every run. Checked against the sum in
// double too.
namespace {
template <class T>
void check_gradient_terms(GradientShape s, double tol) {
  constexpr int kTerms = 5;
  std::vector<Matrix<T>> a, b;
  std::vector<detail::GradientTerm<T>> terms;
  Matrix<double> expect = Matrix<double>::Zero(s.m, s.k);
  for (int t = 0; t < kTerms; ++t) {
    a.push_back(random_matrix<T>(s.n, s.m, 40 + 2 * t));
    b.push_back(random_matrix<T>(s.n, s.k, 41 + 2 * t));
    expect += a.back().template cast<double>().transpose() * b.back().template cast<double>();
  }
  for (int t = 0; t < kTerms; ++t) terms.push_back({a[t].data(), b[t].data(), s.n, t > 0});
  const Matrix<T> garbage = random_matrix<T>(s.m, s.k, 39);
  Matrix<T> one_by_one = garbage;
  for (int t = 0; t < kTerms; ++t) {
    detail::gradient_product<T>(MutMap<T>(one_by_one.data(), s.m, s.k), t > 0,
                                ConstMap<T>(a[t].data(), s.n, s.m),
                                ConstMap<T>(b[t].data(), s.n, s.k));
  }
  const int before = Eigen::nbThreads();
  for (const int threads : {1, 2}) {
    Eigen::setNbThreads(threads);
    for (int run = 0; run < (threads == 1 ? 1 : 6); ++run) {
      BOOST_TEST_CONTEXT("y " << s.m << "x" << s.k << " (" << (sizeof(T) == 4 ? "float" : "double")
                              << "), " << threads << " thread(s), run " << run) {
        Matrix<T> together = garbage;
        detail::gradient_products<T>(MutMap<T>(together.data(), s.m, s.k), terms);
        BOOST_TEST(test::same(together, one_by_one));
        BOOST_TEST(rel_error(Matrix<double>(together.template cast<double>()), expect) < tol);
      }
    }
  }
  Eigen::setNbThreads(before);
}
}  // namespace

BOOST_AUTO_TEST_CASE(gradient_terms_together_give_the_bits_of_one_by_one) {
  check_gradient_terms<float>({32, 512, 128}, 1e-5);
  check_gradient_terms<float>({33, 600, 300}, 1e-5);
  check_gradient_terms<double>({32, 300, 400}, 1e-13);
}

// 8 tiles (2048x512 float, 4 MiB); the case above has several tiles too (heavy: the sanitizer
// build leaves it out).
BOOST_AUTO_TEST_CASE(gradient_terms_of_a_4_mib_result_give_the_bits_of_one_by_one,
                     *boost::unit_test::label("heavy")) {
  check_gradient_terms<float>({32, 2048, 512}, 1e-5);
}

#ifdef _OPENMP
// Large rowwise ops run on two threads, each over half of the rows, forward and backward. Every
// element is computed by the same code either way, so the results are identical, not close.
BOOST_AUTO_TEST_CASE(rowwise_ops_on_two_threads_give_identical_results) {
  const Index rows = 64, cols = 1100;  // 70 400 elements: above the tape's threshold
  const Matrix<double> a0 = random_matrix<double>(rows, cols, 11);
  const Matrix<double> b0 = random_matrix<double>(rows, cols, 12);
  Matrix<double> m0(rows, 1);
  for (Index r = 0; r < rows; ++r) m0(r, 0) = r % 3 == 0 ? 0.0 : 1.0;
  const int before = Eigen::nbThreads();
  const auto run = [&](int threads) {
    Eigen::setNbThreads(threads);
    Tape<double> tape;
    const Var<double> a = tape.input(a0), b = tape.input(b0), m = tape.constant(m0);
    const Var<double> p = add_scalar(square(b), 1.0);  // > 0
    Var<double> y = where(m, mul(sigmoid(a), tanh(b)), div(exp(neg(abs(a))), p));
    y = add(y, sub(scale(relu(a), 0.5), softplus(b)));
    y = add(y, mul(log_sigmoid(a), log(p)));
    y = add(y, pow(sqrt(p), 1.5));
    y = concat_cols({slice_cols(y, 100, cols), slice_cols(y, 0, 100)});
    const Var<double> loss = sum(mul(y, tape.constant(random_matrix<double>(rows, cols, 13))));
    tape.backward(loss);
    std::array<Matrix<double>, 6> out{y.value(), a.grad(), b.grad()};
    // Second order: the backward of each gradient's tangent splits its rows the same way.
    tape.set_tangent(a, random_matrix<double>(rows, cols, 14));
    tape.set_tangent(b, random_matrix<double>(rows, cols, 15));
    tape.hvp(loss);
    out[3] = y.tangent();
    out[4] = a.grad_tangent();
    out[5] = b.grad_tangent();
    return out;
  };
  const auto one = run(1), two = run(2);
  Eigen::setNbThreads(before);
  for (std::size_t k = 0; k < one.size(); ++k) BOOST_TEST(test::same(one[k], two[k]), k);
}

// The per-example products and column broadcasts split rows the same way: a 64-example 33x33
// state (69 696 elements, above the threshold), decayed per example and updated by outer
// products, read by both products; first and second order.
BOOST_AUTO_TEST_CASE(per_example_products_on_two_threads_give_identical_results) {
  const Index rows = 64, d = 33;
  const Matrix<double> k0 = random_matrix<double>(rows, d, 21),
                       v0 = random_matrix<double>(rows, d, 22);
  const Matrix<double> s0 = random_matrix<double>(rows, d * d, 23);
  const Matrix<double> f0 = random_matrix<double>(rows, 1, 24);
  const int before = Eigen::nbThreads();
  const auto run = [&](int threads) {
    Eigen::setNbThreads(threads);
    Tape<double> tape;
    const Var<double> k = tape.input(k0), v = tape.input(v0), s = tape.input(s0),
                      f = tape.input(f0);
    const Var<double> state =
        add(mul_col_vector(s, sigmoid(f)), row_outer(k, v));  // S' = σ(f)·S + k vᵀ
    const Var<double> read = add(row_vecmat(k, state), row_matvec(state, v));
    const Var<double> y = add_col_vector(read, f);
    const Var<double> loss = sum(mul(y, tape.constant(random_matrix<double>(rows, d, 25))));
    tape.backward(loss);
    std::array<Matrix<double>, 8> out{y.value(), k.grad(), v.grad(), s.grad()};
    tape.set_tangent(k, random_matrix<double>(rows, d, 26));
    tape.set_tangent(s, random_matrix<double>(rows, d * d, 27));
    tape.set_tangent(f, random_matrix<double>(rows, 1, 28));
    tape.hvp(loss);
    out[4] = y.tangent();
    out[5] = k.grad_tangent();
    out[6] = s.grad_tangent();
    out[7] = f.grad_tangent();
    return out;
  };
  const auto one = run(1), two = run(2);
  Eigen::setNbThreads(before);
  for (std::size_t i = 0; i < one.size(); ++i) BOOST_TEST(test::same(one[i], two[i]), i);
}
#endif

BOOST_AUTO_TEST_CASE(packing_is_reused_in_a_recording_and_renewed_after_clear) {
  Parameter<double> w("w", random_matrix<double>(48, 40, 3));
  const Matrix<double> x = random_matrix<double>(8, 40, 4);
  Tape<double> tape;
  for (int step = 0; step < 3; ++step) {
    tape.clear();
    const Var<double> wv = tape.param(w);
    const Var<double> xv = tape.input(x);
    const Var<double> y1 = matmul_nt(xv, wv);        // packs w (row-major view)
    const Var<double> y2 = matmul_nt(xv * 2.0, wv);  // reuses it
    const Var<double> y3 = matmul(y2, wv);           // w read column-major
    BOOST_TEST(rel_error(Matrix<double>(y1.value()), Matrix<double>(x * w.value.transpose())) <
               1e-13);
    BOOST_TEST(rel_error(Matrix<double>(y2.value()),
                         Matrix<double>(2.0 * x * w.value.transpose())) < 1e-13);
    BOOST_TEST(rel_error(Matrix<double>(y3.value()),
                         Matrix<double>(2.0 * x * w.value.transpose() * w.value)) < 1e-12);
    w.zero_grad();
    tape.backward(sum(y3));
    // y3 = 2·x·WᵀW, so d sum(y3)/dx = 2·1·WᵀW (WᵀW is symmetric)
    const Matrix<double> ones = Matrix<double>::Ones(8, 40);
    BOOST_TEST(rel_error(Matrix<double>(xv.grad()),
                         Matrix<double>(2.0 * ones * w.value.transpose() * w.value)) < 1e-12);
    w.value *= 1.5;  // a stale packing after clear() would give the old products
  }
}

// affine with parameters big enough for the packed path, checked against central differences.
BOOST_AUTO_TEST_CASE(affine_with_packed_parameters_passes_gradcheck) {
  Parameter<double> w("w", random_matrix<double>(48, 40, 5));
  Parameter<double> b("b", random_matrix<double>(1, 48, 6));
  const auto f = [&](Tape<double>& tape, std::span<const Var<double>> x) {
    const Var<double> h = tanh(affine(x[0], tape.param(w), tape.param(b)));  // 8x48
    return sum(square(matmul(h, tape.param(w))));  // w again, read the other way: 8x40
  };
  const GradcheckReport report = gradcheck(f, {{"x", random_matrix<double>(8, 40, 7)}}, {&w, &b});
  BOOST_TEST(report.passed(), report.to_string());
  // Second order through the same packed products, and products with the parameters'
  // tangents (packed once per sweep): random directions, every element of H·v compared.
  const GradgradcheckReport second = gradgradcheck(f, {{"x", random_matrix<double>(8, 40, 7)}},
                                                   {&w, &b}, {.fast = true, .directions = 6});
  BOOST_TEST(second.passed(), second.to_string());
  BOOST_TEST(second.transpose_error < 1e-12);
}

// The tangents' packings are renewed at every jvp: a second hvp on one recording with a new
// direction must not reuse the first direction's packing. H·v is linear in v.
BOOST_AUTO_TEST_CASE(tangent_packing_is_renewed_at_every_jvp) {
  Parameter<double> w("w", random_matrix<double>(48, 40, 8));
  Tape<double> tape;
  const Var<double> x = tape.input(random_matrix<double>(8, 40, 9));
  const Var<double> loss = sum(square(tanh(matmul_nt(x, tape.param(w)))));
  const Matrix<double> v = random_matrix<double>(48, 40, 10);
  w.tangent = v;
  tape.hvp(loss, {.accumulate_parameters = false});
  const Matrix<double> h1 = tape.param(w).grad_tangent(), hx1 = x.grad_tangent();
  w.tangent = -3.0 * v;
  tape.hvp(loss, {.accumulate_parameters = false});
  BOOST_TEST(rel_error(Matrix<double>(tape.param(w).grad_tangent()), Matrix<double>(-3.0 * h1)) <
             1e-12);
  BOOST_TEST(rel_error(Matrix<double>(x.grad_tangent()), Matrix<double>(-3.0 * hx1)) < 1e-12);
}

BOOST_AUTO_TEST_SUITE_END()
