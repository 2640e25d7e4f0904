/* SPDX-License-Identifier: MIT */
/*
 * engine_ingest.c - the engine's write path: incremental ingest of files and directories
 * (crawl, extract, chunk, embed with stored embeddings re-used and new ones kept batch by batch,
 * commit several documents per transaction: group commit), removals of vanished files, reset,
 * and the upsert and removal of pushed documents (a transaction each). Every change goes through
 * the store interface, under the write side of the engine's commit lock (see src/engine_int.h).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "engine_int.h"
#include "ragd/log.h"
#include "ragd/util.h"

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
    free(r->collection);
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
    json_object_set_new(o, "collection",
                        json_string(r->collection ? r->collection : RAGD_COLLECTION_DEFAULT));
    json_object_set_new(o, "embedding",
                        json_pack("{s:I, s:I, s:f}", "batches", (json_int_t)r->embed_batches,
                                  "tokens", (json_int_t)r->embed_tokens, "estimated_cost_usd",
                                  r->embed_cost_usd));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

/* Per-document work prepared outside any lock: chunks, their embedding inputs, checksums and
 * vectors. */
typedef struct doc_work {
    ingest_doc doc;
    ingest_chunk_list chunks;
    char (*checksums)[UTIL_SHA256_HEX_LEN + 1];
    float *vectors; /* chunks.count * dims */
    unsigned char *unstored; /* per chunk: embedded in-process, to be stored with the commit */
} doc_work;

static void doc_work_free(doc_work *w)
{
    ingest_doc_free(&w->doc);
    ingest_chunk_list_free(&w->chunks);
    free(w->checksums);
    free(w->vectors);
    free(w->unstored);
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
    ragd_rc rc = store_doc_find(e->st, e->ingest_collection, f->path, &old, &found, err);
    if (rc == RAGD_OK && util_utf8_valid(f->relative, strlen(f->relative)) &&
        ingest_file_read(f, e->max_file_bytes, &data, &len, &ferr) == RAGD_OK) {
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
        char *in = embed_chunk_input(c->heading, doc.text + c->start, c->end - c->start);
        if (in == NULL) {
            rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
            break;
        }
        char sum[UTIL_SHA256_HEX_LEN + 1];
        util_sha256_hex(in, strlen(in), sum);
        int have = 0;
        for (size_t k = 0; k < t->count && !have; k++) have = strcmp(t->sums[k], sum) == 0;
        if (!have)
            rc = store_embedding_get(e->st, sum, e->embedder->model, e->embedder->dims,
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
    ragd_rc rc = store_begin(e->st, err);
    for (size_t k = 0; rc == RAGD_OK && k < count; k++)
        rc = store_embedding_put(e->st, t->sums[first + k], e->embedder->model, dims,
                                    vectors + k * (size_t)dims, err);
    if (rc == RAGD_OK) rc = store_commit(e->st, err);
    if (rc != RAGD_OK) {
        store_rollback(e->st);
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
 * for survives a crash, a Ctrl-C or an upstream failure later in the run. An in-process
 * embedder's batch (nothing paid) is only marked: docs_commit stores it with its document, in
 * the same transaction, saving a commit per batch. */
static ragd_rc batch_store(void *ctx, size_t first, size_t count, const float *vectors,
                           int64_t tokens, ragd_err *err)
{
    batch_keep *k = ctx;
    engine *e = k->e;
    int dims = e->embedder->dims;
    if (k->w->unstored != NULL) {
        for (size_t t = 0; t < count; t++) {
            size_t i = k->todo_idx[first + t];
            memcpy(k->w->vectors + i * (size_t)dims, vectors + t * (size_t)dims,
                   sizeof(float) * (size_t)dims);
            k->w->unstored[i] = 1;
        }
        k->r->chunks_embedded += (int64_t)count;
        k->r->embed_batches++;
        return RAGD_OK;
    }
    ragd_rc rc = store_begin(e->st, err);
    for (size_t t = 0; rc == RAGD_OK && t < count; t++) {
        size_t i = k->todo_idx[first + t];
        memcpy(k->w->vectors + i * (size_t)dims, vectors + t * (size_t)dims,
               sizeof(float) * (size_t)dims);
        rc = store_embedding_put(e->st, k->w->checksums[i], e->embedder->model, dims,
                                    vectors + t * (size_t)dims, err);
    }
    if (rc == RAGD_OK) rc = store_commit(e->st, err);
    if (rc != RAGD_OK) {
        store_rollback(e->st);
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
        inputs[i] = embed_chunk_input(c->heading, w->doc.text + c->start, c->end - c->start);
        if (inputs[i] == NULL) {
            rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
            break;
        }
        util_sha256_hex(inputs[i], strlen(inputs[i]), w->checksums[i]);
    }
    if (rc == RAGD_OK && (dup_of = dup_map(w->checksums, n)) == NULL)
        rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    /* Every chunk's lookup in one read scope: one snapshot and one lock acquisition, not one per
     * chunk (ingest CPU x0.95, bench/NOTES.md session 5 lead). Closed before new embeddings are
     * computed and stored. */
    int scoped = 0;
    if (rc == RAGD_OK) rc = store_read_begin(e->st, &scoped, err);
    /* A known chunk of a recomputable in-process model: its vector is a pure function of the
     * input this document holds (which hashes to the key), so it is computed from that input,
     * not from the stored chunk's text read back (same bytes, no read, no second hash). */
    embed_vector_fn recompute =
        e->embedder->ops->in_process ? embed_recompute_for(e->embedder->model) : NULL;
    for (size_t i = 0; i < n && rc == RAGD_OK; i++) {
        if (dup_of[i] != i) { /* identical chunks inside this document share one embedding */
            r->chunks_deduplicated++;
            continue;
        }
        int found = 0;
        float *vec = w->vectors + i * (size_t)dims;
        rc = store_embedding_get(e->st, w->checksums[i], e->embedder->model, dims,
                                 recompute != NULL ? NULL : vec, &found, err);
        if (rc == RAGD_OK && found && recompute != NULL) {
            recompute(inputs[i], strlen(inputs[i]), dims, vec);
        } else if (rc == RAGD_OK && found == RAGD_EMBEDDING_UNSTORED) {
            const ingest_chunk *c = &w->chunks.items[i];
            rc = embed_chunk_recompute(e->embedder->model, dims, w->checksums[i], c->heading,
                                       w->doc.text + c->start, c->end - c->start,
                                       w->vectors + i * (size_t)dims, err);
        }
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
    store_read_end(e->st, scoped);
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
        if (rc == RAGD_OK && e->embedder->ops->in_process &&
            (w->unstored = calloc(n, 1)) == NULL)
            rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
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

/* One prepared document waiting for its commit. */
typedef struct batch_doc {
    doc_work w;
    store_doc row;          /* collection and path borrowed (the ingest's); source and checksum
                             * point to owned_source / owned_checksum when set (heap: a batch's
                             * array of batch_doc moves when it grows) */
    char *owned_source;
    char *owned_checksum;
    int64_t existing_id;    /* the stored row it replaces (0: new); see docs_commit's refind */
    const char *relative;   /* borrowed from the ingest's file list; NULL for a pushed document */
    size_t removed;         /* set by docs_commit: chunks of the replaced row */
    int updated;            /* set by docs_commit: the path had a stored row */
} batch_doc;

static void batch_doc_free(batch_doc *d)
{
    doc_work_free(&d->w);
    free(d->owned_source);
    free(d->owned_checksum);
    memset(d, 0, sizeof *d);
}

/* Applies n prepared documents in ONE store transaction, under the write side of the commit
 * lock: either all of them are stored or none (a crash or a failure leaves the store as before
 * the call). The lock covers the whole transaction, not only its commit: on a store where a
 * reader waits for an open write transaction (PGlite serves one transaction at a time), a
 * retrieval holding the read side would wait for the writer while the writer waited for the
 * lock. refind: look each path up again inside the transaction (a pushed document may have
 * written it since the document was prepared), else docs[i].existing_id is trusted.
 * Returns: RAGD_OK, each docs[i].removed / .updated and *locked_ms (how long the lock was held;
 * may be NULL), or the first failure (nothing applied). */
static ragd_rc docs_commit(engine *e, batch_doc *docs, size_t n, int refind, double *locked_ms,
                           ragd_err *err)
{
    int dims = e->embedder->dims;
    if (engine_fault_injected("commit", err)) return RAGD_ERR_STORE;

    engine_write_lock(e);
    double t0 = util_now_ms();
    ragd_rc rc = store_begin(e->st, err);
    for (size_t d = 0; rc == RAGD_OK && d < n; d++) {
        batch_doc *b = &docs[d];
        size_t old_n = 0;
        int64_t doc_id = 0, existing = b->existing_id;
        if (refind) {
            store_doc old = {0};
            int found = 0;
            rc = store_doc_find(e->st, b->row.collection, b->row.path, &old, &found, err);
            existing = found ? old.id : 0;
            store_doc_free(&old);
        }
        for (size_t i = 0; rc == RAGD_OK && b->w.unstored && i < b->w.chunks.count; i++)
            if (b->w.unstored[i])
                rc = store_embedding_put(e->st, b->w.checksums[i], e->embedder->model, dims,
                                         b->w.vectors + i * (size_t)dims, err);
        if (rc == RAGD_OK && existing != 0)
            rc = store_doc_chunks_delete(e->st, existing, &old_n, err);
        if (rc == RAGD_OK) rc = store_doc_put(e->st, &b->row, &doc_id, err);
        for (size_t i = 0; rc == RAGD_OK && i < b->w.chunks.count; i++) {
            const ingest_chunk *c = &b->w.chunks.items[i];
            store_chunk_in in = {.ordinal = (int)i,
                                 .text = b->w.doc.text + c->start,
                                 .text_len = c->end - c->start,
                                 .heading = c->heading,
                                 .tokens = (int64_t)c->tokens,
                                 .char_start = (int64_t)c->start,
                                 .char_end = (int64_t)c->end,
                                 .checksum = b->w.checksums[i],
                                 .page = c->page};
            int64_t id = 0;
            rc = store_chunk_put(e->st, doc_id, &in, b->w.vectors + i * (size_t)dims, dims, &id,
                                 err);
        }
        b->removed = old_n;
        b->updated = existing != 0;
    }
    if (rc == RAGD_OK) rc = store_commit(e->st, err);
    if (rc != RAGD_OK) store_rollback(e->st);
    if (locked_ms) *locked_ms = util_now_ms() - t0;
    engine_write_unlock(e);
    return rc;
}

/* ---- group commit of a directory ingest ------------------------------------------------------
 * Prepared files wait in a batch and are committed together, in one transaction, when their
 * text reaches [ingest] commit_batch_bytes or when committing them would hold the commit lock
 * for about commit_batch_ms (estimated from the previous batch: lock time per byte of text; an
 * HNSW index makes a commit much slower than a flat one): FTS5 then writes one segment per
 * batch instead of one per file, SQLite writes the B-tree interior pages (and the WAL frames for
 * them) once per batch, and retrievals wait at most about commit_batch_ms for a commit. A file counts as done (report, progress)
 * only once its batch committed, so a crash loses at most the batch being prepared, which the
 * next ingest redoes; its embeddings were stored when computed (batch_store) and are re-used. */
typedef struct commit_batch {
    batch_doc *docs;
    size_t count, cap;
    size_t bytes;        /* text bytes of the queued documents */
    double lock_ms_per_byte; /* measured by the previous commit */
    int measured;        /* a commit of this ingest measured lock_ms_per_byte */
} commit_batch;

static void commit_batch_clear(commit_batch *b)
{
    for (size_t i = 0; i < b->count; i++) batch_doc_free(&b->docs[i]);
    b->count = 0;
    b->bytes = 0;
}

static void commit_batch_free(commit_batch *b)
{
    commit_batch_clear(b);
    free(b->docs);
    memset(b, 0, sizeof *b);
}

/* Returns: the slot for one more document (zeroed), or NULL on OOM. */
static batch_doc *commit_batch_slot(commit_batch *b)
{
    if (b->count == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        batch_doc *p = realloc(b->docs, sizeof *p * cap);
        if (p == NULL) return NULL;
        b->docs = p;
        b->cap = cap;
    }
    batch_doc *d = &b->docs[b->count];
    memset(d, 0, sizeof *d);
    return d;
}

/* Whether the batch must be committed now: its byte budget is spent, its commit would hold the
 * lock for commit_batch_ms (the first batch of an ingest: after its first file, to measure), or
 * the ingest is of one file. With no_waiters (nobody waits for the lock: the CLI ingest) the
 * byte budget alone bounds a batch: the lock-time estimate follows wall time, which a loaded
 * machine stretches, and smaller batches then cost CPU (FTS5 segments and merges, B-tree
 * interior pages written again per commit): ingest CPU x0.93 under load (bench/NOTES.md,
 * session 5 part D). commit_batch_ms 0 keeps its meaning (each file on its own). */
static int commit_batch_due(const engine *e, const commit_batch *b, int single, int no_waiters)
{
    if (b->count == 0) return 0;
    if (single || b->bytes >= e->cfg->ingest_commit_batch_bytes) return 1;
    if (no_waiters && e->cfg->ingest_commit_batch_ms > 0) return 0;
    if (!b->measured) return 1;
    return (double)b->bytes * b->lock_ms_per_byte >= (double)e->cfg->ingest_commit_batch_ms;
}

/* Commits the queued documents and counts them in the report. A failure ends the ingest (it is
 * the store's: per-file problems were found while preparing); nothing of the batch is applied
 * and nothing of it counted. Returns: RAGD_OK or the failure, naming the batch's files. */
static ragd_rc commit_batch_flush(engine *e, commit_batch *b, engine_ingest_report *r,
                                  ragd_err *err)
{
    if (b->count == 0) return RAGD_OK;
    ragd_err cerr = {0};
    double t0 = util_now_ms(), locked = 0;
    ragd_rc rc = docs_commit(e, b->docs, b->count, 1, &locked, &cerr);
    if (rc == RAGD_OK && b->bytes > 0) {
        b->lock_ms_per_byte = locked / (double)b->bytes;
        b->measured = 1;
    }
    RAGD_LOG(RAGD_LOG_DEBUG, "ingest", "committed %zu files (%zu bytes of text) in %.1f ms, "
             "%.1f ms of it under the commit lock", b->count, b->bytes, util_now_ms() - t0,
             locked);
    if (rc != RAGD_OK) {
        if (b->count == 1)
            ragd_err_set(err, rc, "%s: %s", b->docs[0].relative, cerr.msg);
        else
            ragd_err_set(err, rc, "%s (and %zu more files committed with it): %s",
                         b->docs[0].relative, b->count - 1, cerr.msg);
        commit_batch_clear(b);
        return rc;
    }
    for (size_t i = 0; i < b->count; i++) {
        batch_doc *d = &b->docs[i];
        if (d->updated)
            r->docs_updated++;
        else
            r->docs_added++;
        r->chunks_added += (int64_t)d->w.chunks.count;
        r->chunks_removed += (int64_t)d->removed;
        engine_report_ocr_add(r, d->relative, &d->w.doc);
    }
    commit_batch_clear(b);
    return RAGD_OK;
}

/* Deletes one document (a file that disappeared) in one store transaction. */
static ragd_rc doc_remove(engine *e, int64_t doc_id, size_t *removed_chunks, ragd_err *err)
{
    size_t n = 0;
    if (engine_fault_injected("delete", err)) return RAGD_ERR_STORE;
    engine_write_lock(e);
    ragd_rc rc = store_begin(e->st, err);
    if (rc == RAGD_OK) rc = store_doc_delete(e->st, doc_id, &n, err);
    if (rc == RAGD_OK) rc = store_commit(e->st, err);
    if (rc != RAGD_OK)
        store_rollback(e->st);
    else
        *removed_chunks = n;
    engine_write_unlock(e);
    return rc;
}

/* Empties the ingest's collection. The whole store is reset (and the model recorded again) when
 * it was built with another model, or when this collection is all it holds. */
static ragd_rc engine_store_reset(engine *e, ragd_err *err)
{
    engine_write_lock(e);
    ragd_rc rc;
    if (e->model_pending || store_collection_exclusive(e->st, e->ingest_collection)) {
        rc = store_reset(e->st, e->embedder->model, e->embedder->dims, err);
        if (rc == RAGD_OK) e->model_pending = 0;
    } else {
        rc = store_collection_delete(e->st, e->ingest_collection, NULL, NULL, err);
    }
    engine_write_unlock(e);
    return rc;
}

static int path_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

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

/* Ingests one crawled file: a changed one is prepared (extracted, chunked, embedded) and queued
 * in batch, whose commit counts it. Returns RAGD_OK when the file was handled (including per-file
 * failures, which go into the report); an error only for failures of the store itself. */
static ragd_rc ingest_one(engine *e, const ingest_file *f, int single,
                          const ingest_extract_opts *xopts, commit_batch *batch,
                          engine_ingest_report *r, ragd_err *err)
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
    ragd_rc rc = store_doc_find(e->st, e->ingest_collection, f->path, &old, &found, err);
    if (rc != RAGD_OK) return rc;
    /* A file ingested on its own keeps the source its directory ingest gave it. */
    char *source = single && found ? old.source : f->relative;

    rc = ingest_file_read(f, e->max_file_bytes, &data, &len, &ferr);
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
        /* Queued for the batch's commit (commit_batch_flush counts it then); w moves there. */
        batch_doc *d = commit_batch_slot(batch);
        if (d == NULL) {
            rc = ragd_err_set(&ferr, RAGD_ERR_NOMEM, "out of memory");
        } else {
            d->owned_source = strdup(source);
            d->owned_checksum = strdup(checksum);
            if (d->owned_source == NULL || d->owned_checksum == NULL) {
                free(d->owned_source);
                free(d->owned_checksum);
                rc = ragd_err_set(&ferr, RAGD_ERR_NOMEM, "out of memory");
            } else {
                d->w = w;
                memset(&w, 0, sizeof w);
                d->row = (store_doc){.collection = (char *)e->ingest_collection,
                                     .path = f->path,
                                     .source = d->owned_source,
                                     .title = d->w.doc.title,
                                     .checksum = d->owned_checksum,
                                     .size = (int64_t)len,
                                     .mtime = f->mtime,
                                     .tags_json = d->w.doc.tags_json,
                                     .metadata_json = d->w.doc.metadata_json};
                d->existing_id = found ? old.id : 0;
                d->relative = f->relative;
                batch->count++;
                batch->bytes += d->w.doc.len;
            }
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

/* Reports progress for files *reported..done-1 (each counted only now that it is final). */
static void ingest_progress_up_to(const engine_ingest_opts *opts, const ingest_file_list *files,
                                  const engine_ingest_report *r, size_t *reported, size_t done)
{
    for (; *reported < done; (*reported)++) {
        const char *relative = files->items[*reported].relative;
        if (opts->progress)
            opts->progress(opts->progress_ctx, *reported + 1, files->count, relative);
        if (opts->progress2) {
            engine_ingest_progress p = {*reported + 1, files->count, r->chunks_embedded,
                                        r->docs_failed, relative};
            opts->progress2(opts->progress_ctx, &p);
        }
    }
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
    ingest_crawl_opts copts = {.extract = &xopts, .globs = &globs,
                               .root_canonical = opts->path_canonical};
    if (e->readonly)
        return ragd_err_set(err, RAGD_ERR_UNSUPPORTED, "the store is open read-only");
    if (e->model_pending && !reset)
        return ragd_err_set(err, RAGD_ERR_MODEL_MISMATCH, "the store was built with another "
                            "embedding model; only an ingest with reset may run");
    if (atomic_load(&e->cancelled))
        return ragd_err_set(err, RAGD_ERR_UNAVAILABLE, "ragd is shutting down; no ingest starts");
    if (pthread_mutex_trylock(&e->ingest_mu) != 0)
        return ragd_err_set(err, RAGD_ERR_BUSY, "an ingest is already running");
    e->max_file_bytes = opts->max_file_bytes ? opts->max_file_bytes : e->cfg->max_file_bytes;
    const char *collection = opts->collection ? opts->collection : RAGD_COLLECTION_DEFAULT;
    /* other processes sharing the store (pgvector): one ingest per collection */
    /* the store's writer connection is shared with pushed documents: under write_mu */
    pthread_mutex_lock(&e->write_mu);
    ragd_rc lrc = engine_writes_allowed(e, err);
    if (lrc == RAGD_OK) lrc = store_ingest_lock(e->st, collection, err);
    pthread_mutex_unlock(&e->write_mu);
    if (lrc != RAGD_OK) {
        pthread_mutex_unlock(&e->ingest_mu);
        return lrc;
    }
    atomic_store(&e->ingest_running, 1);
    e->ingest_collection = collection;
    double t0 = util_now_ms();
    engine_ingest_report r = {.reset = reset, .collection = strdup(e->ingest_collection)};
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
    if (rc == RAGD_OK && reset) rc = engine_store_reset(e, err);
    pthread_mutex_unlock(&e->write_mu);
    r.root = root;
    root = NULL;
    for (size_t i = 0; rc == RAGD_OK && i < files.skipped_count; i++)
        report_add(&r, 1, files.skipped[i].relative, RAGD_ERR_FORBIDDEN, files.skipped[i].path);
    if (rc == RAGD_OK && opts->progress2) {
        engine_ingest_progress p = {0, files.count, 0, 0, ""};
        opts->progress2(progress_ctx, &p);
    }
    commit_batch batch = {0};
    size_t reported = 0; /* files whose progress was reported */
    size_t handled = 0;  /* files before this index were handled (committed, queued, skipped) */
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
        /* Pushed documents take their turn between files (and so between batches). */
        pthread_mutex_lock(&e->write_mu);
        rc = ingest_one(e, &files.items[i], single, &xopts, &batch, &r, err);
        if (rc == RAGD_OK) handled = i + 1;
        if (rc == RAGD_OK && commit_batch_due(e, &batch, single, opts->no_lock_waiters))
            rc = commit_batch_flush(e, &batch, &r, err);
        pthread_mutex_unlock(&e->write_mu);
        /* Progress counts files whose outcome is final: none while a batch waits. */
        if (rc == RAGD_OK && batch.count == 0)
            ingest_progress_up_to(opts, &files, &r, &reported, i + 1);
    }
    pthread_mutex_lock(&e->write_mu);
    /* The queued files are complete: they are committed also when a shutdown stopped the loop,
     * never after a store failure. */
    size_t final_done = reported; /* reported below, once write_mu is released */
    if (batch.count > 0 && (rc == RAGD_OK || rc == RAGD_ERR_UNAVAILABLE)) {
        ragd_err berr = {0};
        ragd_rc brc = commit_batch_flush(e, &batch, &r, &berr);
        if (brc == RAGD_OK)
            final_done = handled;
        else if (rc == RAGD_OK)
            rc = ragd_err_set(err, brc, "%s", berr.msg);
    }
    commit_batch_free(&batch);

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
            rc = store_doc_list_prefix(e->st, e->ingest_collection, prefix, &ids, &paths,
                                       &nprev, err);
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

    if (rc == RAGD_OK)
        rc = store_embeddings_prune(e->st, e->embedder->model, e->embedder->dims, NULL, err);
    if (rc == RAGD_ERR_STORE) engine_write_failed(e, "ingest", err ? err->msg : "store failed");
    /* Durable, and derived state saved (the faiss index file), whatever happened above. Every
     * document is committed (durable against a crash of ragd): a failed flush does not undo the
     * ingest; it is said in the report and is a write fault (/health degraded until one works). */
    ragd_err ferr = {0};
    if (engine_store_flush(e, &ferr) != RAGD_OK) {
        if (rc == RAGD_OK) {
            char msg[RAGD_ERR_MSG_MAX + 64];
            snprintf(msg, sizeof msg, "applied, but the flush to disk failed: %s", ferr.msg);
            report_add(&r, 1, r.root, RAGD_ERR_STORE, msg);
        }
        engine_write_failed(e, "flushing the ingest to disk", ferr.msg);
    }
    pthread_mutex_unlock(&e->write_mu);
    /* progress callbacks run outside write_mu, as in the loop (one may push a document) */
    ingest_progress_up_to(opts, &files, &r, &reported, final_done);

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
    pthread_mutex_lock(&e->write_mu);
    store_ingest_unlock(e->st, e->ingest_collection);
    pthread_mutex_unlock(&e->write_mu);
    atomic_store(&e->ingest_running, 0);
    e->ingest_collection = NULL;
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

/* ---- pushed documents (called from src/engine_docs.c) ------------------------------------ */

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
    batch_doc one = {0};
    ragd_rc rc = store_doc_find(e->st, row->collection, row->path, &old, &found, err);
    if (rc == RAGD_OK && found && strcmp(old.checksum, row->checksum) == 0) {
        size_t n = 0;
        rc = store_doc_chunk_count(e->st, old.id, &n, err);
        *chunks = (int64_t)n;
        *outcome = RAGD_PUSH_UNCHANGED;
        goto out;
    }
    w.doc = *doc;
    memset(doc, 0, sizeof *doc); /* w owns it now */
    if (rc == RAGD_OK) rc = engine_writes_allowed(e, err);
    if (rc == RAGD_OK) rc = doc_prepare(e, &w, NULL, &r, err);
    /* A pushed document keeps its own immediate commit (the caller's answer says it is stored);
     * write_mu is held since the lookup above, so the row found is still the one to replace. */
    if (rc == RAGD_OK) {
        one.row = *row;
        one.existing_id = found ? old.id : 0;
        one.w = w;
        memset(&w, 0, sizeof w);
        rc = docs_commit(e, &one, 1, 0, NULL, err);
    }
    if (rc == RAGD_ERR_STORE)
        engine_write_failed(e, "storing a pushed document", err ? err->msg : "store failed");
    ragd_err yerr = {0};
    if (rc == RAGD_OK && engine_store_sync(e, &yerr) != RAGD_OK) {
        /* Committed, so applied (durable against a crash of ragd): the answer says so; the
         * failed flush is the data dir's problem, reported by /health. */
        engine_write_failed(e, "flushing a pushed document to disk", yerr.msg);
    }
    if (rc == RAGD_OK) {
        *outcome = found ? RAGD_PUSH_UPDATED : RAGD_PUSH_ADDED;
        *chunks = (int64_t)one.w.chunks.count;
    }
out:
    pthread_mutex_unlock(&e->write_mu);
    engine_ingest_report_free(&r);
    doc_work_free(&one.w);
    doc_work_free(&w);
    store_doc_free(&old);
    return rc;
}

ragd_rc engine_doc_remove_path(engine *e, const char *collection, const char *path,
                               int64_t *chunks, ragd_err *err)
{
    if (e->readonly)
        return ragd_err_set(err, RAGD_ERR_UNSUPPORTED, "the store is open read-only");
    pthread_mutex_lock(&e->write_mu);
    store_doc old = {0};
    int found = 0;
    size_t removed = 0;
    ragd_rc rc = store_doc_find(e->st, collection, path, &old, &found, err);
    if (rc == RAGD_OK && !found) rc = ragd_err_set(err, RAGD_ERR_NOT_FOUND, "no such document");
    if (rc == RAGD_OK) rc = engine_writes_allowed(e, err);
    if (rc == RAGD_OK) rc = doc_remove(e, old.id, &removed, err);
    if (rc == RAGD_ERR_STORE)
        engine_write_failed(e, "deleting a document", err ? err->msg : "store failed");
    ragd_err yerr = {0};
    if (rc == RAGD_OK && engine_store_sync(e, &yerr) != RAGD_OK)
        engine_write_failed(e, "flushing a deletion to disk", yerr.msg); /* committed: applied */
    if (rc == RAGD_OK && chunks) *chunks = (int64_t)removed;
    pthread_mutex_unlock(&e->write_mu);
    store_doc_free(&old);
    return rc;
}
