/* SPDX-License-Identifier: MIT */
/*
 * bench_floor.c - the raw-FAISS floor and the ground truth for one synthetic store made by
 * bench_load. It (1) makes the query set: Q questions as text, embedded with ragd's own local
 * embedder at the store's dims (embed_local_vector), exactly the vectors ragd computes when the
 * same text reaches POST /retrieve; writes them as PREFIX.qtxt (one per line) and PREFIX.qvec
 * (Q x D float32) for the HTTP client and the peer; (2) computes the exact top-k of every query
 * over PREFIX.vec by brute force (BLAS sgemm in blocks) into PREFIX.gt (Q x k int64 chunk ids);
 * (3) loads the very index file ragd serves (data_dir/index.faiss) with faiss_read_index, sets
 * the same efSearch, and times faiss_Index_search one query at a time on one thread: the floor
 * ragd's HTTP retrieve is compared against, with its recall@k against the exact top-k.
 *
 * Usage: bench_floor --index FILE --vec PREFIX --dims D --queries Q --k K --ef E --rounds R
 *        bench_floor --queries-only 1 --vec PREFIX --dims D --queries Q
 * Prints one JSON object. --queries-only 1 does (1) only (no store needed): bench_load
 * --centroids PREFIX.qvec then places clusters of chunks around the questions; the query set is
 * deterministic, so the full run that follows writes the same texts and vectors again.
 */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/index_io_c.h>

#include "ragd/embed.h"

#include "bench_common.h"

#define GT_BLOCK 8192

static const char *const WORDS[] = {
    "configure", "index",   "rebuild", "backup",   "daemon",  "retrieve", "chunk",  "token",
    "embedding", "model",   "filter",  "document", "ingest",  "latency",  "memory", "cache",
    "restart",   "upgrade", "policy",  "refund",   "shipping", "warehouse", "valve", "lever",
    "customer",  "invoice", "password", "account", "server",  "network",  "timeout", "error"};
#define NWORDS (sizeof WORDS / sizeof WORDS[0])

static void die(const char *what)
{
    const char *msg = faiss_get_last_error();
    fprintf(stderr, "bench_floor: %s%s%s\n", what, msg ? ": " : "", msg ? msg : "");
    exit(1);
}

/* Keeps the k best (score, id) of one query, best first. */
static void topk_push(float *sc, int64_t *id, int k, float s, int64_t v)
{
    if (s <= sc[k - 1]) return;
    int i = k - 1;
    while (i > 0 && sc[i - 1] < s) {
        sc[i] = sc[i - 1];
        id[i] = id[i - 1];
        i--;
    }
    sc[i] = s;
    id[i] = v;
}

int main(int argc, char **argv)
{
    const char *index_path = NULL, *prefix = NULL;
    int dims = 0, nq = 200, k = 10, ef = 64, rounds = 3, queries_only = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--index") == 0) index_path = argv[i + 1];
        else if (strcmp(argv[i], "--vec") == 0) prefix = argv[i + 1];
        else if (strcmp(argv[i], "--dims") == 0) dims = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--queries") == 0) nq = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--k") == 0) k = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--ef") == 0) ef = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--rounds") == 0) rounds = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--queries-only") == 0) queries_only = atoi(argv[i + 1]);
    }
    if ((index_path == NULL && !queries_only) || prefix == NULL || dims <= 0 || nq <= 0 || k <= 0 || rounds <= 0) {
        fprintf(stderr, "usage: bench_floor --index FILE --vec PREFIX --dims D --queries Q --k K "
                        "--ef E --rounds R\n");
        return 2;
    }
    char name[4096];
    /* (1) queries as text, embedded by ragd's local embedder. */
    float *qv = malloc(sizeof(float) * (size_t)nq * (size_t)dims);
    if (qv == NULL) die("out of memory");
    snprintf(name, sizeof name, "%s.qtxt", prefix);
    FILE *qt = fopen(name, "w");
    if (qt == NULL) die("cannot write the query texts");
    uint64_t rs = 42;
    for (int q = 0; q < nq; q++) {
        char text[256];
        int len = snprintf(text, sizeof text, "how do I %s the %s %s for %s %d", WORDS[bench_rand(&rs) % NWORDS],
                           WORDS[bench_rand(&rs) % NWORDS], WORDS[bench_rand(&rs) % NWORDS],
                           WORDS[bench_rand(&rs) % NWORDS], q);
        fprintf(qt, "%s\n", text);
        embed_local_vector(text, (size_t)len, dims, qv + (size_t)q * (size_t)dims);
    }
    if (fclose(qt) != 0) die("cannot write the query texts");
    snprintf(name, sizeof name, "%s.qvec", prefix);
    if (bench_file_write(name, qv, sizeof(float) * (size_t)nq * (size_t)dims) != 0)
        die("cannot write the query vectors");
    if (queries_only) {
        printf("{\"queries\": %d, \"dims\": %d}\n", nq, dims);
        free(qv);
        return 0;
    }

    /* (2) exact top-k by brute force. */
    size_t vlen = 0, ilen = 0;
    snprintf(name, sizeof name, "%s.vec", prefix);
    float *vecs = bench_file_read(name, &vlen);
    snprintf(name, sizeof name, "%s.ids", prefix);
    int64_t *ids = bench_file_read(name, &ilen);
    if (vecs == NULL || ids == NULL) die("cannot read the vectors");
    size_t n = ilen / sizeof(int64_t);
    if (vlen != n * (size_t)dims * sizeof(float)) die("vectors and ids disagree");
    double tg = bench_now_ms();
    float *gts = malloc(sizeof(float) * (size_t)nq * (size_t)k);
    int64_t *gti = malloc(sizeof(int64_t) * (size_t)nq * (size_t)k);
    float *block = malloc(sizeof(float) * (size_t)nq * GT_BLOCK);
    if (gts == NULL || gti == NULL || block == NULL) die("out of memory");
    for (size_t i = 0; i < (size_t)nq * (size_t)k; i++) {
        gts[i] = -1e30f;
        gti[i] = -1;
    }
    for (size_t b = 0; b < n; b += GT_BLOCK) {
        int m = (int)(n - b < GT_BLOCK ? n - b : GT_BLOCK);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, m, dims, 1.0f, qv, dims,
                    vecs + b * (size_t)dims, dims, 0.0f, block, m);
        for (int q = 0; q < nq; q++)
            for (int j = 0; j < m; j++)
                topk_push(gts + (size_t)q * (size_t)k, gti + (size_t)q * (size_t)k, k,
                          block[(size_t)q * (size_t)m + (size_t)j], ids[b + (size_t)j]);
    }
    free(block);
    free(vecs);
    free(ids);
    snprintf(name, sizeof name, "%s.gt", prefix);
    if (bench_file_write(name, gti, sizeof(int64_t) * (size_t)nq * (size_t)k) != 0)
        die("cannot write the ground truth");
    double gt_ms = bench_now_ms() - tg;

    /* (3) raw FAISS on the index file ragd serves, one query at a time on one thread. */
    omp_set_num_threads(1);
    FILE *f = fopen(index_path, "rb");
    if (f == NULL) die("cannot open the index");
    FaissIndex *index = NULL;
    double tl = bench_now_ms();
    if (faiss_read_index(f, 0, &index) != 0) die("cannot read the index");
    double load_ms = bench_now_ms() - tl;
    fclose(f);
    FaissParameterSpace *ps = NULL;
    /* Flat has no efSearch: that failure is expected and ignored. */
    if (faiss_ParameterSpace_new(&ps) == 0) {
        (void)faiss_ParameterSpace_set_index_parameter(ps, index, "efSearch", (double)ef);
        faiss_ParameterSpace_free(ps);
    }
    double *lat = malloc(sizeof(double) * (size_t)nq * (size_t)rounds);
    float *sc = malloc(sizeof(float) * (size_t)k);
    idx_t *lab = malloc(sizeof(idx_t) * (size_t)k);
    if (lat == NULL || sc == NULL || lab == NULL) die("out of memory");
    size_t hits = 0;
    for (int q = 0; q < nq; q++) /* warm-up, and recall */
    {
        if (faiss_Index_search(index, 1, qv + (size_t)q * (size_t)dims, k, sc, lab) != 0)
            die("search");
        for (int a = 0; a < k; a++)
            for (int b = 0; b < k; b++)
                if (lab[a] >= 0 && lab[a] == gti[(size_t)q * (size_t)k + (size_t)b]) hits++;
    }
    double t0 = bench_now_ms();
    for (int r = 0; r < rounds; r++)
        for (int q = 0; q < nq; q++) {
            double s = bench_now_ms();
            if (faiss_Index_search(index, 1, qv + (size_t)q * (size_t)dims, k, sc, lab) != 0)
                die("search");
            lat[(size_t)r * (size_t)nq + (size_t)q] = bench_now_ms() - s;
        }
    double total = bench_now_ms() - t0;
    size_t m = (size_t)nq * (size_t)rounds;
    double p50 = bench_pct(lat, m, 50), p95 = bench_pct(lat, m, 95), p99 = bench_pct(lat, m, 99);
    printf("{\"n\": %zu, \"dims\": %d, \"k\": %d, \"queries\": %d, \"rounds\": %d, "
           "\"p50_ms\": %.4f, \"p95_ms\": %.4f, \"p99_ms\": %.4f, \"qps_1thread\": %.1f, "
           "\"recall_at_k\": %.4f, \"ground_truth_ms\": %.0f, \"index_load_ms\": %.0f}\n",
           n, dims, k, nq, rounds, p50, p95, p99, (double)m / (total / 1e3),
           (double)hits / ((double)nq * k), gt_ms, load_ms);
    faiss_Index_free(index);
    free(lat);
    free(sc);
    free(lab);
    free(qv);
    free(gts);
    free(gti);
    return 0;
}
