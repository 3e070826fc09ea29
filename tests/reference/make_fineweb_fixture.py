"""Writes tests/fixtures/fineweb/: two tiny shards in the llm.c / FineWeb format, written the way
llm.c's dev/data/data_common.py::write_datafile writes them (numpy, a 256 x int32 header with magic
20240520, version 1 and the token count, then uint16 tokens), named as dev/data/fineweb.py names
them. Each document is prefixed with <|endoftext|> = 50256. The token values follow a formula the
C++ test (tests/data/fineweb_test.cpp) recomputes, so the fixture needs no expected-values file.

Run: python3 tests/reference/make_fineweb_fixture.py
"""
import os
import numpy as np

EOT = 50256


def tokens(n, salt):
    # Documents of 97 tokens: EOT, then 96 ids spread over GPT-2's whole vocabulary.
    out = []
    for i in range(n):
        j = i % 97
        out.append(EOT if j == 0 else (i * 7919 + salt * 104729) % 50257 % EOT)
    return out


def write_datafile(filename, toks):
    # As llm.c's write_datafile (GPT-2 flavour).
    assert len(toks) < 2**31, "token count too large"
    header = np.zeros(256, dtype=np.int32)
    header[0] = 20240520
    header[1] = 1
    header[2] = len(toks)
    toks_np = np.array(toks, dtype=np.uint16)
    with open(filename, "wb") as f:
        f.write(header.tobytes())
        f.write(toks_np.tobytes())


here = os.path.join(os.path.dirname(__file__), "..", "fixtures", "fineweb")
os.makedirs(here, exist_ok=True)
write_datafile(os.path.join(here, "fineweb_val_000000.bin"), tokens(1000, 0))
write_datafile(os.path.join(here, "fineweb_train_000001.bin"), tokens(3001, 1))
