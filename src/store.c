/* SPDX-License-Identifier: MIT */
/*
 * store.c - the store interface's one table of backends (the only place a backend is named, so
 * [store] vector_backend, the CLI and the docs agree), the calls that dispatch through store_ops,
 * and the helpers for the interface's own types.
 */
#include <stdlib.h>
#include <string.h>

#include "ragd/cfg.h"
#define RAGD_STORE_INTERFACE_ONLY
#include "ragd/store.h"

/* The one table of backends: store_backend_names[i] names backends[i]. */
const char *const store_backend_names[] = {"faiss", "pgvector", NULL};
static const store_ops *const backends[] = {&store_faiss_ops, &store_pg_ops};

const store_ops *store_backend_find(const char *name)
{
    for (size_t i = 0; name != NULL && i < sizeof backends / sizeof backends[0]; i++)
        if (strcmp(backends[i]->name, name) == 0) return backends[i];
    return NULL;
}

ragd_rc store_open(const ragd_cfg *cfg, int readonly, store **out, ragd_err *err)
{
    const char *name = cfg->vector_backend ? cfg->vector_backend : "faiss";
    const store_ops *ops = store_backend_find(name);
    if (ops == NULL)
        return ragd_err_set(err, RAGD_ERR_CONFIG, "vector_backend '%s' is not available in this "
                            "build", name);
    return ops->open(cfg, readonly, out, err);
}

void store_close(store *s)
{
    if (s != NULL) s->ops->close(s);
}

void store_doc_free(store_doc *doc)
{
    if (doc == NULL) return;
    free(doc->path);
    free(doc->source);
    free(doc->title);
    free(doc->checksum);
    free(doc->tags_json);
    free(doc->metadata_json);
    free(doc->collection);
    memset(doc, 0, sizeof *doc);
}

void store_doc_rows_free(store_doc *docs, size_t n)
{
    for (size_t i = 0; docs && i < n; i++) store_doc_free(&docs[i]);
    free(docs);
}

void store_hit_free(store_hit *h)
{
    if (h == NULL) return;
    free(h->text);
    free(h->heading);
    free(h->source);
    free(h->title);
    free(h->path);
    free(h->tags_json);
    free(h->metadata_json);
    free(h->collection);
    free(h->checksum);
    memset(h, 0, sizeof *h);
}

void store_collections_free(store_collection *list, size_t n)
{
    for (size_t i = 0; list && i < n; i++) free(list[i].name);
    free(list);
}

/* ---- dispatch ------------------------------------------------------------------------------ */

ragd_rc store_model_check(store *s, const char *model, int dims, ragd_err *err)
{
    return s->ops->model_check(s, model, dims, err);
}

ragd_rc store_vectors_open(store *s, const char *model, int dims, int empty, ragd_err *err)
{
    return s->ops->vectors_open(s, model, dims, empty, err);
}

ragd_rc store_begin(store *s, ragd_err *err)
{
    return s->ops->begin(s, err);
}

ragd_rc store_commit(store *s, ragd_err *err)
{
    return s->ops->commit(s, err);
}

void store_rollback(store *s)
{
    s->ops->rollback(s);
}

ragd_rc store_ingest_lock(store *s, const char *collection, ragd_err *err)
{
    return s->ops->ingest_lock(s, collection ? collection : RAGD_COLLECTION_DEFAULT, err);
}

void store_ingest_unlock(store *s, const char *collection)
{
    s->ops->ingest_unlock(s, collection ? collection : RAGD_COLLECTION_DEFAULT);
}

ragd_rc store_sync(store *s, ragd_err *err)
{
    return s->ops->sync(s, err);
}

ragd_rc store_flush(store *s, ragd_err *err)
{
    return s->ops->flush(s, err);
}

ragd_rc store_reclaim(store *s, ragd_err *err)
{
    return s->ops->reclaim ? s->ops->reclaim(s, err) : RAGD_OK;
}

ragd_rc store_doc_find(store *s, const char *collection, const char *path, store_doc *out,
                       int *found, ragd_err *err)
{
    return s->ops->doc_find(s, collection ? collection : RAGD_COLLECTION_DEFAULT, path, out, found, err);
}

ragd_rc store_doc_put(store *s, const store_doc *doc, int64_t *id, ragd_err *err)
{
    return s->ops->doc_put(s, doc, id, err);
}

ragd_rc store_doc_chunk_count(store *s, int64_t doc_id, size_t *n, ragd_err *err)
{
    return s->ops->doc_chunk_count(s, doc_id, n, err);
}

ragd_rc store_doc_chunks_delete(store *s, int64_t doc_id, size_t *removed, ragd_err *err)
{
    return s->ops->doc_chunks_delete(s, doc_id, removed, err);
}

ragd_rc store_doc_delete(store *s, int64_t doc_id, size_t *removed, ragd_err *err)
{
    return s->ops->doc_delete(s, doc_id, removed, err);
}

ragd_rc store_doc_list_prefix(store *s, const char *collection, const char *prefix, int64_t **ids,
                              char ***paths, size_t *n, ragd_err *err)
{
    return s->ops->doc_list_prefix(s, collection ? collection : RAGD_COLLECTION_DEFAULT, prefix, ids, paths, n, err);
}

ragd_rc store_chunk_put(store *s, int64_t doc_id, const store_chunk_in *c, const float *vec,
                        int dims, int64_t *id, ragd_err *err)
{
    return s->ops->chunk_put(s, doc_id, c, vec, dims, id, err);
}

ragd_rc store_reset(store *s, const char *model, int dims, ragd_err *err)
{
    return s->ops->reset(s, model, dims, err);
}

ragd_rc store_embedding_get(store *s, const char *checksum, const char *model, int dims,
                            float *out, int *found, ragd_err *err)
{
    return s->ops->embedding_get(s, checksum, model, dims, out, found, err);
}

ragd_rc store_embedding_put(store *s, const char *checksum, const char *model, int dims,
                            const float *vec, ragd_err *err)
{
    return s->ops->embedding_put(s, checksum, model, dims, vec, err);
}

ragd_rc store_embeddings_prune(store *s, const char *model, int dims, int64_t *removed,
                               ragd_err *err)
{
    return s->ops->embeddings_prune(s, model, dims, removed, err);
}

ragd_rc store_vectors_each(store *s, const char *model, int dims, store_vector_fn fn, void *ctx,
                           size_t *missing, ragd_err *err)
{
    return s->ops->vectors_each(s, model, dims, fn, ctx, missing, err);
}

ragd_rc store_chunks_get(store *s, const int64_t *ids, size_t n, store_hit *out, ragd_err *err)
{
    return s->ops->chunks_get(s, ids, n, out, err);
}

ragd_rc store_chunk_tokens(store *s, const int64_t *ids, size_t n, int64_t *tokens,
                           ragd_err *err)
{
    if (s->ops->chunk_tokens != NULL) return s->ops->chunk_tokens(s, ids, n, tokens, err);
    store_hit *hits = calloc(n ? n : 1, sizeof *hits);
    if (hits == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "read chunks: out of memory");
    ragd_rc rc = s->ops->chunks_get(s, ids, n, hits, err);
    for (size_t i = 0; i < n; i++) {
        if (rc == RAGD_OK) tokens[i] = hits[i].chunk_id != 0 ? hits[i].tokens : 0;
        store_hit_free(&hits[i]);
    }
    free(hits);
    return rc;
}

int store_chunk_tokens_cheap(store *s)
{
    return s->ops->chunk_tokens != NULL;
}

ragd_rc store_read_begin(store *s, int *owned, ragd_err *err)
{
    *owned = 0;
    return s->ops->read_begin != NULL ? s->ops->read_begin(s, owned, err) : RAGD_OK;
}

void store_read_end(store *s, int owned)
{
    if (owned && s->ops->read_end != NULL) s->ops->read_end(s, owned);
}

int store_reader_hold(store *s)
{
    return s->ops->reader_hold != NULL ? s->ops->reader_hold(s) : 0;
}

void store_reader_release(store *s, int held)
{
    if (held && s->ops->reader_release != NULL) s->ops->reader_release(s);
}

size_t store_vector_count(store *s)
{
    return s->ops->vector_count(s);
}

int store_vector_search_quick(store *s)
{
    return s->ops->vector_search_quick ? s->ops->vector_search_quick(s) : 0;
}

ragd_rc store_vector_search(store *s, const char *collection, const float *query, size_t k,
                            int64_t *ids, float *scores, size_t *found, ragd_err *err)
{
    return s->ops->vector_search(s, collection, query, k, ids, scores, found, err);
}

int store_collection_exclusive(store *s, const char *collection)
{
    return s->ops->collection_exclusive(s, collection);
}

ragd_rc store_collections_list(store *s, store_collection **out, size_t *n, ragd_err *err)
{
    return s->ops->collections_list(s, out, n, err);
}

ragd_rc store_collection_delete(store *s, const char *collection, int64_t *documents,
                                int64_t *chunks, ragd_err *err)
{
    return s->ops->collection_delete(s, collection ? collection : RAGD_COLLECTION_DEFAULT, documents, chunks, err);
}

ragd_rc store_vector_search_ef(store *s, const char *collection, const float *query, size_t k,
                               int ef_search, int64_t *ids, float *scores, size_t *found,
                               ragd_err *err)
{
    if (ef_search > 0 && s->ops->vector_search_ef != NULL)
        return s->ops->vector_search_ef(s, collection, query, k, ef_search, ids, scores, found,
                                        err);
    return s->ops->vector_search(s, collection, query, k, ids, scores, found, err);
}

int store_keyword_available(store *s)
{
    return s->ops->keyword_available(s);
}

ragd_rc store_keyword_search(store *s, const char *collection, const struct retrieve_terms *terms,
                             size_t limit, int64_t *ids, double *scores, size_t *found,
                             ragd_err *err)
{
    return s->ops->keyword_search(s, collection, terms, limit, ids, scores, found, err);
}

ragd_rc store_keyword_terms(store *s, const struct retrieve_terms *terms, const int64_t *top_ids,
                            size_t top_n, int64_t *df, uint32_t *top_mask, int64_t *total,
                            ragd_err *err)
{
    return s->ops->keyword_terms(s, terms, top_ids, top_n, df, top_mask, total, err);
}

ragd_rc store_stats_get(store *s, store_stats *out, ragd_err *err)
{
    return s->ops->stats(s, out, err);
}

ragd_rc store_doc_page(store *s, const char *collection, const char *prefix, int64_t offset,
                       int64_t limit, store_doc **docs, int64_t **chunk_counts, size_t *n,
                       int64_t *total, ragd_err *err)
{
    return s->ops->doc_page(s, collection ? collection : RAGD_COLLECTION_DEFAULT, prefix, offset, limit, docs, chunk_counts, n, total,
                            err);
}

ragd_rc store_doc_chunks_read(store *s, int64_t doc_id, store_hit **hits, size_t *n, ragd_err *err)
{
    return s->ops->doc_chunks_read(s, doc_id, hits, n, err);
}
