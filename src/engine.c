/* SPDX-License-Identifier: MIT */
/*
 * engine.c - the RAG engine for one data dir: the data-dir lock, opening the store and the vector
 * index (rebuilding the index from SQLite when it cannot be trusted), incremental ingest, and
 * retrieval. HTTP and CLI are thin layers over the functions here.
 *
 * Consistency model. SQLite is the source of truth. Every ingested document is applied in one
 * SQLite transaction that also bumps the store's generation; right after the commit the in-memory
 * index gets the same change. Both happen under the write side of `rw`; retrievals hold the read
 * side across index search and chunk fetch, so they see a document either wholly before or wholly
 * after its update. The index file on disk records the generation it matches; at open, a file whose
 * generation, count, dims or checksum disagree is not used: the index is rebuilt from SQLite.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "ragd/cache.h"
#include "ragd/embed.h"
#include "engine_int.h"
#include "ragd/engine.h"
#include "ragd/filter.h"
#include "ragd/ingest.h"
#include "ragd/log.h"
#include "ragd/retrieve.h"
#include "ragd/store.h"
#include "ragd/util.h"

#define INDEX_FILE "index.faiss"
#define LOCK_FILE "ragd.lock"
#define REBUILD_BATCH 1024

struct engine {
    const ragd_cfg *cfg;
    int readonly;
    int lock_fd;
    char *index_path;
    store_db *db;
    store_index *index;
    embed_provider *embedder;
    cache_query *cache;         /* query embeddings: in-process LRU, then Redis */
    retrieve_reranker *reranker; /* [rerank]; NULL when provider = none */
    struct prefetch *prefetch;  /* the running ingest's prefetched embeddings; read and written
                                 * only by the ingest thread, under write_mu */
    pthread_rwlock_t rw;        /* index + commit point; see the file comment */
    pthread_mutex_t ingest_mu;  /* one ingest at a time */
    pthread_mutex_t write_mu;   /* the store's writer connection: an ingest holds it per
                                 * document, a pushed document for its upsert */
    pthread_mutex_t status_mu;  /* the last_* fields below */
    atomic_int ingest_running;
    atomic_int cancelled;       /* engine_ingest_cancel was called */
    int index_dirty;            /* in-memory index changed since it was saved */
    int model_pending;          /* store has another model; only an ingest with reset may run */
    uint64_t generation;        /* store generation the in-memory index matches */
    int64_t last_ingest_at;
    int last_ingest_ok;
};

/* ---- data-dir lock ----------------------------------------------------------------------- */

int engine_lock_owner(const char *data_dir, long *pid, char *listen, size_t listen_size)
{
    *pid = 0;
    if (listen_size) listen[0] = '\0';
    char *path = util_path_join(data_dir, LOCK_FILE);
    if (path == NULL) return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    free(path);
    if (fd < 0) return 0;
    int held = 0;
    if (flock(fd, LOCK_SH | LOCK_NB) != 0) {
        held = errno == EWOULDBLOCK;
    } else {
        flock(fd, LOCK_UN);
    }
    char text[256];
    ssize_t n = held ? read(fd, text, sizeof text - 1) : 0;
    close(fd);
    if (n > 0) {
        text[n] = '\0';
        char *p = strstr(text, "pid=");
        if (p) *pid = strtol(p + 4, NULL, 10);
        p = strstr(text, "listen=");
        if (p && listen_size) {
            p += 7;
            size_t k = strcspn(p, "\n");
            if (k >= listen_size) k = listen_size - 1;
            memcpy(listen, p, k);
            listen[k] = '\0';
        }
    }
    return held;
}

static void lock_write(int fd, const char *listen)
{
    char text[256];
    int n = snprintf(text, sizeof text, "pid=%ld\n%s%s%s", (long)getpid(),
                     listen ? "listen=" : "", listen ? listen : "", listen ? "\n" : "");
    if (ftruncate(fd, 0) == 0 && n > 0) {
        ssize_t w = pwrite(fd, text, (size_t)n, 0);
        (void)w;
    }
}

static ragd_rc lock_take(engine *e, const char *data_dir, ragd_err *err)
{
    char *path = util_path_join(data_dir, LOCK_FILE);
    if (path == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        int en = errno;
        ragd_err_set(err, RAGD_ERR_IO, "cannot open lock file %s: %s", path, strerror(en));
        free(path);
        return RAGD_ERR_IO;
    }
    free(path);
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int en = errno;
        close(fd);
        if (en != EWOULDBLOCK)
            return ragd_err_set(err, RAGD_ERR_IO, "cannot lock data dir %s: %s", data_dir,
                                strerror(en));
        long pid = 0;
        char listen[128];
        engine_lock_owner(data_dir, &pid, listen, sizeof listen);
        return ragd_err_set(err, RAGD_ERR_LOCKED,
                            "data dir %s is in use by another ragd process (pid %ld%s%s); "
                            "stop it, or send the work to it over HTTP",
                            data_dir, pid, listen[0] ? ", serving " : "", listen);
    }
    lock_write(fd, NULL);
    e->lock_fd = fd;
    return RAGD_OK;
}

void engine_listen_note(engine *e, const char *host, int port)
{
    if (e == NULL || e->lock_fd < 0) return;
    char listen[128];
    int v6 = strchr(host, ':') != NULL;
    snprintf(listen, sizeof listen, "%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "", port);
    lock_write(e->lock_fd, listen);
}

/* ---- index load / rebuild ------------------------------------------------------------------ */

typedef struct rebuild_ctx {
    store_index *index;
    int dims;
    int64_t ids[REBUILD_BATCH];
    float *vecs;
    size_t n;
    ragd_err *err;
    ragd_rc rc;
} rebuild_ctx;

static int rebuild_flush(rebuild_ctx *c)
{
    if (c->n == 0) return 0;
    c->rc = store_index_add(c->index, c->n, c->ids, c->vecs, c->err);
    c->n = 0;
    return c->rc != RAGD_OK;
}

static int rebuild_cb(void *ctx, int64_t chunk_id, const float *vec, int dims)
{
    rebuild_ctx *c = ctx;
    if (dims != c->dims) return 1;
    c->ids[c->n] = chunk_id;
    memcpy(c->vecs + c->n * (size_t)dims, vec, sizeof(float) * (size_t)dims);
    if (++c->n == REBUILD_BATCH) return rebuild_flush(c);
    return 0;
}

/* Returns: the index type from the configuration ([store] index_factory, hnsw_ef_search). */
static store_index_opts index_opts(const engine *e)
{
    store_index_opts o = {.factory = e->cfg->index_factory, .ef_search = e->cfg->hnsw_ef_search};
    return o;
}

/* Builds a new index from SQLite's chunks and embeddings. Caller holds the write lock or is the
 * only user. Returns: RAGD_OK and replaces e->index. */
static ragd_rc index_rebuild(engine *e, ragd_err *err)
{
    int dims = e->embedder->dims;
    store_index *idx = NULL;
    store_index_opts iopts = index_opts(e);
    ragd_rc rc = store_index_new_with(dims, &iopts, &idx, err);
    if (rc != RAGD_OK) return rc;
    rebuild_ctx c = {.index = idx, .dims = dims, .err = err};
    c.vecs = malloc(sizeof(float) * (size_t)dims * REBUILD_BATCH);
    if (c.vecs == NULL) {
        store_index_free(idx);
        return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory rebuilding the index");
    }
    uint64_t gen = 0;
    size_t missing = 0;
    double t0 = util_now_ms();
    rc = store_db_generation_get(e->db, &gen, err);
    if (rc == RAGD_OK)
        rc = store_db_vectors_each(e->db, e->embedder->model, dims, rebuild_cb, &c, &missing,
                                   err);
    if (rc == RAGD_OK && c.rc == RAGD_OK) rebuild_flush(&c);
    if (rc == RAGD_OK) rc = c.rc;
    free(c.vecs);
    if (rc != RAGD_OK) {
        store_index_free(idx);
        return rc;
    }
    if (missing > 0)
        RAGD_LOG(RAGD_LOG_WARN, "engine",
                 "%zu chunks have no stored embedding for %s and are not searchable; "
                 "re-ingest with --reset to repair", missing, e->embedder->model);
    store_index_free(e->index);
    e->index = idx;
    e->generation = gen;
    e->index_dirty = 1;
    RAGD_LOG(RAGD_LOG_INFO, "engine", "rebuilt vector index from SQLite: %zu vectors in %.0f ms",
             store_index_count(idx), util_now_ms() - t0);
    return RAGD_OK;
}

/* Saves the index with the generation it matches. Caller holds ingest_mu or is the only user
 * (only ingest modifies the index), so a read lock suffices for concurrent searches. */
static ragd_rc index_save(engine *e, ragd_err *err)
{
    if (e->readonly || !e->index_dirty) return RAGD_OK;
    pthread_rwlock_rdlock(&e->rw);
    ragd_rc rc = store_index_save(e->index, e->index_path, e->generation, err);
    pthread_rwlock_unlock(&e->rw);
    if (rc == RAGD_OK) e->index_dirty = 0;
    return rc;
}

static ragd_rc index_open(engine *e, ragd_err *err)
{
    int64_t docs = 0, chunks = 0, embeddings = 0;
    uint64_t gen = 0, saved_gen = 0;
    ragd_rc rc = store_db_stats(e->db, &docs, &chunks, &embeddings, err);
    if (rc == RAGD_OK) rc = store_db_generation_get(e->db, &gen, err);
    if (rc != RAGD_OK) return rc;

    ragd_err lerr = {0};
    store_index *idx = NULL;
    store_index_opts iopts = index_opts(e);
    rc = store_index_load_with(e->index_path, e->embedder->dims, &iopts, &idx, &saved_gen, &lerr);
    if (rc == RAGD_OK && saved_gen == gen && store_index_count(idx) == (size_t)chunks) {
        e->index = idx;
        e->generation = gen;
        e->index_dirty = 0;
        RAGD_LOG(RAGD_LOG_INFO, "engine", "loaded vector index: %zu vectors, generation %llu",
                 store_index_count(idx), (unsigned long long)gen);
        return RAGD_OK;
    }
    if (rc == RAGD_OK) {
        RAGD_LOG(RAGD_LOG_WARN, "engine",
                 "vector index is out of step with SQLite (index generation %llu, %zu vectors; "
                 "store generation %llu, %lld chunks): rebuilding",
                 (unsigned long long)saved_gen, store_index_count(idx), (unsigned long long)gen,
                 (long long)chunks);
        store_index_free(idx);
    } else if (rc == RAGD_ERR_NOT_FOUND) {
        if (chunks > 0)
            RAGD_LOG(RAGD_LOG_WARN, "engine", "vector index missing (%s): rebuilding", lerr.msg);
    } else {
        RAGD_LOG(RAGD_LOG_WARN, "engine", "vector index not usable (%s): rebuilding", lerr.msg);
    }
    rc = index_rebuild(e, err);
    if (rc != RAGD_OK) return rc;
    if (e->readonly) return RAGD_OK;
    return index_save(e, err);
}

/* ---- open / close ------------------------------------------------------------------------- */

ragd_rc engine_open(const ragd_cfg *cfg, unsigned flags, engine **out, ragd_err *err)
{
    int readonly = (flags & RAGD_ENGINE_READONLY) != 0;
    engine *e = calloc(1, sizeof *e);
    if (e == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    e->cfg = cfg;
    e->readonly = readonly;
    e->lock_fd = -1;
    e->last_ingest_ok = 1;
    /* Writers first: glibc's default prefers readers, and a steady stream of retrievals would
     * otherwise hold an ingest's commit back indefinitely. */
    pthread_rwlockattr_t rwattr;
    pthread_rwlockattr_init(&rwattr);
    pthread_rwlockattr_setkind_np(&rwattr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&e->rw, &rwattr);
    pthread_rwlockattr_destroy(&rwattr);
    pthread_mutex_init(&e->ingest_mu, NULL);
    pthread_mutex_init(&e->write_mu, NULL);
    pthread_mutex_init(&e->status_mu, NULL);
    atomic_init(&e->ingest_running, 0);
    atomic_init(&e->cancelled, 0);

    ragd_rc rc = RAGD_OK;
    e->index_path = util_path_join(cfg->data_dir, INDEX_FILE);
    if (e->index_path == NULL) rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    if (rc == RAGD_OK && !readonly) rc = util_mkdir_p(cfg->data_dir, err);
    if (rc == RAGD_OK && !readonly) rc = lock_take(e, cfg->data_dir, err);
    if (rc == RAGD_OK) rc = store_db_open(cfg->data_dir, readonly, &e->db, err);
    if (rc == RAGD_OK) rc = embed_provider_new(cfg, &e->embedder, err);
    if (rc == RAGD_OK)
        rc = cache_query_new(cfg, e->embedder->ops->name, e->embedder->model, e->embedder->dims,
                             &e->cache, err);
    if (rc == RAGD_OK) rc = retrieve_reranker_new(cfg, &e->reranker, err);
    if (rc == RAGD_OK) {
        int64_t docs = 0, chunks = 0, embeddings = 0;
        rc = store_db_stats(e->db, &docs, &chunks, &embeddings, err);
        /* A read-only open of an empty store must not try to record the model. */
        if (rc == RAGD_OK && !(readonly && chunks == 0)) {
            ragd_err merr = {0};
            rc = store_db_model_check(e->db, e->embedder->model, e->embedder->dims, &merr);
            if (rc == RAGD_ERR_MODEL_MISMATCH && (flags & RAGD_ENGINE_RESETTING)) {
                /* The store is about to be emptied; until then nothing may be written to it. */
                RAGD_LOG(RAGD_LOG_INFO, "engine", "%s; proceeding because of --reset", merr.msg);
                e->model_pending = 1;
                rc = RAGD_OK;
            } else if (rc != RAGD_OK) {
                ragd_err_set(err, rc, "%s", merr.msg);
            }
        }
    }
    if (rc == RAGD_OK && e->model_pending) {
        store_index_opts iopts = index_opts(e);
        rc = store_index_new_with(e->embedder->dims, &iopts, &e->index, err);
    }
    else if (rc == RAGD_OK)
        rc = index_open(e, err);
    if (rc != RAGD_OK) {
        engine_close(e);
        return rc;
    }
    *out = e;
    return RAGD_OK;
}

void engine_close(engine *e)
{
    if (e == NULL) return;
    if (e->index != NULL && e->db != NULL) {
        ragd_err err = {0};
        if (index_save(e, &err) != RAGD_OK)
            RAGD_LOG(RAGD_LOG_WARN, "engine", "could not save the vector index (%s); it will be "
                     "rebuilt from SQLite at the next start", err.msg);
    }
    store_index_free(e->index);
    cache_query_free(e->cache);
    retrieve_reranker_free(e->reranker);
    embed_provider_free(e->embedder);
    store_db_close(e->db);
    if (e->lock_fd >= 0) {
        /* The file stays (unlinking would race with another process locking it); emptying it
         * says nobody serves here. */
        if (ftruncate(e->lock_fd, 0) != 0) { /* nothing useful to do */ }
        close(e->lock_fd);
    }
    free(e->index_path);
    pthread_rwlock_destroy(&e->rw);
    pthread_mutex_destroy(&e->ingest_mu);
    pthread_mutex_destroy(&e->write_mu);
    pthread_mutex_destroy(&e->status_mu);
    free(e);
}

/* ---- ingest ------------------------------------------------------------------------------- */

void engine_ingest_report_free(engine_ingest_report *r)
{
    if (r == NULL) return;
    for (size_t i = 0; i < r->error_count; i++) {
        free(r->errors[i].source);
        free(r->errors[i].code);
        free(r->errors[i].message);
    }
    free(r->errors);
    for (size_t i = 0; i < r->warning_count; i++) {
        free(r->warnings[i].source);
        free(r->warnings[i].code);
        free(r->warnings[i].message);
    }
    free(r->warnings);
    engine_report_ocr_free(r);
    free(r->root);
    memset(r, 0, sizeof *r);
}

/* Appends to the report's errors, or its warnings when warning. */
static void report_add(engine_ingest_report *r, int warning, const char *source, ragd_rc rc,
                       const char *msg)
{
    engine_file_error **list = warning ? &r->warnings : &r->errors;
    size_t *count = warning ? &r->warning_count : &r->error_count;
    engine_file_error *p = realloc(*list, sizeof *p * (*count + 1));
    if (p == NULL) return; /* the count of failed documents still says something failed */
    *list = p;
    engine_file_error *fe = &p[*count];
    fe->source = strdup(source);
    fe->code = strdup(ragd_rc_name(rc));
    fe->message = strdup(msg);
    if (fe->source == NULL || fe->code == NULL || fe->message == NULL) {
        free(fe->source);
        free(fe->code);
        free(fe->message);
        return;
    }
    (*count)++;
}

static void report_error(engine_ingest_report *r, const char *source, ragd_rc rc, const char *msg)
{
    report_add(r, 0, source, rc, msg);
}

char *engine_ingest_report_json(const engine_ingest_report *r)
{
    json_t *errors = json_array();
    for (size_t i = 0; errors && i < r->error_count; i++)
        json_array_append_new(errors, json_pack("{s:s, s:s, s:s}", "source", r->errors[i].source,
                                                "code", r->errors[i].code, "message",
                                                r->errors[i].message));
    json_t *o = json_pack(
        "{s:s, s:b, s:{s:I, s:I, s:I, s:I, s:I, s:I}, s:{s:I, s:I, s:I, s:I}, s:o, s:f}",
        "root", r->root ? r->root : "", "reset", r->reset, "documents", "seen",
        (json_int_t)r->docs_seen, "added", (json_int_t)r->docs_added, "updated",
        (json_int_t)r->docs_updated, "unchanged", (json_int_t)r->docs_unchanged, "removed",
        (json_int_t)r->docs_removed, "failed", (json_int_t)r->docs_failed, "chunks", "added",
        (json_int_t)r->chunks_added, "removed", (json_int_t)r->chunks_removed, "embedded",
        (json_int_t)r->chunks_embedded, "deduplicated", (json_int_t)r->chunks_deduplicated,
        "errors", errors ? errors : json_array(), "duration_ms", r->duration_ms);
    if (o == NULL) return NULL;
    json_t *warnings = json_array();
    for (size_t i = 0; warnings && i < r->warning_count; i++)
        json_array_append_new(warnings, json_pack("{s:s, s:s, s:s}", "source",
                                                  r->warnings[i].source, "code",
                                                  r->warnings[i].code, "message",
                                                  r->warnings[i].message));
    json_object_set_new(o, "warnings", warnings ? warnings : json_array());
    char *ocr = engine_report_ocr_json(r);
    json_object_set_new(o, "ocr", ocr ? json_loads(ocr, 0, NULL) : json_array());
    free(ocr);
    json_object_set_new(o, "embedding",
                        json_pack("{s:I, s:I, s:f}", "batches", (json_int_t)r->embed_batches,
                                  "tokens", (json_int_t)r->embed_tokens, "estimated_cost_usd",
                                  r->embed_cost_usd));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

/* The text a chunk is embedded as: its heading path gives the chunk its context (measured: a
 * context line is worth several points of recall, docs/EMBEDDER.md), then the chunk text. A
 * chunk without headings is embedded as its text alone: the heading path comes from the content,
 * so identical text is still embedded once however many documents (and file names) hold it.
 * Returns: new string (free()). */
static char *embed_input(const char *heading, const char *text, size_t len)
{
    util_buf b = {0};
    int bad = 0;
    if (heading[0]) bad = util_buf_puts(&b, heading) != 0 || util_buf_append(&b, "\n\n", 2) != 0;
    if (bad || util_buf_append(&b, text, len) != 0) {
        util_buf_free(&b);
        return NULL;
    }
    return util_buf_steal(&b);
}

/* Per-document work prepared outside any lock: chunks, their embedding inputs, checksums and
 * vectors. */
typedef struct doc_work {
    ingest_doc doc;
    ingest_chunk_list chunks;
    char (*checksums)[UTIL_SHA256_HEX_LEN + 1];
    float *vectors; /* chunks.count * dims */
} doc_work;

static void doc_work_free(doc_work *w)
{
    ingest_doc_free(&w->doc);
    ingest_chunk_list_free(&w->chunks);
    free(w->checksums);
    free(w->vectors);
    memset(w, 0, sizeof *w);
}

typedef struct dup_entry {
    const char *checksum;
    size_t index;
} dup_entry;

static int dup_entry_cmp(const void *a, const void *b)
{
    const dup_entry *x = a, *y = b;
    int c = strcmp(x->checksum, y->checksum);
    if (c != 0) return c;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* For each of n checksums, the index of the first checksum equal to it (itself when unique).
 * Sorting makes this O(n log n) for documents with thousands of chunks.
 * Returns: new array of n indexes (free()), or NULL on OOM. */
static size_t *dup_map(char (*checksums)[UTIL_SHA256_HEX_LEN + 1], size_t n)
{
    size_t *map = malloc(sizeof *map * n);
    dup_entry *v = malloc(sizeof *v * n);
    if (map == NULL || v == NULL) {
        free(map);
        free(v);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) v[i] = (dup_entry){checksums[i], i};
    qsort(v, n, sizeof *v, dup_entry_cmp);
    for (size_t i = 0; i < n; i++) {
        size_t first = (i > 0 && strcmp(v[i].checksum, v[i - 1].checksum) == 0)
                           ? map[v[i - 1].index]
                           : v[i].index;
        map[v[i].index] = first;
    }
    free(v);
    return map;
}

/* ---- prefetch: embedding requests in flight across documents ------------------------------
 * Documents are committed one by one, so a provider that keeps several requests in flight
 * (openai) would idle between small documents. Before a window of documents is ingested, their
 * missing embeddings are gathered and sent together, each batch stored durably as it returns;
 * ingesting the documents then finds every embedding in the store. The window is bounded in
 * inputs (two rounds of requests) and in files. */

#define PREFETCH_FILES 64

typedef struct prefetch {
    char (*sums)[UTIL_SHA256_HEX_LEN + 1]; /* embedded by the current window, sorted */
    unsigned char *claimed;                /* counted in the report already */
    size_t count;
} prefetch;

static int checksum_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Returns: 1 the first time checksum is asked for after prefetch_window embedded it, else 0. */
static int prefetch_claim(prefetch *pf, const char *checksum)
{
    if (pf == NULL || pf->count == 0) return 0;
    char(*hit)[UTIL_SHA256_HEX_LEN + 1] = bsearch(checksum, pf->sums, pf->count,
                                                  sizeof *pf->sums, checksum_cmp);
    if (hit == NULL || pf->claimed[hit - pf->sums]) return 0;
    pf->claimed[hit - pf->sums] = 1;
    return 1;
}

static void prefetch_clear(prefetch *pf)
{
    free(pf->sums);
    free(pf->claimed);
    memset(pf, 0, sizeof *pf);
}

typedef struct prefetch_todo {
    char **inputs;
    size_t *lens;
    char (*sums)[UTIL_SHA256_HEX_LEN + 1];
    size_t count, cap;
    engine *e;
    engine_ingest_report *r;
} prefetch_todo;

/* Adds the missing embedding inputs of one file to t. Files that cannot be read, are unchanged
 * or fail to extract are skipped: ingest_one reports them. Returns: RAGD_OK or a store error. */
static ragd_rc prefetch_file(prefetch_todo *t, const ingest_file *f, int single, ragd_err *err)
{
    engine *e = t->e;
    store_doc old = {0};
    int found = 0;
    char *data = NULL;
    size_t len = 0;
    ragd_err ferr = {0};
    ingest_doc doc = {0};
    ingest_chunk_list chunks = {0};
    float *scratch = malloc(sizeof(float) * (size_t)e->embedder->dims);
    if (scratch == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    ragd_rc rc = store_db_doc_find(e->db, f->path, &old, &found, err);
    if (rc == RAGD_OK && util_utf8_valid(f->relative, strlen(f->relative)) &&
        util_file_read(f->path, e->cfg->max_file_bytes, &data, &len, &ferr) == RAGD_OK) {
        char checksum[UTIL_SHA256_HEX_LEN + 1];
        util_sha256_hex(data, len, checksum);
        const char *source = single && found ? old.source : f->relative;
        int unchanged = found && strcmp(old.checksum, checksum) == 0 &&
                        strcmp(old.source, source) == 0;
        ingest_chunk_opts opts = {.target_tokens = e->cfg->chunk_target_tokens,
                                  .max_tokens = e->cfg->chunk_max_tokens,
                                  .overlap = e->cfg->chunk_overlap};
        if (!unchanged && ingest_extract_run(f->path, data, len, &doc, &ferr) == RAGD_OK) {
            opts.markdown = doc.markdown;
            if (ingest_chunk_split(doc.text, doc.len, &opts, &chunks, &ferr) != RAGD_OK)
                chunks.count = 0;
        }
    }
    for (size_t i = 0; rc == RAGD_OK && i < chunks.count; i++) {
        const ingest_chunk *c = &chunks.items[i];
        char *in = embed_input(c->heading, doc.text + c->start, c->end - c->start);
        if (in == NULL) {
            rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
            break;
        }
        char sum[UTIL_SHA256_HEX_LEN + 1];
        util_sha256_hex(in, strlen(in), sum);
        int have = 0;
        for (size_t k = 0; k < t->count && !have; k++) have = strcmp(t->sums[k], sum) == 0;
        if (!have)
            rc = store_db_embedding_get(e->db, sum, e->embedder->model, e->embedder->dims,
                                        scratch, &have, err);
        if (rc != RAGD_OK || have) {
            free(in);
            continue;
        }
        if (t->count == t->cap) {
            size_t cap = t->cap ? t->cap * 2 : 64;
            char **ni = realloc(t->inputs, cap * sizeof *ni);
            if (ni) t->inputs = ni;
            size_t *nl = ni ? realloc(t->lens, cap * sizeof *nl) : NULL;
            if (nl) t->lens = nl;
            char(*ns)[UTIL_SHA256_HEX_LEN + 1] = nl ? realloc(t->sums, cap * sizeof *ns) : NULL;
            if (ns == NULL) {
                free(in);
                rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
                break;
            }
            t->sums = ns;
            t->cap = cap;
        }
        t->inputs[t->count] = in;
        t->lens[t->count] = strlen(in);
        memcpy(t->sums[t->count], sum, sizeof sum);
        t->count++;
    }
    ingest_chunk_list_free(&chunks);
    ingest_doc_free(&doc);
    store_doc_free(&old);
    free(data);
    free(scratch);
    return rc;
}

/* embed_done_fn of a prefetch: stores the batch at once, as batch_store does. */
static ragd_rc prefetch_store(void *ctx, size_t first, size_t count, const float *vectors,
                              int64_t tokens, ragd_err *err)
{
    prefetch_todo *t = ctx;
    engine *e = t->e;
    int dims = e->embedder->dims;
    ragd_rc rc = store_db_begin(e->db, err);
    for (size_t k = 0; rc == RAGD_OK && k < count; k++)
        rc = store_db_embedding_put(e->db, t->sums[first + k], e->embedder->model, dims,
                                    vectors + k * (size_t)dims, err);
    if (rc == RAGD_OK) rc = store_db_commit(e->db, err);
    if (rc != RAGD_OK) {
        store_db_rollback(e->db);
        return rc;
    }
    for (size_t k = 0; k < count; k++) {
        memcpy(e->prefetch->sums[e->prefetch->count], t->sums[first + k],
               sizeof *e->prefetch->sums);
        e->prefetch->count++;
    }
    t->r->embed_batches++;
    t->r->embed_tokens += tokens;
    t->r->embed_cost_usd += (double)tokens * e->embedder->price_per_million / 1e6;
    if (atomic_load(&e->cancelled))
        return ragd_err_set(err, RAGD_ERR_UNAVAILABLE, "ingest interrupted by shutdown");
    return RAGD_OK;
}

/* Embeds the missing inputs of files[from..] (a window bounded in inputs and files) with every
 * request in flight the provider allows. Returns: RAGD_OK and *next, the first file after the
 * window; or the upstream's error (nothing of the window is lost that returned before it). */
static ragd_rc prefetch_window(engine *e, const ingest_file_list *files, size_t from, int single,
                               engine_ingest_report *r, size_t *next, ragd_err *err)
{
    prefetch *pf = e->prefetch;
    prefetch_clear(pf);
    prefetch_todo t = {.e = e, .r = r};
    size_t want = (size_t)e->cfg->embed_concurrency * e->embedder->max_batch * 2;
    size_t j = from;
    ragd_rc rc = RAGD_OK;
    while (rc == RAGD_OK && j < files->count && j - from < PREFETCH_FILES && t.count < want &&
           !atomic_load(&e->cancelled))
        rc = prefetch_file(&t, &files->items[j++], single, err);
    *next = j;
    if (rc == RAGD_OK && t.count > 0) {
        float *vecs = malloc(sizeof(float) * t.count * (size_t)e->embedder->dims);
        pf->sums = malloc(t.count * sizeof *pf->sums);
        pf->claimed = calloc(t.count, 1);
        if (vecs == NULL || pf->sums == NULL || pf->claimed == NULL)
            rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
        ragd_err perr = {0};
        if (rc == RAGD_OK)
            rc = embed_batch_run_each(e->embedder, (const char *const *)t.inputs, t.lens, t.count,
                                      vecs, prefetch_store, &t, &perr);
        /* An input over the provider's limit is refused before anything is sent: leave it to
         * ingest_one, which reports it against its file. */
        if (rc == RAGD_ERR_TOO_LARGE) rc = RAGD_OK;
        else if (rc != RAGD_OK) ragd_err_set(err, rc, "%s", perr.msg);
        free(vecs);
        if (pf->sums) qsort(pf->sums, pf->count, sizeof *pf->sums, checksum_cmp);
    }
    for (size_t k = 0; k < t.count; k++) free(t.inputs[k]);
    free(t.inputs);
    free(t.lens);
    free(t.sums);
    return rc;
}

/* What batch_store needs to keep each returned batch. */
typedef struct batch_keep {
    engine *e;
    doc_work *w;
    const size_t *todo_idx; /* batch position -> chunk index */
    engine_ingest_report *r;
} batch_keep;

/* embed_done_fn: stores one returned batch in its own transaction, durable before the next batch
 * or the document commit can fail (one fsync per batch, not one per embedding): whatever was paid
 * for survives a crash, a Ctrl-C or an upstream failure later in the run. */
static ragd_rc batch_store(void *ctx, size_t first, size_t count, const float *vectors,
                           int64_t tokens, ragd_err *err)
{
    batch_keep *k = ctx;
    engine *e = k->e;
    int dims = e->embedder->dims;
    ragd_rc rc = store_db_begin(e->db, err);
    for (size_t t = 0; rc == RAGD_OK && t < count; t++) {
        size_t i = k->todo_idx[first + t];
        memcpy(k->w->vectors + i * (size_t)dims, vectors + t * (size_t)dims,
               sizeof(float) * (size_t)dims);
        rc = store_db_embedding_put(e->db, k->w->checksums[i], e->embedder->model, dims,
                                    vectors + t * (size_t)dims, err);
    }
    if (rc == RAGD_OK) rc = store_db_commit(e->db, err);
    if (rc != RAGD_OK) {
        store_db_rollback(e->db);
        return rc;
    }
    k->r->chunks_embedded += (int64_t)count;
    k->r->embed_batches++;
    k->r->embed_tokens += tokens;
    k->r->embed_cost_usd += (double)tokens * e->embedder->price_per_million / 1e6;
    /* Shutdown: what returned is kept; no further batch is waited for. */
    if (atomic_load(&e->cancelled))
        return ragd_err_set(err, RAGD_ERR_UNAVAILABLE, "ingest interrupted by shutdown");
    return RAGD_OK;
}

/* Chunks the document and finds or computes each chunk's embedding. New embeddings are stored
 * batch by batch as they return (each is paid work, kept even if this document later fails).
 * pf: the running directory ingest's prefetched embeddings when this is one of its files (they
 * count as embedded by it), NULL for a pushed document. */
static ragd_rc doc_prepare(engine *e, doc_work *w, prefetch *pf, engine_ingest_report *r,
                           ragd_err *err)
{
    const ragd_cfg *cfg = e->cfg;
    ingest_chunk_opts opts = {.target_tokens = cfg->chunk_target_tokens,
                              .max_tokens = cfg->chunk_max_tokens,
                              .overlap = cfg->chunk_overlap,
                              .markdown = w->doc.markdown};
    ragd_rc rc = ingest_doc_split(&w->doc, &opts, &w->chunks, err);
    if (rc != RAGD_OK) return rc;
    size_t n = w->chunks.count;
    int dims = e->embedder->dims;
    if (n == 0) return RAGD_OK;
    w->checksums = calloc(n, sizeof *w->checksums);
    w->vectors = calloc(n * (size_t)dims, sizeof(float));
    char **inputs = calloc(n, sizeof *inputs);
    const char **todo = calloc(n, sizeof *todo);
    size_t *todo_len = calloc(n, sizeof *todo_len);
    size_t *todo_idx = calloc(n, sizeof *todo_idx);
    float *fresh = NULL;
    size_t *dup_of = NULL;
    size_t ntodo = 0;
    if (!w->checksums || !w->vectors || !inputs || !todo || !todo_len || !todo_idx) {
        rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n && rc == RAGD_OK; i++) {
        const ingest_chunk *c = &w->chunks.items[i];
        inputs[i] = embed_input(c->heading, w->doc.text + c->start, c->end - c->start);
        if (inputs[i] == NULL) {
            rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
            break;
        }
        util_sha256_hex(inputs[i], strlen(inputs[i]), w->checksums[i]);
    }
    if (rc == RAGD_OK && (dup_of = dup_map(w->checksums, n)) == NULL)
        rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n && rc == RAGD_OK; i++) {
        if (dup_of[i] != i) { /* identical chunks inside this document share one embedding */
            r->chunks_deduplicated++;
            continue;
        }
        int found = 0;
        rc = store_db_embedding_get(e->db, w->checksums[i], e->embedder->model, dims,
                                    w->vectors + i * (size_t)dims, &found, err);
        if (rc != RAGD_OK) break;
        if (found) {
            if (prefetch_claim(pf, w->checksums[i]))
                r->chunks_embedded++; /* embedded moments ago by prefetch_window */
            else
                r->chunks_deduplicated++;
        } else {
            todo[ntodo] = inputs[i];
            todo_len[ntodo] = strlen(inputs[i]);
            todo_idx[ntodo] = i;
            ntodo++;
        }
    }
    /* A chunk over the provider's input limit is refused here, naming it, before anything of
     * this document is sent (and paid for). */
    size_t limit = e->embedder->max_input_tokens;
    for (size_t t = 0; rc == RAGD_OK && limit > 0 && t < ntodo; t++) {
        size_t bound = embed_tokens_bound(todo[t], todo_len[t]);
        if (bound > limit) {
            const ingest_chunk *c = &w->chunks.items[todo_idx[t]];
            rc = ragd_err_set(err, RAGD_ERR_TOO_LARGE,
                              "chunk %zu (%s) is about %zu tokens, over the %zu-token input "
                              "limit of %s; lower [chunk] max_tokens", todo_idx[t] + 1,
                              c->heading[0] ? c->heading : "no heading", bound, limit,
                              e->embedder->model);
        }
    }
    if (rc == RAGD_OK && ntodo > 0) {
        fresh = malloc(sizeof(float) * ntodo * (size_t)dims);
        if (fresh == NULL) rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
        batch_keep k = {.e = e, .w = w, .todo_idx = todo_idx, .r = r};
        if (rc == RAGD_OK)
            rc = embed_batch_run_each(e->embedder, todo, todo_len, ntodo, fresh, batch_store, &k,
                                      err);
    }
    for (size_t i = 0; rc == RAGD_OK && i < n; i++)
        if (dup_of[i] != i)
            memcpy(w->vectors + i * (size_t)dims, w->vectors + dup_of[i] * (size_t)dims,
                   sizeof(float) * (size_t)dims);
done:
    for (size_t i = 0; inputs && i < n; i++) free(inputs[i]);
    free(inputs);
    free(todo);
    free(todo_len);
    free(todo_idx);
    free(fresh);
    free(dup_of);
    return rc;
}

/* Brings the in-memory index in step with a transaction SQLite has just committed (generation
 * gen): removes old ids, adds new ones. If that fails, the index is rebuilt from SQLite so the two
 * never disagree. Caller holds the write lock. */
static ragd_rc index_apply(engine *e, const int64_t *old_ids, size_t old_n, const int64_t *new_ids,
                           size_t new_n, const float *vectors, uint64_t gen, ragd_err *err)
{
    ragd_err ierr = {0};
    ragd_rc rc = RAGD_OK;
    if (old_n > 0) rc = store_index_remove(e->index, old_n, old_ids, NULL, &ierr);
    if (rc == RAGD_OK && new_n > 0) rc = store_index_add(e->index, new_n, new_ids, vectors, &ierr);
    if (rc == RAGD_OK && store_index_rebuild_due(e->index)) {
        /* HNSW keeps removed vectors as tombstones; past a tenth of the index, rebuild. */
        RAGD_LOG(RAGD_LOG_INFO, "engine", "%zu removed vectors in the %s index: rebuilding",
                 store_index_tombstones(e->index), store_index_factory(e->index));
        return index_rebuild(e, err);
    }
    if (rc == RAGD_OK) {
        e->generation = gen;
        e->index_dirty = 1;
        return RAGD_OK;
    }
    RAGD_LOG(RAGD_LOG_ERROR, "engine", "index update failed (%s): rebuilding", ierr.msg);
    return index_rebuild(e, err);
}

/* Applies one document: SQLite transaction, then the in-memory index, both under the write lock.
 * existing_id is 0 for a new document. */
static ragd_rc doc_commit(engine *e, const store_doc *row, int64_t existing_id, doc_work *w,
                          size_t *removed_chunks, ragd_err *err)
{
    size_t n = w->chunks.count;
    int64_t *old_ids = NULL, *new_ids = NULL;
    size_t old_n = 0;
    int64_t doc_id = 0;
    uint64_t gen = 0;
    if (n > 0 && (new_ids = calloc(n, sizeof *new_ids)) == NULL)
        return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");

    pthread_rwlock_wrlock(&e->rw);
    ragd_rc rc = store_db_begin(e->db, err);
    if (rc == RAGD_OK && existing_id != 0) {
        rc = store_db_doc_chunk_ids(e->db, existing_id, &old_ids, &old_n, err);
        if (rc == RAGD_OK) rc = store_db_doc_chunks_delete(e->db, existing_id, err);
    }
    if (rc == RAGD_OK) rc = store_db_doc_put(e->db, row, &doc_id, err);
    for (size_t i = 0; rc == RAGD_OK && i < n; i++) {
        const ingest_chunk *c = &w->chunks.items[i];
        store_chunk_in in = {.ordinal = (int)i,
                             .text = w->doc.text + c->start,
                             .text_len = c->end - c->start,
                             .heading = c->heading,
                             .tokens = (int64_t)c->tokens,
                             .char_start = (int64_t)c->start,
                             .char_end = (int64_t)c->end,
                             .checksum = w->checksums[i],
                             .page = c->page};
        rc = store_db_chunk_put(e->db, doc_id, &in, &new_ids[i], err);
    }
    if (rc == RAGD_OK) rc = store_db_generation_bump(e->db, &gen, err);
    if (rc == RAGD_OK) rc = store_db_commit(e->db, err);
    if (rc != RAGD_OK) {
        store_db_rollback(e->db);
    } else {
        rc = index_apply(e, old_ids, old_n, new_ids, n, w->vectors, gen, err);
        *removed_chunks = old_n;
    }
    pthread_rwlock_unlock(&e->rw);
    free(old_ids);
    free(new_ids);
    return rc;
}

/* Deletes one document (a file that disappeared) from SQLite and the index. */
static ragd_rc doc_remove(engine *e, int64_t doc_id, size_t *removed_chunks, ragd_err *err)
{
    int64_t *ids = NULL;
    size_t n = 0;
    uint64_t gen = 0;
    pthread_rwlock_wrlock(&e->rw);
    ragd_rc rc = store_db_begin(e->db, err);
    if (rc == RAGD_OK) rc = store_db_doc_chunk_ids(e->db, doc_id, &ids, &n, err);
    if (rc == RAGD_OK) rc = store_db_doc_delete(e->db, doc_id, err);
    if (rc == RAGD_OK) rc = store_db_generation_bump(e->db, &gen, err);
    if (rc == RAGD_OK) rc = store_db_commit(e->db, err);
    if (rc != RAGD_OK) {
        store_db_rollback(e->db);
    } else {
        rc = index_apply(e, ids, n, NULL, 0, NULL, gen, err);
        *removed_chunks = n;
    }
    pthread_rwlock_unlock(&e->rw);
    free(ids);
    return rc;
}

static ragd_rc store_reset(engine *e, ragd_err *err)
{
    pthread_rwlock_wrlock(&e->rw);
    uint64_t gen = 0;
    ragd_rc rc = store_db_begin(e->db, err);
    if (rc == RAGD_OK) rc = store_db_reset(e->db, err);
    if (rc == RAGD_OK) rc = store_db_commit(e->db, err);
    if (rc != RAGD_OK) store_db_rollback(e->db);
    if (rc == RAGD_OK) rc = store_db_generation_get(e->db, &gen, err);
    if (rc == RAGD_OK) rc = store_index_clear(e->index, err);
    if (rc == RAGD_OK) {
        e->generation = gen;
        e->index_dirty = 1;
        rc = store_db_model_check(e->db, e->embedder->model, e->embedder->dims, err);
        if (rc == RAGD_OK) e->model_pending = 0;
    }
    pthread_rwlock_unlock(&e->rw);
    return rc;
}

static int path_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Ingests one crawled file. Returns RAGD_OK when the file was handled (including per-file
 * failures, which go into the report); an error only for failures of the store itself. */
/* Returns: a new copy of s with every byte that is not valid UTF-8 replaced by '?' (for names
 * that must go into JSON), or NULL on OOM. */
static char *utf8_sanitized(const char *s)
{
    size_t n = strlen(s);
    char *out = util_strndup(s, n);
    for (size_t i = 0; out && i < n;) {
        size_t bad = util_utf8_first_invalid(out + i, n - i);
        if (bad == n - i) break;
        out[i + bad] = '?';
        i += bad + 1;
    }
    return out;
}

static ragd_rc ingest_one(engine *e, const ingest_file *f, int single,
                          const ingest_extract_opts *xopts, engine_ingest_report *r,
                          ragd_err *err)
{
    char *data = NULL;
    size_t len = 0;
    ragd_err ferr = {0};
    store_doc old = {0};
    int found = 0;
    doc_work w = {0};
    if (!util_utf8_valid(f->relative, strlen(f->relative))) {
        char *shown = utf8_sanitized(f->relative);
        r->docs_failed++;
        report_error(r, shown ? shown : "?", RAGD_ERR_INVALID,
                     "file name is not valid UTF-8; rename the file");
        free(shown);
        return RAGD_OK;
    }
    ragd_rc rc = store_db_doc_find(e->db, f->path, &old, &found, err);
    if (rc != RAGD_OK) return rc;
    /* A file ingested on its own keeps the source its directory ingest gave it. */
    char *source = single && found ? old.source : f->relative;

    rc = util_file_read(f->path, e->cfg->max_file_bytes, &data, &len, &ferr);
    char checksum[UTIL_SHA256_HEX_LEN + 1];
    if (rc == RAGD_OK) util_sha256_hex(data, len, checksum);
    if (rc == RAGD_OK && found && strcmp(old.checksum, checksum) == 0 &&
        strcmp(old.source, source) == 0) {
        r->docs_unchanged++;
        goto done;
    }
    if (rc == RAGD_OK) rc = ingest_extract_file(f->path, data, len, xopts, &w.doc, &ferr);
    if (rc == RAGD_OK && w.doc.warning)
        report_add(r, 1, f->relative, RAGD_ERR_INVALID, w.doc.warning);
    if (rc == RAGD_OK) rc = doc_prepare(e, &w, e->prefetch, r, &ferr);
    if (rc == RAGD_OK && atomic_load(&e->cancelled)) {
        rc = ragd_err_set(err, RAGD_ERR_UNAVAILABLE, "ingest interrupted by shutdown");
        goto done;
    }
    if (rc == RAGD_OK) {
        store_doc row = {.path = f->path,
                         .source = source,
                         .title = w.doc.title,
                         .checksum = checksum,
                         .size = (int64_t)len,
                         .mtime = f->mtime,
                         .tags_json = w.doc.tags_json,
                         .metadata_json = w.doc.metadata_json};
        size_t removed = 0;
        rc = doc_commit(e, &row, found ? old.id : 0, &w, &removed, &ferr);
        if (rc == RAGD_OK) {
            if (found)
                r->docs_updated++;
            else
                r->docs_added++;
            r->chunks_added += (int64_t)w.chunks.count;
            r->chunks_removed += (int64_t)removed;
            engine_report_ocr_add(r, f->relative, &w.doc);
        }
    }
    if (rc != RAGD_OK) {
        /* Store-level failures end the ingest; everything else is this file's problem. */
        /* An embedding upstream that refused (bad key, no quota, unknown model) or still failed
         * after its retries would fail every later file too: stop at once with its message.
         * Embeddings already returned are kept; the next ingest sends only what is missing. */
        if (rc == RAGD_ERR_STORE || rc == RAGD_ERR_INDEX || rc == RAGD_ERR_NOMEM ||
            rc == RAGD_ERR_UPSTREAM_REFUSED || rc == RAGD_ERR_EMBED || rc == RAGD_ERR_TIMEOUT ||
            rc == RAGD_ERR_UNAVAILABLE) {
            ragd_err_set(err, rc, "%s: %s", f->relative, ferr.msg);
            goto done;
        }
        r->docs_failed++;
        report_error(r, f->relative, rc, ferr.msg);
        RAGD_LOG(RAGD_LOG_WARN, "ingest", "%s: %s", f->relative, ferr.msg);
        rc = RAGD_OK;
    }
done:
    doc_work_free(&w);
    store_doc_free(&old);
    free(data);
    return rc;
}

void engine_ingest_cancel(engine *e)
{
    if (e) atomic_store(&e->cancelled, 1);
}

ragd_rc engine_ingest(engine *e, const char *path, int reset, engine_progress_fn progress,
                      void *progress_ctx, engine_ingest_report *report, ragd_err *err)
{
    engine_ingest_opts o = {.path = path, .reset = reset, .progress = progress,
                            .progress_ctx = progress_ctx};
    return engine_ingest_run(e, &o, report, err);
}

ragd_rc engine_ingest_run(engine *e, const engine_ingest_opts *opts,
                          engine_ingest_report *report, ragd_err *err)
{
    const char *path = opts->path;
    int reset = opts->reset;
    engine_progress_fn progress = opts->progress;
    void *progress_ctx = opts->progress_ctx;
    ingest_ocr_opts ocr = {.mode = ingest_ocr_mode_parse(e->cfg->ingest_ocr),
                           .languages = e->cfg->ingest_ocr_languages,
                           .page_timeout_ms = e->cfg->ingest_ocr_page_timeout_s * 1000,
                           .max_pages = e->cfg->ingest_ocr_max_pages,
                           .dpi = e->cfg->ingest_ocr_dpi};
    ingest_extract_opts xopts = {.unknown_as_text = e->cfg->ingest_unknown_as_text,
                                 .repair_utf8 = strcmp(e->cfg->ingest_invalid_utf8, "repair") == 0,
                                 .ocr = &ocr};
    ingest_globs globs = {
        .include = opts->include ? opts->include : (const char *const *)e->cfg->ingest_include,
        .include_count = opts->include ? opts->include_count : e->cfg->ingest_include_count,
        .exclude = opts->exclude ? opts->exclude : (const char *const *)e->cfg->ingest_exclude,
        .exclude_count = opts->exclude ? opts->exclude_count : e->cfg->ingest_exclude_count};
    ingest_crawl_opts copts = {.extract = &xopts, .globs = &globs};
    if (e->readonly)
        return ragd_err_set(err, RAGD_ERR_UNSUPPORTED, "the store is open read-only");
    if (e->model_pending && !reset)
        return ragd_err_set(err, RAGD_ERR_MODEL_MISMATCH, "the store was built with another "
                            "embedding model; only an ingest with reset may run");
    if (atomic_load(&e->cancelled))
        return ragd_err_set(err, RAGD_ERR_UNAVAILABLE, "ragd is shutting down; no ingest starts");
    if (pthread_mutex_trylock(&e->ingest_mu) != 0)
        return ragd_err_set(err, RAGD_ERR_BUSY, "an ingest is already running");
    atomic_store(&e->ingest_running, 1);
    double t0 = util_now_ms();
    engine_ingest_report r = {.reset = reset};
    ingest_file_list files = {0};
    char *root = NULL;
    char **seen = NULL;
    int64_t *ids = NULL;
    char **paths = NULL;
    size_t nprev = 0;

    /* Crawl first: a bad path must leave the store exactly as it was, even with reset. */
    struct stat st;
    int single = stat(path, &st) == 0 && !S_ISDIR(st.st_mode);
    ragd_rc rc = ingest_crawl_scan(path, &copts, &files, &root, err);
    pthread_mutex_lock(&e->write_mu);
    if (rc == RAGD_OK && reset) rc = store_reset(e, err);
    pthread_mutex_unlock(&e->write_mu);
    r.root = root;
    root = NULL;
    for (size_t i = 0; rc == RAGD_OK && i < files.skipped_count; i++)
        report_add(&r, 1, files.skipped[i].relative, RAGD_ERR_FORBIDDEN, files.skipped[i].path);
    if (rc == RAGD_OK && opts->progress2) {
        engine_ingest_progress p = {0, files.count, 0, 0, ""};
        opts->progress2(progress_ctx, &p);
    }
    prefetch pf = {0};
    size_t prefetched = 0; /* files before this index had their embeddings prefetched */
    int use_prefetch = e->embedder->ops->run != NULL && e->cfg->embed_concurrency > 1;
    e->prefetch = &pf;
    for (size_t i = 0; rc == RAGD_OK && i < files.count; i++) {
        if (use_prefetch && i >= prefetched && !atomic_load(&e->cancelled)) {
            /* the writer connection is shared with pushed documents: one user at a time */
            pthread_mutex_lock(&e->write_mu);
            rc = prefetch_window(e, &files, i, single, &r, &prefetched, err);
            pthread_mutex_unlock(&e->write_mu);
        }
        if (rc != RAGD_OK) break;
        if (atomic_load(&e->cancelled)) {
            rc = ragd_err_set(err, RAGD_ERR_UNAVAILABLE, "ingest interrupted by shutdown after "
                              "%zu of %zu files; run it again to finish", i, files.count);
            break;
        }
        r.docs_seen++;
        /* Pushed documents take their turn between files. */
        pthread_mutex_lock(&e->write_mu);
        rc = ingest_one(e, &files.items[i], single, &xopts, &r, err);
        pthread_mutex_unlock(&e->write_mu);
        if (rc == RAGD_OK && progress) progress(progress_ctx, i + 1, files.count,
                                                files.items[i].relative);
        if (rc == RAGD_OK && opts->progress2) {
            engine_ingest_progress p = {i + 1, files.count, r.chunks_embedded, r.docs_failed,
                                        files.items[i].relative};
            opts->progress2(progress_ctx, &p);
        }
    }
    pthread_mutex_lock(&e->write_mu);

    prefetch_clear(&pf);
    e->prefetch = NULL;

    /* Documents under the crawled directory that no longer exist are removed; ingesting a single
     * file leaves the rest of its directory alone, and so does a crawl that could not read
     * everything (an unreadable directory must not look like deleted files). */
    if (rc == RAGD_OK && !single && files.unreadable > 0) {
        char msg[200];
        snprintf(msg, sizeof msg, "%zu directories or entries could not be read (see the log); "
                 "documents no longer found were kept, not removed", files.unreadable);
        report_error(&r, r.root, RAGD_ERR_IO, msg);
    }
    if (rc == RAGD_OK && !single && files.unreadable == 0) {
        char *prefix = util_path_join(r.root, "");
        seen = calloc(files.count + 1, sizeof *seen);
        if (prefix == NULL || seen == NULL) rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
        if (rc == RAGD_OK) {
            for (size_t i = 0; i < files.count; i++) seen[i] = files.items[i].path;
            qsort(seen, files.count, sizeof *seen, path_cmp);
            rc = store_db_doc_list_prefix(e->db, prefix, &ids, &paths, &nprev, err);
        }
        for (size_t i = 0; rc == RAGD_OK && i < nprev; i++) {
            const char *key = paths[i];
            if (bsearch(&key, seen, files.count, sizeof *seen, path_cmp) != NULL) continue;
            /* A document the globs do not select is out of this ingest's scope: kept. */
            if (!ingest_glob_selected(&globs, key + strlen(prefix))) continue;
            size_t removed = 0;
            rc = doc_remove(e, ids[i], &removed, err);
            if (rc == RAGD_OK) {
                r.docs_removed++;
                r.chunks_removed += (int64_t)removed;
            }
        }
        free(prefix);
    }

    ragd_err serr = {0};
    if (rc == RAGD_OK)
        rc = store_db_embeddings_prune(e->db, e->embedder->model, e->embedder->dims, NULL, err);
    if (rc == RAGD_OK) rc = store_db_sync(e->db, err);
    if (index_save(e, &serr) != RAGD_OK)
        RAGD_LOG(RAGD_LOG_WARN, "engine", "could not save the vector index (%s); it will be "
                 "rebuilt from SQLite at the next start", serr.msg);
    pthread_mutex_unlock(&e->write_mu);

    for (size_t i = 0; paths && i < nprev; i++) free(paths[i]);
    free(paths);
    free(ids);
    free(seen);
    ingest_file_list_free(&files);
    r.duration_ms = util_now_ms() - t0;

    pthread_mutex_lock(&e->status_mu);
    e->last_ingest_at = util_unix_time();
    e->last_ingest_ok = rc == RAGD_OK && r.docs_failed == 0;
    pthread_mutex_unlock(&e->status_mu);
    atomic_store(&e->ingest_running, 0);
    pthread_mutex_unlock(&e->ingest_mu);

    if (rc != RAGD_OK) {
        engine_ingest_report_free(&r);
        return rc;
    }
    RAGD_LOG(RAGD_LOG_INFO, "ingest",
             "%s: %lld seen, %lld added, %lld updated, %lld unchanged, %lld removed, %lld failed; "
             "%lld chunks embedded (%lld tokens, about $%.4f) in %.0f ms",
             r.root, (long long)r.docs_seen, (long long)r.docs_added, (long long)r.docs_updated,
             (long long)r.docs_unchanged, (long long)r.docs_removed, (long long)r.docs_failed,
             (long long)r.chunks_embedded, (long long)r.embed_tokens, r.embed_cost_usd,
             r.duration_ms);
    *report = r;
    return RAGD_OK;
}

/* ---- retrieve ----------------------------------------------------------------------------- */

void engine_answer_free(engine_answer *a)
{
    if (a == NULL) return;
    for (size_t i = 0; i < a->count; i++) store_hit_free(&a->results[i].hit);
    free(a->results);
    free(a->clarify);
    retrieve_context_free(&a->context);
    memset(a, 0, sizeof *a);
}

static int hit_matches(const engine_query *q, const store_hit *h)
{
    if (q->source_prefix && strncmp(h->source, q->source_prefix, strlen(q->source_prefix)) != 0)
        return 0;
    if (q->tag_count == 0 && q->filter == NULL) return 1;
    json_t *tags = json_loads(h->tags_json, 0, NULL);
    if (q->filter != NULL) {
        json_t *meta = json_loads(h->metadata_json, 0, NULL);
        int match = retrieve_filter_match(q->filter, h->source, tags, meta, h->page);
        json_decref(meta);
        if (!match) {
            json_decref(tags);
            return 0;
        }
        if (q->tag_count == 0) {
            json_decref(tags);
            return 1;
        }
    }
    int ok = json_is_array(tags);
    for (size_t t = 0; ok && t < q->tag_count; t++) {
        int present = 0;
        size_t i;
        json_t *v;
        json_array_foreach(tags, i, v) {
            if (json_is_string(v) && strcmp(json_string_value(v), q->tags_all[t]) == 0) {
                present = 1;
                break;
            }
        }
        ok = present;
    }
    json_decref(tags);
    return ok;
}

/* Returns: 1 when a result with this score is kept: at least min_score, and above 0 (a score of
 * 0 or less shares nothing with the query). */
static int score_kept(const engine_query *q, float score)
{
    return score > 0.0f && (double)score >= q->min_score;
}

static int has_filters(const engine_query *q)
{
    return (q->source_prefix && q->source_prefix[0]) || q->tag_count > 0 || q->filter != NULL;
}

/* Embeds the query into qv (e->embedder->dims floats, caller-owned) and records the time spent in
 * a->embed_ms. Returns: RAGD_OK or the embedder's error. */
static ragd_rc query_embed(engine *e, const engine_query *q, float *qv, engine_answer *a,
                           ragd_err *err)
{
    /* The cache first (in-process LRU, then Redis): a repeated question costs no embedding
     * request. Cache time and embedding time are reported apart. */
    double t0 = util_now_ms();
    cache_layer layer = cache_query_get(e->cache, q->query, q->query_len, qv);
    double t1 = util_now_ms();
    a->cache_layer = cache_layer_name(layer);
    a->cache_ms = t1 - t0;
    if (layer != RAGD_CACHE_MISS) return RAGD_OK;
    const char *texts[1] = {q->query};
    size_t lens[1] = {q->query_len};
    ragd_rc rc = embed_batch_run(e->embedder, texts, lens, 1, qv, err);
    double t2 = util_now_ms();
    a->embed_ms = t2 - t1;
    if (rc != RAGD_OK) return rc;
    cache_query_put(e->cache, q->query, q->query_len, qv);
    a->cache_ms += util_now_ms() - t2;
    return RAGD_OK;
}

#ifndef RAGD_COVERAGE_TOP
#define RAGD_COVERAGE_TOP 5 /* results whose text counts for the coverage: a default context */
#endif

/* One side's candidates (vector or keyword) after the filters, best first. */
typedef struct side_list {
    int64_t *ids;
    double *scores;
    store_hit *hits; /* owned */
    size_t count;
} side_list;

static void side_list_free(side_list *l)
{
    for (size_t i = 0; l->hits && i < l->count; i++) store_hit_free(&l->hits[i]);
    free(l->ids);
    free(l->scores);
    free(l->hits);
    memset(l, 0, sizeof *l);
}

/* Fetches the chunks of ids[0..found) and appends those passing the filters (and keep) to out,
 * up to pool. Caller holds the read lock. */
static ragd_rc side_collect(engine *e, const engine_query *q, const int64_t *ids,
                            const double *scores, size_t found, size_t pool, side_list *out,
                            engine_answer *a, ragd_err *err)
{
    for (size_t i = 0; i < out->count; i++) store_hit_free(&out->hits[i]);
    out->count = 0;
    free(out->ids);
    free(out->scores);
    free(out->hits);
    out->ids = calloc(found ? found : 1, sizeof *out->ids);
    out->scores = calloc(found ? found : 1, sizeof *out->scores);
    out->hits = calloc(found ? found : 1, sizeof *out->hits);
    store_hit *hits = calloc(found ? found : 1, sizeof *hits);
    if (!out->ids || !out->scores || !out->hits || !hits) {
        free(hits);
        return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    }
    double tf = util_now_ms();
    ragd_rc rc = store_db_chunks_get(e->db, ids, found, hits, err);
    a->fetch_ms += util_now_ms() - tf;
    for (size_t i = 0; rc == RAGD_OK && i < found && out->count < pool; i++) {
        if (hits[i].chunk_id == 0) continue; /* cannot happen under the lock; be safe */
        if (!hit_matches(q, &hits[i])) continue;
        out->ids[out->count] = ids[i];
        out->scores[out->count] = scores[i];
        out->hits[out->count] = hits[i];
        memset(&hits[i], 0, sizeof hits[i]);
        out->count++;
    }
    for (size_t i = 0; i < found; i++) store_hit_free(&hits[i]);
    free(hits);
    return rc;
}

/* Pivoted length normalisation of the vector side (hybrid only): the local embedder's cosine
 * favours short chunks (L2 normalisation of a bag of words), BM25 does not. Each cosine is
 * multiplied by L / ((1 - slope) * P + slope * L), L the chunk's tokens and P the mean over the
 * candidates, and the list re-sorted. slope 0 leaves it alone. docs/RETRIEVAL.md has the
 * numbers. */
static void vector_length_pivot(side_list *l, double slope)
{
    if (l->count == 0 || slope <= 0.0) return;
    double mean = 0.0;
    for (size_t i = 0; i < l->count; i++) mean += (double)l->hits[i].tokens;
    mean /= (double)l->count;
    for (size_t i = 0; i < l->count; i++) {
        double len = (double)l->hits[i].tokens;
        double d = (1.0 - slope) * mean + slope * len;
        if (d > 0.0) l->scores[i] *= len / d;
    }
    for (size_t i = 1; i < l->count; i++) /* insertion sort: short lists, mostly in order */
        for (size_t j = i; j > 0 && l->scores[j] > l->scores[j - 1]; j--) {
            double ts = l->scores[j];
            l->scores[j] = l->scores[j - 1];
            l->scores[j - 1] = ts;
            int64_t ti = l->ids[j];
            l->ids[j] = l->ids[j - 1];
            l->ids[j - 1] = ti;
            store_hit th = l->hits[j];
            l->hits[j] = l->hits[j - 1];
            l->hits[j - 1] = th;
        }
}


/* Grows a side's candidate buffers (ids, scores; caller-owned, freed by the caller whatever
 * happens) to want entries. Returns: RAGD_OK or RAGD_ERR_NOMEM (the buffers keep their old
 * contents and stay valid). */
static ragd_rc side_buffers_grow(int64_t **ids, double **scores, size_t want, ragd_err *err)
{
    int64_t *nids = realloc(*ids, sizeof **ids * want);
    if (nids == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    *ids = nids;
    double *ns = realloc(*scores, sizeof **scores * want);
    if (ns == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    *scores = ns;
    return RAGD_OK;
}
/* The vector side: up to pool chunks with a cosine above 0 that pass the filters. Without filters
 * pool candidates suffice; with filters the search widens until pool pass or the index is
 * exhausted. Caller holds the read lock. */
static ragd_rc vector_side(engine *e, const engine_query *q, const float *qv, size_t pool,
                           side_list *out, engine_answer *a, ragd_err *err)
{
    size_t total = store_index_count(e->index);
    size_t want = has_filters(q) ? pool * 4 : pool;
    int64_t *ids = NULL;
    float *fscores = NULL;
    double *scores = NULL;
    ragd_rc rc = RAGD_OK;
    while (rc == RAGD_OK && total > 0) {
        if (want > total) want = total;
        if ((rc = side_buffers_grow(&ids, &scores, want, err)) != RAGD_OK) break;
        float *nf = realloc(fscores, sizeof *fscores * want);
        if (nf == NULL) {
            rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
            break;
        }
        fscores = nf;
        size_t found = 0;
        double ts = util_now_ms();
        rc = store_index_search(e->index, qv, want, ids, fscores, &found, err);
        a->search_ms += util_now_ms() - ts;
        if (rc != RAGD_OK) break;
        size_t kept = 0; /* sorted: the rest score 0 or less, nothing in common with the query */
        while (kept < found && fscores[kept] > 0.0f) {
            scores[kept] = (double)fscores[kept];
            kept++;
        }
        a->candidates += found;
        rc = side_collect(e, q, ids, scores, kept, pool, out, a, err);
        if (rc != RAGD_OK || out->count >= pool || want >= total || kept < found ||
            !has_filters(q))
            break;
        want *= 4;
    }
    free(ids);
    free(fscores);
    free(scores);
    return rc;
}

/* The keyword side: up to pool BM25 matches that pass the filters, widened like vector_side.
 * Caller holds the read lock. */
static ragd_rc keyword_side(engine *e, const engine_query *q, const char *match, size_t pool,
                            side_list *out, engine_answer *a, ragd_err *err)
{
    if (match == NULL || match[0] == '\0' || !store_db_fts_available(e->db)) return RAGD_OK;
    size_t want = has_filters(q) ? pool * 4 : pool;
    int64_t *ids = NULL;
    double *scores = NULL;
    ragd_rc rc = RAGD_OK;
    for (;;) {
        if ((rc = side_buffers_grow(&ids, &scores, want, err)) != RAGD_OK) break;
        size_t found = 0;
        double ts = util_now_ms();
        rc = store_db_fts_search(e->db, match, want, ids, scores, &found, err);
        a->search_ms += util_now_ms() - ts;
        if (rc != RAGD_OK) break;
        a->candidates += found;
        rc = side_collect(e, q, ids, scores, found, pool, out, a, err);
        if (rc != RAGD_OK || out->count >= pool || found < want || !has_filters(q)) break;
        want *= 4;
    }
    free(ids);
    free(scores);
    return rc;
}

/* The retrieval settings for q: intent, mode, fusion, diversity, k, budget. Returns: 0 when the
 * intent does not retrieve. */
static int retrieve_settings(const ragd_cfg *cfg, const engine_query *q, engine_answer *a,
                             size_t *k, ragd_err *err, ragd_rc *rc)
{
    *rc = RAGD_OK;
    *k = (size_t)q->k;
    a->mode = q->mode ? q->mode : retrieve_mode_parse(cfg->retrieve_mode);
    a->fusion = q->fusion ? q->fusion : retrieve_fusion_parse(cfg->retrieve_fusion);
    a->diversity = q->diversity ? q->diversity == RAGD_DIVERSITY_ON : cfg->retrieve_diversity;
    a->max_context_tokens = cfg->retrieve_max_context_tokens;
    if (a->mode == RAGD_MODE_DEFAULT) a->mode = RAGD_MODE_HYBRID;
    if (a->fusion == RAGD_FUSION_DEFAULT) a->fusion = RAGD_FUSION_RRF;
    if (q->intent != NULL) {
        retrieve_intent it;
        *rc = retrieve_intent_find(cfg->intent_retrieve, q->intent, &it, err);
        if (*rc != RAGD_OK || !it.retrieves) return 0;
        if (it.k > 0 && !q->k_given)
            *k = (size_t)(it.k < cfg->retrieve_max_k ? it.k : cfg->retrieve_max_k);
        if (it.max_tokens > 0) a->max_context_tokens = it.max_tokens;
    }
    if (q->max_context_tokens > 0) a->max_context_tokens = q->max_context_tokens;
    return 1;
}

/* Fuses the two sides into a's results (k at most): score per mode, min_score, optional MMR.
 * Hits move from the side lists into the results. */
static ragd_rc results_fuse(engine *e, const engine_query *q, side_list *vs, side_list *ks,
                            size_t k, engine_answer *a, ragd_err *err)
{
    size_t n = vs->count + ks->count;
    retrieve_cand *c = calloc(n ? n : 1, sizeof *c);
    if (c == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    size_t m = 0;
    for (size_t i = 0; i < vs->count; i++)
        c[m++] = (retrieve_cand){.id = vs->ids[i], .vector_score = vs->scores[i],
                                 .vector_rank = (int)i + 1, .slot = i};
    for (size_t i = 0; i < ks->count; i++) {
        size_t j = 0;
        while (j < vs->count && c[j].id != ks->ids[i]) j++; /* lists are short (candidates) */
        if (j == vs->count)
            c[j = m++] = (retrieve_cand){.id = ks->ids[i], .slot = vs->count + i};
        c[j].keyword_score = ks->scores[i];
        c[j].keyword_rank = (int)i + 1;
    }
    retrieve_fuse_opts fo = {.mode = a->mode, .fusion = a->fusion,
                             .rrf_k = (double)e->cfg->retrieve_rrf_k,
                             .vector_weight = e->cfg->retrieve_vector_weight};
    retrieve_fuse(c, m, &fo);
    /* Vector mode keeps the cosine rule (above 0 and min_score). Fused and keyword scores are
     * normalised to [0, 1] over the candidates, so the weakest candidate of a side may score 0
     * while it still matched: there only min_score applies. */
    size_t kept = 0;
    while (kept < m && (a->mode == RAGD_MODE_VECTOR ? score_kept(q, (float)c[kept].score)
                                                    : c[kept].score >= q->min_score))
        kept++;
    size_t *order = calloc(kept ? kept : 1, sizeof *order);
    double *rel = calloc(kept ? kept : 1, sizeof *rel);
    const char **texts = calloc(kept ? kept : 1, sizeof *texts);
    ragd_rc rc = RAGD_OK;
    if (!order || !rel || !texts) rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    size_t picked = 0;
    if (rc == RAGD_OK && a->diversity) {
        for (size_t i = 0; i < kept; i++) {
            store_hit *h = c[i].slot < vs->count ? &vs->hits[c[i].slot]
                                                 : &ks->hits[c[i].slot - vs->count];
            rel[i] = c[i].score;
            texts[i] = h->text;
        }
        picked = retrieve_mmr(rel, texts, kept, k, e->cfg->retrieve_diversity_lambda, order);
        if (picked == 0 && kept > 0) rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    } else if (rc == RAGD_OK) {
        for (picked = 0; picked < kept && picked < k; picked++) order[picked] = picked;
    }
    for (size_t r = 0; rc == RAGD_OK && r < picked; r++) {
        const retrieve_cand *x = &c[order[r]];
        store_hit *h = x->slot < vs->count ? &vs->hits[x->slot] : &ks->hits[x->slot - vs->count];
        engine_result *res = &a->results[a->count++];
        res->score = x->score;
        res->hit = *h;
        memset(h, 0, sizeof *h);
        res->vector_score = x->vector_score;
        res->keyword_score = x->keyword_score;
        res->vector_rank = x->vector_rank;
        res->keyword_rank = x->keyword_rank;
    }
    free(order);
    free(rel);
    free(texts);
    free(c);
    return rc;
}

/* Confidence (docs/RETRIEVAL.md "Confidence"): the IDF-weighted share of the query's terms found
 * in the best of the top five results; below [retrieve] min_coverage, or with no results, or
 * with no content word to judge, the answer is low_confidence and carries a clarifying question built
 * from the terms the documents lack and the nearest headings. Caller holds the read lock. */
static ragd_rc confidence_estimate(engine *e, const retrieve_terms *terms, engine_answer *a,
                                   ragd_err *err)
{
    a->coverage = -1.0;
    a->unknown_share = -1.0;
    int64_t df[RAGD_TERMS_MAX] = {0}, total = 0;
    uint32_t mask[RAGD_TERMS_MAX] = {0};
    int missing[RAGD_TERMS_MAX] = {0};
    char *phrases[RAGD_TERMS_MAX] = {0};
    int64_t top[RAGD_COVERAGE_TOP];
    size_t ntop = a->count < RAGD_COVERAGE_TOP ? a->count : RAGD_COVERAGE_TOP;
    for (size_t i = 0; i < ntop; i++) top[i] = a->results[i].hit.chunk_id;
    ragd_rc rc = RAGD_OK;
    for (size_t i = 0; i < terms->count && rc == RAGD_OK; i++)
        if ((phrases[i] = retrieve_fts_term(terms, i)) == NULL)
            rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    int fts = store_db_fts_available(e->db);
    if (rc == RAGD_OK && fts)
        rc = store_db_fts_terms(e->db, (const char *const *)phrases, terms->count, top, ntop, df,
                                mask, &total, err);
    for (size_t i = 0; i < terms->count; i++) free(phrases[i]);
    if (rc != RAGD_OK) return rc;
    for (size_t i = 0; i < terms->count; i++) {
        missing[i] = df[i] == 0;
    }
    /* The best single passage counts, not the union: terms scattered over five passages do not
     * answer a question (measured: the union lets off-topic questions through). */
    for (size_t j = 0; fts && j < ntop; j++) {
        int in_j[RAGD_TERMS_MAX] = {0};
        for (size_t i = 0; i < terms->count; i++) in_j[i] = (mask[i] >> j) & 1u;
        double v = retrieve_coverage(terms->count, df, in_j, total);
        if (v > a->coverage) a->coverage = v;
    }
    /* How much of the question's weight lies on words the store never uses: a question about a
     * topic the documents do not cover keeps a few ordinary words the documents share ("policy",
     * "days") while its specific words appear nowhere. Words merely absent from the best passage
     * (found elsewhere) do not count here: that is the ranking's miss, judged by coverage. */
    if (fts) a->unknown_share = retrieve_coverage(terms->count, df, missing, total);
    if (a->count == 0)
        a->low_confidence = 1;
    else if (!fts) /* a read-only store from before the keyword index: nothing to judge with */
        a->low_confidence = 0;
    else
        a->low_confidence = a->coverage < e->cfg->retrieve_min_coverage || /* -1: no terms */
                            a->unknown_share >= e->cfg->retrieve_max_unknown_share;
    /* A model embedder recognises a paraphrase the words miss: with its cosine floor set
     * ([retrieve] min_vector_score, docs/RETRIEVAL.md), a close enough passage is confident. */
    if (a->low_confidence && a->count > 0 && e->cfg->retrieve_min_vector_score > 0.0 &&
        a->unknown_share < e->cfg->retrieve_max_unknown_share) {
        double best = 0.0;
        for (size_t i = 0; i < a->count; i++)
            if (a->results[i].vector_rank > 0 && a->results[i].vector_score > best)
                best = a->results[i].vector_score;
        if (best >= e->cfg->retrieve_min_vector_score) a->low_confidence = 0;
    }
    /* A cross-encoder's score judges relevance better than shared words: with a floor set for
     * the model ([rerank] min_score, docs/RETRIEVAL.md) it decides alone. */
    if (a->rerank.applied && a->count > 0 && e->cfg->rerank_min_score != 0.0)
        a->low_confidence = a->rerank.best < e->cfg->rerank_min_score;
    if (!a->low_confidence) return RAGD_OK;
    const char *headings[RAGD_COVERAGE_TOP] = {NULL};
    for (size_t i = 0; i < ntop; i++) {
        const store_hit *h = &a->results[i].hit;
        headings[i] = h->heading[0] ? h->heading : h->title;
    }
    a->clarify = retrieve_clarify_build(terms, missing, headings, ntop);
    if (a->clarify == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    return RAGD_OK;
}

ragd_rc engine_retrieve(engine *e, const engine_query *q, engine_answer *out, ragd_err *err)
{
    double t0 = util_now_ms();
    engine_answer a = {.rag_enabled = e->cfg->rag_enabled, .low_confidence = 1, .coverage = -1,
                       .unknown_share = -1};
    if (q->k < 1) return ragd_err_set(err, RAGD_ERR_INVALID, "k must be at least 1");
    size_t k = 0;
    ragd_rc rc = RAGD_OK;
    int retrieves = retrieve_settings(e->cfg, q, &a, &k, err, &rc);
    if (rc != RAGD_OK) return rc;
    if (!e->cfg->rag_enabled || !retrieves) {
        a.total_ms = util_now_ms() - t0;
        rc = retrieve_context_build(NULL, 0, a.max_context_tokens, 0, &a.context, err);
        if (rc != RAGD_OK) return rc;
        *out = a;
        return RAGD_OK;
    }
    a.retrieved = 1;
    retrieve_terms terms = {.count = 0};
    char *match = NULL;
    float *qv = NULL;
    side_list vs = {0}, ks = {0};
    rc = retrieve_terms_split(q->query, q->query_len, &terms, err);
    if (rc == RAGD_OK && e->cfg->retrieve_lexical_variants)
        rc = retrieve_terms_expand(q->query, q->query_len, &terms, err);
    if (rc == RAGD_OK && (match = retrieve_fts_match(&terms)) == NULL)
        rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    int zero = 1;
    if (rc == RAGD_OK && a.mode != RAGD_MODE_KEYWORD) {
        int dims = e->embedder->dims;
        qv = malloc(sizeof(float) * (size_t)dims);
        if (qv == NULL) rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
        if (rc == RAGD_OK) rc = query_embed(e, q, qv, &a, err);
        for (int i = 0; rc == RAGD_OK && i < dims && zero; i++) zero = qv[i] == 0.0f;
    }
    /* A reranker sees [rerank] candidates fused results and keeps the best k of them. */
    int rerank = retrieve_rerank_wanted(e->reranker, q->rerank);
    size_t fuse_k = rerank && (size_t)e->cfg->rerank_candidates > k
                        ? (size_t)e->cfg->rerank_candidates : k;
    if (rc == RAGD_OK && (a.results = calloc(fuse_k, sizeof *a.results)) == NULL)
        rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    /* Fusion and diversity need a wider pool than k; a single list without diversity does not. */
    size_t pool = k;
    if ((a.mode == RAGD_MODE_HYBRID || a.diversity) &&
        (size_t)e->cfg->retrieve_candidates > pool)
        pool = (size_t)e->cfg->retrieve_candidates;
    if (pool < fuse_k) pool = fuse_k;

    if (rc == RAGD_OK) {
        pthread_rwlock_rdlock(&e->rw);
        if (a.mode != RAGD_MODE_KEYWORD && !zero) rc = vector_side(e, q, qv, pool, &vs, &a, err);
        if (rc == RAGD_OK && a.mode == RAGD_MODE_HYBRID)
            vector_length_pivot(&vs, e->cfg->retrieve_vector_length_slope);
        if (rc == RAGD_OK && a.mode != RAGD_MODE_VECTOR)
            rc = keyword_side(e, q, match, pool, &ks, &a, err);
        if (rc == RAGD_OK) rc = results_fuse(e, q, &vs, &ks, fuse_k, &a, err);
        if (rc == RAGD_OK && !rerank) rc = confidence_estimate(e, &terms, &a, err);
        pthread_rwlock_unlock(&e->rw);
    }
    /* The reranker is an HTTP call: made outside the lock, then confidence on its order. */
    if (rc == RAGD_OK && rerank) rc = engine_rerank_apply(e->reranker, q, &a, k, err);
    if (rc == RAGD_OK && rerank) {
        pthread_rwlock_rdlock(&e->rw);
        rc = confidence_estimate(e, &terms, &a, err);
        pthread_rwlock_unlock(&e->rw);
    }
    const store_hit **hits = NULL;
    if (rc == RAGD_OK && (hits = calloc(a.count ? a.count : 1, sizeof *hits)) == NULL)
        rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    for (size_t i = 0; rc == RAGD_OK && i < a.count; i++) hits[i] = &a.results[i].hit;
    if (rc == RAGD_OK)
        rc = retrieve_context_build(hits, a.count, a.max_context_tokens,
                                    e->cfg->retrieve_merge_adjacent, &a.context, err);
    free(hits);
    side_list_free(&vs);
    side_list_free(&ks);
    retrieve_terms_free(&terms);
    free(match);
    free(qv);
    a.total_ms = util_now_ms() - t0;
    if (rc != RAGD_OK) {
        engine_answer_free(&a);
        return rc;
    }
    *out = a;
    return RAGD_OK;
}

char *engine_context_format(const engine_answer *a)
{
    const char *text = a->context.text ? a->context.text : "";
    return util_strndup(text, strlen(text));
}

/* ---- status ------------------------------------------------------------------------------- */

ragd_rc engine_stats_get(engine *e, engine_stats *out, ragd_err *err)
{
    engine_stats s = {0};
    pthread_rwlock_rdlock(&e->rw);
    ragd_rc rc = store_db_stats(e->db, &s.documents, &s.chunks, &s.embeddings, err);
    s.index_vectors = store_index_count(e->index);
    s.index_bytes = store_index_bytes(e->index);
    pthread_rwlock_unlock(&e->rw);
    if (rc != RAGD_OK) return rc;
    s.index_consistent = s.index_vectors == (size_t)s.chunks;
    s.embed_provider = e->embedder->ops->name;
    s.embed_model = e->embedder->model;
    s.embed_dims = e->embedder->dims;
    s.ingest_running = atomic_load(&e->ingest_running);
    embed_counters_get(e->embedder, &s.embed);
    cache_stats_get(e->cache, &s.cache);
    retrieve_reranker_stats(e->reranker, &s.rerank);
    pthread_mutex_lock(&e->status_mu);
    s.last_ingest_at = e->last_ingest_at;
    s.last_ingest_ok = e->last_ingest_ok;
    pthread_mutex_unlock(&e->status_mu);
    *out = s;
    return RAGD_OK;
}

/* ---- for pushed documents (src/engine_docs.c) ---------------------------------------------- */

store_db *engine_store_get(engine *e)
{
    return e->db;
}

ragd_rc engine_doc_upsert(engine *e, const store_doc *row, ingest_doc *doc,
                          engine_push_outcome *outcome, int64_t *chunks, ragd_err *err)
{
    if (e->readonly)
        return ragd_err_set(err, RAGD_ERR_UNSUPPORTED, "the store is open read-only");
    if (e->model_pending)
        return ragd_err_set(err, RAGD_ERR_MODEL_MISMATCH, "the store was built with another "
                            "embedding model; run an ingest with reset first");
    if (atomic_load(&e->cancelled))
        return ragd_err_set(err, RAGD_ERR_UNAVAILABLE, "ragd is shutting down");
    pthread_mutex_lock(&e->write_mu);
    store_doc old = {0};
    int found = 0;
    doc_work w = {0};
    engine_ingest_report r = {0};
    ragd_rc rc = store_db_doc_find(e->db, row->path, &old, &found, err);
    if (rc == RAGD_OK && found && strcmp(old.checksum, row->checksum) == 0) {
        int64_t *ids = NULL;
        size_t n = 0;
        rc = store_db_doc_chunk_ids(e->db, old.id, &ids, &n, err);
        free(ids);
        *chunks = (int64_t)n;
        *outcome = RAGD_PUSH_UNCHANGED;
        goto out;
    }
    w.doc = *doc;
    memset(doc, 0, sizeof *doc); /* w owns it now */
    if (rc == RAGD_OK) rc = doc_prepare(e, &w, NULL, &r, err);
    size_t removed = 0;
    if (rc == RAGD_OK) rc = doc_commit(e, row, found ? old.id : 0, &w, &removed, err);
    if (rc == RAGD_OK) rc = store_db_sync(e->db, err);
    if (rc == RAGD_OK) {
        *outcome = found ? RAGD_PUSH_UPDATED : RAGD_PUSH_ADDED;
        *chunks = (int64_t)w.chunks.count;
    }
out:
    pthread_mutex_unlock(&e->write_mu);
    engine_ingest_report_free(&r);
    doc_work_free(&w);
    store_doc_free(&old);
    return rc;
}

ragd_rc engine_doc_remove_path(engine *e, const char *path, int64_t *chunks, ragd_err *err)
{
    if (e->readonly)
        return ragd_err_set(err, RAGD_ERR_UNSUPPORTED, "the store is open read-only");
    pthread_mutex_lock(&e->write_mu);
    store_doc old = {0};
    int found = 0;
    size_t removed = 0;
    ragd_rc rc = store_db_doc_find(e->db, path, &old, &found, err);
    if (rc == RAGD_OK && !found) rc = ragd_err_set(err, RAGD_ERR_NOT_FOUND, "no such document");
    if (rc == RAGD_OK) rc = doc_remove(e, old.id, &removed, err);
    if (rc == RAGD_OK) rc = store_db_sync(e->db, err);
    if (rc == RAGD_OK && chunks) *chunks = (int64_t)removed;
    pthread_mutex_unlock(&e->write_mu);
    store_doc_free(&old);
    return rc;
}
