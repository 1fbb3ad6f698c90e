// Chunked bump allocator behind a tape's values and gradients. Pointers stay valid until
// reset(): blocks are never moved or freed while a recording is alive, so a `Var::value()` map
// taken early is still good after thousands more ops. reset() keeps every block, so a training
// loop that records the same graph each step allocates nothing after its first step.
#pragma once

#include <algorithm>
#include <cstddef>
#include <memory>
#include <new>
#include <vector>

namespace rwd::detail {

template <class E>
class Arena {
 public:
  /// Storage for n elements, aligned to 64 bytes, uninitialised, valid until reset().
  E* allocate(std::size_t n) {
    n = (n + kAlignElems - 1) / kAlignElems * kAlignElems;
    while (block_ < blocks_.size()) {
      Block& b = blocks_[block_];
      if (used_ + n <= b.capacity) {
        E* p = b.data.get() + used_;
        used_ += n;
        return p;
      }
      ++block_;
      used_ = 0;
    }
    const std::size_t last = blocks_.empty() ? 0 : blocks_.back().capacity;
    const std::size_t cap = std::max({n, kMinBlock, std::min(2 * last, kMaxGrowth)});
    blocks_.push_back(Block{
        Pointer(static_cast<E*>(::operator new[](cap * sizeof(E), std::align_val_t{kAlignBytes}))),
        cap});
    block_ = blocks_.size() - 1;
    used_ = n;
    return blocks_.back().data.get();
  }

  /// Forgets every allocation; keeps the blocks for the next recording.
  void reset() {
    block_ = 0;
    used_ = 0;
  }

  /// Elements held, used or not.
  std::size_t capacity() const {
    std::size_t c = 0;
    for (const Block& b : blocks_) c += b.capacity;
    return c;
  }

 private:
  static constexpr std::size_t kAlignBytes = 64;
  static constexpr std::size_t kAlignElems = kAlignBytes / sizeof(E) > 0 ? kAlignBytes / sizeof(E)
                                                                         : 1;
  static constexpr std::size_t kMinBlock = std::size_t{1} << 14;
  static constexpr std::size_t kMaxGrowth = std::size_t{1} << 24;

  struct Free {
    void operator()(E* p) const { ::operator delete[](p, std::align_val_t{kAlignBytes}); }
  };
  using Pointer = std::unique_ptr<E[], Free>;
  struct Block {
    Pointer data;
    std::size_t capacity = 0;
  };

  std::vector<Block> blocks_;
  std::size_t block_ = 0;  // block being filled
  std::size_t used_ = 0;   // elements used in it
};

}  // namespace rwd::detail
