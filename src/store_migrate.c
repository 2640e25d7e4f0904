/* SPDX-License-Identifier: MIT */
/*
 * store_migrate.c - `ragd migrate`: copies a store from one backend to the other through the
 * store interface (faiss -> pgvector or back): every collection's documents, their chunks, and
 * the embeddings those chunks use, keyed by content hash as they are. Nothing paid for is
 * embedded again: each chunk's vector is its stored embedding (the local embedder's, stored
 * without bytes, recomputed from the chunk's text). A document already in the target with the
 * same checksum and chunk count is left alone, and target documents the source no longer has are
 * removed, so a second run changes nothing and an interrupted run is finished by the next. At the
 * end the documents and chunks of every collection are counted on both sides and must agree.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ragd/cfg.h"
#include "ragd/embed.h"
#include "ragd/log.h"
#include "ragd/store.h"
#include "ragd/store_migrate.h"

#define PAGE 200

/* Copies one document (and its chunks' embeddings) into dst in one transaction. */
static ragd_rc copy_doc(store *src, store *dst, const store_doc *d, const char *model, int dims,
                        float *vec, store_migrate_report *rep, ragd_err *err)
{
    store_hit *hits = NULL;
    size_t n = 0;
    ragd_rc rc = store_doc_chunks_read(src, d->id, &hits, &n, err);
    if (rc != RAGD_OK) return rc;
    float *vecs = calloc(n ? n : 1, sizeof(float) * (size_t)dims);
    char *have = calloc(n ? n : 1, 1);
    if (vecs == NULL || have == NULL) rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    /* embeddings first, each durable on its own: the target keeps them even if the document
     * then fails */
    for (size_t i = 0; rc == RAGD_OK && i < n; i++) {
        int found = 0;
        rc = store_embedding_get(src, hits[i].checksum, model, dims, vec, &found, err);
        if (rc == RAGD_OK && found == RAGD_EMBEDDING_UNSTORED)
            rc = embed_chunk_recompute(model, dims, hits[i].checksum, hits[i].heading,
                                       hits[i].text, strlen(hits[i].text), vec, err);
        if (rc != RAGD_OK || !found) continue;
        have[i] = 1;
        memcpy(vecs + i * (size_t)dims, vec, sizeof(float) * (size_t)dims);
        int there = 0;
        rc = store_embedding_get(dst, hits[i].checksum, model, dims, vec, &there, err);
        if (rc == RAGD_OK && !there) {
            rc = store_embedding_put(dst, hits[i].checksum, model, dims,
                                     vecs + i * (size_t)dims, err);
            if (rc == RAGD_OK) rep->embeddings_copied++;
        }
    }
    store_doc old = {0};
    int found = 0;
    if (rc == RAGD_OK) rc = store_doc_find(dst, d->collection, d->path, &old, &found, err);
    if (rc == RAGD_OK) rc = store_begin(dst, err);
    if (rc == RAGD_OK && found) rc = store_doc_delete(dst, old.id, NULL, err);
    int64_t doc_id = 0;
    if (rc == RAGD_OK) rc = store_doc_put(dst, d, &doc_id, err);
    for (size_t i = 0; rc == RAGD_OK && i < n; i++) {
        const store_hit *h = &hits[i];
        store_chunk_in in = {.ordinal = h->ordinal,
                             .text = h->text,
                             .text_len = strlen(h->text),
                             .heading = h->heading,
                             .tokens = h->tokens,
                             .char_start = h->char_start,
                             .char_end = h->char_end,
                             .checksum = h->checksum,
                             .page = h->page};
        int64_t id = 0;
        rc = store_chunk_put(dst, doc_id, &in, have[i] ? vecs + i * (size_t)dims : NULL, dims,
                             &id, err);
        if (rc == RAGD_OK && !have[i]) rep->chunks_without_embedding++;
    }
    if (rc == RAGD_OK) rc = store_commit(dst, err);
    else store_rollback(dst);
    if (rc == RAGD_OK) {
        rep->documents_copied++;
        rep->chunks_copied += (int64_t)n;
    }
    store_doc_free(&old);
    for (size_t i = 0; i < n; i++) store_hit_free(&hits[i]);
    free(hits);
    free(vecs);
    free(have);
    return rc;
}

/* Returns: 1 when dst holds d unchanged (same checksum and chunk count). */
static ragd_rc doc_current(store *dst, const store_doc *d, int64_t chunks, int *same,
                           ragd_err *err)
{
    store_doc old = {0};
    int found = 0;
    *same = 0;
    ragd_rc rc = store_doc_find(dst, d->collection, d->path, &old, &found, err);
    if (rc == RAGD_OK && found && strcmp(old.checksum, d->checksum) == 0 &&
        strcmp(old.source, d->source) == 0 && strcmp(old.title, d->title) == 0) {
        size_t n = 0;
        rc = store_doc_chunk_count(dst, old.id, &n, err);
        *same = rc == RAGD_OK && (int64_t)n == chunks;
    }
    store_doc_free(&old);
    return rc;
}

/* Deletes dst's documents of collection that src does not have. */
static ragd_rc prune_collection(store *src, store *dst, const char *collection,
                                store_migrate_report *rep, ragd_err *err)
{
    int64_t *ids = NULL;
    char **paths = NULL;
    size_t n = 0;
    ragd_rc rc = store_doc_list_prefix(dst, collection, "", &ids, &paths, &n, err);
    for (size_t i = 0; rc == RAGD_OK && i < n; i++) {
        store_doc d = {0};
        int found = 0;
        rc = store_doc_find(src, collection, paths[i], &d, &found, err);
        store_doc_free(&d);
        if (rc != RAGD_OK || found) continue;
        rc = store_begin(dst, err);
        if (rc == RAGD_OK) rc = store_doc_delete(dst, ids[i], NULL, err);
        if (rc == RAGD_OK) rc = store_commit(dst, err);
        else store_rollback(dst);
        if (rc == RAGD_OK) rep->documents_removed++;
    }
    for (size_t i = 0; paths && i < n; i++) free(paths[i]);
    free(paths);
    free(ids);
    return rc;
}

ragd_rc store_migrate_run(store *src, store *dst, const char *model, int dims,
                          store_migrate_report *rep, ragd_err *err)
{
    memset(rep, 0, sizeof *rep);
    store_collection *colls = NULL;
    size_t ncolls = 0;
    float *vec = malloc(sizeof(float) * (size_t)dims);
    if (vec == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    ragd_rc rc = store_collections_list(src, &colls, &ncolls, err);
    for (size_t c = 0; rc == RAGD_OK && c < ncolls; c++) {
        const char *name = colls[c].name;
        for (int64_t offset = 0; rc == RAGD_OK;) {
            store_doc *docs = NULL;
            int64_t *counts = NULL, total = 0;
            size_t n = 0;
            rc = store_doc_page(src, name, "", offset, PAGE, &docs, &counts, &n, &total, err);
            for (size_t i = 0; rc == RAGD_OK && i < n; i++) {
                int same = 0;
                rc = doc_current(dst, &docs[i], counts[i], &same, err);
                if (rc == RAGD_OK && same) rep->documents_unchanged++;
                else if (rc == RAGD_OK) rc = copy_doc(src, dst, &docs[i], model, dims, vec, rep, err);
            }
            store_doc_rows_free(docs, n);
            free(counts);
            if (n < PAGE) break;
            offset += (int64_t)n;
        }
        if (rc == RAGD_OK) rc = prune_collection(src, dst, name, rep, err);
    }
    /* collections the source no longer has */
    store_collection *dcolls = NULL;
    size_t nd = 0;
    if (rc == RAGD_OK) rc = store_collections_list(dst, &dcolls, &nd, err);
    for (size_t i = 0; rc == RAGD_OK && i < nd; i++) {
        int known = 0;
        for (size_t c = 0; c < ncolls && !known; c++) known = strcmp(colls[c].name, dcolls[i].name) == 0;
        if (known) continue;
        int64_t docs = 0;
        rc = store_collection_delete(dst, dcolls[i].name, &docs, NULL, err);
        rep->documents_removed += docs;
    }
    store_collections_free(dcolls, nd);
    if (rc == RAGD_OK) rc = store_flush(dst, err);
    /* verify: every collection's counts agree */
    dcolls = NULL;
    nd = 0;
    if (rc == RAGD_OK) rc = store_collections_list(dst, &dcolls, &nd, err);
    if (rc == RAGD_OK && nd != ncolls)
        rc = ragd_err_set(err, RAGD_ERR_STORE, "verification failed: the source has %zu "
                          "collections, the target %zu", ncolls, nd);
    for (size_t i = 0; rc == RAGD_OK && i < nd; i++) {
        if (strcmp(dcolls[i].name, colls[i].name) != 0 ||
            dcolls[i].documents != colls[i].documents || dcolls[i].chunks != colls[i].chunks)
            rc = ragd_err_set(err, RAGD_ERR_STORE, "verification failed for collection '%s': "
                              "source %lld documents / %lld chunks, target '%s' %lld / %lld",
                              colls[i].name, (long long)colls[i].documents,
                              (long long)colls[i].chunks, dcolls[i].name,
                              (long long)dcolls[i].documents, (long long)dcolls[i].chunks);
        rep->documents += dcolls[i].documents;
        rep->chunks += dcolls[i].chunks;
    }
    rep->collections = (int64_t)ncolls;
    store_collections_free(dcolls, nd);
    store_collections_free(colls, ncolls);
    free(vec);
    return rc;
}
