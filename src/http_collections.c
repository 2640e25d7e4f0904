/* SPDX-License-Identifier: MIT */
/*
 * http_collections.c - the collection routes: GET /collections lists the collections holding
 * documents with their counts; DELETE /collections/{name} deletes one collection's documents,
 * chunks and vectors (embeddings stay, so re-ingesting the same text costs nothing). Also the
 * one check of a collection name given by a request (body field or ?collection=).
 */
#include <string.h>

#include "http_int.h"
#include "ragd/store.h"

int http_collection_json_ok(json_t *v)
{
    return json_is_string(v) && engine_collection_valid(json_string_value(v)) &&
           strlen(json_string_value(v)) == json_string_length(v);
}

int http_collection_arg(const char *arg, http_reply *reply)
{
    if (arg == NULL || engine_collection_valid(arg)) return 0;
    *reply = http_reply_errorf(RAGD_ERR_INVALID, NULL, "query argument 'collection': %s",
                               HTTP_COLLECTION_RULE);
    return -1;
}

http_reply http_handle_collections_list(const http_request *req)
{
    store_collection *list = NULL;
    size_t n = 0;
    ragd_err err = {0};
    if (engine_collections_list(req->engine, &list, &n, &err) != RAGD_OK)
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

http_reply http_handle_collection_delete(const http_request *req)
{
    /* the name ends at a query string or one trailing slash */
    char name[80];
    const char *p = req->id;
    size_t n = strcspn(p, "?");
    if (n > 0 && p[n - 1] == '/') n--;
    if (n == 0 || n >= sizeof name)
        return http_reply_error(RAGD_ERR_INVALID, NULL, HTTP_COLLECTION_RULE);
    memcpy(name, p, n);
    name[n] = '\0';
    if (!engine_collection_valid(name))
        return http_reply_error(RAGD_ERR_INVALID, NULL, HTTP_COLLECTION_RULE);
    int64_t docs = 0, chunks = 0;
    ragd_err err = {0};
    if (engine_collection_delete(req->engine, name, &docs, &chunks, &err) != RAGD_OK)
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
