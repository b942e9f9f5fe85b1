package = "weft"
version = "0.1.0-1"
source = {
   url = "git+file://.",
}
description = {
   summary = "Real multi-core parallelism for Lua: threads, warm pools, channels",
   detailed = [[
weft gives LuaJIT and Lua 5.1/5.4 programs OS threads that each own a Lua state,
warm worker pools, fast channels, and a value codec that moves tables (cycles kept),
functions (bytecode plus upvalues) and modules (by name) between them. The core is
Rust; building needs cargo.
]],
   license = "MIT",
}
dependencies = {
   "lua >= 5.1, < 5.5",
}
build = {
   type = "command",
   -- Builds target/luarocks/weft.so for the interpreter luarocks is configured with.
   build_command = [[sh ./luarocks-build.sh "$(LUA)"]],
   install = {
      lib = {
         weft = "target/luarocks/weft.so",
      },
   },
}
