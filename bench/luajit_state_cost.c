/* What a fresh LuaJIT state costs on this machine, and how much of it is `cpuid`.
 *
 * A `weft.spawn` runs its function in a fresh state, so a back-to-back spawn loop is bounded
 * by building and closing states. LuaJIT's luaopen_jit detects the CPU with three `cpuid`
 * instructions per state; under a hypervisor each one exits to the host. This measures a
 * cpuid, and newstate + openlibs + close with and without the jit library
 * (BENCHMARKS.md, "Spawn + join").
 *
 *   cc -O2 bench/luajit_state_cost.c -o /tmp/state_cost -I/usr/include/luajit-2.1 -lluajit-5.1
 *   /tmp/state_cost
 */
#include <cpuid.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <time.h>

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static void open(lua_State *L, lua_CFunction f) {
  lua_pushcfunction(L, f);
  lua_call(L, 0, 0);
}

int main(void) {
  const int n = 2000;
  unsigned a, b, c, d;
  double t0 = now_us();
  for (int i = 0; i < n; i++) __cpuid(1, a, b, c, d);
  double t1 = now_us();
  for (int i = 0; i < n; i++) {
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    lua_close(L);
  }
  double t2 = now_us();
  for (int i = 0; i < n; i++) {
    lua_State *L = luaL_newstate();
    open(L, luaopen_base);
    open(L, luaopen_package);
    open(L, luaopen_table);
    open(L, luaopen_io);
    open(L, luaopen_os);
    open(L, luaopen_string);
    open(L, luaopen_math);
    open(L, luaopen_debug);
    open(L, luaopen_bit);
    lua_close(L);
  }
  double t3 = now_us();
  for (int i = 0; i < n; i++) lua_close(luaL_newstate());
  double t4 = now_us();
  printf("cpuid: %.2f us\n", (t1 - t0) / n);
  printf("newstate + openlibs + close: %.1f us\n", (t2 - t1) / n);
  printf("the same without the jit library: %.1f us\n", (t3 - t2) / n);
  printf("newstate + close: %.1f us\n", (t4 - t3) / n);
  (void)a, (void)b, (void)c, (void)d;
  return 0;
}
