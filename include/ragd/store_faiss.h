/* SPDX-License-Identifier: MIT */
/*
 * store_faiss.h - the two halves of the faiss backend (src/store_faiss.c joins them behind the
 * store interface of ragd/store.h):
 *   - the SQLite metadata store (src/store_db.c), the source of truth: documents, chunks,
 *     embeddings, and a meta table (schema version, embedding model and dims, generation);
 *   - the vector index (src/store_index.c), FAISS IndexIDMap2 over IndexFlatIP (or, configured by
 *     a factory string, IndexHNSWFlat) on L2-normalised vectors, keyed by chunk id, saved
 *     atomically and rebuilt from SQLite when it is missing, corrupt or out of step (its saved
 *     generation differs from SQLite's).
 *
 * Threads: a store_db has one writer connection (callers serialise writes) and a pool of reader
 * connections, so store_db_chunks_get and store_db_stats may run from any thread at any time.
 * A store_index is not locked internally: src/store_faiss.c holds a read lock around searches and
 * a write lock around add/remove.
 *
 * Only the faiss backend and its unit tests use these declarations; the engine sees the store
 * interface alone (it includes ragd/store.h with RAGD_STORE_INTERFACE_ONLY defined).
 */
#ifndef RAGD_STORE_FAISS_H
#define RAGD_STORE_FAISS_H

#include <stddef.h>
#include <stdint.h>

#include "ragd/ragd.h"
#include "ragd/store.h"

/* ===== SQLite metadata store ================================================================ */

typedef struct store_db store_db;

/* Opens (creating when missing, unless readonly) data_dir/ragd.sqlite3 in WAL mode and applies the
 * schema. Returns: RAGD_OK and *out (new, free with store_db_close). */
ragd_rc store_db_open(const char *data_dir, int readonly, store_db **out, ragd_err *err);

/* Closes all connections. s may be NULL. */
void store_db_close(store_db *s);

/* Checks the store's recorded embedding model and dims against the configured ones. An empty store
 * (no chunks) records them; a store with chunks and a different model or dims fails with
 * RAGD_ERR_MODEL_MISMATCH and a message naming both and how to re-index. */
ragd_rc store_db_model_check(store_db *s, const char *model, int dims, ragd_err *err);

/* Transactions on the writer connection. begin is BEGIN IMMEDIATE; commit first adds the
 * keyword index rows of the chunks the transaction inserted. */
ragd_rc store_db_begin(store_db *s, ragd_err *err);
ragd_rc store_db_commit(store_db *s, ragd_err *err);
void store_db_rollback(store_db *s); /* no-op when no transaction is open */
/* A read transaction on the writer connection (deferred BEGIN), for store_read_begin: *owned 1
 * when this call opened it (close it with store_db_read_end), 0 when the caller's transaction
 * was already open (store_db_read_end(s, 0) does nothing). */
ragd_rc store_db_read_begin(store_db *s, int *owned, ragd_err *err);
void store_db_read_end(store_db *s, int owned);
/* store_reader_hold for s: the calling thread's reads of s use one reader in one read
 * transaction until store_db_reader_release. Returns: 1 when held (release it on this thread),
 * 0 when not (one held already on this thread, or no reader: reads stand alone). */
int store_db_reader_hold(store_db *s);
void store_db_reader_release(store_db *s);

/* Makes every commit so far durable against power loss (commits are always durable against a
 * crash of the process). Called at the end of each ingest. */
ragd_rc store_db_sync(store_db *s, ragd_err *err);

/* Checkpoints the WAL into the database and truncates the WAL file to zero bytes
 * (wal_checkpoint(TRUNCATE)), giving its space back to the file system. Caller holds the write
 * turn. Returns: RAGD_OK, or RAGD_ERR_STORE when the checkpoint could not complete (readers in
 * the way, or no space to grow the database file). */
ragd_rc store_db_wal_truncate(store_db *s, ragd_err *err);

/* Returns: the store's generation, bumped by store_db_generation_bump() in every transaction that
 * changes chunks; the vector index saves the generation it matches. */
ragd_rc store_db_generation_get(store_db *s, uint64_t *out, ragd_err *err);
ragd_rc store_db_generation_bump(store_db *s, uint64_t *out_new, ragd_err *err);


/* Finds a document by path. Returns: RAGD_OK with *found 1 and *out filled (strings new, free with
 * store_doc_free), or RAGD_OK with *found 0. */
ragd_rc store_db_doc_find(store_db *s, const char *path, store_doc *out, int *found, ragd_err *err);

/* store_db_doc_find in a collection (NULL: "default"); store_db_doc_find looks in "default". */
ragd_rc store_db_doc_find_in(store_db *s, const char *collection, const char *path,
                             store_doc *out, int *found, ragd_err *err);

/* Inserts or updates (by collection and path; doc->collection NULL: "default") the document row;
 * sets *id. Does not touch chunks. */
ragd_rc store_db_doc_put(store_db *s, const store_doc *doc, int64_t *id, ragd_err *err);

/* Lists the chunk ids of a document. Returns: *ids new (free()), *n. */
ragd_rc store_db_doc_chunk_ids(store_db *s, int64_t doc_id, int64_t **ids, size_t *n,
                               ragd_err *err);

/* Deletes the chunks of a document (not the document). */
ragd_rc store_db_doc_chunks_delete(store_db *s, int64_t doc_id, ragd_err *err);

/* Deletes a document and its chunks. */
ragd_rc store_db_doc_delete(store_db *s, int64_t doc_id, ragd_err *err);

/* Lists (id, path) of documents whose path starts with prefix (pass "dir/" to scope a directory).
 * Returns: *ids and *paths new (free each path, then both arrays with free()), *n. */
ragd_rc store_db_doc_list_prefix(store_db *s, const char *prefix, int64_t **ids, char ***paths,
                                 size_t *n, ragd_err *err);
/* store_db_doc_list_prefix in a collection (NULL: "default"). */
ragd_rc store_db_doc_list_prefix_in(store_db *s, const char *collection, const char *prefix,
                                    int64_t **ids, char ***paths, size_t *n, ragd_err *err);


/* Inserts one chunk of doc_id. Its keyword index row is added by store_db_commit (all of the
 * transaction's chunks in one statement), at once outside a transaction. Returns: *id, the new
 * chunk id (also its vector index id). */
ragd_rc store_db_chunk_put(store_db *s, int64_t doc_id, const store_chunk_in *c, int64_t *id,
                           ragd_err *err);

/* Looks up a stored embedding. Returns: RAGD_OK with *found 0 or 1; out holds dims floats. */
ragd_rc store_db_embedding_get(store_db *s, const char *checksum, const char *model, int dims,
                               float *out, int *found, ragd_err *err);

/* Stores an embedding (INSERT OR IGNORE). Durable at once when no transaction is open. */
ragd_rc store_db_embedding_put(store_db *s, const char *checksum, const char *model, int dims,
                               const float *vec, ragd_err *err);

/* Calls fn for every chunk with its stored embedding for model/dims, in chunk id order, on the
 * writer connection; used to rebuild the vector index. fn returns 0 to go on, non-zero to stop
 * (the call then fails with RAGD_ERR_INTERNAL). Chunks without an embedding are counted in
 * *missing (may be NULL). */
ragd_rc store_db_vectors_each(store_db *s, const char *model, int dims, store_vector_fn fn,
                              void *ctx, size_t *missing, ragd_err *err);


/* Fetches chunks by id through a reader connection (any thread). out[i] matches ids[i]; an id
 * not found leaves out[i].chunk_id == 0. Strings in out are new: free with store_hit_free. */
/* The chunks' token counts (chunks.tokens) by id, from one snapshot: tokens[i] for ids[i], 0 when
 * not found. */
ragd_rc store_db_chunk_tokens(store_db *s, const int64_t *ids, size_t n, int64_t *tokens,
                              ragd_err *err);
ragd_rc store_db_chunks_get(store_db *s, const int64_t *ids, size_t n, store_hit *out,
                            ragd_err *err);

/* Lists documents whose path starts with prefix ("push:" for pushed documents), ordered by path,
 * limit rows from offset, through a reader connection (any thread), with each one's chunk count
 * and the total number matching. Returns: *docs and *chunk_counts new (free with
 * store_doc_rows_free and free()), *n rows, *total. */
ragd_rc store_db_doc_page(store_db *s, const char *prefix, int64_t offset, int64_t limit,
                          store_doc **docs, int64_t **chunk_counts, size_t *n, int64_t *total,
                          ragd_err *err);

/* store_db_doc_page in a collection (NULL: "default"). */
ragd_rc store_db_doc_page_in(store_db *s, const char *collection, const char *prefix,
                             int64_t offset, int64_t limit, store_doc **docs,
                             int64_t **chunk_counts, size_t *n, int64_t *total, ragd_err *err);

/* Lists the collections holding documents, by name, with their counts, through a reader
 * connection. Returns: *out new (store_collections_free), *n. */
ragd_rc store_db_collections(store_db *s, store_collection **out, size_t *n, ragd_err *err);

/* Lists the chunk ids of a collection (writer connection). Returns: *ids new (free()), *n. */
ragd_rc store_db_collection_chunk_ids(store_db *s, const char *collection, int64_t **ids,
                                      size_t *n, ragd_err *err);

/* Deletes a collection's documents and their chunks; *documents (may be NULL) counts them. */
ragd_rc store_db_collection_delete(store_db *s, const char *collection, int64_t *documents,
                                   ragd_err *err);

/* Reads every chunk of a document in order through a reader connection (any thread).
 * Returns: *hits new (free each with store_hit_free, then the array with free()), *n. */
ragd_rc store_db_doc_chunks_read(store_db *s, int64_t doc_id, store_hit **hits, size_t *n,
                                 ragd_err *err);

/* Counts through a reader connection (any thread). */
ragd_rc store_db_stats(store_db *s, int64_t *documents, int64_t *chunks, int64_t *embeddings,
                       ragd_err *err);

/* Deletes every document and chunk and the recorded model (for --reset). Embeddings stay, so a
 * re-ingest of the same text embeds nothing; see store_db_embeddings_prune. */
ragd_rc store_db_reset(store_db *s, ragd_err *err);

/* Deletes embeddings of another model or dims, and those no chunk uses. *removed may be NULL. */
ragd_rc store_db_embeddings_prune(store_db *s, const char *model, int dims, int64_t *removed,
                                  ragd_err *err);

/* ---- keyword index (SQLite FTS5 over title, heading path and chunk text) ------------------ */

/* Returns: 1 when the store has the keyword index (always after a writable open on SQLite with
 * FTS5; a read-only open of a store written by an older ragd has none until the next writable
 * open creates and back-fills it). */
int store_db_fts_available(const store_db *s);

/* BM25 search through a reader connection (any thread). match is an FTS5 MATCH expression, built
 * with retrieve_fts_match() so user text is never FTS syntax. ids/scores hold limit entries;
 * *found is the number filled, best first; scores are -bm25() (higher is better, > 0), weighted
 * title 2, heading 2, text 1 (computed by ragd_bm25 from ragd's phrase counts and the chunk
 * lengths in memory, equal to FTS5's bm25(); bm25() itself where ragd_bm25 cannot register). Without the keyword index: RAGD_OK and *found 0. */
ragd_rc store_db_fts_search(store_db *s, const char *match, size_t limit, int64_t *ids,
                            double *scores, size_t *found, ragd_err *err);

/* store_db_fts_search with bounded work ([retrieve] keyword_max_matches): BM25 scores at most
 * about budget matching chunks, however common the query's words. When match is an OR of quoted
 * phrases (retrieve_fts_match) whose document frequencies sum past the budget, the phrases are
 * taken rarest first while their frequencies fit and only those rank (a word found in more
 * chunks than the budget has a low IDF); when even the rarest does not fit, the chunks holding
 * every phrase rank, and if those exceed the budget too, the newest budget of them. Frequencies
 * are counted only up to budget + 1 each. Under the budget the result is exactly
 * store_db_fts_search's. budget 0: unbounded (store_db_fts_search); a budget under limit is
 * raised to limit. */
ragd_rc store_db_fts_search_bounded(store_db *s, const char *match, size_t limit, size_t budget,
                                    int64_t *ids, double *scores, size_t *found, ragd_err *err);

/* The chunk lengths the keyword ranking holds in memory (ragd_bm25, src/store_fts_rank.c): the
 * row slots (two bytes each) of the last snapshot it ranked in; 0 before the first search or
 * without them (FTS5 then reads each row's length, as bm25() does). */
size_t store_db_fts_lengths_slots(store_db *s);

/* Statistics for the confidence estimate, from one snapshot: for each of the n phrases (FTS5
 * MATCH expressions, one query term each) the number of chunks containing it (df[i]: counted up
 * to 4000, extrapolated past that from the chunk-id span its newest 4000 matches cover, so a
 * common word costs a bounded walk of its doclist) and which
 * of top_ids (at most 32) contain it (bit j of top_mask[i]); *total is the number of chunks.
 * Without the keyword index everything is 0. */
ragd_rc store_db_fts_terms(store_db *s, const char *const *phrases, size_t n,
                           const int64_t *top_ids, size_t top_n, int64_t *df, uint32_t *top_mask,
                           int64_t *total, ragd_err *err);

/* ===== FAISS vector index =================================================================== */

typedef struct store_index store_index;

/* How an index is built: [store] index_factory and hnsw_ef_search. */
typedef struct store_index_opts {
    const char *factory; /* FAISS factory string: NULL, "" or "Flat" (exact IndexFlatIP), or
                          * "HNSW<M>[,Flat]" (approximate; removals are tombstones) */
    int ef_search;       /* HNSW efSearch; <= 0 keeps FAISS's default (16) */
    int ef_construction; /* HNSW efConstruction for vectors added to this index object; <= 0
                          * keeps FAISS's default (40). Not saved: set it again after a load */
} store_index_opts;

/* Creates an empty index for dims-dimensional vectors, the default type (Flat).
 * Returns: *out new (store_index_free). */
ragd_rc store_index_new(int dims, store_index **out, ragd_err *err);

/* Creates an empty index of the type opts names (opts may be NULL: Flat). A factory string ragd
 * cannot use (unknown, needs training, not Flat/HNSW) fails with RAGD_ERR_CONFIG.
 * Returns: *out new (store_index_free). */
ragd_rc store_index_new_with(int dims, const store_index_opts *opts, store_index **out,
                             ragd_err *err);

/* Returns: the index type's factory string ("Flat" for the default), borrowed for idx's life. */
const char *store_index_factory(const store_index *idx);

/* Returns: 1 when idx searches with ragd's SIMD kernels (include/ragd/simd.h; installed when the
 * index is created or loaded unless RAGD_SIMD=off), 0 when with FAISS's own. */
int store_index_simd(const store_index *idx);

/* Reads only the factory string recorded in path.meta ("Flat" for metas older than factories)
 * into factory (size bytes), without reading or checking the index file.
 * Returns: RAGD_OK, RAGD_ERR_NOT_FOUND without a meta, RAGD_ERR_INDEX for an invalid one. */
ragd_rc store_index_saved_factory(const char *path, char *factory, size_t size, ragd_err *err);

/* Returns: the removed vectors still held as tombstones (always 0 for Flat). */
size_t store_index_tombstones(const store_index *idx);

/* Returns: 1 when tombstones exceed a tenth of the vectors held, so the caller should rebuild
 * the index from SQLite (searches stay correct either way; they only get slower). */
int store_index_rebuild_due(const store_index *idx);

/* Frees idx. idx may be NULL. */
void store_index_free(store_index *idx);

/* Adds n vectors (n * dims floats, already L2-normalised) under ids. */
ragd_rc store_index_add(store_index *idx, size_t n, const int64_t *ids, const float *vecs,
                        ragd_err *err);

/* Removes the given ids (absent ids are ignored). *removed may be NULL. */
ragd_rc store_index_remove(store_index *idx, size_t n, const int64_t *ids, size_t *removed,
                           ragd_err *err);

/* Removes everything. */
ragd_rc store_index_clear(store_index *idx, ragd_err *err);

/* Top-k by inner product (cosine on normalised vectors). ids/scores hold k entries; *found is the
 * number filled (min(k, count)), best first. Safe to call from several threads at once. */
ragd_rc store_index_search(const store_index *idx, const float *query, size_t k, int64_t *ids,
                           float *scores, size_t *found, ragd_err *err);

/* store_index_search with this search's own HNSW efSearch (a request's `ef_search`): ef_search
 * > 0 overrides the index's configured value for this call only; <= 0 keeps it. Flat ignores it.
 * Safe to call from several threads at once, with different values. */
ragd_rc store_index_search_ef(const store_index *idx, const float *query, size_t k, int ef_search,
                              int64_t *ids, float *scores, size_t *found, ragd_err *err);

/* Returns: the number of live vectors (tombstones excluded), the dimensions, the bytes the vectors
 * take in memory (tombstoned ones included). */
size_t store_index_count(const store_index *idx);
int store_index_dims(const store_index *idx);
/* Returns: 1 for a flat (exhaustive) index, 0 for a graph (HNSW). */
int store_index_is_flat(const store_index *idx);
size_t store_index_bytes(const store_index *idx);

/* Saves atomically to path (temp file, fsync, rename, fsync dir), then writes path.meta
 * (generation, count, dims, SHA-256 of the index file) the same way. */
ragd_rc store_index_save(const store_index *idx, const char *path, uint64_t generation,
                         ragd_err *err);

/* Loads path after checking path.meta: the file's SHA-256, dims, count. Any mismatch, a missing
 * or corrupt file fails (RAGD_ERR_NOT_FOUND when missing, RAGD_ERR_INDEX otherwise) so the
 * caller rebuilds. Returns: *out new and *generation, the generation it was saved with. */
ragd_rc store_index_load(const char *path, int dims, store_index **out, uint64_t *generation,
                         ragd_err *err);

/* store_index_load for the index type opts names (NULL: Flat). An index saved with another
 * factory string fails with RAGD_ERR_INDEX, so the caller rebuilds it in the configured type.
 * Tombstones saved in the meta are restored. */
ragd_rc store_index_load_with(const char *path, int dims, const store_index_opts *opts,
                              store_index **out, uint64_t *generation, ragd_err *err);

#endif
