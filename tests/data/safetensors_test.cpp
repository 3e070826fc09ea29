// tests/data/safetensors_test.cpp: safetensors (formats.md §6): round trips of every dtype lumen
// reads, the writer's header layout byte for byte, each of the seven validation rules on a
// hand-made bad file (error text checked), unaligned data, refused dtypes, sharded checkpoints,
// and CRC32C against the standard check values.
#include "data/crc32c.h"
#include "data/safetensors.h"
#include "tests/data/data_test_util.h"
#include "tests/harness.h"

#include <cmath>
#include <cstdlib>
#include <cstring>

using namespace lumen;
using namespace lumen::data;
using lumen::test::read_bytes;
using lumen::test::ScratchDir;
using lumen::test::write_bytes;

namespace {

// A safetensors file from its parts: the 8-byte little-endian length, the header text, the data.
std::string st_bytes(const std::string& header, const std::string& data, std::optional<uint64_t> n = {}) {
    const uint64_t length = n.value_or(header.size());
    std::string out(8, '\0');
    std::memcpy(out.data(), &length, 8);
    return out + header + data;
}

template <typename T>
std::string le_bytes(std::initializer_list<T> values) {
    return std::string(reinterpret_cast<const char*>(std::data(values)), values.size() * sizeof(T));
}

std::vector<uint8_t> host_bytes(const Tensor& t) {
    std::vector<uint8_t> out(size_t(t.numel()) * dtype_size(t.dtype()));
    tensor_to_host(t, out.data(), t.dtype());
    return out;
}

}  // namespace

// ---------------------------------------------------------------- CRC32C

TEST_CASE("crc32c: the standard check value and RFC 3720's test vectors") {
    CHECK(crc32c(std::string_view("123456789")) == 0xE3069283u);
    CHECK(crc32c(std::string_view("")) == 0u);
    CHECK(crc32c(std::string(32, '\0')) == 0x8A9136AAu);
    CHECK(crc32c(std::string(32, '\xff')) == 0x62A8AB43u);
    std::string up, down;
    for (int i = 0; i < 32; ++i) up += char(i), down += char(31 - i);
    CHECK(crc32c(up) == 0x46DD794Eu);
    CHECK(crc32c(down) == 0x113FDB5Cu);
    // Chaining over any split gives the CRC of the whole (covers the 8-byte loop and the tail).
    const std::string text = "The quick brown fox jumps over the lazy dog, 0123456789 times.";
    for (size_t split = 0; split <= text.size(); ++split)
        CHECK(crc32c(std::string_view(text).substr(split), crc32c(std::string_view(text).substr(0, split))) ==
              crc32c(text));
    CHECK(crc32c_hex(0xE3069283u) == "e3069283");
    CHECK(crc32c_hex(0x0000abcdu) == "0000abcd");
    ScratchDir dir("crc32c");
    write_bytes(dir.file("f"), "123456789");
    const FileDigest d = digest_file(dir.file("f"));
    CHECK(d.bytes == 9);
    CHECK(d.crc32c == 0xE3069283u);
    CHECK_THROWS_CONTAINING(digest_file(dir.file("missing")), "missing: cannot open for reading");
}

// ---------------------------------------------------------------- round trips

LUMEN_DEVICE_TEST("safetensors: every dtype lumen reads round trips, scalars and empty tensors included") {
    ScratchDir dir("st_roundtrip_" + device.str());
    const std::string path = dir.file("t.safetensors");
    std::vector<std::pair<std::string, Tensor>> tensors = {
        {"f32", Tensor::from(std::vector<float>{1.5f, -0.0f, 3e38f, -1e-45f, INFINITY, NAN}, {2, 3}, device)},
        {"f64", Tensor::from(std::vector<double>{1.0 / 3.0, -2.5e300}, {2}, device)},
        {"bf16", Tensor::from(std::vector<bf16>{bf16::from_bits(0x3f80), bf16::from_bits(0x7fc1),
                                                bf16::from_bits(0x8001)}, {3, 1}, device)},
        {"f16", Tensor::from(std::vector<f16>{f16::from_bits(0x3c00), f16::from_bits(0x0001),
                                              f16::from_bits(0xfc00), f16::from_bits(0x7e01)}, {2, 2}, device)},
        {"i32", Tensor::from(std::vector<int32_t>{INT32_MIN, -1, 0, INT32_MAX}, {4}, device)},
        {"i64", Tensor::from(std::vector<int64_t>{INT64_MIN, 42, INT64_MAX}, {1, 3}, device)},
        {"u16", Tensor::from(std::vector<uint16_t>{0, 65535, 50256}, {3}, device)},
        {"u8", Tensor::from(std::vector<uint8_t>{0, 127, 255}, {3}, device)},
        {"i8", Tensor::from(std::vector<int8_t>{-128, 0, 127}, {3}, device)},
        {"scalar", Tensor::scalar(2.25, DType::f32, device)},
        {"scalar_bf16", Tensor::scalar(-7.0, DType::bf16, device)},
        {"empty", Tensor::zeros({0, 4}, DType::f32, device)},
        {"empty_i64", Tensor::zeros({3, 0}, DType::i64, device)},
        // A strided view: written packed, row-major.
        {"transposed", Tensor::from(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3}, device).transpose(0, 1)},
    };
    write_safetensors(path, tensors, {{"step", "7"}});
    CHECK(std::filesystem::directory_iterator(dir.str())->path().filename() == "t.safetensors");  // no temp left

    const SafetensorsFile f = open_safetensors(path);
    CHECK(f.metadata() == std::map<std::string, std::string>{{"format", "pt"}, {"step", "7"}});
    REQUIRE(f.entries().size() == tensors.size());
    const std::map<std::string, std::string> file_dtype = {
        {"f32", "F32"}, {"f64", "F64"}, {"bf16", "BF16"}, {"f16", "F16"}, {"i32", "I32"}, {"i64", "I64"},
        {"u16", "U16"}, {"u8", "U8"}, {"i8", "I8"}, {"scalar", "F32"}, {"scalar_bf16", "BF16"}, {"empty", "F32"},
        {"empty_i64", "I64"}, {"transposed", "F32"}};
    for (const auto& [name, t] : tensors) {
        INFO(name);
        const SafetensorsEntry& e = f.entry(name);
        CHECK(e.dtype == file_dtype.at(name));
        CHECK(e.shape == t.shape());
        CHECK(e.bytes() == uint64_t(t.numel()) * dtype_size(t.dtype()));
        const Tensor back = f.load(name, device, AllowF64::yes);
        CHECK(back.device() == device);
        CHECK(back.dtype() == t.dtype());
        CHECK(back.shape() == t.shape());
        CHECK(host_bytes(back) == host_bytes(t));  // bit for bit: NaN payloads, -0, subnormals
    }
    CHECK(f.entry("scalar").shape.empty());
    CHECK(f.load("transposed").to_vector<float>() == std::vector<float>{1, 4, 2, 5, 3, 6});
    CHECK(f.load("f64", Device::cpu(), AllowF64::yes).to_vector<double>()[0] == 1.0 / 3.0);
}

TEST_CASE("safetensors: load_into copies into an existing tensor, converting between float dtypes only") {
    ScratchDir dir("st_load_into");
    const std::string path = dir.file("m.safetensors");
    write_safetensors(path, {{"w", Tensor::from(std::vector<float>{1.0f, 1.00390625f, -3.0f}, {3})},
                             {"ids", Tensor::from(std::vector<int32_t>{1, 2, 3}, {3})}});
    const SafetensorsFile f = open_safetensors(path);
    Tensor w = Tensor::zeros({3}, DType::f32);
    f.load_into("w", w);
    CHECK(w.to_vector<float>() == std::vector<float>{1.0f, 1.00390625f, -3.0f});
    Tensor wb = Tensor::zeros({3}, DType::bf16);
    f.load_into("w", wb);  // 1 + 2^-8 is a tie between bf16 1 and 1 + 2^-7: even is 1
    CHECK(wb.to_vector<float>() == std::vector<float>{1.0f, 1.0f, -3.0f});
    Tensor wrong_shape = Tensor::zeros({1, 3});
    CHECK_THROWS_CONTAINING(f.load_into("w", wrong_shape),
                            path + ": tensor \"w\": the file's shape [3] differs from the destination's [1, 3]");
    Tensor as_float = Tensor::zeros({3});
    CHECK_THROWS_CONTAINING(f.load_into("ids", as_float),
                            "tensor \"ids\": the file's dtype I32 cannot be loaded into a f32 tensor");
    CHECK_THROWS_CONTAINING(f.load("nope"), path + ": tensor \"nope\": not in this file (2 tensors)");
    CHECK_FALSE(f.contains("nope"));
    CHECK(f.contains("ids"));
}

// ---------------------------------------------------------------- writer layout

TEST_CASE("safetensors: the writer's header: metadata first, format pt, size then name order, padded to 8") {
    ScratchDir dir("st_layout");
    const std::string path = dir.file("l.safetensors");
    write_safetensors(path,
                      {{"wte.weight", Tensor::from(std::vector<bf16>{bf16(1.0f), bf16(2.0f), bf16(3.0f),
                                                                      bf16(4.0f), bf16(5.0f), bf16(6.0f)}, {2, 3})},
                       {"mask", Tensor::from(std::vector<uint8_t>{1, 0, 1}, {3})},
                       {"ln_f.weight", Tensor::from(std::vector<float>{0.5f, -2.0f}, {2})},
                       {"idx", Tensor::from(std::vector<int64_t>{7, -1}, {2})},
                       {"ln_f.bias", Tensor::from(std::vector<float>{}, {0})}},
                      {{"lumen_optimizer", "adamw"}, {"format", "pt"}});
    // Descending element size (I64, F32, BF16, U8), then name; __metadata__ first with "format" first.
    const std::string want =
        R"({"__metadata__":{"format":"pt","lumen_optimizer":"adamw"},)"
        R"("idx":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},)"
        R"("ln_f.bias":{"dtype":"F32","shape":[0],"data_offsets":[16,16]},)"
        R"("ln_f.weight":{"dtype":"F32","shape":[2],"data_offsets":[16,24]},)"
        R"("wte.weight":{"dtype":"BF16","shape":[2,3],"data_offsets":[24,36]},)"
        R"("mask":{"dtype":"U8","shape":[3],"data_offsets":[36,39]}})";
    const std::string bytes = read_bytes(path);
    uint64_t n = 0;
    std::memcpy(&n, bytes.data(), 8);
    CHECK(n % 8 == 0);
    CHECK(n - want.size() < 8);
    CHECK(bytes.substr(8, want.size()) == want);
    CHECK(bytes.substr(8 + want.size(), n - want.size()) == std::string(n - want.size(), ' '));
    CHECK(bytes.size() == 8 + n + 39);
    CHECK(bytes.substr(8 + n, 16) == le_bytes<int64_t>({7, -1}));
    CHECK(bytes.substr(8 + n + 16, 8) == le_bytes<float>({0.5f, -2.0f}));
    CHECK(bytes.substr(8 + n + 24, 12) == le_bytes<uint16_t>({0x3f80, 0x4000, 0x4040, 0x4080, 0x40a0, 0x40c0}));
    CHECK(bytes.substr(8 + n + 36) == std::string("\x01\x00\x01", 3));
    CHECK(open_safetensors(path).data_offset() == 8 + n);

    // Writer errors leave no file behind.
    const std::string bad = dir.file("bad.safetensors");
    const Tensor one = Tensor::ones({1});
    CHECK_THROWS_CONTAINING(write_safetensors(bad, {{"a", one}}, {{"format", "np"}}),
                            "__metadata__ format must be \"pt\" (transformers refuses others), given \"np\"");
    CHECK_THROWS_CONTAINING(write_safetensors(bad, {{"a", one}, {"a", one}}), "tensor \"a\": the name is given twice");
    CHECK_THROWS_CONTAINING(write_safetensors(bad, {{"", one}}), "cannot write a tensor with an empty name");
    CHECK_THROWS_CONTAINING(write_safetensors(bad, {{"__metadata__", one}}), "\"__metadata__\" is reserved");
    CHECK_THROWS_CONTAINING(write_safetensors(bad, {{"m", Tensor::ones({2}, DType::boolean)}}),
                            "tensor \"m\": lumen does not write bool tensors");
    CHECK_THROWS_CONTAINING(write_safetensors(bad, {{"a\xff", one}}), "is not valid UTF-8");
    CHECK_FALSE(std::filesystem::exists(bad));
    // An empty file is valid: a header and no data.
    write_safetensors(bad, {});
    CHECK(open_safetensors(bad).entries().empty());
    CHECK(read_bytes(bad).size() == 8 + open_safetensors(bad).header_bytes());
}

// ---------------------------------------------------------------- validation

TEST_CASE("safetensors: rule 1: length field, header limit, truncation") {
    ScratchDir dir("st_rule1");
    const std::string p = dir.file("bad.safetensors");
    const auto open_bytes = [&](const std::string& bytes) {
        write_bytes(p, bytes);
        return open_safetensors(p);
    };
    CHECK_THROWS_CONTAINING(open_bytes("abcde"), p + ": truncated: a safetensors file starts with an 8-byte header "
                                                     "length, the file has 5 bytes");
    CHECK_THROWS_CONTAINING(open_bytes(st_bytes("{}", "", 100)),
                            p + ": truncated: the header length is 100 bytes but only 2 bytes follow");
    CHECK_THROWS_CONTAINING(open_bytes(st_bytes("{}", "", 100'000'001)),
                            p + ": byte 0: the header length 100000001 is over the 100000000-byte limit");
    CHECK_THROWS_CONTAINING(open_bytes(st_bytes("{}", "", UINT64_MAX)), "is over the 100000000-byte limit");
    CHECK(open_bytes(st_bytes("{}      ", "")).entries().empty());
}

TEST_CASE("safetensors: rule 2: one UTF-8 JSON object, duplicate keys refused") {
    ScratchDir dir("st_rule2");
    const std::string p = dir.file("bad.safetensors");
    const auto open_header = [&](const std::string& header, const std::string& data = "") {
        write_bytes(p, st_bytes(header, data));
        return open_safetensors(p);
    };
    const std::string a = R"("a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]})";
    CHECK_THROWS_CONTAINING(open_header("{" + a + "," + a + "}", "x"), p + ": header: duplicate key \"a\"");
    CHECK_THROWS_CONTAINING(open_header(R"({"a":{"dtype":"U8","dtype":"I8","shape":[1],"data_offsets":[0,1]}})", "x"),
                            p + ": header: duplicate key \"dtype\" in the entry \"a\"");
    CHECK_THROWS_CONTAINING(open_header(R"({"__metadata__":{"k":"1","k":"2"}})"),
                            "duplicate key \"k\" in the entry \"__metadata__\"");
    CHECK_THROWS_CONTAINING(open_header("{\"a\xff\":1}"), p + ": header: not valid UTF-8 JSON");
    CHECK_THROWS_CONTAINING(open_header("{\"a\":"), p + ": header: not valid UTF-8 JSON");
    CHECK_THROWS_CONTAINING(open_header("{} {}"), p + ": header: not valid UTF-8 JSON");
    CHECK_THROWS_CONTAINING(open_header("[1, 2]"), p + ": header: expected one JSON object, found a array");
    CHECK_THROWS_CONTAINING(open_header(R"({"__metadata__":{"step":5}})"),
                            p + ": __metadata__ \"step\" must be a string, found 5");
    CHECK_THROWS_CONTAINING(open_header(R"({"__metadata__":[]})"), "__metadata__ must be an object of strings");
    // Unknown fields in an entry are ignored; the metadata is read.
    const SafetensorsFile f = open_header(
        R"({"__metadata__":{"format":"pt"},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"extra":[1]}})", "x");
    CHECK(f.metadata().at("format") == "pt");
    CHECK(f.load("a").to_vector<int>() == std::vector<int>{'x'});
}

TEST_CASE("safetensors: rules 3 and 7: known dtypes, non-negative 64-bit integers, non-empty names") {
    ScratchDir dir("st_rule3");
    const std::string p = dir.file("bad.safetensors");
    const auto open_header = [&](const std::string& header, const std::string& data = "") {
        write_bytes(p, st_bytes(header, data));
        return open_safetensors(p);
    };
    CHECK_THROWS_CONTAINING(open_header(R"({"a":{"dtype":"F99","shape":[1],"data_offsets":[0,4]}})", "xxxx"),
                            p + ": tensor \"a\": unknown dtype \"F99\" (known: F64, F32, F16, BF16");
    CHECK_THROWS_CONTAINING(open_header(R"({"a":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}})", "xxxx"),
                            "unknown dtype \"f32\"");
    CHECK_THROWS_CONTAINING(open_header(R"({"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}})"),
                            p + ": tensor \"a\": every shape element must be a non-negative integer that fits in 64 "
                                "bits, found -1");
    CHECK_THROWS_CONTAINING(open_header(R"({"a":{"dtype":"U8","shape":[1.0],"data_offsets":[0,1]}})", "x"),
                            "every shape element must be a non-negative integer");
    CHECK_THROWS_CONTAINING(open_header(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,18446744073709551616]}})"),
                            "tensor \"a\": data_offsets end must be a non-negative integer that fits in 64 bits");
    CHECK_THROWS_CONTAINING(open_header(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":["0",1]}})", "x"),
                            "data_offsets begin must be a non-negative integer");
    CHECK_THROWS_CONTAINING(open_header(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0]}})", "x"),
                            "tensor \"a\": data_offsets must be [begin, end], found [0]");
    CHECK_THROWS_CONTAINING(open_header(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[1,0]}})", "x"),
                            "tensor \"a\": data_offsets [1, 0] end before they begin");
    CHECK_THROWS_CONTAINING(open_header(R"({"a":{"dtype":"U8","data_offsets":[0,1]}})", "x"),
                            "tensor \"a\": missing \"shape\"");
    CHECK_THROWS_CONTAINING(open_header(R"({"a":[1]})", "x"), "tensor \"a\": expected an object");
    CHECK_THROWS_CONTAINING(open_header(R"({"":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", "x"),
                            p + ": header: a tensor has an empty name");
}

TEST_CASE("safetensors: rules 4 and 6: the tensors tile the data buffer, no gap, overlap or trailing bytes") {
    ScratchDir dir("st_rule4");
    const std::string p = dir.file("bad.safetensors");
    const auto open_header = [&](const std::string& header, size_t data_bytes) {
        write_bytes(p, st_bytes(header, std::string(data_bytes, '\0')));
        return open_safetensors(p);
    };
    const auto f32 = [](const char* name, int begin) {
        return fmt::format(R"("{}":{{"dtype":"F32","shape":[2],"data_offsets":[{},{}]}})", name, begin, begin + 8);
    };
    CHECK_THROWS_CONTAINING(open_header("{" + f32("a", 0) + "," + f32("b", 4) + "}", 12),
                            p + ": tensor \"b\": data_offsets [4, 12] overlap the tensor \"a\" [0, 8)");
    CHECK_THROWS_CONTAINING(open_header("{" + f32("a", 0) + "," + f32("b", 12) + "}", 20),
                            p + ": tensor \"b\": data_offsets begin at 12, but the previous tensor \"a\" ends at 8: "
                                "a gap of 4 bytes");
    CHECK_THROWS_CONTAINING(open_header("{" + f32("a", 4) + "}", 12),
                            p + ": tensor \"a\": is the first tensor in the data buffer but begins at 4, not 0");
    CHECK_THROWS_CONTAINING(open_header("{" + f32("a", 0) + "}", 10),
                            p + ": 2 trailing bytes: the tensors end at byte 8 of the data buffer, which holds 10");
    CHECK_THROWS_CONTAINING(open_header("{" + f32("a", 0) + "}", 6),
                            p + ": tensor \"a\": data_offsets end at 8, past the end of the 6-byte data buffer: the "
                                "file is truncated");
    CHECK_THROWS_CONTAINING(open_header("{}", 3), p + ": 3 trailing bytes");
    // Same data, two names (an alias) is an overlap too.
    CHECK_THROWS_CONTAINING(open_header("{" + f32("a", 0) + "," + f32("b", 0) + "}", 8), "overlap the tensor \"a\"");
    // Empty tensors may sit anywhere on a boundary, in any header order.
    const SafetensorsFile f = open_header(
        "{" + f32("z", 0) + R"(,"e1":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},)" +
            R"("e2":{"dtype":"I64","shape":[3,0],"data_offsets":[8,8]}})", 8);
    CHECK(f.entries().size() == 3);
    CHECK(f.load("e2").shape() == Shape{3, 0});
}

TEST_CASE("safetensors: rule 5: the byte length matches dtype and shape, with overflow checks") {
    ScratchDir dir("st_rule5");
    const std::string p = dir.file("bad.safetensors");
    const auto open_header = [&](const std::string& header, size_t data_bytes) {
        write_bytes(p, st_bytes(header, std::string(data_bytes, '\0')));
        return open_safetensors(p);
    };
    CHECK_THROWS_CONTAINING(open_header(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8),
                            p + ": tensor \"a\": data_offsets [0, 8] hold 8 bytes, but F32 with shape [3] needs 12 "
                                "(3 elements of 32 bits)");
    CHECK_THROWS_CONTAINING(open_header(R"({"a":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,4]}})", 4),
                            "hold 4 bytes, but BF16 with shape [2, 2] needs 8");
    CHECK_THROWS_CONTAINING(open_header(R"({"a":{"dtype":"F32","shape":[],"data_offsets":[0,0]}})", 0),
                            "hold 0 bytes, but F32 with shape [] needs 4");
    CHECK_THROWS_CONTAINING(
        open_header(R"({"a":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", 0),
        "tensor \"a\": shape [4294967296, 4294967296] has more elements than fit in 64 bits");
    CHECK_THROWS_CONTAINING(
        open_header(R"({"a":{"dtype":"F64","shape":[4294967296,1073741824],"data_offsets":[0,0]}})", 0),
        "has more bits than fit in 64 bits");
    CHECK_THROWS_CONTAINING(open_header(R"({"a":{"dtype":"F4","shape":[3],"data_offsets":[0,1]}})", 1),
                            "tensor \"a\": 3 elements of F4 (4 bits each) are 12 bits, not whole bytes");
    // Four F4 values are two whole bytes: a valid file, refused only when loaded.
    const SafetensorsFile f = open_header(R"({"a":{"dtype":"F4","shape":[4],"data_offsets":[0,2]}})", 2);
    CHECK_THROWS_CONTAINING(f.load("a"), "tensor \"a\": dtype F4 is refused");
}

TEST_CASE("safetensors: refused dtypes are listed but not loaded; F64 loads only when asked") {
    ScratchDir dir("st_refused");
    const std::string p = dir.file("r.safetensors");
    for (const char* dtype : {"BOOL", "I16", "U32", "U64", "C64", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F8_E4M3FNUZ",
                              "F8_E5M2FNUZ", "F6_E2M3", "F6_E3M2"}) {
        INFO(dtype);
        const int bits = safetensors_dtype_bits(dtype);
        const std::string header =
            fmt::format(R"({{"t":{{"dtype":"{}","shape":[4],"data_offsets":[0,{}]}}}})", dtype, bits / 2);
        write_bytes(p, st_bytes(header, std::string(size_t(bits / 2), '\x01')));
        const SafetensorsFile f = open_safetensors(p);
        CHECK(f.entry("t").dtype == dtype);
        CHECK_FALSE(lumen_dtype_of(dtype).has_value());
        CHECK_THROWS_CONTAINING(f.load("t"), fmt::format("{}: tensor \"t\": dtype {} is refused", p, dtype));
        Tensor dst = Tensor::zeros({4});
        CHECK_THROWS_CONTAINING(f.load_into("t", dst), fmt::format("dtype {} is refused", dtype));
    }
    write_safetensors(p, {{"d", Tensor::from(std::vector<double>{0.1, -2.0}, {2})}});
    const SafetensorsFile f = open_safetensors(p);
    CHECK_THROWS_CONTAINING(f.load("d"), p + ": tensor \"d\": dtype F64 loads only when asked explicitly");
    CHECK(f.load("d", Device::cpu(), AllowF64::yes).to_vector<double>() == std::vector<double>{0.1, -2.0});
    Tensor as_f32 = Tensor::zeros({2});
    CHECK_THROWS_CONTAINING(f.load_into("d", as_f32), "F64 loads only when asked explicitly");
    f.load_into("d", as_f32, AllowF64::yes);
    CHECK(as_f32.to_vector<float>() == std::vector<float>{0.1f, -2.0f});
    CHECK(lumen_dtype_of("F64") == DType::f64);
    CHECK_THROWS_CONTAINING(lumen_dtype_of("Q4"), "unknown safetensors dtype \"Q4\"");
    CHECK(safetensors_dtype_name(DType::bf16) == "BF16");
    CHECK_THROWS_CONTAINING(safetensors_dtype_name(DType::boolean), "lumen does not write bool tensors");
}

TEST_CASE("safetensors: tensors at unaligned file offsets are copied and read correctly") {
    // A header of 13 bytes puts the data buffer at file offset 21, and a U8 first puts the F32 at
    // 22 and the I64 at 26: none aligned to its element size (other writers need not pad).
    ScratchDir dir("st_unaligned");
    const std::string p = dir.file("u.safetensors");
    const std::string header =
        R"({"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
        R"("f":{"dtype":"F32","shape":[2],"data_offsets":[1,9]},)"
        R"("i":{"dtype":"I64","shape":[1],"data_offsets":[9,17]}})";
    const std::string padded = header + std::string(13 - header.size() % 8, ' ');  // N % 8 == 5
    write_bytes(p, st_bytes(padded, "\x07" + le_bytes<float>({1.25f, -3.5f}) + le_bytes<int64_t>({-123456789012345})));
    const SafetensorsFile f = open_safetensors(p);
    CHECK(f.data_offset() % 8 == 5);
    CHECK(reinterpret_cast<uintptr_t>(f.raw("f").data()) % 4 != 0);  // the case really is unaligned
    CHECK(reinterpret_cast<uintptr_t>(f.raw("i").data()) % 8 != 0);
    const Tensor t = f.load("f");
    CHECK(reinterpret_cast<uintptr_t>(t.data_ptr()) % 4 == 0);
    CHECK(t.to_vector<float>() == std::vector<float>{1.25f, -3.5f});
    CHECK(f.load("i").to_vector<int64_t>() == std::vector<int64_t>{-123456789012345});
    CHECK(f.load("b").to_vector<int>() == std::vector<int>{7});
}

// ---------------------------------------------------------------- sharded

TEST_CASE("safetensors: sharded checkpoints: the index, the files it names, and every error") {
    ScratchDir dir("st_sharded");
    const std::string f1 = "model-00001-of-00002.safetensors", f2 = "model-00002-of-00002.safetensors";
    write_safetensors(dir.file(f1), {{"a", Tensor::from(std::vector<float>{1, 2}, {2})},
                                     {"b", Tensor::from(std::vector<int64_t>{3}, {1})}});
    write_safetensors(dir.file(f2), {{"c", Tensor::from(std::vector<float>{4, 5, 6}, {3})}});
    const auto write_index = [&](const std::string& weight_map) {
        write_bytes(dir.file("model.safetensors.index.json"),
                    R"({"metadata": {"total_size": 28}, "weight_map": )" + weight_map + "}");
    };
    write_index(fmt::format(R"({{"a": "{}", "b": "{}", "c": "{}"}})", f1, f1, f2));
    const ShardedSafetensors s = open_sharded(dir.str());
    REQUIRE(s.entries().size() == 3);
    CHECK(s.entries()[2].name == "c");
    CHECK(s.files().size() == 2);
    CHECK(s.metadata().at("total_size") == "28");
    CHECK(s.file_of("c").path() == dir.file(f2));
    CHECK(s.load("c").to_vector<float>() == std::vector<float>{4, 5, 6});
    CHECK(s.entry("b").dtype == "I64");
    Tensor a = Tensor::zeros({2});
    s.load_into("a", a);
    CHECK(a.to_vector<float>() == std::vector<float>{1, 2});
    CHECK(s.contains("a"));
    CHECK_FALSE(s.contains("d"));
    CHECK_THROWS_CONTAINING(s.load("d"), "tensor \"d\": not in this sharded checkpoint (3 tensors in 2 files)");

    const std::string index = dir.file("model.safetensors.index.json");
    write_index(fmt::format(R"({{"a": "{}", "b": "{}", "c": "model-00003-of-00003.safetensors"}})", f1, f1));
    CHECK_THROWS_CONTAINING(open_sharded(dir.str()), index + ": weight_map \"c\" names model-00003-of-00003."
                                                             "safetensors, which does not exist in " + dir.str());
    write_index(fmt::format(R"({{"a": "{}", "b": "{}", "c": "../{}"}})", f1, f1, f2));
    CHECK_THROWS_CONTAINING(open_sharded(dir.str()), "weight_map \"c\": file name \"../" + f2 + "\" is refused");
    write_index(fmt::format(R"({{"a": "{}", "b": "{}", "c": "sub/{}"}})", f1, f1, f2));
    CHECK_THROWS_CONTAINING(open_sharded(dir.str()), "no '/' or '..'");
    // b is in file 1, the index says file 2.
    write_index(fmt::format(R"({{"a": "{}", "b": "{}", "c": "{}"}})", f1, f2, f1));
    CHECK_THROWS_CONTAINING(open_sharded(dir.str()),
                            index + ": tensor \"b\": is in " + f1 + ", but the weight_map puts it in " + f2);
    write_index(fmt::format(R"({{"a": "{}", "b": "{}", "c": "{}", "d": "{}"}})", f1, f1, f2, f2));
    CHECK_THROWS_CONTAINING(open_sharded(dir.str()),
                            "tensor \"d\": the weight_map puts it in " + f2 + ", which does not hold it");
    write_index(fmt::format(R"({{"a": "{}", "c": "{}"}})", f1, f2));
    CHECK_THROWS_CONTAINING(open_sharded(dir.str()), "tensor \"b\": is in " + f1 + " but not in the weight_map");
    write_index(fmt::format(R"({{"a": "{}", "b": "{}", "c": "{}", "a": "{}"}})", f1, f1, f2, f1));
    CHECK_THROWS_CONTAINING(open_sharded(dir.str()), index + ": duplicate key \"a\" in the entry \"weight_map\"");
    write_bytes(index, R"({"metadata": {}})");
    CHECK_THROWS_CONTAINING(open_sharded(dir.str()), "expected an object with a \"weight_map\" object");
    // The same tensor in two files.
    write_safetensors(dir.file(f2), {{"c", Tensor::from(std::vector<float>{4, 5, 6}, {3})},
                                     {"a", Tensor::from(std::vector<float>{1, 2}, {2})}});
    write_index(fmt::format(R"({{"a": "{}", "b": "{}", "c": "{}"}})", f1, f1, f2));
    CHECK_THROWS_CONTAINING(open_sharded(dir.str()), "tensor \"a\": appears in two files, " + f1 + " and " + f2);
    // A shard that fails validation is reported with its own path.
    write_bytes(dir.file(f2), "short");
    CHECK_THROWS_CONTAINING(open_sharded(dir.str()), dir.file(f2) + ": truncated");
    CHECK_THROWS_CONTAINING(open_sharded(dir.file("nowhere")), "cannot open for reading");
}

// ---------------------------------------------------------------- the Python reference check

TEST_CASE("safetensors: the sample for tests/reference/check_safetensors.py") {
    // Writes only when LUMEN_SAFETENSORS_SAMPLE names a path; the script checks these values with
    // the Hugging Face safetensors package.
    const char* out = std::getenv("LUMEN_SAFETENSORS_SAMPLE");
    if (!out) return;
    write_safetensors(out,
                      {{"f32", Tensor::from(std::vector<float>{1.5f, -0.0f, INFINITY, NAN, 3e38f, -1e-45f}, {2, 3})},
                       {"f64", Tensor::from(std::vector<double>{1.0 / 3.0, -2.5e300}, {2})},
                       {"bf16", Tensor::from(std::vector<bf16>{bf16(1.0f), bf16(-3.0f), bf16(NAN)}, {3})},
                       {"f16", Tensor::from(std::vector<f16>{f16(1.0f), f16(-2.0f), f16(65504.0f),
                                                             f16(5.9604644775390625e-08f)}, {2, 2})},
                       {"i32", Tensor::from(std::vector<int32_t>{INT32_MIN, -1, INT32_MAX}, {3})},
                       {"i64", Tensor::from(std::vector<int64_t>{INT64_MIN, INT64_MAX}, {2})},
                       {"u16", Tensor::from(std::vector<uint16_t>{0, 50256, 65535}, {3})},
                       {"u8", Tensor::from(std::vector<uint8_t>{0, 255}, {2})},
                       {"i8", Tensor::from(std::vector<int8_t>{-128, 127}, {2})},
                       {"scalar", Tensor::scalar(2.25)},
                       {"empty", Tensor::zeros({0, 4})},
                       {"transposed", Tensor::from(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3}).transpose(0, 1)}},
                      {{"lumen_optimizer", "adamw"}, {"step", "5000"}});
    MESSAGE("wrote " << std::string(out));
}

TEST_CASE("safetensors: a file written by the Python package") {
    // tests/fixtures/safetensors/written_by_python.safetensors: safetensors.numpy's save_file
    // (tests/reference/check_safetensors.py --make-fixture); values as that script gives them.
    const std::string path = (std::filesystem::path(__FILE__).parent_path().parent_path() / "fixtures" /
                              "safetensors" / "written_by_python.safetensors").string();
    const SafetensorsFile f = open_safetensors(path);
    CHECK(f.metadata() == std::map<std::string, std::string>{{"format", "pt"}, {"source", "safetensors.numpy"}});
    CHECK(f.entries().size() == 9);
    CHECK(f.load("wte.weight").shape() == Shape{2, 3});
    CHECK(f.load("wte.weight").to_vector<float>() == std::vector<float>{0.5f, -1.25f, 3.0f, 1e-8f, -0.0f, 65504.0f});
    CHECK(f.load("half").to_vector<float>() == std::vector<float>{1.0f, -2.0f, 5.9604644775390625e-08f});
    CHECK(f.load("ids").to_vector<int64_t>() == std::vector<int64_t>{INT64_MIN, 0, INT64_MAX});
    CHECK(f.load("pos").to_vector<int32_t>() == std::vector<int32_t>{7, -7});
    CHECK(f.load("mean", Device::cpu(), AllowF64::yes).to_vector<double>() == std::vector<double>{0.1});
    CHECK(f.load("mean", Device::cpu(), AllowF64::yes).shape().empty());
    CHECK(f.load("flag").to_vector<int>() == std::vector<int>{255});
    CHECK(f.load("small").to_vector<int>() == std::vector<int>{-128, 1});
    CHECK(f.load("tokens").to_vector<int>() == std::vector<int>{50256, 0});
    CHECK(f.load("nothing").shape() == Shape{2, 0});
}
