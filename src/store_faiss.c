/* SPDX-License-Identifier: MIT */
/*
 * store_faiss.c - the faiss backend of the store interface: the SQLite metadata store
 * (src/store_db.c, documents, chunks, embeddings, FTS5 keyword index) joined with a FAISS vector
 * index (src/store_index.c) in data_dir, exactly the files ragd has always written
 * (ragd.sqlite3, index.faiss, index.faiss.meta).
 *
 * Consistency model. SQLite is the source of truth. A write transaction that changes chunks also
 * bumps the store's generation; right after SQLite commits, the in-memory index gets the same
 * change (the ids removed and the vectors added, collected during the transaction). The index
 * file on disk records the generation it matches; at open, a file whose generation, count, dims
 * or checksum disagree is not used: the index is rebuilt from SQLite. If updating the in-memory
 * index fails, it is rebuilt from SQLite, so the two never disagree for long.
 *
 * Collections. One index holds the vectors of every collection; SQLite knows each chunk's
 * collection. Searches are not restricted here: the engine keeps the hits of its collection and
 * widens its search while the store holds other collections (collection_exclusive). The names of
 * the collections present are cached (loaded at open, grown by doc_put, reloaded after a
 * collection delete or reset); a stale extra name only makes the engine filter when it need not.
 *
 * Threads: the index has its own read-write lock (searches read, commits and rebuilds write);
 * writer calls come one at a time (the engine serialises them).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ragd/cfg.h"
#include "ragd/log.h"
#include "ragd/retrieve.h"
#include "ragd/store.h"
#include "ragd/util.h"

#define INDEX_FILE "index.faiss"
#define REBUILD_BATCH 1024
#define INDEX_AUTO "auto"         /* [store] index_factory: the type follows the store's size */
#define INDEX_AUTO_SMALL "Flat"   /* auto below index_auto_threshold vectors: exact */
#define INDEX_AUTO_LARGE "HNSW32" /* auto from the threshold on: approximate, sublinear */

typedef struct faiss_store {
    store base;
    const ragd_cfg *cfg;
    int readonly;
    store_db *db;
    store_index *index;      /* NULL until vectors_open */
    pthread_rwlock_t index_rw;
    char *index_path;
    char model[128];         /* the model/dims the index holds (vectors_open, reset) */
    int dims;
    int index_dirty;         /* in-memory index changed since it was saved */
    uint64_t generation;     /* store generation the in-memory index matches */
    /* the open write transaction's changes, applied to the index at commit */
    int in_tx;
    int tx_changed;          /* documents or chunks changed: bump the generation */
    int64_t *tx_removed;
    size_t tx_removed_n, tx_removed_cap;
    int64_t *tx_added;
    float *tx_vectors;
    size_t tx_added_n, tx_added_cap;
    pthread_mutex_t names_mu;  /* the cached collection names below */
    char **names;
    size_t names_n;
} faiss_store;

static faiss_store *faiss_of(store *s)
{
    return (faiss_store *)s;
}

/* ---- index load / rebuild / save ---------------------------------------------------------- */

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

/* Returns: 1 when [store] index_factory is "auto" (the type follows the store's size). */
static int factory_auto(const faiss_store *f)
{
    return strcmp(f->cfg->index_factory, INDEX_AUTO) == 0;
}

/* The concrete index type for a store of n vectors whose index is now of type current (NULL:
 * none yet). An explicit index_factory is always itself. "auto" is Flat (exact) below
 * index_auto_threshold and HNSW32 from it; an HNSW index goes back to Flat only below half the
 * threshold, so a store hovering around the threshold is not converted back and forth.
 * Returns: a string borrowed from the configuration or static. */
static const char *factory_for(const faiss_store *f, size_t n, const char *current)
{
    if (!factory_auto(f)) return f->cfg->index_factory;
    size_t threshold = (size_t)f->cfg->index_auto_threshold;
    if (current != NULL && strcmp(current, INDEX_AUTO_LARGE) == 0)
        return n >= threshold / 2 ? INDEX_AUTO_LARGE : INDEX_AUTO_SMALL;
    return n >= threshold ? INDEX_AUTO_LARGE : INDEX_AUTO_SMALL;
}

/* Returns: the options of an index of type factory (hnsw_ef_search from the configuration). */
static store_index_opts index_opts(const faiss_store *f, const char *factory)
{
    store_index_opts o = {.factory = factory,
                          .ef_search = f->cfg->hnsw_ef_search,
                          .ef_construction = f->cfg->index_hnsw_ef_construction};
    return o;
}

/* Builds a new index of type factory from SQLite's chunks and embeddings and swaps it in.
 * Searches go on against the old index meanwhile (the index lock is taken only for the swap).
 * Caller is the writer. */
static ragd_rc index_rebuild(faiss_store *f, const char *factory, ragd_err *err)
{
    int dims = f->dims;
    store_index *idx = NULL;
    store_index_opts iopts = index_opts(f, factory);
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
    rc = store_db_generation_get(f->db, &gen, err);
    if (rc == RAGD_OK)
        rc = store_db_vectors_each(f->db, f->model, dims, rebuild_cb, &c, &missing, err);
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
                 "re-ingest with --reset to repair", missing, f->model);
    pthread_rwlock_wrlock(&f->index_rw);
    store_index *old = f->index;
    f->index = idx;
    f->generation = gen;
    f->index_dirty = 1;
    pthread_rwlock_unlock(&f->index_rw);
    store_index_free(old);
    RAGD_LOG(RAGD_LOG_INFO, "engine",
             "rebuilt vector index from SQLite: %zu vectors, %s, in %.0f ms",
             store_index_count(idx), store_index_factory(idx), util_now_ms() - t0);
    return RAGD_OK;
}

/* Saves the index with the generation it matches, when it changed. Caller is the writer (only
 * writers modify the index), so a read lock suffices against concurrent searches. */
static ragd_rc index_save(faiss_store *f, ragd_err *err)
{
    if (f->readonly || !f->index_dirty || f->index == NULL) return RAGD_OK;
    pthread_rwlock_rdlock(&f->index_rw);
    ragd_rc rc = store_index_save(f->index, f->index_path, f->generation, err);
    pthread_rwlock_unlock(&f->index_rw);
    if (rc == RAGD_OK) f->index_dirty = 0;
    return rc;
}

static ragd_rc index_open(faiss_store *f, ragd_err *err)
{
    int64_t docs = 0, chunks = 0, embeddings = 0;
    uint64_t gen = 0, saved_gen = 0;
    ragd_rc rc = store_db_stats(f->db, &docs, &chunks, &embeddings, err);
    if (rc == RAGD_OK) rc = store_db_generation_get(f->db, &gen, err);
    if (rc != RAGD_OK) return rc;

    ragd_err lerr = {0};
    store_index *idx = NULL;
    /* auto: the type the saved index has, if it still fits the store's size (no conversion at
     * every start near the threshold), else the one that does. */
    char saved[256] = "";
    if (factory_auto(f) &&
        store_index_saved_factory(f->index_path, saved, sizeof saved, NULL) != RAGD_OK)
        saved[0] = '\0';
    const char *factory = factory_for(f, chunks > 0 ? (size_t)chunks : 0,
                                      saved[0] ? saved : NULL);
    /* A read-only open (`ragd query` beside a daemon) uses the saved type as it is: converting
     * would rebuild in memory, for one query, what the daemon converts at its next commit. */
    if (factory_auto(f) && f->readonly &&
        (strcmp(saved, INDEX_AUTO_SMALL) == 0 || strcmp(saved, INDEX_AUTO_LARGE) == 0))
        factory = saved;
    store_index_opts iopts = index_opts(f, factory);
    rc = store_index_load_with(f->index_path, f->dims, &iopts, &idx, &saved_gen, &lerr);
    if (rc == RAGD_OK && saved_gen == gen && store_index_count(idx) == (size_t)chunks) {
        f->index = idx;
        f->generation = gen;
        f->index_dirty = 0;
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
    rc = index_rebuild(f, factory, err);
    if (rc != RAGD_OK) return rc;
    if (f->readonly) return RAGD_OK;
    /* SQLite is intact and the index is in memory: a save that fails (a full disk) must not stop
     * the open. The index stays dirty; the engine's first flush fails the same way and puts
     * ragd in its write-fault state, serving from memory until a flush succeeds. */
    ragd_err serr = {0};
    if (index_save(f, &serr) != RAGD_OK)
        RAGD_LOG(RAGD_LOG_WARN, "engine", "could not save the rebuilt vector index (%s); serving "
                 "it from memory", serr.msg);
    return RAGD_OK;
}

/* Brings the in-memory index in step with a transaction SQLite has just committed (generation
 * gen). If that fails, the index is rebuilt from SQLite so the two never disagree. */
static ragd_rc index_apply(faiss_store *f, uint64_t gen, ragd_err *err)
{
    ragd_err ierr = {0};
    ragd_rc rc = RAGD_OK;
    pthread_rwlock_wrlock(&f->index_rw);
    if (f->tx_removed_n > 0)
        rc = store_index_remove(f->index, f->tx_removed_n, f->tx_removed, NULL, &ierr);
    if (rc == RAGD_OK && f->tx_added_n > 0)
        rc = store_index_add(f->index, f->tx_added_n, f->tx_added, f->tx_vectors, &ierr);
    int due = rc == RAGD_OK && store_index_rebuild_due(f->index);
    const char *current = store_index_factory(f->index);
    const char *want = factory_for(f, store_index_count(f->index), current);
    int convert = rc == RAGD_OK && strcmp(want, current) != 0;
    if (rc == RAGD_OK && !due && !convert) {
        f->generation = gen;
        f->index_dirty = 1;
    }
    pthread_rwlock_unlock(&f->index_rw);
    if (convert) {
        /* index_factory = auto and the store crossed index_auto_threshold (or fell below half
         * of it): build the other type from SQLite. */
        RAGD_LOG(RAGD_LOG_INFO, "engine",
                 "index_factory auto: %zu vectors, threshold %d: converting the %s index to %s",
                 store_index_count(f->index), f->cfg->index_auto_threshold, current, want);
        return index_rebuild(f, want, err);
    }
    if (due) {
        /* HNSW keeps removed vectors as tombstones; past a tenth of the index, rebuild. */
        RAGD_LOG(RAGD_LOG_INFO, "engine", "%zu removed vectors in the %s index: rebuilding",
                 store_index_tombstones(f->index), current);
        return index_rebuild(f, want, err);
    }
    if (rc == RAGD_OK) return RAGD_OK;
    RAGD_LOG(RAGD_LOG_ERROR, "engine", "index update failed (%s): rebuilding", ierr.msg);
    return index_rebuild(f, want, err);
}

static void tx_clear(faiss_store *f)
{
    f->in_tx = 0;
    f->tx_changed = 0;
    f->tx_removed_n = 0;
    f->tx_added_n = 0;
}

/* Records chunk ids the open transaction removes. */
static ragd_rc tx_note_removed(faiss_store *f, const int64_t *ids, size_t n, ragd_err *err)
{
    if (n == 0) return RAGD_OK;
    if (f->tx_removed_n + n > f->tx_removed_cap) {
        size_t cap = f->tx_removed_cap ? f->tx_removed_cap : 64;
        while (cap < f->tx_removed_n + n) cap *= 2;
        int64_t *p = realloc(f->tx_removed, cap * sizeof *p);
        if (p == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
        f->tx_removed = p;
        f->tx_removed_cap = cap;
    }
    memcpy(f->tx_removed + f->tx_removed_n, ids, n * sizeof *ids);
    f->tx_removed_n += n;
    return RAGD_OK;
}

/* Records a chunk the open transaction adds, with its vector. */
static ragd_rc tx_note_added(faiss_store *f, int64_t id, const float *vec, ragd_err *err)
{
    size_t dims = (size_t)f->dims;
    if (f->tx_added_n == f->tx_added_cap) {
        size_t cap = f->tx_added_cap ? f->tx_added_cap * 2 : 64;
        int64_t *p = realloc(f->tx_added, cap * sizeof *p);
        if (p == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
        f->tx_added = p;
        float *v = realloc(f->tx_vectors, cap * dims * sizeof *v);
        if (v == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
        f->tx_vectors = v;
        f->tx_added_cap = cap;
    }
    f->tx_added[f->tx_added_n] = id;
    memcpy(f->tx_vectors + f->tx_added_n * dims, vec, dims * sizeof *vec);
    f->tx_added_n++;
    return RAGD_OK;
}

/* ---- collection names ------------------------------------------------------------------- */

static void names_clear(faiss_store *f)
{
    for (size_t i = 0; i < f->names_n; i++) free(f->names[i]);
    free(f->names);
    f->names = NULL;
    f->names_n = 0;
}

/* Reloads the cached collection names from SQLite. */
static ragd_rc names_load(faiss_store *f, ragd_err *err)
{
    store_collection *list = NULL;
    size_t n = 0;
    ragd_rc rc = store_db_collections(f->db, &list, &n, err);
    if (rc != RAGD_OK) return rc;
    char **names = calloc(n ? n : 1, sizeof *names);
    if (names == NULL) {
        store_collections_free(list, n);
        return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        names[i] = list[i].name; /* steal */
        list[i].name = NULL;
    }
    store_collections_free(list, n);
    pthread_mutex_lock(&f->names_mu);
    names_clear(f);
    f->names = names;
    f->names_n = n;
    pthread_mutex_unlock(&f->names_mu);
    return RAGD_OK;
}

/* Adds name to the cached names when missing. */
static ragd_rc names_note(faiss_store *f, const char *name, ragd_err *err)
{
    ragd_rc rc = RAGD_OK;
    pthread_mutex_lock(&f->names_mu);
    size_t i = 0;
    while (i < f->names_n && strcmp(f->names[i], name) != 0) i++;
    if (i == f->names_n) {
        char **grown = realloc(f->names, (f->names_n + 1) * sizeof *grown);
        char *copy = strdup(name);
        if (grown != NULL) f->names = grown;
        if (grown == NULL || copy == NULL) {
            free(copy);
            rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
        } else {
            f->names[f->names_n++] = copy;
        }
    }
    pthread_mutex_unlock(&f->names_mu);
    return rc;
}

/* ---- open / close ------------------------------------------------------------------------- */

static void faiss_close(store *s)
{
    faiss_store *f = faiss_of(s);
    if (f == NULL) return;
    if (f->index != NULL && f->db != NULL) {
        ragd_err err = {0};
        if (index_save(f, &err) != RAGD_OK)
            RAGD_LOG(RAGD_LOG_WARN, "engine", "could not save the vector index (%s); it will be "
                     "rebuilt from SQLite at the next start", err.msg);
    }
    store_index_free(f->index);
    store_db_close(f->db);
    pthread_rwlock_destroy(&f->index_rw);
    names_clear(f);
    pthread_mutex_destroy(&f->names_mu);
    free(f->index_path);
    free(f->tx_removed);
    free(f->tx_added);
    free(f->tx_vectors);
    free(f);
}

static ragd_rc faiss_open(const ragd_cfg *cfg, int readonly, store **out, ragd_err *err)
{
    faiss_store *f = calloc(1, sizeof *f);
    if (f == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    f->base.ops = &store_faiss_ops;
    f->cfg = cfg;
    f->readonly = readonly;
    pthread_rwlock_init(&f->index_rw, NULL);
    pthread_mutex_init(&f->names_mu, NULL);
    ragd_rc rc = RAGD_OK;
    f->index_path = util_path_join(cfg->data_dir, INDEX_FILE);
    if (f->index_path == NULL) rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    if (rc == RAGD_OK) rc = store_db_open(cfg->data_dir, readonly, &f->db, err);
    if (rc == RAGD_OK) rc = names_load(f, err);
    if (rc != RAGD_OK) {
        faiss_close(&f->base);
        return rc;
    }
    *out = &f->base;
    return RAGD_OK;
}

static ragd_rc faiss_model_check(store *s, const char *model, int dims, ragd_err *err)
{
    return store_db_model_check(faiss_of(s)->db, model, dims, err);
}

static ragd_rc faiss_vectors_open(store *s, const char *model, int dims, int empty,
                                  ragd_err *err)
{
    faiss_store *f = faiss_of(s);
    snprintf(f->model, sizeof f->model, "%s", model);
    f->dims = dims;
    if (empty) {
        store_index_opts iopts = index_opts(f, factory_for(f, 0, NULL));
        return store_index_new_with(dims, &iopts, &f->index, err);
    }
    return index_open(f, err);
}

/* ---- transactions -------------------------------------------------------------------------- */

static ragd_rc faiss_begin(store *s, ragd_err *err)
{
    faiss_store *f = faiss_of(s);
    ragd_rc rc = store_db_begin(f->db, err);
    if (rc == RAGD_OK) {
        tx_clear(f);
        f->in_tx = 1;
    }
    return rc;
}

static ragd_rc faiss_commit(store *s, ragd_err *err)
{
    faiss_store *f = faiss_of(s);
    uint64_t gen = 0;
    ragd_rc rc = RAGD_OK;
    int changed = f->tx_changed;
    if (changed) rc = store_db_generation_bump(f->db, &gen, err);
    if (rc == RAGD_OK) rc = store_db_commit(f->db, err);
    if (rc != RAGD_OK) {
        store_db_rollback(f->db);
        tx_clear(f);
        return rc;
    }
    if (changed && f->index != NULL) rc = index_apply(f, gen, err);
    tx_clear(f);
    return rc;
}

static void faiss_rollback(store *s)
{
    faiss_store *f = faiss_of(s);
    store_db_rollback(f->db);
    tx_clear(f);
}

static ragd_rc faiss_sync(store *s, ragd_err *err)
{
    return store_db_sync(faiss_of(s)->db, err);
}

/* Syncs SQLite and saves the index when it changed. Returns: the first failure (the index is
 * still saved after a failed sync: it is consistent with every commit either way). */
static ragd_rc faiss_flush(store *s, ragd_err *err)
{
    faiss_store *f = faiss_of(s);
    ragd_rc rc = store_db_sync(f->db, err);
    ragd_err serr = {0};
    ragd_rc src = index_save(f, &serr);
    if (src != RAGD_OK) {
        RAGD_LOG(RAGD_LOG_WARN, "engine", "could not save the vector index (%s); it will be "
                 "rebuilt from SQLite at the next start", serr.msg);
        if (rc == RAGD_OK) rc = ragd_err_set(err, src, "saving the vector index: %s", serr.msg);
    }
    return rc;
}

static ragd_rc faiss_reclaim(store *s, ragd_err *err)
{
    return store_db_wal_truncate(faiss_of(s)->db, err);
}

/* ---- documents and chunks ------------------------------------------------------------------ */

static ragd_rc faiss_doc_find(store *s, const char *collection, const char *path,
                              store_doc *out, int *found, ragd_err *err)
{
    return store_db_doc_find_in(faiss_of(s)->db, collection, path, out, found, err);
}

static ragd_rc faiss_doc_put(store *s, const store_doc *doc, int64_t *id, ragd_err *err)
{
    faiss_store *f = faiss_of(s);
    f->tx_changed = 1;
    ragd_rc rc = names_note(f, doc->collection ? doc->collection : RAGD_COLLECTION_DEFAULT, err);
    if (rc == RAGD_OK) rc = store_db_doc_put(f->db, doc, id, err);
    return rc;
}

static ragd_rc faiss_doc_chunk_count(store *s, int64_t doc_id, size_t *n, ragd_err *err)
{
    int64_t *ids = NULL;
    ragd_rc rc = store_db_doc_chunk_ids(faiss_of(s)->db, doc_id, &ids, n, err);
    free(ids);
    return rc;
}

/* Deletes a document's chunks (and the document too when whole), noting the ids for the index. */
static ragd_rc doc_delete_common(faiss_store *f, int64_t doc_id, int whole, size_t *removed,
                                 ragd_err *err)
{
    int64_t *ids = NULL;
    size_t n = 0;
    f->tx_changed = 1;
    ragd_rc rc = store_db_doc_chunk_ids(f->db, doc_id, &ids, &n, err);
    if (rc == RAGD_OK)
        rc = whole ? store_db_doc_delete(f->db, doc_id, err)
                   : store_db_doc_chunks_delete(f->db, doc_id, err);
    if (rc == RAGD_OK) rc = tx_note_removed(f, ids, n, err);
    free(ids);
    if (rc == RAGD_OK && removed) *removed = n;
    return rc;
}

static ragd_rc faiss_doc_chunks_delete(store *s, int64_t doc_id, size_t *removed, ragd_err *err)
{
    return doc_delete_common(faiss_of(s), doc_id, 0, removed, err);
}

static ragd_rc faiss_doc_delete(store *s, int64_t doc_id, size_t *removed, ragd_err *err)
{
    return doc_delete_common(faiss_of(s), doc_id, 1, removed, err);
}

static ragd_rc faiss_doc_list_prefix(store *s, const char *collection, const char *prefix,
                                     int64_t **ids, char ***paths, size_t *n, ragd_err *err)
{
    return store_db_doc_list_prefix_in(faiss_of(s)->db, collection, prefix, ids, paths, n, err);
}

static ragd_rc faiss_chunk_put(store *s, int64_t doc_id, const store_chunk_in *c,
                               const float *vec, int dims, int64_t *id, ragd_err *err)
{
    faiss_store *f = faiss_of(s);
    f->tx_changed = 1;
    if (vec != NULL && dims != f->dims)
        return ragd_err_set(err, RAGD_ERR_INVALID, "chunk vector has %d dims, the index %d",
                            dims, f->dims);
    ragd_rc rc = store_db_chunk_put(f->db, doc_id, c, id, err);
    if (rc == RAGD_OK && vec != NULL) rc = tx_note_added(f, *id, vec, err);
    return rc;
}

static ragd_rc faiss_reset(store *s, const char *model, int dims, ragd_err *err)
{
    faiss_store *f = faiss_of(s);
    uint64_t gen = 0;
    ragd_rc rc = store_db_begin(f->db, err);
    if (rc == RAGD_OK) rc = store_db_reset(f->db, err);
    if (rc == RAGD_OK) rc = store_db_commit(f->db, err);
    if (rc != RAGD_OK) store_db_rollback(f->db);
    if (rc == RAGD_OK) rc = store_db_generation_get(f->db, &gen, err);
    if (rc == RAGD_OK) {
        pthread_rwlock_wrlock(&f->index_rw);
        rc = store_index_clear(f->index, err);
        if (rc == RAGD_OK) {
            f->generation = gen;
            f->index_dirty = 1;
        }
        pthread_rwlock_unlock(&f->index_rw);
    }
    if (rc == RAGD_OK) rc = store_db_model_check(f->db, model, dims, err);
    if (rc == RAGD_OK) rc = names_load(f, err);
    return rc;
}

static ragd_rc faiss_collection_delete(store *s, const char *collection, int64_t *documents,
                                       int64_t *chunks, ragd_err *err)
{
    faiss_store *f = faiss_of(s);
    int64_t *ids = NULL;
    size_t n = 0;
    int64_t docs = 0;
    ragd_rc rc = faiss_begin(s, err);
    if (rc != RAGD_OK) return rc;
    f->tx_changed = 1;
    rc = store_db_collection_chunk_ids(f->db, collection, &ids, &n, err);
    if (rc == RAGD_OK) rc = store_db_collection_delete(f->db, collection, &docs, err);
    if (rc == RAGD_OK) rc = tx_note_removed(f, ids, n, err);
    free(ids);
    if (rc == RAGD_OK) rc = faiss_commit(s, err);
    else faiss_rollback(s);
    if (rc == RAGD_OK) rc = names_load(f, err);
    if (rc == RAGD_OK) {
        if (documents) *documents = docs;
        if (chunks) *chunks = (int64_t)n;
    }
    return rc;
}

/* ---- embeddings ---------------------------------------------------------------------------- */

static ragd_rc faiss_embedding_get(store *s, const char *checksum, const char *model, int dims,
                                   float *out, int *found, ragd_err *err)
{
    return store_db_embedding_get(faiss_of(s)->db, checksum, model, dims, out, found, err);
}

static ragd_rc faiss_embedding_put(store *s, const char *checksum, const char *model, int dims,
                                   const float *vec, ragd_err *err)
{
    return store_db_embedding_put(faiss_of(s)->db, checksum, model, dims, vec, err);
}

static ragd_rc faiss_embeddings_prune(store *s, const char *model, int dims, int64_t *removed,
                                      ragd_err *err)
{
    return store_db_embeddings_prune(faiss_of(s)->db, model, dims, removed, err);
}

static ragd_rc faiss_vectors_each(store *s, const char *model, int dims, store_vector_fn fn,
                                  void *ctx, size_t *missing, ragd_err *err)
{
    return store_db_vectors_each(faiss_of(s)->db, model, dims, fn, ctx, missing, err);
}

/* ---- reads --------------------------------------------------------------------------------- */

static ragd_rc faiss_chunks_get(store *s, const int64_t *ids, size_t n, store_hit *out,
                                ragd_err *err)
{
    return store_db_chunks_get(faiss_of(s)->db, ids, n, out, err);
}

static ragd_rc faiss_chunk_tokens(store *s, const int64_t *ids, size_t n, int64_t *tokens,
                                  ragd_err *err)
{
    return store_db_chunk_tokens(faiss_of(s)->db, ids, n, tokens, err);
}

static ragd_rc faiss_read_begin(store *s, int *owned, ragd_err *err)
{
    return store_db_read_begin(faiss_of(s)->db, owned, err);
}

static void faiss_read_end(store *s, int owned)
{
    store_db_read_end(faiss_of(s)->db, owned);
}

static size_t faiss_vector_count(store *s)
{
    faiss_store *f = faiss_of(s);
    pthread_rwlock_rdlock(&f->index_rw);
    size_t n = f->index ? store_index_count(f->index) : 0;
    pthread_rwlock_unlock(&f->index_rw);
    return n;
}

static ragd_rc faiss_vector_search_ef(store *s, const char *collection, const float *query,
                                      size_t k, int ef_search, int64_t *ids, float *scores,
                                      size_t *found, ragd_err *err)
{
    (void)collection; /* one index for all: the engine keeps its collection's hits */
    faiss_store *f = faiss_of(s);
    pthread_rwlock_rdlock(&f->index_rw);
    ragd_rc rc = RAGD_OK;
    if (f->index == NULL)
        *found = 0;
    else
        rc = store_index_search_ef(f->index, query, k, ef_search, ids, scores, found, err);
    pthread_rwlock_unlock(&f->index_rw);
    return rc;
}

static ragd_rc faiss_vector_search(store *s, const char *collection, const float *query, size_t k,
                                   int64_t *ids, float *scores, size_t *found, ragd_err *err)
{
    return faiss_vector_search_ef(s, collection, query, k, 0, ids, scores, found, err);
}

static int faiss_keyword_available(store *s)
{
    return store_db_fts_available(faiss_of(s)->db);
}

/* A graph search visits a bounded part of the index; a flat one scans it all: quick only while
 * it is small. Both run here, on this process's memory. */
static int faiss_vector_search_quick(store *s)
{
    faiss_store *f = faiss_of(s);
    pthread_rwlock_rdlock(&f->index_rw);
    int quick = f->index == NULL || !store_index_is_flat(f->index) ||
                store_index_count(f->index) * (size_t)store_index_dims(f->index) <=
                    RAGD_STORE_QUICK_FLAT_FLOATS;
    pthread_rwlock_unlock(&f->index_rw);
    return quick;
}

static int faiss_reader_hold(store *s)
{
    return store_db_reader_hold(faiss_of(s)->db);
}

static void faiss_reader_release(store *s)
{
    store_db_reader_release(faiss_of(s)->db);
}

static ragd_rc faiss_keyword_search(store *s, const char *collection, const retrieve_terms *terms,
                                    size_t limit, int64_t *ids, double *scores, size_t *found,
                                    ragd_err *err)
{
    (void)collection; /* as faiss_vector_search */
    *found = 0;
    char *match = retrieve_fts_match(terms);
    if (match == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    ragd_rc rc = RAGD_OK;
    if (match[0] != '\0')
        rc = store_db_fts_search_bounded(faiss_of(s)->db, match, limit,
                                         (size_t)faiss_of(s)->cfg->retrieve_keyword_max_matches,
                                         ids, scores, found, err);
    free(match);
    return rc;
}

static ragd_rc faiss_keyword_terms(store *s, const retrieve_terms *terms, const int64_t *top_ids,
                                   size_t top_n, int64_t *df, uint32_t *top_mask, int64_t *total,
                                   ragd_err *err)
{
    char *phrases[RAGD_TERMS_MAX] = {0};
    ragd_rc rc = RAGD_OK;
    for (size_t i = 0; i < terms->count && rc == RAGD_OK; i++)
        if ((phrases[i] = retrieve_fts_term(terms, i)) == NULL)
            rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    if (rc == RAGD_OK)
        rc = store_db_fts_terms(faiss_of(s)->db, (const char *const *)phrases, terms->count,
                                top_ids, top_n, df, top_mask, total, err);
    for (size_t i = 0; i < terms->count; i++) free(phrases[i]);
    return rc;
}

static ragd_rc faiss_stats(store *s, store_stats *out, ragd_err *err)
{
    faiss_store *f = faiss_of(s);
    store_stats st = {0};
    ragd_rc rc = store_db_stats(f->db, &st.documents, &st.chunks, &st.embeddings, err);
    if (rc != RAGD_OK) return rc;
    pthread_rwlock_rdlock(&f->index_rw);
    if (f->index != NULL) {
        st.vectors = store_index_count(f->index);
        st.vector_bytes = store_index_bytes(f->index);
    }
    pthread_rwlock_unlock(&f->index_rw);
    *out = st;
    return RAGD_OK;
}

static ragd_rc faiss_doc_page(store *s, const char *collection, const char *prefix,
                              int64_t offset, int64_t limit, store_doc **docs,
                              int64_t **chunk_counts, size_t *n, int64_t *total, ragd_err *err)
{
    return store_db_doc_page_in(faiss_of(s)->db, collection, prefix, offset, limit, docs,
                                chunk_counts, n, total, err);
}

static int faiss_collection_exclusive(store *s, const char *collection)
{
    faiss_store *f = faiss_of(s);
    if (collection == NULL) return 1;
    pthread_mutex_lock(&f->names_mu);
    int only = f->names_n == 0 || (f->names_n == 1 && strcmp(f->names[0], collection) == 0);
    pthread_mutex_unlock(&f->names_mu);
    return only;
}

static ragd_rc faiss_collections_list(store *s, store_collection **out, size_t *n, ragd_err *err)
{
    return store_db_collections(faiss_of(s)->db, out, n, err);
}

static ragd_rc faiss_doc_chunks_read(store *s, int64_t doc_id, store_hit **hits, size_t *n,
                                     ragd_err *err)
{
    return store_db_doc_chunks_read(faiss_of(s)->db, doc_id, hits, n, err);
}

/* The data-dir lock (src/engine.c) keeps every other process out of this store: an ingest needs
 * no lock of its own here. */
static ragd_rc faiss_ingest_lock(store *s, const char *collection, ragd_err *err)
{
    (void)s;
    (void)collection;
    (void)err;
    return RAGD_OK;
}

static void faiss_ingest_unlock(store *s, const char *collection)
{
    (void)s;
    (void)collection;
}

const store_ops store_faiss_ops = {
    .name = "faiss",
    .open = faiss_open,
    .close = faiss_close,
    .model_check = faiss_model_check,
    .vectors_open = faiss_vectors_open,
    .begin = faiss_begin,
    .commit = faiss_commit,
    .rollback = faiss_rollback,
    .sync = faiss_sync,
    .flush = faiss_flush,
    .reclaim = faiss_reclaim,
    .doc_find = faiss_doc_find,
    .doc_put = faiss_doc_put,
    .doc_chunk_count = faiss_doc_chunk_count,
    .doc_chunks_delete = faiss_doc_chunks_delete,
    .doc_delete = faiss_doc_delete,
    .doc_list_prefix = faiss_doc_list_prefix,
    .chunk_put = faiss_chunk_put,
    .reset = faiss_reset,
    .collection_delete = faiss_collection_delete,
    .embedding_get = faiss_embedding_get,
    .embedding_put = faiss_embedding_put,
    .embeddings_prune = faiss_embeddings_prune,
    .vectors_each = faiss_vectors_each,
    .chunks_get = faiss_chunks_get,
    .vector_count = faiss_vector_count,
    .vector_search = faiss_vector_search,
    .keyword_available = faiss_keyword_available,
    .keyword_search = faiss_keyword_search,
    .collection_exclusive = faiss_collection_exclusive,
    .collections_list = faiss_collections_list,
    .keyword_terms = faiss_keyword_terms,
    .stats = faiss_stats,
    .doc_page = faiss_doc_page,
    .doc_chunks_read = faiss_doc_chunks_read,
    .ingest_lock = faiss_ingest_lock,
    .ingest_unlock = faiss_ingest_unlock,
    .vector_search_ef = faiss_vector_search_ef,
    .chunk_tokens = faiss_chunk_tokens,
    .read_begin = faiss_read_begin,
    .read_end = faiss_read_end,
    .vector_search_quick = faiss_vector_search_quick,
    .reader_hold = faiss_reader_hold,
    .reader_release = faiss_reader_release,
};
