-- tests/site/check.lua: the checks of tests/site/check.sh, run with `weft run`.
--
--   check.lua subset CORPUS_DIR N OUT_DIR         N evenly spaced texts of a corpus, as a corpus
--   check.lua verify CORPUS_DIR SITE_DIR          every page, link, similar and different list
--   check.lua dom CORPUS_DIR INDEX_DOM TEXT_DOM I  Chromium's rendered DOM of the index and of
--                                                 text page I (1-based item number)
-- Each mode prints one "ok ..." line, or "FAIL: ..." lines and exits 1.
--
-- The expected lists are computed here, not read back from the build: weft.topk and
-- weft.diversity on the same embeddings, and for a sample of items an independent float64
-- computation in plain Lua (cosine top-k, and a step-by-step replay of each diversity
-- ordering against the definition in docs/design.md).
local weft = require "weft"

local failures = 0
local function fail(fmt, ...)
  failures = failures + 1
  if failures <= 30 then io.stderr:write("FAIL: ", string.format(fmt, ...), "\n") end
end
local function finish(what)
  if failures > 0 then
    io.stderr:write(string.format("FAIL: %s: %d problem(s)\n", what, failures))
    os.exit(1)
  end
  print("ok    " .. what)
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

-- the inverse of site_pages.escape (entities and Unicode Control Pictures)
local function unescape(s)
  s = s:gsub("\226\144([\128-\159])", function(c) return string.char(c:byte() - 128) end)
  s = s:gsub("\226\144\161", "\127")
  return (s:gsub("&(#?%w+);", { amp = "&", lt = "<", gt = ">", quot = '"', ["#39"] = "'" }))
end

-- dir/href as a normalised relative path; nil and a reason for a link that is not relative
local function resolve(dir, href)
  if href == "" then return nil, "empty href" end
  if href:find("^%a[%w+.-]*:") then return nil, "not a relative link (has a scheme)" end
  if href:sub(1, 1) == "/" then return nil, "absolute path" end
  if href:find("[#?]") then return nil, "has a fragment or query" end
  local parts = {}
  for seg in (dir .. "/" .. href):gmatch("[^/]+") do
    if seg == ".." then
      if #parts == 0 then return nil, "leaves the site" end
      parts[#parts] = nil
    elseif seg ~= "." then
      parts[#parts + 1] = seg
    end
  end
  return table.concat(parts, "/")
end

-- the <li> links of <ol class="CLASS"> ... </ol>: list of {href, label, rest}
local function list_items(html, class)
  local body = html:match('<ol class="' .. class .. '"[^>]*>(.-)</ol>')
  if not body then return nil end
  local items = {}
  for li in body:gmatch("<li>(.-)</li>") do
    local href, label, rest = li:match('^<a href="([^"]*)">(.-)</a>(.*)$')
    items[#items + 1] = { href = href, label = label, rest = rest }
  end
  return items
end

local function load_corpus(dir)
  local texts = weft.read_jsonl(dir .. "/texts.jsonl")
  local emb = weft.load_npy(dir .. "/emb.npy")
  assert(#texts == #emb, "corpus: texts and emb.npy rows differ")
  return texts, emb
end

-- the rows of emb, L2-normalised in float64 (plain Lua tables)
local function unit_rows(emb)
  local n, d = emb:shape()
  local rows = {}
  for i = 1, n do
    local r, s = {}, 0
    for j = 1, d do local v = emb:get(i, j); r[j] = v; s = s + v * v end
    s = math.sqrt(s)
    for j = 1, d do r[j] = r[j] / s end
    rows[i] = r
  end
  return rows, d
end

local function dot(a, b, d)
  local s = 0
  for j = 1, d do s = s + a[j] * b[j] end
  return s
end

local mode = arg[1]

if mode == "subset" then
  -- N evenly spaced texts (so every source of a sorted corpus appears), ids renumbered
  local src, n, out = arg[2], tonumber(arg[3]), arg[4]
  local emb = weft.load_npy(src .. "/emb.npy")
  local total, d = emb:shape()
  if n > total then n = total end
  local lines = {}
  for line in io.lines(src .. "/texts.jsonl") do lines[#lines + 1] = line end
  assert(#lines == total, src .. ": texts.jsonl and emb.npy differ in length")
  local sub = weft.array("f32", n, d)
  local f = assert(io.open(out .. "/texts.jsonl", "wb"))
  for r = 1, n do
    local i = math.floor((r - 1) * total / n) + 1
    for j = 1, d do sub:set(r, j, emb:get(i, j)) end
    local line, subs = lines[i]:gsub('^{"id": %d+,', '{"id": ' .. (r - 1) .. ',', 1)
    assert(subs == 1, src .. "/texts.jsonl line " .. i .. ': does not start with {"id": N,')
    f:write(line, "\n")
  end
  f:close()
  sub:save_npy(out .. "/emb.npy")
  local back = weft.load_npy(out .. "/emb.npy")
  if #back ~= n or back:get(n, d) ~= sub:get(n, d) then fail("%s/emb.npy: the saved subset reads back wrong", out) end
  finish(string.format("subset: %d evenly spaced texts of %s -> %s", n, src, out))

elseif mode == "verify" then
  local corpus, site = arg[2], arg[3]
  local texts, emb = load_corpus(corpus)
  local n = #texts
  local k, len = math.min(10, n - 1), math.min(20, n - 1)
  local function tfile(i) return "t/" .. (i - 1) .. ".html" end

  -- expected, computed here
  local ids, scores = weft.topk(emb, k)
  local starts = {}
  for i = 1, n do starts[i] = i end
  local div = weft.diversity(emb, starts, { length = len + 1 })

  -- every page present and complete
  local pages = {} -- relative path -> html
  local function page(rel)
    if pages[rel] == nil then
      local html = read(site .. "/" .. rel)
      if not html then
        fail("%s: missing", rel)
        html = false
      elseif not (html:find("^<!DOCTYPE html>\n") and html:find("</html>\n$")) then
        fail("%s: not a complete page", rel)
      end
      pages[rel] = html
    end
    return pages[rel] or nil
  end
  page("index.html")
  if not exists(site .. "/style.css") then fail("style.css: missing") end
  for i = 1, n do page(tfile(i)) end

  -- source pages, found through the index, named by their <h1>
  local by_source = {} -- source name -> list of items, from the corpus
  local nsources = 0
  for i = 1, n do
    local s = texts[i].source
    if s ~= nil then
      s = tostring(s)
      if not by_source[s] then by_source[s] = {}; nsources = nsources + 1 end
      table.insert(by_source[s], i)
    end
  end
  local index = page("index.html") or ""
  local source_page = {} -- source name -> relative path
  local listed = index:match('<ul class="sources">(.-)</ul>') or ""
  local nlisted = 0
  for href, name, count in listed:gmatch('<li><a href="([^"]*)">(.-)</a> <span class="count">(%d+)</span></li>') do
    nlisted = nlisted + 1
    name = unescape(name)
    local rel, why = resolve(".", href)
    if not rel then fail("index.html: source link %q: %s", href, why)
    elseif not by_source[name] then fail("index.html: lists source %q, not in the corpus", name)
    elseif source_page[name] then fail("index.html: lists source %q twice", name)
    else
      source_page[name] = rel
      if tonumber(count) ~= #by_source[name] then
        fail("index.html: source %q count %s, corpus has %d", name, count, #by_source[name])
      end
      local html = page(rel)
      if html then
        local h1 = html:match("<h1>(.-)</h1>")
        if not h1 or unescape(h1) ~= name then fail("%s: <h1> %q, expected %q", rel, tostring(h1), name) end
        local items = list_items(html, "texts") or {}
        if #items ~= #by_source[name] then
          fail("%s: %d texts listed, the corpus has %d from %q", rel, #items, #by_source[name], name)
        end
        for r, it in ipairs(items) do
          local want = by_source[name][r]
          if want and it.href ~= "../" .. tfile(want) then
            fail("%s: item %d links %q, expected %q", rel, r, tostring(it.href), "../" .. tfile(want))
          end
        end
      end
    end
  end
  if nlisted ~= nsources then fail("index.html: %d sources listed, the corpus has %d", nlisted, nsources) end

  -- the index lists every text once, in order, under its page's title
  local all = list_items(index, "texts") or {}
  if #all ~= n then fail("index.html: %d texts listed, expected %d", #all, n) end
  for i = 1, math.min(#all, n) do
    if all[i].href ~= tfile(i) then fail("index.html: text %d links %q, expected %q", i, tostring(all[i].href), tfile(i)) end
  end

  -- text pages
  local norm = function(s) return (s:gsub("\r\n?", "\n")) end
  for i = 1, n do
    local rel = tfile(i)
    local html = page(rel)
    if html then
      local text = html:match('<pre class="text">(.-)</pre>')
      if not text or unescape(text) ~= norm(texts[i].text) then fail("%s: the text differs from texts.jsonl line %d", rel, i) end
      -- title: a prefix of the first non-blank line (whitespace collapsed), the index's label
      local h1 = html:match("<h1>(.-)</h1>") or ""
      local title = unescape(h1):gsub("\226\128\166$", "")
      local first = (texts[i].text:match("[^\n]*%S[^\n]*") or "(empty)"):gsub("%s+", " "):gsub("^ ", "")
      if title == "" or first:sub(1, #title) ~= title then fail("%s: title %q is not a start of %q", rel, title, first) end
      if all[i] and all[i].label ~= h1 then fail("index.html: text %d labelled %q, its page says %q", i, all[i].label, h1) end
      -- similar: weft.topk's ids and scores, best first
      local sim = list_items(html, "similar")
      if not sim or #sim ~= k then
        fail("%s: %s similar links, expected %d", rel, sim and #sim or "no", k)
      else
        for r = 1, k do
          local want = "" .. (ids:get(i, r) - 1) .. ".html"
          local score = sim[r].rest:match('<span class="score">([%d.-]+)</span>')
          if sim[r].href ~= want then fail("%s: similar %d links %q, weft.topk says %q", rel, r, tostring(sim[r].href), want) end
          if score ~= string.format("%.3f", scores:get(i, r)) then
            fail("%s: similar %d score %s, weft.topk says %.3f", rel, r, tostring(score), scores:get(i, r))
          end
        end
      end
      -- different: the ordering from i, after i itself
      local dif = list_items(html, "different")
      if div:get(i, 1) ~= i then fail("weft.diversity: ordering %d starts with %d", i, div:get(i, 1)) end
      if not dif or #dif ~= len then
        fail("%s: %s different links, expected %d", rel, dif and #dif or "no", len)
      else
        for r = 1, len do
          local want = "" .. (div:get(i, r + 1) - 1) .. ".html"
          if dif[r].href ~= want then fail("%s: different %d links %q, the ordering says %q", rel, r, tostring(dif[r].href), want) end
        end
      end
      -- its source page, and the source page lists it
      local s = texts[i].source
      if s ~= nil then
        local want = source_page[tostring(s)]
        local href = html:match('<nav><a href="../index.html">All texts</a> \194\183 <a href="([^"]*)">')
        local relsrc = href and resolve("t", href)
        if not want or relsrc ~= want then
          fail("%s: links its source as %q, expected %q", rel, tostring(href), tostring(want and "../" .. want))
        end
      end
      local prev = html:match('<a rel="prev" href="([^"]*)">')
      local nxt = html:match('<a rel="next" href="([^"]*)">')
      if prev ~= (i > 1 and (i - 2) .. ".html" or nil) then fail("%s: previous links %q", rel, tostring(prev)) end
      if nxt ~= (i < n and i .. ".html" or nil) then fail("%s: next links %q", rel, tostring(nxt)) end
    end
  end

  -- every link of every page resolves to a file of the site
  local links, known = 0, {}
  for rel, html in pairs(pages) do
    if html then
      local dir = rel:match("^(.*)/[^/]*$") or "."
      for href in html:gmatch('href="([^"]*)"') do
        links = links + 1
        local target, why = resolve(dir, href)
        if not target then
          fail("%s: link %q: %s", rel, href, why)
        else
          if known[target] == nil then known[target] = exists(site .. "/" .. target) end
          if not known[target] then fail("%s: link %q: %s does not exist", rel, href, target) end
        end
      end
      if html:find("<script", 1, true) then fail("%s: has a script", rel) end
    end
  end

  -- nothing else in the site: no temporary files, no stray pages
  local p = io.popen("cd '" .. site:gsub("'", "'\\''") .. "' && find . -type f | sort")
  local nfiles = 0
  for line in p:lines() do
    local rel = line:gsub("^%./", "")
    nfiles = nfiles + 1
    if rel ~= "style.css" and pages[rel] == nil then fail("unexpected file %s", rel) end
  end
  p:close()
  if nfiles ~= n + nsources + 2 then fail("%d files, expected %d", nfiles, n + nsources + 2) end

  -- independent float64 checks on a sample: cosine top-k, and the orderings replayed
  local rows, d = unit_rows(emb)
  local sample = {}
  for i = 1, n, math.max(1, math.floor(n / 25)) do sample[#sample + 1] = i end
  for _, i in ipairs(sample) do
    local cos = {}
    for j = 1, n do cos[j] = (j == i) and -math.huge or dot(rows[i], rows[j], d) end
    local chosen = {}
    for r = 1, k do
      local j = ids:get(i, r)
      chosen[j] = true
      if math.abs(cos[j] - scores:get(i, r)) > 1e-5 then
        fail("topk %d rank %d: score %.7f, float64 cosine %.7f", i, r, scores:get(i, r), cos[j])
      end
      if r > 1 and cos[j] > cos[ids:get(i, r - 1)] + 1e-6 then fail("topk %d: ranks %d and %d out of order", i, r - 1, r) end
    end
    local last = cos[ids:get(i, k)]
    for j = 1, n do
      if not chosen[j] and cos[j] > last + 1e-6 then
        fail("topk %d: item %d (cosine %.7f) beats rank %d (%.7f)", i, j, cos[j], k, last)
      end
    end
    -- diversity replay (docs/design.md): each pick's mean similarity to the picked set is within
    -- 1e-7 of the float64 minimum over the candidates
    local sums, taken = {}, { [i] = true }
    for j = 1, n do sums[j] = dot(rows[i], rows[j], d) end
    for t = 1, len do
      local best = math.huge
      for j = 1, n do if not taken[j] and sums[j] / t < best then best = sums[j] / t end end
      local pick = div:get(i, t + 1)
      if taken[pick] then fail("ordering %d step %d: item %d picked twice", i, t, pick)
      elseif sums[pick] / t - best > 1e-7 then
        fail("ordering %d step %d: item %d has mean similarity %.9f, the minimum is %.9f", i, t, pick, sums[pick] / t, best)
      end
      taken[pick] = true
      local pr = rows[pick]
      for j = 1, n do sums[j] = sums[j] + dot(pr, rows[j], d) end
    end
    -- the one-start form of weft.diversity agrees with the list-of-starts form
    local full = weft.diversity(emb, i)
    for r = 1, len + 1 do
      if full[r] ~= div:get(i, r) then fail("weft.diversity(emb, %d)[%d] = %d, the list form says %d", i, r, full[r], div:get(i, r)) end
    end
  end

  finish(string.format("verify: %d text pages, %d source pages, index; %d links resolve; similar = weft.topk, "
    .. "different = weft.diversity; %d items checked against float64", n, nsources, links, #sample))

elseif mode == "dom" then
  local corpus, index_dom, text_dom, i = arg[2], arg[3], arg[4], tonumber(arg[5])
  local texts, emb = load_corpus(corpus)
  local n = #texts
  local k, len = math.min(10, n - 1), math.min(20, n - 1)
  local index = read(index_dom) or ""
  local page = read(text_dom) or ""
  if not index:find("</html>", 1, true) then fail("%s: no rendered document", index_dom) end
  if not page:find("</html>", 1, true) then fail("%s: no rendered document", text_dom) end

  -- the index: one link to each text page, in order
  local seen, count = {}, 0
  for id in index:gmatch('<a href="t/(%d+)%.html">') do
    count = count + 1
    id = tonumber(id)
    if id ~= count - 1 then fail("index DOM: text link %d goes to t/%d.html", count, id) end
    if seen[id] then fail("index DOM: t/%d.html linked twice", id) end
    seen[id] = true
  end
  if count ~= n then fail("index DOM: %d links to text pages, expected %d", count, n) end
  local nsrc = 0
  for _ in index:gmatch('<a href="s/[^"]+%.html">') do nsrc = nsrc + 1 end
  local sources = {}
  local ns = 0
  for j = 1, n do
    local s = texts[j].source
    if s ~= nil and not sources[s] then sources[s] = true; ns = ns + 1 end
  end
  if nsrc ~= ns then fail("index DOM: %d links to source pages, expected %d", nsrc, ns) end

  -- the text page: its similar and different links, as computed here
  local ids = weft.topk(emb, k)
  local div = weft.diversity(emb, { i }, { length = len + 1 })
  local sim = list_items(page, "similar") or {}
  local dif = list_items(page, "different") or {}
  if #sim ~= k then fail("text DOM: %d similar links, expected %d", #sim, k) end
  if #dif ~= len then fail("text DOM: %d different links, expected %d", #dif, len) end
  for r = 1, math.min(#sim, k) do
    local want = (ids:get(i, r) - 1) .. ".html"
    if sim[r].href ~= want then fail("text DOM: similar %d is %q, expected %q", r, tostring(sim[r].href), want) end
  end
  for r = 1, math.min(#dif, len) do
    local want = (div:get(1, r + 1) - 1) .. ".html"
    if dif[r].href ~= want then fail("text DOM: different %d is %q, expected %q", r, tostring(dif[r].href), want) end
  end
  if not page:find('<link rel="stylesheet" href="../style.css">', 1, true) then fail("text DOM: no stylesheet link") end
  if not page:find('<a href="../index.html">', 1, true) then fail("text DOM: no link to the index") end
  finish(string.format("dom: Chromium renders the index with %d text links and %d source links, "
    .. "text page %d with %d similar and %d different links", count, nsrc, i, #sim, #dif))

else
  io.stderr:write("usage: check.lua subset CORPUS N OUT | verify CORPUS SITE | dom CORPUS INDEX_DOM TEXT_DOM I\n")
  os.exit(2)
end
