#!/bin/sh
# Called by `luarocks make`: build weft.so for the interpreter luarocks uses ($1).
set -eu
lua="${1:-lua}"
flavour=$("$lua" -e 'print(jit and "luajit" or _VERSION)')
case "$flavour" in
  luajit) target=luajit ;;
  "Lua 5.4") target=lua5.4 ;;
  "Lua 5.1") target=lua5.1 ;;
  *) echo "weft: unsupported interpreter $lua ($flavour); use LuaJIT, Lua 5.1 or Lua 5.4" >&2; exit 1 ;;
esac
make module LUA="$target"
mkdir -p target/luarocks
cp "target/lua/$target/weft.so" target/luarocks/weft.so
