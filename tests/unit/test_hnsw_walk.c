/* SPDX-License-Identifier: MIT */
/*
 * test_hnsw_walk.c - unit tests for ragd's own walk of FAISS's HNSW graph
 * (src/store_hnsw_walk.cpp): it must return exactly what FAISS's IndexHNSW::search returns
 * (same labels, bit-identical distances) over many queries, both metrics, efSearch from the
 * index and per search (parameters), k below and above ef, with and without an id selector,
 * through the id map and on the sub-index, on empty and tiny indexes, with duplicate vectors
 * (ties) and after more vectors are added; it leaves to FAISS what it does not cover (flat
 * index, FAISS's own storage, the walk turned off); and store_index searches use it.
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

#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/MetaIndexes_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>
#include <faiss/c_api/index_factory_c.h>

#include "ragd/ragd.h"
#include "ragd/simd.h"
#include "ragd/store.h"

#include "test_support.h"

#include "../../src/store_faiss_int.h"
#include "../../src/store_hnsw_walk_int.h"
#include "../../src/store_simd_int.h"

enum { DIMS = 24, KMAX = 80 };

static uint64_t rng_state;

static float rnd(void)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((rng_state >> 40) & 0xFFFFFF) / (float)0x1000000 - 0.5f;
}

/* Fills n vectors around a few centres; every 7th vector repeats the one before it (ties).
 * Returns: a malloc'd array of n * DIMS floats (caller frees). */
static float *make_vectors(size_t n, uint64_t seed)
{
    rng_state = seed;
    float centres[4][DIMS];
    for (int c = 0; c < 4; c++)
        for (int j = 0; j < DIMS; j++) centres[c][j] = rnd() * 4.0f;
    float *v = malloc(n * DIMS * sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && i % 7 == 0) {
            memcpy(v + i * DIMS, v + (i - 1) * DIMS, DIMS * sizeof *v);
            continue;
        }
        for (int j = 0; j < DIMS; j++) v[i * DIMS + j] = centres[i % 4][j] + rnd();
    }
    return v;
}

/* Returns: a new "IDMap2,HNSW8" index of metric with n vectors (ids 1000 + 3i) and ragd's flat
 * storage installed (caller frees). */
static FaissIndex *make_index(int metric, const float *vecs, size_t n)
{
    FaissIndex *index = NULL;
    assert_int_equal(faiss_index_factory(&index, DIMS, "IDMap2,HNSW8", (FaissMetricType)metric),
                     0);
    assert_int_equal(store_simd_install(index), 1);
    if (n > 0) {
        idx_t *ids = malloc(n * sizeof *ids);
        assert_non_null(ids);
        for (size_t i = 0; i < n; i++) ids[i] = 1000 + 3 * (idx_t)i;
        assert_int_equal(faiss_Index_add_with_ids(index, (idx_t)n, vecs, ids), 0);
        free(ids);
    }
    return index;
}

static void set_ef(FaissIndex *index, int ef)
{
    FaissParameterSpace *ps = NULL;
    assert_int_equal(faiss_ParameterSpace_new(&ps), 0);
    assert_int_equal(faiss_ParameterSpace_set_index_parameter(ps, index, "efSearch", ef), 0);
    faiss_ParameterSpace_free(ps);
}

/* The walk and FAISS's own search of index (params NULL or per-search) agree exactly on query q
 * for k results; poisons the outputs first so that an unwritten slot shows. */
static void check_same(const FaissIndex *index, const float *q, idx_t k,
                       const FaissSearchParameters *params)
{
    float d_faiss[KMAX], d_walk[KMAX];
    idx_t l_faiss[KMAX], l_walk[KMAX];
    for (int i = 0; i < KMAX; i++) {
        d_faiss[i] = d_walk[i] = 12345.0f;
        l_faiss[i] = l_walk[i] = -7;
    }
    if (params)
        assert_int_equal(faiss_Index_search_with_params(index, 1, q, k, params, d_faiss, l_faiss),
                         0);
    else
        assert_int_equal(faiss_Index_search(index, 1, q, k, d_faiss, l_faiss), 0);
    assert_int_equal(store_hnsw_walk_search(index, q, k, params, d_walk, l_walk), 1);
    for (idx_t i = 0; i < k; i++) {
        assert_int_equal(l_walk[i], l_faiss[i]);
        /* Bit-identical, not merely close. */
        assert_memory_equal(&d_walk[i], &d_faiss[i], sizeof(float));
    }
    assert_int_equal(l_walk[k], -7);
}

/* Many queries (stored vectors and fresh points) at several efSearch and k, on the map and on
 * the sub-index with per-search parameters, with and without a selector. */
static void check_many(FaissIndex *index, const float *vecs, size_t n, uint64_t seed)
{
    static const int efs[] = {1, 4, 16, 40};
    static const idx_t ks[] = {1, 5, 10, 30, 70};
    FaissIndex *sub = faiss_IndexIDMap2_sub_index(index);
    /* Positions n/4 .. 3n/4 (the sub-index's labels), as ragd's live-position selector is. */
    idx_t *keep = malloc(n * sizeof *keep);
    assert_non_null(keep);
    size_t nkeep = 0;
    for (size_t i = n / 4; i < 3 * n / 4; i++) keep[nkeep++] = (idx_t)i;
    FaissIDSelectorBatch *range = NULL;
    assert_int_equal(faiss_IDSelectorBatch_new(&range, nkeep, keep), 0);
    free(keep);
    rng_state = seed;
    for (size_t e = 0; e < sizeof efs / sizeof efs[0]; e++) {
        set_ef(index, efs[e]);
        for (int t = 0; t < 12; t++) {
            float q[DIMS];
            if (t % 2 == 0 && n > 0)
                memcpy(q, vecs + (size_t)(t * 37 % (int)n) * DIMS, sizeof q);
            else
                for (int j = 0; j < DIMS; j++) q[j] = rnd() * 3.0f;
            for (size_t kk = 0; kk < sizeof ks / sizeof ks[0]; kk++) {
                check_same(index, q, ks[kk], NULL);
                check_same(sub, q, ks[kk], NULL);
                for (int with_sel = 0; with_sel < 2; with_sel++) {
                    FaissSearchParametersHNSW *p = NULL;
                    assert_int_equal(faiss_SearchParametersHNSW_new_with(
                                             &p, with_sel ? (FaissIDSelector *)range : NULL,
                                             efs[(e + 1 + (size_t)t) % 4]),
                                     0);
                    check_same(sub, q, ks[kk], (const FaissSearchParameters *)p);
                    faiss_SearchParameters_free((FaissSearchParameters *)p);
                }
            }
        }
    }
    faiss_IDSelector_free((FaissIDSelector *)range);
}

static void test_walk_matches_faiss(void **state)
{
    (void)state;
    static const int metrics[] = {METRIC_INNER_PRODUCT, METRIC_L2};
    enum { N = 1500 };
    for (int m = 0; m < 2; m++) {
        float *vecs = make_vectors(2 * N, 11 + (uint64_t)m);
        FaissIndex *index = make_index(metrics[m], vecs, N);
        check_many(index, vecs, N, 99);
        /* After more vectors are added (the graph and the storage grow). */
        idx_t ids[N];
        for (int i = 0; i < N; i++) ids[i] = 900000 + i;
        assert_int_equal(faiss_Index_add_with_ids(index, N, vecs + (size_t)N * DIMS, ids), 0);
        check_many(index, vecs, 2 * N, 7);
        faiss_Index_free(index);
        free(vecs);
    }
}

/* Empty and tiny indexes: FAISS's padding (label -1) and the few results there are. */
static void test_walk_tiny_and_empty(void **state)
{
    (void)state;
    float *vecs = make_vectors(3, 5);
    for (size_t n = 0; n <= 3; n++) {
        FaissIndex *index = make_index(METRIC_L2, vecs, n);
        float q[DIMS];
        for (int j = 0; j < DIMS; j++) q[j] = 0.1f * (float)j;
        for (idx_t k = 1; k <= 6; k++) {
            check_same(index, q, k, NULL);
            check_same(faiss_IndexIDMap2_sub_index(index), q, k, NULL);
        }
        float d[KMAX];
        idx_t l[KMAX];
        assert_int_equal(store_hnsw_walk_search(index, q, 5, NULL, d, l), 1);
        for (idx_t i = 0; i < 5; i++) assert_true(i < (idx_t)n ? l[i] >= 1000 : l[i] == -1);
        faiss_Index_free(index);
    }
    free(vecs);
}

/* What the walk does not cover is left to FAISS (0, nothing written). */
static void test_walk_not_covered(void **state)
{
    (void)state;
    float *vecs = make_vectors(50, 3);
    float q[DIMS] = {0};
    float d[4] = {7, 7, 7, 7};
    idx_t l[4] = {-7, -7, -7, -7};
    idx_t ids[50];
    for (int i = 0; i < 50; i++) ids[i] = i;

    FaissIndex *flat = NULL;
    assert_int_equal(faiss_index_factory(&flat, DIMS, "IDMap2,Flat", METRIC_L2), 0);
    assert_int_equal(store_simd_install(flat), 1);
    assert_int_equal(faiss_Index_add_with_ids(flat, 50, vecs, ids), 0);
    assert_int_equal(store_hnsw_walk_search(flat, q, 4, NULL, d, l), 0);
    faiss_Index_free(flat);

    /* FAISS's own storage (not installed): its scalar distances are not ragd's. */
    FaissIndex *own = NULL;
    assert_int_equal(faiss_index_factory(&own, DIMS, "IDMap2,HNSW8", METRIC_L2), 0);
    assert_int_equal(faiss_Index_add_with_ids(own, 50, vecs, ids), 0);
    assert_int_equal(store_hnsw_walk_search(own, q, 4, NULL, d, l), 0);
    faiss_Index_free(own);

    /* Parameters through the id map (FAISS refuses them there), and the walk turned off. */
    FaissIndex *index = make_index(METRIC_L2, vecs, 50);
    FaissSearchParametersHNSW *p = NULL;
    assert_int_equal(faiss_SearchParametersHNSW_new_with(&p, NULL, 16), 0);
    assert_int_equal(store_hnsw_walk_search(index, q, 4, (const FaissSearchParameters *)p, d, l),
                     0);
    faiss_SearchParameters_free((FaissSearchParameters *)p);
    int before = store_hnsw_walk_enable(0);
    assert_int_equal(before, 1);
    assert_int_equal(store_hnsw_walk_search(index, q, 4, NULL, d, l), 0);
    assert_int_equal(store_hnsw_walk_enable(1), 0);
    assert_int_equal(store_hnsw_walk_search(index, q, 4, NULL, d, l), 1);
    faiss_Index_free(index);
    for (int i = 0; i < 4; i++) assert_true(l[i] >= 0);
    free(vecs);
}

/* store_index searches (with tombstones and a per-search efSearch) give the same results with
 * the walk on and off. */
static void test_store_index_same_on_off(void **state)
{
    (void)state;
    enum { N = 800 };
    float *vecs = make_vectors(N, 21);
    store_index_opts opts = {0};
    opts.factory = "HNSW8";
    opts.ef_search = 12;
    store_index *idx = NULL;
    ragd_err err = {0};
    assert_int_equal(store_index_new_with(DIMS, &opts, &idx, &err), RAGD_OK);
    int64_t ids[N];
    for (int i = 0; i < N; i++) ids[i] = 5 + i;
    assert_int_equal(store_index_add(idx, N, ids, vecs, &err), RAGD_OK);
    int64_t dead[3] = {5, 6, 9};
    assert_int_equal(store_index_remove(idx, 3, dead, NULL, &err), RAGD_OK);
    for (int t = 0; t < 20; t++) {
        const float *q = vecs + (size_t)(t * 29 % N) * DIMS;
        int64_t a_ids[40], b_ids[40];
        float a_sc[40], b_sc[40];
        size_t a_n = 0, b_n = 0;
        int ef = t % 2 ? 0 : 30;
        store_hnsw_walk_enable(0);
        assert_int_equal(store_index_search_ef(idx, q, 10 + (size_t)t, ef, a_ids, a_sc, &a_n,
                                               &err),
                         RAGD_OK);
        store_hnsw_walk_enable(1);
        assert_int_equal(store_index_search_ef(idx, q, 10 + (size_t)t, ef, b_ids, b_sc, &b_n,
                                               &err),
                         RAGD_OK);
        assert_int_equal(a_n, b_n);
        assert_memory_equal(a_ids, b_ids, a_n * sizeof *a_ids);
        assert_memory_equal(a_sc, b_sc, a_n * sizeof *a_sc);
        for (size_t i = 0; i < b_n; i++) assert_true(b_ids[i] != 5 && b_ids[i] != 6 && b_ids[i] != 9);
    }
    store_index_free(idx);
    free(vecs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_walk_matches_faiss),
        cmocka_unit_test(test_walk_tiny_and_empty),
        cmocka_unit_test(test_walk_not_covered),
        cmocka_unit_test(test_store_index_same_on_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
