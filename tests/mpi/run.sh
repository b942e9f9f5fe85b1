#!/usr/bin/env bash
# weft.mpi between real processes on this machine: every call with every kind of value
# (tests/mpi/calls.lua) and bad arguments (bad_args.lua) with 2 and 3 ranks and as a
# single process; a rank that raises ends the whole job with its message (crash.lua: the
# others blocked in a receive, in a collective, or the error raised in a thread); the
# examples of examples/mpi with 1, 2 and 3 ranks (word counts and the site identical to
# one process); and the same calls from Debian's luajit loading weft.so built with MPI.
# Without MPI support, weft.mpi's calls say so.
#
#   tests/mpi/run.sh
#
# Needs: $WEFT (default target/release/weft) and $WEFT_MPI_MODULE (default
# target/lua-mpi/luajit/weft.so) built with the cargo feature `mpi` (the Makefile's
# mpi-lua-test builds both), and target/lua/luajit/weft.so built without it; Open MPI's
# mpirun (.ci/install-deps). Every mpirun runs under `timeout`, so a hang fails.
set -euo pipefail
cd "$(dirname "$0")/../.."

weft=${WEFT:-target/release/weft}
module=${WEFT_MPI_MODULE:-target/lua-mpi/luajit/weft.so}
plain_module=${WEFT_PLAIN_MODULE:-target/lua/luajit/weft.so}
limit=${WEFT_MPI_TIMEOUT:-120}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
die() { echo "FAIL: $*" >&2; exit 1; }
command -v mpirun >/dev/null || die "mpirun is not installed (run .ci/install-deps)"
[ -x "$weft" ] || die "$weft is missing (make mpi-lua-test builds it with --features mpi)"

# ranks P CMD...: CMD as P ranks, stdout and stderr to $tmp/out, killed after $limit s
ranks() {
  local p=$1; shift
  timeout -k 10 "$limit" mpirun --allow-run-as-root --oversubscribe -n "$p" "$@" >"$tmp/out" 2>&1
}
# every rank of P printed "ok rank R of P"
all_ok() {
  local p=$1 what=$2
  for ((r = 0; r < p; r++)); do
    grep -qx "ok rank $r of $p" "$tmp/out" || { cat "$tmp/out" >&2; die "$what: rank $r of $p did not finish"; }
  done
}

# 1. every call, every value, 2 and 3 ranks, and one process without mpirun
for p in 2 3; do
  ranks "$p" "$weft" run tests/mpi/calls.lua "$p" || { cat "$tmp/out" >&2; die "calls.lua with $p ranks"; }
  all_ok "$p" "calls.lua"
  ranks "$p" "$weft" run tests/mpi/bad_args.lua || { cat "$tmp/out" >&2; die "bad_args.lua with $p ranks"; }
  all_ok "$p" "bad_args.lua"
done
timeout "$limit" "$weft" run tests/mpi/calls.lua 1 >"$tmp/out" 2>&1 || { cat "$tmp/out" >&2; die "calls.lua without mpirun"; }
all_ok 1 "calls.lua without mpirun"
out=$(echo 'print(select(2, pcall(require("weft").mpi.recv)))' | timeout "$limit" "$weft" run - 2>&1) || die "recv alone: $out"
[ "$out" = "weft.mpi.recv: this job has a single rank, so there is no other rank to receive from" ] \
  || die "recv in a job of one rank: $out"
echo "ok    weft.mpi calls and bad arguments with 2 and 3 ranks, and as one process"

# 2. a rank that raises ends the job, with its message, whatever the others wait in
for mode in recv bcast thread; do
  set +e
  ranks 3 "$weft" run tests/mpi/crash.lua "$mode"
  rc=$?
  set -e
  [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] || { cat "$tmp/out" >&2; die "crash ($mode): the job hung (killed after $limit s)"; }
  [ "$rc" -ne 0 ] || { cat "$tmp/out" >&2; die "crash ($mode): the job exited 0"; }
  want="boom on purpose on the last rank"
  [ "$mode" = thread ] && want="boom from a thread of the last rank"
  grep -q "rank 2 of 3: .*$want" "$tmp/out" || { cat "$tmp/out" >&2; die "crash ($mode): no 'rank 2 of 3: ... $want' line"; }
  ! grep -q "never released" "$tmp/out" || die "crash ($mode): a waiting rank went on"
done
echo "ok    an error on one rank ends the job with its message (others in recv, bcast; error in a thread)"

# 3. the examples
for p in 1 2 3; do
  if [ "$p" = 1 ]; then
    timeout "$limit" "$weft" run examples/mpi/classic.lua 1000000 >"$tmp/out" 2>&1 || { cat "$tmp/out" >&2; die "classic.lua, 1 process"; }
  else
    ranks "$p" "$weft" run examples/mpi/classic.lua 1000000 || { cat "$tmp/out" >&2; die "classic.lua with $p ranks"; }
  fi
  [ "$(grep -c '^rank [0-9]*: intervals' "$tmp/out")" = "$p" ] || { cat "$tmp/out" >&2; die "classic: not $p pieces"; }
  grep -q "^pi ~ 3.1415926535[89][0-9]* *error [0-9.]*e-1[0-9]  (1000000 intervals, $p ranks)" "$tmp/out" \
    || { cat "$tmp/out" >&2; die "classic with $p ranks: pi is off"; }
  grep -q "^histogram total 1000000 " "$tmp/out" || { cat "$tmp/out" >&2; die "classic: histogram total"; }

  if [ "$p" = 1 ]; then
    timeout "$limit" "$weft" run examples/mpi/wordcount.lua >"$tmp/wc1" 2>&1 || { cat "$tmp/wc1" >&2; die "wordcount.lua, 1 process"; }
    grep -q "^2000 texts, [0-9]* words, [0-9]* distinct$" "$tmp/wc1" || { cat "$tmp/wc1" >&2; die "wordcount: no summary"; }
  else
    ranks "$p" "$weft" run examples/mpi/wordcount.lua || { cat "$tmp/out" >&2; die "wordcount.lua with $p ranks"; }
    diff "$tmp/wc1" "$tmp/out" >&2 || die "wordcount with $p ranks differs from one process"
  fi
done
echo "ok    examples/mpi: classic (pi and histogram) and wordcount (same counts) with 1, 2 and 3 ranks"

# the site by P ranks: byte for byte the site one process builds (examples/data, 2,042 pages)
export WEFT_SITE_PROGRESS=0
timeout "$limit" "$weft" run examples/site/build.lua examples/data "$tmp/site1" >"$tmp/out" 2>&1 || { cat "$tmp/out" >&2; die "examples/site, one process"; }
for p in 2 3; do
  ranks "$p" "$weft" run examples/mpi/site.lua examples/data "$tmp/site$p" || { cat "$tmp/out" >&2; die "site.lua with $p ranks"; }
  grep -q "^weft site: 2042 pages by $p ranks" "$tmp/out" || { cat "$tmp/out" >&2; die "site.lua with $p ranks: no summary"; }
  [ "$(grep -c '^rank [0-9]*: [0-9]* pages rendered' "$tmp/out")" = "$p" ] || { cat "$tmp/out" >&2; die "site.lua: not $p shares"; }
  diff -r "$tmp/site1" "$tmp/site$p" >&2 || die "the site built by $p ranks differs from one process's"
done
unset WEFT_SITE_PROGRESS
echo "ok    examples/mpi/site.lua with 2 and 3 ranks writes the same site as one process"

# 4. Debian's luajit loading weft.so built with MPI: the same calls; an error ends the job
if [ -f "$module" ]; then
  mdir=$(dirname "$module")
  LUA_CPATH="$mdir/?.so;;" ranks 2 luajit tests/mpi/calls.lua 2 || { cat "$tmp/out" >&2; die "luajit calls.lua with 2 ranks"; }
  all_ok 2 "luajit calls.lua"
  set +e
  LUA_CPATH="$mdir/?.so;;" ranks 2 luajit tests/mpi/crash.lua recv
  rc=$?
  set -e
  [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] || { cat "$tmp/out" >&2; die "luajit crash: the job hung"; }
  [ "$rc" -ne 0 ] && grep -q "boom on purpose on the last rank" "$tmp/out" \
    && grep -q "rank 1 of 2: the Lua program exited with status 1" "$tmp/out" || { cat "$tmp/out" >&2; die "luajit crash: rc $rc"; }
  echo "ok    luajit + weft.so (mpi): every call with 2 ranks; an error ends the job"
else
  die "$module is missing (make mpi-lua-test builds it)"
fi

# 5. without MPI support weft.mpi says so
if [ -f "$plain_module" ]; then
  out=$(LUA_CPATH="$(dirname "$plain_module")/?.so;;" luajit -e '
    local mpi = require("weft").mpi
    for _, f in ipairs({ "rank", "size", "send", "recv", "bcast", "gather", "allgather",
                         "reduce", "allreduce", "barrier" }) do
      local ok, err = pcall(mpi[f])
      assert(not ok, f)
      print(err)
    end' 2>&1) || die "weft.so without mpi: $out"
  [ "$(echo "$out" | grep -c 'without MPI support')" = 10 ] || die "weft.so without mpi: $out"
  echo "ok    without MPI support every weft.mpi call says so: $(echo "$out" | head -1)"
fi
