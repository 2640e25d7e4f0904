/* SPDX-License-Identifier: MIT */
/*
 * bench_index.c - times loading (and optionally saving) one ragd vector index file through
 * ragd's own code (src/store_index.c): what `ragd serve` pays at start-up for the index, without
 * SQLite, HTTP or the rest of the daemon. Prints one JSON line: wall and CPU milliseconds of the
 * load (and of the save), the vectors loaded and the peak RSS. With --resave OUT the loaded index
 * is saved again under OUT with the generation it was loaded with: this converts an index saved
 * by an older ragd (meta format 1, SHA-256) to the current format for side-by-side start-ups.
 *
 * With --build F --vec FILE --ids FILE (bench_load's OUT.vec and OUT.ids) it builds a new index of
 * factory F from those vectors instead, added in batches of 1024 as ragd's rebuild from SQLite
 * adds them (store_index_add; HNSW batches use every core), and saves it to --index: the build
 * time and peak RSS of, for example, HNSW32 at 1M without SQLite's share of a rebuild.
 *
 * Usage: bench_index --index PATH --dims D [--factory F] [--resave OUT]
 *        bench_index --index OUT --dims D --build F --vec FILE --ids FILE [--ef-construction N]
 * [--generation G] (N: HNSW efConstruction, default 128 as ragd's [store]
 * index_hnsw_ef_construction; G: the store generation written to the .meta, default 0: give the
 * generation of a store's own index.faiss.meta to serve the built index from that store)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <time.h>

#include "ragd/store.h"

static double now_ms(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

#define BUILD_BATCH 1024

/* Builds an index of factory from n vectors in vec_path / ids_path and saves it to path. */
static int build(const char *path, int dims, const char *factory, int ef_construction,
                 uint64_t generation, const char *vec_path, const char *ids_path)
{
    FILE *fv = fopen(vec_path, "rb"), *fi = fopen(ids_path, "rb");
    if (fv == NULL || fi == NULL) {
        fprintf(stderr, "bench_index: cannot open %s or %s\n", vec_path, ids_path);
        return 1;
    }
    store_index_opts opts = {.factory = factory, .ef_search = 0, .ef_construction = ef_construction};
    store_index *idx = NULL;
    ragd_err err = {0};
    if (store_index_new_with(dims, &opts, &idx, &err) != RAGD_OK) {
        fprintf(stderr, "bench_index: %s\n", err.msg);
        return 1;
    }
    float *vecs = malloc(sizeof(float) * (size_t)dims * BUILD_BATCH);
    int64_t ids[BUILD_BATCH];
    double w0 = now_ms(CLOCK_MONOTONIC), c0 = now_ms(CLOCK_PROCESS_CPUTIME_ID);
    size_t total = 0, got;
    while (vecs != NULL && (got = fread(ids, sizeof(int64_t), BUILD_BATCH, fi)) > 0) {
        if (fread(vecs, sizeof(float) * (size_t)dims, got, fv) != got ||
            store_index_add(idx, got, ids, vecs, &err) != RAGD_OK) {
            fprintf(stderr, "bench_index: build: %s\n", err.msg[0] ? err.msg : "short read");
            return 1;
        }
        total += got;
        if (total % (100 * BUILD_BATCH) == 0) {
            fprintf(stderr, "bench_index: %zu vectors, %.0f s\n", total,
                    (now_ms(CLOCK_MONOTONIC) - w0) / 1e3);
        }
    }
    double build_wall = now_ms(CLOCK_MONOTONIC) - w0;
    double build_cpu = now_ms(CLOCK_PROCESS_CPUTIME_ID) - c0;
    free(vecs);
    fclose(fv);
    fclose(fi);
    w0 = now_ms(CLOCK_MONOTONIC);
    if (store_index_save(idx, path, generation, &err) != RAGD_OK) {
        fprintf(stderr, "bench_index: save: %s\n", err.msg);
        return 1;
    }
    double save_wall = now_ms(CLOCK_MONOTONIC) - w0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"factory\": \"%s\", \"vectors\": %zu, \"dims\": %d, \"build_wall_s\": %.1f, "
           "\"ef_construction\": %d, \"build_cpu_s\": %.1f, \"save_wall_s\": %.1f, \"peak_rss_bytes\": %lld, "
           "\"raw_vector_bytes\": %zu, \"cpus\": %ld}\n",
           factory, store_index_count(idx), dims, build_wall / 1e3, ef_construction, build_cpu / 1e3,
           save_wall / 1e3, (long long)ru.ru_maxrss * 1024, total * (size_t)dims * sizeof(float),
           sysconf(_SC_NPROCESSORS_ONLN));
    store_index_free(idx);
    return 0;
}

int main(int argc, char **argv)
{
    const char *path = NULL, *factory = NULL, *resave = NULL, *build_factory = NULL;
    const char *vec_path = NULL, *ids_path = NULL;
    int dims = 0, ef_construction = 128; /* ragd's [store] index_hnsw_ef_construction default */
    uint64_t build_generation = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--index") == 0) path = argv[i + 1];
        else if (strcmp(argv[i], "--dims") == 0) dims = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--factory") == 0) factory = argv[i + 1];
        else if (strcmp(argv[i], "--resave") == 0) resave = argv[i + 1];
        else if (strcmp(argv[i], "--build") == 0) build_factory = argv[i + 1];
        else if (strcmp(argv[i], "--vec") == 0) vec_path = argv[i + 1];
        else if (strcmp(argv[i], "--ids") == 0) ids_path = argv[i + 1];
        else if (strcmp(argv[i], "--ef-construction") == 0) ef_construction = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--generation") == 0)
            build_generation = strtoull(argv[i + 1], NULL, 10);
    }
    if (path != NULL && dims > 0 && build_factory != NULL && vec_path != NULL && ids_path != NULL)
        return build(path, dims, build_factory, ef_construction, build_generation, vec_path,
                     ids_path);
    if (path == NULL || dims <= 0) {
        fprintf(stderr, "usage: bench_index --index PATH --dims D [--factory F] [--resave OUT]\n"
                        "       bench_index --index OUT --dims D --build F --vec FILE --ids FILE\n"
                        "                   [--ef-construction N (default 128, as ragd)] [--generation G]\n");
        return 2;
    }
    store_index_opts opts = {.factory = factory, .ef_search = 0, .ef_construction = ef_construction};
    store_index *idx = NULL;
    uint64_t generation = 0;
    ragd_err err = {0};
    double w0 = now_ms(CLOCK_MONOTONIC), c0 = now_ms(CLOCK_PROCESS_CPUTIME_ID);
    if (store_index_load_with(path, dims, &opts, &idx, &generation, &err) != RAGD_OK) {
        fprintf(stderr, "bench_index: load %s: %s\n", path, err.msg);
        return 1;
    }
    double load_wall = now_ms(CLOCK_MONOTONIC) - w0;
    double load_cpu = now_ms(CLOCK_PROCESS_CPUTIME_ID) - c0;
    double save_wall = -1, save_cpu = -1;
    if (resave != NULL) {
        w0 = now_ms(CLOCK_MONOTONIC);
        c0 = now_ms(CLOCK_PROCESS_CPUTIME_ID);
        if (store_index_save(idx, resave, generation, &err) != RAGD_OK) {
            fprintf(stderr, "bench_index: save %s: %s\n", resave, err.msg);
            store_index_free(idx);
            return 1;
        }
        save_wall = now_ms(CLOCK_MONOTONIC) - w0;
        save_cpu = now_ms(CLOCK_PROCESS_CPUTIME_ID) - c0;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"vectors\": %zu, \"dims\": %d, \"generation\": %llu, \"load_wall_ms\": %.1f, "
           "\"load_cpu_ms\": %.1f, \"save_wall_ms\": %.1f, \"save_cpu_ms\": %.1f, "
           "\"peak_rss_bytes\": %lld}\n",
           store_index_count(idx), dims, (unsigned long long)generation, load_wall, load_cpu,
           save_wall, save_cpu, (long long)ru.ru_maxrss * 1024);
    store_index_free(idx);
    return 0;
}
