#!/usr/bin/env bash
# Build examples/site for a small corpus and check the result: every page exists and is
# complete, every link resolves, the similar lists are weft.topk's, the "something
# different" lists are the diversity orderings (tests/site/check.lua computes both itself,
# and checks a sample against float64); the output is the same with 1 worker and with all
# of them; a build killed mid-render leaves only complete pages and the next build cleans
# up after it; bad input fails with one clear line; Chromium renders the index and a text
# page with the expected links.
#
#   tests/site/check.sh [N]     N texts of examples/data, evenly spaced (default 300)
#
# Needs target/release/weft (built if missing) and Debian's chromium (.ci/install-deps).
set -euo pipefail
cd "$(dirname "$0")/../.."

N=${1:-300}
weft=${WEFT:-target/release/weft}
if [ ! -x "$weft" ]; then
  echo "building $weft ..."
  cargo build --release -q -p weft-cli
fi
command -v chromium >/dev/null || { echo "FAIL: chromium is not installed (run .ci/install-deps)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
t_all=$(date +%s.%N)
check() { "$weft" run tests/site/check.lua "$@"; }
die() { echo "FAIL: $*" >&2; exit 1; }

# 1. a corpus of N texts of examples/data, evenly spaced (every source appears)
mkdir -p "$tmp/corpus"
check subset examples/data "$N" "$tmp/corpus"

# 2. build it; the summary names every phase
WEFT_SITE_PROGRESS=0 "$weft" run examples/site/build.lua "$tmp/corpus" "$tmp/site" >"$tmp/build.log" 2>&1 \
  || { cat "$tmp/build.log" >&2; die "the build failed"; }
for word in "$N texts" load top-k orderings render total "pages/s"; do
  grep -q -- "$word" "$tmp/build.log" || { cat "$tmp/build.log" >&2; die "the build's summary lacks \"$word\""; }
done
echo "ok    build: $(grep -m1 'render' "$tmp/build.log" | tr -s ' ')"

# 3. pages, links, similar and different lists
check verify "$tmp/corpus" "$tmp/site"

# 4. one worker writes the same bytes; a rebuild over the old output too
WEFT_SITE_PROGRESS=0 WEFT_SITE_WORKERS=1 "$weft" run examples/site/build.lua "$tmp/corpus" "$tmp/site1" >/dev/null
diff -r "$tmp/site" "$tmp/site1" >/dev/null || die "1 worker and all workers wrote different sites"
WEFT_SITE_PROGRESS=0 "$weft" run examples/site/build.lua "$tmp/corpus" "$tmp/site1" >/dev/null
diff -r "$tmp/site" "$tmp/site1" >/dev/null || die "a rebuild over an existing site changed it"
echo "ok    same output with 1 worker, with $(nproc) workers and when rebuilt in place"

# 5. a tiny corpus: fewer than 10 similar and 20 different texts exist
mkdir -p "$tmp/tiny"
check subset examples/data 5 "$tmp/tiny" >/dev/null
WEFT_SITE_PROGRESS=0 "$weft" run examples/site/build.lua "$tmp/tiny" "$tmp/tiny-site" >/dev/null
check verify "$tmp/tiny" "$tmp/tiny-site" | sed 's/^ok    verify/ok    tiny corpus (5 texts) verify/'

# 6. killed mid-render (all 2,000 texts of examples/data, 1 worker for a longer window):
#    every page on disk is complete; the next build removes the temporary files and verifies
WEFT_SITE_PROGRESS=0 WEFT_SITE_WORKERS=1 "$weft" run examples/site/build.lua examples/data "$tmp/killed" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 500); do
  [ "$(find "$tmp/killed/t" -name '*.html' 2>/dev/null | head -n 200 | wc -l)" -ge 200 ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.01
done
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
pages=$(find "$tmp/killed" -name '*.html' | wc -l)
for f in $(find "$tmp/killed" -name '*.html'); do
  [ "$(tail -c 8 "$f")" = "</html>" ] || die "killed build: $f is not a complete page"
done
# plant a leftover temporary file, as a kill between write and rename would leave
printf '<!DOCTYPE html>\n<p>half' >"$tmp/killed/t/3.html.tmp-999999-1"
WEFT_SITE_PROGRESS=0 "$weft" run examples/site/build.lua examples/data "$tmp/killed" >/dev/null
check verify examples/data "$tmp/killed" >/dev/null || die "the build after a killed one does not verify"
echo "ok    killed with $pages complete pages on disk (no partial page); the next build cleaned up and verifies"

# 7. bad input: one clear line, non-zero exit
mkdir -p "$tmp/bad" "$tmp/bad10"
check subset examples/data 9 "$tmp/bad" >/dev/null
check subset examples/data 10 "$tmp/bad10" >/dev/null
cp "$tmp/bad10/texts.jsonl" "$tmp/bad/texts.jsonl"
if err=$("$weft" run examples/site/build.lua "$tmp/bad" "$tmp/bad-site" 2>&1); then
  die "a corpus with 10 texts and 9 embeddings built"
fi
echo "$err" | grep -q "10 texts but emb.npy has 9 rows" || die "unclear error for mismatched input: $err"
[ ! -e "$tmp/bad-site/index.html" ] || die "a failed build wrote an index"
echo "ok    mismatched input refused: $err"

# 8. Chromium: the rendered DOM of the index and of one text page has the expected links
item=$(( N > 42 ? 43 : N ))
chrome() {
  chromium --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir="$tmp/chromium" \
    --dump-dom "file://$(realpath "$1")" 2>"$tmp/chromium.log"
}
chrome "$tmp/site/index.html" >"$tmp/index.dom" || { tail "$tmp/chromium.log" >&2; die "chromium failed on the index"; }
chrome "$tmp/site/t/$((item - 1)).html" >"$tmp/text.dom" || { tail "$tmp/chromium.log" >&2; die "chromium failed on a text page"; }
check dom "$tmp/corpus" "$tmp/index.dom" "$tmp/text.dom" "$item"

printf 'ok    tests/site: all checks passed in %.1f s\n' "$(echo "$(date +%s.%N) - $t_all" | bc)"
