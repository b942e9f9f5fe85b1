#!/usr/bin/env bash
# Run the busted specs against the built module under one interpreter.
#   bash tests/lua/run.sh luajit|lua5.4
# Expects target/lua/<LUA>/weft.so (make module LUA=<LUA>), or <LUA>/weft.so under
# $WEFT_LUA_MODULE_DIR when set (the sanitizer builds). Exits non-zero on any failure.
set -uo pipefail

LUA=${1:-luajit}
shift || true
case "$LUA" in
  luajit|lua5.4|lua5.1) ;;
  *) echo "run.sh: LUA must be luajit or lua5.4 (got '$LUA')" >&2; exit 2 ;;
esac

cd "$(dirname "$0")/../.."
ROOT=$PWD
MODDIR=${WEFT_LUA_MODULE_DIR:-$ROOT/target/lua}
if [ ! -f "$MODDIR/$LUA/weft.so" ]; then
  echo "run.sh: $MODDIR/$LUA/weft.so is missing; run: make module LUA=$LUA" >&2
  exit 2
fi
command -v "$LUA" >/dev/null || { echo "run.sh: $LUA is not installed" >&2; exit 2; }
BUSTED=${BUSTED:-/usr/bin/busted}

export LUA_CPATH="$MODDIR/$LUA/?.so;;"
# Version-specific variables win over LUA_CPATH / LUA_PATH; make sure ours is the one used.
unset LUA_CPATH_5_4 LUA_CPATH_5_3 LUA_PATH_5_4 LUA_PATH_5_3
export WEFT_TEST_LUA="$LUA"
export WEFT_TEST_CPATH="$LUA_CPATH"

log=$(mktemp)
trap 'rm -f "$log"' EXIT

# A hung spec must fail the run, not stall it.
timeout --kill-after=10 180 "$LUA" "$BUSTED" \
  --lpath="$ROOT/tests/lua/?.lua" \
  --pattern=_spec \
  -o utfTerminal \
  "$@" "${ROOT}/tests/lua" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}

summary=$(grep -E '[0-9]+ success(es)? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending' "$log" | tail -n 1)
if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
  echo "run.sh ($LUA): busted timed out" >&2
  exit 1
fi
if [ -z "$summary" ]; then
  echo "run.sh ($LUA): busted printed no summary (exit $rc)" >&2
  exit 1
fi
echo "$LUA: $summary"
# busted's exit status is the failure count, which wraps at 256: check the summary too.
if [ "$rc" != 0 ] || ! echo "$summary" | grep -qE ' 0 failures / 0 errors '; then
  exit 1
fi
exit 0
