// libFuzzer target for the IDX reader (plain and gzip): any byte string must either parse into
// an array whose data matches its dimensions or be rejected with FileError; never crash, hang or
// allocate beyond what the bytes can hold.
#include <cstdint>
#include <rewind/autograd/errors.hpp>
#include <rewind/layers/dataset.hpp>
#include <span>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto a = rwd::layers::parse_idx(std::span<const std::uint8_t>(data, size), "fuzz");
    std::size_t count = 1;
    for (std::size_t d : a.dims) count *= d;
    if (a.dims.empty() || count != a.data.size()) __builtin_trap();
  } catch (const rwd::FileError&) {
  }
  return 0;
}
