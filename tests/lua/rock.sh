#!/usr/bin/env bash
# `luarocks make` installs weft for Lua 5.1 and 5.4 (Debian's luarocks), and the installed
# rock loads and runs a thread.
set -euo pipefail
cd "$(dirname "$0")/../.."
for version in 5.1 5.4; do
  tree="target/rocktree-$version"
  rm -rf "$tree"
  luarocks --lua-version="$version" make --tree "$tree" >/dev/null
  so="$tree/lib/lua/$version/weft.so"
  test -f "$so" || { echo "rock.sh: $so not installed" >&2; exit 1; }
  out=$(LUA_CPATH="$tree/lib/lua/$version/?.so" "lua$version" -e \
    'local w = require "weft"; print(w.spawn(function(a) return a * 6 end, 7):join())')
  [ "$out" = 42 ] || { echo "rock.sh: Lua $version printed '$out', expected 42" >&2; exit 1; }
  echo "rock.sh: luarocks make for Lua $version: ok"
done
