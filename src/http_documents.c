/* SPDX-License-Identifier: MIT */
/*
 * http_documents.c - the pushed-document routes: POST /documents upserts one document or many
 * (all are validated before any is stored), GET /documents lists them a page at a time with
 * counts, GET /documents/{id} shows one with its chunks, DELETE /documents/{id} removes it.
 * Each works in one collection: a document's (or the request's) "collection" field for POST,
 * ?collection= for the others; "default" when none is given.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_int.h"
#include "ragd/store.h"
#include "ragd/util.h"

#define DOCS_PER_REQUEST_MAX 1000
#define TAGS_MAX 32
#define PAGE_DEFAULT 50
#define PAGE_MAX 500

static const http_field doc_fields[] = {
    {"id", HTTP_FIELD_STRING, HTTP_FIELD_REQUIRED, 1, 256, NULL, NULL},
    {"title", HTTP_FIELD_STRING, 0, 0, 0, NULL, NULL},
    {"text", HTTP_FIELD_STRING, 0, 0, 0, NULL, NULL},
    {"markdown", HTTP_FIELD_STRING, 0, 0, 0, NULL, NULL},
    {"source", HTTP_FIELD_STRING, 0, 0, 0, NULL, NULL},
    {"tags", HTTP_FIELD_STRINGS, 0, 0, TAGS_MAX, NULL, NULL},
    {"metadata", HTTP_FIELD_OBJECT, 0, 0, 0, NULL, NULL},
    {"collection", HTTP_FIELD_STRING, 0, 0, 0, NULL, NULL},
};

static json_t *json_text(const char *text, json_t *fallback)
{
    json_t *v = text ? json_loads(text, 0, NULL) : NULL;
    if (v == NULL) return fallback;
    json_decref(fallback);
    return v;
}

/* Checks one document object (documents[i] of a list when many). Returns: 0, or -1 with
 * *reply set. */
static int doc_check(const ragd_cfg *cfg, json_t *d, size_t i, int many, http_reply *reply)
{
    char prefix[48] = "";
    if (many) snprintf(prefix, sizeof prefix, "documents[%zu].", i);
    if (!json_is_object(d)) {
        *reply = http_reply_errorf(RAGD_ERR_INVALID, NULL, "%sa document must be a JSON object",
                                   many ? prefix : "");
        return -1;
    }
    if (http_fields_check(d, doc_fields, sizeof doc_fields / sizeof doc_fields[0], prefix, cfg,
                          reply) != 0)
        return -1;
    json_t *id = json_object_get(d, "id");
    if (!engine_doc_id_valid(json_string_value(id)) ||
        strlen(json_string_value(id)) != json_string_length(id)) {
        *reply = http_reply_errorf(RAGD_ERR_INVALID, NULL, "field '%sid' must be a string of "
                                   "1..256 bytes without control characters", prefix);
        return -1;
    }
    json_t *text = json_object_get(d, "text"), *md = json_object_get(d, "markdown");
    if ((text == NULL) == (md == NULL)) {
        *reply = http_reply_errorf(RAGD_ERR_INVALID, NULL, "%sgive exactly one of 'text' or "
                                   "'markdown' (a string)", prefix);
        return -1;
    }
    json_t *coll = json_object_get(d, "collection");
    if (coll != NULL && !http_collection_json_ok(coll)) {
        *reply = http_reply_errorf(RAGD_ERR_INVALID, NULL, "field '%scollection': %s", prefix,
                                   HTTP_COLLECTION_RULE);
        return -1;
    }
    json_t *body = text ? text : md;
    if (json_string_length(body) > cfg->max_document_bytes) {
        char shown[120];
        util_utf8_clip(shown, sizeof shown, json_string_value(id), json_string_length(id));
        *reply = http_reply_errorf(RAGD_ERR_TOO_LARGE, NULL, "document '%s' is %zu bytes, over "
                                   "the limit of %zu ([ingest] max_document_bytes)", shown,
                                   json_string_length(body), cfg->max_document_bytes);
        return -1;
    }
    return 0;
}

/* Returns: 1 when documents a and b (already checked) name the same collection. */
static int same_collection(json_t *a, json_t *b)
{
    const char *x = json_string_value(json_object_get(a, "collection"));
    const char *y = json_string_value(json_object_get(b, "collection"));
    return (x == NULL && y == NULL) || (x && y && strcmp(x, y) == 0);
}

/* Parses and checks a POST /documents body: one document, {"documents": [...]} (optionally with a
 * shared "collection"), or a bare array; every document valid, ids unique per collection.
 * Returns: 0 and *rootp, *listp (new references), *sharedp (borrowed from *rootp, may be NULL),
 * *many (0 for a single document); or -1 with *reply set and nothing to free. */
static int docs_parse(const ragd_cfg *cfg, const char *body, size_t len, json_t **rootp,
                      json_t **listp, json_t **sharedp, int *many, http_reply *reply)
{
    if (body == NULL || len == 0) {
        *reply = http_reply_error(RAGD_ERR_INVALID, "invalid_json",
                                  "request body is empty; expected a document or "
                                  "{\"documents\": [...]}");
        return -1;
    }
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (root == NULL) {
        *reply = http_reply_errorf(RAGD_ERR_INVALID, "invalid_json",
                                   "malformed JSON at line %d column %d: %s", jerr.line,
                                   jerr.column, jerr.text);
        return -1;
    }
    json_t *list = NULL, *shared = NULL;
    *many = 1;
    if (json_is_array(root)) {
        list = json_incref(root);
    } else if (json_is_object(root) && json_object_get(root, "documents") != NULL &&
               (json_object_size(root) == 1 ||
                (json_object_size(root) == 2 && json_object_get(root, "collection") != NULL))) {
        list = json_incref(json_object_get(root, "documents"));
        shared = json_object_get(root, "collection");
        if (shared != NULL && !http_collection_json_ok(shared)) {
            *reply = http_reply_errorf(RAGD_ERR_INVALID, NULL, "field 'collection': %s",
                                       HTTP_COLLECTION_RULE);
            goto bad;
        }
    } else if (json_is_object(root)) {
        list = json_pack("[O]", root);
        *many = 0;
    }
    if (!json_is_array(list) || json_array_size(list) == 0 ||
        json_array_size(list) > DOCS_PER_REQUEST_MAX) {
        *reply = http_reply_error(RAGD_ERR_INVALID, NULL,
                                  "expected a document object, an array of them, or "
                                  "{\"documents\": [...]} with 1..1000 documents");
        goto bad;
    }
    for (size_t i = 0; i < json_array_size(list); i++)
        if (doc_check(cfg, json_array_get(list, i), i, *many, reply) != 0) goto bad;
    for (size_t i = 0; i < json_array_size(list); i++) /* ids unique within the request */
        for (size_t k = 0; k < i; k++)
            if (strcmp(json_string_value(json_object_get(json_array_get(list, i), "id")),
                       json_string_value(json_object_get(json_array_get(list, k), "id"))) == 0 &&
                same_collection(json_array_get(list, i), json_array_get(list, k))) {
                *reply = http_reply_errorf(RAGD_ERR_INVALID, NULL,
                                           "documents[%zu]: duplicate id in this request", i);
                goto bad;
            }
    *rootp = root;
    *listp = list;
    *sharedp = shared;
    return 0;
bad:
    json_decref(list);
    json_decref(root);
    return -1;
}

int http_documents_body_check(const ragd_cfg *cfg, const char *body, size_t len,
                              http_reply *reply)
{
    json_t *root = NULL, *list = NULL, *shared = NULL;
    int many = 0;
    if (docs_parse(cfg, body, len, &root, &list, &shared, &many, reply) != 0) return -1;
    json_decref(list);
    json_decref(root);
    return 0;
}

static const char *const outcome_names[] = {"added", "updated", "unchanged"};

http_reply http_handle_documents_post(const http_request *req)
{
    engine *e = req->engine;
    const ragd_cfg *cfg = req->cfg;
    const char *body = req->body;
    size_t len = req->body_len;
    http_reply reply = {0};
    json_t *root = NULL, *list = NULL;
    json_t *shared = NULL; /* {"collection": ..., "documents": [...]}; borrowed from root */
    int many = 0;
    if (docs_parse(cfg, body, len, &root, &list, &shared, &many, &reply) != 0) return reply;
    json_t *results = json_array();
    int64_t counts[3] = {0, 0, 0};
    reply.status = 200;
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *d = json_array_get(list, i);
        json_t *text = json_object_get(d, "text"), *md = json_object_get(d, "markdown");
        json_t *body_v = text ? text : md;
        json_t *tags = json_object_get(d, "tags"), *meta = json_object_get(d, "metadata");
        char *tags_s = tags ? json_dumps(tags, JSON_COMPACT) : NULL;
        char *meta_s = meta ? json_dumps(meta, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        engine_push_doc pd = {.id = json_string_value(json_object_get(d, "id")),
                              .title = json_string_value(json_object_get(d, "title")),
                              .text = json_string_value(body_v),
                              .text_len = json_string_length(body_v),
                              .markdown = md != NULL,
                              .source = json_string_value(json_object_get(d, "source")),
                              .tags_json = tags_s,
                              .metadata_json = meta_s,
                              .collection = json_string_value(json_object_get(d, "collection"))};
        if (pd.collection == NULL && shared != NULL) pd.collection = json_string_value(shared);
        engine_push_outcome outcome = RAGD_PUSH_UNCHANGED;
        int64_t chunks = 0;
        ragd_err err = {0};
        ragd_rc rc = engine_doc_push(e, &pd, &outcome, &chunks, &err);
        free(tags_s);
        free(meta_s);
        if (rc != RAGD_OK) {
            json_decref(results);
            char shown[120];
            util_utf8_clip(shown, sizeof shown, pd.id, strlen(pd.id));
            reply = http_reply_errorf(err.rc, NULL, "document '%s': %s (%zu earlier documents "
                                      "of this request were stored)", shown, err.msg, i);
            goto out;
        }
        counts[outcome]++;
        json_array_append_new(results, json_pack("{s:s, s:s, s:I}", "id", pd.id, "outcome",
                                                 outcome_names[outcome], "chunks",
                                                 (json_int_t)chunks));
    }
    reply.body = json_pack("{s:o, s:{s:I, s:I, s:I}}", "documents", results, "counts", "added",
                           (json_int_t)counts[0], "updated", (json_int_t)counts[1], "unchanged",
                           (json_int_t)counts[2]);
    if (reply.body == NULL) reply = http_reply_error(RAGD_ERR_NOMEM, NULL, "out of memory");
out:
    json_decref(list);
    json_decref(root);
    return reply;
}

/* Returns: a document row as JSON (new reference). */
static json_t *doc_json(const store_doc *d, int64_t chunks)
{
    return json_pack("{s:s, s:I, s:s, s:s, s:o, s:o, s:I, s:I, s:I, s:s}", "id", d->path + 5,
                     "document_id", (json_int_t)d->id, "title", d->title, "source", d->source,
                     "tags", json_text(d->tags_json, json_array()), "metadata",
                     json_text(d->metadata_json, json_object()), "chunks", (json_int_t)chunks,
                     "bytes", (json_int_t)d->size, "updated_at", (json_int_t)d->mtime,
                     "collection", d->collection ? d->collection : RAGD_COLLECTION_DEFAULT);
}

/* Parses a non-negative integer query argument. Returns: 0, or -1 when malformed. */
static int arg_int(const char *s, int64_t *out)
{
    if (s == NULL) return 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 0) return -1;
    *out = v;
    return 0;
}

http_reply http_handle_documents_list(const http_request *req)
{
    engine *e = req->engine;
    const char *offset_s = http_request_arg(req, "offset");
    const char *limit_s = http_request_arg(req, "limit");
    const char *collection = http_request_arg(req, "collection");
    http_reply bad;
    if (http_collection_arg(collection, &bad) != 0) return bad;
    int64_t offset = 0, limit = PAGE_DEFAULT;
    if (arg_int(offset_s, &offset) != 0 || arg_int(limit_s, &limit) != 0 || limit < 1 ||
        limit > PAGE_MAX)
        return http_reply_error(RAGD_ERR_INVALID, NULL, "query arguments: offset must be an "
                                "integer >= 0, limit an integer 1..500");
    store_doc *docs = NULL;
    int64_t *counts = NULL, total = 0;
    size_t n = 0;
    ragd_err err = {0};
    store *db = engine_store_get(e);
    store_collection *colls = NULL;
    size_t ncolls = 0;
    if (store_doc_page(db, collection, "push:", offset, limit, &docs, &counts, &n, &total,
                       &err) != RAGD_OK ||
        store_collections_list(db, &colls, &ncolls, &err) != RAGD_OK) {
        store_doc_rows_free(docs, n);
        free(counts);
        return http_reply_error(err.rc, NULL, err.msg);
    }
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(list, doc_json(&docs[i], counts[i]));
    store_doc_rows_free(docs, n);
    free(counts);
    /* the counts are the collection's */
    store_collection all = {0};
    const char *name = collection ? collection : RAGD_COLLECTION_DEFAULT;
    for (size_t i = 0; i < ncolls; i++)
        if (strcmp(colls[i].name, name) == 0) all = colls[i];
    http_reply r = {.status = 200};
    r.body = json_pack("{s:o, s:I, s:I, s:I, s:{s:I, s:I, s:I}, s:s}", "documents", list, "total",
                       (json_int_t)total, "offset", (json_int_t)offset, "limit",
                       (json_int_t)limit, "counts", "pushed", (json_int_t)total, "files",
                       (json_int_t)(all.documents - total), "chunks", (json_int_t)all.chunks,
                       "collection", name);
    store_collections_free(colls, ncolls);
    if (r.body == NULL) r = http_reply_error(RAGD_ERR_NOMEM, NULL, "out of memory");
    return r;
}

http_reply http_handle_document_get(const http_request *req)
{
    engine *e = req->engine;
    const char *id = req->id;
    const char *collection = http_request_arg(req, "collection");
    http_reply bad;
    if (http_collection_arg(collection, &bad) != 0) return bad;
    /* ids are UTF-8 without control characters: anything else names no document */
    if (!engine_doc_id_valid(id) || !util_utf8_valid(id, strlen(id)))
        return http_reply_error(RAGD_ERR_NOT_FOUND, NULL, "no pushed document with this id");
    char *path = NULL;
    util_buf b = {0};
    if (util_buf_printf(&b, "push:%s", id) != 0)
        return http_reply_error(RAGD_ERR_NOMEM, NULL, "out of memory");
    path = util_buf_steal(&b);
    store_doc *docs = NULL;
    int64_t *counts = NULL, total = 0;
    size_t n = 0;
    ragd_err err = {0};
    store *db = engine_store_get(e);
    http_reply r;
    /* the exact path sorts first among those it prefixes */
    if (path == NULL ||
        store_doc_page(db, collection, path, 0, 1, &docs, &counts, &n, &total, &err) !=
            RAGD_OK) {
        r = http_reply_error(path ? err.rc : RAGD_ERR_NOMEM, NULL, path ? err.msg : "OOM");
        goto out;
    }
    if (n == 0 || strcmp(docs[0].path, path) != 0) {
        r = http_reply_error(RAGD_ERR_NOT_FOUND, NULL, "no pushed document with this id");
        goto out;
    }
    store_hit *hits = NULL;
    size_t nh = 0;
    if (store_doc_chunks_read(db, docs[0].id, &hits, &nh, &err) != RAGD_OK) {
        r = http_reply_error(err.rc, NULL, err.msg);
        goto out;
    }
    json_t *chunks = json_array();
    for (size_t i = 0; i < nh; i++) {
        json_array_append_new(chunks, json_pack("{s:i, s:I, s:s, s:s, s:I, s:I, s:I}", "chunk",
                                                hits[i].ordinal, "chunk_id",
                                                (json_int_t)hits[i].chunk_id, "text", hits[i].text,
                                                "heading", hits[i].heading, "tokens",
                                                (json_int_t)hits[i].tokens, "char_start",
                                                (json_int_t)hits[i].char_start, "char_end",
                                                (json_int_t)hits[i].char_end));
        store_hit_free(&hits[i]);
    }
    free(hits);
    r = (http_reply){.status = 200};
    r.body = doc_json(&docs[0], (int64_t)nh);
    if (r.body) {
        json_object_set_new(r.body, "chunk_count", json_integer((json_int_t)nh));
        json_object_set_new(r.body, "chunks", chunks);
    } else {
        json_decref(chunks);
    }
    if (r.body == NULL) r = http_reply_error(RAGD_ERR_NOMEM, NULL, "out of memory");
out:
    store_doc_rows_free(docs, n);
    free(counts);
    free(path);
    return r;
}

http_reply http_handle_document_delete(const http_request *req)
{
    engine *e = req->engine;
    const char *id = req->id;
    /* ids are UTF-8 without control characters: anything else names no document */
    if (!engine_doc_id_valid(id) || !util_utf8_valid(id, strlen(id)))
        return http_reply_error(RAGD_ERR_NOT_FOUND, NULL, "no pushed document with this id");
    const char *collection = http_request_arg(req, "collection");
    http_reply bad;
    if (http_collection_arg(collection, &bad) != 0) return bad;
    int64_t chunks = 0;
    ragd_err err = {0};
    if (engine_doc_delete_in(e, collection, id, &chunks, &err) != RAGD_OK)
        return http_reply_error(err.rc, NULL, err.rc == RAGD_ERR_NOT_FOUND
                                                  ? "no pushed document with this id"
                                                  : err.msg);
    http_reply r = {.status = 200};
    r.body = json_pack("{s:s, s:b, s:I}", "id", id, "deleted", 1, "chunks_removed",
                       (json_int_t)chunks);
    return r;
}
