/* SPDX-License-Identifier: MIT */
/*
 * store.h - the store interface: everything ragd keeps (documents, chunks, embeddings keyed by
 * content hash, the vector index and the keyword index) behind one function table, store_ops,
 * like embed_ops for embedding providers. The engine (src/engine*.c) talks to this interface
 * only; fusion, filters, confidence and context stay above it, one code path for every backend.
 *
 * Backends (the table in src/store.c is the one place they are named):
 *   - faiss    (src/store_faiss.c): SQLite metadata + FTS5 (src/store_db.c) and a FAISS index
 *              (src/store_index.c) under data_dir; declarations in ragd/store_faiss.h.
 *
 * Transactions. A write transaction (begin ... commit) is one unit for readers: a backend makes
 * the documents, chunks and vectors it changed visible together at commit. The engine serialises
 * writers; retrievals may run from any thread at any time.
 *
 * Ownership follows the house rules: functions filling store_doc / store_hit give new strings
 * (free with store_doc_free / store_hit_free).
 */
#ifndef RAGD_STORE_H
#define RAGD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "ragd/ragd.h"

struct ragd_cfg;
struct retrieve_terms;

/* The collection of documents given none (requests, CLI, documents from before collections). */
#define RAGD_COLLECTION_DEFAULT "default"

typedef struct store_doc {
    int64_t id;          /* 0 when not yet stored */
    char *path;          /* unique key: absolute path, or "push:<id>" for pushed documents */
    char *source;        /* shown to users: path relative to the ingested root, or a URL */
    char *title;
    char *checksum;      /* SHA-256 hex of the raw file bytes */
    int64_t size;
    int64_t mtime;
    char *tags_json;     /* JSON array of strings */
    char *metadata_json; /* JSON object */
    char *collection;    /* the document's collection; NULL in store_doc_put: "default" */
} store_doc;

/* Frees the strings of doc and zeroes it. doc may be NULL. */
void store_doc_free(store_doc *doc);

/* Frees n rows (from store_doc_page) and the array. docs may be NULL. */
void store_doc_rows_free(store_doc *docs, size_t n);

typedef struct store_chunk_in {
    int ordinal;
    const char *text; /* borrowed */
    size_t text_len;
    const char *heading; /* borrowed */
    int64_t tokens;
    int64_t char_start;
    int64_t char_end;
    const char *checksum; /* borrowed; SHA-256 hex of the embedded text: the embeddings key */
    int page;             /* 1-based page (PDF), 0 when the format has no pages */
} store_chunk_in;

/* Called for each chunk with its vector (borrowed for the call). Returns 0 to go on, non-zero to
 * stop (the iterating call then fails with RAGD_ERR_INTERNAL). */
typedef int (*store_vector_fn)(void *ctx, int64_t chunk_id, const float *vec, int dims);

typedef struct store_hit {
    int64_t chunk_id;
    int64_t document_id;
    int ordinal;
    char *text;
    char *heading;
    int64_t tokens;
    int64_t char_start;
    int64_t char_end;
    char *source;
    char *title;
    char *path;
    char *tags_json;
    char *metadata_json;
    int page; /* 1-based page (PDF), 0 when none */
    char *collection; /* the document's collection */
    char *checksum;   /* SHA-256 hex of the embedded text: the embeddings key */
} store_hit;

/* Frees the strings of one hit and zeroes it. h may be NULL. */
void store_hit_free(store_hit *h);

/* One collection and its counts (store_collections_list). */
typedef struct store_collection {
    char *name;
    int64_t documents, chunks;
} store_collection;

/* Frees n rows and the array. list may be NULL. */
void store_collections_free(store_collection *list, size_t n);

typedef struct store_stats {
    int64_t documents, chunks, embeddings;
    size_t vectors;      /* vectors the vector search can return */
    size_t vector_bytes; /* memory those vectors take in this process; 0 when held elsewhere */
} store_stats;

typedef struct store store;

/* The backend contract. Every function gets the store it was opened as. Unless said otherwise a
 * function may run from any thread at any time; "writer" functions run one at a time (the engine
 * serialises them) and, where they change data, inside begin ... commit. */
typedef struct store_ops {
    const char *name; /* "faiss", ... : [store] vector_backend */
    /* Opens the store the configuration names (cfg borrowed until close). readonly: no writes,
     * no schema changes. Returns: RAGD_OK and *out (new, free with close). */
    ragd_rc (*open)(const struct ragd_cfg *cfg, int readonly, store **out, ragd_err *err);
    /* Saves what must survive (the faiss index), closes. */
    void (*close)(store *s);
    /* Checks the recorded embedding model and dims; an empty store records them. A store with
     * chunks and another model fails with RAGD_ERR_MODEL_MISMATCH naming both. */
    ragd_rc (*model_check)(store *s, const char *model, int dims, ragd_err *err);
    /* Makes the vectors of model/dims searchable (faiss: loads its index or rebuilds it).
     * empty: the store is about to be reset (another model); start with no vectors. */
    ragd_rc (*vectors_open)(store *s, const char *model, int dims, int empty, ragd_err *err);

    /* writer: transactions */
    ragd_rc (*begin)(store *s, ragd_err *err);
    ragd_rc (*commit)(store *s, ragd_err *err);
    void (*rollback)(store *s); /* no-op when no transaction is open */
    /* writer: makes every commit durable against power loss. */
    ragd_rc (*sync)(store *s, ragd_err *err);
    /* writer: sync, and save derived state (the faiss index file); at the end of an ingest.
     * Fails when either fails (a full disk). */
    ragd_rc (*flush)(store *s, ragd_err *err);
    /* writer: gives back disk space the backend holds beyond its data (faiss: checkpoints and
     * truncates SQLite's WAL); after a failed write and when writes work again. May be NULL. */
    ragd_rc (*reclaim)(store *s, ragd_err *err);

    /* writer: documents and chunks */
    ragd_rc (*doc_find)(store *s, const char *collection, const char *path, store_doc *out,
                        int *found, ragd_err *err);
    ragd_rc (*doc_put)(store *s, const store_doc *doc, int64_t *id, ragd_err *err);
    ragd_rc (*doc_chunk_count)(store *s, int64_t doc_id, size_t *n, ragd_err *err);
    ragd_rc (*doc_chunks_delete)(store *s, int64_t doc_id, size_t *removed, ragd_err *err);
    ragd_rc (*doc_delete)(store *s, int64_t doc_id, size_t *removed, ragd_err *err);
    ragd_rc (*doc_list_prefix)(store *s, const char *collection, const char *prefix,
                               int64_t **ids, char ***paths, size_t *n, ragd_err *err);
    ragd_rc (*chunk_put)(store *s, int64_t doc_id, const store_chunk_in *c, const float *vec,
                         int dims, int64_t *id, ragd_err *err);
    ragd_rc (*reset)(store *s, const char *model, int dims, ragd_err *err);
    ragd_rc (*collection_delete)(store *s, const char *collection, int64_t *documents,
                                 int64_t *chunks, ragd_err *err);

    /* writer: embeddings by content hash */
    ragd_rc (*embedding_get)(store *s, const char *checksum, const char *model, int dims,
                             float *out, int *found, ragd_err *err);
    ragd_rc (*embedding_put)(store *s, const char *checksum, const char *model, int dims,
                             const float *vec, ragd_err *err);
    ragd_rc (*embeddings_prune)(store *s, const char *model, int dims, int64_t *removed,
                                ragd_err *err);
    ragd_rc (*vectors_each)(store *s, const char *model, int dims, store_vector_fn fn, void *ctx,
                            size_t *missing, ragd_err *err);

    /* readers */
    ragd_rc (*chunks_get)(store *s, const int64_t *ids, size_t n, store_hit *out, ragd_err *err);
    size_t (*vector_count)(store *s);
    ragd_rc (*vector_search)(store *s, const char *collection, const float *query, size_t k,
                             int64_t *ids, float *scores, size_t *found, ragd_err *err);
    int (*keyword_available)(store *s);
    ragd_rc (*keyword_search)(store *s, const char *collection, const struct retrieve_terms *terms,
                              size_t limit, int64_t *ids, double *scores, size_t *found,
                              ragd_err *err);
    int (*collection_exclusive)(store *s, const char *collection);
    ragd_rc (*collections_list)(store *s, store_collection **out, size_t *n, ragd_err *err);
    ragd_rc (*keyword_terms)(store *s, const struct retrieve_terms *terms, const int64_t *top_ids,
                             size_t top_n, int64_t *df, uint32_t *top_mask, int64_t *total,
                             ragd_err *err);
    ragd_rc (*stats)(store *s, store_stats *out, ragd_err *err);
    ragd_rc (*doc_page)(store *s, const char *collection, const char *prefix, int64_t offset,
                        int64_t limit,
                        store_doc **docs, int64_t **chunk_counts, size_t *n, int64_t *total,
                        ragd_err *err);
    ragd_rc (*doc_chunks_read)(store *s, int64_t doc_id, store_hit **hits, size_t *n,
                               ragd_err *err);

    /* writer: the cross-process ingest lock of a collection */
    ragd_rc (*ingest_lock)(store *s, const char *collection, ragd_err *err);
    void (*ingest_unlock)(store *s, const char *collection);
    /* Optional: vector_search with this search's own graph breadth (a request's `ef_search`,
     * > 0); NULL: the backend has no such knob and vector_search runs instead. */
    ragd_rc (*vector_search_ef)(store *s, const char *collection, const float *query, size_t k,
                                int ef_search, int64_t *ids, float *scores, size_t *found,
                                ragd_err *err);
    /* Optional: the chunks' token counts only (store_chunk_tokens); NULL: read through
     * chunks_get. */
    ragd_rc (*chunk_tokens)(store *s, const int64_t *ids, size_t n, int64_t *tokens,
                            ragd_err *err);
    /* Optional: a read scope on the writer (store_read_begin / store_read_end); NULL: each
     * lookup stands alone. */
    ragd_rc (*read_begin)(store *s, int *owned, ragd_err *err);
    void (*read_end)(store *s, int owned);
    /* Optional: 1 when a vector search runs in this process and its work is bounded whatever the
     * store holds (store_vector_search_quick); NULL: 0. */
    int (*vector_search_quick)(store *s);
    /* Optional: the calling thread's reads share one reader and one read transaction until
     * reader_release (store_reader_hold); NULL: each read stands alone. */
    int (*reader_hold)(store *s);
    void (*reader_release)(store *s);
} store_ops;

/* Every backend's store begins with this header. */
struct store {
    const store_ops *ops;
};

/* The backends' names, NULL-terminated, in the order of the table in src/store.c: the choices of
 * [store] vector_backend. */
extern const char *const store_backend_names[];

/* Returns: the backend named name ([store] vector_backend), or NULL when none is built in. */
const store_ops *store_backend_find(const char *name);

/* Opens the backend cfg->vector_backend names. Returns: RAGD_OK and *out (new, store_close). */
ragd_rc store_open(const struct ragd_cfg *cfg, int readonly, store **out, ragd_err *err);

/* Closes s (saving what the backend keeps). s may be NULL. */
void store_close(store *s);

/* ---- the calls, one per store_ops entry (see there) -------------------------------------- */
ragd_rc store_model_check(store *s, const char *model, int dims, ragd_err *err);
ragd_rc store_vectors_open(store *s, const char *model, int dims, int empty, ragd_err *err);
ragd_rc store_begin(store *s, ragd_err *err);
/* Commits; the documents, chunks and vectors changed since begin become visible together. */
ragd_rc store_commit(store *s, ragd_err *err);
void store_rollback(store *s);
ragd_rc store_sync(store *s, ragd_err *err);
ragd_rc store_flush(store *s, ragd_err *err);
/* RAGD_OK when the backend has no reclaim. */
ragd_rc store_reclaim(store *s, ragd_err *err);

/* Finds a document by path. Returns: RAGD_OK with *found 1 and *out filled (strings new, free with
 * store_doc_free), or RAGD_OK with *found 0. */
ragd_rc store_doc_find(store *s, const char *collection, const char *path, store_doc *out,
                       int *found, ragd_err *err);
/* Inserts or updates (by path) the document row; sets *id. Does not touch chunks. */
ragd_rc store_doc_put(store *s, const store_doc *doc, int64_t *id, ragd_err *err);
/* Returns: *n, the number of chunks of a document. */
ragd_rc store_doc_chunk_count(store *s, int64_t doc_id, size_t *n, ragd_err *err);
/* Deletes the chunks (and their vectors) of a document, not the document; *removed may be NULL. */
ragd_rc store_doc_chunks_delete(store *s, int64_t doc_id, size_t *removed, ragd_err *err);
/* Deletes a document, its chunks and their vectors; *removed (chunks) may be NULL. */
ragd_rc store_doc_delete(store *s, int64_t doc_id, size_t *removed, ragd_err *err);
/* Lists (id, path) of the collection's documents whose path starts with prefix.
 * Returns: *ids and *paths new (free each path, then both arrays with free()), *n. */
ragd_rc store_doc_list_prefix(store *s, const char *collection, const char *prefix, int64_t **ids,
                              char ***paths, size_t *n, ragd_err *err);
/* Inserts one chunk of doc_id with its vector (dims floats, L2-normalised; NULL: not
 * searchable by vector). Returns: *id, the new chunk id. */
ragd_rc store_chunk_put(store *s, int64_t doc_id, const store_chunk_in *c, const float *vec,
                        int dims, int64_t *id, ragd_err *err);
/* Deletes every document and chunk and records model/dims (for --reset); embeddings stay. */
ragd_rc store_reset(store *s, const char *model, int dims, ragd_err *err);
/* Deletes every document of a collection with its chunks and vectors, in one transaction of its
 * own; embeddings stay. *documents and *chunks (may be NULL): what was deleted. */
ragd_rc store_collection_delete(store *s, const char *collection, int64_t *documents,
                                int64_t *chunks, ragd_err *err);

/* *found of store_embedding_get for a row kept without vector bytes (a recomputable model, see
 * embed_recompute_for) when no chunk holds its text any more (after a reset): the embedding is
 * known, out is NOT filled; the caller recomputes it from the text it has
 * (embed_chunk_recompute). */
#define RAGD_EMBEDDING_UNSTORED 2

/* Looks up a stored embedding. Returns: RAGD_OK with *found 0 or 1 (out holds dims floats; a row
 * without vector bytes is recomputed from a chunk's text) or RAGD_EMBEDDING_UNSTORED. out may be
 * NULL: then only whether the embedding is known is reported (*found 0, or nonzero: 1 or
 * RAGD_EMBEDDING_UNSTORED), nothing is decoded or recomputed (the ingest of a recomputable
 * model, which computes the vector from the text it holds). */
ragd_rc store_embedding_get(store *s, const char *checksum, const char *model, int dims,
                            float *out, int *found, ragd_err *err);
/* Stores an embedding (kept when one exists). Durable at once when no transaction is open. */
ragd_rc store_embedding_put(store *s, const char *checksum, const char *model, int dims,
                            const float *vec, ragd_err *err);
/* Deletes embeddings of another model or dims, and those no chunk uses. *removed may be NULL. */
ragd_rc store_embeddings_prune(store *s, const char *model, int dims, int64_t *removed,
                               ragd_err *err);
/* Calls fn for every chunk with its stored embedding for model/dims, in chunk id order. Chunks
 * without one are counted in *missing (may be NULL). */
ragd_rc store_vectors_each(store *s, const char *model, int dims, store_vector_fn fn, void *ctx,
                           size_t *missing, ragd_err *err);

/* Fetches chunks by id. out[i] matches ids[i]; an id not found leaves out[i].chunk_id == 0.
 * Strings in out are new: free with store_hit_free. */
ragd_rc store_chunks_get(store *s, const int64_t *ids, size_t n, store_hit *out, ragd_err *err);
/* The token counts (store_hit.tokens) of chunks by id, without reading their text: tokens[i]
 * for ids[i], 0 for an id not found. */
ragd_rc store_chunk_tokens(store *s, const int64_t *ids, size_t n, int64_t *tokens,
                           ragd_err *err);
/* Returns: 1 when the backend reads token counts alone (store_chunk_tokens costs less than
 * store_chunks_get), else 0. */
int store_chunk_tokens_cheap(store *s);
/* A read scope on the writer: the lookups (store_embedding_get) made until store_read_end see
 * one snapshot and take the backend's read locks once, not once per lookup (an ingest looks up
 * every chunk's embedding). Writer only, caller serialises writers as for begin. *owned says
 * whether store_read_end has a scope to close: 0 inside an open write transaction (the lookups
 * are in it already) or for a backend without scopes. */
ragd_rc store_read_begin(store *s, int *owned, ragd_err *err);
void store_read_end(store *s, int owned);
/* A read scope on a reader, for the several reads of one retrieval (chunks, token counts, term
 * statistics) made by the calling thread: they share one reader connection and one snapshot,
 * and take the backend's read locks once (each read on its own: a transaction and two file-lock
 * calls apiece). Other threads' reads are not in it. Returns: 1 when a scope was opened (close
 * it with store_reader_release on the same thread), 0 when not (a backend without scopes, one
 * already open on this thread, or no reader to be had: the reads then stand alone, as
 * before). */
int store_reader_hold(store *s);
void store_reader_release(store *s, int held);
/* Asks (on != 0) that the FAISS index's storage blocks grown for new vectors (flat vectors, HNSW
 * links) be advised transparent huge pages from now on, process-wide: fewer page faults while
 * they fill (a batch ingest's CPU x0.88), at the cost of up to one partly filled 2 MiB page of
 * RSS per block. For batch processes (`ragd ingest`); the daemon leaves it off (its RSS budget).
 * Thread-safe. */
void store_grow_huge_pages(int on);
/* Sets the KiB of page cache a SQLite store's writer connection may fill, for stores opened from
 * now on, process-wide (kib <= 0: the default, 8 MiB). The daemon keeps the default (its peak
 * RSS while it ingests has a budget); batch processes (`ragd ingest`) ask for
 * RAGD_STORE_WRITER_CACHE_BATCH_KIB: into a 100k-chunk store the writer then re-reads fewer
 * pages (bench/NOTES.md, session 6 part G). Thread-safe. */
void store_writer_cache_set(int kib);
#define RAGD_STORE_WRITER_CACHE_BATCH_KIB 16384
/* Returns: the number of vectors a search can return (an upper bound for widening). */
size_t store_vector_count(store *s);
/* Returns: 1 when an unfiltered vector search waits on nothing outside the process and visits a
 * bounded part of the vectors (a graph index, or a flat one of at most
 * RAGD_STORE_QUICK_FLAT_FLOATS floats: about a millisecond's scan), else 0 (a network backend,
 * a large flat index). */
int store_vector_search_quick(store *s);
#define RAGD_STORE_QUICK_FLAT_FLOATS (4u << 20)
/* Top-k by cosine. ids/scores hold k entries; *found is the number filled, best first. A
 * backend may restrict the search to collection (NULL: all); one that cannot returns chunks of
 * every collection, and the caller keeps those of its own (store_hit.collection): see
 * store_collection_exclusive. */
ragd_rc store_vector_search(store *s, const char *collection, const float *query, size_t k,
                            int64_t *ids, float *scores, size_t *found, ragd_err *err);
/* Returns: 1 when vector and keyword searches for collection return only its chunks (the backend
 * restricts them, or the store holds no other collection), so the caller needs no widening for
 * it; 0 otherwise. */
int store_collection_exclusive(store *s, const char *collection);
/* Lists the collections that hold documents, by name, with their counts.
 * Returns: *out new (free with store_collections_free), *n. */
ragd_rc store_collections_list(store *s, store_collection **out, size_t *n, ragd_err *err);
/* store_vector_search with a per-search HNSW breadth: ef_search > 0 applies to this search only
 * (backends without vector_search_ef, and exact indexes, ignore it); <= 0 is the configured one. */
ragd_rc store_vector_search_ef(store *s, const char *collection, const float *query, size_t k,
                               int ef_search, int64_t *ids, float *scores, size_t *found,
                               ragd_err *err);
/* Returns: 1 when keyword search is available (a read-only open of an old faiss store has none). */
int store_keyword_available(store *s);
/* BM25-style keyword search (restricted to collection like store_vector_search) for any of the terms: *found entries of ids/scores (limit at most),
 * best first, scores > 0, higher is better. Without a keyword index: RAGD_OK, *found 0. */
ragd_rc store_keyword_search(store *s, const char *collection, const struct retrieve_terms *terms,
                             size_t limit, int64_t *ids, double *scores, size_t *found,
                             ragd_err *err);
/* For the confidence estimate, from one snapshot: for each term the number of chunks containing
 * it (df[i]) and which of top_ids (at most 32) contain it (bit j of top_mask[i]); *total is the
 * number of chunks. Without a keyword index everything is 0. */
ragd_rc store_keyword_terms(store *s, const struct retrieve_terms *terms, const int64_t *top_ids,
                            size_t top_n, int64_t *df, uint32_t *top_mask, int64_t *total,
                            ragd_err *err);
ragd_rc store_stats_get(store *s, store_stats *out, ragd_err *err);
/* Lists the collection's documents whose path starts with prefix, ordered by path, limit rows
 * from offset, with each one's chunk count and the total matching. Returns: *docs and
 * *chunk_counts new (free with store_doc_rows_free and free()), *n rows, *total. */
ragd_rc store_doc_page(store *s, const char *collection, const char *prefix, int64_t offset,
                       int64_t limit, store_doc **docs, int64_t **chunk_counts, size_t *n,
                       int64_t *total, ragd_err *err);
/* Reads every chunk of a document in order.
 * Returns: *hits new (free each with store_hit_free, then the array with free()), *n. */
ragd_rc store_doc_chunks_read(store *s, int64_t doc_id, store_hit **hits, size_t *n,
                              ragd_err *err);

/* Takes the ingest lock of a collection for this process, across every process sharing the
 * store (faiss: the data-dir lock already excludes other processes, so nothing more; pgvector: a
 * lease row renewed by a heartbeat, freed when a killed holder stops renewing it).
 * Returns: RAGD_OK, or RAGD_ERR_BUSY with a message naming the holder. */
ragd_rc store_ingest_lock(store *s, const char *collection, ragd_err *err);
/* Releases the lock store_ingest_lock took. */
void store_ingest_unlock(store *s, const char *collection);

/* The backends' tables (src/store_*.c). */
extern const store_ops store_faiss_ops;
extern const store_ops store_pg_ops;

/* Backend declarations, for the backends themselves and their unit tests. The engine defines
 * RAGD_STORE_INTERFACE_ONLY so that no backend detail can creep back into it. */
#ifndef RAGD_STORE_INTERFACE_ONLY
#include "ragd/store_faiss.h"
#endif

#endif
