-- examples/mpi/site.lua: the example site (examples/site) built by P ranks, each rendering
-- its share of the pages with its own pool of threads.
--
--   mpirun -n 3 target/release/weft run examples/mpi/site.lua [CORPUS_DIR] [OUT_DIR]
--
-- It runs examples/site/build.lua itself (same arguments, same environment variables, same
-- output, byte for byte) after setting SITE_SHARE, which tells build.lua which pages are
-- this rank's: rank r renders the texts floor(N·r/P)+1 .. floor(N·(r+1)/P); rank 0 also the
-- index and the source pages, and it alone cleans up an old build's temporary files before
-- the others start writing. Every rank loads the corpus and computes the top-k and the
-- orderings for all texts (a small part of the time at this size); the render phase,
-- the slowest, is what is split. Rank 0 prints each rank's share and the totals.
local weft = require "weft"
local mpi = weft.mpi
local rank, size = mpi.rank(), mpi.size()

local script_dir = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local t_start = weft.now()

SITE_SHARE = {
  first = rank == 0,
  range = function(n)
    return math.floor(n * rank / size) + 1, math.floor(n * (rank + 1) / size)
  end,
  ready = mpi.barrier,
  finish = function(pages, phase)
    local all = mpi.gather({ pages = pages, render = phase.render }, 0)
    mpi.barrier() -- every page is on disk before rank 0 reports
    if rank ~= 0 then return end
    local total = 0
    for r, p in ipairs(all) do
      total = total + p.pages
      print(string.format("rank %d: %d pages rendered in %.3f s", r - 1, p.pages, p.render))
    end
    print(string.format("weft site: %d pages by %d ranks in %.3f s", total, size, weft.now() - t_start))
  end,
}

arg[0] = script_dir .. "/../site/build.lua"
dofile(arg[0])
