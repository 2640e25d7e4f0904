/* SPDX-License-Identifier: MIT */
/*
 * test_index.c - unit tests for the FAISS vector index (store_index_*, src/store_index.c) and the
 * C API shim under it: add/search/remove/clear, save and load round trips, and loads that must
 * fail cleanly (missing, truncated, flipped, hostile, wrong dimensions, garbage meta), plus
 * searches from several threads at once; the factory-string index types: HNSW search, removal by
 * tombstones, their save/load, and factory strings ragd refuses. The index file's checksum
 * stream (src/store_index_sum.c): digests as the libraries compute them, format-1 metas (SHA-256,
 * written by older ragd) still loading, and a same-size file paired with another file's meta.
 * Growing the storage ahead of an add (src/store_faiss_grow.cpp) keeps every vector and link.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <faiss/c_api/error_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>

#include "ragd/ragd.h"
#include "ragd/store.h"
#include "ragd/util.h"

#include "../../src/store_grow_int.h"
#include "../../src/store_index_int.h"
#include "test_support.h"
#define XXH_INLINE_ALL
#include <xxhash.h>

#define DIMS 32
#define COUNT 50

typedef struct fixture {
    char dir[256];
    char path[300];     /* dir/vectors.faiss */
    char meta[320];     /* path.meta */
    float vecs[COUNT * DIMS];
    int64_t ids[COUNT];
    store_index *idx;   /* holds all COUNT vectors */
} fixture;

static int fixture_setup(void **state)
{
    fixture *fx = calloc(1, sizeof(*fx));
    if (fx == NULL) return -1;
    if (test_tmpdir_make(fx->dir, sizeof(fx->dir), "index") != 0) {
        free(fx);
        return -1;
    }
    snprintf(fx->path, sizeof(fx->path), "%s/vectors.faiss", fx->dir);
    snprintf(fx->meta, sizeof(fx->meta), "%s.meta", fx->path);
    test_vectors_make(fx->vecs, COUNT, DIMS, 7, 1);
    for (int i = 0; i < COUNT; i++) fx->ids[i] = 1000 + 7 * i;
    if (store_index_new(DIMS, &fx->idx, NULL) != RAGD_OK ||
        store_index_add(fx->idx, COUNT, fx->ids, fx->vecs, NULL) != RAGD_OK) {
        store_index_free(fx->idx);
        rmdir(fx->dir);
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int fixture_teardown(void **state)
{
    fixture *fx = *state;
    store_index_free(fx->idx);
    test_tree_remove(fx->dir);
    free(fx);
    return 0;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Rewrites path.meta so that it matches the current bytes of path (as a hostile or buggy writer
 * would), with the given count and dims. */
static void meta_forge(const fixture *fx, long long count, int dims, uint64_t generation)
{
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(util_file_read(fx->path, 1 << 26, &data, &len, NULL), RAGD_OK);
    char hex[UTIL_SHA256_HEX_LEN + 1];
    util_sha256_hex(data, len, hex);
    free(data);
    char text[512];
    int n = snprintf(text, sizeof(text),
                     "{\"format\":1,\"generation\":%llu,\"count\":%lld,\"dims\":%d,"
                     "\"sha256\":\"%s\"}",
                     (unsigned long long)generation, count, dims, hex);
    assert_int_equal(util_file_write_atomic(fx->meta, text, (size_t)n, NULL), RAGD_OK);
}

static void meta_write_text(const fixture *fx, const char *text)
{
    assert_int_equal(util_file_write_atomic(fx->meta, text, strlen(text), NULL), RAGD_OK);
}

/* Overwrites len bytes at offset in path. */
static void file_patch(const char *path, long offset, const void *bytes, size_t len)
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, offset, SEEK_SET), 0);
    assert_int_equal(fwrite(bytes, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Asserts that loading fx->path fails with want and leaves the outputs untouched. */
static void load_expect_fail(const fixture *fx, int dims, ragd_rc want)
{
    store_index *loaded = NULL;
    uint64_t generation = 12345;
    ragd_err err = {0};
    assert_int_equal(store_index_load(fx->path, dims, &loaded, &generation, &err), want);
    assert_int_equal(err.rc, want);
    assert_true(err.msg[0] != '\0');
    assert_null(loaded);
    assert_int_equal(generation, 12345);
}

static void test_new_rejects_bad_dims(void **state)
{
    (void)state;
    store_index *idx = NULL;
    ragd_err err = {0};
    assert_int_equal(store_index_new(0, &idx, &err), RAGD_ERR_INVALID);
    assert_null(idx);
    assert_int_equal(store_index_new(-3, &idx, NULL), RAGD_ERR_INVALID);
    assert_int_equal(store_index_new(8, &idx, NULL), RAGD_OK);
    assert_non_null(idx);
    assert_int_equal(store_index_count(idx), 0);
    assert_int_equal(store_index_dims(idx), 8);
    assert_int_equal(store_index_bytes(idx), 0);
    store_index_free(idx);
    store_index_free(NULL);
}

static void test_add_search_exact_neighbour(void **state)
{
    fixture *fx = *state;
    assert_int_equal(store_index_count(fx->idx), COUNT);
    assert_int_equal(store_index_dims(fx->idx), DIMS);
    assert_int_equal(store_index_bytes(fx->idx), (size_t)COUNT * (DIMS * 4 + 8));
    for (int i = 0; i < COUNT; i += 7) {
        int64_t ids[5];
        float scores[5];
        size_t found = 0;
        assert_int_equal(store_index_search(fx->idx, fx->vecs + (size_t)i * DIMS, 5, ids, scores,
                                            &found, NULL),
                         RAGD_OK);
        assert_int_equal(found, 5);
        assert_int_equal(ids[0], fx->ids[i]);
        assert_true(fabsf(scores[0] - 1.0f) < 1e-4f);
        for (size_t j = 1; j < found; j++) {
            assert_true(scores[j] <= scores[j - 1]);
            assert_true(ids[j] != ids[0]);
        }
    }
}

static void test_search_k_over_count(void **state)
{
    fixture *fx = *state;
    int64_t ids[COUNT + 20];
    float scores[COUNT + 20];
    size_t found = 0;
    assert_int_equal(store_index_search(fx->idx, fx->vecs, COUNT + 20, ids, scores, &found, NULL),
                     RAGD_OK);
    assert_int_equal(found, COUNT);
    /* Every id comes back exactly once. */
    for (int i = 0; i < COUNT; i++) {
        int seen = 0;
        for (size_t j = 0; j < found; j++) seen += ids[j] == fx->ids[i];
        assert_int_equal(seen, 1);
    }
    found = 99;
    assert_int_equal(store_index_search(fx->idx, fx->vecs, 0, NULL, NULL, &found, NULL), RAGD_OK);
    assert_int_equal(found, 0);
}

static void test_search_empty_index(void **state)
{
    (void)state;
    store_index *idx = NULL;
    assert_int_equal(store_index_new(DIMS, &idx, NULL), RAGD_OK);
    float query[DIMS];
    test_vectors_make(query, 1, DIMS, 3, 1);
    int64_t ids[4];
    float scores[4];
    size_t found = 99;
    assert_int_equal(store_index_search(idx, query, 4, ids, scores, &found, NULL), RAGD_OK);
    assert_int_equal(found, 0);
    store_index_free(idx);
}

static void test_remove(void **state)
{
    fixture *fx = *state;
    int64_t gone[] = {fx->ids[3], fx->ids[10], fx->ids[49], 5, 999999};
    size_t removed = 0;
    assert_int_equal(store_index_remove(fx->idx, 5, gone, &removed, NULL), RAGD_OK);
    assert_int_equal(removed, 3);
    assert_int_equal(store_index_count(fx->idx), COUNT - 3);
    assert_int_equal(store_index_remove(fx->idx, 2, gone, NULL, NULL), RAGD_OK);
    assert_int_equal(store_index_count(fx->idx), COUNT - 3);
    for (int i = 0; i < COUNT; i++) {
        int64_t ids[COUNT];
        float scores[COUNT];
        size_t found = 0;
        assert_int_equal(store_index_search(fx->idx, fx->vecs + (size_t)i * DIMS, COUNT, ids,
                                            scores, &found, NULL),
                         RAGD_OK);
        assert_int_equal(found, COUNT - 3);
        for (size_t j = 0; j < found; j++)
            for (size_t g = 0; g < 3; g++) assert_true(ids[j] != gone[g]);
        int was_removed = i == 3 || i == 10 || i == 49;
        if (!was_removed) assert_int_equal(ids[0], fx->ids[i]);
    }
}

static void test_clear(void **state)
{
    fixture *fx = *state;
    assert_int_equal(store_index_clear(fx->idx, NULL), RAGD_OK);
    assert_int_equal(store_index_count(fx->idx), 0);
    assert_int_equal(store_index_bytes(fx->idx), 0);
    int64_t ids[3];
    float scores[3];
    size_t found = 99;
    assert_int_equal(store_index_search(fx->idx, fx->vecs, 3, ids, scores, &found, NULL), RAGD_OK);
    assert_int_equal(found, 0);
    /* Usable again after a clear. */
    assert_int_equal(store_index_add(fx->idx, 1, fx->ids + 5, fx->vecs + 5 * DIMS, NULL), RAGD_OK);
    assert_int_equal(store_index_search(fx->idx, fx->vecs, 3, ids, scores, &found, NULL), RAGD_OK);
    assert_int_equal(found, 1);
    assert_int_equal(ids[0], fx->ids[5]);
}

static void test_save_load_round_trip(void **state)
{
    fixture *fx = *state;
    ragd_err err = {0};
    assert_int_equal(store_index_save(fx->idx, fx->path, 42, &err), RAGD_OK);
    assert_true(file_exists(fx->path));
    assert_true(file_exists(fx->meta));
    char tmp[340];
    snprintf(tmp, sizeof(tmp), "%s.tmp", fx->path);
    assert_false(file_exists(tmp));

    store_index *loaded = NULL;
    uint64_t generation = 0;
    assert_int_equal(store_index_load(fx->path, DIMS, &loaded, &generation, &err), RAGD_OK);
    assert_int_equal(generation, 42);
    assert_int_equal(store_index_count(loaded), COUNT);
    assert_int_equal(store_index_dims(loaded), DIMS);
    float queries[3 * DIMS];
    test_vectors_make(queries, 3, DIMS, 99, 1);
    for (int q = 0; q < 3; q++) {
        int64_t a_ids[10], b_ids[10];
        float a_scores[10], b_scores[10];
        size_t a = 0, b = 0;
        assert_int_equal(store_index_search(fx->idx, queries + q * DIMS, 10, a_ids, a_scores, &a,
                                            NULL),
                         RAGD_OK);
        assert_int_equal(store_index_search(loaded, queries + q * DIMS, 10, b_ids, b_scores, &b,
                                            NULL),
                         RAGD_OK);
        assert_int_equal(a, 10);
        assert_int_equal(b, 10);
        assert_memory_equal(a_ids, b_ids, sizeof(a_ids));
        assert_memory_equal(a_scores, b_scores, sizeof(a_scores));
    }
    /* A loaded index still removes by id (IndexIDMap2's reverse map was rebuilt). */
    size_t removed = 0;
    assert_int_equal(store_index_remove(loaded, 1, fx->ids + 7, &removed, NULL), RAGD_OK);
    assert_int_equal(removed, 1);

    /* A second save replaces the pair; the generation follows. */
    assert_int_equal(store_index_save(loaded, fx->path, 43, NULL), RAGD_OK);
    store_index_free(loaded);
    loaded = NULL;
    assert_int_equal(store_index_load(fx->path, DIMS, &loaded, &generation, NULL), RAGD_OK);
    assert_int_equal(generation, 43);
    assert_int_equal(store_index_count(loaded), COUNT - 1);
    store_index_free(loaded);
}

static void test_save_load_empty(void **state)
{
    fixture *fx = *state;
    assert_int_equal(store_index_clear(fx->idx, NULL), RAGD_OK);
    assert_int_equal(store_index_save(fx->idx, fx->path, 0, NULL), RAGD_OK);
    store_index *loaded = NULL;
    uint64_t generation = 7;
    assert_int_equal(store_index_load(fx->path, DIMS, &loaded, &generation, NULL), RAGD_OK);
    assert_int_equal(generation, 0);
    assert_int_equal(store_index_count(loaded), 0);
    store_index_free(loaded);
}

static void test_load_missing(void **state)
{
    fixture *fx = *state;
    load_expect_fail(fx, DIMS, RAGD_ERR_NOT_FOUND);
    assert_int_equal(store_index_save(fx->idx, fx->path, 1, NULL), RAGD_OK);
    assert_int_equal(unlink(fx->path), 0);
    load_expect_fail(fx, DIMS, RAGD_ERR_NOT_FOUND);
    assert_int_equal(store_index_save(fx->idx, fx->path, 1, NULL), RAGD_OK);
    assert_int_equal(unlink(fx->meta), 0);
    load_expect_fail(fx, DIMS, RAGD_ERR_NOT_FOUND);
}

static void test_load_truncated(void **state)
{
    fixture *fx = *state;
    assert_int_equal(store_index_save(fx->idx, fx->path, 1, NULL), RAGD_OK);
    struct stat st;
    assert_int_equal(stat(fx->path, &st), 0);
    assert_int_equal(truncate(fx->path, st.st_size / 2), 0);
    load_expect_fail(fx, DIMS, RAGD_ERR_INDEX);
    /* Even with a meta that matches the truncated bytes it fails cleanly. */
    meta_forge(fx, COUNT, DIMS, 1);
    load_expect_fail(fx, DIMS, RAGD_ERR_INDEX);
    /* And with a meta whose count fits the truncated size, the layout check catches it. */
    assert_int_equal(truncate(fx->path, 90 + 10 * (DIMS * 4 + 8)), 0);
    meta_forge(fx, 10, DIMS, 1);
    load_expect_fail(fx, DIMS, RAGD_ERR_INDEX);
}

static void test_load_flipped_byte(void **state)
{
    fixture *fx = *state;
    assert_int_equal(store_index_save(fx->idx, fx->path, 1, NULL), RAGD_OK);
    unsigned char byte = 0;
    FILE *f = fopen(fx->path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 200, SEEK_SET), 0);
    assert_int_equal(fread(&byte, 1, 1, f), 1);
    fclose(f);
    byte ^= 0x10;
    file_patch(fx->path, 200, &byte, 1);
    ragd_err err = {0};
    store_index *loaded = NULL;
    assert_int_equal(store_index_load(fx->path, DIMS, &loaded, NULL, &err), RAGD_ERR_INDEX);
    assert_non_null(strstr(err.msg, "checksum (XXH3-64)"));
    assert_null(loaded);
}

/* The last byte of a flat file (an id, after every vector) is covered by the checksum too, and
 * so is the first (FAISS's header). */
static void test_load_flipped_first_last_byte(void **state)
{
    fixture *fx = *state;
    struct stat st;
    for (int last = 0; last <= 1; last++) {
        assert_int_equal(store_index_save(fx->idx, fx->path, 1, NULL), RAGD_OK);
        assert_int_equal(stat(fx->path, &st), 0);
        long at = last ? (long)st.st_size - 1 : 84; /* 84: inside the first vector */
        unsigned char byte = 0;
        FILE *f = fopen(fx->path, "rb");
        assert_non_null(f);
        assert_int_equal(fseek(f, at, SEEK_SET), 0);
        assert_int_equal(fread(&byte, 1, 1, f), 1);
        fclose(f);
        byte ^= 0x01;
        file_patch(fx->path, at, &byte, 1);
        load_expect_fail(fx, DIMS, RAGD_ERR_INDEX);
    }
}

/* A crash between writing the index file and its meta leaves a file whose meta describes the
 * previous file. With the same vector count the sizes agree: the checksum must tell them apart. */
static void test_load_stale_meta_same_size(void **state)
{
    fixture *fx = *state;
    assert_int_equal(store_index_save(fx->idx, fx->path, 1, NULL), RAGD_OK);
    char *old_meta = NULL;
    size_t old_len = 0;
    assert_int_equal(util_file_read(fx->meta, 1 << 20, &old_meta, &old_len, NULL), RAGD_OK);
    /* Another index of the same size: one vector replaced. */
    float v[DIMS];
    test_vectors_make(v, 1, DIMS, 12345, 1);
    int64_t id = fx->ids[3];
    assert_int_equal(store_index_remove(fx->idx, 1, &id, NULL, NULL), RAGD_OK);
    assert_int_equal(store_index_add(fx->idx, 1, &id, v, NULL), RAGD_OK);
    assert_int_equal(store_index_save(fx->idx, fx->path, 2, NULL), RAGD_OK);
    assert_int_equal(util_file_write_atomic(fx->meta, old_meta, old_len, NULL), RAGD_OK);
    free(old_meta);
    ragd_err err = {0};
    store_index *loaded = NULL;
    assert_int_equal(store_index_load(fx->path, DIMS, &loaded, NULL, &err), RAGD_ERR_INDEX);
    assert_non_null(strstr(err.msg, "does not match its meta"));
    assert_null(loaded);
}

/* What save writes: format 2 with a 16-digit XXH3 of the file's bytes, and no SHA-256. */
static void test_save_meta_xxh3(void **state)
{
    fixture *fx = *state;
    assert_int_equal(store_index_save(fx->idx, fx->path, 9, NULL), RAGD_OK);
    char *data = NULL, *meta = NULL;
    size_t len = 0, mlen = 0;
    assert_int_equal(util_file_read(fx->path, 1 << 26, &data, &len, NULL), RAGD_OK);
    assert_int_equal(util_file_read(fx->meta, 1 << 20, &meta, &mlen, NULL), RAGD_OK);
    char want[64];
    snprintf(want, sizeof want, "\"xxh3\":\"%016llx\"",
             (unsigned long long)XXH3_64bits(data, len));
    assert_non_null(strstr(meta, want));
    assert_non_null(strstr(meta, "\"format\":2"));
    assert_null(strstr(meta, "sha256"));
    free(data);
    free(meta);
}

/* A store saved by an older ragd has a format-1 meta with the SHA-256 of the file: it still
 * loads (checked in the same pass), and a flipped byte still fails it, naming SHA-256. */
static void test_load_format1_sha256(void **state)
{
    fixture *fx = *state;
    assert_int_equal(store_index_save(fx->idx, fx->path, 1, NULL), RAGD_OK);
    meta_forge(fx, COUNT, DIMS, 77);
    store_index *loaded = NULL;
    uint64_t generation = 0;
    ragd_err err = {0};
    assert_int_equal(store_index_load(fx->path, DIMS, &loaded, &generation, &err), RAGD_OK);
    assert_int_equal(generation, 77);
    assert_int_equal(store_index_count(loaded), COUNT);
    store_index_free(loaded);
    unsigned char byte = 0x77;
    file_patch(fx->path, 300, &byte, 1);
    loaded = NULL;
    assert_int_equal(store_index_load(fx->path, DIMS, &loaded, &generation, &err), RAGD_ERR_INDEX);
    assert_non_null(strstr(err.msg, "checksum (SHA-256)"));
    assert_null(loaded);
    /* A format-2 meta carrying a sha256 instead of an xxh3 is not valid. */
    meta_write_text(fx, "{\"format\":2,\"generation\":1,\"count\":50,\"dims\":32,\"sha256\":"
                        "\"0000000000000000000000000000000000000000000000000000000000000000\"}");
    load_expect_fail(fx, DIMS, RAGD_ERR_INDEX);
}

/* The checksum stream: what goes through it is written and read unchanged, and its digests are
 * the libraries' own (XXH3_64bits, SHA-256), with a partial read completed by the drain. */
static void test_sum_stream(void **state)
{
    fixture *fx = *state;
    size_t n = 3 * 1024 * 1024 + 17; /* more than one stream buffer */
    unsigned char *data = malloc(n), *back = malloc(n);
    assert_non_null(data);
    assert_non_null(back);
    for (size_t i = 0; i < n; i++) data[i] = (unsigned char)(i * 131 + (i >> 9));
    FILE *f = fopen(fx->path, "w+b");
    assert_non_null(f);
    store_sum *sum = NULL;
    assert_int_equal(store_sum_new(RAGD_SUM_XXH3, fileno(f), &sum, NULL), RAGD_OK);
    FILE *w = store_sum_stream(sum, "w");
    assert_non_null(w);
    assert_int_equal(fwrite(data, 1, 5, w), 5);
    assert_int_equal(fwrite(data + 5, 1, n - 5, w), n - 5);
    assert_int_equal(fclose(w), 0);
    assert_int_equal(store_sum_bytes(sum), n);
    assert_false(store_sum_failed(sum));
    char hex[RAGD_SUM_HEX_MAX], want[RAGD_SUM_HEX_MAX];
    assert_int_equal(store_sum_hex(sum, hex, NULL), RAGD_OK);
    snprintf(want, sizeof want, "%016llx", (unsigned long long)XXH3_64bits(data, n));
    assert_string_equal(hex, want);
    store_sum_free(sum);

    /* Read back half through a SHA-256 stream, then drain the rest. */
    assert_int_equal(store_sum_new(RAGD_SUM_SHA256, fileno(f), &sum, NULL), RAGD_OK);
    FILE *r = store_sum_stream(sum, "r");
    assert_non_null(r);
    assert_int_equal(fread(back, 1, n / 2, r), n / 2);
    assert_memory_equal(back, data, n / 2);
    assert_int_equal(fclose(r), 0);
    assert_int_equal(store_sum_drain(sum, NULL), RAGD_OK);
    assert_int_equal(store_sum_bytes(sum), n);
    assert_int_equal(store_sum_hex(sum, hex, NULL), RAGD_OK);
    util_sha256_hex((const char *)data, n, want);
    assert_string_equal(hex, want);
    store_sum_free(sum);
    store_sum_free(NULL);
    assert_int_equal(store_sum_new((store_sum_kind)9, fileno(f), &sum, NULL), RAGD_ERR_INVALID);
    fclose(f);

    /* A write that fails (here: a descriptor opened read-only; ENOSPC on a full disk) fails the
     * stream and keeps the failing errno for the message. */
    f = fopen(fx->path, "rb");
    assert_non_null(f);
    assert_int_equal(store_sum_new(RAGD_SUM_XXH3, fileno(f), &sum, NULL), RAGD_OK);
    assert_int_equal(store_sum_errno(sum), 0);
    w = store_sum_stream(sum, "w");
    assert_non_null(w);
    assert_true(fwrite(data, 1, n, w) < n);
    fclose(w); /* stdio may already have dropped the failed buffer: the stream knows */
    assert_true(store_sum_failed(sum));
    assert_int_equal(store_sum_errno(sum), EBADF);
    store_sum_free(sum);
    fclose(f);
    free(data);
    free(back);
}

/* The direct write path's injected pwrite (store_sum_direct_pwrite): which call misbehaves, and
 * how. */
static int direct_calls, direct_fail_at, direct_fail_errno, direct_short_at;

static ssize_t direct_pwrite_fake(int fd, const void *buf, size_t size, off_t at)
{
    int call = ++direct_calls;
    if (call == direct_fail_at) {
        errno = direct_fail_errno;
        return -1;
    }
    ssize_t put = pwrite(fd, buf, size, at);
    /* said short by 100 bytes (O_DIRECT takes no unaligned length): the offset is unaligned */
    return call == direct_short_at && put > 100 ? put - 100 : put;
}

/* Writes n bytes of data through a direct stream (odd-sized pieces), reads the file back.
 * Returns: 1 when direct writing was on; *hex the digest, *failed, *err_no the stream's outcome. */
static int direct_write(const fixture *fx, const unsigned char *data, size_t n, char *hex,
                        int *failed, int *err_no, uint64_t *direct_bytes)
{
    FILE *f = fopen(fx->path, "w+b");
    assert_non_null(f);
    store_sum *sum = NULL;
    assert_int_equal(store_sum_new(RAGD_SUM_XXH3, fileno(f), &sum, NULL), RAGD_OK);
    int on = store_sum_direct(sum, fx->path);
    FILE *w = store_sum_stream(sum, "w");
    assert_non_null(w);
    size_t piece[] = {5, 4091, 700000, 1 << 20, 3 << 20, 13, 1 << 21};
    for (size_t off = 0, i = 0; off < n; i++) {
        size_t m = piece[i % (sizeof piece / sizeof piece[0])];
        if (m > n - off) m = n - off;
        if (fwrite(data + off, 1, m, w) != m) break;
        off += m;
    }
    int closed = fclose(w);
    *failed = store_sum_failed(sum);
    *err_no = store_sum_errno(sum);
    *direct_bytes = store_sum_direct_bytes(sum);
    assert_true(*failed ? closed != 0 : closed == 0);
    if (!*failed) {
        assert_int_equal(store_sum_bytes(sum), n);
        assert_int_equal(store_sum_hex(sum, hex, NULL), RAGD_OK);
    }
    store_sum_free(sum);
    fclose(f);
    return on;
}

static void assert_file_is(const char *path, const void *data, size_t n)
{
    char *back = NULL;
    size_t len = 0;
    assert_int_equal(util_file_read(path, 1 << 26, &back, &len, NULL), RAGD_OK);
    assert_int_equal(len, n);
    assert_memory_equal(back, data, n);
    free(back);
}

/* A write stream around the page cache (store_sum_direct) writes the same bytes and digest as a
 * plain one; the aligned blocks go with O_DIRECT where the file system takes it, the last partial
 * block through the page cache; a refusal (EINVAL), a short unaligned write and a failure
 * (ENOSPC) each behave as documented. */
static void test_sum_stream_direct(void **state)
{
    fixture *fx = *state;
    size_t n = 5 * 1024 * 1024 + 3 * 4096 + 17; /* several staging blocks and a partial block */
    unsigned char *data = malloc(n);
    assert_non_null(data);
    for (size_t i = 0; i < n; i++) data[i] = (unsigned char)(i * 151 + (i >> 11));
    char want[RAGD_SUM_HEX_MAX], hex[RAGD_SUM_HEX_MAX];
    snprintf(want, sizeof want, "%016llx", (unsigned long long)XXH3_64bits(data, n));
    int failed = 0, err_no = 0;
    uint64_t direct = 0;
    /* Can this directory's file system take O_DIRECT at all? */
    FILE *probe = fopen(fx->path, "wb");
    assert_non_null(probe);
    fclose(probe);
    int fd = open(fx->path, O_WRONLY | O_DIRECT);
    int supported = fd >= 0;
    if (fd >= 0) close(fd);
    else print_message("# O_DIRECT not available in %s: only the page-cache path runs\n", fx->dir);

    direct_calls = direct_fail_at = direct_short_at = 0;
    store_sum_direct_pwrite = direct_pwrite_fake;
    assert_int_equal(direct_write(fx, data, n, hex, &failed, &err_no, &direct), supported);
    assert_false(failed);
    assert_string_equal(hex, want);
    assert_file_is(fx->path, data, n);
    assert_int_equal(direct, supported ? n & ~(uint64_t)4095 : 0);

    if (supported) {
        /* The file system refuses the second block: the rest goes through the page cache. */
        direct_calls = 0;
        direct_fail_at = 2;
        direct_fail_errno = EINVAL;
        assert_int_equal(direct_write(fx, data, n, hex, &failed, &err_no, &direct), 1);
        assert_false(failed);
        assert_string_equal(hex, want);
        assert_file_is(fx->path, data, n);
        assert_int_equal(direct, 1024 * 1024);
        assert_int_equal(direct_calls, 2);

        /* A short write that leaves the offset unaligned: the rest through the page cache. */
        direct_calls = direct_fail_at = 0;
        direct_short_at = 1;
        assert_int_equal(direct_write(fx, data, n, hex, &failed, &err_no, &direct), 1);
        assert_false(failed);
        assert_string_equal(hex, want);
        assert_file_is(fx->path, data, n);
        assert_int_equal(direct, 1024 * 1024 - 100);
        assert_int_equal(direct_calls, 1);

        /* A full disk fails the stream with ENOSPC, whichever block meets it. */
        direct_calls = direct_short_at = 0;
        direct_fail_at = 3;
        direct_fail_errno = ENOSPC;
        direct_write(fx, data, n, hex, &failed, &err_no, &direct);
        assert_true(failed);
        assert_int_equal(err_no, ENOSPC);
        assert_int_equal(direct, 2 * 1024 * 1024);
    }
    store_sum_direct_pwrite = pwrite;

    /* store_index_save writes the index through it: same file as FAISS's own writer. */
    assert_int_equal(store_index_save(fx->idx, fx->path, 1, NULL), RAGD_OK);
    FaissIndex *back = NULL;
    FILE *rf = fopen(fx->path, "rb");
    assert_non_null(rf);
    assert_int_equal(faiss_read_index(rf, 0, &back), 0);
    fclose(rf);
    char plain[320];
    snprintf(plain, sizeof plain, "%s.plain", fx->path);
    FILE *wf = fopen(plain, "wb");
    assert_non_null(wf);
    assert_int_equal(faiss_write_index(back, wf), 0);
    assert_int_equal(fclose(wf), 0);
    faiss_Index_free(back);
    char *bytes = NULL;
    size_t len = 0;
    assert_int_equal(util_file_read(plain, 1 << 26, &bytes, &len, NULL), RAGD_OK);
    assert_file_is(fx->path, bytes, len);
    free(bytes);
    unlink(plain);
    free(data);
}

static void test_load_hostile_header(void **state)
{
    fixture *fx = *state;
    /* A file whose hash and size match the meta but whose vector array claims 2^39 floats:
     * FAISS would try to allocate it; the layout check must refuse first. */
    assert_int_equal(store_index_save(fx->idx, fx->path, 1, NULL), RAGD_OK);
    uint64_t huge = (uint64_t)1 << 39;
    file_patch(fx->path, 74, &huge, sizeof(huge));
    meta_forge(fx, COUNT, DIMS, 1);
    load_expect_fail(fx, DIMS, RAGD_ERR_INDEX);
    /* A different index type tag. */
    assert_int_equal(store_index_save(fx->idx, fx->path, 1, NULL), RAGD_OK);
    file_patch(fx->path, 37, "IxF2", 4);
    meta_forge(fx, COUNT, DIMS, 1);
    load_expect_fail(fx, DIMS, RAGD_ERR_INDEX);
    /* An ntotal that disagrees with the meta. */
    assert_int_equal(store_index_save(fx->idx, fx->path, 1, NULL), RAGD_OK);
    int64_t ntotal = COUNT + 1;
    file_patch(fx->path, 8, &ntotal, sizeof(ntotal));
    meta_forge(fx, COUNT, DIMS, 1);
    load_expect_fail(fx, DIMS, RAGD_ERR_INDEX);
}

static void test_load_wrong_dims(void **state)
{
    fixture *fx = *state;
    assert_int_equal(store_index_save(fx->idx, fx->path, 1, NULL), RAGD_OK);
    ragd_err err = {0};
    store_index *loaded = NULL;
    assert_int_equal(store_index_load(fx->path, DIMS * 2, &loaded, NULL, &err), RAGD_ERR_INDEX);
    assert_non_null(strstr(err.msg, "dimensions"));
    assert_null(loaded);
    /* A meta that lies about dims while the file holds DIMS. */
    meta_forge(fx, COUNT / 2, DIMS * 2, 1);
    load_expect_fail(fx, DIMS * 2, RAGD_ERR_INDEX);
}

static void test_load_meta_garbage(void **state)
{
    fixture *fx = *state;
    assert_int_equal(store_index_save(fx->idx, fx->path, 1, NULL), RAGD_OK);
    static const char *const bad[] = {
        "not json {",
        "",
        "[1,2,3]",
        "{\"format\":1,\"generation\":1,\"count\":50,\"dims\":32}",
        "{\"format\":2,\"generation\":1,\"count\":50,\"dims\":32,\"sha256\":\"00\"}",
        "{\"format\":1,\"generation\":-1,\"count\":50,\"dims\":32,\"sha256\":\"00\"}",
        "{\"format\":1,\"generation\":1,\"count\":\"50\",\"dims\":32,\"sha256\":\"00\"}",
        "{\"format\":1,\"generation\":1,\"count\":50,\"dims\":32,\"sha256\":\"xyz\"}",
        "{\"format\":1,\"generation\":1,\"count\":50,\"dims\":32,\"sha256\":"
        "\"0000000000000000000000000000000000000000000000000000000000000000\"}",
        "{\"format\":1,\"generation\":1,\"count\":9223372036854775807,\"dims\":32,\"sha256\":"
        "\"0000000000000000000000000000000000000000000000000000000000000000\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        meta_write_text(fx, bad[i]);
        load_expect_fail(fx, DIMS, RAGD_ERR_INDEX);
    }
    /* The forged-but-correct meta loads, so the cases above failed for their own reason. */
    meta_forge(fx, COUNT, DIMS, 9);
    store_index *loaded = NULL;
    uint64_t generation = 0;
    assert_int_equal(store_index_load(fx->path, DIMS, &loaded, &generation, NULL), RAGD_OK);
    assert_int_equal(generation, 9);
    store_index_free(loaded);
}

static void test_faiss_errors_are_caught(void **state)
{
    fixture *fx = *state;
    /* Straight through the C API shim: garbage makes FAISS throw; the shim must return a
     * negative code and keep the message. */
    FILE *f = fopen(fx->path, "w+b");
    assert_non_null(f);
    fputs("this is not a faiss index at all", f);
    rewind(f);
    FaissIndex *index = NULL;
    int rc = faiss_read_index(f, 0, &index);
    fclose(f);
    assert_true(rc < 0);
    assert_null(index);
    const char *msg = faiss_get_last_error();
    assert_non_null(msg);
    assert_true(msg[0] != '\0');
}

typedef struct search_job {
    const fixture *fx;
    int start;
    int failures;
} search_job;

static void *search_thread(void *arg)
{
    search_job *job = arg;
    for (int round = 0; round < 100; round++) {
        int i = (job->start + round) % COUNT;
        int64_t ids[4];
        float scores[4];
        size_t found = 0;
        ragd_rc rc = store_index_search(job->fx->idx, job->fx->vecs + (size_t)i * DIMS, 4, ids,
                                        scores, &found, NULL);
        if (rc != RAGD_OK || found != 4 || ids[0] != job->fx->ids[i] ||
            fabsf(scores[0] - 1.0f) > 1e-4f)
            job->failures++;
    }
    return NULL;
}

static void test_concurrent_search(void **state)
{
    fixture *fx = *state;
    pthread_t threads[4];
    search_job jobs[4];
    for (int t = 0; t < 4; t++) {
        jobs[t] = (search_job){.fx = fx, .start = t * 13, .failures = 0};
        assert_int_equal(pthread_create(&threads[t], NULL, search_thread, &jobs[t]), 0);
    }
    for (int t = 0; t < 4; t++) assert_int_equal(pthread_join(threads[t], NULL), 0);
    for (int t = 0; t < 4; t++) assert_int_equal(jobs[t].failures, 0);
}


/* ---- index factory: HNSW with tombstones ------------------------------------------------- */

static const store_index_opts hnsw_opts = {.factory = "HNSW16", .ef_search = 64};

/* Returns: a new HNSW index holding the fixture's vectors. */
static store_index *hnsw_filled(const fixture *fx)
{
    store_index *h = NULL;
    assert_int_equal(store_index_new_with(DIMS, &hnsw_opts, &h, NULL), RAGD_OK);
    assert_int_equal(store_index_add(h, COUNT, fx->ids, fx->vecs, NULL), RAGD_OK);
    assert_string_equal(store_index_factory(h), "HNSW16");
    return h;
}

/* Asserts that a k = COUNT search for every vector returns only ids for which live[] is set,
 * each once, exactly live_n of them, and the vector itself first when it is live. */
static void hnsw_check(const fixture *fx, const store_index *h, const int *live, size_t live_n)
{
    int64_t ids[COUNT];
    float scores[COUNT];
    for (int q = 0; q < COUNT; q++) {
        size_t found = 0;
        assert_int_equal(store_index_search(h, fx->vecs + q * DIMS, COUNT, ids, scores, &found,
                                            NULL), RAGD_OK);
        assert_int_equal(found, live_n);
        int seen[COUNT] = {0};
        for (size_t i = 0; i < found; i++) {
            int pos = -1;
            for (int j = 0; j < COUNT; j++)
                if (fx->ids[j] == ids[i]) pos = j;
            assert_true(pos >= 0);
            assert_true(live[pos]);
            assert_false(seen[pos]);
            seen[pos] = 1;
        }
        if (live[q]) {
            assert_int_equal(ids[0], fx->ids[q]);
            assert_true(fabsf(scores[0] - 1.0f) < 1e-4f);
        }
    }
}

static void test_hnsw_search(void **state)
{
    fixture *fx = *state;
    store_index *h = hnsw_filled(fx);
    int live[COUNT];
    for (int i = 0; i < COUNT; i++) live[i] = 1;
    assert_int_equal(store_index_count(h), COUNT);
    hnsw_check(fx, h, live, COUNT);
    store_index_free(h);
}

static void test_hnsw_remove_tombstones(void **state)
{
    fixture *fx = *state;
    store_index *h = hnsw_filled(fx);
    int live[COUNT];
    for (int i = 0; i < COUNT; i++) live[i] = 1;
    /* Three ids, one of them twice, and one id that was never added. */
    int64_t gone[] = {fx->ids[3], fx->ids[17], fx->ids[3], fx->ids[40], 99};
    size_t removed = 0;
    assert_int_equal(store_index_remove(h, 5, gone, &removed, NULL), RAGD_OK);
    assert_int_equal(removed, 3);
    live[3] = live[17] = live[40] = 0;
    assert_int_equal(store_index_count(h), COUNT - 3);
    assert_int_equal(store_index_tombstones(h), 3);
    assert_false(store_index_rebuild_due(h)); /* 3 of 50 is under a tenth */
    hnsw_check(fx, h, live, COUNT - 3);
    /* Removing them again removes nothing. */
    assert_int_equal(store_index_remove(h, 1, &fx->ids[17], &removed, NULL), RAGD_OK);
    assert_int_equal(removed, 0);
    /* Past a tenth of the index a rebuild is due; searches stay right until then. */
    int64_t more[] = {fx->ids[0], fx->ids[1], fx->ids[2]};
    assert_int_equal(store_index_remove(h, 3, more, &removed, NULL), RAGD_OK);
    assert_int_equal(removed, 3);
    live[0] = live[1] = live[2] = 0;
    assert_true(store_index_rebuild_due(h));
    hnsw_check(fx, h, live, COUNT - 6);
    /* An id removed and added again (a new vector under an old id) is live once. */
    assert_int_equal(store_index_add(h, 1, &fx->ids[0], fx->vecs, NULL), RAGD_OK);
    live[0] = 1;
    assert_int_equal(store_index_count(h), COUNT - 5);
    hnsw_check(fx, h, live, COUNT - 5);
    assert_int_equal(store_index_remove(h, 1, &fx->ids[0], &removed, NULL), RAGD_OK);
    assert_int_equal(removed, 1);
    live[0] = 0;
    hnsw_check(fx, h, live, COUNT - 6);
    assert_int_equal(store_index_clear(h, NULL), RAGD_OK);
    assert_int_equal(store_index_count(h), 0);
    assert_int_equal(store_index_tombstones(h), 0);
    store_index_free(h);
}

static void test_hnsw_ids_in_any_order(void **state)
{
    fixture *fx = *state;
    store_index *h = NULL;
    assert_int_equal(store_index_new_with(DIMS, &hnsw_opts, &h, NULL), RAGD_OK);
    /* Descending ids: lookups cannot use binary search and must still find them. */
    int64_t ids[COUNT];
    for (int i = 0; i < COUNT; i++) ids[i] = fx->ids[COUNT - 1 - i];
    float vecs[COUNT * DIMS];
    for (int i = 0; i < COUNT; i++)
        memcpy(vecs + i * DIMS, fx->vecs + (COUNT - 1 - i) * DIMS, sizeof(float) * DIMS);
    assert_int_equal(store_index_add(h, COUNT, ids, vecs, NULL), RAGD_OK);
    size_t removed = 0;
    assert_int_equal(store_index_remove(h, 1, &fx->ids[5], &removed, NULL), RAGD_OK);
    assert_int_equal(removed, 1);
    int live[COUNT];
    for (int i = 0; i < COUNT; i++) live[i] = i != 5;
    hnsw_check(fx, h, live, COUNT - 1);
    store_index_free(h);
}

static void test_hnsw_save_load(void **state)
{
    fixture *fx = *state;
    store_index *h = hnsw_filled(fx);
    int64_t gone[] = {fx->ids[9], fx->ids[21]};
    assert_int_equal(store_index_remove(h, 2, gone, NULL, NULL), RAGD_OK);
    assert_int_equal(store_index_save(h, fx->path, 12, NULL), RAGD_OK);
    store_index_free(h);

    store_index *back = NULL;
    uint64_t gen = 0;
    assert_int_equal(store_index_load_with(fx->path, DIMS, &hnsw_opts, &back, &gen, NULL),
                     RAGD_OK);
    assert_int_equal(gen, 12);
    assert_int_equal(store_index_count(back), COUNT - 2);
    assert_int_equal(store_index_tombstones(back), 2);
    int live[COUNT];
    for (int i = 0; i < COUNT; i++) live[i] = i != 9 && i != 21;
    hnsw_check(fx, back, live, COUNT - 2);
    store_index_free(back);

    /* Another configured type refuses the file, so the caller rebuilds. */
    ragd_err err = {0};
    store_index *flat = NULL;
    assert_int_equal(store_index_load(fx->path, DIMS, &flat, &gen, &err), RAGD_ERR_INDEX);
    assert_null(flat);
    assert_non_null(strstr(err.msg, "HNSW16"));
    store_index_opts other = {.factory = "HNSW32", .ef_search = 64};
    assert_int_equal(store_index_load_with(fx->path, DIMS, &other, &flat, &gen, NULL),
                     RAGD_ERR_INDEX);
    /* And a flat file is refused by an HNSW configuration. */
    assert_int_equal(store_index_save(fx->idx, fx->path, 3, NULL), RAGD_OK);
    assert_int_equal(store_index_load_with(fx->path, DIMS, &hnsw_opts, &flat, &gen, NULL),
                     RAGD_ERR_INDEX);
}

static void test_hnsw_load_corrupt(void **state)
{
    fixture *fx = *state;
    store_index *h = hnsw_filled(fx);
    int64_t gone = fx->ids[4];
    assert_int_equal(store_index_remove(h, 1, &gone, NULL, NULL), RAGD_OK);
    assert_int_equal(store_index_save(h, fx->path, 5, NULL), RAGD_OK);
    store_index_free(h);
    store_index *back = NULL;
    uint64_t gen = 0;
    /* A flipped byte fails the SHA-256. */
    unsigned char x = 0x5a;
    file_patch(fx->path, 200, &x, 1);
    assert_int_equal(store_index_load_with(fx->path, DIMS, &hnsw_opts, &back, &gen, NULL),
                     RAGD_ERR_INDEX);
    assert_null(back);
    /* Tombstones past the end of the index, or not ascending, are refused. */
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(util_file_read(fx->meta, 1 << 20, &text, &len, NULL), RAGD_OK);
    char *t = strstr(text, "\"tombstones\":[");
    assert_non_null(t);
    free(text);
    meta_write_text(fx, "{\"format\":1,\"generation\":5,\"count\":49,\"dims\":32,\"sha256\":"
                        "\"0000000000000000000000000000000000000000000000000000000000000000\","
                        "\"factory\":\"HNSW16\",\"bytes\":10,\"tombstones\":[3,2]}");
    ragd_err err = {0};
    assert_int_equal(store_index_load_with(fx->path, DIMS, &hnsw_opts, &back, &gen, &err),
                     RAGD_ERR_INDEX);
    assert_non_null(strstr(err.msg, "tombstones"));
}

static void test_factory_rejected(void **state)
{
    (void)state;
    static const char *const bad[] = {"IVF16,Flat", "HNSW32,PQ8", "HNSWx", "IDMap,HNSW32",
                                      "PQ4"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        store_index_opts o = {.factory = bad[i], .ef_search = 8};
        store_index *h = NULL;
        ragd_err err = {0};
        assert_int_equal(store_index_new_with(DIMS, &o, &h, &err), RAGD_ERR_CONFIG);
        assert_null(h);
        assert_non_null(strstr(err.msg, "index_factory"));
    }
    /* "Flat" and an empty string are the default exact index. */
    store_index_opts flat = {.factory = "", .ef_search = 8};
    store_index *h = NULL;
    assert_int_equal(store_index_new_with(DIMS, &flat, &h, NULL), RAGD_OK);
    assert_string_equal(store_index_factory(h), "Flat");
    store_index_free(h);
}

/* Recall@10 of h against the exact top 10 of flat over nq queries, each search with ef (0: the
 * index's configured efSearch, through store_index_search). */
static double hnsw_recall(const store_index *h, const store_index *flat, const float *queries,
                          int nq, int ef)
{
    int hits = 0;
    for (int q = 0; q < nq; q++) {
        int64_t got[10], want[10];
        float s1[10], s2[10];
        size_t n1 = 0, n2 = 0;
        const float *qv = queries + (size_t)q * DIMS;
        if (ef > 0)
            assert_int_equal(store_index_search_ef(h, qv, 10, ef, got, s1, &n1, NULL), RAGD_OK);
        else
            assert_int_equal(store_index_search(h, qv, 10, got, s1, &n1, NULL), RAGD_OK);
        assert_int_equal(store_index_search(flat, qv, 10, want, s2, &n2, NULL), RAGD_OK);
        assert_int_equal(n1, 10);
        for (size_t i = 0; i < n1; i++)
            for (size_t j = 0; j < n2; j++) hits += got[i] == want[j];
    }
    return (double)hits / (10.0 * nq);
}

/* A per-search efSearch (a request's ef_search) widens that search only: with the configured
 * efSearch at its minimum, random vectors (HNSW's worst case) lose neighbours; the same index
 * searched with ef_search = the whole store finds the exact top 10, and the next plain search is
 * back to the configured breadth. With tombstones the per-search value still skips them. */
static void test_hnsw_ef_search_per_call(void **state)
{
    (void)state;
    enum { N = 3000, NQ = 60 };
    float *vecs = malloc(sizeof(float) * N * DIMS), *queries = malloc(sizeof(float) * NQ * DIMS);
    int64_t *ids = malloc(sizeof(int64_t) * N);
    assert_non_null(vecs);
    assert_non_null(queries);
    assert_non_null(ids);
    test_vectors_make(vecs, N, DIMS, 11, 1);
    test_vectors_make(queries, NQ, DIMS, 12, 1);
    for (int i = 0; i < N; i++) ids[i] = i + 1;
    store_index_opts narrow = {.factory = "HNSW16", .ef_search = 1};
    store_index *h = NULL, *flat = NULL;
    assert_int_equal(store_index_new_with(DIMS, &narrow, &h, NULL), RAGD_OK);
    assert_int_equal(store_index_new(DIMS, &flat, NULL), RAGD_OK);
    assert_int_equal(store_index_add(h, N, ids, vecs, NULL), RAGD_OK);
    assert_int_equal(store_index_add(flat, N, ids, vecs, NULL), RAGD_OK);
    double low = hnsw_recall(h, flat, queries, NQ, 0);
    double high = hnsw_recall(h, flat, queries, NQ, N);
    assert_true(high >= 0.99);
    assert_true(low < high);
    assert_true(hnsw_recall(h, flat, queries, NQ, 0) == low); /* nothing stuck */
    /* The flat index ignores it: still exact. */
    assert_true(hnsw_recall(flat, flat, queries, NQ, 5) == 1.0);
    /* Tombstones: remove every third id from both; the wide search stays exact. */
    int64_t gone[N / 3];
    for (int i = 0; i < N / 3; i++) gone[i] = ids[3 * i];
    assert_int_equal(store_index_remove(h, N / 3, gone, NULL, NULL), RAGD_OK);
    assert_int_equal(store_index_remove(flat, N / 3, gone, NULL, NULL), RAGD_OK);
    assert_true(hnsw_recall(h, flat, queries, NQ, N) >= 0.99);
    store_index_free(h);
    store_index_free(flat);
    free(vecs);
    free(queries);
    free(ids);
}

/* ---- growing the storage without a second copy (src/store_faiss_grow.cpp) ---------------- */

#define GROW_N 3000
#define GROW_K 5

/* Searches the first n vectors of vecs in index: GROW_K ids and distances each, into ids and
 * dist (n * GROW_K entries). */
static void grow_search(FaissIndex *index, const float *vecs, idx_t n, idx_t *ids, float *dist)
{
    assert_int_equal(faiss_Index_search(index, n, vecs, GROW_K, dist, ids), 0);
}

/* Asserts that index (IDMap2 over factory) gives every search the same answer, ids and
 * distances (so the same stored vectors and, for HNSW, the same links), across
 * store_grow_reserve_slices with one-page slices (each copied page of the old block released
 * before the next is copied), and still takes adds after it. */
static void grow_check(const char *factory)
{
    size_t cells = (size_t)GROW_N * 2 * GROW_K;
    float *vecs = malloc(sizeof(float) * DIMS * GROW_N * 2);
    idx_t *ids = malloc(sizeof(idx_t) * GROW_N * 2);
    idx_t *before = malloc(sizeof(idx_t) * cells), *after = malloc(sizeof(idx_t) * cells);
    float *dbefore = malloc(sizeof(float) * cells), *dafter = malloc(sizeof(float) * cells);
    assert_true(vecs && ids && before && after && dbefore && dafter);
    unsigned seed = 11;
    for (size_t i = 0; i < (size_t)DIMS * GROW_N * 2; i++) vecs[i] = (float)rand_r(&seed) / RAND_MAX;
    for (idx_t i = 0; i < GROW_N * 2; i++) ids[i] = 1000 + 7 * i;
    FaissIndex *index = NULL;
    assert_int_equal(faiss_index_factory(&index, DIMS, factory, METRIC_L2), 0);
    assert_int_equal(faiss_Index_add_with_ids(index, GROW_N, vecs, ids), 0);
    grow_search(index, vecs, GROW_N, before, dbefore);

    assert_int_equal(store_grow_reserve_slices(index, GROW_N, 4096), 1);
    grow_search(index, vecs, GROW_N, after, dafter);
    assert_memory_equal(before, after, sizeof(idx_t) * GROW_N * GROW_K);
    assert_memory_equal(dbefore, dafter, sizeof(float) * GROW_N * GROW_K);
    for (idx_t i = 0; i < GROW_N; i += 13) assert_int_equal(after[i * GROW_K], ids[i]);
    /* Room was made: the add that follows (as many vectors again) works and finds them. */
    assert_int_equal(faiss_Index_add_with_ids(index, GROW_N, vecs + DIMS * GROW_N, ids + GROW_N),
                     0);
    assert_int_equal(faiss_Index_ntotal(index), GROW_N * 2);
    grow_search(index, vecs, GROW_N * 2, after, dafter);
    for (idx_t i = 0; i < GROW_N * 2; i += 13) {
        assert_int_equal(after[i * GROW_K], ids[i]);
        assert_true(dafter[i * GROW_K] < 1e-4f);
    }
    /* Nothing to grow (capacity already there) and nothing to add are no-ops. */
    assert_int_equal(store_grow_reserve_slices(index, 1, 4096), 1);
    assert_int_equal(store_grow_reserve_slices(index, 0, 4096), 0);
    faiss_Index_free(index);
    free(vecs);
    free(ids);
    free(before);
    free(after);
    free(dbefore);
    free(dafter);
}

static void test_grow_keeps_flat(void **state)
{
    (void)state;
    grow_check("IDMap2,Flat");
}

static void test_grow_keeps_hnsw(void **state)
{
    (void)state;
    grow_check("IDMap2,HNSW16");
}

/* Mappings of this process advised MADV_HUGEPAGE ("hg" in their VmFlags). */
static int huge_advised_mappings(void)
{
    FILE *fp = fopen("/proc/self/smaps", "r");
    assert_non_null(fp);
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, fp) != NULL)
        if (strncmp(line, "VmFlags:", 8) == 0 && strstr(line, " hg") != NULL) n++;
    fclose(fp);
    return n;
}

/* A large block grown for the flat vectors is advised transparent huge pages (fewer page faults
 * while it fills) only when the process asked for it (the CLI ingest, not the daemon); the
 * vectors stay searchable. */
static void test_grow_advises_huge_pages(void **state)
{
    (void)state;
    float vecs[10 * DIMS];
    idx_t ids[10];
    unsigned seed = 5;
    for (size_t i = 0; i < 10 * DIMS; i++) vecs[i] = (float)rand_r(&seed) / RAND_MAX;
    for (idx_t i = 0; i < 10; i++) ids[i] = 100 + i;
    FaissIndex *index = NULL;
    assert_int_equal(faiss_index_factory(&index, DIMS, "IDMap2,Flat", METRIC_L2), 0);
    assert_int_equal(faiss_Index_add_with_ids(index, 10, vecs, ids), 0);
    /* off by default (the daemon): a grown block is not advised */
    int before = huge_advised_mappings();
    assert_int_equal(store_grow_reserve(index, 1000), 1);
    assert_int_equal(huge_advised_mappings(), before);
    /* on (the CLI ingest): room for 100,000 more vectors of 128 bytes, a 12.8 MB block */
    store_grow_huge_pages(1);
    before = huge_advised_mappings();
    assert_int_equal(store_grow_reserve(index, 100000), 1);
    store_grow_huge_pages(0);
    if (access("/sys/kernel/mm/transparent_hugepage", F_OK) == 0)
        assert_true(huge_advised_mappings() > before);
    else /* a kernel without THP refuses the advice: nothing else changes */
        assert_int_equal(huge_advised_mappings(), before);
    idx_t got[GROW_K];
    float dist[GROW_K];
    assert_int_equal(faiss_Index_search(index, 1, vecs + 3 * DIMS, GROW_K, dist, got), 0);
    assert_int_equal(got[0], 103);
    faiss_Index_free(index);
}

#define FX_TEST(fn) cmocka_unit_test_setup_teardown(fn, fixture_setup, fixture_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_rejects_bad_dims),
        cmocka_unit_test(test_search_empty_index),
        FX_TEST(test_add_search_exact_neighbour),
        FX_TEST(test_search_k_over_count),
        FX_TEST(test_remove),
        FX_TEST(test_clear),
        FX_TEST(test_save_load_round_trip),
        FX_TEST(test_save_load_empty),
        FX_TEST(test_load_missing),
        FX_TEST(test_load_truncated),
        FX_TEST(test_sum_stream_direct),
        FX_TEST(test_load_flipped_byte),
        FX_TEST(test_load_flipped_first_last_byte),
        FX_TEST(test_load_stale_meta_same_size),
        FX_TEST(test_save_meta_xxh3),
        FX_TEST(test_load_format1_sha256),
        FX_TEST(test_sum_stream),
        FX_TEST(test_load_hostile_header),
        FX_TEST(test_load_wrong_dims),
        FX_TEST(test_load_meta_garbage),
        FX_TEST(test_faiss_errors_are_caught),
        FX_TEST(test_concurrent_search),
        FX_TEST(test_hnsw_search),
        FX_TEST(test_hnsw_remove_tombstones),
        FX_TEST(test_hnsw_ids_in_any_order),
        FX_TEST(test_hnsw_save_load),
        FX_TEST(test_hnsw_load_corrupt),
        cmocka_unit_test(test_factory_rejected),
        cmocka_unit_test(test_hnsw_ef_search_per_call),
        cmocka_unit_test(test_grow_keeps_flat),
        cmocka_unit_test(test_grow_keeps_hnsw),
        cmocka_unit_test(test_grow_advises_huge_pages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
