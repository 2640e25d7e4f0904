/* SPDX-License-Identifier: MIT */
/*
 * bench_walk.c - in-process A/B of an HNSW search: FAISS's own IndexHNSW::search (over ragd's
 * SIMD storage) against ragd's walk of the same graph (src/store_hnsw_walk.cpp), alternating
 * query by query on one thread, several rounds; checks that both return the same labels and
 * distances for every query, and prints the medians. Which side goes first alternates (the
 * second finds part of the first's vectors in cache), so both see the same mix.
 *
 * Usage: bench_walk --index FILE --queries QVEC --dims D [--n Q] [--k K] [--ef E] [--rounds R]
 * QVEC is raw float32 queries (bench_floor --queries-only writes PREFIX.qvec).
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/index_io_c.h>

#include "../src/store_hnsw_walk_int.h"
#include "../src/store_simd_int.h"
#include "bench_common.h"

static void die(const char *what)
{
    fprintf(stderr, "bench_walk: %s\n", what);
    exit(1);
}

int main(int argc, char **argv)
{
    const char *path = NULL, *qpath = NULL;
    int dims = 0, nq = 200, k = 10, ef = 16, rounds = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--index") == 0) path = argv[i + 1];
        else if (strcmp(argv[i], "--queries") == 0) qpath = argv[i + 1];
        else if (strcmp(argv[i], "--dims") == 0) dims = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--n") == 0) nq = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--k") == 0) k = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--ef") == 0) ef = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--rounds") == 0) rounds = atoi(argv[i + 1]);
    }
    if (path == NULL || qpath == NULL || dims <= 0 || nq <= 0 || k <= 0 || k > 1024 || rounds <= 0)
        die("usage: bench_walk --index FILE --queries QVEC --dims D [--n Q] [--k K] [--ef E] "
            "[--rounds R]");
    omp_set_num_threads(1);
    float *qv = malloc(sizeof(float) * (size_t)nq * (size_t)dims);
    FILE *f = fopen(qpath, "rb");
    if (qv == NULL || f == NULL) die("cannot read the queries");
    nq = (int)(fread(qv, sizeof(float) * (size_t)dims, (size_t)nq, f));
    fclose(f);
    if (nq <= 0) die("no queries");
    f = fopen(path, "rb");
    FaissIndex *index = NULL;
    if (f == NULL || faiss_read_index(f, 0, &index) != 0) die("cannot read the index");
    fclose(f);
    if (store_simd_install(index) != 1) die("cannot install ragd's storage");
    FaissParameterSpace *ps = NULL;
    if (faiss_ParameterSpace_new(&ps) != 0 ||
        faiss_ParameterSpace_set_index_parameter(ps, index, "efSearch", (double)ef) != 0)
        die("cannot set efSearch");
    faiss_ParameterSpace_free(ps);
    size_t m = (size_t)nq * (size_t)rounds;
    double *la = malloc(sizeof(double) * m), *lb = malloc(sizeof(double) * m);
    if (la == NULL || lb == NULL) die("out of memory");
    float da[1024], db[1024];
    idx_t ia[1024], ib[1024];
    size_t differ = 0;
    for (int r = 0; r < rounds; r++)
        for (int q = 0; q < nq; q++) {
            const float *x = qv + (size_t)q * (size_t)dims;
            /* Which goes first alternates: the second finds the first's vectors in cache. */
            double ta = 0, tb = 0;
            for (int side = 0; side < 2; side++) {
                double t = bench_now_ms();
                if ((side + q + r) % 2 == 0) {
                    if (faiss_Index_search(index, 1, x, k, da, ia) != 0) die("search");
                    ta = bench_now_ms() - t;
                } else {
                    if (store_hnsw_walk_search(index, x, k, NULL, db, ib) != 1) die("walk");
                    tb = bench_now_ms() - t;
                }
            }
            la[(size_t)r * (size_t)nq + (size_t)q] = ta;
            lb[(size_t)r * (size_t)nq + (size_t)q] = tb;
            if (memcmp(ia, ib, sizeof(idx_t) * (size_t)k) != 0 ||
                memcmp(da, db, sizeof(float) * (size_t)k) != 0)
                differ++;
        }
    double a50 = bench_pct(la, m, 50), b50 = bench_pct(lb, m, 50);
    printf("{\"queries\": %d, \"rounds\": %d, \"k\": %d, \"ef\": %d, \"faiss_p50_ms\": %.4f, "
           "\"faiss_p95_ms\": %.4f, \"walk_p50_ms\": %.4f, \"walk_p95_ms\": %.4f, "
           "\"ratio_p50\": %.3f, \"differing_results\": %zu}\n",
           nq, rounds, k, ef, a50, bench_pct(la, m, 95), b50, bench_pct(lb, m, 95), a50 / b50,
           differ);
    faiss_Index_free(index);
    free(la);
    free(lb);
    free(qv);
    return differ == 0 ? 0 : 1;
}
