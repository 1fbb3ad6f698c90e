# The README's complete custom-cell program is examples/custom_cell.cpp, which the suite builds
# and runs, verbatim.
file(READ ${README} readme)
file(READ ${EXAMPLES}/custom_cell.cpp program)
string(FIND "${readme}" "```cpp\n${program}```" at)
if(at EQUAL -1)
  message(FATAL_ERROR "README.md does not show examples/custom_cell.cpp verbatim in a ```cpp block")
endif()
message(STATUS "ok: README.md shows examples/custom_cell.cpp")
