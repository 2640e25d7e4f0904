/* SPDX-License-Identifier: MIT */
/*
 * bench_simd.c - ragd's SIMD index classes against FAISS's own, side by side in one process.
 * Builds the same store twice through ragd's store_index API (src/store_index.c), once with
 * RAGD_SIMD off (Debian's FAISS classes: scalar reference kernels) and once with the CPU's best
 * level, then searches both with the same queries, alternating query by query (A, B, A, B...) so
 * that the machine's load hits both alike. Times are thread CPU time (CLOCK_THREAD_CPUTIME_ID),
 * which other processes on a shared machine disturb far less than wall time. Also reports the
 * HNSW build time of each (CPU time of this thread and wall time; the bulk add uses every core)
 * and recall@k of each against the exact top-k (ragd's own Flat with the scalar path).
 *
 * Usage: bench_simd --n N --dims D --factory Flat|HNSW32 --queries Q --k K --ef E
 *                   --dist uniform|clustered [--clusters C] [--efc EFC] [--efs E1,E2,...]
 *                   [--ab 0] [--index FILE --qtxt FILE]
 * --index/--qtxt: real vectors instead of synthetic ones: the vectors of a saved Flat index
 * (index.faiss of a ragd data dir, FAISS's IndexIDMap2(IndexFlatIP) layout) and the questions of
 * a text file (one a line) embedded with ragd's local embedder at the index's dims, as ragd
 * embeds a /retrieve query. --efc sets HNSW efConstruction; --efs sweeps efSearch over the
 * SIMD-built index (recall@k against exact, CPU ms); --ab 0 skips the FAISS-classes build.
 * Prints one JSON object.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ragd/embed.h"
#include "ragd/simd.h"
#include "ragd/store_faiss.h"

#include "bench_common.h"

static double thread_cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Clustered: C unit centroids, each vector its centroid plus Gaussian noise of the same norm,
 * normalised (the model bench_load --dist clustered uses). */
static void make_vectors(float *v, size_t n, int dims, int clustered, int clusters, uint64_t seed)
{
    uint64_t s = seed;
    float *cent = NULL;
    if (clustered) {
        cent = malloc(sizeof(float) * (size_t)clusters * (size_t)dims);
        for (int c = 0; c < clusters; c++) bench_unit_vector(&s, cent + (size_t)c * dims, dims);
    }
    for (size_t i = 0; i < n; i++) {
        float *x = v + i * (size_t)dims;
        bench_unit_vector(&s, x, dims);
        if (!clustered) continue;
        const float *c = cent + (bench_rand(&s) % (uint64_t)clusters) * (size_t)dims;
        double norm = 0;
        for (int j = 0; j < dims; j++) {
            x[j] = c[j] + x[j];
            norm += (double)x[j] * x[j];
        }
        norm = sqrt(norm);
        for (int j = 0; j < dims; j++) x[j] = (float)(x[j] / norm);
    }
    free(cent);
}

static int efc_opt;

/* Reads the vectors of a saved IndexIDMap2(IndexFlatIP): d at byte 41, ntotal at 45, the floats
 * from byte 82. Returns: new array (free()), *n, *dims. */
static float *index_vectors_read(const char *path, size_t *n, int *dims)
{
    FILE *f = fopen(path, "rb");
    unsigned char head[82];
    if (f == NULL || fread(head, 1, sizeof head, f) != sizeof head ||
        memcmp(head + 37, "IxFI", 4) != 0) {
        fprintf(stderr, "bench_simd: %s is not a flat ragd index\n", path);
        exit(1);
    }
    int32_t d;
    int64_t count;
    memcpy(&d, head + 41, 4);
    memcpy(&count, head + 45, 8);
    float *v = malloc(sizeof(float) * (size_t)count * (size_t)d);
    if (v == NULL || fread(v, sizeof(float) * (size_t)d, (size_t)count, f) != (size_t)count) {
        fprintf(stderr, "bench_simd: cannot read %s\n", path);
        exit(1);
    }
    fclose(f);
    *n = (size_t)count;
    *dims = d;
    return v;
}

/* Embeds each line of path. Returns: new array of *q vectors of dims floats. */
static float *questions_embed(const char *path, int dims, size_t *q)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "bench_simd: cannot open %s\n", path);
        exit(1);
    }
    char line[4096];
    size_t n = 0, cap = 256;
    float *v = malloc(sizeof(float) * cap * (size_t)dims);
    while (fgets(line, sizeof line, f) != NULL) {
        size_t len = strcspn(line, "\n");
        if (len == 0) continue;
        if (n == cap) v = realloc(v, sizeof(float) * (cap *= 2) * (size_t)dims);
        embed_local_vector(line, len, dims, v + n * (size_t)dims);
        n++;
    }
    fclose(f);
    *q = n;
    return v;
}

static store_index *build(simd_level level, int dims, const char *factory, int ef, size_t n,
                          const float *vecs, double *cpu_ms, double *wall_ms)
{
    simd_level_set(level);
    store_index_opts o = {.factory = factory, .ef_search = ef, .ef_construction = efc_opt};
    store_index *idx = NULL;
    ragd_err err = {0};
    if (store_index_new_with(dims, &o, &idx, &err) != RAGD_OK) {
        fprintf(stderr, "bench_simd: %s\n", err.msg);
        exit(1);
    }
    int64_t *ids = malloc(sizeof(int64_t) * n);
    for (size_t i = 0; i < n; i++) ids[i] = (int64_t)i + 1;
    double c0 = thread_cpu_ms(), w0 = bench_now_ms();
    for (size_t i = 0; i < n; i += 4096) {
        size_t m = n - i < 4096 ? n - i : 4096;
        if (store_index_add(idx, m, ids + i, vecs + i * (size_t)dims, &err) != RAGD_OK) {
            fprintf(stderr, "bench_simd: %s\n", err.msg);
            exit(1);
        }
    }
    *cpu_ms = thread_cpu_ms() - c0;
    *wall_ms = bench_now_ms() - w0;
    free(ids);
    return idx;
}

static double recall(const int64_t *got, size_t found, const int64_t *truth, size_t k)
{
    size_t hit = 0;
    for (size_t i = 0; i < found; i++)
        for (size_t j = 0; j < k; j++)
            if (got[i] == truth[j]) {
                hit++;
                break;
            }
    return (double)hit / (double)k;
}

int main(int argc, char **argv)
{
    size_t n = 100000, q = 200, k = 10;
    int dims = 384, ef = 64, clusters = 0, clustered = 0;
    const char *factory = "Flat", *index_path = NULL, *qtxt = NULL, *efs = NULL;
    int ab = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--n")) n = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--dims")) dims = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--factory")) factory = argv[i + 1];
        else if (!strcmp(argv[i], "--queries")) q = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--k")) k = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--ef")) ef = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dist")) clustered = !strcmp(argv[i + 1], "clustered");
        else if (!strcmp(argv[i], "--clusters")) clusters = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--efc")) efc_opt = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--efs")) efs = argv[i + 1];
        else if (!strcmp(argv[i], "--ab")) ab = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--index")) index_path = argv[i + 1];
        else if (!strcmp(argv[i], "--qtxt")) qtxt = argv[i + 1];
        else {
            fprintf(stderr, "bench_simd: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (clusters <= 0) clusters = n / 100 > 0 ? (int)(n / 100) : 1;
    simd_level best = simd_level_best();
    float *vecs = NULL, *queries = NULL;
    if (index_path != NULL && qtxt != NULL) {
        vecs = index_vectors_read(index_path, &n, &dims);
        queries = questions_embed(qtxt, dims, &q);
        clustered = -1;
    } else {
        vecs = malloc(sizeof(float) * n * (size_t)dims);
        queries = malloc(sizeof(float) * q * (size_t)dims);
        make_vectors(vecs, n, dims, clustered, clusters, 42);
    }
    /* Queries from the same distribution (members of the clusters), a separate draw. */
    if (clustered >= 0) make_vectors(queries, q, dims, clustered, clusters, 42);
    uint64_t s = 7;
    for (size_t i = 0; clustered >= 0 && i < q; i++) {
        float *x = queries + i * (size_t)dims;
        const float *y = vecs + (bench_rand(&s) % n) * (size_t)dims;
        double norm = 0;
        for (int j = 0; j < dims; j++) {
            x[j] = clustered ? y[j] + 0.5f * x[j] : x[j];
            norm += (double)x[j] * x[j];
        }
        norm = sqrt(norm);
        for (int j = 0; j < dims; j++) x[j] = (float)(x[j] / norm);
    }
    double cpu_a = 0, wall_a = 0, cpu_b = 0, wall_b = 0, c_, w_;
    store_index *exact = build(best, dims, "Flat", 0, n, vecs, &c_, &w_);
    store_index *a = ab ? build(RAGD_SIMD_OFF, dims, factory, ef, n, vecs, &cpu_a, &wall_a) : NULL;
    store_index *b = build(best, dims, factory, ef, n, vecs, &cpu_b, &wall_b);
    int64_t *truth = malloc(sizeof(int64_t) * k), *ids = malloc(sizeof(int64_t) * k);
    float *scores = malloc(sizeof(float) * k);
    double *ta = malloc(sizeof(double) * q), *tb = malloc(sizeof(double) * q);
    double ra = 0, rb = 0;
    ragd_err err = {0};
    for (size_t i = 0; i < q; i++) {
        const float *x = queries + i * (size_t)dims;
        size_t found = 0;
        store_index_search(exact, x, k, truth, scores, &found, &err);
        for (int side = 0; side < 2; side++) {
            store_index *idx = (i + side) % 2 == 0 ? a : b; /* alternate who goes first */
            if (idx == NULL) {
                ta[i] = 0;
                continue;
            }
            double t0 = thread_cpu_ms();
            store_index_search_ef(idx, x, k, ef, ids, scores, &found, &err);
            double t = thread_cpu_ms() - t0;
            if (idx == a) {
                ta[i] = t;
                ra += recall(ids, found, truth, k);
            } else {
                tb[i] = t;
                rb += recall(ids, found, truth, k);
            }
        }
    }
    double a50 = bench_pct(ta, q, 50), a95 = bench_pct(ta, q, 95);
    double b50 = bench_pct(tb, q, 50), b95 = bench_pct(tb, q, 95);
    /* The sweep: recall@k and CPU time of the SIMD-built index at each efSearch. */
    char sweep[4096] = "";
    size_t sw = 0;
    for (const char *p = efs; p != NULL && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
        int e = atoi(p);
        double r = 0;
        for (size_t i = 0; i < q; i++) {
            const float *x = queries + i * (size_t)dims;
            size_t found = 0;
            store_index_search(exact, x, k, truth, scores, &found, &err);
            double t0 = thread_cpu_ms();
            store_index_search_ef(b, x, k, e, ids, scores, &found, &err);
            tb[i] = thread_cpu_ms() - t0;
            r += recall(ids, found, truth, k);
        }
        double p50 = bench_pct(tb, q, 50), p95 = bench_pct(tb, q, 95);
        sw += (size_t)snprintf(sweep + sw, sizeof sweep - sw,
                               "%s\"%d\": {\"recall\": %.4f, \"p50\": %.4f, \"p95\": %.4f}",
                               sw ? ", " : "", e, r / (double)q, p50, p95);
    }
    fprintf(stderr, "sweep: {%s}\n", sweep);
    printf("{\"n\": %zu, \"dims\": %d, \"factory\": \"%s\", \"dist\": \"%s\", \"k\": %zu, "
           "\"ef\": %d, \"queries\": %zu, \"simd\": \"%s\",\n"
           " \"faiss_search_cpu_ms\": {\"p50\": %.4f, \"p95\": %.4f}, \"faiss_recall\": %.4f,\n"
           " \"ragd_search_cpu_ms\": {\"p50\": %.4f, \"p95\": %.4f}, \"ragd_recall\": %.4f,\n"
           " \"speedup_p50\": %.2f, \"faiss_build_ms\": {\"cpu\": %.0f, \"wall\": %.0f},\n"
           " \"ragd_build_ms\": {\"cpu\": %.0f, \"wall\": %.0f}, \"efc\": %d,\n"
           " \"sweep\": {%s}}\n",
           n, dims, factory, clustered < 0 ? "real" : clustered ? "clustered" : "uniform", k, ef, q,
           simd_level_name(best), a50, a95, ra / (double)q, b50, b95, rb / (double)q,
           b50 > 0 ? a50 / b50 : 0, cpu_a, wall_a, cpu_b, wall_b, efc_opt, sweep);
    store_index_free(exact);
    store_index_free(a);
    store_index_free(b);
    free(truth);
    free(ids);
    free(scores);
    free(ta);
    free(tb);
    free(vecs);
    free(queries);
    return 0;
}
