#!/usr/bin/env python3
"""tests/reference/check_safetensors.py: reads lumen-written safetensors files with the Hugging Face
`safetensors` package (formats.md §6, §7.1: "the safetensors Python package must read it").

For each FILE: safe_open must accept it (the Rust reader's validation), `__metadata__` must say
format "pt", the header must follow lumen's writer rules (padded with spaces to a multiple of 8,
`__metadata__` first, tensors in descending element size then name, tiling the buffer), and every
tensor the package can give as numpy must equal the bytes at its offsets. BF16 has no numpy dtype,
so BF16 tensors are checked through the header only.

--sample FILE checks the known values of the sample that the C++ test case
"safetensors: the sample for tests/reference/check_safetensors.py" writes when
LUMEN_SAFETENSORS_SAMPLE names a path:

    LUMEN_SAFETENSORS_SAMPLE=/tmp/sample.safetensors build/lumen_tests -tc='safetensors: the sample*'
    python3 tests/reference/check_safetensors.py --sample /tmp/sample.safetensors

--make-fixture PATH writes tests/fixtures/safetensors/written_by_python.safetensors with the
package's own writer; the C++ test "safetensors: a file written by the Python package" reads it.

Needs numpy and safetensors (pip install safetensors); the C++ tests do not depend on this script.
"""
import json
import struct
import sys

import numpy as np
from safetensors import safe_open

ELEMENT_BYTES = {"F64": 8, "I64": 8, "F32": 4, "I32": 4, "F16": 2, "BF16": 2, "U16": 2, "U8": 1, "I8": 1}
NUMPY = {"F64": "<f8", "I64": "<i8", "F32": "<f4", "I32": "<i4", "F16": "<f2", "U16": "<u2", "U8": "u1", "I8": "i1"}


def check_file(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    text = raw[8:8 + n].decode("utf-8")
    assert n % 8 == 0, f"{path}: header length {n} is not a multiple of 8"
    body = text.rstrip(" ")
    assert text[len(body):] == " " * (n - len(body)), f"{path}: the header is not padded with spaces"
    assert body.startswith('{"__metadata__":{"format":"pt"'), f"{path}: __metadata__ with format pt is not first"
    header = json.loads(body, object_pairs_hook=lambda pairs: pairs)  # keeps the order (and duplicates)
    names = [k for k, _ in header]
    assert len(set(names)) == len(names), f"{path}: duplicate keys"
    entries = [(k, dict(v)) for k, v in header if k != "__metadata__"]
    order = sorted(entries, key=lambda e: (-ELEMENT_BYTES[e[1]["dtype"]], e[0].encode()))
    assert [e[0] for e in entries] == [e[0] for e in order], f"{path}: not in descending size then name order"
    end = 0
    for name, e in entries:
        begin, stop = e["data_offsets"]
        assert begin == end, f"{path}: {name} begins at {begin}, expected {end}"
        assert stop - begin == int(np.prod(e["shape"], dtype=np.int64)) * ELEMENT_BYTES[e["dtype"]], name
        assert (8 + n + begin) % ELEMENT_BYTES[e["dtype"]] == 0, f"{path}: {name} is not aligned"
        end = stop
    assert 8 + n + end == len(raw), f"{path}: {len(raw) - 8 - n - end} trailing bytes"

    tensors = {}
    with safe_open(path, framework="numpy") as f:
        meta = f.metadata()
        assert meta.get("format") == "pt", f"{path}: metadata {meta}"
        assert sorted(f.keys()) == sorted(k for k, _ in entries), f"{path}: keys differ"
        for name, e in entries:
            sl = f.get_slice(name)
            assert sl.get_dtype() == e["dtype"] and list(sl.get_shape()) == e["shape"], name
            begin, stop = e["data_offsets"]
            mine = raw[8 + n + begin:8 + n + stop]
            if e["dtype"] in NUMPY:
                t = f.get_tensor(name)
                assert list(t.shape) == e["shape"], name
                assert t.astype(NUMPY[e["dtype"]]).tobytes() == mine, f"{path}: {name}: values differ"
                tensors[name] = t
            else:
                tensors[name] = np.frombuffer(mine, dtype="<u2").reshape(e["shape"])  # BF16 bits
    print(f"{path}: OK, {len(entries)} tensors, metadata {meta}")
    return meta, tensors


def check_sample(path):
    meta, t = check_file(path)
    assert meta == {"format": "pt", "lumen_optimizer": "adamw", "step": "5000"}, meta
    np.testing.assert_array_equal(t["f32"], np.array([[1.5, -0.0, np.inf], [np.nan, 3e38, -1e-45]], "<f4"))
    assert t["f32"].tobytes()[4:8] == b"\x00\x00\x00\x80"  # -0.0 kept
    np.testing.assert_array_equal(t["f64"], np.array([1 / 3, -2.5e300]))
    np.testing.assert_array_equal(t["bf16"], np.array([0x3F80, 0xC040, 0x7FC0], "<u2"))  # 1, -3, NaN
    np.testing.assert_array_equal(t["f16"], np.array([[1.0, -2.0], [65504.0, 2 ** -24]], "<f2"))
    np.testing.assert_array_equal(t["i32"], np.array([-(2 ** 31), -1, 2 ** 31 - 1], "<i4"))
    np.testing.assert_array_equal(t["i64"], np.array([-(2 ** 63), 2 ** 63 - 1], "<i8"))
    np.testing.assert_array_equal(t["u16"], np.array([0, 50256, 65535], "<u2"))
    np.testing.assert_array_equal(t["u8"], np.array([0, 255], "u1"))
    np.testing.assert_array_equal(t["i8"], np.array([-128, 127], "i1"))
    assert t["scalar"].shape == () and t["scalar"] == np.float32(2.25)
    assert t["empty"].shape == (0, 4)
    np.testing.assert_array_equal(t["transposed"], np.array([[1, 4], [2, 5], [3, 6]], "<f4"))
    print(f"{path}: the sample's values match")


def make_fixture(path):
    from safetensors.numpy import save_file
    save_file({
        "wte.weight": np.array([[0.5, -1.25, 3.0], [1e-8, -0.0, 65504.0]], "<f4"),
        "half": np.array([1.0, -2.0, 2 ** -24], "<f2"),
        "ids": np.array([-(2 ** 63), 0, 2 ** 63 - 1], "<i8"),
        "pos": np.array([[7, -7]], "<i4"),
        "mean": np.array(0.1, "<f8"),
        "flag": np.array(255, "u1"),
        "small": np.array([-128, 1], "i1"),
        "tokens": np.array([50256, 0], "<u2"),
        "nothing": np.zeros((2, 0), "<f4"),
    }, path, metadata={"format": "pt", "source": "safetensors.numpy"})
    print(f"wrote {path}")


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--sample"]:
        check_sample(args[1])
    elif args[:1] == ["--make-fixture"]:
        make_fixture(args[1])
    elif args:
        for p in args:
            check_file(p)
    else:
        sys.exit(__doc__)
