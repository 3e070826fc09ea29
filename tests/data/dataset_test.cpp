// tests/data/dataset_test.cpp: dataset.json reading, writing and checking, shard discovery, and
// the FineWeb defaults for a directory without dataset.json.
#include "data/dataset.h"
#include "tests/data/data_test_util.h"
#include "tests/harness.h"

using namespace lumen::data;
using lumen::test::ScratchDir;
using nlohmann::json;

namespace {

json good_json() {
    return {{"format", "lumen-dataset"}, {"version", 1}, {"token_format", "llmc"}, {"token_bytes", 2},
            {"vocab_size", 300}, {"eot_id", 299}, {"doc_separator", "prefix"},
            {"tokenizer", "tokenizer.lumen.json"}, {"train", "train_*.bin"}, {"val", "val_*.bin"},
            {"num_tokens", {{"train", 7}, {"val", 3}}}, {"future_key", "ignored"}};
}

}  // namespace

TEST_CASE("dataset: dataset.json round trip, discovery and the num_tokens check") {
    ScratchDir dir("dataset_ok");
    write_shard(dir.file("train_000001.bin"), std::vector<uint32_t>{1, 2, 3}, TokenFormat::llmc_u16);
    write_shard(dir.file("train_000000.bin"), std::vector<uint32_t>{4, 5, 6, 7}, TokenFormat::llmc_u16);
    write_shard(dir.file("val_000000.bin"), std::vector<uint32_t>{8, 9, 10}, TokenFormat::llmc_u16);
    lumen::test::write_bytes(dir.file("dataset.json"), good_json().dump());
    DatasetInfo info = read_dataset_info(dir.str());
    CHECK(info.token_format == TokenFormat::llmc_u16);
    CHECK(info.vocab_size == 300);
    CHECK(info.eot_id == 299);
    CHECK(info.notice.empty());
    const auto train = find_shards(info, Split::train);
    REQUIRE(train.size() == 2);
    CHECK(train[0] == dir.file("train_000000.bin"));  // sorted
    CHECK(open_shards(info, Split::train).size() == 2);
    CHECK(open_shards(info, Split::val)[0].num_tokens() == 3);

    write_dataset_info(info);
    const DatasetInfo back = read_dataset_info(dir.str());
    CHECK(back.train_pattern == "train_*.bin");
    CHECK(back.val_tokens == 3);
    CHECK(back.tokenizer == "tokenizer.lumen.json");

    write_shard(dir.file("train_000002.bin"), std::vector<uint32_t>{1}, TokenFormat::llmc_u16);
    CHECK_THROWS_CONTAINING(open_shards(info, Split::train),
                            "num_tokens.train = 7 but the 3 shards matching 'train_*.bin' hold 8 tokens");
    info.val_pattern = "";
    CHECK_THROWS_CONTAINING(find_shards(info, Split::val), "has no val split");
    info.val_pattern = "nothing_*.bin";
    CHECK_THROWS_CONTAINING(find_shards(info, Split::val), "no val shards match 'nothing_*.bin'");
}

TEST_CASE("dataset: each bad key is named with what was expected and found") {
    ScratchDir dir("dataset_bad");
    const auto with = [&](const char* key, json value) {
        json j = good_json();
        if (value.is_null()) j.erase(key);
        else j[key] = value;
        lumen::test::write_bytes(dir.file("dataset.json"), j.dump());
        return read_dataset_info(dir.str());
    };
    CHECK_THROWS_CONTAINING(with("format", "other"), "key 'format': expected \"lumen-dataset\", found \"other\"");
    CHECK_THROWS_CONTAINING(with("version", 2), "key 'version': expected 1, found 2");
    CHECK_THROWS_CONTAINING(with("token_format", "npy"), "key 'token_format': expected \"llmc\" or \"raw_u16\"");
    CHECK_THROWS_CONTAINING(with("token_bytes", 3), "key 'token_bytes': expected 2 or 4, found 3");
    CHECK_THROWS_CONTAINING(with("vocab_size", 70000), "key 'vocab_size': expected an integer in [1, 65536]");
    CHECK_THROWS_CONTAINING(with("vocab_size", "big"), "key 'vocab_size'");
    CHECK_THROWS_CONTAINING(with("eot_id", 300), "key 'eot_id': expected an id in [0, vocab_size = 300), found 300");
    CHECK_THROWS_CONTAINING(with("doc_separator", "middle"), "key 'doc_separator'");
    CHECK_THROWS_CONTAINING(with("train", nullptr), "key 'train': expected a string, found nothing (the key is missing)");
    CHECK_THROWS_CONTAINING(with("num_tokens", {{"train", -1}}), "key 'num_tokens'");
    json raw = good_json();
    raw["token_format"] = "raw_u16";
    raw["token_bytes"] = 4;
    lumen::test::write_bytes(dir.file("dataset.json"), raw.dump());
    CHECK_THROWS_CONTAINING(read_dataset_info(dir.str()), "key 'token_bytes': expected 2 (raw_u16");
    lumen::test::write_bytes(dir.file("dataset.json"), "{\"format\": ");
    CHECK_THROWS_CONTAINING(read_dataset_info(dir.str()), "dataset.json: not valid JSON");
    CHECK_THROWS_CONTAINING(read_dataset_info(dir.file("nowhere")), "not a directory");
}

TEST_CASE("dataset: FineWeb shards without dataset.json use the GPT-2 defaults, with a notice") {
    ScratchDir dir("dataset_fineweb");
    CHECK_THROWS_CONTAINING(read_dataset_info(dir.str()), "no dataset.json and no llm.c shards");
    write_shard(dir.file("train.bin"), std::vector<uint32_t>{1, 2}, TokenFormat::raw_u16);
    CHECK_THROWS_CONTAINING(read_dataset_info(dir.str()), "\"token_format\": \"raw_u16\"");
    write_shard(dir.file("fineweb_train_000001.bin"), std::vector<uint32_t>{50256, 11}, TokenFormat::llmc_u16);
    write_shard(dir.file("fineweb_val_000000.bin"), std::vector<uint32_t>{50256, 12}, TokenFormat::llmc_u16);
    const DatasetInfo info = read_dataset_info(dir.str());
    CHECK(info.vocab_size == 50257);
    CHECK(info.eot_id == 50256);
    CHECK(info.doc_separator == "prefix");
    CHECK(info.notice.find("no dataset.json") != std::string::npos);
    CHECK(open_shards(info, Split::train).size() == 1);
    CHECK(open_shards(info, Split::val).size() == 1);
}
