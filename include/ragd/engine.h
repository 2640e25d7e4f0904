/* SPDX-License-Identifier: MIT */
/*
 * engine.h - the RAG engine: owns the store, the vector index and the embedder for one data dir,
 * and offers the two operations everything else calls: ingest and retrieve. The HTTP server and
 * the CLI are thin layers over it.
 *
 * Concurrency: retrievals run from any number of threads while one ingest runs. An ingest commits
 * document by document; each commit is one store transaction (ragd/store.h) under a write lock
 * that retrievals take for reading, so a retrieval never sees a half-applied document.
 */
#ifndef RAGD_ENGINE_H
#define RAGD_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "ragd/cache.h"
#include "ragd/cfg.h"
#include "ragd/embed.h"
#include "ragd/ingest.h"
#include "ragd/ragd.h"
#include "ragd/rerank.h"
#include "ragd/retrieve.h"
#include "ragd/store.h"

typedef struct engine engine;

/* engine_open flags. */
#define RAGD_ENGINE_READONLY 1u  /* `ragd query` beside a daemon: no lock, no writes */
#define RAGD_ENGINE_RESETTING 2u /* the caller will ingest with reset: a store built with another
                                  * embedding model opens (empty index) instead of failing */

/* Opens data_dir (cfg->data_dir): creates it, takes the data-dir lock (daemon and CLI ingest take
 * it exclusively; read-only opens do not), opens the store [store] vector_backend names (faiss:
 * SQLite, then the vector index loaded or rebuilt from SQLite), checks the embedding model.
 * flags: RAGD_ENGINE_* or 0.
 * cfg is borrowed until engine_close. Returns: *out new (free with engine_close). When another
 * process holds the lock: RAGD_ERR_LOCKED, message naming the pid and listen address. */
ragd_rc engine_open(const ragd_cfg *cfg, unsigned flags, engine **out, ragd_err *err);

/* Records the address the daemon listens on in the lock file, for CLI ingests to forward to. */
void engine_listen_note(engine *e, const char *host, int port);

/* Reads data_dir's lock file: the pid of the process holding it (0 if unknown or none holds it)
 * and the "host:port" it serves on ("" if none). Returns: 1 when another process holds the lock,
 * 0 when nobody does. */
int engine_lock_owner(const char *data_dir, long *pid, char *listen, size_t listen_size);

/* Saves the index if it changed, closes everything, releases the lock. e may be NULL. */
void engine_close(engine *e);

/* ---- ingest ------------------------------------------------------------------------------- */
typedef struct engine_file_error {
    char *source; /* path as given or relative; owned */
    char *code;   /* ragd_rc_name() of the failure; owned */
    char *message;
} engine_file_error;

typedef struct engine_ingest_report {
    char *root;         /* canonical root that was ingested; owned */
    engine_file_error *warnings; /* files read with a repair, entries skipped (symlinks leaving
                                  * the root); not failures; owned */
    size_t warning_count;
    int64_t docs_seen, docs_added, docs_updated, docs_unchanged, docs_removed, docs_failed;
    int64_t chunks_added, chunks_removed, chunks_embedded, chunks_deduplicated;
    engine_file_error *errors;
    size_t error_count;
    double duration_ms;
    int reset;
    int64_t embed_batches;   /* provider batches that returned (each made durable at once) */
    int64_t embed_tokens;    /* tokens billed for them (0 for the local provider) */
    double embed_cost_usd;   /* embed_tokens at embed.price_per_million */
    struct engine_ocr_note *ocr; /* files with OCRed pages (src/engine_report.c); owned */
    size_t ocr_count;
    char *collection;        /* the collection ingested into; owned */
} engine_ingest_report;

/* One file whose text came partly from OCR, for the ingest report's "ocr" list. */
typedef struct engine_ocr_note {
    char *source;           /* owned */
    int *pages;             /* 1-based, ascending; owned */
    size_t page_count;
    double mean_confidence; /* Tesseract's, 0..100 */
} engine_ocr_note;

/* Appends the OCR facts of doc (nothing when it has no OCRed page) to r->ocr. Out of memory
 * loses the note, not the ingest. (src/engine_report.c) */
void engine_report_ocr_add(engine_ingest_report *r, const char *source, const ingest_doc *doc);
/* Frees r->ocr and zeroes it. */
void engine_report_ocr_free(engine_ingest_report *r);
/* Returns: new JSON text (free()) of r->ocr as an array, "[]" when empty; NULL on OOM. */
char *engine_report_ocr_json(const engine_ingest_report *r);

/* Progress callback: called after each file (done of total). May be NULL. */
typedef void (*engine_progress_fn)(void *ctx, size_t done, size_t total, const char *relative);

/* Ingests path (file or directory) incrementally. Documents are committed in batches of several
 * files ([ingest] commit_batch_bytes / commit_batch_ms; a single file at once), never part of
 * one, and progress counts a file only once committed: an interrupted ingest keeps the
 * documents reported so far. A directory ingest removes documents
 * under it whose files are gone (unless part of it could not be read); a single-file ingest
 * touches only that file. reset empties the store (documents and chunks; embeddings are kept for
 * re-use) once the path has been found, then ingests. Only one ingest runs at a time: a second
 * one fails at once with RAGD_ERR_BUSY. Per-file problems go into the report and the ingest
 * goes on. Returns: RAGD_OK and *report (free with engine_ingest_report_free), or an error for
 * the ingest as a whole (a missing path or a refused start leave the store as it was). */
ragd_rc engine_ingest(engine *e, const char *path, int reset, engine_progress_fn progress,
                      void *progress_ctx, engine_ingest_report *report, ragd_err *err);

/* Progress of a running ingest, for jobs and the CLI's progress bar. */
typedef struct engine_ingest_progress {
    size_t files_done, files_total;
    int64_t chunks_embedded, errors;
    const char *relative; /* the file just finished; borrowed for the call */
} engine_ingest_progress;

typedef void (*engine_progress2_fn)(void *ctx, const engine_ingest_progress *p);

typedef struct engine_ingest_opts {
    const char *path;                /* file or directory; borrowed */
    int reset;
    const char *const *include;      /* globs (ingest_glob_selected); NULL: [ingest] include */
    size_t include_count;
    const char *const *exclude;      /* NULL: [ingest] exclude */
    size_t exclude_count;
    engine_progress_fn progress;     /* may be NULL */
    engine_progress2_fn progress2;   /* may be NULL */
    void *progress_ctx;
    size_t max_file_bytes;           /* 0: [ingest] max_file_bytes of the engine's configuration
                                      * (the daemon passes its current snapshot's: it is live) */
    const char *collection;          /* borrowed; NULL: "default" (engine_collection_valid) */
    int path_canonical;              /* path was resolved and checked (allowed roots): the
                                      * ingest fails with RAGD_ERR_FORBIDDEN, reading nothing,
                                      * if it no longer resolves to itself (a symlink swapped in
                                      * on it since the check) */
    int no_lock_waiters;             /* no retrieval can wait for this ingest's commits (the
                                      * CLI ingest: its process serves none): batches are bounded
                                      * by [ingest] commit_batch_bytes alone, not by
                                      * commit_batch_ms's lock-time estimate (commit_batch_ms 0
                                      * still commits each file on its own) */
} engine_ingest_opts;

/* engine_ingest with options: include/exclude globs (documents whose relative path the globs do
 * not select are neither read nor removed) and a richer progress callback, called once with
 * files_done 0 after the crawl and then after each file.
 * Returns: as engine_ingest. */
ragd_rc engine_ingest_run(engine *e, const engine_ingest_opts *opts,
                          engine_ingest_report *report, ragd_err *err);

/* Asks a running ingest (and every later one) to stop after the document it is on: for shutdown.
 * The interrupted ingest fails with RAGD_ERR_UNAVAILABLE; documents committed so far stay. */
void engine_ingest_cancel(engine *e);

/* Frees the report's strings and zeroes it. r may be NULL. */
void engine_ingest_report_free(engine_ingest_report *r);

/* Returns: the report as a new JSON string (free with free()), or NULL on OOM. */
char *engine_ingest_report_json(const engine_ingest_report *r);

/* ---- retrieve ----------------------------------------------------------------------------- */
typedef struct engine_query {
    const char *query; /* borrowed; UTF-8, non-empty */
    size_t query_len;
    int k;            /* 1..max_k */
    double min_score; /* results with lower scores, and any scoring <= 0, are dropped */
    const char *source_prefix;   /* borrowed; NULL = no filter; a prefix of the document's source */
    const char *const *tags_all; /* borrowed; every tag must be present; may be NULL */
    size_t tag_count;
    const struct retrieve_filter *filter; /* borrowed; OpenAI-style filter (ragd/filter.h); NULL =
                                           * none; applies together with the two above */
    /* ranking and context (issue 7); 0 / NULL take the configured value */
    int mode;               /* retrieve_mode; RAGD_MODE_DEFAULT: [retrieve] mode */
    int fusion;             /* retrieve_fusion; RAGD_FUSION_DEFAULT: [retrieve] fusion */
    int diversity;          /* RAGD_DIVERSITY_*; DEFAULT: [retrieve] diversity */
    int max_context_tokens; /* 0: the intent's, else [retrieve] max_context_tokens */
    int k_given;            /* 1 when k came from the request (an intent's k does not override) */
    const char *intent;     /* borrowed; NULL = none (retrieves); else per [intent] retrieve */
    int rerank;             /* RAGD_RERANK_*; DEFAULT: rerank when [rerank] provider is set */
    const char *collection; /* borrowed; NULL: "default"; only its documents are searched */
    int ef_search;          /* HNSW efSearch for this query; 0: [store] hnsw_ef_search */
    const ragd_cfg *cfg;    /* borrowed: the settings snapshot the query runs under (the HTTP
                             * request's, see cfg_snapshot.h); NULL: the engine's own */
} engine_query;

typedef struct engine_result {
    double score;  /* in the answer's mode: see docs/RETRIEVAL.md "Scores" */
    store_hit hit; /* owned */
    double vector_score, keyword_score; /* cosine, BM25; valid when the rank is > 0 */
    int vector_rank, keyword_rank;      /* 1-based rank on each side; 0 = not found there */
    int reranked;        /* 1 when rerank_score is the reranker's score of this result */
    double rerank_score;
} engine_result;

typedef struct engine_answer {
    engine_result *results; /* best first; owned */
    size_t count;
    int rag_enabled;
    double embed_ms, search_ms, fetch_ms, total_ms;
    size_t candidates; /* index hits examined before filters */
    /* issue 7 */
    int retrieved;      /* 0: RAG off, or the intent does not retrieve */
    int mode, fusion, diversity, max_context_tokens; /* what was used (diversity 0/1) */
    int low_confidence; /* see docs/RETRIEVAL.md "Confidence" */
    double coverage;    /* lexical coverage of the query by the top results, -1 = no terms */
    double unknown_share; /* IDF-weighted share of the query's terms found nowhere in the store,
                           * -1 = not judged (no terms, no keyword index) */
    char *clarify;      /* owned; the clarifying question when low_confidence, else NULL */
    retrieve_context context; /* owned; the budgeted context block and its sources */
    double cache_ms;         /* query-embedding cache lookups and stores */
    const char *cache_layer; /* "memory", "redis" or "miss" (static); NULL when not embedded */
    rerank_run rerank;       /* the reranking stage: requested, applied or why not */
    /* Where a retrieval's time goes (issue 16), wall milliseconds: the vector and keyword
     * searches apart (search_ms is their sum), fusion (candidates, scores, MMR), the
     * confidence estimate (term statistics), the context block. fetch_ms is the chunk reads. */
    double vector_ms, keyword_ms, fuse_ms, confidence_ms, context_ms;
    int sides_parallel; /* 1: the keyword side ran on a helper thread ([retrieve]
                         * parallel_sides, src/engine_sides.c) beside the vector side */
} engine_answer;

/* Answers a query: resolves the intent, mode and budget; searches the vector index and the
 * keyword index (each widened until enough candidates pass the filters or it is exhausted),
 * fuses, optionally diversifies, keeps k; estimates confidence; builds the context. With RAG
 * disabled or an intent that does not retrieve: RAGD_OK, no results, low_confidence 1.
 * Returns: *out filled (free with engine_answer_free). */
ragd_rc engine_retrieve(engine *e, const engine_query *q, engine_answer *out, ragd_err *err);

/* Returns: 1 when an unfiltered retrieval on e waits on nothing outside the process and its work
 * is bounded: the local embedder, no Redis behind the query cache, no reranker, no ingest
 * running (its commits hold the write lock), a vector search that is quick
 * (store_vector_search_quick) and a default collection alone in the store (else its searches
 * widen past the other collections' hits). The request's own shape (filters, length)
 * is the caller's to judge. src/http_server.c runs such retrievals on its event loop when
 * nothing else is in flight. */
int engine_retrieve_quick(engine *e);

/* Frees the answer's results and zeroes it. a may be NULL. */
void engine_answer_free(engine_answer *a);

/* Returns: a copy of the answer's context block ("[1] source > heading\ntext\n\n[2] ...", within
 * the token budget), new string (free()), or NULL on OOM. */
char *engine_context_format(const engine_answer *a);

/* ---- pushed documents (src/engine_docs.c) -------------------------------------------------
 * Documents given as JSON rather than read from disk (content that lives in a database). Each is
 * stored under the path "push:<id>", so directory ingests and their removals never touch it. */
typedef struct engine_push_doc {
    const char *id;        /* required; 1..256 bytes of UTF-8 */
    const char *title;     /* may be NULL: the first markdown H1, else the id */
    const char *text;      /* the content; borrowed */
    size_t text_len;
    int markdown;          /* 1: text is markdown (cut at headings) */
    const char *source;    /* shown as the source (a URL); NULL: "push:<id>" */
    const char *tags_json;     /* JSON array of strings; NULL: [] */
    const char *metadata_json; /* JSON object; NULL: {} */
    const char *collection;    /* NULL: "default" */
} engine_push_doc;

typedef enum engine_push_outcome {
    RAGD_PUSH_ADDED,
    RAGD_PUSH_UPDATED,
    RAGD_PUSH_UNCHANGED /* same content as stored: nothing re-embedded */
} engine_push_outcome;

/* Upserts one pushed document: chunks, embeds (only chunks whose text is new), commits.
 * Runs beside an ingest (they take turns per document). *chunks: the document's chunk count.
 * Returns: RAGD_OK and *outcome; RAGD_ERR_INVALID for bad fields. */
ragd_rc engine_doc_push(engine *e, const engine_push_doc *d, engine_push_outcome *outcome,
                        int64_t *chunks, ragd_err *err);

/* Deletes the pushed document id. Returns: RAGD_OK, or RAGD_ERR_NOT_FOUND. *chunks may be NULL. */
ragd_rc engine_doc_delete(engine *e, const char *id, int64_t *chunks, ragd_err *err);

/* engine_doc_delete in a collection (NULL: "default"). */
ragd_rc engine_doc_delete_in(engine *e, const char *collection, const char *id, int64_t *chunks,
                             ragd_err *err);

/* Returns: 1 if id can name a pushed document: 1..256 bytes of valid UTF-8 without control
 * characters; 0 otherwise. */
int engine_doc_id_valid(const char *id);

/* Returns: the store, for read-only listings from any thread (borrowed until engine_close). */
store *engine_store_get(engine *e);

/* ---- collections ---------------------------------------------------------------------------
 * Every document lives in one collection ("default" unless a request names another); a
 * retrieval sees only its collection. Embeddings are shared: the same text in two collections is
 * embedded once. */

/* Returns: 1 if name can name a collection: 1..64 bytes of ASCII letters, digits, '_', '-' and
 * '.', not starting with '.'; 0 otherwise. */
int engine_collection_valid(const char *name);

/* Lists the collections holding documents with their counts (any thread).
 * Returns: *out new (free with store_collections_free), *n. */
ragd_rc engine_collections_list(engine *e, store_collection **out, size_t *n, ragd_err *err);

/* Deletes a collection's documents, chunks and vectors (embeddings stay for re-use). Refused
 * with RAGD_ERR_BUSY while an ingest runs. Returns: RAGD_OK and the counts deleted (may be NULL;
 * 0 and 0 for a collection that holds nothing). */
ragd_rc engine_collection_delete(engine *e, const char *name, int64_t *documents,
                                 int64_t *chunks, ragd_err *err);

/* ---- status ------------------------------------------------------------------------------- */
typedef struct engine_stats {
    int64_t documents, chunks, embeddings;
    size_t index_vectors, index_bytes;
    int index_consistent; /* index holds exactly the chunks SQLite has */
    const char *embed_provider, *embed_model; /* borrowed from the engine */
    int embed_dims;
    int ingest_running;
    int64_t last_ingest_at; /* unix seconds, 0 when none in this process */
    int last_ingest_ok;
    embed_counters embed; /* the embedder's counters since start */
    cache_stats cache;    /* the query-embedding cache's counters and Redis state */
    int write_fault;          /* a write to the data dir failed: writes are refused, retrievals
                               * served from memory, until a probe succeeds (engine_fault.c) */
    char write_error[384];    /* "what: why" of that failure, "" when none */
    int64_t write_fault_since; /* unix seconds, 0 when none */
    rerank_stats rerank;  /* the reranker's counters (provider "none" when there is none) */
} engine_stats;

ragd_rc engine_stats_get(engine *e, engine_stats *out, ragd_err *err);

#endif
