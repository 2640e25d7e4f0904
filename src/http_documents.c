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

static http_reply invalid_at(size_t i, int many, const char *msg)
{
    char text[400];
    if (many)
        snprintf(text, sizeof text, "documents[%zu]: %s", i, msg);
    else
        snprintf(text, sizeof text, "%s", msg);
    return http_reply_error(RAGD_ERR_INVALID, NULL, text);
}

#define COLLECTION_RULE                                                                            \
    "'collection' must be a collection name: 1..64 ASCII letters, digits, '_', '-' or '.', not "   \
    "starting with '.'"

/* Returns: 1 when v is a JSON string naming a valid collection (no embedded NUL). */
static int collection_name_ok(json_t *v)
{
    return json_is_string(v) && engine_collection_valid(json_string_value(v)) &&
           strlen(json_string_value(v)) == json_string_length(v);
}

static json_t *json_text(const char *text, json_t *fallback)
{
    json_t *v = text ? json_loads(text, 0, NULL) : NULL;
    if (v == NULL) return fallback;
    json_decref(fallback);
    return v;
}

/* Checks one document object. Returns: 0, or -1 with *reply set. */
static int doc_check(const ragd_cfg *cfg, json_t *d, size_t i, int many, http_reply *reply)
{
    static const char *const fields[] = {"id", "title", "text", "markdown", "source", "tags",
                                         "metadata", "collection", NULL};
    char msg[300];
    if (!json_is_object(d)) {
        *reply = invalid_at(i, many, "a document must be a JSON object");
        return -1;
    }
    const char *key = http_json_unknown_key(d, fields);
    if (key != NULL) {
        snprintf(msg, sizeof msg, "unknown field '%.64s'; known fields: id, title, text, "
                 "markdown, source, tags, metadata, collection", key);
        *reply = invalid_at(i, many, msg);
        return -1;
    }
    json_t *id = json_object_get(d, "id");
    if (!json_is_string(id) || !engine_doc_id_valid(json_string_value(id)) ||
        strlen(json_string_value(id)) != json_string_length(id)) {
        *reply = invalid_at(i, many, "field 'id' is required: a string of 1..256 bytes without "
                                     "control characters");
        return -1;
    }
    json_t *text = json_object_get(d, "text"), *md = json_object_get(d, "markdown");
    if ((text == NULL) == (md == NULL)) {
        *reply = invalid_at(i, many, "give exactly one of 'text' or 'markdown' (a string)");
        return -1;
    }
    json_t *body = text ? text : md;
    if (!json_is_string(body)) {
        *reply = invalid_at(i, many, text ? "field 'text' must be a string"
                                          : "field 'markdown' must be a string");
        return -1;
    }
    if (json_string_length(body) > cfg->max_document_bytes) {
        snprintf(msg, sizeof msg, "document '%.100s' is %zu bytes, over the limit of %zu "
                 "([ingest] max_document_bytes)", json_string_value(id), json_string_length(body),
                 cfg->max_document_bytes);
        *reply = http_reply_error(RAGD_ERR_TOO_LARGE, NULL, msg);
        return -1;
    }
    json_t *title = json_object_get(d, "title"), *source = json_object_get(d, "source");
    if ((title && !json_is_string(title)) || (source && !json_is_string(source))) {
        *reply = invalid_at(i, many, "fields 'title' and 'source' must be strings");
        return -1;
    }
    json_t *tags = json_object_get(d, "tags");
    if (tags) {
        int ok = json_is_array(tags) && json_array_size(tags) <= TAGS_MAX;
        for (size_t k = 0; ok && k < json_array_size(tags); k++)
            ok = json_is_string(json_array_get(tags, k));
        if (!ok) {
            *reply = invalid_at(i, many, "field 'tags' must be an array of at most 32 strings");
            return -1;
        }
    }
    json_t *meta = json_object_get(d, "metadata");
    if (meta && !json_is_object(meta)) {
        *reply = invalid_at(i, many, "field 'metadata' must be an object");
        return -1;
    }
    json_t *coll = json_object_get(d, "collection");
    if (coll && !collection_name_ok(coll)) {
        *reply = invalid_at(i, many, COLLECTION_RULE);
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

static const char *const outcome_names[] = {"added", "updated", "unchanged"};

int http_collection_arg(const char *arg, http_reply *reply)
{
    if (arg == NULL || engine_collection_valid(arg)) return 0;
    *reply = http_reply_error(RAGD_ERR_INVALID, NULL, "query argument 'collection': "
                              COLLECTION_RULE);
    return -1;
}

static http_reply handle_post(engine *e, const ragd_cfg *cfg, const char *body, size_t len)
{
    http_reply reply = {0};
    if (body == NULL || len == 0)
        return http_reply_error(RAGD_ERR_INVALID, "invalid_json",
                                "request body is empty; expected a document or "
                                "{\"documents\": [...]}");
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (root == NULL) {
        char msg[300];
        snprintf(msg, sizeof msg, "malformed JSON at line %d column %d: %s", jerr.line,
                 jerr.column, jerr.text);
        return http_reply_error(RAGD_ERR_INVALID, "invalid_json", msg);
    }
    /* One document, {"documents": [...]}, or a bare array. */
    json_t *list = NULL;
    json_t *shared = NULL; /* borrowed from root */
    int many = 1;
    if (json_is_array(root)) {
        list = json_incref(root);
    } else if (json_is_object(root) && json_object_get(root, "documents") != NULL &&
               (json_object_size(root) == 1 ||
                (json_object_size(root) == 2 && json_object_get(root, "collection") != NULL))) {
        list = json_incref(json_object_get(root, "documents"));
        /* {"collection": ..., "documents": [...]}: the default for documents naming none */
        shared = json_object_get(root, "collection");
        if (shared != NULL && !collection_name_ok(shared)) {
            reply = http_reply_error(RAGD_ERR_INVALID, NULL, COLLECTION_RULE);
            goto out;
        }
    } else if (json_is_object(root)) {
        list = json_pack("[O]", root);
        many = 0;
    }
    if (!json_is_array(list) || json_array_size(list) == 0 ||
        json_array_size(list) > DOCS_PER_REQUEST_MAX) {
        reply = http_reply_error(RAGD_ERR_INVALID, NULL,
                                 "expected a document object, an array of them, or "
                                 "{\"documents\": [...]} with 1..1000 documents");
        goto out;
    }
    for (size_t i = 0; i < json_array_size(list); i++)
        if (doc_check(cfg, json_array_get(list, i), i, many, &reply) != 0) goto out;
    for (size_t i = 0; i < json_array_size(list); i++) /* ids unique within the request */
        for (size_t k = 0; k < i; k++)
            if (strcmp(json_string_value(json_object_get(json_array_get(list, i), "id")),
                       json_string_value(json_object_get(json_array_get(list, k), "id"))) == 0 &&
                same_collection(json_array_get(list, i), json_array_get(list, k))) {
                reply = invalid_at(i, many, "duplicate id in this request");
                goto out;
            }
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
            char msg[RAGD_ERR_MSG_MAX + 200];
            snprintf(msg, sizeof msg, "document '%.100s': %s (%zu earlier documents of this "
                     "request were stored)", pd.id, err.msg, i);
            reply = http_reply_error(err.rc, NULL, msg);
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

static http_reply handle_list(engine *e, const char *offset_s, const char *limit_s,
                              const char *collection)
{
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
    if (store_doc_page(db, collection, "push:", offset, limit, &docs, &counts, &n, &total, &err) !=
            RAGD_OK ||
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

static http_reply handle_get(engine *e, const char *id, const char *collection)
{
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
        store_doc_page(db, collection, path, 0, 1, &docs, &counts, &n, &total, &err) != RAGD_OK) {
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

static http_reply handle_delete(engine *e, const char *id, const char *collection)
{
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

http_reply http_documents_handle(engine *e, const ragd_cfg *cfg, const char *method,
                                 const char *url, const char *offset, const char *limit,
                                 const char *body, size_t len, const char *collection)
{
    http_reply bad;
    if (http_collection_arg(collection, &bad) != 0) return bad;
    static const char prefix[] = "/documents/";
    /* "/documents/" with nothing after it is the collection (the router does the same) */
    if (strncmp(url, prefix, sizeof prefix - 1) == 0 && url[sizeof prefix - 1] != '\0') {
        const char *id = url + sizeof prefix - 1;
        if (strcmp(method, "DELETE") == 0) return handle_delete(e, id, collection);
        return handle_get(e, id, collection);
    }
    if (strcmp(method, "POST") == 0) return handle_post(e, cfg, body, len);
    return handle_list(e, offset, limit, collection);
}
