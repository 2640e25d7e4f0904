/* SPDX-License-Identifier: MIT */
/*
 * store_index.c - the vector index: a FAISS IndexIDMap2 over an IndexFlatIP, keyed by chunk id,
 * searched by inner product (cosine, since vectors arrive L2-normalised). It is reached only
 * through the official FAISS C API (src/store_faiss_capi.cpp supplies it on Debian 12), and every
 * FAISS failure becomes RAGD_ERR_INDEX with FAISS's own message. On disk an index is two files:
 * `path`, what faiss_write_index writes, and `path.meta`, a small JSON object with the format,
 * the store generation it matches, the vector count, the dimensions and the SHA-256 of `path`.
 * The index file is written first and the meta second, each atomically, so a crash between them
 * leaves a meta that does not match and the next start rebuilds from SQLite. Loading trusts
 * nothing: it checks the meta, the file's size and layout against the meta, the SHA-256, and
 * what FAISS read, so a truncated, flipped or hostile file fails cleanly instead of crashing or
 * making FAISS allocate absurd sizes.
 */
#include "ragd/store.h"

#include <errno.h>
#include <fcntl.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/MetaIndexes_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>
#include <faiss/c_api/index_io_c.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "ragd/util.h"

#define RAGD_INDEX_META_FORMAT 1
#define RAGD_INDEX_META_MAX (64 * 1024)
#define RAGD_INDEX_MAX_DIMS 65536
#define RAGD_INDEX_HASH_BLOCK (1024 * 1024)

/* The layout faiss_write_index produces for IndexIDMap2(IndexFlatIP), stable across FAISS
 * releases (it is FAISS's on-disk format): "IxM2", header, "IxFI", header, the vectors as a
 * length-prefixed float array, the ids as a length-prefixed int64 array. A header is d (int32),
 * ntotal (int64), two dummy int64, is_trained (1 byte), metric_type (int32). */
#define RAGD_INDEX_HEADER_BYTES 33
#define RAGD_INDEX_OFF_MAP_D 4
#define RAGD_INDEX_OFF_MAP_NTOTAL 8
#define RAGD_INDEX_OFF_MAP_METRIC 33
#define RAGD_INDEX_OFF_FLAT_TAG 37
#define RAGD_INDEX_OFF_FLAT_D 41
#define RAGD_INDEX_OFF_FLAT_NTOTAL 45
#define RAGD_INDEX_OFF_FLAT_METRIC 70
#define RAGD_INDEX_OFF_CODES_LEN 74
#define RAGD_INDEX_OFF_CODES 82
#define RAGD_INDEX_FIXED_BYTES 90 /* everything but the vectors and the ids */

struct store_index {
    FaissIndex *index; /* IndexIDMap2 owning its IndexFlatIP */
    int dims;
};

/* Records FAISS's last error as RAGD_ERR_INDEX. Returns: RAGD_ERR_INDEX. */
static ragd_rc index_error(ragd_err *err, const char *what)
{
    const char *msg = faiss_get_last_error();
    return ragd_err_set(err, RAGD_ERR_INDEX, "%s: %s", what, msg ? msg : "unknown FAISS error");
}

/* FAISS parallelises inside one query with OpenMP. On a small machine serving several requests
 * at once, one thread per query is faster overall, so every thread that touches the index asks
 * for one OpenMP thread. omp_set_num_threads only changes the calling thread's setting (it is a
 * per-thread ICV in libgomp), which is why this runs on each calling thread, once. */
static void index_threads_limit(void)
{
    static _Thread_local int done;
    if (!done) {
        omp_set_num_threads(1);
        done = 1;
    }
}

/* Returns: a new string path + suffix (free with free()), or NULL on OOM. */
static char *path_with_suffix(const char *path, const char *suffix)
{
    size_t a = strlen(path), b = strlen(suffix);
    char *s = malloc(a + b + 1);
    if (s == NULL) return NULL;
    memcpy(s, path, a);
    memcpy(s + a, suffix, b + 1);
    return s;
}

/* Streams f from its start through SHA-256 in 1 MiB blocks. Returns: RAGD_OK, hex (lowercase,
 * NUL-terminated) and *size, the bytes hashed. */
static ragd_rc file_sha256(FILE *f, const char *path, char hex[UTIL_SHA256_HEX_LEN + 1],
                           uint64_t *size, ragd_err *err)
{
    ragd_rc rc = RAGD_OK;
    unsigned char *block = malloc(RAGD_INDEX_HASH_BLOCK);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (block == NULL || ctx == NULL) {
        rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory hashing %s", path);
        goto done;
    }
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        rc = ragd_err_set(err, RAGD_ERR_INTERNAL, "cannot start SHA-256 of %s", path);
        goto done;
    }
    rewind(f);
    uint64_t total = 0;
    for (;;) {
        size_t got = fread(block, 1, RAGD_INDEX_HASH_BLOCK, f);
        if (got > 0 && EVP_DigestUpdate(ctx, block, got) != 1) {
            rc = ragd_err_set(err, RAGD_ERR_INTERNAL, "SHA-256 of %s failed", path);
            goto done;
        }
        total += got;
        if (got < RAGD_INDEX_HASH_BLOCK) break;
    }
    if (ferror(f)) {
        rc = ragd_err_set(err, RAGD_ERR_IO, "cannot read %s: %s", path, strerror(errno));
        goto done;
    }
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    if (EVP_DigestFinal_ex(ctx, digest, &digest_len) != 1 || digest_len != 32) {
        rc = ragd_err_set(err, RAGD_ERR_INTERNAL, "SHA-256 of %s failed", path);
        goto done;
    }
    static const char digits[] = "0123456789abcdef";
    for (unsigned int i = 0; i < digest_len; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[UTIL_SHA256_HEX_LEN] = '\0';
    *size = total;
done:
    EVP_MD_CTX_free(ctx);
    free(block);
    return rc;
}

/* Returns: a new store_index wrapping index (steals index), or NULL on OOM (index untouched). */
static store_index *index_wrap(FaissIndex *index, int dims)
{
    store_index *idx = calloc(1, sizeof(*idx));
    if (idx == NULL) return NULL;
    idx->index = index;
    idx->dims = dims;
    return idx;
}

ragd_rc store_index_new(int dims, store_index **out, ragd_err *err)
{
    if (out == NULL || dims <= 0 || dims > RAGD_INDEX_MAX_DIMS)
        return ragd_err_set(err, RAGD_ERR_INVALID, "index dimensions must be 1..%d, not %d",
                            RAGD_INDEX_MAX_DIMS, dims);
    index_threads_limit();
    FaissIndexFlatIP *flat = NULL;
    if (faiss_IndexFlatIP_new_with(&flat, dims) != 0)
        return index_error(err, "cannot create the flat index");
    FaissIndexIDMap2 *map = NULL;
    if (faiss_IndexIDMap2_new(&map, flat) != 0) {
        ragd_rc rc = index_error(err, "cannot create the id map");
        faiss_Index_free(flat);
        return rc;
    }
    /* The map frees the flat index with itself. */
    faiss_IndexIDMap2_set_own_fields(map, 1);
    store_index *idx = index_wrap(map, dims);
    if (idx == NULL) {
        faiss_Index_free(map);
        return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    }
    *out = idx;
    return RAGD_OK;
}

void store_index_free(store_index *idx)
{
    if (idx == NULL) return;
    faiss_Index_free(idx->index);
    free(idx);
}

ragd_rc store_index_add(store_index *idx, size_t n, const int64_t *ids, const float *vecs,
                        ragd_err *err)
{
    if (idx == NULL || (n > 0 && (ids == NULL || vecs == NULL)))
        return ragd_err_set(err, RAGD_ERR_INVALID, "store_index_add: missing argument");
    if (n == 0) return RAGD_OK;
    if (n > (size_t)INT64_MAX)
        return ragd_err_set(err, RAGD_ERR_INVALID, "store_index_add: too many vectors");
    index_threads_limit();
    if (faiss_Index_add_with_ids(idx->index, (idx_t)n, vecs, ids) != 0)
        return index_error(err, "cannot add vectors to the index");
    return RAGD_OK;
}

ragd_rc store_index_remove(store_index *idx, size_t n, const int64_t *ids, size_t *removed,
                           ragd_err *err)
{
    if (idx == NULL || (n > 0 && ids == NULL))
        return ragd_err_set(err, RAGD_ERR_INVALID, "store_index_remove: missing argument");
    if (n == 0) {
        if (removed) *removed = 0;
        return RAGD_OK;
    }
    index_threads_limit();
    FaissIDSelectorBatch *batch = NULL;
    if (faiss_IDSelectorBatch_new(&batch, n, ids) != 0)
        return index_error(err, "cannot select ids to remove");
    size_t count = 0;
    int frc = faiss_Index_remove_ids(idx->index, (const FaissIDSelector *)batch, &count);
    faiss_IDSelector_free((FaissIDSelector *)batch);
    if (frc != 0) return index_error(err, "cannot remove ids from the index");
    if (removed) *removed = count;
    return RAGD_OK;
}

ragd_rc store_index_clear(store_index *idx, ragd_err *err)
{
    if (idx == NULL) return ragd_err_set(err, RAGD_ERR_INVALID, "store_index_clear: no index");
    if (faiss_Index_reset(idx->index) != 0) return index_error(err, "cannot clear the index");
    return RAGD_OK;
}

ragd_rc store_index_search(const store_index *idx, const float *query, size_t k, int64_t *ids,
                           float *scores, size_t *found, ragd_err *err)
{
    if (idx == NULL || query == NULL || found == NULL || (k > 0 && (ids == NULL || scores == NULL)))
        return ragd_err_set(err, RAGD_ERR_INVALID, "store_index_search: missing argument");
    index_threads_limit();
    /* Asking FAISS for no more than there is keeps its result heap small when k is large. */
    idx_t total = faiss_Index_ntotal(idx->index);
    size_t want = (uint64_t)total < (uint64_t)k ? (size_t)total : k;
    if (want == 0) {
        *found = 0;
        return RAGD_OK;
    }
    if (faiss_Index_search(idx->index, 1, query, (idx_t)want, scores, ids) != 0)
        return index_error(err, "index search failed");
    /* FAISS pads missing results with id -1; keep only real ones, in order. */
    size_t n = 0;
    for (size_t i = 0; i < want; i++) {
        if (ids[i] < 0) continue;
        ids[n] = ids[i];
        scores[n] = scores[i];
        n++;
    }
    *found = n;
    return RAGD_OK;
}

size_t store_index_count(const store_index *idx)
{
    if (idx == NULL) return 0;
    idx_t n = faiss_Index_ntotal(idx->index);
    return n > 0 ? (size_t)n : 0;
}

int store_index_dims(const store_index *idx)
{
    return idx ? idx->dims : 0;
}

size_t store_index_bytes(const store_index *idx)
{
    if (idx == NULL) return 0;
    /* The flat index's floats plus the id map; IndexIDMap2's reverse hash map is not counted. */
    return store_index_count(idx) * ((size_t)idx->dims * sizeof(float) + sizeof(int64_t));
}

/* Returns: the size faiss_write_index gives an IndexIDMap2(IndexFlatIP) of count vectors of
 * dims floats, or 0 when that would overflow. */
static uint64_t index_file_size(uint64_t count, uint64_t dims)
{
    uint64_t per_vector = dims * 4 + 8;
    if (count > (UINT64_MAX - RAGD_INDEX_FIXED_BYTES) / per_vector) return 0;
    return RAGD_INDEX_FIXED_BYTES + count * per_vector;
}

/* Writes the index to tmp (already open as f), flushes it to disk and hashes it. */
static ragd_rc index_file_write(const store_index *idx, FILE *f, const char *tmp,
                                char hex[UTIL_SHA256_HEX_LEN + 1], ragd_err *err)
{
    if (faiss_write_index(idx->index, f) != 0) return index_error(err, "cannot write the index");
    if (fflush(f) != 0 || fsync(fileno(f)) != 0)
        return ragd_err_set(err, RAGD_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    uint64_t size = 0;
    ragd_rc rc = file_sha256(f, tmp, hex, &size, err);
    if (rc != RAGD_OK) return rc;
    uint64_t expected = index_file_size(store_index_count(idx), (uint64_t)idx->dims);
    if (size != expected)
        return ragd_err_set(err, RAGD_ERR_INDEX,
                            "FAISS wrote %llu bytes to %s, expected %llu: unknown index layout",
                            (unsigned long long)size, tmp, (unsigned long long)expected);
    return RAGD_OK;
}

ragd_rc store_index_save(const store_index *idx, const char *path, uint64_t generation,
                         ragd_err *err)
{
    if (idx == NULL || path == NULL || path[0] == '\0')
        return ragd_err_set(err, RAGD_ERR_INVALID, "store_index_save: missing argument");
    if (generation > (uint64_t)INT64_MAX)
        return ragd_err_set(err, RAGD_ERR_INVALID, "index generation %llu is out of range",
                            (unsigned long long)generation);
    ragd_rc rc = RAGD_OK;
    char *tmp = path_with_suffix(path, ".tmp");
    char *meta = path_with_suffix(path, ".meta");
    char *text = NULL;
    json_t *root = NULL;
    FILE *f = NULL;
    int renamed = 0;
    if (tmp == NULL || meta == NULL) {
        rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* The hash is taken from the temp file before the rename, so a hashing failure leaves the
     * previous index and meta pair in place. */
    f = fopen(tmp, "w+be");
    if (f == NULL) {
        rc = ragd_err_set(err, RAGD_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
        goto done;
    }
    char hex[UTIL_SHA256_HEX_LEN + 1];
    rc = index_file_write(idx, f, tmp, hex, err);
    if (rc != RAGD_OK) goto done;
    int close_rc = fclose(f);
    f = NULL;
    if (close_rc != 0) {
        rc = ragd_err_set(err, RAGD_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
        goto done;
    }
    if (rename(tmp, path) != 0) {
        rc = ragd_err_set(err, RAGD_ERR_IO, "cannot rename %s to %s: %s", tmp, path,
                          strerror(errno));
        goto done;
    }
    renamed = 1;
    rc = util_dir_fsync_parent(path, err);
    if (rc != RAGD_OK) goto done;

    root = json_pack("{s:i, s:I, s:I, s:i, s:s}", "format", RAGD_INDEX_META_FORMAT, "generation",
                     (json_int_t)generation, "count", (json_int_t)store_index_count(idx), "dims",
                     idx->dims, "sha256", hex);
    text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    if (text == NULL) {
        rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory writing %s", meta);
        goto done;
    }
    rc = util_file_write_atomic(meta, text, strlen(text), err);
done:
    if (f != NULL) fclose(f);
    if (!renamed && tmp != NULL) unlink(tmp);
    free(text);
    json_decref(root);
    free(meta);
    free(tmp);
    return rc;
}

typedef struct index_meta {
    json_int_t generation;
    json_int_t count;
    json_int_t dims;
    char sha256[UTIL_SHA256_HEX_LEN + 1];
} index_meta;

/* Reads and validates path.meta. Returns: RAGD_OK and *out, RAGD_ERR_NOT_FOUND when the file
 * does not exist, RAGD_ERR_INDEX for anything else. */
static ragd_rc index_meta_read(const char *meta_path, index_meta *out, ragd_err *err)
{
    char *text = NULL;
    size_t len = 0;
    ragd_err local = {0};
    ragd_rc rc = util_file_read(meta_path, RAGD_INDEX_META_MAX, &text, &len, &local);
    if (rc == RAGD_ERR_NOT_FOUND)
        return ragd_err_set(err, RAGD_ERR_NOT_FOUND, "index meta %s is missing", meta_path);
    if (rc != RAGD_OK)
        return ragd_err_set(err, RAGD_ERR_INDEX, "cannot read index meta: %s", local.msg);

    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr);
    free(text);
    if (root == NULL)
        return ragd_err_set(err, RAGD_ERR_INDEX, "index meta %s is not valid JSON: %s",
                            meta_path, jerr.text);
    json_int_t format = 0;
    const char *sha = NULL;
    index_meta m = {0};
    if (json_unpack_ex(root, &jerr, 0, "{s:I, s:I, s:I, s:I, s:s}", "format", &format,
                       "generation", &m.generation, "count", &m.count, "dims", &m.dims,
                       "sha256", &sha) != 0) {
        rc = ragd_err_set(err, RAGD_ERR_INDEX, "index meta %s is not valid: %s", meta_path,
                          jerr.text);
        goto done;
    }
    if (format != RAGD_INDEX_META_FORMAT) {
        rc = ragd_err_set(err, RAGD_ERR_INDEX, "index meta %s has format %lld, expected %d",
                          meta_path, (long long)format, RAGD_INDEX_META_FORMAT);
        goto done;
    }
    if (m.generation < 0 || m.count < 0 || m.dims <= 0 || m.dims > RAGD_INDEX_MAX_DIMS) {
        rc = ragd_err_set(err, RAGD_ERR_INDEX,
                          "index meta %s is out of range: generation %lld, count %lld, dims %lld",
                          meta_path, (long long)m.generation, (long long)m.count,
                          (long long)m.dims);
        goto done;
    }
    size_t sha_len = strlen(sha);
    if (sha_len != UTIL_SHA256_HEX_LEN || strspn(sha, "0123456789abcdef") != sha_len) {
        rc = ragd_err_set(err, RAGD_ERR_INDEX, "index meta %s has no valid sha256", meta_path);
        goto done;
    }
    memcpy(m.sha256, sha, sha_len + 1);
    *out = m;
done:
    json_decref(root);
    return rc;
}

static int32_t read_i32(const unsigned char *p)
{
    int32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static int64_t read_i64(const unsigned char *p)
{
    int64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* Checks that f has exactly the layout FAISS writes for an IndexIDMap2(IndexFlatIP) holding
 * m->count vectors of m->dims floats, so that reading it allocates only what the file holds.
 * The caller has checked the file size. Returns: RAGD_OK or RAGD_ERR_INDEX. */
static ragd_rc index_layout_check(FILE *f, const char *path, const index_meta *m, ragd_err *err)
{
    unsigned char head[RAGD_INDEX_OFF_CODES];
    unsigned char ids_len[8];
    uint64_t codes_bytes = (uint64_t)m->count * (uint64_t)m->dims * 4;
    rewind(f);
    if (fread(head, 1, sizeof(head), f) != sizeof(head) ||
        fseeko(f, (off_t)(RAGD_INDEX_OFF_CODES + codes_bytes), SEEK_SET) != 0 ||
        fread(ids_len, 1, sizeof(ids_len), f) != sizeof(ids_len))
        return ragd_err_set(err, RAGD_ERR_INDEX, "cannot read the layout of %s", path);
    const char *what = NULL;
    if (memcmp(head, "IxM2", 4) != 0 || memcmp(head + RAGD_INDEX_OFF_FLAT_TAG, "IxFI", 4) != 0)
        what = "not an IndexIDMap2 over an IndexFlatIP";
    else if (read_i32(head + RAGD_INDEX_OFF_MAP_D) != m->dims ||
             read_i32(head + RAGD_INDEX_OFF_FLAT_D) != m->dims)
        what = "dimensions differ from the meta";
    else if (read_i64(head + RAGD_INDEX_OFF_MAP_NTOTAL) != m->count ||
             read_i64(head + RAGD_INDEX_OFF_FLAT_NTOTAL) != m->count)
        what = "vector count differs from the meta";
    else if (read_i32(head + RAGD_INDEX_OFF_MAP_METRIC) != METRIC_INNER_PRODUCT ||
             read_i32(head + RAGD_INDEX_OFF_FLAT_METRIC) != METRIC_INNER_PRODUCT)
        what = "metric is not inner product";
    else if ((uint64_t)read_i64(head + RAGD_INDEX_OFF_CODES_LEN) != codes_bytes / 4 ||
             (uint64_t)read_i64(ids_len) != (uint64_t)m->count)
        what = "array lengths differ from the meta";
    if (what != NULL)
        return ragd_err_set(err, RAGD_ERR_INDEX, "index file %s: %s", path, what);
    return RAGD_OK;
}

/* Reads the index in f (already checked against m) and verifies what FAISS built.
 * Returns: RAGD_OK and *out (new, free with faiss_Index_free) or RAGD_ERR_INDEX. */
static ragd_rc index_file_read(FILE *f, const char *path, const index_meta *m, FaissIndex **out,
                               ragd_err *err)
{
    FaissIndex *index = NULL;
    rewind(f);
    if (faiss_read_index(f, 0, &index) != 0) {
        const char *msg = faiss_get_last_error();
        return ragd_err_set(err, RAGD_ERR_INDEX, "cannot read index %s: %s", path,
                            msg ? msg : "unknown FAISS error");
    }
    const char *what = NULL;
    FaissIndexIDMap2 *map = faiss_IndexIDMap2_cast(index);
    if (map == NULL || faiss_IndexFlatIP_cast(faiss_IndexIDMap2_sub_index(map)) == NULL)
        what = "it is not an IndexIDMap2 over an IndexFlatIP";
    else if (faiss_Index_d(index) != m->dims)
        what = "its dimensions differ from the meta";
    else if (faiss_Index_ntotal(index) != m->count)
        what = "its vector count differs from the meta";
    else if (faiss_Index_metric_type(index) != METRIC_INNER_PRODUCT)
        what = "its metric is not inner product";
    if (what != NULL) {
        faiss_Index_free(index);
        return ragd_err_set(err, RAGD_ERR_INDEX, "index %s was read but %s", path, what);
    }
    *out = index;
    return RAGD_OK;
}

ragd_rc store_index_load(const char *path, int dims, store_index **out, uint64_t *generation,
                         ragd_err *err)
{
    if (path == NULL || out == NULL)
        return ragd_err_set(err, RAGD_ERR_INVALID, "store_index_load: missing argument");
    char *meta_path = path_with_suffix(path, ".meta");
    if (meta_path == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    index_meta m;
    ragd_rc rc = index_meta_read(meta_path, &m, err);
    free(meta_path);
    if (rc != RAGD_OK) return rc;
    if (m.dims != dims)
        return ragd_err_set(err, RAGD_ERR_INDEX,
                            "index %s was saved with %lld dimensions, the model has %d", path,
                            (long long)m.dims, dims);

    FILE *f = fopen(path, "rbe");
    if (f == NULL) {
        int e = errno;
        return ragd_err_set(err, e == ENOENT ? RAGD_ERR_NOT_FOUND : RAGD_ERR_INDEX,
                            "cannot open index %s: %s", path, strerror(e));
    }
    FaissIndex *index = NULL;
    struct stat st;
    uint64_t expected = index_file_size((uint64_t)m.count, (uint64_t)m.dims);
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = ragd_err_set(err, RAGD_ERR_INDEX, "index %s is not a regular file", path);
        goto done;
    }
    /* Before hashing or parsing anything: the size must be what the meta promises. */
    if (expected == 0) {
        rc = ragd_err_set(err, RAGD_ERR_INDEX, "index meta for %s claims an impossible size: "
                          "%lld vectors of %lld dimensions", path, (long long)m.count,
                          (long long)m.dims);
        goto done;
    }
    if ((uint64_t)st.st_size != expected) {
        rc = ragd_err_set(err, RAGD_ERR_INDEX,
                          "index %s is %llu bytes, expected %llu for %lld vectors of %lld "
                          "dimensions",
                          path, (unsigned long long)st.st_size, (unsigned long long)expected,
                          (long long)m.count, (long long)m.dims);
        goto done;
    }
    char hex[UTIL_SHA256_HEX_LEN + 1];
    uint64_t hashed = 0;
    ragd_err local = {0};
    if (file_sha256(f, path, hex, &hashed, &local) != RAGD_OK) {
        rc = ragd_err_set(err, RAGD_ERR_INDEX, "%s", local.msg);
        goto done;
    }
    if (hashed != expected || strcmp(hex, m.sha256) != 0) {
        rc = ragd_err_set(err, RAGD_ERR_INDEX,
                          "SHA-256 of index %s does not match its meta (changed or partly "
                          "written)",
                          path);
        goto done;
    }
    rc = index_layout_check(f, path, &m, err);
    if (rc != RAGD_OK) goto done;
    index_threads_limit();
    rc = index_file_read(f, path, &m, &index, err);
    if (rc != RAGD_OK) goto done;
    store_index *idx = index_wrap(index, dims);
    if (idx == NULL) {
        faiss_Index_free(index);
        rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
        goto done;
    }
    *out = idx;
    if (generation) *generation = (uint64_t)m.generation;
done:
    fclose(f);
    return rc;
}
