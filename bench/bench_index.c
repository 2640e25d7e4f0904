/* SPDX-License-Identifier: MIT */
/*
 * bench_index.c - times loading (and optionally saving) one ragd vector index file through
 * ragd's own code (src/store_index.c): what `ragd serve` pays at start-up for the index, without
 * SQLite, HTTP or the rest of the daemon. Prints one JSON line: wall and CPU milliseconds of the
 * load (and of the save), the vectors loaded and the peak RSS. With --resave OUT the loaded index
 * is saved again under OUT with the generation it was loaded with: this converts an index saved
 * by an older ragd (meta format 1, SHA-256) to the current format for side-by-side start-ups.
 *
 * Usage: bench_index --index PATH --dims D [--factory F] [--resave OUT]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "ragd/store.h"

static double now_ms(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
    const char *path = NULL, *factory = NULL, *resave = NULL;
    int dims = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--index") == 0) path = argv[i + 1];
        else if (strcmp(argv[i], "--dims") == 0) dims = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--factory") == 0) factory = argv[i + 1];
        else if (strcmp(argv[i], "--resave") == 0) resave = argv[i + 1];
    }
    if (path == NULL || dims <= 0) {
        fprintf(stderr, "usage: bench_index --index PATH --dims D [--factory F] [--resave OUT]\n");
        return 2;
    }
    store_index_opts opts = {.factory = factory, .ef_search = 0};
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
