#include "confusion.hpp"

#include <fstream>

namespace rwd::cli {
namespace {

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

}  // namespace

Confusion::Confusion(std::vector<std::string> classes)
    : classes_(std::move(classes)),
      counts_(Eigen::Matrix<long, Eigen::Dynamic, Eigen::Dynamic>::Zero(
          static_cast<Index>(classes_.size()), static_cast<Index>(classes_.size()))) {}

void Confusion::add(const ConstMap<float>& logits, std::span<const std::int32_t> labels) {
  const auto n = static_cast<Index>(classes_.size());
  if (logits.rows() != static_cast<Index>(labels.size()) || logits.cols() != n)
    throw UsageError(fmt::format("Confusion: logits are {}x{}, for {} labels of {} classes",
                                 logits.rows(), logits.cols(), labels.size(), n));
  for (Index r = 0; r < logits.rows(); ++r) {
    const std::int32_t truth = labels[static_cast<std::size_t>(r)];
    if (truth < 0 || truth >= n)
      throw UsageError(fmt::format("Confusion: label {} is not a class (0..{})", truth, n - 1));
    Index best = 0;
    logits.row(r).maxCoeff(&best);
    ++counts_(truth, best);
  }
}

double Confusion::accuracy() const {
  const long t = total();
  return t == 0 ? 0.0 : static_cast<double>(counts_.trace()) / static_cast<double>(t);
}

double Confusion::class_accuracy(Index k) const {
  const long n = counts_.row(k).sum();
  return n == 0 ? -1.0 : static_cast<double>(counts_(k, k)) / static_cast<double>(n);
}

std::string Confusion::table() const {
  const auto n = static_cast<Index>(classes_.size());
  std::size_t width = 5;
  for (const std::string& c : classes_) width = std::max(width, c.size());
  std::string s = fmt::format("{:>{}}  predicted:", "true", width);
  for (Index k = 0; k < n; ++k) s += fmt::format(" {:>5}", k);
  s += "  accuracy\n";
  for (Index k = 0; k < n; ++k) {
    s += fmt::format("{:>{}} {:>2}        ", classes_[static_cast<std::size_t>(k)], width, k);
    for (Index j = 0; j < n; ++j) s += fmt::format(" {:>5}", counts_(k, j));
    const double a = class_accuracy(k);
    s += a < 0 ? "         -\n" : fmt::format("  {:8.4f}\n", a);
  }
  return s;
}

void Confusion::write(const std::string& stem) const {
  const auto n = static_cast<Index>(classes_.size());
  {
    std::ofstream csv(stem + ".csv");
    if (!csv) throw FileError(fmt::format("cannot write '{}.csv'", stem));
    csv << "true";
    for (const std::string& c : classes_) csv << "," << csv_field(c);
    csv << ",accuracy\n";
    for (Index k = 0; k < n; ++k) {
      csv << csv_field(classes_[static_cast<std::size_t>(k)]);
      for (Index j = 0; j < n; ++j) csv << "," << counts_(k, j);
      const double a = class_accuracy(k);
      csv << "," << (a < 0 ? std::string() : fmt::format("{:.6f}", a)) << "\n";
    }
    if (!csv) throw FileError(fmt::format("cannot write '{}.csv'", stem));
  }
  // Cells of 44 px, class names on the left and (turned) on top; a cell's shade is its share of
  // the true class's examples, its text the count.
  constexpr int kCell = 44, kLeft = 130, kTop = 120;
  const int side = static_cast<int>(n) * kCell;
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "font-family=\"sans-serif\" font-size=\"11\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{}\" y=\"18\" font-size=\"14\">Confusion matrix: accuracy {:.4f} of {} "
      "examples</text>\n"
      "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">predicted</text>\n"
      "<text x=\"12\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 12 "
      "{})\">true</text>\n",
      kLeft + side + 70, kTop + side + 20, 10, accuracy(), total(), kLeft + side / 2, 36,
      kTop + side / 2, kTop + side / 2);
  svg += fmt::format("<text x=\"{}\" y=\"{}\">accuracy</text>\n", kLeft + side + 8, kTop - 6);
  for (Index k = 0; k < n; ++k) {
    const std::string name = xml_escape(classes_[static_cast<std::size_t>(k)]);
    const int at = static_cast<int>(k) * kCell + kCell / 2;
    svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n", kLeft - 6,
                       kTop + at + 4, name);
    svg += fmt::format("<text x=\"{}\" y=\"{}\" transform=\"rotate(-45 {} {})\">{}</text>\n",
                       kLeft + at, kTop - 6, kLeft + at, kTop - 6, name);
    const long row = counts_.row(k).sum();
    for (Index j = 0; j < n; ++j) {
      const double share =
          row == 0 ? 0.0 : static_cast<double>(counts_(k, j)) / static_cast<double>(row);
      // White to a deep blue (#08306b), text white on the dark half.
      const auto mix = [&](int from, int to) {
        return static_cast<int>(from + (to - from) * share + 0.5);
      };
      svg += fmt::format(
          "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"rgb({},{},{})\" "
          "stroke=\"#ccc\"><title>{} as {}: {}</title></rect>\n"
          "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"{}\">{}</text>\n",
          kLeft + static_cast<int>(j) * kCell, kTop + static_cast<int>(k) * kCell, kCell, kCell,
          mix(255, 8), mix(255, 48), mix(255, 107), name,
          xml_escape(classes_[static_cast<std::size_t>(j)]), counts_(k, j),
          kLeft + static_cast<int>(j) * kCell + kCell / 2,
          kTop + static_cast<int>(k) * kCell + kCell / 2 + 4, share > 0.5 ? "white" : "black",
          counts_(k, j));
    }
    const double a = class_accuracy(k);
    svg += fmt::format("<text x=\"{}\" y=\"{}\">{}</text>\n", kLeft + side + 8, kTop + at + 4,
                       a < 0 ? std::string("-") : fmt::format("{:.3f}", a));
  }
  svg += "</svg>\n";
  std::ofstream out(stem + ".svg");
  out << svg;
  if (!out) throw FileError(fmt::format("cannot write '{}.svg'", stem));
}

}  // namespace rwd::cli
