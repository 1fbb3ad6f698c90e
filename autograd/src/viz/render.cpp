// Rendering through Graphviz's library (libgvc): DOT text laid out and drawn in process, with a
// deterministic id discipline; without libgvc, render() says how to render instead.
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "rewind/autograd/graphviz.hpp"
#include "structure.hpp"

#if REWIND_HAVE_GVC
#include <graphviz/cgraph.h>
#include <graphviz/gvc.h>
#endif

namespace rwd {

// ---- rendering ----------------------------------------------------------------------------------

#if REWIND_HAVE_GVC
namespace {
std::mutex gv_mutex;  // Graphviz's error handler and context are process-wide
std::string* gv_errors = nullptr;
// One context for the whole process, never freed: Graphviz 2.42 keeps a font cache across
// contexts, and freeing one context then creating another reads freed memory in the text-size
// code (AddressSanitizer caught it on the second render in one process).
GVC_t* gv_context() {
  static GVC_t* gvc = gvContext();
  return gvc;
}
int collect_error(char* message) {
  if (gv_errors != nullptr) *gv_errors += message;
  return 0;
}
}  // namespace

bool viz::have_gvc() { return true; }

namespace {
// Object ids in creation order. Graphviz's default id discipline makes a named object's id the
// address of its interned name, and orders subgraphs by id: a page laid out after other graphs
// in the same process came out with its clusters in a different order from run to run. With ids
// handed out in the order the DOT text names things, the layout depends on the text alone.
struct Ids {
  std::map<std::string, IDTYPE, std::less<>> by_name;
  std::vector<std::string> names;
  IDTYPE anonymous = 1;
};
void* ids_open(Agraph_t*, Agdisc_t*) { return new Ids; }
long ids_map(void* state, int, char* str, IDTYPE* id, int create) {
  auto* s = static_cast<Ids*>(state);
  if (str == nullptr) {
    *id = s->anonymous;
    s->anonymous += 2;
    return 1;
  }
  const auto it = s->by_name.find(std::string_view(str));
  if (it != s->by_name.end()) {
    *id = it->second;
    return 1;
  }
  if (create == 0) return 0;
  *id = static_cast<IDTYPE>(2 * s->names.size());
  s->names.emplace_back(str);
  s->by_name.emplace(str, *id);
  return 1;
}
long ids_alloc(void*, int, IDTYPE) { return 0; }
void ids_free(void*, int, IDTYPE) {}
char* ids_print(void* state, int, IDTYPE id) {
  auto* s = static_cast<Ids*>(state);
  if (id % 2 != 0 || id / 2 >= s->names.size()) return nullptr;
  return s->names[id / 2].data();
}
void ids_close(void* state) { delete static_cast<Ids*>(state); }
void ids_register(void*, int, void*) {}
Agiddisc_t ordered_ids{ids_open, ids_map, ids_alloc, ids_free, ids_print, ids_close, ids_register};

// Reads DOT text from memory, a line at a time (as Graphviz's own in-memory reader does).
struct Text {
  const char* at;
};
int text_read(void* chan, char* buf, int size) {
  auto* t = static_cast<Text*>(chan);
  int n = 0;
  while (n + 1 < size && *t->at != '\0') {
    const char c = *t->at++;
    buf[n++] = c;
    if (c == '\n') break;
  }
  return n;
}
Agiodisc_t text_io{text_read, nullptr, nullptr};

Agraph_t* read_ordered(const std::string& dot) {
  text_io.putstr = AgIoDisc.putstr;
  text_io.flush = AgIoDisc.flush;
  static Agdisc_t disc{&AgMemDisc, &ordered_ids, &text_io};
  Text text{dot.c_str()};
  return agread(&text, &disc);
}
}  // namespace

void viz::with_layout(const std::string& dot, std::string_view who,
                      const std::function<void(Agraph_s*)>& use) {
  std::lock_guard<std::mutex> lock(gv_mutex);
  std::string errors;
  gv_errors = &errors;
  const agusererrf previous = agseterrf(collect_error);
  const auto restore = [&] {
    agseterrf(previous);
    gv_errors = nullptr;
  };
  const auto fail = [&](const std::string& what) {
    restore();
    std::string detail = errors;
    while (!detail.empty() && (detail.back() == '\n' || detail.back() == ' ')) detail.pop_back();
    throw FileError(fmt::format("{}: {}{}{}", who, what, detail.empty() ? "" : ": ", detail));
  };
  GVC_t* gvc = gv_context();
  if (gvc == nullptr) fail("Graphviz could not start");
  Agraph_t* g = read_ordered(dot);
  if (g == nullptr) fail("Graphviz could not parse the graph");
  if (gvLayout(gvc, g, "dot") != 0) {
    agclose(g);
    fail("Graphviz layout failed (is the dot layout plugin installed?)");
  }
  try {
    use(g);
  } catch (const FileError& e) {
    gvFreeLayout(gvc, g);
    agclose(g);
    fail(e.what());
  } catch (...) {
    gvFreeLayout(gvc, g);
    agclose(g);
    restore();
    throw;
  }
  gvFreeLayout(gvc, g);
  agclose(g);
  restore();
}

std::string viz::render_data(Agraph_s* g, const char* format) {
  char* data = nullptr;
  unsigned int length = 0;
  if (gvRenderData(gv_context(), g, format, &data, &length) != 0 || data == nullptr)
    throw FileError(fmt::format("Graphviz could not render {}", format));
  std::string out(data, length);
  gvFreeRenderData(data);
  return out;
}

void render_dot(const std::string& dot, const std::filesystem::path& path, std::string format) {
  if (format.empty())
    format = path.extension().string().empty() ? "" : path.extension().string().substr(1);
  if (format != "svg" && format != "png" && format != "pdf") {
    throw UsageError(fmt::format("render: unsupported format '{}' (svg, png or pdf)", format));
  }
  viz::with_layout(dot, "render", [&](Agraph_s* g) {
    if (gvRenderFilename(gv_context(), g, format.c_str(), path.string().c_str()) != 0)
      throw FileError(fmt::format("Graphviz could not write '{}' as {}", path.string(), format));
  });
}

bool can_render() { return true; }
#else
bool viz::have_gvc() { return false; }

void viz::with_layout(const std::string&, std::string_view who,
                      const std::function<void(Agraph_s*)>&) {
  throw UsageError(fmt::format(
      "{}: this build of rewind has no Graphviz library (libgvc), which lays the graph out", who));
}

std::string viz::render_data(Agraph_s*, const char*) { return {}; }

bool can_render() { return false; }

void render_dot(const std::string&, const std::filesystem::path&, std::string) {
  throw UsageError(
      "render: this build of rewind has no Graphviz library (libgvc); write_dot still works, "
      "and `dot -Tsvg` renders its output");
}
#endif

}  // namespace rwd
