// tests/data/fineweb_test.cpp: shards written by another tool load unchanged. The fixture
// (tests/fixtures/fineweb/) was written by tests/reference/make_fineweb_fixture.py with numpy,
// exactly as llm.c's write_datafile writes FineWeb shards; the token values follow the formula
// below, recomputed here.
#include "data/dataset.h"
#include "data/shard.h"
#include "tests/harness.h"

#include <filesystem>

using namespace lumen;

namespace {

const std::string fixture_dir =
    (std::filesystem::path(__FILE__).parent_path().parent_path() / "fixtures" / "fineweb").string();

uint32_t expected_token(int64_t i, int64_t salt) {
    const int64_t j = i % 97;
    return j == 0 ? 50256u : uint32_t((i * 7919 + salt * 104729) % 50257 % 50256);
}

}  // namespace

TEST_CASE("fineweb: an llm.c-written shard directory loads with the GPT-2 defaults") {
    const data::DatasetInfo info = data::read_dataset_info(fixture_dir);  // no dataset.json there
    CHECK(info.vocab_size == 50257);
    CHECK(info.eot_id == 50256);
    CHECK(info.token_format == data::TokenFormat::llmc_u16);
    CHECK_FALSE(info.notice.empty());
    const auto val = data::open_shards(info, data::Split::val);
    const auto train = data::open_shards(info, data::Split::train);
    REQUIRE(val.size() == 1);
    REQUIRE(train.size() == 1);
    CHECK(val[0].num_tokens() == 1000);
    CHECK(train[0].num_tokens() == 3001);
    for (int64_t i = 0; i < 1000; ++i) REQUIRE(val[0].token(i) == expected_token(i, 0));
    std::vector<int32_t> window(64);
    train[0].read(2900, 64, window.data());
    for (int64_t i = 0; i < 64; ++i) CHECK(uint32_t(window[size_t(i)]) == expected_token(2900 + i, 1));
    CHECK_NOTHROW(val[0].check_tokens(50257));
    CHECK_THROWS_CONTAINING(val[0].check_tokens(50000), "fineweb_val_000000.bin");
}
