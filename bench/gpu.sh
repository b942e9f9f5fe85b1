#!/usr/bin/env bash
# Every GPU measurement of BENCHMARKS.md ("GPU", issue 10's table) in one go, for a session
# that is lent a GPU machine (one prepared run: the whole session has 15 minutes of device
# time). Prepare HERE, on the build machine:
#
#   cargo build --release -p weft-cli                   # target/release/weft, with `gpu`
#   mkdir -p .gpubench && cp target/release/weft .gpubench/
#   cp ../shared/data/fortunes/emb.npy .gpubench/fortunes.npy     # N = 7,090, d = 384
#   echo /.gpubench/ >> .git/info/exclude
#   (+ the Vulkan loader as .gl/, per the device tool's README, if the machine lacks it)
#
# then run on the device, carrying .gpubench (and .gl):
#
#   bash bench/gpu.sh .gpubench "$OUT"
#
# It writes gpu.jsonl (one line a run) and gpu.log to OUT. Jobs: `weft devices`; the full
# diversity cache of the fortunes on the GPU and on the CPU engine (the files must be
# byte-identical); similarity and top-10 of a random N = 50,000 × 384 set on the GPU; and
# the PyTorch anchors (E @ E.T, mm + topk in row chunks) on the same data. Medians of the
# warm runs go into the table; lavapipe timings are never recorded.
set -uo pipefail
DIR=${1:?usage: bench/gpu.sh PREPARED_DIR OUT_DIR}
OUTDIR=${2:?usage: bench/gpu.sh PREPARED_DIR OUT_DIR}
REPS=${REPS:-3}
WEFT="$DIR/weft"
mkdir -p "$OUTDIR"
log="$OUTDIR/gpu.log"
jsonl="$OUTDIR/gpu.jsonl"
: >"$jsonl"
if compgen -G ".gl/*.deb" >/dev/null; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
[ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ] &&
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
  "$WEFT" devices
} 2>&1 | tee -a "$log"

# Random N = 50,000 × 384 (fixed seed), written once.
python3 - "$DIR/random50k.npy" <<'PY'
import sys
import numpy as np
np.save(sys.argv[1], np.random.default_rng(10).standard_normal((50_000, 384), dtype=np.float32))
PY

# The cache of every ordering, N = 7,090, upload included (timed by the command itself).
for device in gpu cpu; do
  t0=$(date +%s.%N)
  "$WEFT" diversity-cache "$DIR/fortunes.npy" -o "/tmp/fortunes-$device.cache" --force \
    --device "$device" --progress none 2>&1 | tee -a "$log"
  t1=$(date +%s.%N)
  echo "{\"job\":\"cache\",\"n\":7090,\"device\":\"$device\",\"seconds\":$(echo "$t1 - $t0" | bc)}" | tee -a "$jsonl"
done
cmp /tmp/fortunes-gpu.cache /tmp/fortunes-cpu.cache && echo "caches byte-identical" | tee -a "$log"

# Similarity and top-10 at N = 50,000: weft on the GPU, then the torch anchors.
for job in similarity topk10; do
  timeout 300 "$WEFT" run bench/gpu.lua "$DIR/random50k.npy" "$job" "$REPS" 2>>"$log" | tee -a "$jsonl"
done
timeout 300 python3 bench/gpu_torch.py "$DIR/random50k.npy" "$REPS" 2>>"$log" | tee -a "$jsonl"
