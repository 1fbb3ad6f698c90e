// Weight files: bit-exact round trips, strict loading, and rejection of every kind of damage.
#include <boost/test/unit_test.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <rewind/rewind.hpp>

using namespace rwd;
namespace fs = std::filesystem;

namespace {

std::vector<std::uint8_t> read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A file from a header (as JSON text) and a data section.
std::vector<std::uint8_t> make_file(const std::string& header, std::size_t data_bytes) {
  std::vector<std::uint8_t> b(8 + header.size() + data_bytes, 0);
  const std::uint64_t n = header.size();
  std::memcpy(b.data(), &n, 8);
  std::memcpy(b.data() + 8, header.data(), header.size());
  return b;
}

std::string parse_error(const std::vector<std::uint8_t>& bytes) {
  try {
    (void)layers::parse_tensor_file(bytes);
  } catch (const FileError& e) {
    return e.what();
  }
  return "accepted";
}

}  // namespace

// A suite's fixture is the base of its test cases, so it lives in a named namespace: in a unity
// unit this file is not the main file, and GCC warns about a base from an anonymous one.
namespace safetensors_fixture {
struct TempDir {
  fs::path path = fs::temp_directory_path() / fmt::format("rewind_test_{}", ::getpid());
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
};
}  // namespace safetensors_fixture

BOOST_FIXTURE_TEST_SUITE(safetensors, safetensors_fixture::TempDir)

BOOST_AUTO_TEST_CASE(round_trip_is_bit_exact_in_float_and_double) {
  layers::Rng rng(1);
  layers::Lstm<double> a({.input = 3, .hidden = 5, .num_layers = 2}, rng);
  layers::Lstm<double> b({.input = 3, .hidden = 5, .num_layers = 2}, rng);  // other values
  a.named_parameters()[0]->value(0, 0) = std::numeric_limits<double>::denorm_min();
  layers::save_parameters(path / "a.safetensors", a.named_parameters(), {{"model", "lstm"}});
  layers::load_parameters(path / "a.safetensors", b.named_parameters());
  for (std::size_t k = 0; k < a.named_parameters().size(); ++k) {
    const auto& x = a.named_parameters()[k]->value;
    const auto& y = b.named_parameters()[k]->value;
    BOOST_TEST(
        std::memcmp(x.data(), y.data(), sizeof(double) * static_cast<std::size_t>(x.size())) == 0);
  }
  layers::Linear<float> f({.in = 4, .out = 3}, rng), g({.in = 4, .out = 3}, rng);
  layers::save_parameters(path / "f.safetensors", f.named_parameters());
  layers::load_parameters(path / "f.safetensors", g.named_parameters());
  BOOST_TEST(std::memcmp(f.weight.value.data(), g.weight.value.data(), 12 * sizeof(float)) == 0);
  BOOST_TEST(std::memcmp(f.bias.value.data(), g.bias.value.data(), 3 * sizeof(float)) == 0);
  const auto file = layers::parse_tensor_file(read_bytes(path / "a.safetensors"));
  BOOST_TEST(file.metadata.at("model") == "lstm");
  BOOST_TEST(file.find("weight_hh_l1")->dtype == "F64");
}

BOOST_AUTO_TEST_CASE(loading_checks_names_dtypes_and_shapes_and_changes_nothing_on_failure) {
  layers::Rng rng(2);
  layers::Gru<double> small({.input = 3, .hidden = 4}, rng);
  layers::Gru<double> big({.input = 3, .hidden = 5, .num_layers = 2}, rng);
  layers::save_parameters(path / "small.safetensors", small.named_parameters());
  const Matrix<double> before = big.named_parameters()[0]->value;
  try {
    layers::load_parameters(path / "small.safetensors", big.named_parameters());
    BOOST_ERROR("no exception");
  } catch (const FileError& e) {
    const std::string m = e.what();
    BOOST_TEST(
        m.find("missing: weight_ih_l1, weight_hh_l1, bias_ih_l1, bias_hh_l1") != std::string::npos,
        m);
    BOOST_TEST(m.find("'weight_ih_l0' has shape 12x3 in the file but 15x3 in the model") !=
                   std::string::npos,
               m);
  }
  BOOST_TEST(big.named_parameters()[0]->value.isApprox(before));  // untouched
  layers::Gru<float> as_float({.input = 3, .hidden = 4}, rng);
  try {
    layers::load_parameters(path / "small.safetensors", as_float.named_parameters());
    BOOST_ERROR("no exception");
  } catch (const FileError& e) {
    BOOST_TEST(std::string(e.what()).find(
                   "'weight_ih_l0' is F64 in the file but F32 in the model") != std::string::npos);
  }
  layers::load_parameters(path / "small.safetensors", as_float.named_parameters(),
                          {.convert_dtype = true});
  BOOST_TEST(
      (as_float.named_parameters()[0]->value.cast<double>() - small.named_parameters()[0]->value)
          .norm() < 1e-6);
  layers::Gru<double> fewer({.input = 3, .hidden = 4, .bias = false}, rng);
  try {
    layers::load_parameters(path / "small.safetensors", fewer.named_parameters());
    BOOST_ERROR("no exception");
  } catch (const FileError& e) {
    BOOST_TEST(
        std::string(e.what()).find("not in the model: bias_hh_l0, bias_ih_l0") != std::string::npos,
        e.what());
  }
  layers::load_parameters(path / "small.safetensors", fewer.named_parameters(),
                          {.allow_unexpected = true});
}

BOOST_AUTO_TEST_CASE(every_truncation_is_rejected) {
  layers::Rng rng(3);
  layers::Lstm<float> m({.input = 2, .hidden = 3}, rng);
  layers::save_parameters(path / "m.safetensors", m.named_parameters());
  const auto bytes = read_bytes(path / "m.safetensors");
  BOOST_TEST(parse_error(bytes) == "accepted");
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    const std::vector<std::uint8_t> prefix(bytes.begin(),
                                           bytes.begin() + static_cast<std::ptrdiff_t>(n));
    BOOST_TEST(parse_error(prefix) != "accepted", "prefix of " << n << " bytes was accepted");
  }
  std::vector<std::uint8_t> longer = bytes;
  longer.push_back(0);
  BOOST_TEST(parse_error(longer) == "safetensors: 1 bytes of data after the last tensor");
}

BOOST_AUTO_TEST_CASE(damaged_headers_are_rejected_with_a_reason) {
  BOOST_TEST(parse_error({1, 2, 3}) ==
             "safetensors: truncated: 3 bytes, but the header length alone takes 8");
  std::vector<std::uint8_t> huge(16, 0);
  huge[7] = 0x7f;  // header length 2^62
  BOOST_TEST(
      parse_error(huge).find("the header claims 9151314442816847872 bytes but only 8 follow") !=
      std::string::npos);
  BOOST_TEST(parse_error(make_file("{\"a\": ", 0))
                 .starts_with("safetensors: the header is not valid JSON"));
  BOOST_TEST(parse_error(make_file("[1, 2]", 0)) == "safetensors: the header is not a JSON object");
  BOOST_TEST(parse_error(make_file(R"({"w":{"dtype":"Q8","shape":[1],"data_offsets":[0,1]}})",
                                   1)) == "safetensors: unknown dtype 'Q8'");
  BOOST_TEST(
      parse_error(make_file(R"({"w":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}})", 2)) ==
      "safetensors: dtype F16 is not supported (F32 and F64 are)");
  BOOST_TEST(
      parse_error(make_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4)) ==
      "safetensors: tensor 'w': offsets [0, 8) lie outside the 4 bytes of data");
  BOOST_TEST(
      parse_error(make_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", 4)) ==
      "safetensors: tensor 'w': 4 bytes of data for 2 elements of F32 (8 expected)");
  BOOST_TEST(
      parse_error(make_file(
          R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
          12)) == "safetensors: tensor 'b' overlaps another tensor's data");
  BOOST_TEST(
      parse_error(make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8)) ==
      "safetensors: a hole in the data before tensor 'a' (bytes [0, 4))");
  BOOST_TEST(
      parse_error(make_file(
          R"({"w":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8)) ==
      "safetensors: tensor 'w': dimension 4294967296 exceeds the 8 bytes of data");
  BOOST_TEST(
      parse_error(make_file(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4)) ==
      "safetensors: tensor 'w': a dimension is not a non-negative integer");
  BOOST_TEST(
      parse_error(make_file(R"({"w":{"dtype":"F32","shape":[1,1,1],"data_offsets":[0,4]}})", 4)) ==
      "safetensors: tensor 'w': shape must be an array of at most 2 dimensions");
  BOOST_TEST(parse_error(make_file(R"({"w":{"dtype":"F32","shape":[1]}})", 4)) ==
             "safetensors: tensor 'w' needs dtype, shape and data_offsets");
  BOOST_TEST(parse_error(make_file(R"({"__metadata__":{"a":1}})", 0)) ==
             "safetensors: metadata 'a' is not a string");
  try {
    layers::Rng rng(0);
    layers::Linear<double> l({.in = 1, .out = 1}, rng);
    layers::load_parameters(path / "does_not_exist.safetensors", l.named_parameters());
    BOOST_ERROR("no exception");
  } catch (const FileError& e) {
    BOOST_TEST(std::string(e.what()).find("cannot open") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(a_model_trained_in_pytorch_gives_the_same_outputs) {
  // tools/torch_trained_model.py: nn.LSTM(2, 8, num_layers=2) + nn.Linear(8, 1), trained 30 Adam
  // steps in float32, converted by tools/torch_to_safetensors.py --strip lstm.
  std::ifstream in(std::string(REWIND_TEST_DATA) + "/torch_lstm_adding.json");
  const auto ref = nlohmann::json::parse(in);
  layers::Rng rng(0);
  layers::Lstm<float> lstm({.input = 2, .hidden = 8, .num_layers = 2}, rng);
  layers::Linear<float> head({.in = 8, .out = 1, .prefix = "head."}, rng);
  auto params = lstm.named_parameters();
  layers::append(params, head.named_parameters());
  layers::load_parameters(std::string(REWIND_TEST_DATA) + "/torch_lstm_adding.safetensors", params);
  Tape<float> tape;
  std::vector<Var<float>> xs;
  for (const auto& step : ref["x"]) {
    Matrix<float> x(static_cast<Index>(step.size()), 2);
    for (Index b = 0; b < x.rows(); ++b) {
      for (Index c = 0; c < 2; ++c)
        x(b, c) = step[static_cast<std::size_t>(b)][static_cast<std::size_t>(c)].get<float>();
    }
    xs.push_back(tape.constant(x));
  }
  const Var<float> y = head(tape, lstm(tape, xs).outputs.back());
  for (Index b = 0; b < y.rows(); ++b) {
    const float expected = ref["y"][static_cast<std::size_t>(b)][0].get<float>();
    BOOST_TEST(std::abs(y.value()(b, 0) - expected) < 1e-5f,
               "row " << b << ": " << y.value()(b, 0) << " vs " << expected);
  }
}

BOOST_AUTO_TEST_SUITE_END()
