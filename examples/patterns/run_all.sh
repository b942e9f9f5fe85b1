#!/usr/bin/env bash
# Run every pattern in examples/patterns at a small size through `weft run`; stop at the
# first failure (its output is printed). One line per pattern; -v prints each one's output.
#
#   examples/patterns/run_all.sh [-v]
set -euo pipefail
cd "$(dirname "$0")/../.."
verbose=0
[ "${1:-}" = "-v" ] && verbose=1

weft=target/release/weft
if [ ! -x "$weft" ]; then
  echo "building $weft ..."
  cargo build --release -q -p weft-cli
fi

# each pattern with its small size
patterns=(
  "01_parallel_for.lua 1000000"
  "02_stream_consumers.lua 5000"
  "03_shared_counter.lua 20000"
  "04_parallel_files.lua 200"
  "05_partitioned_array.lua 1000000"
  "06_big_data_off_heap.lua 0.1 0.05"
  "07_ffi_hot_loop.lua 2000000"
  "08_what_not_to_do.lua"
)

start_all=$(date +%s.%N)
for p in "${patterns[@]}"; do
  read -r script args <<<"$p"
  t0=$(date +%s.%N)
  # shellcheck disable=SC2086  # args is a list of words
  if out=$("$weft" run "examples/patterns/$script" $args 2>&1); then
    printf 'ok    %-26s %5.2f s\n' "$script" "$(echo "$(date +%s.%N) - $t0" | bc)"
    [ "$verbose" = 1 ] && printf '%s\n\n' "$out" | sed 's/^/      /'
  else
    rc=$?
    printf 'FAIL  %-26s exit %d\n' "$script" "$rc"
    printf '%s\n' "$out" | sed 's/^/      /'
    exit 1
  fi
done
printf 'all %d patterns passed in %.1f s\n' "${#patterns[@]}" "$(echo "$(date +%s.%N) - $start_all" | bc)"
