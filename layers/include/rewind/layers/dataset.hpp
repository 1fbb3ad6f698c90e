// Real data: IDX files (the format of MNIST and Fashion-MNIST), labelled image sets, their
// sequence views (rows, pixels, permuted pixels) and seeded orders (splits, epochs).
//
// Fashion-MNIST comes from Debian's package `dataset-fashion-mnist` (`tools/setup --data`), whose
// four gzip-compressed IDX files sit in kFashionMnistDir. Every malformed file is one FileError
// naming the file and the fault: a wrong magic number, an element type other than unsigned byte,
// a header cut short, data shorter or longer than the header declares, a corrupt or truncated
// gzip stream, labels that do not match the images in count or are not a class.
//
// Orders are made by this file's own Fisher-Yates shuffle over std::mt19937_64 (whose output the
// standard fixes) rather than std::shuffle (whose use of the engine the standard leaves to each
// library), so a seed gives the same split and the same batches with any compiler.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <rewind/autograd/tensor.hpp>
#include <span>
#include <string>
#include <vector>

namespace rwd::layers {

/// The contents of an IDX file: unsigned bytes (element type 0x08) and their dimensions.
struct IdxArray {
  std::vector<std::size_t> dims;
  std::vector<std::uint8_t> data;  ///< row-major, the product of dims long
};

/// Reads an IDX file, gzip-compressed or not (told by its first two bytes, 1f 8b). FileError
/// naming the file and what is wrong with it (see above); nothing else escapes.
IdxArray read_idx(const std::filesystem::path& path);

/// The same from the file's bytes; `name` names the file in messages.
IdxArray parse_idx(std::span<const std::uint8_t> bytes, const std::string& name);

/// Labelled images: size() images of rows × cols bytes (0..255), each with a class below
/// `classes`.
struct ImageSet {
  Index rows = 0, cols = 0, classes = 0;
  std::vector<std::uint8_t> pixels;  ///< size()·rows·cols, image after image, row-major
  std::vector<std::uint8_t> labels;  ///< one per image
  Index size() const { return static_cast<Index>(labels.size()); }
  /// The images `which` (indices into this set), in that order. UsageError for an index out
  /// of range.
  ImageSet subset(std::span<const Index> which) const;
};

/// An images file (3-D IDX: images × rows × columns) and its labels file (1-D IDX). FileError
/// naming the file for a malformed file, an empty set, counts that differ, or a label that is
/// not below `classes`.
ImageSet load_image_set(const std::filesystem::path& images, const std::filesystem::path& labels,
                        Index classes);

/// Where Debian's dataset-fashion-mnist puts the files.
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

/// Fashion-MNIST (Xiao et al. 2017): 60 000 training and 10 000 test images, 28 × 28, 10 classes.
struct FashionMnist {
  ImageSet train, test;
};

/// The four files `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`,
/// `t10k-labels-idx1-ubyte` in `dir`, each plain or with `.gz`. FileError naming a missing file
/// (and how to install the package) or a malformed one; the two sets must have one image size.
FashionMnist load_fashion_mnist(const std::filesystem::path& dir = kFashionMnistDir);

/// Whether `dir` holds the four files (for tests and tools that skip without the data).
bool has_fashion_mnist(const std::filesystem::path& dir = kFashionMnistDir);

/// Fashion-MNIST's class names, by label.
const std::array<std::string, 10>& fashion_mnist_classes();

/// How an image becomes a sequence: a row per step (rows steps of cols features), a pixel per
/// step (rows·cols steps of 1, row-major order), or a pixel per step in a fixed order drawn from
/// a seed (the permuted task of Le et al. 2015).
enum class ImageView { rows, pixels, permuted };

/// "rows", "pixels", "permuted"; UsageError for another name.
ImageView image_view(const std::string& name);

/// The mean and standard deviation of a set's pixels scaled to [0, 1] (Fashion-MNIST's training
/// images: 0.2860 and 0.3530).
std::pair<double, double> pixel_moments(const ImageSet& set);

/// Sequence views of rows × cols images. Pixels are scaled to [0, 1] (value / 255), then
/// standardised ((x − mean) / std) when `standardize` was called.
class SequenceView {
 public:
  SequenceView(ImageView view, Index rows, Index cols, std::uint64_t seed = 0);
  /// Inputs (x − mean) / std instead of x: a recurrent net learns faster from zero-mean inputs
  /// of unit scale. UsageError unless std > 0.
  SequenceView& standardize(double mean, double std);
  ImageView view() const { return view_; }
  Index steps() const;
  Index features() const;
  /// The pixel order of the pixel views (row-major index of the pixel at each step); empty for
  /// rows.
  const std::vector<Index>& order() const { return order_; }
  /// The images `which` of `set` as steps() matrices of which.size() × features(): step t of
  /// example k is row k of matrix t. UsageError when the set's image size is not this view's.
  template <class T>
  std::vector<Matrix<T>> operator()(const ImageSet& set, std::span<const Index> which) const;

 private:
  ImageView view_;
  Index rows_, cols_;
  double mean_ = 0, std_ = 1;
  // In double, then rounded once: a float view is the double view rounded.
  template <class T>
  T pixel(std::uint8_t v) const {
    return static_cast<T>((static_cast<double>(v) / 255 - mean_) / std_);
  }
  std::vector<Index> order_;
};

/// A permutation of 0..n−1 drawn from `seed` (Fisher-Yates over mt19937_64 seeded from the
/// words of `seed`).
std::vector<Index> permutation(Index n, std::span<const std::uint64_t> seed);

/// A seeded split of 0..n−1: the last `validation` of a permutation from `seed` validate, the
/// rest train (both in increasing order). UsageError unless 0 ≤ validation < n.
struct Split {
  std::vector<Index> train, validation;
};
Split split_indices(Index n, Index validation, std::uint64_t seed);

/// The order of `n` training items in epoch `epoch` (0-based): a permutation from (seed, epoch)
/// alone, so a data cursor is (epoch, position) and a resumed run sees the same batches.
std::vector<Index> epoch_order(Index n, std::uint64_t seed, long epoch);

}  // namespace rwd::layers
