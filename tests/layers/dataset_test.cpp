// IDX files, image sets and their sequence views: round trips, every kind of damage rejected
// with its own message, seeded orders, and (where Debian's dataset-fashion-mnist is installed)
// the real files against figures Python's gzip and numpy read from them.
#include <zlib.h>

#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <rewind/rewind.hpp>
#include <set>

using namespace rwd;
namespace fs = std::filesystem;

namespace {

// An IDX file: magic 00 00 type nd, big-endian dimensions, then the data as given.
std::vector<std::uint8_t> idx_bytes(const std::vector<std::uint32_t>& dims,
                                    const std::vector<std::uint8_t>& data,
                                    std::uint8_t type = 0x08) {
  std::vector<std::uint8_t> b{0, 0, type, static_cast<std::uint8_t>(dims.size())};
  for (std::uint32_t d : dims) {
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<std::uint8_t>(d >> s));
  }
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

// gzip through zlib's deflate (a writer independent of the reader's inflate loop).
std::vector<std::uint8_t> gzip(const std::vector<std::uint8_t>& raw) {
  z_stream z{};
  BOOST_REQUIRE(deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::vector<std::uint8_t> out(deflateBound(&z, static_cast<uLong>(raw.size())) + 64);
  z.next_in = const_cast<Bytef*>(raw.data());
  z.avail_in = static_cast<uInt>(raw.size());
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  BOOST_REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::vector<std::uint8_t> iota_bytes(std::size_t n) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t k = 0; k < n; ++k) v[k] = static_cast<std::uint8_t>(k * 7 + 3);
  return v;
}

std::string idx_error(const std::vector<std::uint8_t>& bytes) {
  try {
    (void)layers::parse_idx(bytes, "f");
  } catch (const FileError& e) {
    return e.what();
  }
  return "accepted";
}

void write(const fs::path& p, const std::vector<std::uint8_t>& b) {
  std::ofstream(p, std::ios::binary)
      .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

}  // namespace

namespace dataset_fixture {
struct TempDir {
  fs::path path = fs::temp_directory_path() / fmt::format("rewind_dataset_test_{}", ::getpid());
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
};
}  // namespace dataset_fixture

BOOST_FIXTURE_TEST_SUITE(dataset, dataset_fixture::TempDir)

BOOST_AUTO_TEST_CASE(idx_reads_plain_and_gzip_files_alike) {
  const auto data = iota_bytes(3 * 4 * 5);
  const auto raw = idx_bytes({3, 4, 5}, data);
  for (const auto& bytes : {raw, gzip(raw)}) {
    const layers::IdxArray a = layers::parse_idx(bytes, "f");
    BOOST_TEST((a.dims == std::vector<std::size_t>{3, 4, 5}));
    BOOST_TEST(a.data == data);
  }
  // Dimensions are big-endian: 258 = 0x00000102.
  const layers::IdxArray b = layers::parse_idx(idx_bytes({258}, iota_bytes(258)), "f");
  BOOST_TEST(b.dims[0] == 258u);
  // A file larger than the reader's first 64 KiB buffer, compressed.
  const auto big = iota_bytes(300 * 1000);
  BOOST_TEST(layers::parse_idx(gzip(idx_bytes({300, 1000}, big)), "f").data == big);
}

BOOST_AUTO_TEST_CASE(idx_rejects_every_kind_of_damage_with_its_own_message) {
  const auto good = idx_bytes({2, 3}, iota_bytes(6));
  BOOST_TEST(idx_error({}) == "idx: 'f': truncated: 0 bytes, too few for an IDX header");
  BOOST_TEST(idx_error({0, 0, 8}) == "idx: 'f': truncated: 3 bytes, too few for an IDX header");
  BOOST_TEST(idx_error({'P', 'K', 3, 4, 0, 0}) ==
             "idx: 'f': not an IDX file: it starts 50 4b, an IDX file with 00 00");
  BOOST_TEST(idx_error(idx_bytes({2}, std::vector<std::uint8_t>(8), 0x0D)) ==
             "idx: 'f': element type 0x0d (float) is not supported: rewind reads unsigned-byte "
             "IDX files (0x08)");
  BOOST_TEST(idx_error(idx_bytes({2}, {1, 2}, 0x42)) == "idx: 'f': unknown IDX element type 0x42");
  BOOST_TEST(idx_error({0, 0, 8, 0}) == "idx: 'f': the header declares no dimensions");
  // A header cut inside its dimensions.
  BOOST_TEST(idx_error({0, 0, 8, 3, 0, 0, 0, 2, 0}) ==
             "idx: 'f': truncated: 9 bytes, too few for an IDX header");
  auto shorter = good;
  shorter.pop_back();
  BOOST_TEST(idx_error(shorter) ==
             "idx: 'f': truncated: the header declares 2 x 3 (6 bytes of data), the file has 5");
  auto longer = good;
  longer.push_back(0);
  BOOST_TEST(idx_error(longer) == "idx: 'f': 1 bytes after the data its header declares (2 x 3)");
  BOOST_TEST(idx_error(idx_bytes({65536, 65536, 65536}, {})) ==
             "idx: 'f': the header declares more than 2^40 elements");

  // gzip: cut short, corrupt, trailing bytes, and a stream holding more than its header says.
  const auto gz = gzip(good);
  const std::vector<std::uint8_t> cut(gz.begin(), gz.end() - 6);
  BOOST_TEST(idx_error(cut) == "idx: 'f': the gzip stream ends early (truncated)");
  auto flipped = gz;
  flipped[gz.size() - 5] ^= 0x40;  // inside the trailer's length: the data check fails
  BOOST_TEST(idx_error(flipped).starts_with("idx: 'f': corrupt gzip data ("));
  auto body = gz;
  body[12] ^= 0xff;  // inside the deflate data
  BOOST_TEST(idx_error(body) != "accepted");
  auto trailing = gz;
  trailing.push_back(7);
  BOOST_TEST(idx_error(trailing) == "idx: 'f': 1 bytes after the end of the gzip stream");
  BOOST_TEST(idx_error(gzip(longer)) ==
             "idx: 'f': more data than its header declares (2 x 3, 6 bytes of data)");
  BOOST_TEST(idx_error(gzip(shorter)) ==
             "idx: 'f': truncated: the header declares 2 x 3 (6 bytes of data), the file "
             "(decompressed) has 5");
  BOOST_TEST(idx_error(gzip({0, 1, 8, 1})) ==
             "idx: 'f': not an IDX file: it starts 00 01, an IDX file with 00 00");
  BOOST_TEST(idx_error(gzip({0, 0})) ==
             "idx: 'f': truncated: 2 bytes (decompressed), too few for an IDX header");
}

BOOST_AUTO_TEST_CASE(image_sets_check_their_two_files_against_each_other) {
  write(path / "im", idx_bytes({3, 2, 2}, iota_bytes(12)));
  write(path / "lb.gz", gzip(idx_bytes({3}, {0, 2, 1})));
  const layers::ImageSet s = layers::load_image_set(path / "im", path / "lb.gz", 3);
  BOOST_TEST(s.size() == 3);
  BOOST_TEST(s.rows == 2);
  BOOST_TEST(s.cols == 2);
  const std::vector<Index> which{2, 0};
  const layers::ImageSet sub = s.subset(which);
  BOOST_TEST((sub.labels == std::vector<std::uint8_t>{1, 0}));
  BOOST_TEST(sub.pixels[0] == s.pixels[8]);
  BOOST_TEST(sub.pixels[4] == s.pixels[0]);

  const auto error = [&](const fs::path& im, const fs::path& lb, Index classes) -> std::string {
    try {
      (void)layers::load_image_set(im, lb, classes);
    } catch (const FileError& e) {
      return e.what();
    }
    return "accepted";
  };
  const std::string im = (path / "im").string(), lb = (path / "lb.gz").string();
  BOOST_TEST(error(path / "im", path / "lb.gz", 2) ==
             fmt::format("idx: '{}': label 2 of image 1 is not a class (0..1)", lb));
  write(path / "lb4", idx_bytes({4}, {0, 0, 0, 0}));
  BOOST_TEST(error(path / "im", path / "lb4", 3) ==
             fmt::format("idx: '{}': holds 4 labels, but '{}' holds 3 images",
                         (path / "lb4").string(), im));
  BOOST_TEST(error(path / "lb4", path / "lb4", 3) ==
             fmt::format("idx: '{}': an images file has 3 dimensions (images x rows x columns), "
                         "this one 1 (4)",
                         (path / "lb4").string()));
  BOOST_TEST(error(path / "im", path / "im", 3) ==
             fmt::format("idx: '{}': a labels file has 1 dimension, this one 3 (3 x 2 x 2)", im));
  write(path / "empty", idx_bytes({0, 28, 28}, {}));
  BOOST_TEST(error(path / "empty", path / "lb4", 3) ==
             fmt::format("idx: '{}': holds no pixels (0 x 28 x 28)", (path / "empty").string()));
  BOOST_TEST(error(path / "nothing", path / "lb4", 3) ==
             fmt::format("idx: '{}': cannot open it", (path / "nothing").string()));
  BOOST_CHECK_THROW(s.subset(std::vector<Index>{3}), UsageError);

  // A folder without the files names the first one missing and the package.
  try {
    (void)layers::load_fashion_mnist(path);
    BOOST_FAIL("accepted a folder without Fashion-MNIST");
  } catch (const FileError& e) {
    BOOST_TEST(std::string(e.what()).starts_with(
        fmt::format("Fashion-MNIST: '{}' has no train-images-idx3-ubyte (nor "
                    "train-images-idx3-ubyte.gz): Debian's dataset-fashion-mnist",
                    path.string())));
  }
  BOOST_TEST(!layers::has_fashion_mnist(path));
}

BOOST_AUTO_TEST_CASE(sequence_views_give_rows_pixels_and_a_seeded_permutation) {
  layers::ImageSet s{2, 3, 10, iota_bytes(12), {4, 5}};
  const std::vector<Index> which{1, 0};
  const layers::SequenceView rows(layers::ImageView::rows, 2, 3);
  BOOST_TEST(rows.steps() == 2);
  BOOST_TEST(rows.features() == 3);
  const auto r = rows.operator()<double>(s, which);
  BOOST_TEST(r.size() == 2u);
  // Step t of example k is row t of image which[k], scaled by 1/255.
  for (Index k = 0; k < 2; ++k)
    for (Index t = 0; t < 2; ++t)
      for (Index c = 0; c < 3; ++c)
        BOOST_TEST(
            r[static_cast<std::size_t>(t)](k, c) ==
            s.pixels[static_cast<std::size_t>(which[static_cast<std::size_t>(k)] * 6 + t * 3 + c)] /
                255.0);
  const layers::SequenceView pixels(layers::ImageView::pixels, 2, 3);
  const auto p = pixels.operator()<float>(s, which);
  BOOST_TEST(p.size() == 6u);
  BOOST_TEST(p[4](0, 0) == static_cast<float>(s.pixels[6 + 4] / 255.0));
  BOOST_TEST(p[4].cols() == 1);

  const layers::SequenceView a(layers::ImageView::permuted, 28, 28, 5),
      b(layers::ImageView::permuted, 28, 28, 5), c(layers::ImageView::permuted, 28, 28, 6);
  BOOST_TEST(a.order() == b.order());
  BOOST_TEST(a.order() != c.order());
  std::vector<Index> sorted = a.order();
  std::sort(sorted.begin(), sorted.end());
  std::vector<Index> all(784);
  std::iota(all.begin(), all.end(), Index{0});
  BOOST_TEST(sorted == all);
  const layers::SequenceView perm(layers::ImageView::permuted, 2, 3, 9);
  const auto q = perm.operator()<double>(s, which);
  for (std::size_t t = 0; t < 6; ++t)
    BOOST_TEST(q[t](1, 0) == s.pixels[static_cast<std::size_t>(perm.order()[t])] / 255.0);

  // Standardised: (x - mean) / std, with the set's moments; a standardised set has mean 0, std 1.
  const auto [mean, sd] = layers::pixel_moments(s);
  double m = 0, m2 = 0;
  for (std::uint8_t v : s.pixels) {
    m += v / 255.0;
    m2 += (v / 255.0) * (v / 255.0);
  }
  m /= 12;
  BOOST_TEST(mean == m, boost::test_tools::tolerance(1e-14));
  BOOST_TEST(sd == std::sqrt(m2 / 12 - m * m), boost::test_tools::tolerance(1e-12));
  layers::SequenceView standard(layers::ImageView::pixels, 2, 3);
  standard.standardize(mean, sd);
  const auto z = standard.operator()<double>(s, std::vector<Index>{0, 1});
  double zs = 0, zs2 = 0;
  for (const auto& x : z) {
    zs += x.sum();
    zs2 += x.squaredNorm();
  }
  BOOST_TEST(zs / 12 == 0.0, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(std::abs(zs2 / 12 - 1.0) < 1e-12);
  BOOST_CHECK_THROW(standard.standardize(0.5, 0.0), UsageError);

  BOOST_CHECK_THROW(rows.operator()<double>(layers::ImageSet{3, 2, 10, iota_bytes(6), {1}}, which),
                    UsageError);
  BOOST_CHECK_THROW(rows.operator()<double>(s, std::vector<Index>{2}), UsageError);
  BOOST_CHECK_THROW(layers::image_view("columns"), UsageError);
}

BOOST_AUTO_TEST_CASE(splits_and_epoch_orders_are_seeded_permutations) {
  const layers::Split s = layers::split_indices(1000, 100, 3);
  BOOST_TEST(s.train.size() == 900u);
  BOOST_TEST(s.validation.size() == 100u);
  std::set<Index> seen(s.train.begin(), s.train.end());
  seen.insert(s.validation.begin(), s.validation.end());
  BOOST_TEST(seen.size() == 1000u);
  BOOST_TEST(*seen.rbegin() == 999);
  BOOST_TEST(std::is_sorted(s.validation.begin(), s.validation.end()));
  // Not simply the last hundred.
  BOOST_TEST(s.validation.front() < 900);
  BOOST_TEST(layers::split_indices(1000, 100, 3).validation == s.validation);
  BOOST_TEST(layers::split_indices(1000, 100, 4).validation != s.validation);
  BOOST_CHECK_THROW(layers::split_indices(10, 10, 1), UsageError);
  BOOST_CHECK_THROW(layers::split_indices(10, -1, 1), UsageError);

  const auto e0 = layers::epoch_order(500, 1, 0), e1 = layers::epoch_order(500, 1, 1);
  BOOST_TEST(e0 == layers::epoch_order(500, 1, 0));
  BOOST_TEST(e0 != e1);
  BOOST_TEST(e0 != layers::epoch_order(500, 2, 0));
  // Roughly uniform: over 2000 orders of 8, each item lands first about 250 times (binomial
  // standard deviation 14.8; 6 of them is a bound no fair shuffle misses in practice).
  std::array<int, 8> first{};
  for (long e = 0; e < 2000; ++e)
    ++first[static_cast<std::size_t>(layers::epoch_order(8, 7, e)[0])];
  for (int f : first) BOOST_TEST(std::abs(f - 250) < 89);
}

BOOST_AUTO_TEST_CASE(fashion_mnist_from_debian_reads_as_python_reads_it) {
  if (!layers::has_fashion_mnist()) {
    BOOST_TEST_MESSAGE("skipped: Debian's dataset-fashion-mnist is not installed ("
                       << layers::kFashionMnistDir << "); tools/setup --data installs it");
    return;
  }
  const layers::FashionMnist d = layers::load_fashion_mnist();
  BOOST_TEST(d.train.size() == 60000);
  BOOST_TEST(d.test.size() == 10000);
  BOOST_TEST(d.train.rows == 28);
  BOOST_TEST(d.train.cols == 28);
  // Figures from Python's gzip and numpy over the same files (tools outside rewind).
  const auto sum = [](const std::vector<std::uint8_t>& v) {
    return std::accumulate(v.begin(), v.end(), std::int64_t{0});
  };
  BOOST_TEST(sum(d.train.pixels) == 3431114169);
  BOOST_TEST(sum(d.test.pixels) == 573469082);
  BOOST_TEST((std::vector<int>(d.train.labels.begin(), d.train.labels.begin() + 10) ==
              std::vector<int>{9, 0, 0, 3, 0, 2, 7, 2, 5, 5}));
  BOOST_TEST((std::vector<int>(d.test.labels.begin(), d.test.labels.begin() + 10) ==
              std::vector<int>{9, 2, 1, 1, 6, 1, 4, 6, 5, 7}));
  std::array<int, 10> per_class{};
  for (std::uint8_t l : d.train.labels) ++per_class[l];
  for (int n : per_class) BOOST_TEST(n == 6000);
  const std::vector<int> row14{0,   0,   1,   4,   6,   7,   2,   0,   0,   0,   0,   0,   237, 226,
                               217, 223, 222, 219, 222, 221, 216, 223, 229, 215, 218, 255, 77,  0};
  BOOST_TEST((std::vector<int>(d.train.pixels.begin() + 14 * 28,
                               d.train.pixels.begin() + 15 * 28) == row14));
  BOOST_TEST(layers::fashion_mnist_classes()[9] == "Ankle boot");
  // Mean and std of the training pixels / 255 by numpy: 0.28604060 and 0.35302424.
  const auto [mean, sd] = layers::pixel_moments(d.train);
  BOOST_TEST(std::abs(mean - 0.28604060) < 1e-8);
  BOOST_TEST(std::abs(sd - 0.35302424) < 1e-8);
}

BOOST_AUTO_TEST_SUITE_END()
