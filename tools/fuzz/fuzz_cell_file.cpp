// libFuzzer target for the cell-file parser: any text must either load into a cell or be
// rejected with CellFileError (a located message); never crash, hang, recurse without bound or
// allocate absurdly. Texts that parse are also built into a small cell (input 3, hidden 4),
// which records one step, when their parameters are small.
#include <cstdint>
#include <rewind/layers/cell_file.hpp>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const auto program = rwd::layers::parse_cell(text, "fuzz.cell");
    double numbers = 0;
    for (const auto& q : program->params) {
      numbers += program->evaluate_number(q.rows, 3, 4) * program->evaluate_number(q.cols, 3, 4);
    }
    for (const auto& s : program->states) numbers += program->evaluate_number(s.size, 3, 4);
    if (!(numbers < 1e5)) return 0;  // valid but big: building it only measures the allocator
    rwd::layers::Rng rng(1);
    rwd::layers::with_file_cell<double>(program, 3, 4, rng, [](auto&) {});
  } catch (const rwd::layers::CellFileError&) {
  } catch (const rwd::ShapeError&) {  // a cell's own size checks (not located: no file line)
  }
  return 0;
}
