"""The PyTorch anchors of BENCHMARKS.md ("GPU"), run by bench/gpu.sh on the GPU machine.

    python3 bench/gpu_torch.py EMB.npy REPS

similarity: E @ E.T in float32 (TF32 off: the same arithmetic class as weft's f32 FMA
chains), upload and read-back to host memory included, and the on-device time alone;
topk10: `mm` + `topk(11)` in row chunks (self removed), ids and scores read back.
One JSON line per run.
"""
import json
import sys
import time

import numpy as np
import torch

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
path, reps = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 5
host = np.load(path).astype(np.float32)
host /= np.linalg.norm(host.astype(np.float64), axis=1, keepdims=True).astype(np.float32)
n, d = host.shape
dev = torch.device("cuda")


def sync():
    torch.cuda.synchronize()


def similarity(read_back):
    e = torch.from_numpy(host).to(dev)
    s = e @ e.T
    if read_back:
        out = torch.empty((n, n), dtype=torch.float32, pin_memory=False)
        out.copy_(s)
    sync()


def topk10(chunk=4096):
    e = torch.from_numpy(host).to(dev)
    ids, scores = [], []
    for i in range(0, n, chunk):
        s = e[i:i + chunk] @ e.T
        rows = torch.arange(i, min(i + chunk, n), device=dev)
        s[rows - i, rows] = -float("inf")
        v, j = torch.topk(s, 10, dim=1)
        ids.append(j)
        scores.append(v)
    torch.cat(ids).cpu()
    torch.cat(scores).cpu()
    sync()


jobs = {
    "similarity": lambda: similarity(True),
    "similarity-on-device": lambda: similarity(False),
    "topk10": topk10,
}
for name, fn in jobs.items():
    for r in range(reps + 1):
        sync()
        t0 = time.perf_counter()
        fn()
        s = time.perf_counter() - t0
        print(json.dumps({"job": name, "n": n, "d": d, "device": "torch",
                          "run": "cold" if r == 0 else "warm", "seconds": round(s, 4)}), flush=True)
