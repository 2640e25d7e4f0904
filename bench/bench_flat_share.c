/* SPDX-License-Identifier: MIT */
/*
 * bench_flat_share.c - concurrent exact (Flat) searches with and without shared passes
 * (src/store_faiss_simd.cpp), in one process, without HTTP or embedding: one Flat store of N
 * random unit vectors built through ragd's store_index API, then T threads searching it in a
 * closed loop (store_index_search, k 10, a pool of 1000 queries) for S seconds, for each
 * setting: "off" (RAGD_FLAT_PASSES 0: every search its own pass, as before), "p1" and "p2" (at
 * most 1 or 2 passes at once, batches up to --batch queries). Settings alternate within each
 * round (the order rotates) so the machine's load hits them alike. Per setting and T: searches/s,
 * p50 / p95 latency (wall), and the process's CPU time per search (getrusage), medians over the
 * rounds. Prints one JSON object.
 *
 * Usage: bench_flat_share [--n 100000] [--dims 384] [--threads 1,2,4,8] [--seconds 2]
 *                         [--rounds 3] [--batch 16]
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "ragd/simd.h"
#include "ragd/store_faiss.h"

#include "../src/store_simd_int.h"
#include "bench_common.h"

enum { NQ = 1000, K = 10, MAX_THREADS = 16, MAX_LAT = 200000 };

typedef struct worker {
    store_index *idx;
    const float *queries;
    int dims, seed;
    double stop_ms;
    size_t done;
    double *lat; /* per-search wall ms (first MAX_LAT) */
} worker;

static void *worker_run(void *arg)
{
    worker *w = arg;
    uint64_t s = (uint64_t)w->seed * 7919u + 1;
    while (bench_now_ms() < w->stop_ms) {
        const float *q = w->queries + (bench_rand(&s) % NQ) * (size_t)w->dims;
        int64_t ids[K];
        float scores[K];
        size_t found = 0;
        double t0 = bench_now_ms();
        if (store_index_search(w->idx, q, K, ids, scores, &found, NULL) != RAGD_OK) {
            fprintf(stderr, "bench_flat_share: search failed\n");
            exit(1);
        }
        if (w->done < MAX_LAT) w->lat[w->done] = bench_now_ms() - t0;
        w->done++;
    }
    return NULL;
}

static double cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

typedef struct result {
    double qps, p50, p95, cpu_per_query_ms;
} result;

static result run(store_index *idx, const float *queries, int dims, int threads, double seconds)
{
    worker w[MAX_THREADS];
    pthread_t th[MAX_THREADS];
    double stop = bench_now_ms() + seconds * 1e3;
    double c0 = cpu_ms(), t0 = bench_now_ms();
    for (int i = 0; i < threads; i++) {
        w[i] = (worker){.idx = idx, .queries = queries, .dims = dims, .seed = i + 1,
                        .stop_ms = stop, .lat = malloc(sizeof(double) * MAX_LAT)};
        if (w[i].lat == NULL || pthread_create(&th[i], NULL, worker_run, &w[i]) != 0) exit(1);
    }
    size_t total = 0, nlat = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        total += w[i].done;
    }
    double wall = bench_now_ms() - t0, cpu = cpu_ms() - c0;
    double *all = malloc(sizeof(double) * (total > 0 ? total : 1));
    if (all == NULL) exit(1);
    for (int i = 0; i < threads; i++) {
        size_t m = w[i].done < MAX_LAT ? w[i].done : MAX_LAT;
        memcpy(all + nlat, w[i].lat, m * sizeof(double));
        nlat += m;
        free(w[i].lat);
    }
    result r = {.qps = total / (wall / 1e3), .p50 = bench_pct(all, nlat, 50),
                .p95 = bench_pct(all, nlat, 95), .cpu_per_query_ms = total ? cpu / total : 0};
    free(all);
    return r;
}

static double median(double *v, int n)
{
    return bench_pct(v, (size_t)n, 50);
}

int main(int argc, char **argv)
{
    size_t n = 100000;
    int dims = 384, rounds = 3, batch = 16, threads[8] = {1, 2, 4, 8}, nthreads = 4;
    double seconds = 2;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--n")) n = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--dims")) dims = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rounds")) rounds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch")) batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) {
            nthreads = 0;
            for (char *p = argv[i + 1]; *p && nthreads < 8;) {
                int t = (int)strtol(p, &p, 10);
                if (t >= 1 && t <= MAX_THREADS) threads[nthreads++] = t;
                if (*p == ',') p++;
                else if (*p) break;
            }
        } else {
            fprintf(stderr, "usage: bench_flat_share [--n N] [--dims D] [--threads 1,2,8] "
                            "[--seconds S] [--rounds R] [--batch B]\n");
            return 2;
        }
    }
    if (n == 0 || dims <= 0 || rounds < 1 || nthreads == 0) return 2;
    float *vecs = malloc(sizeof(float) * n * (size_t)dims);
    float *queries = malloc(sizeof(float) * NQ * (size_t)dims);
    int64_t *ids = malloc(sizeof(int64_t) * n);
    if (vecs == NULL || queries == NULL || ids == NULL) return 1;
    uint64_t s = 42;
    for (size_t i = 0; i < n; i++) bench_unit_vector(&s, vecs + i * (size_t)dims, dims);
    for (size_t i = 0; i < NQ; i++) bench_unit_vector(&s, queries + i * (size_t)dims, dims);
    for (size_t i = 0; i < n; i++) ids[i] = (int64_t)i + 1;
    store_index_opts o = {.factory = "Flat"};
    store_index *idx = NULL;
    ragd_err err = {0};
    if (store_index_new_with(dims, &o, &idx, &err) != RAGD_OK ||
        store_index_add(idx, n, ids, vecs, &err) != RAGD_OK) {
        fprintf(stderr, "bench_flat_share: %s\n", err.msg);
        return 1;
    }
    free(vecs);
    static const char *const names[] = {"off", "p1", "p2"};
    static const int passes[] = {0, 1, 2};
    enum { NSET = 3 };
    result (*res)[8][NSET] = calloc((size_t)rounds, sizeof *res);
    if (res == NULL) return 1;
    double load0[3] = {0}, load1[3] = {0};
    getloadavg(load0, 3);
    for (int r = 0; r < rounds; r++)
        for (int j = 0; j < NSET; j++) {
            int set = (j + r) % NSET;
            store_simd_flat_limits(passes[set], batch);
            for (int t = 0; t < nthreads; t++) {
                res[r][t][set] = run(idx, queries, dims, threads[t], seconds);
                fprintf(stderr, "round %d %s threads %d: %.1f searches/s p50 %.2f ms cpu %.2f ms\n",
                        r + 1, names[set], threads[t], res[r][t][set].qps, res[r][t][set].p50,
                        res[r][t][set].cpu_per_query_ms);
            }
        }
    getloadavg(load1, 3);
    printf("{\"n\": %zu, \"dims\": %d, \"k\": %d, \"batch\": %d, \"seconds\": %.1f, "
           "\"rounds\": %d, \"simd\": \"%s\", \"load_before\": [%.2f, %.2f, %.2f], "
           "\"load_after\": [%.2f, %.2f, %.2f], \"settings\": {",
           n, dims, K, batch, seconds, rounds, simd_level_name(simd_level_get()), load0[0],
           load0[1], load0[2], load1[0], load1[1], load1[2]);
    for (int set = 0; set < NSET; set++) {
        printf("%s\"%s\": {", set ? ", " : "", names[set]);
        for (int t = 0; t < nthreads; t++) {
            double v[4][64];
            int m = rounds < 64 ? rounds : 64;
            for (int r = 0; r < m; r++) {
                v[0][r] = res[r][t][set].qps;
                v[1][r] = res[r][t][set].p50;
                v[2][r] = res[r][t][set].p95;
                v[3][r] = res[r][t][set].cpu_per_query_ms;
            }
            printf("%s\"%d\": {\"searches_per_s\": %.1f, \"p50_ms\": %.3f, \"p95_ms\": %.3f, "
                   "\"cpu_ms_per_search\": %.3f}",
                   t ? ", " : "", threads[t], median(v[0], m), median(v[1], m), median(v[2], m),
                   median(v[3], m));
        }
        printf("}");
    }
    printf("}}\n");
    free(res);
    free(queries);
    free(ids);
    store_index_free(idx);
    return 0;
}
