/* SPDX-License-Identifier: MIT */
/*
 * test_simd.c - unit tests for the SIMD distance kernels (src/simd_dist.c) and ragd's FAISS
 * storage classes that use them (src/store_faiss_simd.cpp): every level the CPU has against a
 * double-precision reference at awkward dimensions; forcing a level (the portable fallback, or
 * one above the CPU's, which is lowered); exact and HNSW indexes built with ragd's classes
 * against the same indexes built with FAISS's own (RAGD_SIMD off): same top-k for Flat (ties
 * aside), the same recall for HNSW; tombstones (the id selector) honoured; the files they write
 * read back by either, byte-identical to FAISS's own.
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
#include <faiss/c_api/index_factory_c.h>

#include "ragd/ragd.h"
#include "ragd/simd.h"
#include "ragd/store.h"
#include "ragd/util.h"

#include "test_support.h"

#include "../../src/store_simd_int.h"

/* Fills out with n deterministic pseudo-random vectors, normalised when unit is set. */
static void vectors_make(float *out, size_t n, int dims, uint32_t seed, int unit)
{
    uint32_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        double norm = 0;
        for (int j = 0; j < dims; j++) {
            s = s * 1664525u + 1013904223u;
            float v = (float)((double)(s >> 8) / (double)(1u << 24) - 0.5);
            out[i * (size_t)dims + (size_t)j] = v;
            norm += (double)v * v;
        }
        norm = sqrt(norm);
        if (unit)
            for (int j = 0; j < dims; j++) out[i * (size_t)dims + (size_t)j] /= (float)norm;
    }
}

static int restore_level(void **state)
{
    (void)state;
    simd_level_set(simd_level_best());
    return 0;
}

/* Every level up to the CPU's best, at dimensions that exercise each tail path, against a
 * double-precision sum; the _many forms agree with the single ones. */
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
            vectors_make(q, 1, d, (uint32_t)d, 0);
            vectors_make(base, ROWS, d, (uint32_t)d + 99, 0);
            base[d * ROWS] = 1e30f;
            simd_dist_ip_many(q, base, ROWS, (size_t)d, out_ip);
            simd_dist_l2sq_many(q, base, ROWS, (size_t)d, out_l2);
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
    vectors_make(vecs, N, D, 3, 1);
    vectors_make(queries, NQ, D, 4, 1);
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
    vectors_make(vecs, N, D, 5, 1);
    vectors_make(queries, NQ, D, 6, 1);
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
    vectors_make(vecs, N, D, 8, 1);
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

#define T(fn) cmocka_unit_test_teardown(fn, restore_level)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_kernels_match_reference), T(test_level_forcing), T(test_flat_same_topk),
        T(test_hnsw_same_recall),        T(test_files_interchangeable),
        T(test_hnsw_ef_construction_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
