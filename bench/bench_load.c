/* SPDX-License-Identifier: MIT */
/*
 * bench_load.c - fills a ragd data directory with N synthetic chunks directly through ragd's own
 * store APIs (src/store_db.c, src/store_index.c), for the index-scaling benchmarks: ingesting a
 * million chunks through the text pipeline would take far longer than the run's budget, and what
 * is measured at scale is retrieval. Each chunk gets a random unit vector (Gaussian, normalised,
 * deterministic from --seed) stored as its embedding under the local embedder's model name, so
 * `ragd serve` with `[embed] dims = D` opens the store as its own; the index is built in the
 * requested FAISS type and saved with the store's generation, so ragd loads it instead of
 * rebuilding. Documents hold 100 chunks each and are tagged "even" or "odd" (for the filter runs).
 * Also writes OUT.vec (N x D float32) and OUT.ids (N int64 chunk ids) for the raw-FAISS floor and
 * the peer, so every system searches the very same vectors.
 *
 * Usage: bench_load --data-dir DIR --n N --dims D [--factory F] [--ef E] [--seed S] --out PREFIX
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ragd/store.h"
#include "ragd/util.h"

#include "bench_common.h"

#define CHUNKS_PER_DOC 100
#define TXN_ROWS 20000
#define MODEL "ragd-local-v1"

static void die(const char *what, const ragd_err *err)
{
    fprintf(stderr, "bench_load: %s: %s\n", what, err ? err->msg : "");
    exit(1);
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *out = NULL, *factory = "Flat";
    long n = 0;
    int dims = 0, ef = 64;
    uint64_t seed = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--data-dir") == 0) dir = argv[i + 1];
        else if (strcmp(argv[i], "--n") == 0) n = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--dims") == 0) dims = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--factory") == 0) factory = argv[i + 1];
        else if (strcmp(argv[i], "--ef") == 0) ef = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--seed") == 0) seed = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--out") == 0) out = argv[i + 1];
    }
    if (dir == NULL || out == NULL || n <= 0 || dims <= 0) {
        fprintf(stderr, "usage: bench_load --data-dir DIR --n N --dims D [--factory F] [--ef E] "
                        "[--seed S] --out PREFIX\n");
        return 2;
    }
    ragd_err err = {0};
    store_db *db = NULL;
    if (util_mkdir_p(dir, &err) != RAGD_OK) die("mkdir", &err);
    if (store_db_open(dir, 0, &db, &err) != RAGD_OK) die("open", &err);
    if (store_db_model_check(db, MODEL, dims, &err) != RAGD_OK) die("model", &err);

    float *vecs = malloc(sizeof(float) * (size_t)n * (size_t)dims);
    int64_t *ids = malloc(sizeof(int64_t) * (size_t)n);
    if (vecs == NULL || ids == NULL) die("out of memory", NULL);
    double t0 = bench_now_ms();
    uint64_t rs = seed;
    int64_t doc_id = 0;
    uint64_t gen = 0;
    char text[96], path[64], source[64], title[64];
    for (long i = 0; i < n; i++) {
        if (i % TXN_ROWS == 0 && store_db_begin(db, &err) != RAGD_OK) die("begin", &err);
        long d = i / CHUNKS_PER_DOC;
        if (i % CHUNKS_PER_DOC == 0) {
            snprintf(path, sizeof path, "/bench/doc%07ld.md", d);
            snprintf(source, sizeof source, "doc%07ld.md", d);
            snprintf(title, sizeof title, "Bench document %ld", d);
            char checksum[UTIL_SHA256_HEX_LEN + 1];
            util_sha256_hex(path, strlen(path), checksum);
            store_doc doc = {.path = path, .source = source, .title = title,
                             .checksum = checksum, .size = 1, .mtime = 1,
                             .tags_json = d % 2 == 0 ? "[\"even\"]" : "[\"odd\"]",
                             .metadata_json = "{}"};
            if (store_db_doc_put(db, &doc, &doc_id, &err) != RAGD_OK) die("doc", &err);
        }
        float *v = vecs + (size_t)i * (size_t)dims;
        bench_unit_vector(&rs, v, dims);
        int len = snprintf(text, sizeof text, "Synthetic benchmark chunk %ld of document %ld.", i, d);
        char checksum[UTIL_SHA256_HEX_LEN + 1];
        util_sha256_hex(text, (size_t)len, checksum);
        store_chunk_in in = {.ordinal = (int)(i % CHUNKS_PER_DOC), .text = text,
                             .text_len = (size_t)len, .heading = "", .tokens = 8,
                             .char_start = 0, .char_end = len, .checksum = checksum};
        if (store_db_chunk_put(db, doc_id, &in, &ids[i], &err) != RAGD_OK) die("chunk", &err);
        if (store_db_embedding_put(db, checksum, MODEL, dims, v, &err) != RAGD_OK)
            die("embedding", &err);
        if ((i + 1) % TXN_ROWS == 0 || i + 1 == n) {
            if (store_db_generation_bump(db, &gen, &err) != RAGD_OK) die("generation", &err);
            if (store_db_commit(db, &err) != RAGD_OK) die("commit", &err);
        }
    }
    if (store_db_sync(db, &err) != RAGD_OK) die("sync", &err);
    double t1 = bench_now_ms();

    store_index_opts opts = {.factory = factory, .ef_search = ef};
    store_index *idx = NULL;
    if (store_index_new_with(dims, &opts, &idx, &err) != RAGD_OK) die("index", &err);
    /* ragd limits FAISS to one thread per caller; the loader may use both cores to build. */
    omp_set_num_threads(2);
    if (store_index_add(idx, (size_t)n, ids, vecs, &err) != RAGD_OK) die("add", &err);
    char *ipath = util_path_join(dir, "index.faiss");
    if (ipath == NULL || store_index_save(idx, ipath, gen, &err) != RAGD_OK) die("save", &err);
    double t2 = bench_now_ms();

    char name[4096];
    snprintf(name, sizeof name, "%s.vec", out);
    if (bench_file_write(name, vecs, sizeof(float) * (size_t)n * (size_t)dims) != 0)
        die("write vectors", NULL);
    snprintf(name, sizeof name, "%s.ids", out);
    if (bench_file_write(name, ids, sizeof(int64_t) * (size_t)n) != 0) die("write ids", NULL);
    printf("{\"n\": %ld, \"dims\": %d, \"factory\": \"%s\", \"sqlite_s\": %.3f, "
           "\"index_build_s\": %.3f}\n", n, dims, factory, (t1 - t0) / 1e3, (t2 - t1) / 1e3);
    free(ipath);
    store_index_free(idx);
    store_db_close(db);
    free(vecs);
    free(ids);
    return 0;
}
