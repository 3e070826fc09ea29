#!/usr/bin/env python3
"""scripts/random_tokens_dataset.py: a dataset of uniformly random GPT-2 token ids (llm.c shards plus
dataset.json), for throughput runs on the device machine, where data/default cannot be prepared.

    python3 scripts/random_tokens_dataset.py /tmp/rand_gpt2 --train 20000000 --val 400000
"""
import argparse
import json
import os

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--train", type=int, default=4_000_000, help="training tokens")
    ap.add_argument("--val", type=int, default=400_000, help="validation tokens")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, n in (("train_000000.bin", args.train), ("val_000000.bin", args.val)):
        header = np.zeros(256, np.int32)
        header[0], header[1], header[2] = 20240520, 1, n  # llm.c: magic, version, token count
        with open(os.path.join(args.dir, name), "wb") as f:
            f.write(header.tobytes())
            f.write(rng.integers(0, 50257, n, dtype=np.uint16).tobytes())
    info = {"format": "lumen-dataset", "version": 1, "token_format": "llmc", "token_bytes": 2, "vocab_size": 50257,
            "eot_id": 50256, "doc_separator": "prefix", "tokenizer": "gpt2", "train": "train_*.bin",
            "val": "val_*.bin", "num_tokens": {"train": args.train, "val": args.val}}
    with open(os.path.join(args.dir, "dataset.json"), "w") as f:
        json.dump(info, f)


if __name__ == "__main__":
    main()
