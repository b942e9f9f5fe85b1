#!/usr/bin/env bash
# The README's API tour is real code: run it under LuaJIT and Lua 5.4 and compare what
# each `print(...)  --> shown` line prints with what it shows (text in parentheses after
# two spaces is commentary).
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
tour="$dir/file.lua"
awk '/^## A tour of the API/ {on = 1} on && /^```lua/ {grab = 1; next} grab && /^```/ {exit} grab' README.md > "$tour"
normalise() { awk '{$1 = $1; print}' | sed -E 's/(^| )([0-9]+)\.0( |$)/\1\2\3/g'; }
expected=$(grep -E '^print\(.*--> ' "$tour" | sed 's/.*--> //; s/  (.*$//' | normalise)
for lua in luajit lua5.4; do
  got=$(cd "$dir" && LUA_CPATH="$OLDPWD/target/lua/$lua/?.so;;" "$lua" file.lua 2>&1 \
    | grep -v -e '^stack traceback:' -e $'^\t' | normalise)
  if [ "$got" != "$expected" ]; then
    echo "readme.sh: the tour prints something else under $lua" >&2
    diff <(printf '%s\n' "$expected") <(printf '%s\n' "$got") >&2 || true
    exit 1
  fi
  echo "readme.sh: the README tour runs under $lua and prints what it shows"
done
