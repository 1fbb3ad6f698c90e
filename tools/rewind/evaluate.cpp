// `rewind evaluate`: saved weights of a data task on its test part.
#include <filesystem>

#include "model.hpp"

namespace rwd::cli {

double evaluate(const EvaluateOptions& e, std::ostream& out) {
  std::vector<std::uint8_t> bytes;
  const layers::TensorFile file = layers::read_tensor_file(e.weights, bytes);
  const auto meta = [&](const char* key) -> std::string {
    const auto it = file.metadata.find(key);
    return it == file.metadata.end() ? std::string() : it->second;
  };
  TrainOptions o;
  o.task = e.task.empty() ? meta("task") : e.task;
  if (!is_data_task(o.task))
    throw UsageError(fmt::format(
        "evaluate: '{}' {} a data task (fashion-rows, fashion-pixels, fashion-permuted); give "
        "--task",
        e.weights,
        o.task.empty() ? "names no task: it is not" : "was trained on '" + o.task + "', not"));
  const auto number = [&](const char* key) -> long {
    const std::string v = meta(key);
    char* end = nullptr;
    const long n = std::strtol(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0')
      throw FileError(
          fmt::format("evaluate: '{}' has no {} in its metadata (was it written by "
                      "rewind train --save?)",
                      e.weights, key));
    return n;
  };
  o.hidden = number("hidden");
  o.layers = static_cast<int>(number("layers"));
  o.bidirectional = number("bidirectional") != 0;
  o.seed = static_cast<std::uint64_t>(number("seed"));
  o.cell = meta("cell");
  o.cell_file = e.cell_file.empty() ? meta("cell_file") : e.cell_file;
  if (!o.cell_file.empty() && !std::filesystem::exists(o.cell_file))
    throw UsageError(
        fmt::format("evaluate: the weights are of the file cell '{}', which is not "
                    "there: give --cell-file",
                    o.cell_file));
  o.data = e.data;
  o.validation = 0;
  return with_model(o, [&](const Task& task, auto layer, Rng& rng) {
    Model<decltype(layer)> model(task, o, std::move(layer), rng);
    layers::load_parameters(e.weights, model.parameters());
    const Confusion c = model.evaluate(*task.data(), DataTask::Part::test, e.batch);
    out << fmt::format(
               "{} ({}, {} layer{}{}, hidden {}) on {}: test accuracy {:.4f} of {} "
               "images\n",
               e.weights, o.cell, o.layers, o.layers > 1 ? "s" : "",
               o.bidirectional ? ", bidirectional" : "", o.hidden, task.name(), c.accuracy(),
               c.total())
        << c.table();
    if (!e.confusion.empty()) {
      c.write(e.confusion);
      out << fmt::format("wrote {0}.csv and {0}.svg\n", e.confusion);
    }
    return c.accuracy();
  });
}

}  // namespace rwd::cli
