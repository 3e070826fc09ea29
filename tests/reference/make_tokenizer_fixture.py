#!/usr/bin/env python3
"""tests/reference/make_tokenizer_fixture.py: golden files for lumen's byte-level BPE tests.

Writes tests/fixtures/tokenizer/:
  corpus.txt       the training text: docstrings of Python's builtins plus multilingual lines
                   (kept when present, so the other files can be remade from the committed text)
  vocab.json, merges.txt, tokenizer.json
                   a byte-level BPE trained by Hugging Face `tokenizers` on corpus.txt as one
                   document: GPT-2 pre-tokenizer (ByteLevel, add_prefix_space=False, use_regex=True),
                   the full 256-byte initial alphabet, special token <|endoftext|> (id 0)
  gpt2_tokenizer.llmc
                   the same vocabulary in llm.c's gpt2_tokenizer.bin format (version 2, EOT id in
                   header[3]); the extension keeps it clear of .gitignore's *.bin
  cases.json       for each test string (hex bytes): the GPT-2 split ("pieces", hex), the ids of an
                   independent reference encoder (openai/gpt-2 encoder.py's bpe() with the `regex`
                   module), and for valid UTF-8 the ids of `tokenizers` (checked equal here)

Invalid UTF-8 cannot go through `tokenizers` (its input is a str); for those cases the reference
decodes with errors="surrogateescape", so each bad byte is one character outside \\s, \\p{L} and
\\p{N}, exactly lumen's rule. Needs: pip install tokenizers regex. Run from the repository root:

    python3 tests/reference/make_tokenizer_fixture.py
"""
import builtins
import json
import os
import struct

import regex
import tokenizers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

OUT = "tests/fixtures/tokenizer"
VOCAB_SIZE = 1000
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

EXTRA_LINES = [
    "It's what we're doing: they've said I'm sure you'll see he'd agree.",
    "Don't panic! 42 is the answer; 3.14159 is pi, and 2024-05-20 is a date.",
    "ภาษาไทยเป็นภาษาที่มีเอกลักษณ์ ภาษาไทยง่ายนิดเดียว",
    "Emoji: 🦀 crabs, ❤️ hearts, 👩‍👩‍👧 families, 🎉 parties.",
    "日本語のテキストと中文的文本。Ελληνικά κείμενα. Кириллица тоже.",
    "Café naïve façade — ‘quotes’ and “double quotes” … ½ ² ３４５",
    "def square(x):\n    return x ** 2  # comment\n\n\n\tindented\r\n",
]

CASES = [
    b"Hello world",
    b"It's, we're, they've, I'm, you'll, he'd, don't, can't've",
    b"I'M SHOUTING 'LL 'S",
    b"'''s x's' ''",
    "12345 678.9 2024-05-20 ３４５ ² ½ Ⅻ".encode(),
    b"a  b   c\n\n\nd\t\t e \n",
    b"   leading and trailing   ",
    b"\r\nwindows\r\n\r\n",
    "ภาษาไทยง่ายนิดเดียว".encode(),
    "I ❤️ 🦀 and 👩‍👩‍👧 family".encode(),
    "日本語のテキスト 中文".encode(),
    "Café naïve façade — ‘quotes’ “double”".encode(),
    "\u00a0nbsp\u2003em\u3000ideographic\u200bzero-width\u0085next".encode(),
    b"def f(x):\n    return x**2  # square\n",
    b"x" * 300 + b" " * 50 + b"y",
    b"",
    b" ",
    b"a<|endoftext|>b",
    b"abc\xff\xfedef",
    b"\xe2\x82 x",
    b"\xc0\xaf overlong",
    b"\xed\xa0\x80 surrogate",
    b" \x80\x80abc",
    b"hi \xf0\x9f\x98",
    b"\xf4\x90\x80\x80 above U+10FFFF",
]


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def make_corpus(path):
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            return f.read()
    parts = []
    for name in sorted(dir(builtins)):
        doc = getattr(builtins, name).__doc__
        if doc and not name.startswith("_"):
            parts.append(f"{name}\n{doc}\n")
    text = "\n".join(parts) + "\n" + "\n".join(EXTRA_LINES * 5)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return text


class Reference:
    """openai/gpt-2 encoder.py: the split with `regex`, then bpe() by merge rank."""

    def __init__(self, vocab, merges):
        self.encoder = vocab
        self.ranks = {pair: i for i, pair in enumerate(merges)}
        self.byte_encoder = bytes_to_unicode()
        self.pat = regex.compile(GPT2_PATTERN)

    def pieces(self, data):
        text = data.decode("utf-8", errors="surrogateescape")
        return [p.encode("utf-8", errors="surrogateescape") for p in self.pat.findall(text)]

    def bpe(self, word):
        word = list(word)
        while len(word) > 1:
            pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
            bigram = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if bigram not in self.ranks:
                break
            first, second = bigram
            new, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and word[i] == first and word[i + 1] == second:
                    new.append(first + second)
                    i += 2
                else:
                    new.append(word[i])
                    i += 1
            word = new
        return word

    def encode(self, data):
        ids = []
        for piece in self.pieces(data):
            spelled = "".join(self.byte_encoder[b] for b in piece)
            ids.extend(self.encoder[t] for t in self.bpe(spelled))
        return ids


def main():
    os.makedirs(OUT, exist_ok=True)
    corpus = make_corpus(os.path.join(OUT, "corpus.txt"))

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, min_frequency=0, show_progress=False,
                                  special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([corpus], trainer=trainer)
    tok.save(os.path.join(OUT, "tokenizer.json"))
    tok.model.save(OUT)  # vocab.json, merges.txt

    with open(os.path.join(OUT, "vocab.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    with open(os.path.join(OUT, "merges.txt"), encoding="utf-8") as f:
        merges = [tuple(line.rstrip("\n").split(" ")) for line in f
                  if line.strip() and not line.startswith("#version")]
    ref = Reference(vocab, merges)

    byte_decoder = {c: b for b, c in bytes_to_unicode().items()}
    id_to_bytes = {}
    for token, i in vocab.items():
        if token == "<|endoftext|>":
            id_to_bytes[i] = token.encode()
        else:
            id_to_bytes[i] = bytes(byte_decoder[c] for c in token)
    n = len(vocab)
    assert sorted(id_to_bytes) == list(range(n))
    header = [0] * 256
    header[0], header[1], header[2], header[3] = 20240328, 2, n, vocab["<|endoftext|>"]
    with open(os.path.join(OUT, "gpt2_tokenizer.llmc"), "wb") as f:
        f.write(struct.pack("<256I", *header))
        for i in range(n):
            f.write(struct.pack("<B", len(id_to_bytes[i])) + id_to_bytes[i])

    cases = []
    for data in CASES:
        entry = {"hex": data.hex(), "pieces": [p.hex() for p in ref.pieces(data)],
                 "ids": ref.encode(data)}
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None:
            hf = tok.encode(text).ids
            entry["hf_ids"] = hf
            if b"<|endoftext|>" not in data:
                assert hf == entry["ids"], (data, hf, entry["ids"])
            assert bytes(b for i in entry["ids"] for b in id_to_bytes[i]) == data
        cases.append(entry)
    meta = {"tokenizers": tokenizers.__version__, "regex": regex.__version__,
            "vocab_size": n, "eot_id": vocab["<|endoftext|>"], "corpus": "corpus.txt",
            "command": "python3 tests/reference/make_tokenizer_fixture.py"}
    with open(os.path.join(OUT, "cases.json"), "w", encoding="utf-8") as f:
        json.dump({"meta": meta, "cases": cases}, f, indent=1)
    print(f"wrote {OUT}: vocabulary {n}, {len(merges)} merges, {len(cases)} cases")


if __name__ == "__main__":
    main()
