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
 * --dist uniform (the default) draws every vector independently: no neighbourhood structure, the
 * worst case for graph indexes. --dist clustered draws a Gaussian mixture, as real embeddings
 * cluster: C centroids (random unit vectors; C = --clusters, default N / 100), each vector its
 * centroid plus Gaussian noise of norm --spread (default 1.0, i.e. about as long as the centroid:
 * cosine to the centroid ~0.7), normalised. Chunk i belongs to a random centroid (not i's
 * document), so tags and documents stay independent of the geometry. With --centroids FILE
 * (float32 rows of D, e.g. bench_floor's PREFIX.qvec) the first centroids are drawn around the
 * rows of FILE as the members are around their centroid: every question is then a member of a
 * cluster of chunks, as a real question lies among passages that answer it, instead of falling
 * between clusters.
 *
 * HNSW graphs are built as ragd builds them: efConstruction 128 ([store]
 * index_hnsw_ef_construction's default; --ef-construction N to change it), efSearch --ef.
 *
 * Usage: bench_load --data-dir DIR --n N --dims D [--factory F] [--ef E] [--seed S]
 *                   [--ef-construction N]
 *                   [--dist uniform|clustered] [--clusters C] [--spread S]
 *                   [--centroids FILE] --out PREFIX
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
    int dims = 0, ef = 64, ef_construction = 128; /* ragd's index_hnsw_ef_construction default */
    uint64_t seed = 1;
    const char *dist = "uniform";
    long clusters = 0;
    double spread = 1.0;
    const char *cfile = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--data-dir") == 0) dir = argv[i + 1];
        else if (strcmp(argv[i], "--n") == 0) n = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--dims") == 0) dims = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--factory") == 0) factory = argv[i + 1];
        else if (strcmp(argv[i], "--ef") == 0) ef = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--ef-construction") == 0) ef_construction = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--seed") == 0) seed = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--out") == 0) out = argv[i + 1];
        else if (strcmp(argv[i], "--dist") == 0) dist = argv[i + 1];
        else if (strcmp(argv[i], "--clusters") == 0) clusters = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--spread") == 0) spread = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--centroids") == 0) cfile = argv[i + 1];
    }
    int clustered = strcmp(dist, "clustered") == 0;
    if (dir == NULL || out == NULL || n <= 0 || dims <= 0 ||
        (!clustered && strcmp(dist, "uniform") != 0) || clusters < 0 || spread <= 0) {
        fprintf(stderr, "usage: bench_load --data-dir DIR --n N --dims D [--factory F] [--ef E] "
                        "[--seed S] [--dist uniform|clustered] [--clusters C] [--spread S] "
                        "[--centroids FILE] [--ef-construction N] --out PREFIX\n");
        return 2;
    }
    if (clusters == 0) clusters = n / 100 > 0 ? n / 100 : 1;
    if (!clustered) clusters = 0;
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
    /* The mixture's centroids (clustered only), from their own stream so the uniform
     * vectors of a seed stay what they were before --dist existed. */
    float *cent = NULL, *noise = NULL;
    long given_centroids = 0;
    if (clustered) {
        cent = malloc(sizeof(float) * (size_t)clusters * (size_t)dims);
        noise = malloc(sizeof(float) * (size_t)dims);
        if (cent == NULL || noise == NULL) die("out of memory", NULL);
        uint64_t cs = seed ^ 0x5eedc1u;
        for (long c = 0; c < clusters; c++) bench_unit_vector(&cs, cent + (size_t)c * (size_t)dims, dims);
        if (cfile != NULL) {
            size_t clen = 0;
            float *given = bench_file_read(cfile, &clen);
            if (given == NULL) die("cannot read --centroids", NULL);
            size_t rows = clen / (sizeof(float) * (size_t)dims);
            if (rows > (size_t)clusters) rows = (size_t)clusters;
            /* A question is a member of its cluster, not its centre: the centroid is the
             * question moved by the same noise the members get, so the question's nearest
             * chunks are a neighbourhood search, not the cluster handed over whole. */
            for (size_t c = 0; c < rows; c++) {
                float *ce = cent + c * (size_t)dims;
                const float *g = given + c * (size_t)dims;
                bench_unit_vector(&cs, noise, dims);
                double norm = 0;
                for (int j = 0; j < dims; j++) {
                    ce[j] = g[j] + (float)spread * noise[j];
                    norm += (double)ce[j] * ce[j];
                }
                norm = sqrt(norm);
                for (int j = 0; j < dims; j++) ce[j] = (float)(ce[j] / norm);
            }
            free(given);
            given_centroids = (long)rows;
        }
    }
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
        if (clustered) {
            const float *c = cent + (size_t)(bench_rand(&rs) % (uint64_t)clusters) * (size_t)dims;
            bench_unit_vector(&rs, noise, dims);
            double norm = 0;
            for (int j = 0; j < dims; j++) {
                v[j] = c[j] + (float)spread * noise[j];
                norm += (double)v[j] * v[j];
            }
            norm = sqrt(norm);
            for (int j = 0; j < dims; j++) v[j] = (float)(v[j] / norm);
        } else {
            bench_unit_vector(&rs, v, dims);
        }
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

    store_index_opts opts = {.factory = factory, .ef_search = ef,
                             .ef_construction = ef_construction};
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
    printf("{\"n\": %ld, \"dims\": %d, \"factory\": \"%s\", \"dist\": \"%s\", "
           "\"clusters\": %ld, \"spread\": %.3f, \"given_centroids\": %ld, \"sqlite_s\": %.3f, \"index_build_s\": %.3f}\n",
           n, dims, factory, dist, clusters, clustered ? spread : 0.0, given_centroids, (t1 - t0) / 1e3,
           (t2 - t1) / 1e3);
    free(ipath);
    store_index_free(idx);
    store_db_close(db);
    free(vecs);
    free(ids);
    free(cent);
    free(noise);
    return 0;
}
