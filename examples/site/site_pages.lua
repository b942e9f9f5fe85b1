-- site_pages: the HTML of examples/site/build.lua, as plain functions of an item number.
--
-- Loaded by the main thread (titles, slugs) and by every render worker (pages). Workers
-- get the data as one small table D of weft handles, which cross threads by reference:
--   D.texts   frozen list of the corpus' objects (read_jsonl {frozen = true}): .text .source
--   D.ids     N×k u32 array, D.scores N×k f32: the k most similar items (weft.topk)
--   D.div     N×(L+1) u32 array: diversity orderings, row i starting with i itself
--   D.site    frozen: name, n, titles[i] (HTML-escaped), src[i] (source number or 0),
--             sources[s] = {name (escaped), slug, items = {...}}
--   D.out     the output directory; D.pid the build's process id; D.done, D.html_us and
--             D.write_us weft.counters (pages, microseconds making HTML, writing files)
-- Workers are numbered by the pool's init (the global WORKER); temporary files are named
-- NAME.tmp-<pid>-<worker>, so two workers (or two builds) never write the same one.
-- Nothing here keeps per-item state: a page is a function of (i, D) only, so any worker
-- can render any range and the output is the same for any number of workers.
local M = {}

-- A wall clock, isatty and getpid through LuaJIT's FFI (os.clock is the CPU time of all
-- threads, not a wall clock). Declared here once per Lua state: the main thread and each
-- worker load this module once.
local ffi = require "ffi"
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } weft_site_timespec;
  int clock_gettime(int clk, weft_site_timespec *ts);
  int isatty(int fd);
  int getpid(void);
]]
local ts = ffi.new("weft_site_timespec")
function M.now()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end
function M.isatty(fd) return ffi.C.isatty(fd) == 1 end
function M.getpid() return tonumber(ffi.C.getpid()) end

-- Files. Item i (1-based, row i of emb.npy) is t/<i-1>.html: the corpus' own 0-based id.
function M.text_file(i) return (i - 1) .. ".html" end
function M.source_file(slug) return slug .. ".html" end

-- Escaping ------------------------------------------------------------------------------

-- One pass: & < > " ' become entities; C0 controls other than tab and newline (not
-- allowed in HTML text) become their Unicode Control Pictures (U+2400 + code, e.g. BEL ->
-- U+2407, DEL -> U+2421), so nothing in a text is hidden or dropped.
local ESC = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }
for b = 0, 31 do
  if b ~= 9 and b ~= 10 then ESC[string.char(b)] = "\226\144" .. string.char(128 + b) end
end
ESC["\127"] = "\226\144\161"
local SPECIAL = "[%z\1-\8\11-\31\127&<>\"']"

function M.escape(s)
  if s:find("\r", 1, true) then s = s:gsub("\r\n?", "\n") end
  return (s:gsub(SPECIAL, ESC))
end

-- Titles and slugs ----------------------------------------------------------------------

-- The title of a text: its first non-blank line, whitespace collapsed, cut at MAX bytes
-- (at a word boundary when one is near, never inside a UTF-8 sequence). An ellipsis marks
-- a cut, or a first line that stops mid-sentence while more text follows.
local MAX = 72
local ELLIPSIS = "\226\128\166" -- U+2026
function M.title(text)
  local first, rest = text:match("^%s*([^\n]*%S[^\n]*)(.*)$")
  if not first then return "(empty)" end
  local line = first:gsub("%s+", " "):gsub(" $", "")
  if #line <= MAX then
    if rest:find("%S") and not line:find("[%.!?:;\"')%]]$") then line = line .. ELLIPSIS end
    return line
  end
  local cut = line:sub(1, MAX)
  local space = cut:match("^.*() ")
  if space and space > MAX * 2 / 3 then
    cut = cut:sub(1, space - 1)
  else
    -- drop a trailing lead byte and its (incomplete) continuation bytes
    cut = cut:gsub("[\192-\255][\128-\191]*$", "")
  end
  cut = cut:gsub("[%s,;:%-]+$", "")
  return cut .. ELLIPSIS
end

-- A file name for a source: lower case, runs of anything but [a-z0-9_-] become "-".
-- build.lua makes them unique (a numeric suffix) when two sources map to one slug.
function M.slug(name)
  local s = name:lower():gsub("[^%w_%-]+", "-"):gsub("^%-+", ""):gsub("%-+$", "")
  if s == "" then s = "source" end
  return s
end

-- Page frame ----------------------------------------------------------------------------

local function head(buf, title, root, site_name)
  buf[#buf + 1] = '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
  buf[#buf + 1] = '<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>'
  buf[#buf + 1] = title
  buf[#buf + 1] = " \226\128\148 "
  buf[#buf + 1] = site_name
  buf[#buf + 1] = '</title>\n<link rel="stylesheet" href="'
  buf[#buf + 1] = root
  buf[#buf + 1] = 'style.css">\n</head>\n<body>\n'
end

local function foot(buf, C)
  buf[#buf + 1] = '<footer>'
  buf[#buf + 1] = tostring(C.n)
  buf[#buf + 1] = ' texts from '
  buf[#buf + 1] = C.name
  buf[#buf + 1] = ', built with weft: similar = cosine top-k of the embeddings, different = a diversity ordering.</footer>\n</body>\n</html>\n'
end

-- one <li> linking to item j; prefix is the path from the page to t/
local function item_li(buf, C, prefix, j, extra)
  buf[#buf + 1] = '<li><a href="'
  buf[#buf + 1] = prefix
  buf[#buf + 1] = M.text_file(j)
  buf[#buf + 1] = '">'
  buf[#buf + 1] = C.titles[j]
  buf[#buf + 1] = '</a>'
  if extra then buf[#buf + 1] = extra end
  buf[#buf + 1] = '</li>\n'
end

-- Pages ---------------------------------------------------------------------------------

-- The views the pages read, looked up once per task. Getting a nested frozen table
-- (site.titles) or an array row (ids[i]) makes a view (about 0.2 us, and those lookups
-- contend between threads); reading elements of a view in hand, or a:get(i, j), costs
-- about 20 ns and scales. The source list is small: a plain copy per task.
function M.context(D)
  local site = D.site
  local C = {
    texts = D.texts, ids = D.ids, scores = D.scores, div = D.div,
    titles = site.titles, src = site.src, sources = {},
    n = site.n, k = site.k, different = site.different, name = site.name,
  }
  local sources = site.sources
  for s = 1, #sources do
    local v = sources[s]
    C.sources[s] = { name = v.name, slug = v.slug, items = v.items }
  end
  return C
end

-- The page of item i.
function M.text_page(i, C)
  local ids, scores, div = C.ids, C.scores, C.div
  local n, k, len = C.n, C.k, C.different
  local title = C.titles[i]
  local s = C.src[i]
  local src = s > 0 and C.sources[s] or nil
  local buf = {}
  head(buf, title, "../", C.name)

  buf[#buf + 1] = '<nav><a href="../index.html">All texts</a>'
  if src then
    buf[#buf + 1] = ' \194\183 <a href="../s/' .. M.source_file(src.slug) .. '">' .. src.name .. '</a>'
  end
  if i > 1 then buf[#buf + 1] = ' \194\183 <a rel="prev" href="' .. M.text_file(i - 1) .. '">\226\134\144 previous</a>' end
  if i < n then buf[#buf + 1] = ' \194\183 <a rel="next" href="' .. M.text_file(i + 1) .. '">next \226\134\146</a>' end
  buf[#buf + 1] = '</nav>\n<main>\n<h1>'
  buf[#buf + 1] = title
  buf[#buf + 1] = '</h1>\n<pre class="text">'
  buf[#buf + 1] = M.escape(C.texts[i].text)
  buf[#buf + 1] = '</pre>\n<p class="meta">Text #' .. (i - 1) .. ' of ' .. n
  if src then
    buf[#buf + 1] = ', from <a href="../s/' .. M.source_file(src.slug) .. '">' .. src.name .. '</a>'
  end
  buf[#buf + 1] = '.</p>\n'

  buf[#buf + 1] = '<section>\n<h2>Similar</h2>\n<ol class="similar">\n'
  for r = 1, k do
    item_li(buf, C, "", ids:get(i, r), string.format(' <span class="score">%.3f</span>', scores:get(i, r)))
  end
  buf[#buf + 1] = '</ol>\n</section>\n'

  buf[#buf + 1] = '<section>\n<h2>Something different</h2>\n'
  buf[#buf + 1] = '<p class="note">Each next text is the one least like this text and those listed above it.</p>\n'
  buf[#buf + 1] = '<ol class="different">\n'
  -- column 1 is i itself: the ordering starts with this text, which is not listed
  for r = 2, len + 1 do item_li(buf, C, "", div:get(i, r)) end
  buf[#buf + 1] = '</ol>\n</section>\n</main>\n'
  foot(buf, C)
  return table.concat(buf)
end

-- The page of source s: every text from it, in corpus order.
function M.source_page(s, C)
  local src = C.sources[s]
  local items = src.items
  local buf = {}
  head(buf, src.name, "../", C.name)
  buf[#buf + 1] = '<nav><a href="../index.html">All texts</a></nav>\n<main>\n<h1>'
  buf[#buf + 1] = src.name
  buf[#buf + 1] = '</h1>\n<p class="meta">' .. #items .. (#items == 1 and ' text' or ' texts') .. ' from this source.</p>\n<ol class="texts">\n'
  for r = 1, #items do item_li(buf, C, "../t/", items[r]) end
  buf[#buf + 1] = '</ol>\n</main>\n'
  foot(buf, C)
  return table.concat(buf)
end

-- The index: the sources, then every text.
function M.index_page(C)
  local sources = C.sources
  local buf = {}
  head(buf, "All texts", "", C.name)
  buf[#buf + 1] = '<main>\n<h1>' .. C.name .. '</h1>\n<p class="meta">' .. C.n .. ' texts'
  if #sources > 0 then buf[#buf + 1] = ' from ' .. #sources .. ' sources' end
  buf[#buf + 1] = '. Each page links to the texts most similar to it and to a run of texts as different as possible.</p>\n'
  if #sources > 0 then
    buf[#buf + 1] = '<h2>Sources</h2>\n<ul class="sources">\n'
    for s = 1, #sources do
      local src = sources[s]
      buf[#buf + 1] = '<li><a href="s/' .. M.source_file(src.slug) .. '">' .. src.name .. '</a> <span class="count">' .. #src.items .. '</span></li>\n'
    end
    buf[#buf + 1] = '</ul>\n'
  end
  buf[#buf + 1] = '<h2>All texts</h2>\n<ol class="texts" start="0">\n'
  local labels = {}
  for s = 1, #sources do labels[s] = ' <span class="src">' .. sources[s].name .. '</span>' end
  local src = C.src
  for i = 1, C.n do
    local s = src[i]
    item_li(buf, C, "t/", i, s > 0 and labels[s] or nil)
  end
  buf[#buf + 1] = '</ol>\n</main>\n'
  foot(buf, C)
  return table.concat(buf)
end

-- Writing -------------------------------------------------------------------------------

-- Write path atomically: a temporary file next to it, then a rename over it. A build
-- killed at any moment leaves each page either absent, old, or complete.
function M.write_atomic(path, data, tag)
  local tmp = path .. ".tmp-" .. tag
  local f, err = io.open(tmp, "wb")
  if not f then error("cannot write " .. tmp .. ": " .. tostring(err), 0) end
  local ok, werr = f:write(data)
  local cok, cerr = f:close()
  if not ok or not cok then
    os.remove(tmp)
    error("cannot write " .. tmp .. ": " .. tostring(werr or cerr), 0)
  end
  local rok, rerr = os.rename(tmp, path)
  if not rok then
    os.remove(tmp)
    error("cannot rename " .. tmp .. " to " .. path .. ": " .. tostring(rerr), 0)
  end
end

local function tmp_tag(D) return D.pid .. "-" .. tostring(WORKER or 0) end

-- Render and write the pages of items first..last. D.done counts pages (the progress bar),
-- D.html_us and D.write_us the microseconds spent making HTML and writing files.
function M.render_texts(first, last, D)
  local dir, tag, done, C = D.out .. "/t/", tmp_tag(D), D.done, M.context(D)
  local now, html_s, write_s = M.now, 0, 0
  for i = first, last do
    local t0 = now()
    local html = M.text_page(i, C)
    local t1 = now()
    M.write_atomic(dir .. M.text_file(i), html, tag)
    html_s, write_s = html_s + (t1 - t0), write_s + (now() - t1)
    done:add(1)
  end
  D.html_us:add(math.floor(html_s * 1e6))
  D.write_us:add(math.floor(write_s * 1e6))
  return last - first + 1
end

local function render_one(D, path, make)
  local t0 = M.now()
  local html = make()
  local t1 = M.now()
  M.write_atomic(D.out .. path, html, tmp_tag(D))
  D.html_us:add(math.floor((t1 - t0) * 1e6))
  D.write_us:add(math.floor((M.now() - t1) * 1e6))
  D.done:add(1)
  return 1
end

function M.render_source(s, D)
  local C = M.context(D)
  return render_one(D, "/s/" .. M.source_file(C.sources[s].slug), function() return M.source_page(s, C) end)
end

function M.render_index(D)
  return render_one(D, "/index.html", function() return M.index_page(M.context(D)) end)
end

return M
