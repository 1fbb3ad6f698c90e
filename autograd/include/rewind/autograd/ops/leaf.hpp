// Leaves: nodes with no inputs. Their value is copied onto the tape when they are recorded, so
// they have no forward or backward. `label` indexes the tape's label table.
#pragma once

#include <cstdint>
#include <string_view>

namespace rwd::ops {

/// A tensor that receives a gradient (`Var::grad` after backward).
struct Input {
  static constexpr std::string_view name = "input";
  static constexpr int arity = 0;
  std::uint32_t label = 0;
};

/// A tensor that receives no gradient (data, masks, targets).
struct Constant {
  static constexpr std::string_view name = "constant";
  static constexpr int arity = 0;
  std::uint32_t label = 0;
};

/// A Parameter's value; after backward its gradient is added into `Parameter::grad`.
struct Param {
  static constexpr std::string_view name = "param";
  static constexpr int arity = 0;
  std::uint32_t label = 0;
  std::uint32_t slot = 0;  ///< index into the tape's parameter table
};

}  // namespace rwd::ops
