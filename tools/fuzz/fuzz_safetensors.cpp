// libFuzzer target for the weight-file parser: any byte string must either parse into a
// consistent TensorFile or be rejected with FileError; never crash, hang or allocate absurdly.
#include <cstdint>
#include <rewind/layers/safetensors.hpp>
#include <span>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto file = rwd::layers::parse_tensor_file(std::span<const std::uint8_t>(data, size));
    // What parsed must be self-consistent: every range inside the data, shapes matching sizes.
    for (const auto& e : file.entries) {
      if (e.end > file.data.size() || e.begin > e.end) __builtin_trap();
      std::size_t count = 1;
      for (auto d : e.shape) count *= static_cast<std::size_t>(d);
      if (count * (e.dtype == "F32" ? 4u : 8u) != e.end - e.begin) __builtin_trap();
    }
  } catch (const rwd::FileError&) {
  }
  return 0;
}
