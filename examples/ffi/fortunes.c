/* libweft from C on the shipped fortunes (examples/data/emb.npy, 2000 × 384): a context
 * (upload once), the similarity matrix, the nearest fortune, a diversity ordering, and
 * every ordering into a resumable cache — stopped part-way with the cancel token from the
 * progress callback, then resumed — read back and checked.
 *
 *   cargo build --release -p weft-ffi
 *   cc -O2 -Iinclude examples/ffi/fortunes.c -Ltarget/release -lweft \
 *      -Wl,-rpath,"$PWD/target/release" -o fortunes && ./fortunes examples/data/emb.npy
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weft.h"

/* Prints libweft's message for a failed call and exits. */
static void check(int rc, const char *what) {
  if (rc != WEFT_OK) {
    fprintf(stderr, "fortunes: %s failed (%d): %s\n", what, rc, weft_last_error());
    exit(1);
  }
}

/* A float32, C-order, 2-D .npy file (format 1.0 or 2.0). */
static float *load_npy(const char *path, size_t *n, size_t *d) {
  FILE *f = fopen(path, "rb");
  if (!f) { perror(path); exit(1); }
  unsigned char pre[12];
  if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
    fprintf(stderr, "%s: not a .npy file\n", path);
    exit(1);
  }
  size_t hlen = pre[8] | (size_t)pre[9] << 8;
  if (pre[6] >= 2) {
    if (fread(pre + 10, 1, 2, f) != 2) exit(1);
    hlen |= (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
  }
  char *h = calloc(hlen + 1, 1);
  if (fread(h, 1, hlen, f) != hlen || !strstr(h, "'<f4'") || !strstr(h, "False")) {
    fprintf(stderr, "%s: expected a float32 C-order array\n", path);
    exit(1);
  }
  const char *shape = strstr(h, "'shape': (");
  if (!shape || sscanf(shape, "'shape': (%zu, %zu)", n, d) != 2) {
    fprintf(stderr, "%s: expected a 2-D array\n", path);
    exit(1);
  }
  free(h);
  float *emb = malloc(*n * *d * sizeof *emb);
  if (fread(emb, sizeof *emb, *n * *d, f) != *n * *d) {
    fprintf(stderr, "%s: truncated\n", path);
    exit(1);
  }
  fclose(f);
  return emb;
}

struct progress {
  weft_cancel *cancel;
  size_t stop_at; /* 0: never */
};

static void on_progress(size_t done, size_t total, void *user) {
  struct progress *p = user;
  if (done % 256 == 0 || done == total) fprintf(stderr, "  %zu / %zu orderings\n", done, total);
  if (p->stop_at && done >= p->stop_at) weft_cancel_set(p->cancel);
}

int main(int argc, char **argv) {
  const char *emb_path = argc > 1 ? argv[1] : "examples/data/emb.npy";
  size_t n, d;
  float *emb = load_npy(emb_path, &n, &d);
  printf("libweft %s: %zu embeddings of %zu\n", weft_version(), n, d);

  weft_options opts = weft_options_default(); /* every core, half of RAM at most */
  weft_context *ctx;
  check(weft_context_new(emb, n, d, &opts, &ctx), "weft_context_new");

  float *s = malloc(n * n * sizeof *s);
  check(weft_context_similarity(ctx, s, n * n), "weft_context_similarity");
  size_t best = 1;
  for (size_t j = 2; j < n; j++)
    if (s[j] > s[best]) best = j;
  uint32_t *ids = malloc(n * sizeof *ids);
  float *scores = malloc(n * sizeof *scores);
  check(weft_context_topk(ctx, 1, ids, scores, n), "weft_context_topk");
  if (ids[0] != best || scores[0] != s[best]) {
    fprintf(stderr, "fortunes: top-1 of item 0 is not the maximum of its row of S\n");
    return 1;
  }
  printf("nearest to 0: %zu (%.3f)\n", best, s[best]);

  uint32_t *seq = malloc(n * sizeof *seq), start = 0;
  check(weft_context_diversity(ctx, &start, 1, 0, seq, n), "weft_context_diversity");
  printf("the five most different from 0: %u %u %u %u %u\n", seq[0], seq[1], seq[2], seq[3], seq[4]);

  /* every ordering into a cache: stopped after about a quarter, then resumed */
  char path[] = "/tmp/weft-fortunes-XXXXXX";
  close(mkstemp(path));
  unlink(path);
  struct progress p = {weft_cancel_new(), n / 4};
  weft_cache_options co = weft_cache_options_default();
  co.progress = on_progress;
  co.user = &p;
  co.cancel = p.cancel;
  weft_cache_state st;
  int rc = weft_diversity_cache(emb, n, d, path, &co, &st);
  if (rc != WEFT_ERR_CANCELLED || st.done == 0 || st.done >= n) {
    fprintf(stderr, "fortunes: expected a stopped run, got %d: %s\n", rc, weft_last_error());
    return 1;
  }
  printf("stopped: %s\n", weft_last_error());
  p.stop_at = 0;
  weft_cancel_reset(p.cancel); /* the token stays set until reset */
  co.resume = 1;
  check(weft_diversity_cache(emb, n, d, path, &co, &st), "weft_diversity_cache (resume)");

  weft_cache *cache;
  check(weft_cache_open(path, &cache), "weft_cache_open");
  check(weft_cache_info(cache, &st), "weft_cache_info");
  uint32_t *again = malloc(n * sizeof *again);
  check(weft_cache_get(cache, 0, again, n), "weft_cache_get");
  if (!st.complete || memcmp(again, seq, n * sizeof *seq) != 0) {
    fprintf(stderr, "fortunes: the cached ordering from 0 differs from the computed one\n");
    return 1;
  }
  printf("%s: %zu of %zu orderings, %zu-byte ids\n", path, st.done, st.n, st.id_width);
  weft_cache_close(cache);
  unlink(path);
  weft_cancel_free(p.cancel);
  weft_context_free(ctx);
  free(emb), free(s), free(ids), free(scores), free(seq), free(again);
  printf("ok\n");
  return 0;
}
