#!/usr/bin/env python3
"""tests/reference/make_smollm_tokenizer_fixture.py: golden files for SmolLM-style tokenizer.json.

SmolLM (HuggingFaceTB/SmolLM-135M, the "cosmo2" tokenizer) is a byte-level BPE whose pre-tokenizer
is a Sequence: Digits(individual_digits=True), which makes every \\p{N} character its own piece,
then ByteLevel(add_prefix_space=False, use_regex=True), the GPT-2 regex, on each piece. It has 17
special tokens at ids 0..16. This script trains such a tokenizer with Hugging Face `tokenizers` on
the committed corpus (tests/fixtures/tokenizer/corpus.txt, written by make_tokenizer_fixture.py)
and writes tests/fixtures/tokenizer/smollm/:

  tokenizer.json   normalizer null; pre_tokenizer, post_processor (ByteLevel) and decoder
                   (ByteLevel) set as in SmolLM-135M's file; model BPE with merges as ["a", "b"]
                   arrays (what tokenizers >= 0.20 writes)
  cases.json       one line per test string ("text", valid UTF-8), each with what `tokenizers` gives:
                     ids            encode(text).ids: special tokens split out of the text first
                     decoded        decode(ids, skip_special_tokens=False)
                     ids_ordinary   encode(text).ids with encode_special_tokens = True: special
                                    tokens' text is ordinary text (lumen's AllowSpecial::no)
                     ids_ignore_merges  encode(text).ids with the model's ignore_merges = true and
                                    the tokens of meta.ignore_merges_vocab added to model.vocab:
                                    whole words that no merge sequence reaches, so that taking a
                                    piece that is a token as is (Llama-3's rule) shows
                     pieces         pre_tokenize_str(text) with the SmolLM pre-tokenizer, as raw text
                     pieces_digit_runs  the same with Digits(individual_digits=False)
                   The pre-tokenizers see the text between special tokens, so the pieces are of
                   strings without special tokens only.

Needs: pip install tokenizers. Run from the repository root:

    python3 tests/reference/make_smollm_tokenizer_fixture.py
"""
import json
import os
import sys

import tokenizers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_tokenizer_fixture import bytes_to_unicode  # noqa: E402  (one copy of GPT-2's alphabet)

CORPUS = "tests/fixtures/tokenizer/corpus.txt"
OUT = "tests/fixtures/tokenizer/smollm"
VOCAB_SIZE = 1000

SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<repo_name>", "<reponame>", "<file_sep>",
    "<filename>", "<gh_stars>", "<issue_start>", "<issue_comment>", "<issue_closed>",
    "<jupyter_start>", "<jupyter_text>", "<jupyter_code>", "<jupyter_output>", "<jupyter_script>",
    "<empty_output>",
]

# Added to model.vocab (ids after the trained ones) for the ignore_merges variant.
IGNORE_MERGES_VOCAB = ["Ġhelpful", "Ġfamily"]

CASES = [
    "1234567 and 3.14",
    " 123",
    "  12  ",
    "x2y",
    "２０２４",
    "２０２４年 was 2024",
    "3141592653589793238462643383279",
    "v1.2.3-rc4 2024-05-20T12:34:56Z 0x1F 1e-9 -42",
    "½ ² Ⅻ ٣٤ ３４５ ①②",
    "5's 10'll 7'd",
    "<|im_start|>user\nhi<|im_end|>",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>assistant\nThe answer is 42.<|im_end|>",
    "<repo_name>lumen<file_sep><filename>a.py\nprint(1)<|endoftext|>",
    "<reponame>x<gh_stars>100<issue_start>bug<issue_comment>ok<issue_closed>",
    "<jupyter_start><jupyter_code>x = 42<jupyter_output>42<empty_output><jupyter_text>t<jupyter_script>",
    "<<|endoftext|>> <|im_start|<|im_end|>> <file_sep<file_sep>> <|endoftext|",
    "<|endoftext|><|endoftext|> <|endoftext|>",
    "Hello world",
    "It's, we're, they've, I'm, you'll, he'd, don't, can't've",
    "I'M SHOUTING 'LL 'S",
    "I ❤️ 🦀 and 👩‍👩‍👧 family 🎉!",
    "日本語のテキスト 中文的文本。",
    "ภาษาไทยง่ายนิดเดียว",
    "Café naïve façade — ‘quotes’ “double”",
    "a  b   c\n\n\nd\t\t e \n",
    "   leading and trailing   ",
    "\r\nwindows\r\n\r\n",
    "\u00a0nbsp\u2003em\u3000ideographic\u200bzero-width",
    "def f(x):\n    return x**2  # square 99\n",
    "",
    " ",
]


def byte_decoder():
    """GPT-2's byte-to-unicode alphabet, read backwards: character -> byte."""
    return {c: b for b, c in bytes_to_unicode().items()}


def smollm_pre_tokenizer(individual_digits=True):
    return pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=individual_digits),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
    ])


def raw_pieces(pre, text, decoder):
    pieces = [bytes(decoder[c] for c in p).decode("utf-8") for p, _ in pre.pre_tokenize_str(text)]
    assert "".join(pieces) == text, (text, pieces)
    return pieces


def main():
    os.makedirs(OUT, exist_ok=True)
    with open(CORPUS, encoding="utf-8") as f:
        corpus = f.read()

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = smollm_pre_tokenizer()
    tok.post_processor = processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, min_frequency=0, show_progress=False,
                                  special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([corpus], trainer=trainer)
    path = os.path.join(OUT, "tokenizer.json")
    tok.save(path)

    with open(path, encoding="utf-8") as f:
        saved = json.load(f)
    for i, s in enumerate(SPECIAL_TOKENS):
        assert tok.token_to_id(s) == i, (s, tok.token_to_id(s))
    assert isinstance(saved["model"]["merges"][0], list), "expected merges as arrays"
    saved["model"]["ignore_merges"] = True
    for token in IGNORE_MERGES_VOCAB:
        assert token not in saved["model"]["vocab"], token
        saved["model"]["vocab"][token] = len(saved["model"]["vocab"])
    tok_ignore = Tokenizer.from_str(json.dumps(saved))
    tok_ordinary = Tokenizer.from_file(path)
    tok_ordinary.encode_special_tokens = True
    digit_runs = smollm_pre_tokenizer(individual_digits=False)
    decoder = byte_decoder()

    lines = []
    for text in CASES:
        ids = tok.encode(text).ids
        decoded = tok.decode(ids, skip_special_tokens=False)
        assert decoded == text, (text, decoded)
        case = {"text": text, "ids": ids, "decoded": decoded,
                "ids_ordinary": tok_ordinary.encode(text).ids,
                "ids_ignore_merges": tok_ignore.encode(text).ids}
        if not any(s in text for s in SPECIAL_TOKENS):
            case["pieces"] = raw_pieces(tok.pre_tokenizer, text, decoder)
            case["pieces_digit_runs"] = raw_pieces(digit_runs, text, decoder)
        lines.append(json.dumps(case, ensure_ascii=False))
    differ = sum(json.loads(line)["ids"] != json.loads(line)["ids_ignore_merges"] for line in lines)
    meta = {"tokenizers": tokenizers.__version__, "vocab_size": tok.get_vocab_size(),
            "special_tokens": SPECIAL_TOKENS, "ignore_merges_vocab": IGNORE_MERGES_VOCAB, "corpus": "../corpus.txt",
            "command": "python3 tests/reference/make_smollm_tokenizer_fixture.py"}
    with open(os.path.join(OUT, "cases.json"), "w", encoding="utf-8") as f:
        f.write('{"meta": ' + json.dumps(meta, ensure_ascii=False) + ',\n "cases": [\n  ')
        f.write(",\n  ".join(lines))
        f.write("\n]}\n")
    print(f"wrote {OUT}: vocabulary {tok.get_vocab_size()}, {len(saved['model']['merges'])} merges, "
          f"{len(lines)} cases ({differ} encode differently with ignore_merges)")


if __name__ == "__main__":
    main()
