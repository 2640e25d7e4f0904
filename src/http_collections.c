/* SPDX-License-Identifier: MIT */
/*
 * http_collections.c - the collection routes: GET /collections lists the collections holding
 * documents with their counts; DELETE /collections/{name} deletes one collection's documents,
 * chunks and vectors (embeddings stay, so re-ingesting the same text costs nothing).
 */
#include <string.h>

#include "http_int.h"
#include "ragd/store.h"

static http_reply handle_list(engine *e)
{
    store_collection *list = NULL;
    size_t n = 0;
    ragd_err err = {0};
    if (engine_collections_list(e, &list, &n, &err) != RAGD_OK)
        return http_reply_error(err.rc, NULL, err.msg);
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        json_array_append_new(arr, json_pack("{s:s, s:I, s:I}", "name", list[i].name, "documents",
                                             (json_int_t)list[i].documents, "chunks",
                                             (json_int_t)list[i].chunks));
    store_collections_free(list, n);
    http_reply r = {.status = 200};
    r.body = arr ? json_pack("{s:o, s:I}", "collections", arr, "count", (json_int_t)n) : NULL;
    if (r.body == NULL) r = http_reply_error(RAGD_ERR_NOMEM, NULL, "out of memory");
    return r;
}

static http_reply handle_delete(engine *e, const char *name)
{
    if (!engine_collection_valid(name))
        return http_reply_error(RAGD_ERR_INVALID, NULL,
                                "a collection name is 1..64 ASCII letters, digits, '_', '-' or "
                                "'.', not starting with '.'");
    int64_t docs = 0, chunks = 0;
    ragd_err err = {0};
    if (engine_collection_delete(e, name, &docs, &chunks, &err) != RAGD_OK)
        return http_reply_error(err.rc, NULL, err.msg);
    if (docs == 0)
        return http_reply_error(RAGD_ERR_NOT_FOUND, NULL, "no collection with this name holds "
                                "documents");
    http_reply r = {.status = 200};
    r.body = json_pack("{s:s, s:b, s:I, s:I}", "collection", name, "deleted", 1,
                       "documents_removed", (json_int_t)docs, "chunks_removed",
                       (json_int_t)chunks);
    if (r.body == NULL) r = http_reply_error(RAGD_ERR_NOMEM, NULL, "out of memory");
    return r;
}

http_reply http_collections_handle(engine *e, const char *method, const char *url)
{
    static const char prefix[] = "/collections/";
    if (strcmp(method, "DELETE") == 0 && strncmp(url, prefix, sizeof prefix - 1) == 0) {
        /* the name ends at a query string or one trailing slash */
        char name[80];
        const char *p = url + sizeof prefix - 1;
        size_t n = strcspn(p, "?");
        if (n > 0 && p[n - 1] == '/') n--;
        if (n == 0 || n >= sizeof name)
            return http_reply_error(RAGD_ERR_INVALID, NULL, "a collection name is 1..64 ASCII "
                                    "letters, digits, '_', '-' or '.', not starting with '.'");
        memcpy(name, p, n);
        name[n] = '\0';
        return handle_delete(e, name);
    }
    return handle_list(e);
}
