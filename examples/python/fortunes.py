#!/usr/bin/env python3
"""weft from Python on the shipped fortunes (examples/data): each of a few fortunes' nearest
neighbours, then "something different": the start of a diversity ordering.

    pip install ./python          # the weft-embed package, imported as weft
    python examples/python/fortunes.py [ITEM ...]
"""
import json
import os
import sys

import numpy as np

import weft

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")


def first_line(text, width=76):
    line = text.strip().splitlines()[0].strip()
    return line if len(line) <= width else line[: width - 1] + "…"


def main():
    emb = np.load(os.path.join(DATA, "emb.npy"))  # float32, C-contiguous: read in place
    with open(os.path.join(DATA, "texts.jsonl"), encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f]
    items = [int(a) for a in sys.argv[1:]] or [0, 42, 1234]

    ids, scores = weft.topk(emb, 3)  # every item's 3 nearest, 0-based ids
    for q in items:
        print(f"[{q}] {first_line(texts[q])}")
        for j, s in zip(ids[q], scores[q]):
            print(f"    {s:.3f}  [{j}] {first_line(texts[j])}")

    print(f"\nsomething different, starting from [{items[0]}]:")
    for j in weft.diversity(emb, items[0], length=6):
        print(f"    [{j}] {first_line(texts[j])}")


if __name__ == "__main__":
    main()
