// Named parameters in the safetensors format: an 8-byte little-endian header length N, N bytes of
// JSON ({"name": {"dtype": "F32", "shape": [rows, cols], "data_offsets": [begin, end]}, ...,
// "__metadata__": {...}}), then the raw little-endian data. Python reads it with json and numpy
// alone (tools/safetensors_io.py), and tools/torch_to_safetensors.py writes a PyTorch
// state_dict in it.
//
// Reading never trusts the file: every size and offset is checked against the file's real size
// before anything is allocated or copied, offsets must tile the data without holes or overlaps,
// and a load validates every name, dtype and shape before it changes any parameter.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <rewind/autograd/errors.hpp>
#include <rewind/autograd/parameter.hpp>
#include <span>
#include <string>
#include <vector>

namespace rwd::layers {

/// One tensor described by a safetensors header.
struct TensorEntry {
  std::string name;
  std::string dtype;               ///< "F32" or "F64" (others are rejected)
  std::vector<Index> shape;        ///< 1 or 2 dimensions (a 1-D [n] is a 1×n row)
  std::size_t begin = 0, end = 0;  ///< byte range within the data section
};

/// A validated, parsed file: entries in header order, metadata, and the data section.
struct TensorFile {
  std::vector<TensorEntry> entries;
  std::map<std::string, std::string> metadata;
  std::span<const std::uint8_t> data;  ///< points into the bytes given to parse_tensor_file
  const TensorEntry* find(std::string_view name) const;
};

/// Parses and validates a whole file held in memory. Throws FileError saying what is wrong.
/// A file whose metadata holds a checksum (SaveOptions::checksum) must match it.
TensorFile parse_tensor_file(std::span<const std::uint8_t> bytes);

/// zlib's CRC-32 of `bytes`, continuing from `crc` (0 to start).
std::uint32_t crc32_update(std::uint32_t crc, std::span<const std::uint8_t> bytes);

/// A whole file's bytes; FileError ("cannot open 'path'") when it cannot be read.
std::vector<std::uint8_t> read_file(const std::filesystem::path& path);

/// Reads a whole file and parses it (`bytes` keeps the data `TensorFile::data` points into).
/// FileError names the file.
TensorFile read_tensor_file(const std::filesystem::path& path, std::vector<std::uint8_t>& bytes);

/// One tensor to write: name, dtype ("F32"/"F64"), rows × cols, row-major bytes.
struct TensorData {
  std::string name;
  const char* dtype;
  Index rows, cols;
  const void* data;
};
/// A matrix as a tensor to write (it must outlive the write).
template <class T>
TensorData tensor_data(std::string name, const Matrix<T>& m) {
  return {std::move(name), sizeof(T) == 4 ? "F32" : "F64", m.rows(), m.cols(), m.data()};
}

struct SaveOptions {
  /// Store a CRC-32 (zlib's) of the tensors' names, dtypes, shapes and bytes and of the other
  /// metadata under "rewind.crc32"; parse_tensor_file rejects a file that does not match, so a
  /// flipped bit anywhere is caught, not only a broken structure.
  bool checksum = false;
};

/// Writes tensors (names must be unique) atomically: to `path`.tmp, flushed to the disk
/// (fsync), renamed over `path`, and the directory synced, so after a crash `path` holds the old
/// file or the new one, never a part of either.
void save_tensors(const std::filesystem::path& path, std::span<const TensorData> tensors,
                  const std::map<std::string, std::string>& metadata = {},
                  const SaveOptions& options = {});

/// Writes the parameters (names must be unique) with their own dtype, atomically (save_tensors).
template <class T>
void save_parameters(const std::filesystem::path& path, const std::vector<Parameter<T>*>& params,
                     const std::map<std::string, std::string>& metadata = {});

struct LoadOptions {
  /// Accept F32 data for a double model and F64 for a float one (values are converted).
  bool convert_dtype = false;
  /// Accept files that lack some of the model's parameters (they keep their values).
  bool allow_missing = false;
  /// Accept files with tensors the model does not have (they are ignored).
  bool allow_unexpected = false;
};

/// Loads values into the parameters by name. Everything is checked first (names, dtypes,
/// shapes, the file's integrity) and all problems are reported in one FileError; only then are
/// the parameters written, so a failed load changes nothing.
template <class T>
void load_parameters(const std::filesystem::path& path, const std::vector<Parameter<T>*>& params,
                     const LoadOptions& options = {});

/// The checks of load_parameters on a parsed file: every problem, one per string (empty: the
/// parameters can be loaded).
template <class T>
std::vector<std::string> check_parameters(const TensorFile& file,
                                          const std::vector<Parameter<T>*>& params,
                                          const LoadOptions& options = {});
/// Copies a tensor of the file into `out` (its shape must already match, as check_parameters
/// ensures; F32 and F64 are converted).
template <class T>
void copy_tensor(const TensorFile& file, const TensorEntry& entry, Matrix<T>& out);

}  // namespace rwd::layers
