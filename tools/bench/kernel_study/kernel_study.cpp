// The product-kernel study behind issue 11: the recurrent step's own products, timed with each
// Debian-packaged kernel, one thread. Built once per backend (they export the same cblas
// symbols), by tools/bench/kernel_study/run, which prints one table.
//
// Shapes (row-major, as the tape sees them; batch n):
//   fwd   y(n×m)  = l(n×k)·Wᵀ      W (m×k) a parameter: may be prepared (packed, reordered) once
//   bwd   y(n×k)  = g(n×m)·W       the same W, the input's gradient
//   wgrad Y(m×k) += Gᵀ(m×n)·X(n×k) a weight's gradient: both operands new at every call
// Every backend's results are checked against a double-precision reference.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#if defined(USE_EIGEN)
#include "rewind/autograd/gemm.hpp"
#elif defined(USE_OPENBLAS)
#include <cblas.h>
extern "C" void openblas_set_num_threads(int);
#elif defined(USE_BLIS)
#include <blis.h>
#elif defined(USE_DNNL)
#include <dnnl.hpp>
#elif defined(USE_XSMM)
#include <libxsmm.h>
#endif

namespace {

struct Shape {
  const char* name;
  const char* kind;  // fwd, bwd, wgrad
  int m, k, n;
};

using Vec = std::vector<float>;
using Run = std::function<void(const float* rhs, float* out, bool add)>;

Vec random_vec(std::size_t size, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  Vec v(size);
  for (auto& x : v) x = dist(gen);
  return v;
}

// Reference in double: out (row-major) for the shape's formula.
std::vector<double> reference(const Shape& s, const Vec& w, const Vec& rhs, const Vec& base) {
  const int m = s.m, k = s.k, n = s.n;
  std::vector<double> out(base.begin(), base.end());
  if (std::strcmp(s.kind, "fwd") == 0) {  // y(n×m) = l(n×k)·Wᵀ, W m×k
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < m; ++j) {
        double acc = 0;
        for (int p = 0; p < k; ++p) acc += double(rhs[i * k + p]) * w[j * k + p];
        out[i * m + j] += acc;
      }
  } else if (std::strcmp(s.kind, "bwd") == 0) {  // y(n×k) = g(n×m)·W
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < k; ++j) {
        double acc = 0;
        for (int p = 0; p < m; ++p) acc += double(rhs[i * m + p]) * w[p * k + j];
        out[i * k + j] += acc;
      }
  } else {  // Y(m×k) += Gᵀ·X: w holds G (n×m), rhs holds X (n×k)
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < k; ++j) {
        double acc = 0;
        for (int p = 0; p < n; ++p) acc += double(w[p * m + i]) * rhs[p * k + j];
        out[i * k + j] += acc;
      }
  }
  return out;
}

#if defined(USE_EIGEN)
const char* kBackend = "eigen, rewind packing (REWIND_GEMM=eigen)";
Run prepare(const Shape& s, const Vec& w) {
  using rwd::detail::PackedWeight;
  auto packed = std::make_shared<PackedWeight<float>>();
  const int m = s.m, k = s.k, n = s.n;
  const float* wp = w.data();
  if (std::strcmp(s.kind, "wgrad") == 0) {
    return [=](const float* x, float* y, bool add) {
      rwd::detail::gradient_product<float>(rwd::MutMap<float>(y, m, k), add,
                                           rwd::ConstMap<float>(wp, n, m),
                                           rwd::ConstMap<float>(x, n, k));
    };
  }
  const bool fwd = std::strcmp(s.kind, "fwd") == 0;
  return [=](const float* l, float* y, bool add) {
    rwd::detail::weight_product<float>(rwd::MutMap<float>(y, n, fwd ? m : k), add,
                                       rwd::ConstMap<float>(l, n, fwd ? k : m),
                                       rwd::ConstMap<float>(wp, m, k), fwd, packed.get());
  };
}
#elif defined(USE_OPENBLAS) || defined(USE_BLIS)
#if defined(USE_OPENBLAS)
const char* kBackend = "openblas cblas_sgemm";
#else
const char* kBackend = "blis cblas_sgemm";
#endif
Run prepare(const Shape& s, const Vec& w) {
  const int m = s.m, k = s.k, n = s.n;
  const float* wp = w.data();
  if (std::strcmp(s.kind, "fwd") == 0) {
    return [=](const float* l, float* y, bool add) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, m, k, 1.f, l, k, wp, k,
                  add ? 1.f : 0.f, y, m);
    };
  }
  if (std::strcmp(s.kind, "bwd") == 0) {
    return [=](const float* g, float* y, bool add) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, k, m, 1.f, g, m, wp, k,
                  add ? 1.f : 0.f, y, k);
    };
  }
  return [=](const float* x, float* y, bool add) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, k, n, 1.f, wp, m, x, k, add ? 1.f : 0.f,
                y, k);
  };
}
#elif defined(USE_DNNL)
const char* kBackend = "onednn matmul, weight reordered once";
dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}
dnnl::stream& stream() {
  static dnnl::stream st(engine());
  return st;
}
Run prepare(const Shape& s, const Vec& w) {
  using namespace dnnl;
  using tag = memory::format_tag;
  using dt = memory::data_type;
  const memory::dim m = s.m, k = s.k, n = s.n;
  // src (rows×depth) · weights (depth×cols) = dst (rows×cols), all as oneDNN sees them.
  memory::dim rows, depth, cols;
  memory::desc src_md, wei_plain, dst_md;
  const bool wgrad = std::strcmp(s.kind, "wgrad") == 0;
  if (std::strcmp(s.kind, "fwd") == 0) {
    rows = n, depth = k, cols = m;
    wei_plain = memory::desc({depth, cols}, dt::f32, tag::ba);  // Wᵀ from W's buffer
  } else if (std::strcmp(s.kind, "bwd") == 0) {
    rows = n, depth = m, cols = k;
    wei_plain = memory::desc({depth, cols}, dt::f32, tag::ab);
  } else {
    rows = m, depth = n, cols = k;  // src = Gᵀ (G's buffer, ba), weights = X
    wei_plain = memory::desc({depth, cols}, dt::f32, tag::ab);
  }
  src_md = memory::desc({rows, depth}, dt::f32, wgrad ? tag::ba : tag::ab);
  dst_md = memory::desc({rows, cols}, dt::f32, tag::ab);
  struct State {
    matmul assign, accumulate;
    memory weights;
    memory::desc src_md, dst_md, wei_md;
  };
  auto st = std::make_shared<State>();
  const auto make = [&](bool add) {
    primitive_attr attr;
    if (add) {
      post_ops po;
      po.append_sum(1.f);
      attr.set_post_ops(po);
    }
    const auto wei_any = wgrad ? wei_plain : memory::desc({depth, cols}, dt::f32, tag::any);
    const auto src_use = wgrad ? memory::desc({rows, depth}, dt::f32, tag::any) : src_md;
    matmul::primitive_desc pd(matmul::desc(wgrad ? src_md : src_use, wei_any, dst_md), attr,
                              engine());
    return pd;
  };
  const auto pd_assign = make(false);
  const auto pd_add = make(true);
  st->assign = matmul(pd_assign);
  st->accumulate = matmul(pd_add);
  st->src_md = src_md;
  st->dst_md = dst_md;
  st->wei_md = pd_assign.weights_desc();
  if (!wgrad) {
    memory plain(wei_plain, engine(), const_cast<float*>(w.data()));
    st->weights = memory(pd_assign.weights_desc(), engine());
    reorder(plain, st->weights).execute(stream(), plain, st->weights);
    stream().wait();
    if (pd_add.weights_desc() != pd_assign.weights_desc()) {
      std::fprintf(stderr, "onednn: the two primitives want different weight layouts\n");
      std::exit(1);
    }
  }
  const float* wp = w.data();
  return [=](const float* rhs, float* y, bool add) {
    memory src(st->src_md, engine(), const_cast<float*>(wgrad ? wp : rhs));
    memory dst(st->dst_md, engine(), y);
    memory wei = wgrad ? memory(st->wei_md, engine(), const_cast<float*>(rhs)) : st->weights;
    (add ? st->accumulate : st->assign)
        .execute(stream(), {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}});
    stream().wait();
  };
}
#elif defined(USE_XSMM)
const char* kBackend = "libxsmm JIT, panels of 64 rows";
Run prepare(const Shape& s, const Vec& w) {
  const int m = s.m, k = s.k, n = s.n;
  const float one = 1.f, zero = 0.f;
  if (std::strcmp(s.kind, "wgrad") == 0) {
    // As rewind does (gemm.cpp): column-major Yᵀ (k×m) = Xᵀ (k×n)·G (n×m), Xᵀ the buffer of X
    // (lda = k), G read transposed in place from its buffer (m×n column-major, ldb = m); one
    // kernel per panel of 64 rows of Yᵀ. G is new at every call: nothing is prepared.
    const int mb = 64;
    const libxsmm_blasint lda = k, ldb = m, ldc = k;
    const int flags = LIBXSMM_GEMM_FLAG_TRANS_B;
    const auto f_add = libxsmm_smmdispatch(mb, m, n, &lda, &ldb, &ldc, &one, &one, &flags, nullptr);
    const auto f_set =
        libxsmm_smmdispatch(mb, m, n, &lda, &ldb, &ldc, &one, &zero, &flags, nullptr);
    if (f_add == nullptr || f_set == nullptr || k % mb != 0) return nullptr;
    const float* g = w.data();
    return [=](const float* x, float* y, bool add) {
      const auto f = add ? f_add : f_set;
      for (int b = 0; b < k / mb; ++b) f(x + b * mb, g, y + b * mb);
    };
  }
  // Column-major yᵀ (M×n) = A (M×K)·rhsᵀ (K×n): fwd A = W (M = m, K = k), bwd A = Wᵀ (M = k,
  // K = m). A is copied once into panels of mb rows (each mb×K column-major, lda = mb).
  const bool fwd = std::strcmp(s.kind, "fwd") == 0;
  const int M = fwd ? m : k, K = fwd ? k : m;
  const int mb = 64;
  auto panels = std::make_shared<Vec>(static_cast<std::size_t>(M) * K);
  for (int i = 0; i < M; ++i)
    for (int p = 0; p < K; ++p) {
      const float a = fwd ? w[i * k + p] : w[p * k + i];
      (*panels)[(i / mb) * mb * K + p * mb + i % mb] = a;
    }
  const libxsmm_blasint lda = mb, ldb = K, ldc = M;
  const auto f_add = libxsmm_smmdispatch(mb, n, K, &lda, &ldb, &ldc, &one, &one, nullptr, nullptr);
  const auto f_set = libxsmm_smmdispatch(mb, n, K, &lda, &ldb, &ldc, &one, &zero, nullptr, nullptr);
  if (f_add == nullptr || f_set == nullptr || M % mb != 0) return nullptr;
  return [=](const float* rhs, float* y, bool add) {
    const auto f = add ? f_add : f_set;
    for (int b = 0; b < M / mb; ++b) f(panels->data() + b * mb * K, rhs, y + b * mb);
  };
}
#endif

double seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

int main() {
#if defined(USE_OPENBLAS)
  openblas_set_num_threads(1);
#elif defined(USE_BLIS)
  bli_thread_set_num_threads(1);
#elif defined(USE_XSMM)
  libxsmm_init();
#endif
  const Shape shapes[] = {
      {"H512 h.Whh^T", "fwd", 2048, 512, 32}, {"H512 x.Wih^T", "fwd", 2048, 64, 32},
      {"H512 g.Whh", "bwd", 2048, 512, 32},   {"H512 g^T.h", "wgrad", 2048, 512, 32},
      {"H512 g^T.x", "wgrad", 2048, 64, 32},  {"H128 h.Whh^T", "fwd", 512, 128, 32},
      {"H128 g.Whh", "bwd", 512, 128, 32},    {"H128 g^T.h", "wgrad", 512, 128, 32},
  };
  for (const auto& s : shapes) {
    const bool wgrad = std::strcmp(s.kind, "wgrad") == 0;
    const bool fwd = std::strcmp(s.kind, "fwd") == 0;
    const std::size_t wsize = wgrad ? std::size_t(s.n) * s.m : std::size_t(s.m) * s.k;
    const std::size_t rsize = std::size_t(s.n) * (wgrad ? s.k : fwd ? s.k : s.m);
    const std::size_t osize = wgrad ? std::size_t(s.m) * s.k : std::size_t(s.n) * (fwd ? s.m : s.k);
    const Vec w = random_vec(wsize, 1), rhs = random_vec(rsize, 2), base = random_vec(osize, 3);
    Run run = prepare(s, w);
    if (!run) {
      std::printf("%-14s %-6s %s: not supported\n", s.name, s.kind, kBackend);
      continue;
    }
    Vec out = base;
    run(rhs.data(), out.data(), true);
    const auto ref = reference(s, w, rhs, base);
    double err = 0;
    for (std::size_t i = 0; i < osize; ++i) err = std::max(err, std::abs(out[i] - ref[i]));
    const double flops = 2.0 * s.m * s.k * s.n;
    int reps = 1;
    for (;;) {
      const double t0 = seconds();
      for (int r = 0; r < reps; ++r) run(rhs.data(), out.data(), true);
      if (seconds() - t0 > 0.02) break;
      reps *= 2;
    }
    std::vector<double> times;
    for (int b = 0; b < 15; ++b) {
      const double t0 = seconds();
      for (int r = 0; r < reps; ++r) run(rhs.data(), out.data(), (r & 1) != 0);
      times.push_back((seconds() - t0) / reps);
    }
    std::sort(times.begin(), times.end());
    const double t = times[times.size() / 2];
    std::printf("%-14s %-6s %-40s %8.2f us %7.1f GFLOP/s  max err %.1e\n", s.name, s.kind, kBackend,
                t * 1e6, flops / t * 1e-9, err);
  }
}
