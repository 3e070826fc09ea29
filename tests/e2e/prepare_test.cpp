// tests/e2e/prepare_test.cpp: the ./prepare path end to end on a tiny corpus: the library call
// (outputs, round trip of every document through the shards, determinism, stale shards) and the
// binary itself (exit codes, summary, errors), run from the path CMake compiled in.
#include "data/dataset.h"
#include "data/loader.h"
#include "data/prepare.h"
#include "data/tokenizer_io.h"
#include "tests/data/data_test_util.h"
#include "tests/harness.h"

#include <algorithm>
#include <cstdlib>

using namespace lumen::data;
using lumen::test::ScratchDir;

namespace {

std::vector<std::string> make_corpus(const ScratchDir& dir) {
    std::filesystem::create_directories(dir.file("corpus/sub"));
    std::filesystem::create_directories(dir.file("corpus/.hidden"));
    std::vector<std::string> docs = {
        "The quick brown fox jumps over the lazy dog. It's 2024; we'll see.\n",
        "Pack my box with five dozen liquor jugs!\n\n  Indented  text\tand tabs.\n",
        "ภาษาไทย, 日本語, emoji 🦀 and bytes, all in one file.\n",
    };
    for (int i = 0; i < 12; ++i) docs.push_back(fmt::format("Document {} says: the fox and the dog, again and again.\n", i));
    lumen::test::write_bytes(dir.file("corpus/a.txt"), docs[0]);
    lumen::test::write_bytes(dir.file("corpus/sub/b.rst"), docs[1]);
    lumen::test::write_bytes(dir.file("corpus/sub/c.md"), docs[2]);
    for (size_t i = 3; i < docs.size(); ++i) lumen::test::write_bytes(dir.file(fmt::format("corpus/d{:02d}.txt", i)), docs[i]);
    lumen::test::write_bytes(dir.file("corpus/empty.txt"), "");
    lumen::test::write_bytes(dir.file("corpus/.hidden/skip.bin"), std::string("\0\1", 2));
    return docs;
}

int run(const std::string& args, const std::string& log) {
    const int status = std::system(fmt::format("{} {} > {} 2>&1", LUMEN_PREPARE_BIN, args, log).c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

TEST_CASE("prepare: a tiny corpus becomes a dataset whose shards decode back to every document") {
    ScratchDir dir("prepare_lib");
    std::vector<std::string> docs = make_corpus(dir);
    PrepareOptions o;
    o.inputs = {dir.file("corpus")};
    o.out_dir = dir.file("out");
    o.vocab_size = 300;
    o.val_fraction = 0.1;
    o.shard_tokens = 150;
    std::vector<std::string> phases;
    const PrepareReport r = prepare_dataset(o, [&](std::string_view phase, int64_t done, int64_t total, std::string_view) {
        CHECK(done <= total);
        if (phases.empty() || phases.back() != phase) phases.emplace_back(phase);
    });
    CHECK(phases == std::vector<std::string>{"read", "count", "merge", "encode", "write"});
    CHECK(r.files == 16);  // the empty file counts as read, the hidden folder is skipped
    CHECK(r.trained);
    CHECK(r.vocab_size == 300);
    CHECK(r.eot_id == 299);
    CHECK(r.train_shards >= 2);

    const DatasetInfo info = read_dataset_info(o.out_dir);
    CHECK(info.vocab_size == 300);
    CHECK(info.token_format == TokenFormat::llmc_u16);
    const Tokenizer tok = load_tokenizer(dir.file("out/" + info.tokenizer));
    std::vector<int32_t> stream;
    for (Split split : {Split::train, Split::val})
        for (const Shard& s : open_shards(info, split)) {
            s.check_tokens(info.vocab_size);
            for (int64_t i = 0; i < s.num_tokens(); ++i) stream.push_back(int32_t(s.token(i)));
        }
    CHECK(int64_t(stream.size()) == r.train_tokens + r.val_tokens);
    CHECK(r.val_tokens == int64_t(std::ceil(0.1 * double(stream.size()))));
    REQUIRE(stream[0] == info.eot_id);  // every document is prefixed
    std::vector<std::string> decoded;
    for (size_t i = 0; i < stream.size(); ++i) {
        if (stream[i] == info.eot_id) decoded.emplace_back();
        else decoded.back() += tok.token_bytes(stream[i]);
    }
    CHECK(decoded != docs);  // the document order is shuffled ...
    std::sort(decoded.begin(), decoded.end());
    std::sort(docs.begin(), docs.end());
    CHECK(decoded == docs);  // ... and nothing is lost

    LoaderConfig c;
    c.B = 2;
    c.T = 8;
    c.vocab_size = info.vocab_size;
    DataLoader loader(open_shards(info, Split::train), c);
    for (int i = 0; i < 20; ++i) loader.next();

    // Same inputs, same bytes; a rerun with bigger shards removes the old extra ones.
    const std::string first = lumen::test::read_bytes(dir.file("out/train_000000.bin"));
    o.out_dir = dir.file("out2");
    prepare_dataset(o);
    CHECK(lumen::test::read_bytes(dir.file("out2/train_000000.bin")) == first);
    o.shard_tokens = 100000;
    const PrepareReport again = prepare_dataset(o);
    CHECK(again.train_shards == 1);
    CHECK(again.stale_removed == r.train_shards - 1 + r.val_shards - 1);
    CHECK(open_shards(read_dataset_info(o.out_dir), Split::train).size() == 1);
}

TEST_CASE("prepare: bad inputs and options are errors that say what to do") {
    ScratchDir dir("prepare_bad");
    make_corpus(dir);
    PrepareOptions o;
    o.out_dir = dir.file("out");
    o.inputs = {dir.file("nope.txt")};
    CHECK_THROWS_CONTAINING(prepare_dataset(o), "nope.txt: no such file or directory");
    std::filesystem::create_directories(dir.file("void/.git"));
    o.inputs = {dir.file("void")};
    CHECK_THROWS_CONTAINING(prepare_dataset(o), "the folder holds no files");
    o.inputs = {dir.file("corpus/empty.txt")};
    CHECK_THROWS_CONTAINING(prepare_dataset(o), "the 1 input files are all empty");
    lumen::test::write_bytes(dir.file("blob.dat"), std::string("text\0more", 9));
    o.inputs = {dir.file("blob.dat")};
    CHECK_THROWS_CONTAINING(prepare_dataset(o), "blob.dat: byte 4: a NUL byte");
    o.inputs = {dir.file("corpus")};
    o.vocab_size = 256;
    CHECK_THROWS_CONTAINING(prepare_dataset(o), "--vocab_size 256 must be at least 257");
    o.vocab_size = 300;
    o.val_fraction = 0.9;
    CHECK_THROWS_CONTAINING(prepare_dataset(o), "--val_fraction 0.9 must be in [0, 0.5]");
    o.val_fraction = 0.1;
    lumen::test::write_bytes(dir.file("afile"), "x");
    o.out_dir = dir.file("afile");
    CHECK_THROWS_CONTAINING(prepare_dataset(o), "exists and is not a directory");
    o.out_dir = dir.file("out");
    o.tokenizer = lumen::test::tokenizer_fixture("gpt2_tokenizer.llmc");
    CHECK_THROWS_CONTAINING(prepare_dataset(o), "this file can only decode");
    // Without python3-doc (not every machine ran scripts/install-deps.sh) the error says how to get it.
    try {
        const auto corpus = default_corpus();  // NOTE: outside CHECK, which would swallow the throw
        CHECK(std::filesystem::is_directory(corpus));
    } catch (const lumen::Error& e) {
        CHECK(std::string(e.what()).find("python3-doc") != std::string::npos);
    }
}

TEST_CASE("prepare: the binary runs, summarises, and fails with 'error:' and exit code 1") {
    ScratchDir dir("prepare_bin");
    make_corpus(dir);
    const std::string log = dir.file("log.txt");
    REQUIRE(run(fmt::format("--input {} --out {} --vocab_size 280 --val_fraction 0.05", dir.file("corpus"),
                            dir.file("out")), log) == 0);
    const std::string out = lumen::test::read_bytes(log);
    CHECK(out.find("prepare: 16 files") != std::string::npos);
    CHECK(out.find("vocabulary 280") != std::string::npos);
    const DatasetInfo info = read_dataset_info(dir.file("out"));
    CHECK(info.vocab_size == 280);
    CHECK(open_shards(info, Split::val).size() == 1);

    // An existing tokenizer instead of training one (the Hugging Face fixture: EOT is id 0).
    REQUIRE(run(fmt::format("--input {} --out {} --tokenizer {}", dir.file("corpus/a.txt"), dir.file("out_hf"),
                            lumen::test::tokenizer_fixture("tokenizer.json")), log) == 0);
    CHECK(read_dataset_info(dir.file("out_hf")).eot_id == 0);
    CHECK(read_dataset_info(dir.file("out_hf")).vocab_size == 1000);

    CHECK(run(fmt::format("--input {} --out {}", dir.file("missing"), dir.file("out3")), log) == 1);
    CHECK(lumen::test::read_bytes(log).rfind("error: prepare: --input", 0) == 0);
    CHECK(run(fmt::format("--input {} --vocab_size 300 --tokenizer x", dir.file("corpus")), log) == 1);
    CHECK(lumen::test::read_bytes(log).find("excludes") != std::string::npos);
    CHECK(run("--no_such_option 1", log) == 1);
    CHECK(run("--help", log) == 0);
    CHECK(lumen::test::read_bytes(log).find("--val_fraction") != std::string::npos);
}
