#include <fmt/format.h>
#include <zlib.h>

#include <cmath>
#include <random>
#include <rewind/autograd/errors.hpp>
#include <rewind/layers/dataset.hpp>
#include <rewind/layers/safetensors.hpp>

namespace rwd::layers {
namespace {

[[noreturn]] void fail(const std::string& name, const std::string& what) {
  throw FileError(fmt::format("idx: '{}': {}", name, what));
}

const char* type_name(std::uint8_t type) {
  switch (type) {
    case 0x08:
      return "unsigned byte";
    case 0x09:
      return "signed byte";
    case 0x0B:
      return "short";
    case 0x0C:
      return "int";
    case 0x0D:
      return "float";
    case 0x0E:
      return "double";
    default:
      return nullptr;
  }
}

// An IDX header's declared element count, once the header has arrived; 0 dims until then.
struct Header {
  std::vector<std::size_t> dims;
  std::size_t bytes = 0;  // header + data
};

// Checks what there is of a header; returns false while `have` bytes are too few to decide.
bool read_header(std::span<const std::uint8_t> b, const std::string& name, Header& h) {
  if (b.size() < 4) return false;
  if (b[0] != 0 || b[1] != 0)
    fail(name, fmt::format("not an IDX file: it starts {:02x} {:02x}, an IDX file with 00 00", b[0],
                           b[1]));
  if (b[2] != 0x08) {
    const char* t = type_name(b[2]);
    if (t == nullptr) fail(name, fmt::format("unknown IDX element type 0x{:02x}", b[2]));
    fail(name, fmt::format("element type 0x{:02x} ({}) is not supported: rewind reads "
                           "unsigned-byte IDX files (0x08)",
                           b[2], t));
  }
  const std::size_t nd = b[3];
  if (nd == 0) fail(name, "the header declares no dimensions");
  if (b.size() < 4 + 4 * nd) return false;
  h.dims.clear();
  std::size_t count = 1;
  for (std::size_t k = 0; k < nd; ++k) {
    const std::uint8_t* p = b.data() + 4 + 4 * k;
    const std::size_t d = (std::size_t{p[0]} << 24) | (std::size_t{p[1]} << 16) |
                          (std::size_t{p[2]} << 8) | std::size_t{p[3]};
    h.dims.push_back(d);
    // 2^40 bytes is beyond any dataset this reads and keeps the product from overflowing.
    if (d != 0 && count > (std::size_t{1} << 40) / d)
      fail(name, "the header declares more than 2^40 elements");
    count *= d;
  }
  h.bytes = 4 + 4 * nd + count;
  return true;
}

std::string dims_text(const std::vector<std::size_t>& dims) {
  std::string s;
  for (std::size_t d : dims) s += fmt::format("{}{}", s.empty() ? "" : " x ", d);
  return s;
}

// gzip through zlib. The output never grows past what the IDX header inside declares (plus one
// byte, to tell that more follows), so a small corrupt file cannot make a large allocation.
std::vector<std::uint8_t> gunzip(std::span<const std::uint8_t> in, const std::string& name) {
  if (in.size() > (std::size_t{1} << 30)) fail(name, "more than 1 GiB of gzip data");
  z_stream z{};
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) fail(name, "zlib could not start");
  // The header is checked while inflating, and a bad one throws: the stream ends either way.
  struct End {
    z_stream& z;
    ~End() { inflateEnd(&z); }
  } end{z};
  std::vector<std::uint8_t> out(std::size_t{1} << 16);
  std::size_t have = 0;
  Header h;
  z.next_in = const_cast<Bytef*>(in.data());
  z.avail_in = static_cast<uInt>(in.size());
  int rc = Z_OK;
  std::string error;
  while (true) {
    if (have == out.size()) {
      if (h.bytes != 0 && have > h.bytes) break;  // more data than declared: stop reading
      std::size_t grow = out.size() * 2;
      if (h.bytes != 0) grow = std::min(grow, h.bytes + 1);
      if (grow <= out.size()) grow = out.size() + 1;
      out.resize(grow);
    }
    z.next_out = out.data() + have;
    z.avail_out = static_cast<uInt>(std::min<std::size_t>(out.size() - have, 1u << 30));
    const uInt before = z.avail_out;
    rc = inflate(&z, Z_NO_FLUSH);
    have += before - z.avail_out;
    if (h.bytes == 0) read_header(std::span(out.data(), have), name, h);
    if (rc == Z_STREAM_END) break;
    if (rc == Z_BUF_ERROR && z.avail_in == 0) {
      error = "the gzip stream ends early (truncated)";
      break;
    }
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      error = fmt::format("corrupt gzip data ({})", z.msg != nullptr ? z.msg : zError(rc));
      break;
    }
  }
  const std::size_t left = z.avail_in;
  if (h.bytes != 0 && have > h.bytes)
    fail(name, fmt::format("more data than its header declares ({}, {} bytes of data)",
                           dims_text(h.dims), h.bytes - 4 - 4 * h.dims.size()));
  if (!error.empty()) fail(name, error);
  if (left > 0) fail(name, fmt::format("{} bytes after the end of the gzip stream", left));
  out.resize(have);
  return out;
}

// The file's bytes become the data in place (the header moved out), so a 47 MB file is held
// once, not twice.
IdxArray from_raw(std::vector<std::uint8_t> b, const std::string& name, const char* what) {
  Header h;
  if (!read_header(b, name, h))
    fail(name, fmt::format("truncated: {} bytes{}, too few for an IDX header", b.size(), what));
  const std::size_t head = 4 + 4 * h.dims.size();
  if (b.size() < h.bytes)
    fail(name, fmt::format("truncated: the header declares {} ({} bytes of data), the file{} has "
                           "{}",
                           dims_text(h.dims), h.bytes - head, what, b.size() - head));
  if (b.size() > h.bytes)
    fail(name, fmt::format("{} bytes after the data its header declares ({}){}", b.size() - h.bytes,
                           dims_text(h.dims), what));
  b.erase(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(head));
  return {h.dims, std::move(b)};
}

// A whole file's bytes, plain or gzip, given up as soon as they are decompressed.
IdxArray parse_owned(std::vector<std::uint8_t> bytes, const std::string& name) {
  if (bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b) {
    std::vector<std::uint8_t> raw = gunzip(bytes, name);
    std::vector<std::uint8_t>().swap(bytes);
    return from_raw(std::move(raw), name, " (decompressed)");
  }
  return from_raw(std::move(bytes), name, "");
}

// The seed words, in 32-bit halves, make mt19937_64's seed sequence (std::seed_seq is fixed by the
// standard, as is the engine).
std::mt19937_64 engine(std::span<const std::uint64_t> seed) {
  std::vector<std::uint32_t> words;
  for (std::uint64_t s : seed) {
    words.push_back(static_cast<std::uint32_t>(s));
    words.push_back(static_cast<std::uint32_t>(s >> 32));
  }
  std::seed_seq seq(words.begin(), words.end());
  return std::mt19937_64(seq);
}

// A uniform integer in [0, bound) without modulo bias (rejection of the short top range).
std::uint64_t below(std::mt19937_64& e, std::uint64_t bound) {
  const std::uint64_t threshold = (0 - bound) % bound;
  while (true) {
    const std::uint64_t r = e();
    if (r >= threshold) return r % bound;
  }
}

std::filesystem::path find_file(const std::filesystem::path& dir, const std::string& base) {
  for (const std::string& name : {base, base + ".gz"}) {
    if (std::filesystem::is_regular_file(dir / name)) return dir / name;
  }
  return {};
}

constexpr std::array<const char*, 4> kFashionFiles = {
    "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte"};

}  // namespace

IdxArray parse_idx(std::span<const std::uint8_t> bytes, const std::string& name) {
  return parse_owned(std::vector<std::uint8_t>(bytes.begin(), bytes.end()), name);
}

IdxArray read_idx(const std::filesystem::path& path) {
  std::vector<std::uint8_t> bytes;
  try {
    bytes = read_file(path);
  } catch (const FileError&) {
    fail(path.string(), "cannot open it");
  }
  return parse_owned(std::move(bytes), path.string());
}

ImageSet ImageSet::subset(std::span<const Index> which) const {
  ImageSet s{rows, cols, classes, {}, {}};
  const auto area = static_cast<std::size_t>(rows * cols);
  s.pixels.resize(which.size() * area);
  s.labels.resize(which.size());
  for (std::size_t k = 0; k < which.size(); ++k) {
    if (which[k] < 0 || which[k] >= size())
      throw UsageError(fmt::format("ImageSet::subset: index {} is outside the set of {} images",
                                   which[k], size()));
    const auto i = static_cast<std::size_t>(which[k]);
    std::copy_n(pixels.begin() + static_cast<std::ptrdiff_t>(i * area), area,
                s.pixels.begin() + static_cast<std::ptrdiff_t>(k * area));
    s.labels[k] = labels[i];
  }
  return s;
}

ImageSet load_image_set(const std::filesystem::path& images, const std::filesystem::path& labels,
                        Index classes) {
  IdxArray im = read_idx(images), lb = read_idx(labels);
  if (im.dims.size() != 3)
    fail(images.string(), fmt::format("an images file has 3 dimensions (images x rows x "
                                      "columns), this one {} ({})",
                                      im.dims.size(), dims_text(im.dims)));
  if (lb.dims.size() != 1)
    fail(labels.string(), fmt::format("a labels file has 1 dimension, this one {} ({})",
                                      lb.dims.size(), dims_text(lb.dims)));
  if (im.dims[0] == 0 || im.dims[1] == 0 || im.dims[2] == 0)
    fail(images.string(), fmt::format("holds no pixels ({})", dims_text(im.dims)));
  if (lb.dims[0] != im.dims[0])
    fail(labels.string(), fmt::format("holds {} labels, but '{}' holds {} images", lb.dims[0],
                                      images.string(), im.dims[0]));
  for (std::size_t i = 0; i < lb.data.size(); ++i) {
    if (lb.data[i] >= classes)
      fail(labels.string(),
           fmt::format("label {} of image {} is not a class (0..{})", lb.data[i], i, classes - 1));
  }
  return {static_cast<Index>(im.dims[1]), static_cast<Index>(im.dims[2]), classes,
          std::move(im.data), std::move(lb.data)};
}

bool has_fashion_mnist(const std::filesystem::path& dir) {
  for (const char* f : kFashionFiles) {
    if (find_file(dir, f).empty()) return false;
  }
  return true;
}

FashionMnist load_fashion_mnist(const std::filesystem::path& dir) {
  std::array<std::filesystem::path, 4> p;
  for (std::size_t k = 0; k < 4; ++k) {
    p[k] = find_file(dir, kFashionFiles[k]);
    if (p[k].empty())
      throw FileError(fmt::format(
          "Fashion-MNIST: '{}' has no {} (nor {}.gz): Debian's dataset-fashion-mnist puts the "
          "files in {} (`tools/setup --data` installs it), or give the folder that holds them",
          dir.string(), kFashionFiles[k], kFashionFiles[k], kFashionMnistDir));
  }
  FashionMnist d{load_image_set(p[0], p[1], 10), load_image_set(p[2], p[3], 10)};
  if (d.train.rows != d.test.rows || d.train.cols != d.test.cols)
    fail(p[2].string(), fmt::format("its images are {}x{}, the training images {}x{}", d.test.rows,
                                    d.test.cols, d.train.rows, d.train.cols));
  return d;
}

const std::array<std::string, 10>& fashion_mnist_classes() {
  static const std::array<std::string, 10> names = {
      "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
      "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

ImageView image_view(const std::string& name) {
  if (name == "rows") return ImageView::rows;
  if (name == "pixels") return ImageView::pixels;
  if (name == "permuted") return ImageView::permuted;
  throw UsageError(
      fmt::format("unknown image view '{}' (expected rows, pixels or permuted)", name));
}

SequenceView::SequenceView(ImageView view, Index rows, Index cols, std::uint64_t seed)
    : view_(view), rows_(rows), cols_(cols) {
  if (rows <= 0 || cols <= 0)
    throw UsageError(fmt::format("SequenceView: images of {}x{} pixels", rows, cols));
  if (view == ImageView::pixels) {
    order_.resize(static_cast<std::size_t>(rows * cols));
    for (std::size_t k = 0; k < order_.size(); ++k) order_[k] = static_cast<Index>(k);
  } else if (view == ImageView::permuted) {
    const std::array<std::uint64_t, 2> words{seed, 0x7065726d75746564ull};  // "permuted"
    order_ = permutation(rows * cols, words);
  }
}

SequenceView& SequenceView::standardize(double mean, double std) {
  if (!(std > 0) || !std::isfinite(mean))
    throw UsageError(fmt::format("SequenceView::standardize: mean {}, std {}", mean, std));
  mean_ = mean;
  std_ = std;
  return *this;
}

std::pair<double, double> pixel_moments(const ImageSet& set) {
  std::array<std::uint64_t, 256> histogram{};
  for (std::uint8_t v : set.pixels) ++histogram[v];
  double n = 0, sum = 0;
  for (std::size_t v = 0; v < 256; ++v) {
    n += static_cast<double>(histogram[v]);
    sum += static_cast<double>(histogram[v]) * static_cast<double>(v) / 255;
  }
  if (n == 0) return {0.0, 0.0};
  const double mean = sum / n;
  double squares = 0;
  for (std::size_t v = 0; v < 256; ++v) {
    const double d = static_cast<double>(v) / 255 - mean;
    squares += static_cast<double>(histogram[v]) * d * d;
  }
  return {mean, std::sqrt(squares / n)};
}

Index SequenceView::steps() const { return view_ == ImageView::rows ? rows_ : rows_ * cols_; }
Index SequenceView::features() const { return view_ == ImageView::rows ? cols_ : 1; }

template <class T>
std::vector<Matrix<T>> SequenceView::operator()(const ImageSet& set,
                                                std::span<const Index> which) const {
  if (set.rows != rows_ || set.cols != cols_)
    throw UsageError(fmt::format("SequenceView: the view is of {}x{} images, the set's are {}x{}",
                                 rows_, cols_, set.rows, set.cols));
  const auto n = static_cast<Index>(which.size());
  std::vector<Matrix<T>> xs(static_cast<std::size_t>(steps()), Matrix<T>(n, features()));
  const auto area = static_cast<std::size_t>(rows_ * cols_);
  for (Index k = 0; k < n; ++k) {
    const Index i = which[static_cast<std::size_t>(k)];
    if (i < 0 || i >= set.size())
      throw UsageError(
          fmt::format("SequenceView: index {} is outside the set of {} images", i, set.size()));
    const std::uint8_t* img = set.pixels.data() + static_cast<std::size_t>(i) * area;
    if (view_ == ImageView::rows) {
      for (Index t = 0; t < rows_; ++t)
        for (Index c = 0; c < cols_; ++c)
          xs[static_cast<std::size_t>(t)](k, c) = pixel<T>(img[t * cols_ + c]);
    } else {
      for (std::size_t t = 0; t < order_.size(); ++t) xs[t](k, 0) = pixel<T>(img[order_[t]]);
    }
  }
  return xs;
}

template std::vector<Matrix<float>> SequenceView::operator()(const ImageSet&,
                                                             std::span<const Index>) const;
template std::vector<Matrix<double>> SequenceView::operator()(const ImageSet&,
                                                              std::span<const Index>) const;

std::vector<Index> permutation(Index n, std::span<const std::uint64_t> seed) {
  std::vector<Index> p(static_cast<std::size_t>(std::max<Index>(n, 0)));
  for (std::size_t k = 0; k < p.size(); ++k) p[k] = static_cast<Index>(k);
  std::mt19937_64 e = engine(seed);
  for (std::size_t i = p.size(); i > 1; --i) std::swap(p[i - 1], p[below(e, i)]);
  return p;
}

Split split_indices(Index n, Index validation, std::uint64_t seed) {
  if (validation < 0 || validation >= n)
    throw UsageError(
        fmt::format("a validation split of {} from {} examples (it must leave some to train on)",
                    validation, n));
  const std::array<std::uint64_t, 2> words{seed, 0x73706c6974ull};  // "split"
  const std::vector<Index> p = permutation(n, words);
  Split s;
  s.train.assign(p.begin(), p.end() - validation);
  s.validation.assign(p.end() - validation, p.end());
  std::sort(s.train.begin(), s.train.end());
  std::sort(s.validation.begin(), s.validation.end());
  return s;
}

std::vector<Index> epoch_order(Index n, std::uint64_t seed, long epoch) {
  const std::array<std::uint64_t, 3> words{seed, static_cast<std::uint64_t>(epoch),
                                           0x65706f6368ull};  // "epoch"
  return permutation(n, words);
}

}  // namespace rwd::layers
