-- examples/site/build.lua: a static website of a text corpus, with "similar" and
-- "something different" navigation, computed and rendered on every core.
--
--   target/release/weft run examples/site/build.lua [CORPUS_DIR] [OUT_DIR]
--
-- CORPUS_DIR holds texts.jsonl (one {"text", "source", "id"} object a line; "source" and
-- "id" optional, "id" if present must be the 0-based line number) and emb.npy (float32,
-- one row per line). Default: examples/data (2,000 fortunes). OUT_DIR default:
-- examples/site/out. Open OUT_DIR/index.html in a browser.
--
-- What it writes (plain HTML, one style.css, no JavaScript, relative links only):
--   index.html        every source (with its count) and every text (title = first line)
--   t/<id>.html       one page per text, id = its 0-based row in emb.npy: the text, its 10
--                     most similar texts with their cosine scores (weft.topk), and
--                     "something different": the 20 texts that follow it in its diversity
--                     ordering (weft.diversity with length 21: the ordering's first item is
--                     the text itself, so it is skipped, not listed as different from itself)
--   s/<source>.html   one page per source, listing its texts; linked from the index and
--                     from each of its texts' pages
-- Smaller corpora get min(10, N-1) similar and min(20, N-1) different texts.
--
-- How: the corpus is read straight into a frozen table (weft.read_jsonl) and the results
-- are off-heap arrays; a weft.pool renders the pages, each worker reading all of these in
-- place (they cross by reference, once per task, never copied per item). Each task renders
-- a range of items. Every page is written to NAME.tmp-<pid>-<worker> and renamed into place,
-- so an interrupted build never leaves half a page (the next build deletes leftover
-- temporary files). Output is byte-identical for any number of workers.
--
-- It prints a progress bar (on a terminal) and a summary: items, the time of each phase
-- (load, top-k, orderings, render), pages/s, and the workers' time making HTML against
-- writing files. Runs under `weft run` or LuaJIT with the weft module (site_pages.lua uses
-- the FFI for a wall clock).
--
-- Environment:
--   WEFT_SITE_WORKERS=n   render (and compute) with n threads instead of weft.cpus(), e.g.
--                         1 to measure the render phase's speedup on all cores
--   WEFT_SITE_TITLE=...   the site's name (default: the corpus directory's name, or
--                         "fortunes" for the default corpus)
--   WEFT_SITE_PROGRESS=0  no progress output (default: a bar on a terminal, else a line
--                         per quarter of the pages)
local weft = require "weft"

local script_dir = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local module_path = script_dir .. "/?.lua;"
package.path = module_path .. package.path
local pages = require "site_pages"

local now = pages.now

local function fail(msg)
  io.stderr:write("build.lua: ", msg, "\n")
  os.exit(1)
end

local corpus = arg[1] or (script_dir .. "/../data")
local out = arg[2] or (script_dir .. "/out")
local workers = weft.cpus()
if os.getenv("WEFT_SITE_WORKERS") then
  workers = tonumber(os.getenv("WEFT_SITE_WORKERS"))
  if not workers or workers < 1 or workers % 1 ~= 0 then
    fail("WEFT_SITE_WORKERS must be a positive integer, got " .. os.getenv("WEFT_SITE_WORKERS"))
  end
end
local progress_mode = os.getenv("WEFT_SITE_PROGRESS") == "0" and "off"
  or (pages.isatty(2) and "bar" or "lines")

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local t_start = now()
local phase = {}

-- 1. load: the corpus into a frozen table, the embeddings into an array, titles and sources
local t0 = now()
local ok, texts = pcall(weft.read_jsonl, corpus .. "/texts.jsonl", { frozen = true })
if not ok then fail(tostring(texts)) end
local ok2, emb = pcall(weft.load_npy, corpus .. "/emb.npy")
if not ok2 then fail(tostring(emb)) end
local n = #texts
local rows, dim = emb:shape()
if dim == nil then fail(corpus .. "/emb.npy: expected a 2-D array (one row per text)") end
if rows ~= n then
  fail(string.format("%s: %d texts but emb.npy has %d rows", corpus, n, rows))
end
if n < 2 then fail(corpus .. "/texts.jsonl: need at least 2 texts, got " .. n) end

local titles, src, sources, by_name, slugs = {}, {}, {}, {}, {}
for i = 1, n do
  local item = texts[i]
  local text = item.text
  if type(text) ~= "string" then
    fail(string.format("%s/texts.jsonl line %d: no \"text\" string", corpus, i))
  end
  local id = item.id
  if id ~= nil and id ~= i - 1 then
    fail(string.format("%s/texts.jsonl line %d: id %s, expected %d (the row in emb.npy, 0-based)",
      corpus, i, tostring(id), i - 1))
  end
  titles[i] = pages.escape(pages.title(text))
  local name = item.source
  if name == nil then
    src[i] = 0
  else
    name = tostring(name)
    local s = by_name[name]
    if not s then
      local slug, base, k = pages.slug(name), pages.slug(name), 1
      while slugs[slug] do k = k + 1; slug = base .. "-" .. k end
      slugs[slug] = true
      s = #sources + 1
      sources[s] = { name = pages.escape(name), slug = slug, items = {} }
      by_name[name] = s
    end
    src[i] = s
    local items = sources[s].items
    items[#items + 1] = i
  end
end
local k = math.min(10, n - 1)
local different = math.min(20, n - 1)
local site_name = os.getenv("WEFT_SITE_TITLE")
  or (arg[1] and (corpus:gsub("/+$", ""):match("([^/]+)$") or corpus) or "fortunes")
local site = weft.freeze {
  name = pages.escape(site_name), n = n, k = k, different = different,
  titles = titles, src = src, sources = sources,
}
titles, src = nil, nil
phase.load = now() - t0

-- 2. top-k: the k most similar texts of every text
t0 = now()
local ids, scores = weft.topk(emb, k, { threads = workers })
phase.topk = now() - t0

-- 3. orderings: the first different+1 items of every text's diversity ordering
t0 = now()
local starts = {}
for i = 1, n do starts[i] = i end
local div = weft.diversity(emb, starts, { length = different + 1, threads = workers })
starts = nil
for i = 1, n do
  if div:get(i, 1) ~= i then fail("weft.diversity: ordering " .. i .. " does not start with " .. i) end
end
phase.orderings = now() - t0

-- 4. render: every page, by a pool of workers. When several processes build one site
-- (examples/mpi/site.lua sets SITE_SHARE), this one renders only its share: texts
-- SITE_SHARE.range(n), plus the index and source pages if SITE_SHARE.first; the first
-- also cleans up and writes style.css, and SITE_SHARE.ready() waits for that.
local share = SITE_SHARE
local lo, hi = 1, n
if share then lo, hi = share.range(n) end
local first_share = not share or share.first
t0 = now()
local mk = os.execute("mkdir -p " .. sh_quote(out .. "/t") .. " " .. sh_quote(out .. "/s"))
if mk ~= 0 and mk ~= true then -- LuaJIT returns the status, Lua 5.2+ true
  fail("cannot create " .. out)
end
if first_share then
  -- temporary files of an earlier, interrupted build
  os.execute("find " .. sh_quote(out) .. " -maxdepth 2 -name '*.html.tmp-*' -type f -delete")
  local f = io.open(script_dir .. "/style.css", "rb")
  if not f then fail("cannot read " .. script_dir .. "/style.css") end
  local css = f:read("*a")
  f:close()
  pages.write_atomic(out .. "/style.css", css, tostring(pages.getpid()))
end
if share then share.ready() end

local done, html_us, write_us = weft.counter(), weft.counter(), weft.counter()
local D = {
  texts = texts, ids = ids, scores = scores, div = div, site = site,
  out = out, pid = tostring(pages.getpid()), done = done, html_us = html_us, write_us = write_us,
}
local pool = weft.pool {
  size = workers,
  init = function(w)
    package.path = module_path .. package.path
    WORKER = w
  end,
}
-- tasks: the index and the source pages first (the index is the longest page), then the
-- text pages in ranges small enough to keep every worker busy to the end
local futures = {}
if first_share then
  futures[#futures + 1] = pool:submit(function(D) return require("site_pages").render_index(D) end, D)
  for s = 1, #sources do
    futures[#futures + 1] = pool:submit(function(s, D) return require("site_pages").render_source(s, D) end, s, D)
  end
end
local chunk = math.max(16, math.min(256, math.ceil((hi - lo + 1) / (workers * 8))))
for first = lo, hi, chunk do
  futures[#futures + 1] = pool:submit(function(first, last, D)
    return require("site_pages").render_texts(first, last, D)
  end, first, math.min(hi, first + chunk - 1), D)
end
local total_pages = (hi - lo + 1) + (first_share and #sources + 1 or 0)

local next_line = 0.25
local function show(final)
  local d = done:get()
  if progress_mode == "bar" then
    local width = 30
    local filled = math.floor(width * d / total_pages)
    io.stderr:write(string.format("\rrender [%s%s] %d/%d pages", string.rep("#", filled),
      string.rep(".", width - filled), d, total_pages))
    if final then io.stderr:write("\n") end
  elseif progress_mode == "lines" then
    if d >= next_line * total_pages and next_line <= 1 then
      io.stderr:write(string.format("render: %d/%d pages\n", d, total_pages))
      while next_line <= 1 and d >= next_line * total_pages do next_line = next_line + 0.25 end
    end
  end
end
for _, f in ipairs(futures) do
  while not f:wait(0.1) do show(false) end
  local ok, err = pcall(f.join, f) -- a worker's error, with its traceback
  if not ok then
    if progress_mode == "bar" then io.stderr:write("\n") end
    fail("render failed: " .. tostring(err):match("^[^\n]*"))
  end
end
show(true)
pool:close()
phase.render = now() - t0
local total = now() - t_start

if done:get() ~= total_pages then
  fail(string.format("wrote %d pages, expected %d", done:get(), total_pages))
end
if share then return share.finish(total_pages, phase) end
print(string.format("weft site: %d texts, %d sources -> %s (%d pages + style.css)",
  n, #sources, out, total_pages))
print(string.format("  load       %7.3f s", phase.load))
print(string.format("  top-k      %7.3f s   (%d similar per text)", phase.topk, k))
print(string.format("  orderings  %7.3f s   (%d different per text)", phase.orderings, different))
print(string.format("  render     %7.3f s   (%d worker%s, %.0f pages/s)", phase.render, workers,
  workers == 1 and "" or "s", total_pages / phase.render))
print(string.format("                         (the workers' time added up: HTML %.3f s, writing files %.3f s)",
  html_us:get() * 1e-6, write_us:get() * 1e-6))
print(string.format("  total      %7.3f s   (%.0f pages/s)", total, total_pages / total))
print("open " .. out .. "/index.html")
