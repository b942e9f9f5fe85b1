#define _POSIX_C_SOURCE 200809L /* mkstemp */
/* The C ABI from C: compiled with cc against include/weft.h and linked to libweft.so
 * (crates/weft-ffi/tests/run.sh). Results are checked against naive implementations in
 * double precision on small random data; errors by their codes and weft_last_error(). */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weft.h"

static int failures = 0;

#define CHECK(cond, ...)                                                                   \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                      \
      fprintf(stderr, __VA_ARGS__);                                                        \
      fprintf(stderr, "\n");                                                               \
      failures++;                                                                          \
    }                                                                                      \
  } while (0)

/* A call that must succeed; reports weft_last_error() otherwise. */
#define OK(call)                                                                           \
  do {                                                                                     \
    int rc_ = (call);                                                                      \
    CHECK(rc_ == WEFT_OK, "%s returned %d: %s", #call, rc_, weft_last_error());            \
  } while (0)

/* A call that must fail with `code` and a last error containing `text`. */
#define FAILS(call, code, text)                                                            \
  do {                                                                                     \
    int rc_ = (call);                                                                      \
    const char *e_ = weft_last_error();                                                    \
    CHECK(rc_ == (code), "%s returned %d, expected %d (%s)", #call, rc_, (int)(code), e_); \
    CHECK(strstr(e_, (text)) != NULL, "%s: message '%s' lacks '%s'", #call, e_, (text));   \
  } while (0)

/* Deterministic pseudo-random floats in [-1, 1). */
static uint64_t seed = 12345;
static float rnd(void) {
  seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
  return (float)((double)(seed >> 11) / (double)(1ULL << 53) * 2.0 - 1.0);
}

/* Rows normalised as weft does: the norm in double, each value divided in double. */
static float *normalised(const float *e, size_t n, size_t d) {
  float *u = malloc(n * d * sizeof *u);
  for (size_t i = 0; i < n; i++) {
    double s = 0;
    for (size_t k = 0; k < d; k++) s += (double)e[i * d + k] * e[i * d + k];
    double norm = sqrt(s);
    for (size_t k = 0; k < d; k++) u[i * d + k] = (float)(e[i * d + k] / norm);
  }
  return u;
}

/* The diversity ordering by its definition (docs/design.md), O(N²·d): the unchosen item with
 * the lowest dot product with the running sum of the chosen rows, ties to the lowest id. */
static void naive_ordering(const float *u, size_t n, size_t d, size_t start, uint32_t *seq) {
  double *c = calloc(d, sizeof *c);
  char *taken = calloc(n, 1);
  size_t pick = start;
  for (size_t t = 0; t < n; t++) {
    seq[t] = (uint32_t)pick;
    taken[pick] = 1;
    for (size_t k = 0; k < d; k++) c[k] += u[pick * d + k];
    double best = INFINITY;
    for (size_t j = 0; j < n; j++) {
      if (taken[j]) continue;
      double s = 0;
      for (size_t k = 0; k < d; k++) s += c[k] * u[j * d + k];
      if (s < best) best = s, pick = j;
    }
  }
  free(c);
  free(taken);
}

static size_t progress_calls = 0, last_done = 0, cancel_after = 0;
static weft_cancel *token = NULL;

/* Counts calls, checks done grows, and sets the cancel token when told to. */
static void on_progress(size_t done, size_t total, void *user) {
  CHECK(user == (void *)&progress_calls, "user pointer passed through");
  CHECK(done > last_done && done <= total, "done %zu after %zu of %zu", done, last_done, total);
  last_done = done;
  progress_calls++;
  if (cancel_after && progress_calls == cancel_after) weft_cancel_set(token);
}

/* Cancelling from another thread: the callback hands over to a host thread that sets the
 * token, and waits until it has, so the run must stop after exactly that batch. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int stage = 0; /* 1: a batch is done, 2: the other thread has cancelled */

static void *canceller(void *arg) {
  pthread_mutex_lock(&mu);
  while (stage < 1) pthread_cond_wait(&cv, &mu);
  weft_cancel_set((const weft_cancel *)arg);
  stage = 2;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
  return NULL;
}

static void wait_for_canceller(size_t done, size_t total, void *user) {
  (void)done, (void)total, (void)user;
  pthread_mutex_lock(&mu);
  if (stage == 0) stage = 1;
  pthread_cond_broadcast(&cv);
  while (stage < 2) pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
}

/* A second writer of the path, started from inside the first one's progress callback (so
 * while it holds the write lock), is refused. */
static const float *busy_emb;
static size_t busy_n, busy_d;
static const char *busy_path;
static int busy_rc = -1;
static char busy_msg[512];

static void start_second_writer(size_t done, size_t total, void *user) {
  (void)done, (void)total, (void)user;
  if (busy_rc != -1) return;
  weft_cache_options o = weft_cache_options_default();
  o.resume = 1;
  busy_rc = weft_diversity_cache(busy_emb, busy_n, busy_d, busy_path, &o, NULL);
  snprintf(busy_msg, sizeof busy_msg, "%s", weft_last_error());
}

int main(void) {
  const size_t n = 100, d = 12, k = 5;
  float *emb = malloc(n * d * sizeof *emb);
  for (size_t i = 0; i < n * d; i++) emb[i] = rnd();
  float *u = normalised(emb, n, d);
  weft_options opts = weft_options_default();
  CHECK(opts.threads == 0 && opts.budget == 0, "defaults: every core, default budget");
  opts.threads = 2;
  CHECK(strlen(weft_version()) > 0, "version");

  /* similarity vs a naive double computation */
  float *s = malloc(n * n * sizeof *s);
  OK(weft_similarity(emb, n, d, &opts, s, n * n));
  CHECK(strcmp(weft_last_error(), "") == 0, "no error after success");
  double worst = 0;
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++) {
      double ref = 0;
      for (size_t q = 0; q < d; q++) ref += (double)u[i * d + q] * u[j * d + q];
      double err = fabs(ref - s[i * n + j]);
      if (err > worst) worst = err;
      CHECK(s[i * n + j] == s[j * n + i], "S symmetric at %zu,%zu", i, j);
    }
  CHECK(worst < 1e-5, "similarity within 1e-5 of double (worst %g)", worst);

  /* top-k: the k largest of each row of S (not the item itself), ties to the lower id */
  uint32_t *ids = malloc(n * k * sizeof *ids);
  float *scores = malloc(n * k * sizeof *scores);
  OK(weft_topk(emb, n, d, k, NULL, ids, scores, n * k));
  for (size_t i = 0; i < n; i++) {
    char *used = calloc(n, 1);
    used[i] = 1;
    for (size_t j = 0; j < k; j++) {
      size_t best = n;
      for (size_t c = 0; c < n; c++)
        if (!used[c] && (best == n || s[i * n + c] > s[i * n + best])) best = c;
      used[best] = 1;
      CHECK(ids[i * k + j] == best, "topk row %zu #%zu: %u, naive %zu", i, j, ids[i * k + j], best);
      CHECK(scores[i * k + j] == s[i * n + best], "topk score row %zu #%zu", i, j);
    }
    free(used);
  }

  /* diversity: several starts, full and prefix, against the naive ordering */
  uint32_t starts[3] = {0, 17, 99};
  uint32_t *seqs = malloc(3 * n * sizeof *seqs);
  uint32_t *ref = malloc(n * sizeof *ref);
  OK(weft_diversity(emb, n, d, starts, 3, 0, &opts, seqs, 3 * n));
  for (size_t r = 0; r < 3; r++) {
    naive_ordering(u, n, d, starts[r], ref);
    CHECK(memcmp(ref, seqs + r * n, n * sizeof *ref) == 0, "ordering from %u matches naive", starts[r]);
  }
  uint32_t prefix[3 * 10];
  OK(weft_diversity(emb, n, d, starts, 3, 10, NULL, prefix, 30));
  for (size_t r = 0; r < 3; r++)
    CHECK(memcmp(prefix + r * 10, seqs + r * n, 10 * sizeof *prefix) == 0, "prefix %zu", r);

  /* the context: the same answers, S held */
  weft_context *ctx = NULL;
  OK(weft_context_new(emb, n, d, &opts, &ctx));
  size_t cn = 0, cd = 0;
  int held = -1;
  OK(weft_context_info(ctx, &cn, &cd, &held));
  CHECK(cn == n && cd == d && held == 1, "context info %zu %zu %d", cn, cd, held);
  float *s2 = malloc(n * n * sizeof *s2);
  OK(weft_context_similarity(ctx, s2, n * n));
  CHECK(memcmp(s, s2, n * n * sizeof *s) == 0, "context similarity = weft_similarity");
  uint32_t *ids2 = malloc(n * k * sizeof *ids2);
  OK(weft_context_topk(ctx, k, ids2, NULL, n * k));
  CHECK(memcmp(ids, ids2, n * k * sizeof *ids) == 0, "context topk = weft_topk");
  uint32_t *seqs2 = malloc(3 * n * sizeof *seqs2);
  OK(weft_context_diversity(ctx, starts, 3, 0, seqs2, 3 * n));
  CHECK(memcmp(seqs, seqs2, 3 * n * sizeof *seqs) == 0, "context diversity = weft_diversity");
  weft_context_free(ctx);

  /* a context whose budget is too small for S: computed per call, same orderings */
  weft_options small = opts;
  small.budget = 1000; /* below n²·4 = 40000 bytes */
  OK(weft_context_new(emb, n, d, &small, &ctx));
  OK(weft_context_info(ctx, NULL, NULL, &held));
  CHECK(held == 0, "no S under a small budget");
  FAILS(weft_context_similarity(ctx, s2, n * n), WEFT_ERR_BUDGET, "memory budget");
  OK(weft_context_diversity(ctx, starts, 3, 0, seqs2, 3 * n));
  CHECK(memcmp(seqs, seqs2, 3 * n * sizeof *seqs) == 0, "same orderings without S");
  weft_context_free(ctx);
  weft_context_free(NULL);

  /* errors: NULLs, small buffers, bad rows, ranges; each with its one-line message */
  FAILS(weft_similarity(NULL, n, d, NULL, s, n * n), WEFT_ERR_NULL, "weft_similarity: emb is NULL");
  FAILS(weft_similarity(emb, n, d, NULL, NULL, n * n), WEFT_ERR_NULL, "out is NULL");
  FAILS(weft_similarity(emb, n, d, NULL, s, n * n - 1), WEFT_ERR_BUFFER,
        "out holds 9999 elements, the n×n similarity matrix needs 10000");
  FAILS(weft_topk(emb, n, d, k, NULL, ids, scores, n * k - 1), WEFT_ERR_BUFFER, "ids holds 499");
  FAILS(weft_topk(emb, n, d, n, NULL, ids, scores, n * k), WEFT_ERR_RANGE,
        "k must be in 1..N-1 (N = 100), got 100");
  FAILS(weft_topk(emb, n, d, 0, NULL, ids, scores, n * k), WEFT_ERR_RANGE, "got 0");
  uint32_t bad_start = 100;
  FAILS(weft_diversity(emb, n, d, &bad_start, 1, 0, NULL, seqs, n), WEFT_ERR_RANGE,
        "start 100 is out of range 0..100");
  FAILS(weft_diversity(emb, n, d, NULL, 1, 0, NULL, seqs, n), WEFT_ERR_NULL, "starts is NULL");
  FAILS(weft_diversity(emb, n, d, starts, 3, 0, NULL, seqs, 3 * n - 1), WEFT_ERR_BUFFER, "out holds");
  FAILS(weft_similarity(emb, n, 0, NULL, s, n * n), WEFT_ERR_INPUT, "d must be ≥ 1");
  FAILS(weft_context_new(emb, n, d, NULL, NULL), WEFT_ERR_NULL, "weft_context_new: out is NULL");
  FAILS(weft_context_topk(NULL, k, ids, NULL, n * k), WEFT_ERR_NULL, "ctx is NULL");
  opts.threads = 5000;
  FAILS(weft_topk(emb, n, d, k, &opts, ids, NULL, n * k), WEFT_ERR_ARGUMENT,
        "threads = 5000 is more than the limit of 1024");
  opts.threads = 2;
  float row7[12];
  memcpy(row7, emb + 7 * d, sizeof row7);
  for (size_t q = 0; q < d; q++) emb[7 * d + q] = 0;
  FAILS(weft_topk(emb, n, d, k, NULL, ids, scores, n * k), WEFT_ERR_INPUT,
        "weft_topk: embeddings: row 7 is all zeros");
  emb[7 * d + 3] = NAN;
  FAILS(weft_diversity(emb, n, d, starts, 1, 0, NULL, seqs, n), WEFT_ERR_INPUT, "row 7 contains NaN");
  ctx = (weft_context *)&ctx; /* must be reset to NULL on error */
  FAILS(weft_context_new(emb, n, d, NULL, &ctx), WEFT_ERR_INPUT, "row 7 contains NaN");
  CHECK(ctx == NULL, "no context on error");
  memcpy(emb + 7 * d, row7, sizeof row7);
  /* a misaligned buffer is refused, not read */
  FAILS(weft_similarity((const float *)((const char *)emb + 1), n, d, NULL, s, n * n),
        WEFT_ERR_ARGUMENT, "emb is not aligned to 4 bytes");

  /* the cache: cancelled from the progress callback after the first batch, refused
   * without resume, resumed to completion, read back */
  char path[] = "/tmp/weft-ffi-test-XXXXXX";
  int fd = mkstemp(path);
  close(fd);
  unlink(path);
  token = weft_cancel_new();
  weft_cache_options co = weft_cache_options_default();
  CHECK(co.resume == 0 && co.force == 0 && co.progress == NULL && co.cancel == NULL, "cache defaults");
  co.threads = 2;
  co.progress = on_progress;
  co.user = &progress_calls;
  co.cancel = token;
  cancel_after = 1;
  weft_cache_state info;
  memset(&info, 0xff, sizeof info);
  FAILS(weft_diversity_cache(emb, n, d, path, &co, &info), WEFT_ERR_CANCELLED,
        "cancelled: 32 of 100 orderings are saved in");
  CHECK(info.done == 32 && info.complete == 0 && info.n == n, "cancelled after one batch: %zu", info.done);
  CHECK(progress_calls == 1, "one progress call before the cancel");
  FAILS(weft_diversity_cache(emb, n, d, path, NULL, NULL), WEFT_ERR_CACHE,
        "is an unfinished cache (32 of 100 orderings); resume it or force to replace");
  co.resume = 1;
  co.force = 1;
  FAILS(weft_diversity_cache(emb, n, d, path, &co, NULL), WEFT_ERR_ARGUMENT,
        "resume and force cannot be used together");
  co.force = 0;
  /* still set: a resumed run stops at once */
  FAILS(weft_diversity_cache(emb, n, d, path, &co, &info), WEFT_ERR_CANCELLED, "32 of 100");
  weft_cancel_reset(token);
  cancel_after = 0;
  OK(weft_diversity_cache(emb, n, d, path, &co, &info));
  CHECK(info.done == n && info.complete == 1 && info.id_width == 2, "complete: %zu", info.done);
  CHECK(last_done == n && progress_calls == 4, "progress reached n in 4 batches (%zu calls)", progress_calls);
  /* cancelled from another thread while running */
  char path2[] = "/tmp/weft-ffi-test-XXXXXX";
  fd = mkstemp(path2);
  close(fd);
  unlink(path2);
  weft_cancel *other = weft_cancel_new();
  weft_cache_options c2 = weft_cache_options_default();
  c2.progress = wait_for_canceller;
  c2.cancel = other;
  pthread_t th;
  CHECK(pthread_create(&th, NULL, canceller, other) == 0, "thread");
  FAILS(weft_diversity_cache(emb, n, d, path2, &c2, &info), WEFT_ERR_CANCELLED, "32 of 100");
  pthread_join(th, NULL);
  CHECK(info.done == 32, "stopped by the other thread after one batch: %zu", info.done);
  /* the same path written twice at once: the second is refused, the first completes */
  busy_emb = emb, busy_n = n, busy_d = d, busy_path = path2;
  c2 = weft_cache_options_default();
  c2.resume = 1;
  c2.progress = start_second_writer;
  OK(weft_diversity_cache(emb, n, d, path2, &c2, &info));
  CHECK(busy_rc == WEFT_ERR_BUSY, "second writer: %d (%s)", busy_rc, busy_msg);
  CHECK(strstr(busy_msg, "is writing this cache") != NULL, "busy message: %s", busy_msg);
  CHECK(info.complete == 1, "the first writer completed");
  unlink(path2);
  weft_cancel_free(other);

  /* a different set of embeddings cannot resume it */
  emb[0] += 0.5f;
  FAILS(weft_diversity_cache(emb, n, d, path, &co, NULL), WEFT_ERR_CACHE, "hash differs");
  emb[0] -= 0.5f;

  weft_cache *cache = NULL;
  OK(weft_cache_open(path, &cache));
  weft_cache_state ci;
  OK(weft_cache_info(cache, &ci));
  CHECK(ci.n == n && ci.d == d && ci.done == n && ci.complete == 1, "cache info");
  CHECK(memcmp(ci.hash, info.hash, 32) == 0, "same hash");
  for (size_t r = 0; r < 3; r++) {
    OK(weft_cache_get(cache, starts[r], ref, n));
    CHECK(memcmp(ref, seqs + r * n, n * sizeof *ref) == 0, "cached ordering from %u", starts[r]);
  }
  FAILS(weft_cache_get(cache, n, ref, n), WEFT_ERR_RANGE, "start 100 is out of range 0..100");
  FAILS(weft_cache_get(cache, 0, ref, n - 1), WEFT_ERR_BUFFER, "out holds 99 elements");
  weft_cache_close(cache);
  FAILS(weft_cache_open("/nonexistent/weft.cache", &cache), WEFT_ERR_IO,
        "weft_cache_open: /nonexistent/weft.cache: No such file or directory");
  CHECK(cache == NULL, "no handle on error");
  FAILS(weft_cache_open(NULL, &cache), WEFT_ERR_NULL, "path is NULL");
  unlink(path);
  weft_cancel_free(token);

  free(emb), free(u), free(s), free(s2), free(ids), free(ids2), free(scores), free(seqs),
      free(seqs2), free(ref);
  if (failures) {
    fprintf(stderr, "weft_test: %d failures\n", failures);
    return 1;
  }
  printf("weft_test: all checks passed\n");
  return 0;
}
