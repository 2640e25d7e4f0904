/* SPDX-License-Identifier: MIT */
/*
 * engine_docs.c - pushed documents: content given as JSON (FAQ rows, policies from the chat app's
 * database) rather than read from disk. Each is stored as a document with the path
 * "push:<id>", which no directory ingest can produce, so re-ingests and their removals never touch
 * it. The stored checksum covers everything that shapes the chunks and what retrieval shows (text,
 * format, title, source, tags, metadata), so pushing the same document again changes nothing and
 * embeds nothing; a changed document is re-chunked, and only chunks whose text is new are
 * embedded (the embeddings table is keyed by chunk text).
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "engine_int.h"
#include "ragd/engine.h"
#include "ragd/ingest.h"
#include "ragd/util.h"

#define PUSH_ID_MAX 256
#define PUSH_PREFIX "push:"

int engine_doc_id_valid(const char *id)
{
    size_t n = id ? strnlen(id, PUSH_ID_MAX + 1) : 0;
    if (n == 0 || n > PUSH_ID_MAX || !util_utf8_valid(id, n)) return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)id[i] < 0x20 || id[i] == 0x7f) return 0;
    return 1;
}

/* Returns: new "push:<id>" (free()), or NULL on OOM. */
static char *push_path(const char *id)
{
    size_t n = strlen(id);
    char *p = malloc(sizeof PUSH_PREFIX + n);
    if (p == NULL) return NULL;
    memcpy(p, PUSH_PREFIX, sizeof PUSH_PREFIX - 1);
    memcpy(p + sizeof PUSH_PREFIX - 1, id, n + 1);
    return p;
}

/* Replaces *slot with a copy of value. Returns: 0 or -1 on OOM (slot unchanged). */
static int field_set(char **slot, const char *value)
{
    char *copy = strdup(value);
    if (copy == NULL) return -1;
    free(*slot);
    *slot = copy;
    return 0;
}

ragd_rc engine_doc_push(engine *e, const engine_push_doc *d, engine_push_outcome *outcome,
                        int64_t *chunks, ragd_err *err)
{
    if (d == NULL || !engine_doc_id_valid(d->id))
        return ragd_err_set(err, RAGD_ERR_INVALID, "document id must be 1..%d bytes of UTF-8 "
                            "without control characters", PUSH_ID_MAX);
    if (d->text == NULL || !util_utf8_valid(d->text, d->text_len) ||
        memchr(d->text, '\0', d->text_len) != NULL)
        return ragd_err_set(err, RAGD_ERR_INVALID, "document %s: text must be UTF-8 without NUL "
                            "bytes", d->id);
    const char *tags = d->tags_json ? d->tags_json : "[]";
    const char *meta = d->metadata_json ? d->metadata_json : "{}";
    char *path = push_path(d->id);
    if (path == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");

    /* The markdown extractor gives the first H1 as a fallback title; front matter in pushed text
     * is not expected, but would be parsed like a file's. */
    ingest_doc doc = {0};
    ragd_rc rc = ingest_extract_file(d->markdown ? "pushed.md" : "pushed.txt", d->text,
                                     d->text_len, NULL, &doc, err);
    if (rc == RAGD_OK) {
        const char *title = d->title && d->title[0] ? d->title
                            : d->markdown && strcmp(doc.title, "pushed") != 0 ? doc.title
                                                                                : d->id;
        if (field_set(&doc.title, title) != 0 || field_set(&doc.tags_json, tags) != 0 ||
            field_set(&doc.metadata_json, meta) != 0)
            rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    }
    char checksum[UTIL_SHA256_HEX_LEN + 1];
    if (rc == RAGD_OK) {
        util_buf b = {0};
        int bad = util_buf_printf(&b, "ragd-push-v1\n%d\n%s\n%s\n%s\n%s\n", d->markdown,
                                  doc.title, d->source ? d->source : "", tags, meta) != 0;
        bad |= util_buf_append(&b, d->text, d->text_len) != 0;
        if (bad)
            rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
        else
            util_sha256_hex(b.data, b.len, checksum);
        util_buf_free(&b);
    }
    if (rc == RAGD_OK) {
        store_doc row = {.collection = (char *)d->collection,
                         .path = path,
                         .source = (char *)(d->source && d->source[0] ? d->source : path),
                         .title = doc.title,
                         .checksum = checksum,
                         .size = (int64_t)d->text_len,
                         .mtime = util_unix_time(),
                         .tags_json = doc.tags_json,
                         .metadata_json = doc.metadata_json};
        rc = engine_doc_upsert(e, &row, &doc, outcome, chunks, err);
    }
    ingest_doc_free(&doc);
    free(path);
    return rc;
}

ragd_rc engine_doc_delete(engine *e, const char *id, int64_t *chunks, ragd_err *err)
{
    return engine_doc_delete_in(e, NULL, id, chunks, err);
}

ragd_rc engine_doc_delete_in(engine *e, const char *collection, const char *id, int64_t *chunks,
                             ragd_err *err)
{
    if (!engine_doc_id_valid(id)) return ragd_err_set(err, RAGD_ERR_NOT_FOUND, "no such document");
    char *path = push_path(id);
    if (path == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    ragd_rc rc = engine_doc_remove_path(e, collection, path, chunks, err);
    free(path);
    return rc;
}
