/* SPDX-License-Identifier: MIT */
/*
 * test_simd.c - unit tests for the SIMD distance kernels (src/simd_dist.c) and ragd's FAISS
 * storage classes that use them (src/store_faiss_simd.cpp): every level the CPU has against a
 * double-precision reference at awkward dimensions; forcing a level (the portable fallback, or
 * one above the CPU's, which is lowered); exact and HNSW indexes built with ragd's classes
 * against the same indexes built with FAISS's own (RAGD_SIMD off): same top-k for Flat (ties
 * aside), the same recall for HNSW; tombstones (the id selector) honoured; the files they write
 * read back by either, byte-identical to FAISS's own; concurrent exact searches that share one
 * pass over the vectors get exactly what each would get alone (their own k, selector, ties).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/MetaIndexes_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <pthread.h>
#include <sched.h>

#include "ragd/ragd.h"
#include "ragd/simd.h"
#include "ragd/store.h"
#include "ragd/util.h"

#include "test_support.h"

#include "../../src/store_faiss_int.h"
#include "../../src/store_simd_int.h"

static int restore_level(void **state)
{
    (void)state;
    simd_level_set(simd_level_best());
    return 0;
}

/* Every level up to the CPU's best, at dimensions that exercise each tail path, against a
 * double-precision sum; the _many forms agree with the single ones, and the _batch forms
 * (several queries in one pass) give each query exactly the _many values. */
static void test_kernels_match_reference(void **state)
{
    (void)state;
    static const int dims_list[] = {1, 3, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 384,
                                    1023, 1024, 1536};
    enum { ROWS = 5 };
    simd_level best = simd_level_best();
    for (int lv = RAGD_SIMD_SCALAR; lv <= (int)best; lv++) {
        assert_int_equal(simd_level_set((simd_level)lv), lv);
        for (size_t t = 0; t < sizeof dims_list / sizeof dims_list[0]; t++) {
            int d = dims_list[t];
            /* One extra float per row: a kernel reading past d would use it. */
            float *q = malloc(sizeof(float) * (size_t)d);
            float *base = malloc(sizeof(float) * (size_t)(d * ROWS + 1));
            float out_ip[ROWS], out_l2[ROWS];
            assert_non_null(q);
            assert_non_null(base);
            test_vectors_make(q, 1, d, (uint32_t)d, 0);
            test_vectors_make(base, ROWS, d, (uint32_t)d + 99, 0);
            base[d * ROWS] = 1e30f;
            simd_dist_ip_many(q, base, ROWS, (size_t)d, out_ip);
            simd_dist_l2sq_many(q, base, ROWS, (size_t)d, out_l2);
            /* Three queries in one batch: q, the third row, q again. */
            const float *qs[3] = {q, base + 2 * (size_t)d, q};
            float batch_ip[3 * ROWS], batch_l2[3 * ROWS], other[ROWS];
            simd_dist_ip_batch(qs, 3, base, ROWS, (size_t)d, batch_ip);
            simd_dist_l2sq_batch(qs, 3, base, ROWS, (size_t)d, batch_l2);
            assert_memory_equal(batch_ip, out_ip, sizeof out_ip);
            assert_memory_equal(batch_ip + 2 * ROWS, out_ip, sizeof out_ip);
            assert_memory_equal(batch_l2, out_l2, sizeof out_l2);
            assert_memory_equal(batch_l2 + 2 * ROWS, out_l2, sizeof out_l2);
            simd_dist_ip_many(qs[1], base, ROWS, (size_t)d, other);
            assert_memory_equal(batch_ip + ROWS, other, sizeof other);
            simd_dist_l2sq_many(qs[1], base, ROWS, (size_t)d, other);
            assert_memory_equal(batch_l2 + ROWS, other, sizeof other);
            for (int r = 0; r < ROWS; r++) {
                const float *y = base + (size_t)r * (size_t)d;
                double ip = 0, l2 = 0, mag = 0;
                for (int j = 0; j < d; j++) {
                    ip += (double)q[j] * y[j];
                    l2 += ((double)q[j] - y[j]) * ((double)q[j] - y[j]);
                    mag += fabs((double)q[j] * y[j]);
                }
                double tol = 1e-5 * (mag + 1.0);
                assert_true(fabs(simd_dist_ip(q, y, (size_t)d) - ip) <= tol);
                assert_true(fabs(simd_dist_l2sq(q, y, (size_t)d) - l2) <= 1e-5 * (l2 + 1.0));
                assert_true(out_ip[r] == simd_dist_ip(q, y, (size_t)d));
                assert_true(out_l2[r] == simd_dist_l2sq(q, y, (size_t)d));
            }
            free(q);
            free(base);
        }
    }
}

/* The fallback can be forced; a level above the CPU's is lowered to the best it has; off is
 * reported as off. */
static void test_level_forcing(void **state)
{
    (void)state;
    simd_level best = simd_level_best();
    assert_true(best >= RAGD_SIMD_SCALAR && best <= RAGD_SIMD_AVX512);
    assert_int_equal(simd_level_set(RAGD_SIMD_SCALAR), RAGD_SIMD_SCALAR);
    assert_int_equal(simd_level_get(), RAGD_SIMD_SCALAR);
    assert_int_equal(simd_level_set(RAGD_SIMD_AVX512), best);
    assert_int_equal(simd_level_set(RAGD_SIMD_OFF), RAGD_SIMD_OFF);
    assert_string_equal(simd_level_name(RAGD_SIMD_OFF), "off");
    assert_string_equal(simd_level_name(RAGD_SIMD_SCALAR), "scalar");
    /* Direct kernel calls still work with the index classes off. */
    float a[3] = {1, 2, 3}, b[3] = {4, 5, 6};
    assert_true(simd_dist_ip(a, b, 3) == 32.0f);
    assert_true(simd_dist_l2sq(a, b, 3) == 27.0f);
}

/* Returns: a new index of factory over n vectors, built at level. */
static store_index *index_build(simd_level level, int dims, const char *factory, int ef,
                                size_t n, const int64_t *ids, const float *vecs)
{
    simd_level_set(level);
    store_index_opts o = {.factory = factory, .ef_search = ef};
    store_index *idx = NULL;
    assert_int_equal(store_index_new_with(dims, &o, &idx, NULL), RAGD_OK);
    /* Below the bulk size: single-threaded adds, so the build is deterministic. */
    for (size_t i = 0; i < n; i += 256) {
        size_t m = n - i < 256 ? n - i : 256;
        assert_int_equal(store_index_add(idx, m, ids + i, vecs + i * (size_t)dims, NULL), RAGD_OK);
    }
    assert_int_equal(store_index_simd(idx), level != RAGD_SIMD_OFF);
    return idx;
}

/* Flat: ragd's classes at every level return FAISS's own top-k, in order, with the same scores
 * up to rounding (random floats: exact ties do not occur). */
static void test_flat_same_topk(void **state)
{
    (void)state;
    enum { N = 3000, NQ = 40, K = 10, D = 100 };
    float *vecs = malloc(sizeof(float) * N * D), *queries = malloc(sizeof(float) * NQ * D);
    int64_t *ids = malloc(sizeof(int64_t) * N);
    assert_non_null(vecs);
    assert_non_null(queries);
    assert_non_null(ids);
    test_vectors_make(vecs, N, D, 3, 1);
    test_vectors_make(queries, NQ, D, 4, 1);
    for (int i = 0; i < N; i++) ids[i] = 10 + 3 * i;
    store_index *ref = index_build(RAGD_SIMD_OFF, D, "Flat", 0, N, ids, vecs);
    for (int lv = RAGD_SIMD_SCALAR; lv <= (int)simd_level_best(); lv++) {
        store_index *fast = index_build((simd_level)lv, D, "Flat", 0, N, ids, vecs);
        for (int q = 0; q < NQ; q++) {
            int64_t a[K], b[K];
            float sa[K], sb[K];
            size_t na = 0, nb = 0;
            assert_int_equal(store_index_search(ref, queries + q * D, K, a, sa, &na, NULL),
                             RAGD_OK);
            assert_int_equal(store_index_search(fast, queries + q * D, K, b, sb, &nb, NULL),
                             RAGD_OK);
            assert_int_equal(na, K);
            assert_int_equal(nb, K);
            for (int i = 0; i < K; i++) {
                assert_true(fabsf(sa[i] - sb[i]) < 1e-5f);
                /* Neighbours closer than rounding may swap; anything else must match. */
                if (a[i] != b[i])
                    assert_true((i + 1 < K && fabsf(sa[i] - sa[i + 1]) < 1e-5f) ||
                                (i > 0 && fabsf(sa[i] - sa[i - 1]) < 1e-5f));
            }
        }
        store_index_free(fast);
    }
    store_index_free(ref);
    free(vecs);
    free(queries);
    free(ids);
}

/* Returns: recall@10 of idx against the exact index over the queries. */
static double recall10(store_index *idx, store_index *exact, const float *queries, int nq, int d)
{
    size_t hits = 0;
    for (int q = 0; q < nq; q++) {
        int64_t got[10], want[10];
        float s[10];
        size_t n1 = 0, n2 = 0;
        assert_int_equal(store_index_search(idx, queries + q * d, 10, got, s, &n1, NULL),
                         RAGD_OK);
        assert_int_equal(store_index_search(exact, queries + q * d, 10, want, s, &n2, NULL),
                         RAGD_OK);
        for (size_t i = 0; i < n1; i++)
            for (size_t j = 0; j < n2; j++) hits += got[i] == want[j];
    }
    return (double)hits / (10.0 * nq);
}

/* HNSW built and searched with ragd's kernels finds what FAISS's own does: the graph is built
 * from the same distances (up to rounding), so the recall against the exact top-10 is the same
 * within a small margin, and high. Tombstones (searches through the id selector) are honoured. */
static void test_hnsw_same_recall(void **state)
{
    (void)state;
    enum { N = 4000, NQ = 60, D = 48 };
    float *vecs = malloc(sizeof(float) * N * D), *queries = malloc(sizeof(float) * NQ * D);
    int64_t *ids = malloc(sizeof(int64_t) * N);
    assert_non_null(vecs);
    assert_non_null(queries);
    assert_non_null(ids);
    test_vectors_make(vecs, N, D, 5, 1);
    test_vectors_make(queries, NQ, D, 6, 1);
    for (int i = 0; i < N; i++) ids[i] = i + 1;
    store_index *exact = index_build(RAGD_SIMD_OFF, D, "Flat", 0, N, ids, vecs);
    store_index *ref = index_build(RAGD_SIMD_OFF, D, "HNSW16", 64, N, ids, vecs);
    store_index *fast = index_build(simd_level_best(), D, "HNSW16", 64, N, ids, vecs);
    double r_ref = recall10(ref, exact, queries, NQ, D);
    double r_fast = recall10(fast, exact, queries, NQ, D);
    assert_true(r_ref >= 0.8);
    assert_true(fabs(r_fast - r_ref) <= 0.03);
    /* Remove every other id: no removed id comes back, recall stays. */
    int64_t gone[N / 2];
    for (int i = 0; i < N / 2; i++) gone[i] = ids[2 * i];
    assert_int_equal(store_index_remove(fast, N / 2, gone, NULL, NULL), RAGD_OK);
    assert_int_equal(store_index_remove(exact, N / 2, gone, NULL, NULL), RAGD_OK);
    for (int q = 0; q < NQ; q++) {
        int64_t got[10];
        float s[10];
        size_t n = 0;
        assert_int_equal(store_index_search(fast, queries + q * D, 10, got, s, &n, NULL),
                         RAGD_OK);
        assert_int_equal(n, 10);
        for (size_t i = 0; i < n; i++) assert_int_equal(got[i] % 2, 0); /* ids 2, 4, ... live */
    }
    assert_true(recall10(fast, exact, queries, NQ, D) >= 0.8);
    store_index_free(exact);
    store_index_free(ref);
    store_index_free(fast);
    free(vecs);
    free(queries);
    free(ids);
}

/* Reads a whole file. Returns: new buffer (free()), *len. */
static char *slurp(const char *path, size_t *len)
{
    char *text = NULL;
    assert_int_equal(util_file_read(path, 1 << 26, &text, len, NULL), RAGD_OK);
    return text;
}

/* The files ragd's classes write are FAISS's format byte for byte (same bytes as FAISS's own
 * classes write for the same vectors), and either side loads the other's: after a load the
 * SIMD classes are installed again (or not, with RAGD_SIMD off) and answer the same. */
static void test_files_interchangeable(void **state)
{
    (void)state;
    enum { N = 500, D = 40 };
    static const char *const factories[] = {"Flat", "HNSW8"};
    float *vecs = malloc(sizeof(float) * N * D);
    int64_t *ids = malloc(sizeof(int64_t) * N);
    assert_non_null(vecs);
    assert_non_null(ids);
    test_vectors_make(vecs, N, D, 8, 1);
    for (int i = 0; i < N; i++) ids[i] = 5 * i + 1;
    char dir[256], pa[300], pb[300];
    assert_int_equal(test_tmpdir_make(dir, sizeof dir, "simd"), 0);
    snprintf(pa, sizeof pa, "%s/a.faiss", dir);
    snprintf(pb, sizeof pb, "%s/b.faiss", dir);
    for (size_t f = 0; f < 2; f++) {
        store_index *plain = index_build(RAGD_SIMD_OFF, D, factories[f], 32, N, ids, vecs);
        store_index *fast = index_build(simd_level_best(), D, factories[f], 32, N, ids, vecs);
        assert_int_equal(store_index_save(plain, pa, 3, NULL), RAGD_OK);
        assert_int_equal(store_index_save(fast, pb, 3, NULL), RAGD_OK);
        size_t la = 0, lb = 0;
        char *ba = slurp(pa, &la), *bb = slurp(pb, &lb);
        assert_int_equal(la, lb);
        if (f == 0) assert_memory_equal(ba, bb, la); /* HNSW levels are random per build */
        free(ba);
        free(bb);
        store_index_opts o = {.factory = factories[f], .ef_search = 32};
        for (int side = 0; side < 2; side++) {
            simd_level_set(side ? simd_level_best() : RAGD_SIMD_OFF);
            store_index *back = NULL;
            uint64_t gen = 0;
            assert_int_equal(store_index_load_with(side ? pa : pb, D, &o, &back, &gen, NULL),
                             RAGD_OK);
            assert_int_equal(gen, 3);
            assert_int_equal(store_index_simd(back), side);
            assert_int_equal(store_index_count(back), N);
            /* A stored vector finds itself first. */
            int64_t got[3];
            float s[3];
            size_t n = 0;
            assert_int_equal(store_index_search(back, vecs + 77 * D, 3, got, s, &n, NULL),
                             RAGD_OK);
            assert_int_equal(got[0], ids[77]);
            assert_true(fabsf(s[0] - 1.0f) < 1e-4f);
            store_index_free(back);
        }
        store_index_free(plain);
        store_index_free(fast);
    }
    test_tree_remove(dir);
    free(vecs);
    free(ids);
}

/* efConstruction reaches an HNSW index (inside the id map or bare), not a flat one. */
static void test_hnsw_ef_construction_set(void **state)
{
    (void)state;
    FaissIndex *hnsw = NULL, *flat = NULL;
    assert_int_equal(faiss_index_factory(&hnsw, 8, "IDMap2,HNSW8", METRIC_INNER_PRODUCT), 0);
    assert_int_equal(faiss_index_factory(&flat, 8, "IDMap2,Flat", METRIC_INNER_PRODUCT), 0);
    assert_int_equal(store_simd_hnsw_ef_construction(hnsw, 100), 1);
    assert_int_equal(store_simd_hnsw_ef_construction(hnsw, 0), 0);
    assert_int_equal(store_simd_hnsw_ef_construction(flat, 100), 0);
    faiss_Index_free(hnsw);
    faiss_Index_free(flat);
}


/* Shared passes: one exact index (IDMap2,Flat with ragd's class), queries with their own k and
 * selector, and the exact answers each gets when searching alone. */
enum { SH_N = 3000, SH_D = 200, SH_NQ = 48, SH_KMAX = 40, SH_SELS = 3 };

typedef struct shared_case {
    FaissIndex *sub;                  /* the flat storage under the id map (borrowed) */
    const float *queries;             /* SH_NQ x SH_D */
    FaissSearchParameters *params[SH_SELS]; /* [0] none; [1], [2] selectors */
    int64_t ref_ids[SH_NQ][SH_KMAX];
    float ref_scores[SH_NQ][SH_KMAX];
} shared_case;

/* Returns: query q's k (1..SH_KMAX, varied; its selector is params[q % SH_SELS]). */
static int shared_k(int q)
{
    return 1 + (q * 7) % SH_KMAX;
}

/* Searches query q of c into ids/scores. Returns: 0 on success. */
static int shared_search(const shared_case *c, int q, int64_t *ids, float *scores)
{
    return faiss_Index_search_with_params(c->sub, 1, c->queries + (size_t)q * SH_D, shared_k(q),
                                          c->params[q % SH_SELS], scores, ids);
}

/* Returns: 1 when query q's answer is bit for bit the lone search's. */
static int shared_same(const shared_case *c, int q, const int64_t *ids, const float *scores)
{
    int k = shared_k(q);
    return memcmp(ids, c->ref_ids[q], sizeof *ids * (size_t)k) == 0 &&
           memcmp(scores, c->ref_scores[q], sizeof *scores * (size_t)k) == 0;
}

typedef struct shared_worker {
    const shared_case *c;
    int first, count, stride; /* queries first, first + stride, ... (count searches) */
    int failed;               /* searches that failed or answered differently */
} shared_worker;

static void *shared_worker_run(void *arg)
{
    shared_worker *w = arg;
    for (int i = 0; i < w->count; i++) {
        int q = (w->first + i * w->stride) % SH_NQ;
        int64_t ids[SH_KMAX];
        float scores[SH_KMAX];
        if (shared_search(w->c, q, ids, scores) != 0 || !shared_same(w->c, q, ids, scores))
            w->failed++;
    }
    return NULL;
}

/* Runs n workers at once; returns: the failures summed. */
static int shared_workers(shared_worker *w, int n)
{
    pthread_t th[16];
    for (int i = 0; i < n; i++)
        assert_int_equal(pthread_create(&th[i], NULL, shared_worker_run, &w[i]), 0);
    int failed = 0;
    for (int i = 0; i < n; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        failed += w[i].failed;
    }
    return failed;
}

/* Concurrent exact searches that share passes answer exactly as alone, for both metrics:
 * (1) a batch of known size (12 searches queued while no pass may start, then released: one
 * pass serves all 12, each with its own k 1..40 and one of three selectors, and every answer is
 * bit-identical to its lone search, ties included: a fifth of the rows are copies of others);
 * (2) 8 threads x 150 searches of mixed queries with one pass at a time and batches of up to 4,
 * so passes of every size from 1 to 4 run while searches come and go: the same answers, and the
 * pass counters account for every search exactly once. */
static void test_flat_shared_passes(void **state)
{
    (void)state;
    simd_level_set(simd_level_best());
    float *vecs = malloc(sizeof(float) * SH_N * SH_D);
    float *queries = malloc(sizeof(float) * SH_NQ * SH_D);
    int64_t *ids = malloc(sizeof(int64_t) * SH_N), *pick1 = malloc(sizeof(int64_t) * SH_N);
    int64_t *pick2 = malloc(sizeof(int64_t) * SH_N);
    shared_case *c = calloc(1, sizeof *c);
    assert_non_null(vecs);
    assert_non_null(queries);
    assert_non_null(ids);
    assert_non_null(pick1);
    assert_non_null(pick2);
    assert_non_null(c);
    test_vectors_make(vecs, SH_N, SH_D, 11, 1);
    /* Exact ties: rows 2400.. repeat rows 0.., so the tie order of the heap is exercised. */
    memcpy(vecs + (size_t)2400 * SH_D, vecs, sizeof(float) * 600 * SH_D);
    test_vectors_make(queries, SH_NQ, SH_D, 12, 1);
    /* Query 3 (no selector, k 22) is row 5: it finds rows 5 and 2405 first, a tie. */
    memcpy(queries + 3 * SH_D, vecs + (size_t)5 * SH_D, sizeof(float) * SH_D);
    for (int i = 0; i < SH_N; i++) ids[i] = 1000 + i;
    size_t n1 = 0, n2 = 0;
    for (int i = 0; i < SH_N; i++) {
        if (i % 3 == 0) pick1[n1++] = i;                  /* positions in the flat storage */
        if (i >= 1000 && i < 2800) pick2[n2++] = i;
    }
    for (int metric = METRIC_INNER_PRODUCT; metric <= METRIC_L2; metric++) {
        FaissIndex *index = NULL;
        FaissIDSelectorBatch *sel1 = NULL, *sel2 = NULL;
        assert_int_equal(
                faiss_index_factory(&index, SH_D, "IDMap2,Flat", (FaissMetricType)metric), 0);
        assert_int_equal(faiss_Index_add_with_ids(index, SH_N, vecs, ids), 0);
        assert_int_equal(store_simd_install(index), 1);
        assert_int_equal(faiss_IDSelectorBatch_new(&sel1, n1, pick1), 0);
        assert_int_equal(faiss_IDSelectorBatch_new(&sel2, n2, pick2), 0);
        c->sub = faiss_IndexIDMap2_sub_index(faiss_IndexIDMap2_cast(index));
        c->queries = queries;
        c->params[0] = NULL;
        assert_int_equal(faiss_SearchParametersHNSW_new_with(&c->params[1],
                                                             (FaissIDSelector *)sel1, 16),
                         0);
        assert_int_equal(faiss_SearchParametersHNSW_new_with(&c->params[2],
                                                             (FaissIDSelector *)sel2, 16),
                         0);
        /* The lone answers, one search at a time. */
        for (int q = 0; q < SH_NQ; q++)
            assert_int_equal(shared_search(c, q, c->ref_ids[q], c->ref_scores[q]), 0);
        assert_true(c->ref_ids[3][0] == 5 || c->ref_ids[3][0] == 2405);
        assert_int_equal(c->ref_ids[3][1], c->ref_ids[3][0] == 5 ? 2405 : 5);
        for (int q = 1; q < SH_NQ; q += 3) assert_int_equal(c->ref_ids[q][0] % 3, 0); /* sel1 */
        store_simd_flat_stat st0, st;
        assert_int_equal(store_simd_flat_stats(index, &st0), 1);
        assert_int_equal(st0.passes, SH_NQ); /* alone: a pass each */
        assert_int_equal(st0.max_batch, 1);

        /* (1) One batch of 12. */
        store_simd_flat_limits(2, 64);
        assert_int_equal(store_simd_flat_hold(index, 1), 1);
        shared_worker w[12];
        for (int i = 0; i < 12; i++)
            w[i] = (shared_worker){.c = c, .first = 3 * i + metric, .count = 1, .stride = 1};
        pthread_t th[12];
        for (int i = 0; i < 12; i++)
            assert_int_equal(pthread_create(&th[i], NULL, shared_worker_run, &w[i]), 0);
        for (int tries = 0; tries < 600000; tries++) { /* poll: all 12 queued (10 min at most) */
            assert_int_equal(store_simd_flat_stats(index, &st), 1);
            if (st.pending == 12) break;
            usleep(1000);
        }
        assert_int_equal(st.pending, 12);
        assert_int_equal(store_simd_flat_hold(index, 0), 1);
        int failed = 0;
        for (int i = 0; i < 12; i++) {
            assert_int_equal(pthread_join(th[i], NULL), 0);
            failed += w[i].failed;
        }
        assert_int_equal(failed, 0);
        assert_int_equal(store_simd_flat_stats(index, &st), 1);
        assert_int_equal(st.passes, st0.passes + 1);
        assert_int_equal(st.queries, st0.queries + 12);
        assert_int_equal(st.max_batch, 12);
        assert_int_equal(st.pending, 0);

        /* (2) Searches coming and going, one pass at a time, batches up to 4. */
        store_simd_flat_limits(1, 4);
        store_simd_flat_stat st1 = st;
        shared_worker many[8];
        for (int i = 0; i < 8; i++)
            many[i] = (shared_worker){.c = c, .first = i * 5, .count = 150, .stride = 7 + 2 * i};
        assert_int_equal(shared_workers(many, 8), 0);
        assert_int_equal(store_simd_flat_stats(index, &st), 1);
        assert_int_equal(st.queries, st1.queries + 8 * 150);
        assert_true((st.passes - st1.passes) * 4 >= 8 * 150); /* no pass served more than 4 */
        assert_int_equal(st.pending, 0);

        /* Sharing turned off while searches are queued: they are still served. */
        assert_int_equal(store_simd_flat_hold(index, 1), 1);
        for (int i = 0; i < 3; i++)
            w[i] = (shared_worker){.c = c, .first = 5 * i, .count = 1, .stride = 1};
        for (int i = 0; i < 3; i++)
            assert_int_equal(pthread_create(&th[i], NULL, shared_worker_run, &w[i]), 0);
        for (int tries = 0; tries < 600000; tries++) {
            assert_int_equal(store_simd_flat_stats(index, &st), 1);
            if (st.pending == 3) break;
            usleep(1000);
        }
        assert_int_equal(st.pending, 3);
        store_simd_flat_limits(0, 16);
        assert_int_equal(store_simd_flat_hold(index, 0), 1);
        failed = 0;
        for (int i = 0; i < 3; i++) {
            assert_int_equal(pthread_join(th[i], NULL), 0);
            failed += w[i].failed;
        }
        assert_int_equal(failed, 0);

        /* Sharing off (RAGD_FLAT_PASSES=0): the same answers. */
        store_simd_flat_limits(0, 16);
        for (int i = 0; i < 4; i++)
            many[i] = (shared_worker){.c = c, .first = i, .count = 40, .stride = 5};
        assert_int_equal(shared_workers(many, 4), 0);
        store_simd_flat_limits(2, 16);

        faiss_SearchParameters_free(c->params[1]);
        faiss_SearchParameters_free(c->params[2]);
        faiss_IDSelector_free((FaissIDSelector *)sel1);
        faiss_IDSelector_free((FaissIDSelector *)sel2);
        faiss_Index_free(index);
    }
    free(c);
    free(vecs);
    free(queries);
    free(ids);
    free(pick1);
    free(pick2);
}

/* The shared passes' defaults, resolved on first use (this test runs first: the later ones set
 * their own limits): as many passes as the CPUs this process may run on, batches of 16;
 * RAGD_FLAT_PASSES, when the environment sets it, wins. */
static void test_flat_passes_default(void **state)
{
    (void)state;
    cpu_set_t set;
    assert_int_equal(sched_getaffinity(0, sizeof set, &set), 0);
    assert_int_equal(util_cpus_usable(), CPU_COUNT(&set));
    int passes = -1, batch = -1;
    store_simd_flat_limits_get(&passes, &batch);
    const char *env = getenv("RAGD_FLAT_PASSES");
    if (env == NULL || env[0] == '\0') assert_int_equal(passes, CPU_COUNT(&set));
    else assert_int_equal(passes, atoi(env));
    if (getenv("RAGD_FLAT_BATCH") == NULL) assert_int_equal(batch, 16);
}

#define T(fn) cmocka_unit_test_teardown(fn, restore_level)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_flat_passes_default),
        T(test_kernels_match_reference), T(test_level_forcing), T(test_flat_same_topk),
        T(test_hnsw_same_recall),        T(test_files_interchangeable),
        T(test_hnsw_ef_construction_set), T(test_flat_shared_passes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
