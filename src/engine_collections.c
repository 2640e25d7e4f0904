/* SPDX-License-Identifier: MIT */
/*
 * engine_collections.c - collections: the names a request may give (one rule for HTTP and CLI),
 * the listing with counts, and deleting a whole collection (its documents, chunks and vectors in
 * one store transaction; embeddings stay, so re-ingesting the same text costs nothing).
 */
#include <string.h>

#include "engine_int.h"

#define COLLECTION_NAME_MAX 64

int engine_collection_valid(const char *name)
{
    size_t n = name ? strnlen(name, COLLECTION_NAME_MAX + 1) : 0;
    if (n == 0 || n > COLLECTION_NAME_MAX || name[0] == '.') return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '-' || c == '.';
        if (!ok) return 0;
    }
    return 1;
}

ragd_rc engine_collections_list(engine *e, store_collection **out, size_t *n, ragd_err *err)
{
    return store_collections_list(e->st, out, n, err);
}

ragd_rc engine_collection_delete(engine *e, const char *name, int64_t *documents,
                                 int64_t *chunks, ragd_err *err)
{
    if (!engine_collection_valid(name))
        return ragd_err_set(err, RAGD_ERR_INVALID, "invalid collection name");
    if (e->readonly)
        return ragd_err_set(err, RAGD_ERR_UNSUPPORTED, "the store is open read-only");
    /* An ingest into the collection would go on adding documents: refuse while one runs. */
    if (pthread_mutex_trylock(&e->ingest_mu) != 0)
        return ragd_err_set(err, RAGD_ERR_BUSY, "an ingest is running; delete the collection "
                            "when it has finished");
    pthread_mutex_lock(&e->write_mu);
    engine_write_lock(e);
    int64_t docs = 0, ch = 0;
    ragd_rc rc = store_collection_delete(e->st, name, &docs, &ch, err);
    engine_write_unlock(e);
    if (rc == RAGD_OK) rc = store_flush(e->st, err);
    pthread_mutex_unlock(&e->write_mu);
    pthread_mutex_unlock(&e->ingest_mu);
    if (rc == RAGD_OK) {
        if (documents) *documents = docs;
        if (chunks) *chunks = ch;
    }
    return rc;
}
