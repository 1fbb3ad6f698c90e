// The tape's sweeps, one component each (private header). Tape holds them behind one pointer:
// its public header needs none of their types, and recording never touches them.
#pragma once

#include <string_view>
#include <utility>
#include <vector>

#include "block.hpp"
#include "reverse.hpp"
#include "second_order.hpp"
#include "tangent.hpp"

namespace rwd::detail {

template <class T>
struct Sweeps {
  ReverseSweep<T> reverse;  // with its parallel plan and product terms
  TangentSweep<T> tangent;
  SecondOrderSweep<T> second_order;
  BlockSweeps<T> block;

  void clear() {
    reverse.clear();
    tangent.clear();
    second_order.clear();
    block.clear();
  }
};

}  // namespace rwd::detail
