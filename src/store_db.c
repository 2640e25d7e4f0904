/* SPDX-License-Identifier: MIT */
/*
 * store_db.c - the SQLite metadata store, ragd's source of truth: documents, chunks, embeddings
 * (little-endian float32 blobs keyed by text checksum, model and dims) and a meta table (schema
 * version, embedding model and dims, generation) in data_dir/ragd.sqlite3.
 *
 * One writer connection (WAL, synchronous=NORMAL: every commit survives a crash or SIGKILL of the
 * process; store_db_sync makes everything committed so far survive power loss too) whose
 * statements are prepared once and cached; the caller serialises writes. Reads that may come from
 * any thread (store_db_chunks_get, store_db_stats) go through a small mutex-guarded pool of reader
 * connections, each call inside one read transaction so all its rows come from one snapshot.
 * SQLite errors are translated here: SQLITE_NOMEM becomes RAGD_ERR_NOMEM, anything else
 * (SQLITE_FULL and SQLITE_IOERR included) RAGD_ERR_STORE, always with the operation named in the
 * message. A full disk is the store failing, not one file: an ingest stops on it rather than
 * report every later file as failed (RAGD_ERR_IO stays for reading the files being ingested).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "ragd/embed.h"
#include "ragd/log.h"
#include "ragd/store.h"
#include "ragd/util.h"
#include "store_chunk_tokens_int.h"
#include "store_fts_rank_int.h"
#include "store_fts_tokens_int.h"
#include "store_terms_int.h"
#include "store_vfs_int.h"

#ifndef RAGD_FTS_TERMS_CACHED
#define RAGD_FTS_TERMS_CACHED 8192 /* phrases whose statistics one generation keeps */
#endif

#define RAGD_STORE_DB_FILE "ragd.sqlite3"
#define RAGD_STORE_SCHEMA_VERSION 6
#define RAGD_STORE_BUSY_TIMEOUT_MS 5000
#define RAGD_STORE_READERS_MAX 16
/* KiB of page cache the writer connection may fill, unless store_writer_cache_set said other. */
#define RAGD_STORE_WRITER_CACHE_KIB 8192

/* Statements cached on the writer connection, prepared on first use. */
enum {
    RAGD_STMT_BEGIN,
    RAGD_STMT_COMMIT,
    RAGD_STMT_ROLLBACK,
    RAGD_STMT_META_GET,
    RAGD_STMT_META_PUT,
    RAGD_STMT_HAS_CHUNKS,
    RAGD_STMT_GENERATION_BUMP,
    RAGD_STMT_DOC_FIND,
    RAGD_STMT_DOC_PUT,
    RAGD_STMT_DOC_CHUNK_IDS,
    RAGD_STMT_DOC_CHUNKS_DELETE,
    RAGD_STMT_DOC_DELETE,
    RAGD_STMT_DOC_LIST_PREFIX,
    RAGD_STMT_CHUNK_PUT,
    RAGD_STMT_EMBEDDING_GET,
    RAGD_STMT_EMBEDDING_PUT,
    RAGD_STMT_VECTORS_EACH,
    RAGD_STMT_FTS_ADD,
    RAGD_STMT_CHUNK_INPUT,
    RAGD_STMT_BEGIN_READ,
    RAGD_STMT_FTS_PENDING_DOC,
    RAGD_STMT_COUNT
};

static const char *const writer_sql[RAGD_STMT_COUNT] = {
    [RAGD_STMT_BEGIN] = "BEGIN IMMEDIATE",
    [RAGD_STMT_COMMIT] = "COMMIT",
    [RAGD_STMT_ROLLBACK] = "ROLLBACK",
    [RAGD_STMT_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [RAGD_STMT_META_PUT] = "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)",
    [RAGD_STMT_HAS_CHUNKS] = "SELECT EXISTS (SELECT 1 FROM chunks)",
    [RAGD_STMT_GENERATION_BUMP] =
        "INSERT INTO meta(key, value) VALUES ('generation', '1') ON CONFLICT(key) DO UPDATE "
        "SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) RETURNING CAST(value AS INTEGER)",
    [RAGD_STMT_DOC_FIND] = "SELECT id, path, source, title, checksum, size, mtime, tags, metadata, "
                           "collection FROM documents WHERE collection = ?2 AND path = ?1",
    [RAGD_STMT_DOC_PUT] =
        "INSERT INTO documents(path, source, title, checksum, size, mtime, tags, metadata, "
        "ingested_at, collection) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) "
        "ON CONFLICT(collection, path) DO UPDATE SET "
        "source = excluded.source, title = excluded.title, checksum = excluded.checksum, "
        "size = excluded.size, mtime = excluded.mtime, tags = excluded.tags, "
        "metadata = excluded.metadata, ingested_at = excluded.ingested_at RETURNING id",
    [RAGD_STMT_DOC_CHUNK_IDS] = "SELECT id FROM chunks WHERE document_id = ?1 ORDER BY ordinal",
    [RAGD_STMT_DOC_CHUNKS_DELETE] = "DELETE FROM chunks WHERE document_id = ?1",
    [RAGD_STMT_DOC_DELETE] = "DELETE FROM documents WHERE id = ?1",
    /* instr() = 1 is an exact starts-with test (LIKE would treat % and _ in paths as patterns);
     * path >= ?1 lets the unique index skip everything before the prefix. */
    [RAGD_STMT_DOC_LIST_PREFIX] = "SELECT id, path FROM documents WHERE collection = ?2 "
                                  "AND path >= ?1 AND instr(path, ?1) = 1 ORDER BY path",
    [RAGD_STMT_CHUNK_PUT] =
        "INSERT INTO chunks(document_id, ordinal, text, heading, tokens, char_start, char_end, "
        "checksum, page) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [RAGD_STMT_EMBEDDING_GET] =
        "SELECT vector FROM embeddings WHERE checksum = ?1 AND model = ?2 AND dims = ?3",
    [RAGD_STMT_EMBEDDING_PUT] = "INSERT OR IGNORE INTO embeddings(checksum, model, dims, vector, "
                                "created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    /* heading and text only for a row without vector bytes (recomputed: embed_chunk_recompute) */
    [RAGD_STMT_VECTORS_EACH] =
        "SELECT c.id, c.checksum, e.vector, CASE WHEN length(e.vector) = 0 THEN c.heading END, "
        "CASE WHEN length(e.vector) = 0 THEN c.text END FROM chunks c LEFT JOIN embeddings e "
        "ON e.checksum = c.checksum AND e.model = ?1 AND e.dims = ?2 ORDER BY c.id",
    /* the keyword index rows of the chunks a transaction inserted (see fts_pending_add) */
    [RAGD_STMT_FTS_ADD] =
        "INSERT INTO chunks_fts(rowid, title, heading, text) SELECT c.id, coalesce(d.title, ''), "
        "c.heading, c.text FROM chunks c LEFT JOIN documents d ON d.id = c.document_id "
        "WHERE c.id BETWEEN ?1 AND ?2",
    /* a chunk whose embedding input has this checksum, to recompute a vector from */
    [RAGD_STMT_CHUNK_INPUT] = "SELECT heading, text FROM chunks WHERE checksum = ?1 LIMIT 1",
    [RAGD_STMT_BEGIN_READ] = "BEGIN",
    /* a document (by id ?2, else by collection ?3 and path ?4) with chunks from id ?1 on: chunks
     * the keyword index may not have yet (see fts_pending_settle) */
    [RAGD_STMT_FTS_PENDING_DOC] =
        "SELECT EXISTS (SELECT 1 FROM chunks WHERE id >= ?1 AND document_id = coalesce(?2, "
        "(SELECT id FROM documents WHERE collection = ?3 AND path = ?4)))",
};

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS documents ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " path TEXT NOT NULL,"
    " source TEXT NOT NULL,"
    " title TEXT NOT NULL,"
    " checksum TEXT NOT NULL,"
    " size INTEGER NOT NULL,"
    " mtime INTEGER NOT NULL,"
    " tags TEXT NOT NULL DEFAULT '[]',"
    " metadata TEXT NOT NULL DEFAULT '{}',"
    " ingested_at INTEGER NOT NULL,"
    " collection TEXT NOT NULL DEFAULT 'default'," /* schema 3: the document's collection */
    " UNIQUE (collection, path));"
    /* AUTOINCREMENT: chunk ids are vector index ids and must never be reused. */
    "CREATE TABLE IF NOT EXISTS chunks ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,"
    " ordinal INTEGER NOT NULL,"
    " text TEXT NOT NULL,"
    " heading TEXT NOT NULL,"
    " tokens INTEGER NOT NULL,"
    " char_start INTEGER NOT NULL,"
    " char_end INTEGER NOT NULL,"
    " checksum TEXT NOT NULL,"
    " page INTEGER NOT NULL DEFAULT 0," /* schema 2: 1-based page (PDF), 0 when none */
    " UNIQUE (document_id, ordinal));"
    "CREATE INDEX IF NOT EXISTS chunks_checksum ON chunks(checksum);"
    "CREATE INDEX IF NOT EXISTS chunks_document_id ON chunks(document_id);"
    /* A rowid table with a unique index, not a WITHOUT ROWID table keyed by the checksum: its
     * 4 KiB rows are appended in insertion order (the last leaf and fresh overflow pages)
     * instead of landing on random leaves of a key-ordered tree that every later transaction
     * rewrites, and only the small index entries go in checksum order: ingest CPU x0.90
     * (bench/NOTES.md, session 4 part B). Stores created before keep their WITHOUT ROWID table:
     * every statement here reads and writes both layouts alike. */
    "CREATE TABLE IF NOT EXISTS embeddings ("
    " checksum TEXT NOT NULL,"
    " model TEXT NOT NULL,"
    " dims INTEGER NOT NULL,"
    " vector BLOB NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " UNIQUE (checksum, model, dims));"
    "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', '6');";

/* Migrations from each older schema version to the current one, applied in order. */
static const char migrate_1_to_2_sql[] =
    "ALTER TABLE chunks ADD COLUMN page INTEGER NOT NULL DEFAULT 0;"
    "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', '2');";

/* Counts the changes of the title of a document that has chunks in meta 'fts_titles', in the
 * transaction that makes them: the title trigger below then changed the length of that
 * document's keyword rows, which ragd_bm25's cache of lengths (src/store_fts_rank.c) reads again
 * when it sees a new count (an ingest deletes a changed file's chunks before it updates the
 * document: that counts nothing). A TEMP trigger of the writer's connection: nothing in the
 * schema changes; `meta` unqualified, as a trigger must name it, is main's. */
#define RAGD_FTS_TITLES_TRIGGER                                                                    \
    "CREATE TEMP TRIGGER IF NOT EXISTS ragd_fts_titles AFTER UPDATE OF title ON main.documents"   \
    " WHEN old.title IS NOT new.title"                                                             \
    " AND EXISTS (SELECT 1 FROM chunks WHERE document_id = new.id) BEGIN"                          \
    " INSERT INTO meta(key, value) VALUES ('fts_titles', 1)"                                       \
    " ON CONFLICT(key) DO UPDATE SET value = value + 1; END;"

/* The keyword index follows a document's title: a store whose index keeps its own copy of the
 * text (created before schema 6; see fts_sql for the current layout's triggers). */
#define RAGD_FTS_TITLE_TRIGGER                                                                     \
    "CREATE TRIGGER chunks_fts_title AFTER UPDATE OF title ON documents BEGIN"                     \
    " UPDATE chunks_fts SET title = new.title WHERE rowid IN"                                      \
    " (SELECT id FROM chunks WHERE document_id = new.id); END;"

/* Schema 3: documents get a collection ('default' for every existing one) and are unique per
 * (collection, path), so one file may live in several collections. SQLite cannot change a UNIQUE
 * constraint in place: the table is rebuilt (SQLite's documented twelve-step procedure, run with
 * foreign keys off so chunks keep their rows) with the same ids, so chunk ids, the FAISS index
 * and the keyword index stay valid. The keyword index's title trigger, dropped with the old
 * table, is created again by fts_apply_triggers. */
static const char migrate_2_to_3_sql[] =
    "CREATE TABLE documents_v3 ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " path TEXT NOT NULL,"
    " source TEXT NOT NULL,"
    " title TEXT NOT NULL,"
    " checksum TEXT NOT NULL,"
    " size INTEGER NOT NULL,"
    " mtime INTEGER NOT NULL,"
    " tags TEXT NOT NULL DEFAULT '[]',"
    " metadata TEXT NOT NULL DEFAULT '{}',"
    " ingested_at INTEGER NOT NULL,"
    " collection TEXT NOT NULL DEFAULT 'default',"
    " UNIQUE (collection, path));"
    "INSERT INTO documents_v3(id, path, source, title, checksum, size, mtime, tags, metadata,"
    " ingested_at, collection) SELECT id, path, source, title, checksum, size, mtime, tags,"
    " metadata, ingested_at, 'default' FROM documents;"
    "DROP TABLE documents;"
    /* legacy: the keyword index's insert trigger names `documents`, absent for this moment */
    "PRAGMA legacy_alter_table = ON;"
    "ALTER TABLE documents_v3 RENAME TO documents;"
    "PRAGMA legacy_alter_table = OFF;"
    "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', '3');";

/* Schema 4: the keyword index is no longer filled by a trigger per chunk row but by one
 * statement per transaction (fts_pending_flush): FTS5 writes its pending terms out at every
 * statement savepoint, and a trigger makes each chunk insert one, so the trigger cost one FTS5
 * segment (and the merges that follow) per chunk. The tables are unchanged; only the trigger
 * goes. An older ragd refuses a schema 4 store (it would insert chunks the index misses). */
static const char migrate_3_to_4_sql[] =
    "DROP TRIGGER IF EXISTS chunks_fts_insert;"
    "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', '4');";

/* Schema 5: an embeddings row of a recomputable model (embed_recompute_for: the local embedder)
 * may hold a zero-length vector, meaning "recompute from the text of a chunk with this
 * checksum" (store_db_embedding_put). The tables are unchanged and rows with bytes are read as
 * before; an older ragd refuses a schema 5 store (it would call those rows corrupt). */
static const char migrate_4_to_5_sql[] =
    "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', '5');";

/* Schema 6: a new store's keyword index keeps no copy of the text (external content, see
 * fts_sql), and its triggers then need every chunk it is told to forget to have been indexed:
 * this ragd indexes a transaction's pending chunks before it deletes chunks or changes a title
 * (fts_pending_settle). A store created before keeps its own-copy index and triggers (they are
 * in its schema, nothing to choose at open); only the version changes, so that an older ragd,
 * which lacks that ordering, refuses every schema 6 store. */
static const char migrate_5_to_6_sql[] =
    "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', '6');";

/* A pooled reader connection with its own cached statements. */
typedef struct store_reader {
    sqlite3 *db;
    sqlite3_stmt *chunk_get;
    sqlite3_stmt *stats;
    sqlite3_stmt *begin;
    sqlite3_stmt *commit;
    /* keyword search, prepared at first use (fts_reader_stmt) */
    sqlite3_stmt *fts_generation; /* the snapshot's store generation */
    sqlite3_stmt *fts_stat;       /* a phrase's matches, counted newest first up to a cap */
    sqlite3_stmt *fts_rank;       /* BM25 top-k (FTS5's bm25()) */
    sqlite3_stmt *fts_rank_own;   /* BM25 top-k (ragd_bm25, src/store_fts_rank.c) */
    int fts_own;                  /* ragd_bm25 is registered on this connection */
    sqlite3_stmt *fts_row;        /* a chunk's indexed columns */
    sqlite3_stmt *chunk_tokens;   /* a chunk's token count, prepared at first use */
    /* term statistics (store_db_fts_terms): kept, as preparing them took about half its time */
    sqlite3_stmt *fts_total;  /* the chunks counted */
    sqlite3_stmt *fts_span;   /* the lowest and highest chunk id */
    sqlite3_stmt *fts_in_top; /* a phrase in one chunk (without the in-memory tokenizer) */
    store_fts_tokenizer *fts_tok; /* chunks_fts's tokenizer (NULL: none, see fts_tok_tried) */
    int fts_tok_tried;
} store_reader;

struct store_db {
    char *data_dir;
    char *db_path;
    int readonly;
    sqlite3 *writer;
    sqlite3_stmt *stmts[RAGD_STMT_COUNT];
    pthread_mutex_t pool_mutex;
    store_reader *idle[RAGD_STORE_READERS_MAX];
    size_t idle_count;
    int fts; /* the chunks_fts keyword index exists (see fts_apply) */
    int64_t fts_lo, fts_hi; /* ids of the chunks the open transaction inserted that chunks_fts
                             * does not have yet (0: none); see fts_pending_add */
    int counts; /* the ragd_counts table exists (see counts_apply) */
    store_terms *terms; /* term statistics per generation (src/store_terms.c); NULL: none */
    store_fts_lengths *lengths; /* chunk lengths for ragd_bm25 (src/store_fts_rank.c); NULL:
                                 * none, FTS5 reads them per row */
    store_chunk_tokens_cache *tokens; /* chunks' token counts (src/store_chunk_tokens.c); NULL:
                                       * none, read per id */
};

static const char chunk_get_sql[] =
    "SELECT c.id, c.document_id, c.ordinal, c.text, c.heading, c.tokens, c.char_start, "
    "c.char_end, d.source, d.title, d.path, d.tags, d.metadata, c.page, d.collection, c.checksum "
    "FROM chunks c JOIN documents d ON d.id = c.document_id WHERE c.id = ?1";

static const char stats_sql[] = "SELECT (SELECT count(*) FROM documents), "
                                "(SELECT count(*) FROM chunks), (SELECT count(*) FROM embeddings)";

/* The row counts, maintained: triggers keep ragd_counts in step with documents, chunks and
 * embeddings inside the very transaction that changes them (ON DELETE CASCADE and reset
 * included), so /health and the confidence's total read three rows instead of counting a
 * million. A store without the table (written by an older ragd) gets it, back-filled, at the
 * next writable open; until then (read-only) the counts are counted. */
/* The triggers on `documents` (created again when schema 3 rebuilds that table). */
#define RAGD_COUNTS_DOC_TRIGGERS                                                                   \
    "CREATE TRIGGER ragd_counts_doc_insert AFTER INSERT ON documents BEGIN"                        \
    " UPDATE ragd_counts SET n = n + 1 WHERE name = 'documents'; END;"                             \
    "CREATE TRIGGER ragd_counts_doc_delete AFTER DELETE ON documents BEGIN"                        \
    " UPDATE ragd_counts SET n = n - 1 WHERE name = 'documents'; END;"

static const char counts_sql[] =
    "CREATE TABLE ragd_counts (name TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;"
    "INSERT INTO ragd_counts(name, n) VALUES ('documents', (SELECT count(*) FROM documents)),"
    " ('chunks', (SELECT count(*) FROM chunks)), ('embeddings', (SELECT count(*) FROM embeddings));"
    RAGD_COUNTS_DOC_TRIGGERS
    "CREATE TRIGGER ragd_counts_chunk_insert AFTER INSERT ON chunks BEGIN"
    " UPDATE ragd_counts SET n = n + 1 WHERE name = 'chunks'; END;"
    "CREATE TRIGGER ragd_counts_chunk_delete AFTER DELETE ON chunks BEGIN"
    " UPDATE ragd_counts SET n = n - 1 WHERE name = 'chunks'; END;"
    "CREATE TRIGGER ragd_counts_embedding_insert AFTER INSERT ON embeddings BEGIN"
    " UPDATE ragd_counts SET n = n + 1 WHERE name = 'embeddings'; END;"
    "CREATE TRIGGER ragd_counts_embedding_delete AFTER DELETE ON embeddings BEGIN"
    " UPDATE ragd_counts SET n = n - 1 WHERE name = 'embeddings'; END;";

static const char counts_read_sql[] =
    "SELECT (SELECT n FROM ragd_counts WHERE name = 'documents'), "
    "(SELECT n FROM ragd_counts WHERE name = 'chunks'), "
    "(SELECT n FROM ragd_counts WHERE name = 'embeddings')";

/* ----- error translation ---------------------------------------------------------------------- */

/* Records a SQLite failure (code from the failing call, message from db) in err.
 * Returns: the ragd_rc recorded. */
static ragd_rc db_fail(sqlite3 *db, int code, const char *what, ragd_err *err)
{
    ragd_rc rc;
    switch (code & 0xff) {
    case SQLITE_NOMEM: rc = RAGD_ERR_NOMEM; break;
    default: rc = RAGD_ERR_STORE; break; /* SQLITE_FULL, SQLITE_IOERR: see the file comment */
    }
    const char *msg = db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(code);
    return ragd_err_set(err, rc, "%s: %s", what, msg);
}

static ragd_rc need_writable(const store_db *s, const char *what, ragd_err *err)
{
    if (s->readonly)
        return ragd_err_set(err, RAGD_ERR_INVALID, "%s: store %s is open read-only", what,
                            s->db_path);
    return RAGD_OK;
}

/* ----- little-endian float32 vectors ---------------------------------------------------------- */

static void vector_decode(const unsigned char *blob, int dims, float *out)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(out, blob, (size_t)dims * 4);
#else
    for (int i = 0; i < dims; i++) {
        const unsigned char *p = blob + (size_t)i * 4;
        uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                     (uint32_t)p[3] << 24;
        memcpy(&out[i], &u, 4);
    }
#endif
}

/* Binds vec as a little-endian float32 blob. On big-endian hosts *scratch receives a new buffer
 * the caller frees after the statement has run. Returns: a SQLite result code. */
static int vector_bind(sqlite3_stmt *st, int col, const float *vec, int dims, void **scratch)
{
    size_t bytes = (size_t)dims * 4;
    *scratch = NULL;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return sqlite3_bind_blob64(st, col, vec, bytes, SQLITE_STATIC);
#else
    unsigned char *buf = malloc(bytes);
    if (buf == NULL) return SQLITE_NOMEM;
    for (int i = 0; i < dims; i++) {
        uint32_t u;
        memcpy(&u, &vec[i], 4);
        buf[i * 4] = (unsigned char)u;
        buf[i * 4 + 1] = (unsigned char)(u >> 8);
        buf[i * 4 + 2] = (unsigned char)(u >> 16);
        buf[i * 4 + 3] = (unsigned char)(u >> 24);
    }
    *scratch = buf;
    return sqlite3_bind_blob64(st, col, buf, bytes, SQLITE_STATIC);
#endif
}

/* ----- connections ---------------------------------------------------------------------------- */

static ragd_rc db_exec(sqlite3 *db, const char *sql, const char *what, ragd_err *err)
{
    int code = sqlite3_exec(db, sql, NULL, NULL, NULL);
    if (code != SQLITE_OK) return db_fail(db, code, what, err);
    return RAGD_OK;
}

/* SQLite's process-wide settings, made once before its first connection. Memory statistics
 * off: with them on (SQLite's default) every sqlite3_malloc and sqlite3_free takes one global
 * mutex, and concurrent keyword searches (FTS5 allocates per row) queued on it: keyword requests
 * at concurrency 8 served fewer requests/s than at 1 (bench/NOTES.md, session 3 part K). ragd
 * reads no SQLite memory statistics. Too late once another part of the process has initialised
 * SQLite (sqlite3_config then refuses, SQLITE_MISUSE): that costs only the speed-up. */
static void db_global_setup(void)
{
    if (sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0) != SQLITE_OK)
        RAGD_LOG(RAGD_LOG_DEBUG, "store", "SQLite already initialised: memory statistics stay on");
}

/* KiB of the writer's page cache (PRAGMA cache_size), for connections opened from now on. */
static atomic_int writer_cache_kib = RAGD_STORE_WRITER_CACHE_KIB;

void store_writer_cache_set(int kib)
{
    atomic_store(&writer_cache_kib, kib > 0 ? kib : RAGD_STORE_WRITER_CACHE_KIB);
}

/* Opens path with flags and sets the busy timeout. Returns: *out new (sqlite3_close_v2). */
static ragd_rc db_connect(const char *path, int flags, sqlite3 **out, ragd_err *err)
{
    static pthread_once_t global_once = PTHREAD_ONCE_INIT;
    pthread_once(&global_once, db_global_setup);
    sqlite3 *db = NULL;
    /* the default VFS with the WAL's frame writes gathered (src/store_vfs.c); NULL: default */
    int code = sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_NOMUTEX, store_vfs_name());
    if (code != SQLITE_OK) {
        ragd_rc rc = db == NULL ? ragd_err_set(err, RAGD_ERR_NOMEM, "open %s: out of memory", path)
                                : ragd_err_set(err, (code & 0xff) == SQLITE_IOERR ? RAGD_ERR_IO
                                                                                : RAGD_ERR_STORE,
                                               "open %s: %s", path, sqlite3_errmsg(db));
        sqlite3_close_v2(db);
        return rc;
    }
    sqlite3_extended_result_codes(db, 1);
    code = sqlite3_busy_timeout(db, RAGD_STORE_BUSY_TIMEOUT_MS);
    if (code != SQLITE_OK) {
        ragd_rc rc = db_fail(db, code, "set busy timeout", err);
        sqlite3_close_v2(db);
        return rc;
    }
    /* A larger page cache for the writer's ingest lookups: 8 MiB in the daemon, whose peak RSS
     * while it ingests has a budget (with 16 MiB the HNSW32 100k x 384 peak was within ~1 MiB of
     * it, or over; 8 MiB less with 8), 16 MiB in `ragd ingest` (store_writer_cache_set;
     * bench/NOTES.md, session 6 part G). No memory
     * map: measured (bench/NOTES.md, part G) it saved no ingest CPU, while the 256 MiB map the
     * writer had put up to 256 MiB of the database file in the daemon's RSS during an ingest (18
     * MB of markdown: peak 215 -> 120 MiB). Readers set their own, smaller cache (reader_open). */
    char pragmas[96];
    snprintf(pragmas, sizeof pragmas, "PRAGMA mmap_size = 0; PRAGMA cache_size = -%d",
             atomic_load(&writer_cache_kib));
    code = sqlite3_exec(db, pragmas, NULL, NULL, NULL);
    if (code != SQLITE_OK) {
        ragd_rc rc = ragd_err_set(err, (code & 0xff) == SQLITE_IOERR ? RAGD_ERR_IO : RAGD_ERR_STORE,
                                  "open %s: %s", path, sqlite3_errmsg(db));
        sqlite3_close_v2(db);
        return rc;
    }
    *out = db;
    return RAGD_OK;
}

/* Returns: RAGD_OK and *out, a cached writer statement ready to bind (borrowed: stmt_done it
 * after use). */
static ragd_rc writer_stmt(store_db *s, int id, sqlite3_stmt **out, ragd_err *err)
{
    if (s->stmts[id] == NULL) {
        int code = sqlite3_prepare_v3(s->writer, writer_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                      &s->stmts[id], NULL);
        if (code != SQLITE_OK) {
            s->stmts[id] = NULL;
            return db_fail(s->writer, code, "prepare statement", err);
        }
    }
    *out = s->stmts[id];
    return RAGD_OK;
}

/* Makes a statement reusable: its bindings must not outlive the caller's borrowed strings. */
static void stmt_done(sqlite3_stmt *st)
{
    if (st == NULL) return;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Runs a statement that returns no rows (or whose rows are ignored) to completion.
 * Returns: RAGD_OK; the statement is reset either way. */
static ragd_rc stmt_run(store_db *s, sqlite3_stmt *st, const char *what, ragd_err *err)
{
    int code;
    while ((code = sqlite3_step(st)) == SQLITE_ROW) {}
    ragd_rc rc = code == SQLITE_DONE ? RAGD_OK : db_fail(s->writer, code, what, err);
    stmt_done(st);
    return rc;
}

static ragd_rc writer_simple(store_db *s, int id, const char *what, ragd_err *err)
{
    sqlite3_stmt *st = NULL;
    ragd_rc rc = writer_stmt(s, id, &st, err);
    if (rc != RAGD_OK) return rc;
    return stmt_run(s, st, what, err);
}

/* Opens a transaction with the writer statement begin (RAGD_STMT_BEGIN: a write transaction;
 * RAGD_STMT_BEGIN_READ: a deferred one that only reads) unless the caller already holds one.
 * *owned says whether this call must close it with tx_close. */
static ragd_rc tx_open_with(store_db *s, int begin, int *owned, ragd_err *err)
{
    *owned = 0;
    if (!sqlite3_get_autocommit(s->writer)) return RAGD_OK;
    ragd_rc rc = writer_simple(s, begin, "begin transaction", err);
    if (rc == RAGD_OK) *owned = 1;
    return rc;
}

static ragd_rc tx_open(store_db *s, int *owned, ragd_err *err)
{
    return tx_open_with(s, RAGD_STMT_BEGIN, owned, err);
}

/* Commits an owned transaction when rc is RAGD_OK, else rolls it back. Returns: the final rc. */
static ragd_rc tx_close(store_db *s, int owned, ragd_rc rc, ragd_err *err)
{
    if (!owned) return rc;
    if (rc == RAGD_OK) rc = writer_simple(s, RAGD_STMT_COMMIT, "commit", err);
    if (rc != RAGD_OK) store_db_rollback(s);
    return rc;
}

/* Reads meta[key]. Returns: RAGD_OK with *value new (free()) or NULL when absent. */
static ragd_rc meta_get(store_db *s, const char *key, char **value, ragd_err *err)
{
    sqlite3_stmt *st = NULL;
    ragd_rc prep = writer_stmt(s, RAGD_STMT_META_GET, &st, err);
    if (prep != RAGD_OK) return prep;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    ragd_rc rc = RAGD_OK;
    char *copy = NULL;
    int code = sqlite3_step(st);
    if (code == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text(st, 0);
        copy = strdup(text != NULL ? text : "");
        if (copy == NULL)
            rc = ragd_err_set(err, RAGD_ERR_NOMEM, "read meta %s: out of memory", key);
    } else if (code != SQLITE_DONE) {
        rc = db_fail(s->writer, code, "read meta", err);
    }
    stmt_done(st);
    if (rc == RAGD_OK) *value = copy;
    return rc;
}

static ragd_rc meta_put(store_db *s, const char *key, const char *value, ragd_err *err)
{
    sqlite3_stmt *st = NULL;
    ragd_rc prep = writer_stmt(s, RAGD_STMT_META_PUT, &st, err);
    if (prep != RAGD_OK) return prep;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
    return stmt_run(s, st, "write meta", err);
}

/* Returns: RAGD_OK and *version, the recorded schema version (0 when the store has no schema). */
static ragd_rc schema_version_get(store_db *s, const char *what, int64_t *version, ragd_err *err)
{
    sqlite3_stmt *st = NULL;
    int code = sqlite3_prepare_v2(s->writer,
                                  "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                                  "AND name = 'meta'",
                                  -1, &st, NULL);
    if (code != SQLITE_OK) return db_fail(s->writer, code, what, err);
    code = sqlite3_step(st);
    int has_meta = code == SQLITE_ROW ? sqlite3_column_int(st, 0) > 0 : 0;
    ragd_rc rc = code == SQLITE_ROW ? RAGD_OK : db_fail(s->writer, code, what, err);
    sqlite3_finalize(st);
    if (rc != RAGD_OK) return rc;
    *version = 0;
    if (!has_meta) return RAGD_OK;
    char *text = NULL;
    rc = meta_get(s, "schema_version", &text, err);
    if (rc != RAGD_OK) return rc;
    if (text != NULL) *version = strtoll(text, NULL, 10);
    free(text);
    return RAGD_OK;
}

static ragd_rc schema_version_refuse(const store_db *s, int64_t version, ragd_err *err)
{
    return ragd_err_set(err, RAGD_ERR_STORE,
                        "store %s has schema version %lld but this ragd supports up to %d; "
                        "upgrade ragd or use another data_dir",
                        s->db_path, (long long)version, RAGD_STORE_SCHEMA_VERSION);
}

/* Creates the schema in one transaction unless it is there; refuses newer schema versions. */
static ragd_rc fts_exists(store_db *s, const char *what, int *exists, ragd_err *err);
static ragd_rc counts_exist(store_db *s, const char *what, int *exists, ragd_err *err);

static ragd_rc schema_apply(store_db *s, const char *what, ragd_err *err)
{
    /* Off while the schema changes (schema 3 rebuilds `documents`, which must not cascade into
     * `chunks`); a no-op inside a transaction, so set here. */
    ragd_rc rc = db_exec(s->writer, "PRAGMA foreign_keys = OFF", what, err);
    if (rc == RAGD_OK) rc = writer_simple(s, RAGD_STMT_BEGIN, what, err);
    if (rc != RAGD_OK) return rc;
    rc = db_exec(s->writer,
                 "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
                 what, err);
    int64_t version = 0;
    if (rc == RAGD_OK) rc = schema_version_get(s, what, &version, err);
    if (rc == RAGD_OK && version > RAGD_STORE_SCHEMA_VERSION)
        rc = schema_version_refuse(s, version, err);
    if (rc == RAGD_OK && version == 1) {
        RAGD_LOG(RAGD_LOG_INFO, "store", "%s: migrating schema 1 -> 2 (chunk page numbers)",
                 s->db_path);
        rc = db_exec(s->writer, migrate_1_to_2_sql, what, err);
        if (rc == RAGD_OK) version = 2;
    }
    if (rc == RAGD_OK && version == 2) {
        RAGD_LOG(RAGD_LOG_INFO, "store", "%s: migrating schema 2 -> 3 (collections)", s->db_path);
        int fts = 0;
        rc = db_exec(s->writer, migrate_2_to_3_sql, what, err);
        if (rc == RAGD_OK) rc = fts_exists(s, what, &fts, err);
        if (rc == RAGD_OK && fts) rc = db_exec(s->writer, RAGD_FTS_TITLE_TRIGGER, what, err);
        /* the maintained counts' triggers on documents went with the old table */
        int counts = 0;
        if (rc == RAGD_OK) rc = counts_exist(s, what, &counts, err);
        if (rc == RAGD_OK && counts) rc = db_exec(s->writer, RAGD_COUNTS_DOC_TRIGGERS, what, err);
        if (rc == RAGD_OK) version = 3;
    }
    if (rc == RAGD_OK && version == 3) {
        RAGD_LOG(RAGD_LOG_INFO, "store", "%s: migrating schema 3 -> 4 (keyword index filled per "
                 "transaction)", s->db_path);
        rc = db_exec(s->writer, migrate_3_to_4_sql, what, err);
        if (rc == RAGD_OK) version = 4;
    }
    if (rc == RAGD_OK && version == 4) {
        RAGD_LOG(RAGD_LOG_INFO, "store", "%s: migrating schema 4 -> 5 (the local embedder's "
                 "vectors recomputed, not stored)", s->db_path);
        rc = db_exec(s->writer, migrate_4_to_5_sql, what, err);
        if (rc == RAGD_OK) version = 5;
    }
    if (rc == RAGD_OK && version == 5) {
        RAGD_LOG(RAGD_LOG_INFO, "store", "%s: migrating schema 5 -> 6 (deletes of chunks not "
                 "yet in the keyword index ordered after their indexing)", s->db_path);
        rc = db_exec(s->writer, migrate_5_to_6_sql, what, err);
    } else if (rc == RAGD_OK && version < RAGD_STORE_SCHEMA_VERSION) {
        rc = db_exec(s->writer, schema_sql, what, err);
    }
    rc = tx_close(s, 1, rc, err);
    ragd_rc fk = db_exec(s->writer, "PRAGMA foreign_keys = ON", what, err);
    return rc != RAGD_OK ? rc : fk;
}

static ragd_rc schema_check_readonly(store_db *s, const char *what, ragd_err *err)
{
    int64_t version = 0;
    ragd_rc rc = schema_version_get(s, what, &version, err);
    if (rc != RAGD_OK) return rc;
    if (version == 0)
        return ragd_err_set(err, RAGD_ERR_NOT_FOUND,
                            "%s is not an initialised ragd store; run `ragd ingest` first",
                            s->db_path);
    if (version > RAGD_STORE_SCHEMA_VERSION) return schema_version_refuse(s, version, err);
    if (version < RAGD_STORE_SCHEMA_VERSION)
        return ragd_err_set(err, RAGD_ERR_STORE,
                            "store %s has schema version %lld; a read-write open (`ragd serve` or "
                            "`ragd ingest`) migrates it to %d",
                            s->db_path, (long long)version, RAGD_STORE_SCHEMA_VERSION);
    return RAGD_OK;
}

static int journal_mode_row(void *ctx, int ncols, char **values, char **names)
{
    (void)names;
    char *mode = ctx;
    if (ncols > 0 && values[0] != NULL) snprintf(mode, 16, "%s", values[0]);
    return 0;
}

/* Switches the database to WAL. SQLite keeps the old mode silently when it cannot (for example on
 * some network filesystems); readers would then block the writer, so that is an error. */
static ragd_rc wal_enable(sqlite3 *db, const char *what, ragd_err *err)
{
    char mode[16] = "";
    int code = sqlite3_exec(db, "PRAGMA journal_mode = WAL", journal_mode_row, mode, NULL);
    if (code != SQLITE_OK) return db_fail(db, code, what, err);
    if (strcmp(mode, "wal") != 0)
        return ragd_err_set(err, RAGD_ERR_STORE, "%s: cannot enable WAL (journal mode is '%s')",
                            what, mode);
    return RAGD_OK;
}

static ragd_rc fts_exists(store_db *s, const char *what, int *exists, ragd_err *err);
static ragd_rc fts_merge_apply(store_db *s, const char *what, ragd_err *err);
static ragd_rc fts_apply(store_db *s, const char *what, ragd_err *err);

/* Sets *exists to 1 when the store has a table (or index, or trigger) named name. */
static ragd_rc table_exists(store_db *s, const char *name, const char *what, int *exists,
                            ragd_err *err)
{
    sqlite3_stmt *st = NULL;
    int code = sqlite3_prepare_v2(s->writer, "SELECT count(*) FROM sqlite_master WHERE name = ?1",
                                  -1, &st, NULL);
    if (code != SQLITE_OK) return db_fail(s->writer, code, what, err);
    code = sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (code == SQLITE_OK) code = sqlite3_step(st);
    ragd_rc rc = code == SQLITE_ROW ? RAGD_OK : db_fail(s->writer, code, what, err);
    if (rc == RAGD_OK) *exists = sqlite3_column_int(st, 0) > 0;
    sqlite3_finalize(st);
    return rc;
}

/* Sets *exists to 1 when the store has the ragd_counts table. */
static ragd_rc counts_exist(store_db *s, const char *what, int *exists, ragd_err *err)
{
    return table_exists(s, "ragd_counts", what, exists, err);
}

/* Creates the maintained counts (counts_sql) in one transaction when the store lacks them: the
 * only time the rows are counted. */
static ragd_rc counts_apply(store_db *s, const char *what, ragd_err *err)
{
    int exists = 0;
    ragd_rc rc = counts_exist(s, what, &exists, err);
    if (rc != RAGD_OK || exists) {
        s->counts = exists;
        return rc;
    }
    rc = writer_simple(s, RAGD_STMT_BEGIN, what, err);
    if (rc != RAGD_OK) return rc;
    rc = db_exec(s->writer, counts_sql, "create the row counts", err);
    rc = tx_close(s, 1, rc, err);
    if (rc == RAGD_OK) s->counts = 1;
    return rc;
}

ragd_rc store_db_open(const char *data_dir, int readonly, store_db **out, ragd_err *err)
{
    if (data_dir == NULL || out == NULL)
        return ragd_err_set(err, RAGD_ERR_INVALID, "store_db_open: data_dir and out are required");
    if (!sqlite3_threadsafe())
        return ragd_err_set(err, RAGD_ERR_UNSUPPORTED,
                            "SQLite was built without thread support; ragd needs it");
    ragd_rc rc;
    if (!readonly && (rc = util_mkdir_p(data_dir, err)) != RAGD_OK) return rc;

    store_db *s = calloc(1, sizeof *s);
    if (s == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "open store: out of memory");
    s->readonly = readonly != 0;
    s->data_dir = strdup(data_dir);
    s->db_path = util_path_join(data_dir, RAGD_STORE_DB_FILE);
    if (s->data_dir == NULL || s->db_path == NULL) {
        free(s->data_dir);
        free(s->db_path);
        free(s);
        return ragd_err_set(err, RAGD_ERR_NOMEM, "open store: out of memory");
    }
    if (pthread_mutex_init(&s->pool_mutex, NULL) != 0) {
        free(s->data_dir);
        free(s->db_path);
        free(s);
        return ragd_err_set(err, RAGD_ERR_INTERNAL, "open store: cannot create mutex");
    }

    /* every failure below names the file */
    char what[RAGD_ERR_MSG_MAX / 2];
    snprintf(what, sizeof what, "open %s", s->db_path);
    if (s->readonly) {
        struct stat st;
        if (stat(s->db_path, &st) != 0) {
            rc = errno == ENOENT
                     ? ragd_err_set(err, RAGD_ERR_NOT_FOUND,
                                    "no store at %s; run `ragd ingest` first", s->db_path)
                     : ragd_err_set(err, RAGD_ERR_IO, "open %s: %s", s->db_path, strerror(errno));
            store_db_close(s);
            return rc;
        }
        rc = db_connect(s->db_path, SQLITE_OPEN_READONLY, &s->writer, err);
        if (rc == RAGD_OK) rc = db_exec(s->writer, "PRAGMA query_only = ON", what, err);
        if (rc == RAGD_OK) rc = schema_check_readonly(s, what, err);
    } else {
        rc = db_connect(s->db_path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &s->writer, err);
        /* synchronous=NORMAL: in WAL mode a commit is in the WAL (the OS keeps it across a crash
         * of this process) without an fsync per document, which would cost a few ms each. A
         * finished ingest calls store_db_sync so that power loss cannot lose it either. */
        if (rc == RAGD_OK) rc = wal_enable(s->writer, what, err);
        if (rc == RAGD_OK)
            rc = db_exec(s->writer, "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON", what,
                         err);
        /* The WAL and its index (-shm) stay when the store closes, the WAL truncated to zero
         * bytes: a restart on a full disk then finds the -shm it needs to read (creating it takes
         * 32 KiB), and the WAL gives its space back after every reset beyond 4 MiB. */
        if (rc == RAGD_OK) {
            int persist = 1;
            sqlite3_file_control(s->writer, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
            rc = db_exec(s->writer, "PRAGMA journal_size_limit = 4194304", what, err);
        }
        /* Checkpoints every 4096 WAL pages (4 KiB each) instead of SQLite's 1000:
         * an ingest rewrites the same pages (FTS5 segments and their merges, b-tree interior
         * pages, the counts row) in transaction after transaction, and a checkpoint copies only
         * a page's last version into the database, so fewer checkpoints write (and read back)
         * less: ingest CPU x0.93 (bench/NOTES.md, session 4 part B). The WAL grows to about
         * 16 MiB between checkpoints; journal_size_limit still cuts it back after each. */
        if (rc == RAGD_OK)
            rc = db_exec(s->writer, "PRAGMA wal_autocheckpoint = 4096", what, err);
        if (rc == RAGD_OK) rc = schema_apply(s, what, err);
        if (rc == RAGD_OK) rc = fts_apply(s, what, err);
        if (rc == RAGD_OK && s->fts) rc = db_exec(s->writer, RAGD_FTS_TITLES_TRIGGER, what, err);
        if (rc == RAGD_OK && s->fts) rc = fts_merge_apply(s, what, err);
        if (rc == RAGD_OK) rc = counts_apply(s, what, err);
    }
    if (rc == RAGD_OK && s->readonly) rc = fts_exists(s, what, &s->fts, err);
    if (rc == RAGD_OK && s->readonly) rc = counts_exist(s, what, &s->counts, err);
    /* without it (out of memory) every term is counted per request, as before the cache */
    if (rc == RAGD_OK) s->terms = store_terms_new(RAGD_FTS_TERMS_CACHED);
    if (rc == RAGD_OK) s->lengths = store_fts_lengths_new(); /* NULL (OOM): FTS5's lengths */
    if (rc == RAGD_OK) s->tokens = store_chunk_tokens_cache_new(); /* NULL (OOM): read per id */
    if (rc != RAGD_OK) {
        store_db_close(s);
        return rc;
    }
    *out = s;
    return RAGD_OK;
}

static void reader_close(store_reader *r)
{
    if (r == NULL) return;
    sqlite3_finalize(r->chunk_get);
    sqlite3_finalize(r->stats);
    sqlite3_finalize(r->begin);
    sqlite3_finalize(r->commit);
    sqlite3_finalize(r->fts_generation);
    sqlite3_finalize(r->fts_stat);
    sqlite3_finalize(r->fts_rank);
    sqlite3_finalize(r->fts_rank_own);
    sqlite3_finalize(r->fts_row);
    sqlite3_finalize(r->chunk_tokens);
    sqlite3_finalize(r->fts_total);
    sqlite3_finalize(r->fts_span);
    sqlite3_finalize(r->fts_in_top);
    store_fts_tokenizer_free(r->fts_tok);
    sqlite3_close_v2(r->db);
    free(r);
}

void store_db_close(store_db *s)
{
    if (s == NULL) return;
    for (size_t i = 0; i < s->idle_count; i++) reader_close(s->idle[i]);
    for (int i = 0; i < RAGD_STMT_COUNT; i++) sqlite3_finalize(s->stmts[i]);
    if (s->writer != NULL) {
        int code = sqlite3_close(s->writer);
        if (code != SQLITE_OK) {
            RAGD_LOG(RAGD_LOG_WARN, "store", "close %s: %s", s->db_path,
                     sqlite3_errmsg(s->writer));
            sqlite3_close_v2(s->writer);
        }
    }
    pthread_mutex_destroy(&s->pool_mutex);
    store_terms_free(s->terms);
    store_fts_lengths_free(s->lengths);
    store_chunk_tokens_cache_free(s->tokens);
    free(s->data_dir);
    free(s->db_path);
    free(s);
}

/* ----- reader pool ---------------------------------------------------------------------------- */

static ragd_rc reader_prepare(store_reader *r, const char *sql, sqlite3_stmt **st, ragd_err *err)
{
    int code = sqlite3_prepare_v3(r->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
    if (code != SQLITE_OK) {
        *st = NULL;
        return db_fail(r->db, code, "prepare reader statement", err);
    }
    return RAGD_OK;
}

static ragd_rc reader_open(const store_db *s, store_reader **out, ragd_err *err)
{
    store_reader *r = calloc(1, sizeof *r);
    if (r == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "open reader: out of memory");
    ragd_rc rc = db_connect(s->db_path, SQLITE_OPEN_READONLY, &r->db, err);
    if (rc == RAGD_OK) rc = db_exec(r->db, "PRAGMA query_only = ON", "configure reader", err);
    /* Readers fetch k rows per request and count rows for /health: no mmap (every reader's map
     * of the same pages counted again in the daemon's RSS, and the counts touch the whole
     * file), and a small page cache (bench/NOTES.md, "Memory"). */
    if (rc == RAGD_OK)
        rc = db_exec(r->db, "PRAGMA mmap_size = 0; PRAGMA cache_size = -2048", "configure reader",
                     err);
    if (rc == RAGD_OK) rc = reader_prepare(r, chunk_get_sql, &r->chunk_get, err);
    if (rc == RAGD_OK)
        rc = reader_prepare(r, s->counts ? counts_read_sql : stats_sql, &r->stats, err);
    if (rc == RAGD_OK) rc = reader_prepare(r, "BEGIN", &r->begin, err);
    if (rc == RAGD_OK) rc = reader_prepare(r, "COMMIT", &r->commit, err);
    /* without it (no FTS5), FTS5's own bm25() ranks */
    if (rc == RAGD_OK && s->fts) r->fts_own = store_fts_rank_register(r->db) == 0;
    if (rc != RAGD_OK) {
        reader_close(r);
        return rc;
    }
    *out = r;
    return RAGD_OK;
}

/* The calling thread's held reader (store_db_reader_hold) and the store it reads; NULL when none.
 * reader_acquire hands it out for that store, reader_release keeps it, and reader_begin /
 * reader_commit leave its transaction to the hold. */
static _Thread_local store_db *held_db;
static _Thread_local store_reader *held_reader;

/* Returns: an idle reader or a new one (the thread's held one for s, if any); give it back with
 * reader_release. */
static ragd_rc reader_acquire(store_db *s, store_reader **out, ragd_err *err)
{
    if (held_reader != NULL && held_db == s) {
        *out = held_reader;
        return RAGD_OK;
    }
    store_reader *r = NULL;
    pthread_mutex_lock(&s->pool_mutex);
    if (s->idle_count > 0) r = s->idle[--s->idle_count];
    pthread_mutex_unlock(&s->pool_mutex);
    if (r != NULL) {
        *out = r;
        return RAGD_OK;
    }
    return reader_open(s, out, err);
}

static void reader_release(store_db *s, store_reader *r)
{
    if (r == held_reader) return; /* the hold's, until store_db_reader_release */
    /* A failed call may have left its read transaction open: end it so the connection does not
     * pin an old snapshot (and the WAL) while it sits in the pool. */
    if (!sqlite3_get_autocommit(r->db)) sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
    pthread_mutex_lock(&s->pool_mutex);
    if (s->idle_count < RAGD_STORE_READERS_MAX) {
        s->idle[s->idle_count++] = r;
        r = NULL;
    }
    pthread_mutex_unlock(&s->pool_mutex);
    reader_close(r);
}

static ragd_rc reader_step_simple(store_reader *r, sqlite3_stmt *st, const char *what,
                                  ragd_err *err)
{
    int code = sqlite3_step(st);
    sqlite3_reset(st);
    if (code != SQLITE_DONE) return db_fail(r->db, code, what, err);
    return RAGD_OK;
}

/* Opens r's read transaction for one read call; the held reader is in the hold's already. */
static ragd_rc reader_begin(store_reader *r, const char *what, ragd_err *err)
{
    return r == held_reader ? RAGD_OK : reader_step_simple(r, r->begin, what, err);
}

/* Ends the read transaction reader_begin opened; the hold's stays open. */
static ragd_rc reader_commit(store_reader *r, const char *what, ragd_err *err)
{
    return r == held_reader ? RAGD_OK : reader_step_simple(r, r->commit, what, err);
}

int store_db_reader_hold(store_db *s)
{
    if (s == NULL || held_reader != NULL) return 0;
    store_reader *r = NULL;
    ragd_err local = {0};
    if (reader_acquire(s, &r, &local) != RAGD_OK) return 0;
    if (reader_step_simple(r, r->begin, "hold reader: begin", &local) != RAGD_OK) {
        reader_release(s, r);
        return 0;
    }
    held_db = s;
    held_reader = r;
    return 1;
}

void store_db_reader_release(store_db *s)
{
    store_reader *r = held_reader;
    if (r == NULL || held_db != s) return;
    held_reader = NULL;
    held_db = NULL;
    ragd_err local = {0};
    reader_step_simple(r, r->commit, "release reader: commit", &local); /* else rolled back: */
    reader_release(s, r);                                              /* only reads in it */
}

/* ----- transactions and generation ------------------------------------------------------------ */

ragd_rc store_db_begin(store_db *s, ragd_err *err)
{
    ragd_rc rc = need_writable(s, "begin transaction", err);
    if (rc != RAGD_OK) return rc;
    s->fts_lo = s->fts_hi = 0;
    return writer_simple(s, RAGD_STMT_BEGIN, "begin transaction", err);
}

/* Adds the keyword index rows of the chunks inserted since the last flush, in one statement.
 * Returns: RAGD_OK or the SQLite error (the transaction is then to be rolled back). */
static ragd_rc fts_pending_flush(store_db *s, ragd_err *err)
{
    if (s->fts_lo == 0) return RAGD_OK;
    sqlite3_stmt *st = NULL;
    ragd_rc rc = writer_stmt(s, RAGD_STMT_FTS_ADD, &st, err);
    if (rc != RAGD_OK) return rc;
    sqlite3_bind_int64(st, 1, s->fts_lo);
    sqlite3_bind_int64(st, 2, s->fts_hi);
    rc = stmt_run(s, st, "index chunks for keyword search", err);
    if (rc == RAGD_OK) s->fts_lo = s->fts_hi = 0;
    return rc;
}

/* Notes chunk id (just inserted) for the keyword index. chunks.id is AUTOINCREMENT: ids only
 * grow and are never reused, so every chunk row in [fts_lo, fts_hi] was inserted by this
 * transaction; an id below the range (never, but cheap to honour) flushes the range first. */
static ragd_rc fts_pending_add(store_db *s, int64_t id, ragd_err *err)
{
    if (!s->fts) return RAGD_OK;
    if (s->fts_lo != 0 && id < s->fts_hi) {
        ragd_rc rc = fts_pending_flush(s, err);
        if (rc != RAGD_OK) return rc;
    }
    if (s->fts_lo == 0) s->fts_lo = id;
    s->fts_hi = id;
    /* outside a transaction the insert committed on its own: so does its index row */
    return sqlite3_get_autocommit(s->writer) ? fts_pending_flush(s, err) : RAGD_OK;
}

/* Indexes the pending chunks (fts_pending_flush) when a statement about to delete chunks or change
 * a title may touch one of them: the keyword index's triggers tell FTS5 to forget exactly what it
 * indexed (see fts_sql), and telling it to forget a row it never had corrupts the index. The
 * document is doc_id, or (doc_id < 0) the one at collection and path; both NULL: any document.
 * A flush costs an FTS5 segment, so it happens only when the document has pending chunks (the
 * same file twice in one batch). Returns: RAGD_OK or the SQLite error. */
static ragd_rc fts_pending_settle(store_db *s, int64_t doc_id, const char *collection,
                                  const char *path, ragd_err *err)
{
    if (s->fts_lo == 0) return RAGD_OK;
    if (doc_id >= 0 || path != NULL) {
        sqlite3_stmt *st = NULL;
        ragd_rc rc = writer_stmt(s, RAGD_STMT_FTS_PENDING_DOC, &st, err);
        if (rc != RAGD_OK) return rc;
        sqlite3_bind_int64(st, 1, s->fts_lo);
        if (doc_id >= 0) sqlite3_bind_int64(st, 2, doc_id);
        else sqlite3_bind_null(st, 2);
        sqlite3_bind_text(st, 3, collection, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, path, -1, SQLITE_STATIC);
        int code = sqlite3_step(st);
        int pending = code == SQLITE_ROW && sqlite3_column_int(st, 0) != 0;
        rc = code == SQLITE_ROW ? RAGD_OK
                                : db_fail(s->writer, code, "index chunks for keyword search", err);
        stmt_done(st);
        if (rc != RAGD_OK || !pending) return rc;
    }
    return fts_pending_flush(s, err);
}

ragd_rc store_db_commit(store_db *s, ragd_err *err)
{
    ragd_rc rc = fts_pending_flush(s, err);
    if (rc != RAGD_OK) return rc;
    return writer_simple(s, RAGD_STMT_COMMIT, "commit", err);
}

ragd_rc store_db_read_begin(store_db *s, int *owned, ragd_err *err)
{
    return tx_open_with(s, RAGD_STMT_BEGIN_READ, owned, err);
}

void store_db_read_end(store_db *s, int owned)
{
    if (s == NULL) return;
    /* A transaction that only read: COMMIT releases its snapshot (ROLLBACK when that fails). */
    ragd_err local = {0};
    tx_close(s, owned, RAGD_OK, &local);
}

void store_db_rollback(store_db *s)
{
    if (s == NULL) return;
    s->fts_lo = s->fts_hi = 0;
    if (sqlite3_get_autocommit(s->writer)) return;
    /* Statements still holding rows would make ROLLBACK fail with SQLITE_BUSY on old SQLite
     * versions; cached statements are always reset after use, so this is just a guard. */
    for (int i = 0; i < RAGD_STMT_COUNT; i++)
        if (s->stmts[i] != NULL) sqlite3_reset(s->stmts[i]);
    ragd_err local = {0};
    if (writer_simple(s, RAGD_STMT_ROLLBACK, "rollback", &local) != RAGD_OK)
        RAGD_LOG(RAGD_LOG_ERROR, "store", "%s", local.msg);
}

ragd_rc store_db_generation_get(store_db *s, uint64_t *out, ragd_err *err)
{
    char *text = NULL;
    ragd_rc rc = meta_get(s, "generation", &text, err);
    if (rc != RAGD_OK) return rc;
    *out = text != NULL ? strtoull(text, NULL, 10) : 0;
    free(text);
    return RAGD_OK;
}

ragd_rc store_db_generation_bump(store_db *s, uint64_t *out_new, ragd_err *err)
{
    ragd_rc rc = need_writable(s, "bump generation", err);
    if (rc != RAGD_OK) return rc;
    sqlite3_stmt *st = NULL;
    ragd_rc prep = writer_stmt(s, RAGD_STMT_GENERATION_BUMP, &st, err);
    if (prep != RAGD_OK) return prep;
    int code = sqlite3_step(st);
    uint64_t value = 0;
    if (code == SQLITE_ROW) {
        value = (uint64_t)sqlite3_column_int64(st, 0);
        code = sqlite3_step(st);
    }
    rc = code == SQLITE_DONE ? RAGD_OK : db_fail(s->writer, code, "bump generation", err);
    stmt_done(st);
    if (rc == RAGD_OK && out_new != NULL) *out_new = value;
    return rc;
}

ragd_rc store_db_sync(store_db *s, ragd_err *err)
{
    ragd_rc rc = need_writable(s, "sync", err);
    if (rc != RAGD_OK) return rc;
    /* A commit under synchronous=FULL fsyncs the WAL, and with it every earlier commit. */
    rc = db_exec(s->writer, "PRAGMA synchronous = FULL", "sync", err);
    if (rc == RAGD_OK)
        rc = db_exec(s->writer,
                     "BEGIN IMMEDIATE; INSERT OR REPLACE INTO meta(key, value) "
                     "VALUES ('synced_at', CAST(strftime('%s','now') AS TEXT)); COMMIT",
                     "sync", err);
    if (rc != RAGD_OK) store_db_rollback(s);
    ragd_rc back = db_exec(s->writer, "PRAGMA synchronous = NORMAL", "sync", err);
    return rc != RAGD_OK ? rc : back;
}

ragd_rc store_db_wal_truncate(store_db *s, ragd_err *err)
{
    ragd_rc rc = need_writable(s, "truncate the WAL", err);
    if (rc != RAGD_OK) return rc;
    int busy = 0, log = 0, done = 0;
    int code = sqlite3_wal_checkpoint_v2(s->writer, "main", SQLITE_CHECKPOINT_TRUNCATE, &log,
                                         &done);
    busy = code == SQLITE_BUSY;
    if (code != SQLITE_OK && !busy) return db_fail(s->writer, code, "truncate the WAL", err);
    if (busy)
        return ragd_err_set(err, RAGD_ERR_STORE, "truncate the WAL: readers in the way (%d of %d "
                            "frames checkpointed)", done, log);
    return RAGD_OK;
}

/* ----- model ---------------------------------------------------------------------------------- */

static ragd_rc has_chunks(store_db *s, int *out, ragd_err *err)
{
    sqlite3_stmt *st = NULL;
    ragd_rc prep = writer_stmt(s, RAGD_STMT_HAS_CHUNKS, &st, err);
    if (prep != RAGD_OK) return prep;
    int code = sqlite3_step(st);
    ragd_rc rc = RAGD_OK;
    if (code == SQLITE_ROW) *out = sqlite3_column_int(st, 0) != 0;
    else rc = db_fail(s->writer, code, "count chunks", err);
    stmt_done(st);
    return rc;
}

ragd_rc store_db_model_check(store_db *s, const char *model, int dims, ragd_err *err)
{
    if (model == NULL || model[0] == '\0' || dims <= 0)
        return ragd_err_set(err, RAGD_ERR_INVALID, "model check: a model name and dims > 0 "
                                                   "are required");
    int owned = 0;
    ragd_rc rc = s->readonly ? RAGD_OK : tx_open(s, &owned, err);
    if (rc != RAGD_OK) return rc;
    char *stored_model = NULL, *stored_dims = NULL;
    int chunks = 0;
    rc = meta_get(s, "embed_model", &stored_model, err);
    if (rc == RAGD_OK) rc = meta_get(s, "embed_dims", &stored_dims, err);
    if (rc == RAGD_OK) rc = has_chunks(s, &chunks, err);
    if (rc == RAGD_OK) {
        int absent = stored_model == NULL || stored_dims == NULL;
        long long old_dims = stored_dims != NULL ? strtoll(stored_dims, NULL, 10) : 0;
        int same = !absent && strcmp(stored_model, model) == 0 && old_dims == dims;
        if (!same && chunks && !absent) {
            rc = ragd_err_set(err, RAGD_ERR_MODEL_MISMATCH,
                              "store %s was built with embedding model '%s' (%lld dims) but '%s' "
                              "(%d dims) is configured; re-index with `ragd ingest --reset "
                              "--path <docs>` or use another data_dir",
                              s->data_dir, stored_model, old_dims, model, dims);
        } else if (!same && !s->readonly) {
            char dims_text[32];
            snprintf(dims_text, sizeof dims_text, "%d", dims);
            rc = meta_put(s, "embed_model", model, err);
            if (rc == RAGD_OK) rc = meta_put(s, "embed_dims", dims_text, err);
        }
    }
    free(stored_model);
    free(stored_dims);
    return tx_close(s, owned, rc, err);
}

/* ----- documents ------------------------------------------------------------------------------ */

/* Returns: a new copy of a text column ("" for NULL), or NULL on OOM. */
static char *column_dup(sqlite3_stmt *st, int col)
{
    const unsigned char *text = sqlite3_column_text(st, col);
    if (text == NULL) return strdup("");
    return util_strndup((const char *)text, (size_t)sqlite3_column_bytes(st, col));
}

ragd_rc store_db_doc_find(store_db *s, const char *path, store_doc *out, int *found, ragd_err *err)
{
    return store_db_doc_find_in(s, NULL, path, out, found, err);
}

ragd_rc store_db_doc_find_in(store_db *s, const char *collection, const char *path,
                             store_doc *out, int *found, ragd_err *err)
{
    if (path == NULL) return ragd_err_set(err, RAGD_ERR_INVALID, "find document: no path");
    sqlite3_stmt *st = NULL;
    ragd_rc prep = writer_stmt(s, RAGD_STMT_DOC_FIND, &st, err);
    if (prep != RAGD_OK) return prep;
    sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, collection ? collection : RAGD_COLLECTION_DEFAULT, -1,
                      SQLITE_STATIC);
    ragd_rc rc = RAGD_OK;
    store_doc doc = {0};
    int code = sqlite3_step(st);
    if (code == SQLITE_ROW) {
        doc.id = sqlite3_column_int64(st, 0);
        doc.path = column_dup(st, 1);
        doc.source = column_dup(st, 2);
        doc.title = column_dup(st, 3);
        doc.checksum = column_dup(st, 4);
        doc.size = sqlite3_column_int64(st, 5);
        doc.mtime = sqlite3_column_int64(st, 6);
        doc.tags_json = column_dup(st, 7);
        doc.metadata_json = column_dup(st, 8);
        doc.collection = column_dup(st, 9);
        if (!doc.path || !doc.source || !doc.title || !doc.checksum || !doc.tags_json ||
            !doc.metadata_json || !doc.collection)
            rc = ragd_err_set(err, RAGD_ERR_NOMEM, "find document: out of memory");
    } else if (code != SQLITE_DONE) {
        rc = db_fail(s->writer, code, "find document", err);
    }
    stmt_done(st);
    if (rc != RAGD_OK) {
        store_doc_free(&doc);
        return rc;
    }
    *found = code == SQLITE_ROW;
    if (*found) *out = doc;
    return RAGD_OK;
}

static const char *or_default(const char *s, const char *fallback)
{
    return s != NULL ? s : fallback;
}

ragd_rc store_db_doc_put(store_db *s, const store_doc *doc, int64_t *id, ragd_err *err)
{
    ragd_rc rc = need_writable(s, "store document", err);
    if (rc != RAGD_OK) return rc;
    if (doc == NULL || doc->path == NULL)
        return ragd_err_set(err, RAGD_ERR_INVALID, "store document: no path");
    const char *collection = or_default(doc->collection, RAGD_COLLECTION_DEFAULT);
    rc = fts_pending_settle(s, -1, collection, doc->path, err); /* the title may change */
    if (rc != RAGD_OK) return rc;
    sqlite3_stmt *st = NULL;
    ragd_rc prep = writer_stmt(s, RAGD_STMT_DOC_PUT, &st, err);
    if (prep != RAGD_OK) return prep;
    sqlite3_bind_text(st, 1, doc->path, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, or_default(doc->source, doc->path), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, or_default(doc->title, ""), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, or_default(doc->checksum, ""), -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, doc->size);
    sqlite3_bind_int64(st, 6, doc->mtime);
    sqlite3_bind_text(st, 7, or_default(doc->tags_json, "[]"), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 8, or_default(doc->metadata_json, "{}"), -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 9, util_unix_time());
    sqlite3_bind_text(st, 10, collection, -1, SQLITE_STATIC);
    int64_t new_id = 0;
    int code = sqlite3_step(st);
    if (code == SQLITE_ROW) {
        new_id = sqlite3_column_int64(st, 0);
        code = sqlite3_step(st);
    }
    rc = code == SQLITE_DONE ? RAGD_OK : db_fail(s->writer, code, "store document", err);
    stmt_done(st);
    if (rc == RAGD_OK && id != NULL) *id = new_id;
    return rc;
}

/* Steps st (a writer statement, bound) to its end, collecting each row's first column. Returns:
 * RAGD_OK with *ids (new, free(); NULL when no row) and *n, or an error naming what (nothing
 * returned). The caller resets or finalizes st. */
static ragd_rc ids_collect(store_db *s, sqlite3_stmt *st, const char *what, int64_t **ids,
                           size_t *n, ragd_err *err)
{
    int64_t *list = NULL;
    size_t count = 0, cap = 0;
    ragd_rc rc = RAGD_OK;
    int code;
    while ((code = sqlite3_step(st)) == SQLITE_ROW) {
        if (count == cap) {
            size_t next = cap ? cap * 2 : 64;
            int64_t *grown = realloc(list, next * sizeof *grown);
            if (grown == NULL) {
                rc = ragd_err_set(err, RAGD_ERR_NOMEM, "%s: out of memory", what);
                break;
            }
            list = grown;
            cap = next;
        }
        list[count++] = sqlite3_column_int64(st, 0);
    }
    if (rc == RAGD_OK && code != SQLITE_DONE) rc = db_fail(s->writer, code, what, err);
    if (rc != RAGD_OK) {
        free(list);
        return rc;
    }
    *ids = list;
    *n = count;
    return RAGD_OK;
}

ragd_rc store_db_doc_chunk_ids(store_db *s, int64_t doc_id, int64_t **ids, size_t *n,
                               ragd_err *err)
{
    sqlite3_stmt *st = NULL;
    ragd_rc prep = writer_stmt(s, RAGD_STMT_DOC_CHUNK_IDS, &st, err);
    if (prep != RAGD_OK) return prep;
    sqlite3_bind_int64(st, 1, doc_id);
    ragd_rc rc = ids_collect(s, st, "list chunks", ids, n, err);
    stmt_done(st);
    return rc;
}

ragd_rc store_db_doc_chunks_delete(store_db *s, int64_t doc_id, ragd_err *err)
{
    ragd_rc rc = need_writable(s, "delete chunks", err);
    if (rc == RAGD_OK) rc = fts_pending_settle(s, doc_id, NULL, NULL, err);
    if (rc != RAGD_OK) return rc;
    sqlite3_stmt *st = NULL;
    ragd_rc prep = writer_stmt(s, RAGD_STMT_DOC_CHUNKS_DELETE, &st, err);
    if (prep != RAGD_OK) return prep;
    sqlite3_bind_int64(st, 1, doc_id);
    return stmt_run(s, st, "delete chunks", err);
}

ragd_rc store_db_doc_delete(store_db *s, int64_t doc_id, ragd_err *err)
{
    ragd_rc rc = need_writable(s, "delete document", err);
    if (rc == RAGD_OK) rc = fts_pending_settle(s, doc_id, NULL, NULL, err);
    if (rc != RAGD_OK) return rc;
    sqlite3_stmt *st = NULL;
    ragd_rc prep = writer_stmt(s, RAGD_STMT_DOC_DELETE, &st, err);
    if (prep != RAGD_OK) return prep;
    sqlite3_bind_int64(st, 1, doc_id);
    /* chunks go with it: the keyword index's trigger (fts_sql) or ON DELETE CASCADE */
    return stmt_run(s, st, "delete document", err);
}

ragd_rc store_db_doc_list_prefix(store_db *s, const char *prefix, int64_t **ids, char ***paths,
                                 size_t *n, ragd_err *err)
{
    return store_db_doc_list_prefix_in(s, NULL, prefix, ids, paths, n, err);
}

ragd_rc store_db_doc_list_prefix_in(store_db *s, const char *collection, const char *prefix,
                                    int64_t **ids, char ***paths, size_t *n, ragd_err *err)
{
    sqlite3_stmt *st = NULL;
    ragd_rc prep = writer_stmt(s, RAGD_STMT_DOC_LIST_PREFIX, &st, err);
    if (prep != RAGD_OK) return prep;
    sqlite3_bind_text(st, 1, prefix != NULL ? prefix : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, collection ? collection : RAGD_COLLECTION_DEFAULT, -1,
                      SQLITE_STATIC);
    int64_t *id_list = NULL;
    char **path_list = NULL;
    size_t count = 0, cap = 0;
    ragd_rc rc = RAGD_OK;
    int code;
    while ((code = sqlite3_step(st)) == SQLITE_ROW) {
        if (count == cap) {
            size_t next = cap ? cap * 2 : 16;
            int64_t *grown_ids = realloc(id_list, next * sizeof *grown_ids);
            if (grown_ids != NULL) id_list = grown_ids;
            char **grown_paths = grown_ids ? realloc(path_list, next * sizeof *grown_paths) : NULL;
            if (grown_paths == NULL) {
                rc = ragd_err_set(err, RAGD_ERR_NOMEM, "list documents: out of memory");
                break;
            }
            path_list = grown_paths;
            cap = next;
        }
        char *path = column_dup(st, 1);
        if (path == NULL) {
            rc = ragd_err_set(err, RAGD_ERR_NOMEM, "list documents: out of memory");
            break;
        }
        id_list[count] = sqlite3_column_int64(st, 0);
        path_list[count++] = path;
    }
    if (rc == RAGD_OK && code != SQLITE_DONE) rc = db_fail(s->writer, code, "list documents", err);
    stmt_done(st);
    if (rc != RAGD_OK) {
        for (size_t i = 0; i < count; i++) free(path_list[i]);
        free(path_list);
        free(id_list);
        return rc;
    }
    *ids = id_list;
    *paths = path_list;
    *n = count;
    return RAGD_OK;
}

/* ----- chunks and embeddings ------------------------------------------------------------------ */

ragd_rc store_db_chunk_put(store_db *s, int64_t doc_id, const store_chunk_in *c, int64_t *id,
                           ragd_err *err)
{
    ragd_rc rc = need_writable(s, "insert chunk", err);
    if (rc != RAGD_OK) return rc;
    if (c == NULL || c->text == NULL || c->checksum == NULL)
        return ragd_err_set(err, RAGD_ERR_INVALID, "insert chunk: text and checksum are required");
    sqlite3_stmt *st = NULL;
    ragd_rc prep = writer_stmt(s, RAGD_STMT_CHUNK_PUT, &st, err);
    if (prep != RAGD_OK) return prep;
    sqlite3_bind_int64(st, 1, doc_id);
    sqlite3_bind_int(st, 2, c->ordinal);
    sqlite3_bind_text64(st, 3, c->text, c->text_len, SQLITE_STATIC, SQLITE_UTF8);
    sqlite3_bind_text(st, 4, or_default(c->heading, ""), -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, c->tokens);
    sqlite3_bind_int64(st, 6, c->char_start);
    sqlite3_bind_int64(st, 7, c->char_end);
    sqlite3_bind_text(st, 8, c->checksum, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 9, c->page);
    rc = stmt_run(s, st, "insert chunk", err);
    int64_t rowid = sqlite3_last_insert_rowid(s->writer);
    if (rc == RAGD_OK) rc = fts_pending_add(s, rowid, err);
    if (rc == RAGD_OK && id != NULL) *id = rowid;
    return rc;
}

static ragd_rc embedding_corrupt(const char *checksum, const char *model, int bytes, int dims,
                                 ragd_err *err)
{
    return ragd_err_set(err, RAGD_ERR_STORE,
                        "corrupt embedding for chunk checksum %s, model '%s': %d bytes, "
                        "expected %d (%d dims)",
                        checksum, model, bytes, dims * 4, dims);
}

/* embedding_get of a row without vector bytes: recomputed from a chunk with that checksum.
 * Returns: RAGD_OK and *found 1 (out filled), or *found RAGD_EMBEDDING_UNSTORED when no chunk
 * holds the checksum any more (a row kept by a reset or an interrupted ingest: its caller has
 * the text and recomputes it, the same work). */
static ragd_rc embedding_recompute_get(store_db *s, const char *checksum, const char *model,
                                       int dims, float *out, int *found, ragd_err *err)
{
    sqlite3_stmt *st = NULL;
    ragd_rc rc = writer_stmt(s, RAGD_STMT_CHUNK_INPUT, &st, err);
    if (rc != RAGD_OK) return rc;
    sqlite3_bind_text(st, 1, checksum, -1, SQLITE_STATIC);
    int code = sqlite3_step(st);
    *found = RAGD_EMBEDDING_UNSTORED;
    if (code == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text(st, 1);
        size_t len = (size_t)sqlite3_column_bytes(st, 1);
        rc = embed_chunk_recompute(model, dims, checksum,
                                   (const char *)sqlite3_column_text(st, 0), text, len, out, err);
        if (rc == RAGD_OK) *found = 1;
    } else if (code != SQLITE_DONE) {
        rc = db_fail(s->writer, code, "read embedding", err);
    }
    stmt_done(st);
    return rc;
}

ragd_rc store_db_embedding_get(store_db *s, const char *checksum, const char *model, int dims,
                               float *out, int *found, ragd_err *err)
{
    if (checksum == NULL || model == NULL || dims <= 0)
        return ragd_err_set(err, RAGD_ERR_INVALID, "read embedding: bad arguments");
    sqlite3_stmt *st = NULL;
    ragd_rc prep = writer_stmt(s, RAGD_STMT_EMBEDDING_GET, &st, err);
    if (prep != RAGD_OK) return prep;
    sqlite3_bind_text(st, 1, checksum, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, model, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, dims);
    ragd_rc rc = RAGD_OK;
    int code = sqlite3_step(st);
    int hit = 0;
    if (code == SQLITE_ROW && out == NULL) { /* known: the caller computes the vector */
        hit = sqlite3_column_type(st, 0) == SQLITE_BLOB && sqlite3_column_bytes(st, 0) == 0
                  ? RAGD_EMBEDDING_UNSTORED
                  : 1;
    } else if (code == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_BLOB &&
               sqlite3_column_bytes(st, 0) == 0) {
        stmt_done(st);
        rc = embedding_recompute_get(s, checksum, model, dims, out, &hit, err);
        if (rc == RAGD_OK) *found = hit;
        return rc;
    } else if (code == SQLITE_ROW) {
        const void *blob = sqlite3_column_blob(st, 0);
        int bytes = sqlite3_column_bytes(st, 0);
        if (blob == NULL || (int64_t)bytes != (int64_t)dims * 4) {
            rc = embedding_corrupt(checksum, model, bytes, dims, err);
        } else {
            vector_decode(blob, dims, out);
            hit = 1;
        }
    } else if (code != SQLITE_DONE) {
        rc = db_fail(s->writer, code, "read embedding", err);
    }
    stmt_done(st);
    if (rc == RAGD_OK) *found = hit;
    return rc;
}

ragd_rc store_db_embedding_put(store_db *s, const char *checksum, const char *model, int dims,
                               const float *vec, ragd_err *err)
{
    ragd_rc rc = need_writable(s, "store embedding", err);
    if (rc != RAGD_OK) return rc;
    if (checksum == NULL || model == NULL || dims <= 0 || vec == NULL)
        return ragd_err_set(err, RAGD_ERR_INVALID, "store embedding: bad arguments");
    sqlite3_stmt *st = NULL;
    ragd_rc prep = writer_stmt(s, RAGD_STMT_EMBEDDING_PUT, &st, err);
    if (prep != RAGD_OK) return prep;
    void *scratch = NULL;
    sqlite3_bind_text(st, 1, checksum, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, model, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, dims);
    /* A recomputable model's row keeps its key (counts, dedupe, pruning) but no bytes: its
     * vector is a function of the chunk's text (embed_chunk_recompute); not writing 4 KiB a
     * chunk was ingest CPU x0.86 (bench/NOTES.md, session 4 part D). */
    int code = embed_recompute_for(model) != NULL ? sqlite3_bind_zeroblob(st, 4, 0)
                                                  : vector_bind(st, 4, vec, dims, &scratch);
    sqlite3_bind_int64(st, 5, util_unix_time());
    if (code != SQLITE_OK) {
        stmt_done(st);
        free(scratch);
        return db_fail(s->writer, code, "store embedding", err);
    }
    rc = stmt_run(s, st, "store embedding", err);
    free(scratch);
    return rc;
}

ragd_rc store_db_vectors_each(store_db *s, const char *model, int dims, store_vector_fn fn,
                              void *ctx, size_t *missing, ragd_err *err)
{
    if (model == NULL || dims <= 0 || fn == NULL)
        return ragd_err_set(err, RAGD_ERR_INVALID, "read vectors: bad arguments");
    float *vec = malloc((size_t)dims * sizeof *vec);
    if (vec == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "read vectors: out of memory");
    sqlite3_stmt *st = NULL;
    ragd_rc rc = writer_stmt(s, RAGD_STMT_VECTORS_EACH, &st, err);
    if (rc != RAGD_OK) {
        free(vec);
        return rc;
    }
    sqlite3_bind_text(st, 1, model, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, dims);
    size_t absent = 0;
    int code;
    while ((code = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t chunk_id = sqlite3_column_int64(st, 0);
        if (sqlite3_column_type(st, 2) == SQLITE_NULL) {
            absent++;
            continue;
        }
        const void *blob = sqlite3_column_blob(st, 2);
        int bytes = sqlite3_column_bytes(st, 2);
        if (bytes == 0) {
            const char *text = (const char *)sqlite3_column_text(st, 4);
            size_t len = (size_t)sqlite3_column_bytes(st, 4);
            rc = embed_chunk_recompute(model, dims, (const char *)sqlite3_column_text(st, 1),
                                       (const char *)sqlite3_column_text(st, 3), text, len, vec,
                                       err);
            if (rc != RAGD_OK) break;
        } else if (blob == NULL || (int64_t)bytes != (int64_t)dims * 4) {
            rc = embedding_corrupt((const char *)sqlite3_column_text(st, 1), model, bytes, dims,
                                   err);
            break;
        } else {
            vector_decode(blob, dims, vec);
        }
        if (fn(ctx, chunk_id, vec, dims) != 0) {
            rc = ragd_err_set(err, RAGD_ERR_INTERNAL, "read vectors: stopped at chunk %lld",
                              (long long)chunk_id);
            break;
        }
    }
    if (rc == RAGD_OK && code != SQLITE_DONE) rc = db_fail(s->writer, code, "read vectors", err);
    stmt_done(st);
    free(vec);
    if (rc == RAGD_OK && missing != NULL) *missing = absent;
    return rc;
}

/* ----- reads from any thread ------------------------------------------------------------------ */

/* Fills h from the current row of the chunk_get statement. Returns: 0, or -1 on OOM (h freed). */
static int hit_fill(sqlite3_stmt *st, store_hit *h)
{
    h->chunk_id = sqlite3_column_int64(st, 0);
    h->document_id = sqlite3_column_int64(st, 1);
    h->ordinal = sqlite3_column_int(st, 2);
    h->text = column_dup(st, 3);
    h->heading = column_dup(st, 4);
    h->tokens = sqlite3_column_int64(st, 5);
    h->char_start = sqlite3_column_int64(st, 6);
    h->char_end = sqlite3_column_int64(st, 7);
    h->source = column_dup(st, 8);
    h->title = column_dup(st, 9);
    h->path = column_dup(st, 10);
    h->tags_json = column_dup(st, 11);
    h->metadata_json = column_dup(st, 12);
    h->page = sqlite3_column_int(st, 13);
    h->collection = column_dup(st, 14);
    h->checksum = column_dup(st, 15);
    if (!h->text || !h->heading || !h->source || !h->title || !h->path || !h->tags_json ||
        !h->metadata_json || !h->collection || !h->checksum) {
        store_hit_free(h);
        return -1;
    }
    return 0;
}

ragd_rc store_db_chunk_tokens(store_db *s, const int64_t *ids, size_t n, int64_t *tokens,
                              ragd_err *err)
{
    if (n == 0) return RAGD_OK;
    /* Token counts never change for an id (src/store_chunk_tokens.c): the ones read before come
     * from memory, and no read transaction is opened when all of them do. */
    size_t missing = 0;
    for (size_t i = 0; i < n; i++) {
        tokens[i] = store_chunk_tokens_cache_get(s->tokens, ids[i]);
        missing += tokens[i] < 0;
    }
    if (missing == 0) return RAGD_OK;
    store_reader *r = NULL;
    ragd_rc rc = reader_acquire(s, &r, err);
    if (rc != RAGD_OK) return rc;
    if (r->chunk_tokens == NULL)
        rc = reader_prepare(r, "SELECT tokens FROM chunks WHERE id = ?1", &r->chunk_tokens, err);
    if (rc == RAGD_OK) rc = reader_begin(r, "read chunk tokens: begin", err);
    for (size_t i = 0; rc == RAGD_OK && i < n; i++) {
        if (tokens[i] >= 0) continue;
        sqlite3_bind_int64(r->chunk_tokens, 1, ids[i]);
        int code = sqlite3_step(r->chunk_tokens);
        tokens[i] = code == SQLITE_ROW ? sqlite3_column_int64(r->chunk_tokens, 0) : 0;
        if (code == SQLITE_ROW) store_chunk_tokens_cache_put(s->tokens, ids[i], tokens[i]);
        if (code != SQLITE_ROW && code != SQLITE_DONE)
            rc = db_fail(r->db, code, "read chunk tokens", err);
        sqlite3_reset(r->chunk_tokens);
    }
    if (rc == RAGD_OK) rc = reader_commit(r, "read chunk tokens: commit", err);
    reader_release(s, r);
    return rc;
}

ragd_rc store_db_chunks_get(store_db *s, const int64_t *ids, size_t n, store_hit *out,
                            ragd_err *err)
{
    if (n == 0) return RAGD_OK;
    if (ids == NULL || out == NULL)
        return ragd_err_set(err, RAGD_ERR_INVALID, "read chunks: ids and out are required");
    store_hit *hits = calloc(n, sizeof *hits);
    if (hits == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "read chunks: out of memory");
    store_reader *r = NULL;
    ragd_rc rc = reader_acquire(s, &r, err);
    if (rc != RAGD_OK) {
        free(hits);
        return rc;
    }
    /* One read transaction: every row comes from the same snapshot even while the writer
     * commits. */
    rc = reader_begin(r, "read chunks: begin", err);
    for (size_t i = 0; rc == RAGD_OK && i < n; i++) {
        sqlite3_bind_int64(r->chunk_get, 1, ids[i]);
        int code = sqlite3_step(r->chunk_get);
        if (code == SQLITE_ROW) {
            if (hit_fill(r->chunk_get, &hits[i]) != 0)
                rc = ragd_err_set(err, RAGD_ERR_NOMEM, "read chunks: out of memory");
        } else if (code != SQLITE_DONE) {
            rc = db_fail(r->db, code, "read chunks", err);
        }
        sqlite3_reset(r->chunk_get);
    }
    if (rc == RAGD_OK) rc = reader_commit(r, "read chunks: commit", err);
    reader_release(s, r);
    if (rc != RAGD_OK) {
        for (size_t i = 0; i < n; i++) store_hit_free(&hits[i]);
        free(hits);
        return rc;
    }
    memcpy(out, hits, n * sizeof *hits);
    free(hits);
    return RAGD_OK;
}

ragd_rc store_db_stats(store_db *s, int64_t *documents, int64_t *chunks, int64_t *embeddings,
                       ragd_err *err)
{
    store_reader *r = NULL;
    ragd_rc rc = reader_acquire(s, &r, err);
    if (rc != RAGD_OK) return rc;
    int64_t counts[3] = {0, 0, 0};
    rc = reader_begin(r, "read stats: begin", err);
    if (rc == RAGD_OK) {
        int code = sqlite3_step(r->stats);
        if (code == SQLITE_ROW)
            for (int i = 0; i < 3; i++) counts[i] = sqlite3_column_int64(r->stats, i);
        else rc = db_fail(r->db, code, "read stats", err);
        sqlite3_reset(r->stats);
    }
    if (rc == RAGD_OK) rc = reader_commit(r, "read stats: commit", err);
    reader_release(s, r);
    if (rc != RAGD_OK) return rc;
    if (documents != NULL) *documents = counts[0];
    if (chunks != NULL) *chunks = counts[1];
    if (embeddings != NULL) *embeddings = counts[2];
    return RAGD_OK;
}

/* ----- reset ---------------------------------------------------------------------------------- */

ragd_rc store_db_reset(store_db *s, ragd_err *err)
{
    ragd_rc rc = need_writable(s, "reset store", err);
    if (rc != RAGD_OK) return rc;
    int owned = 0;
    rc = tx_open(s, &owned, err);
    if (rc == RAGD_OK) rc = fts_pending_settle(s, -1, NULL, NULL, err);
    if (rc != RAGD_OK) return tx_close(s, owned, rc, err);
    /* sqlite_sequence is kept: AUTOINCREMENT then never hands out an old chunk id again, so a
     * stale vector index can never map an id to the wrong chunk. Embeddings are kept: they are
     * keyed by text, model and dims, so re-ingesting after a reset costs no embedding work;
     * store_db_embeddings_prune drops the ones no chunk uses. */
    rc = db_exec(s->writer,
                 "DELETE FROM chunks; DELETE FROM documents; "
                 "DELETE FROM meta WHERE key IN ('embed_model', 'embed_dims')",
                 "reset store", err);
    if (rc == RAGD_OK) rc = store_db_generation_bump(s, NULL, err);
    return tx_close(s, owned, rc, err);
}

ragd_rc store_db_embeddings_prune(store_db *s, const char *model, int dims, int64_t *removed,
                                  ragd_err *err)
{
    ragd_rc rc = need_writable(s, "prune embeddings", err);
    if (rc != RAGD_OK) return rc;
    sqlite3_stmt *st = NULL;
    int code = sqlite3_prepare_v2(s->writer,
                                  "DELETE FROM embeddings WHERE model <> ?1 OR dims <> ?2 OR "
                                  "checksum NOT IN (SELECT checksum FROM chunks)",
                                  -1, &st, NULL);
    if (code != SQLITE_OK) return db_fail(s->writer, code, "prune embeddings", err);
    sqlite3_bind_text(st, 1, model, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, dims);
    code = sqlite3_step(st);
    sqlite3_finalize(st);
    if (code != SQLITE_DONE) return db_fail(s->writer, code, "prune embeddings", err);
    if (removed) *removed = sqlite3_changes64(s->writer);
    return RAGD_OK;
}

/* ----- document listings (pushed documents) ----------------------------------------------------- */

ragd_rc store_db_doc_page(store_db *s, const char *prefix, int64_t offset, int64_t limit,
                          store_doc **docs, int64_t **chunk_counts, size_t *n, int64_t *total,
                          ragd_err *err)
{
    return store_db_doc_page_in(s, NULL, prefix, offset, limit, docs, chunk_counts, n, total,
                                err);
}

ragd_rc store_db_doc_page_in(store_db *s, const char *collection, const char *prefix,
                             int64_t offset, int64_t limit, store_doc **docs,
                             int64_t **chunk_counts, size_t *n, int64_t *total, ragd_err *err)
{
    if (collection == NULL) collection = RAGD_COLLECTION_DEFAULT;
    store_reader *r = NULL;
    ragd_rc rc = reader_acquire(s, &r, err);
    if (rc != RAGD_OK) return rc;
    sqlite3_stmt *count = NULL, *page = NULL;
    store_doc *list = NULL;
    int64_t *counts = NULL;
    size_t got = 0;
    int64_t all = 0;
    rc = reader_begin(r, "list documents: begin", err);
    int code = SQLITE_OK;
    if (rc == RAGD_OK) {
        code = sqlite3_prepare_v2(r->db, "SELECT count(*) FROM documents WHERE collection = ?2 "
                                  "AND path >= ?1 AND instr(path, ?1) = 1", -1, &count, NULL);
        if (code == SQLITE_OK)
            code = sqlite3_prepare_v2(
                r->db,
                "SELECT d.id, d.path, d.source, d.title, d.checksum, d.size, d.mtime, d.tags, "
                "d.metadata, (SELECT count(*) FROM chunks c WHERE c.document_id = d.id), "
                "d.collection FROM documents d WHERE d.collection = ?4 AND d.path >= ?1 "
                "AND instr(d.path, ?1) = 1 ORDER BY d.path LIMIT ?2 OFFSET ?3", -1, &page, NULL);
        if (code != SQLITE_OK) rc = db_fail(r->db, code, "list documents", err);
    }
    if (rc == RAGD_OK) {
        sqlite3_bind_text(count, 1, prefix, -1, SQLITE_STATIC);
        sqlite3_bind_text(count, 2, collection, -1, SQLITE_STATIC);
        if ((code = sqlite3_step(count)) == SQLITE_ROW)
            all = sqlite3_column_int64(count, 0);
        else
            rc = db_fail(r->db, code, "count documents", err);
    }
    if (rc == RAGD_OK && limit > 0) {
        list = calloc((size_t)limit, sizeof *list);
        counts = calloc((size_t)limit, sizeof *counts);
        if (list == NULL || counts == NULL)
            rc = ragd_err_set(err, RAGD_ERR_NOMEM, "list documents: out of memory");
    }
    if (rc == RAGD_OK && limit > 0) {
        sqlite3_bind_text(page, 1, prefix, -1, SQLITE_STATIC);
        sqlite3_bind_int64(page, 2, limit);
        sqlite3_bind_int64(page, 3, offset);
        sqlite3_bind_text(page, 4, collection, -1, SQLITE_STATIC);
        while (rc == RAGD_OK && (code = sqlite3_step(page)) == SQLITE_ROW && got < (size_t)limit) {
            store_doc *d = &list[got];
            d->id = sqlite3_column_int64(page, 0);
            d->path = column_dup(page, 1);
            d->source = column_dup(page, 2);
            d->title = column_dup(page, 3);
            d->checksum = column_dup(page, 4);
            d->size = sqlite3_column_int64(page, 5);
            d->mtime = sqlite3_column_int64(page, 6);
            d->tags_json = column_dup(page, 7);
            d->metadata_json = column_dup(page, 8);
            counts[got] = sqlite3_column_int64(page, 9);
            d->collection = column_dup(page, 10);
            got++;
            if (!d->path || !d->source || !d->title || !d->checksum || !d->tags_json ||
                !d->metadata_json || !d->collection)
                rc = ragd_err_set(err, RAGD_ERR_NOMEM, "list documents: out of memory");
        }
        if (rc == RAGD_OK && code != SQLITE_DONE && code != SQLITE_ROW)
            rc = db_fail(r->db, code, "list documents", err);
    }
    sqlite3_finalize(count);
    sqlite3_finalize(page);
    if (rc == RAGD_OK) rc = reader_commit(r, "list documents: commit", err);
    reader_release(s, r);
    if (rc != RAGD_OK) {
        store_doc_rows_free(list, got);
        free(counts);
        return rc;
    }
    *docs = list;
    *chunk_counts = counts;
    *n = got;
    *total = all;
    return RAGD_OK;
}

ragd_rc store_db_doc_chunks_read(store_db *s, int64_t doc_id, store_hit **hits, size_t *n,
                                 ragd_err *err)
{
    store_reader *r = NULL;
    ragd_rc rc = reader_acquire(s, &r, err);
    if (rc != RAGD_OK) return rc;
    sqlite3_stmt *ids = NULL;
    store_hit *list = NULL;
    size_t got = 0, cap = 0;
    rc = reader_begin(r, "read document chunks: begin", err);
    int code = SQLITE_OK;
    if (rc == RAGD_OK &&
        (code = sqlite3_prepare_v2(r->db, "SELECT id FROM chunks WHERE document_id = ?1 "
                                   "ORDER BY ordinal", -1, &ids, NULL)) != SQLITE_OK)
        rc = db_fail(r->db, code, "read document chunks", err);
    if (rc == RAGD_OK) sqlite3_bind_int64(ids, 1, doc_id);
    while (rc == RAGD_OK && (code = sqlite3_step(ids)) == SQLITE_ROW) {
        if (got == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            store_hit *grown = realloc(list, ncap * sizeof *grown);
            if (grown == NULL) {
                rc = ragd_err_set(err, RAGD_ERR_NOMEM, "read document chunks: out of memory");
                break;
            }
            list = grown;
            cap = ncap;
        }
        memset(&list[got], 0, sizeof list[got]);
        sqlite3_bind_int64(r->chunk_get, 1, sqlite3_column_int64(ids, 0));
        int c2 = sqlite3_step(r->chunk_get);
        if (c2 == SQLITE_ROW) {
            if (hit_fill(r->chunk_get, &list[got]) != 0)
                rc = ragd_err_set(err, RAGD_ERR_NOMEM, "read document chunks: out of memory");
            else
                got++;
        } else if (c2 != SQLITE_DONE) {
            rc = db_fail(r->db, c2, "read document chunks", err);
        }
        sqlite3_reset(r->chunk_get);
    }
    if (rc == RAGD_OK && code != SQLITE_DONE)
        rc = db_fail(r->db, code, "read document chunks", err);
    sqlite3_finalize(ids);
    if (rc == RAGD_OK) rc = reader_commit(r, "read document chunks: commit", err);
    reader_release(s, r);
    if (rc != RAGD_OK) {
        for (size_t i = 0; i < got; i++) store_hit_free(&list[i]);
        free(list);
        return rc;
    }
    *hits = list;
    *n = got;
    return RAGD_OK;
}

/* ----- keyword index (FTS5) ------------------------------------------------------------------- */

/* The keyword index: an FTS5 table over each chunk's document title, heading path and text, with
 * the porter stemmer over unicode61 (case folding, diacritics removed), so "configuring" matches
 * "configuration" much as the local embedder's stems do. The rowid is the chunk id. Inserted
 * chunks get their rows at the end of the very transaction that inserted them
 * (fts_pending_flush, one statement: FTS5 then writes one segment per transaction).
 *
 * It keeps no copy of the text (external content): FTS5 reads a row's columns, for snippets and
 * fts_row_terms, from the view ragd_fts_source over chunks and documents. The copy was 38% of
 * the bytes an ingest wrote and ~10% of its CPU (bench/NOTES.md, session 5 part D and session 6
 * part E). FTS5 then cannot find what to remove from the postings by itself: every delete must
 * be told the exact values it indexed, or the index is silently corrupt. Hence the triggers:
 *  - a chunk's delete (BEFORE: its document, so the title, is still there) tells FTS5 its
 *    heading, text and its document's title;
 *  - a document's delete first deletes its chunks itself (BEFORE: the title still there), which
 *    leaves nothing to ON DELETE CASCADE; a collection delete and the reset go through these;
 *  - a title change removes the chunks' rows with the old title and adds them with the new one
 *    (an UPDATE of an external-content table would remove them with the new one).
 * Each presumes the chunks it touches were indexed: store code indexes a transaction's pending
 * chunks before it deletes chunks or changes a title (fts_pending_settle). A store created before
 * schema 6 keeps its own-copy index and that layout's triggers (an AFTER DELETE on chunks and
 * RAGD_FTS_TITLE_TRIGGER); both layouts are read and written by the same statements. */
static const char fts_sql[] =
    "DROP TRIGGER IF EXISTS chunks_fts_delete;"
    "DROP TRIGGER IF EXISTS chunks_fts_title;"
    "DROP TRIGGER IF EXISTS chunks_fts_document_delete;"
    "DROP VIEW IF EXISTS ragd_fts_source;"
    /* the same columns as RAGD_STMT_FTS_ADD inserts */
    "CREATE VIEW ragd_fts_source(id, title, heading, text) AS SELECT c.id, coalesce(d.title, ''),"
    " c.heading, c.text FROM chunks c LEFT JOIN documents d ON d.id = c.document_id;"
    "CREATE VIRTUAL TABLE chunks_fts USING fts5(title, heading, text, "
    " tokenize = 'porter unicode61 remove_diacritics 2',"
    " content = 'ragd_fts_source', content_rowid = 'id');"
    "CREATE TRIGGER chunks_fts_delete BEFORE DELETE ON chunks BEGIN"
    " INSERT INTO chunks_fts(chunks_fts, rowid, title, heading, text) VALUES ('delete', old.id,"
    " coalesce((SELECT title FROM documents WHERE id = old.document_id), ''), old.heading,"
    " old.text); END;"
    "CREATE TRIGGER chunks_fts_document_delete BEFORE DELETE ON documents BEGIN"
    " DELETE FROM chunks WHERE document_id = old.id; END;"
    "CREATE TRIGGER chunks_fts_title AFTER UPDATE OF title ON documents"
    " WHEN old.title IS NOT new.title BEGIN"
    " INSERT INTO chunks_fts(chunks_fts, rowid, title, heading, text) SELECT 'delete', id,"
    " old.title, heading, text FROM chunks WHERE document_id = new.id;"
    " INSERT INTO chunks_fts(rowid, title, heading, text) SELECT id, new.title, heading, text"
    " FROM chunks WHERE document_id = new.id; END;"
    /* back-fill: a store written before the keyword index existed */
    "INSERT INTO chunks_fts(rowid, title, heading, text) SELECT id, title, heading, text"
    " FROM ragd_fts_source;";

/* Column weights for bm25(): a query term in the heading path or the title says more about what
 * a chunk is about than one in its body. */
#define RAGD_FTS_WEIGHT_TITLE 2.0
#define RAGD_FTS_WEIGHT_HEADING 2.0
#define RAGD_FTS_WEIGHT_TEXT 1.0
/* A macro's value as an SQL literal: the weights and settings below are written once, for C
 * (ragd_bm25) and for SQL (bm25(), FTS5's config) alike. */
#define RAGD_SQL_LIT_(x) #x
#define RAGD_SQL_LIT(x) RAGD_SQL_LIT_(x)
#define RAGD_FTS_BM25                                                                              \
    "bm25(chunks_fts, " RAGD_SQL_LIT(RAGD_FTS_WEIGHT_TITLE) ", "                                   \
    RAGD_SQL_LIT(RAGD_FTS_WEIGHT_HEADING) ", " RAGD_SQL_LIT(RAGD_FTS_WEIGHT_TEXT) ")"
#define RAGD_FTS_PHRASES_MAX 32 /* RAGD_TERMS_MAX: the terms of one query */
#ifndef RAGD_FTS_DF_EXACT
#define RAGD_FTS_DF_EXACT 4000 /* term statistics: frequencies counted exactly up to this */
#endif


static ragd_rc fts_exists(store_db *s, const char *what, int *exists, ragd_err *err)
{
    return table_exists(s, "chunks_fts", what, exists, err);
}

/* FTS5's segment merging, stored in the index's own chunks_fts_config table. Every commit adds
 * one segment; FTS5 merges RAGD_FTS_AUTOMERGE segments of one level into the next (its default:
 * 4) and forces a merge at RAGD_FTS_CRISISMERGE (default 16). Each merge rewrites the postings it
 * merges, so a lower fan-out rewrites them more often: with 8 / 32 an ingest of markdown takes
 * x0.93-0.94 of the CPU (fewer WAL frames and checkpointed pages), while a store of 215k chunks
 * keeps about as many segments (18 against 15) and keyword search its speed; 16 / 64 saved a
 * little more but doubled the segments and slowed keyword search by ~1.3x (bench/NOTES.md,
 * session 5 part D). The ranking does not depend on how the postings are split in segments. */
#define RAGD_FTS_AUTOMERGE 8
#define RAGD_FTS_CRISISMERGE 32

/* Sets the keyword index's merge settings (above) when the store has other values (a new store:
 * FTS5's defaults; a store written by an older ragd). Writable opens only. */
static ragd_rc fts_merge_apply(store_db *s, const char *what, ragd_err *err)
{
    sqlite3_stmt *st = NULL;
    int code = sqlite3_prepare_v2(s->writer,
                                  "SELECT count(*) FROM chunks_fts_config WHERE (k = 'automerge'"
                                  " AND v = ?1) OR (k = 'crisismerge' AND v = ?2)",
                                  -1, &st, NULL);
    if (code != SQLITE_OK) return db_fail(s->writer, code, what, err);
    sqlite3_bind_int(st, 1, RAGD_FTS_AUTOMERGE);
    sqlite3_bind_int(st, 2, RAGD_FTS_CRISISMERGE);
    code = sqlite3_step(st);
    ragd_rc rc = code == SQLITE_ROW ? RAGD_OK : db_fail(s->writer, code, what, err);
    int set = rc == RAGD_OK && sqlite3_column_int(st, 0) == 2;
    sqlite3_finalize(st);
    if (rc != RAGD_OK || set) return rc;
    static const char sql[] =
        "INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('automerge', "
        RAGD_SQL_LIT(RAGD_FTS_AUTOMERGE) ");"
        "INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('crisismerge', "
        RAGD_SQL_LIT(RAGD_FTS_CRISISMERGE) ")";
    rc = writer_simple(s, RAGD_STMT_BEGIN, what, err);
    if (rc != RAGD_OK) return rc;
    rc = db_exec(s->writer, sql, "set the keyword index's merge settings", err);
    return tx_close(s, 1, rc, err);
}

/* Creates and back-fills the keyword index in one transaction when the store lacks it (a new
 * store, or one written by an older ragd). Independent of the schema version: a store that has
 * the index is simply used as it is. SQLite without FTS5 leaves keyword search off (logged). */
static ragd_rc fts_apply(store_db *s, const char *what, ragd_err *err)
{
    int exists = 0;
    ragd_rc rc = fts_exists(s, what, &exists, err);
    if (rc != RAGD_OK || exists) {
        s->fts = exists;
        return rc;
    }
    if (!sqlite3_compileoption_used("ENABLE_FTS5")) {
        RAGD_LOG(RAGD_LOG_WARN, "store", "SQLite lacks FTS5: keyword and hybrid retrieval fall "
                 "back to vector search");
        return RAGD_OK;
    }
    double t0 = util_now_ms();
    rc = writer_simple(s, RAGD_STMT_BEGIN, what, err);
    if (rc != RAGD_OK) return rc;
    rc = db_exec(s->writer, fts_sql, "create the keyword index", err);
    rc = tx_close(s, 1, rc, err);
    if (rc == RAGD_OK) {
        s->fts = 1;
        RAGD_LOG(RAGD_LOG_INFO, "store", "keyword index (FTS5) created in %.0f ms",
                 util_now_ms() - t0);
    }
    return rc;
}

int store_db_fts_available(const store_db *s)
{
    return s != NULL && s->fts;
}

size_t store_db_fts_lengths_slots(store_db *s)
{
    return store_fts_lengths_slots(s->lengths);
}

/* Prepares sql on the reader's connection. Returns: RAGD_OK and *out (sqlite3_finalize). */
static ragd_rc fts_prepare(store_reader *r, const char *sql, const char *what,
                              sqlite3_stmt **out, ragd_err *err)
{
    int code = sqlite3_prepare_v2(r->db, sql, -1, out, NULL);
    if (code != SQLITE_OK) return db_fail(r->db, code, what, err);
    return RAGD_OK;
}

/* Prepares sql into *slot on r's connection at first use (kept for the connection's life).
 * Returns: RAGD_OK and *out = *slot (reset it after use). */
static ragd_rc fts_reader_stmt(store_reader *r, sqlite3_stmt **slot, const char *sql,
                               sqlite3_stmt **out, ragd_err *err)
{
    if (*slot == NULL) {
        ragd_rc rc = reader_prepare(r, sql, slot, err);
        if (rc != RAGD_OK) return rc;
    }
    *out = *slot;
    return RAGD_OK;
}

/* Reads the store generation of r's snapshot (inside its read transaction) into *gen; -1 when
 * the store has none (then nothing is cached); and into *titles (may be NULL) the count of title
 * changes (RAGD_FTS_TITLES_TRIGGER, 0 when none). Returns: RAGD_OK or the SQLite error. */
static ragd_rc fts_generation(store_reader *r, int64_t *gen, int64_t *titles, ragd_err *err)
{
    sqlite3_stmt *st = NULL;
    ragd_rc rc = fts_reader_stmt(r, &r->fts_generation,
                                 "SELECT value, (SELECT value FROM meta WHERE key = 'fts_titles') "
                                 "FROM meta WHERE key = 'generation'", &st, err);
    *gen = -1;
    if (titles != NULL) *titles = 0;
    if (rc != RAGD_OK) return rc;
    int code = sqlite3_step(st);
    if (code == SQLITE_ROW) {
        *gen = sqlite3_column_int64(st, 0);
        if (titles != NULL) *titles = sqlite3_column_int64(st, 1);
    }
    else if (code != SQLITE_DONE) rc = db_fail(r->db, code, "keyword search: generation", err);
    sqlite3_reset(st);
    return rc;
}

/* The statistics of phrase (len bytes, an FTS5 expression): its matches counted oldest first
 * (FTS5 walks a doclist forwards faster than backwards) up to max(cap, RAGD_FTS_DF_EXACT), and
 * the highest id counted; from the cache when this
 * generation already counted it (gen < 0: no cache). Returns: RAGD_OK and *out. */
static ragd_rc fts_term_stat(store_db *s, store_reader *r, int64_t gen, const char *phrase,
                             size_t len, int64_t cap, store_term_stat *out, ragd_err *err)
{
    if (cap < RAGD_FTS_DF_EXACT) cap = RAGD_FTS_DF_EXACT;
    store_terms *cache = gen >= 0 ? s->terms : NULL;
    if (store_terms_get(cache, gen, phrase, len, cap, out)) return RAGD_OK;
    sqlite3_stmt *st = NULL;
    ragd_rc rc = fts_reader_stmt(r, &r->fts_stat,
                                 "SELECT count(*), max(rowid) FROM (SELECT rowid FROM chunks_fts "
                                 "WHERE chunks_fts MATCH ?1 LIMIT ?2)",
                                 &st, err);
    if (rc != RAGD_OK) return rc;
    sqlite3_bind_text(st, 1, phrase, (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, cap);
    int code = sqlite3_step(st);
    store_term_stat stat = {.cap = cap};
    if (code == SQLITE_ROW) {
        stat.count = sqlite3_column_int64(st, 0);
        stat.edge = sqlite3_column_int64(st, 1);
    } else {
        rc = db_fail(r->db, code, "keyword search: term counts", err);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != RAGD_OK) return rc;
    store_terms_put(cache, gen, phrase, len, &stat);
    *out = stat;
    return RAGD_OK;
}

/* The snapshot one keyword search ranks in: its generation and title-change count
 * (fts_generation). */
typedef struct fts_snapshot {
    int64_t generation, titles;
} fts_snapshot;

static const char *fts_phrase_end(const char *p);
static ragd_rc fts_term_stat(store_db *s, store_reader *r, int64_t gen, const char *phrase,
                             size_t len, int64_t cap, store_term_stat *out, ragd_err *err);

/* Counts, for each quoted phrase of match in order (FTS5 numbers a query's phrases so), the
 * chunks matching it alone, exactly (through the term cache) into df (max entries). Returns:
 * RAGD_OK and *n, with *n 0 when match has another shape than quoted phrases joined by OR / AND
 * and parentheses (then ragd_bm25 lets FTS5 count them, as bm25() does). */
static ragd_rc fts_phrase_counts(store_db *s, store_reader *r, int64_t gen, const char *match,
                                 int64_t *df, size_t max, size_t *n, ragd_err *err)
{
    *n = 0;
    size_t count = 0;
    for (const char *p = match; *p != '\0';) {
        if (*p == '(' || *p == ')') {
            p++;
        } else if (strncmp(p, " OR ", 4) == 0 || strncmp(p, " AND ", 5) == 0) {
            p += p[1] == 'O' ? 4 : 5;
        } else if (*p == '"') {
            const char *q = fts_phrase_end(p);
            if (q == NULL || count == max) return RAGD_OK;
            store_term_stat stat;
            ragd_rc rc = fts_term_stat(s, r, gen, p, (size_t)(q + 1 - p), INT64_MAX, &stat, err);
            if (rc != RAGD_OK) return rc;
            df[count++] = stat.count;
            p = q + 1;
        } else {
            return RAGD_OK;
        }
    }
    *n = count;
    return RAGD_OK;
}

/* Runs a prepared rank statement (?1 match, ?2 limit, ?3 min_rowid; ?4 q when q is not NULL:
 * ragd_bm25's query) into ids/scores, and resets it. Returns: RAGD_OK and *found. */
static ragd_rc fts_rank_step(store_reader *r, sqlite3_stmt *st, const char *match,
                             int64_t min_rowid, size_t limit, store_fts_rank_query *q,
                             int64_t *ids, double *scores, size_t *found, ragd_err *err)
{
    sqlite3_bind_text(st, 1, match, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)min_rowid);
    if (q != NULL) store_fts_rank_bind(st, 4, q);
    ragd_rc rc = RAGD_OK;
    size_t n = 0;
    int code = SQLITE_OK;
    while (n < limit && (code = sqlite3_step(st)) == SQLITE_ROW) {
        ids[n] = sqlite3_column_int64(st, 0);
        scores[n] = -sqlite3_column_double(st, 1); /* bm25(): lower is better */
        n++;
    }
    if (n < limit && code != SQLITE_DONE) rc = db_fail(r->db, code, "keyword search", err);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc == RAGD_OK) *found = n;
    return rc;
}

/* ragd_bm25 ranking (src/store_fts_rank.c): bm25()'s scores from the phrases' counts and the
 * chunk lengths in memory. Same contract as fts_rank. */
static ragd_rc fts_rank_own(store_db *s, store_reader *r, const fts_snapshot *snap,
                            const char *match, int64_t min_rowid, size_t limit, int64_t *ids,
                            double *scores, size_t *found, ragd_err *err)
{
    int64_t df[RAGD_FTS_PHRASES_MAX * 4];
    size_t nphrase = 0;
    ragd_rc rc = fts_phrase_counts(s, r, snap->generation, match, df,
                                   sizeof df / sizeof df[0], &nphrase, err);
    if (rc != RAGD_OK) return rc;
    store_fts_rank_query q = {.phrases = nphrase, .df = nphrase ? df : NULL,
                              .weights = {RAGD_FTS_WEIGHT_TITLE, RAGD_FTS_WEIGHT_HEADING,
                                          RAGD_FTS_WEIGHT_TEXT}};
    int held = store_fts_lengths_hold(s->lengths, r->db, snap->generation, snap->titles,
                                      s->counts ? "SELECT n FROM ragd_counts WHERE name = 'chunks'"
                                                : NULL);
    if (held) q.lengths = s->lengths;
    sqlite3_stmt *st = NULL;
    rc = fts_reader_stmt(r, &r->fts_rank_own,
                         "SELECT rowid, " STORE_FTS_RANK_FUNCTION "(chunks_fts, ?4) AS rank_bm25 "
                         "FROM chunks_fts WHERE chunks_fts MATCH ?1 AND rowid >= ?3 "
                         "ORDER BY rank_bm25, rowid LIMIT ?2",
                         &st, err);
    if (rc == RAGD_OK)
        rc = fts_rank_step(r, st, match, min_rowid, limit, &q, ids, scores, found, err);
    if (held) store_fts_lengths_release(s->lengths);
    store_fts_rank_query_done(&q);
    return rc;
}

/* Runs one BM25 query (match, optionally only rowids >= min_rowid) on r's connection into
 * ids/scores (limit entries): through ragd_bm25 when the connection has it and snap is known,
 * else FTS5's bm25(); the same scores either way. Returns: RAGD_OK and *found. */
static ragd_rc fts_rank(store_db *s, store_reader *r, const fts_snapshot *snap, const char *match,
                        int64_t min_rowid, size_t limit, int64_t *ids, double *scores,
                        size_t *found, ragd_err *err)
{
    if (r->fts_own && snap != NULL && snap->generation >= 0)
        return fts_rank_own(s, r, snap, match, min_rowid, limit, ids, scores, found, err);
    sqlite3_stmt *st = NULL;
    /* bm25() named once (the alias): written twice, SQLite computed it a second time for every
     * row entering the top-limit heap (EXPLAIN shows two Function ops). */
    ragd_rc rc = fts_reader_stmt(r, &r->fts_rank,
                                 "SELECT rowid, " RAGD_FTS_BM25 " AS rank_bm25 FROM chunks_fts "
                                 "WHERE chunks_fts MATCH ?1 AND rowid >= ?3 ORDER BY rank_bm25, "
                                 "rowid LIMIT ?2",
                                 &st, err);
    if (rc != RAGD_OK) return rc;
    return fts_rank_step(r, st, match, min_rowid, limit, NULL, ids, scores, found, err);
}

/* Returns: the closing quote of the quoted phrase starting at p ('"'), or NULL. */
static const char *fts_phrase_end(const char *p)
{
    const char *q = p + 1;
    for (;;) {
        if (*q == '\0') return NULL;
        if (*q == '"' && q[1] == '"') {
            q += 2;
            continue;
        }
        if (*q == '"') return q;
        q++;
    }
}

/* Returns: the closing parenthesis of a group of variants ("a" OR "a b" ...) starting at p
 * ('('), as retrieve_fts_term() writes it for a term with lexical variants, or NULL. */
static const char *fts_group_end(const char *p)
{
    const char *q = p + 1;
    for (;;) {
        if (*q != '"' || (q = fts_phrase_end(q)) == NULL) return NULL;
        q++;
        if (*q == ')') return q;
        if (strncmp(q, " OR ", 4) != 0) return NULL;
        q += 4;
    }
}

/* Splits match, an OR of quoted phrases as retrieve_fts_match() writes it ("a" OR "b"), into its
 * phrases: start[i] and len[i] (quotes included) point into match. A term with lexical variants
 * is one unit, its parenthesised group. Returns: the number of units, or 0 when match has any
 * other shape (then it is searched as it is). */
static size_t fts_phrases_split(const char *match, const char **start, size_t *len)
{
    size_t n = 0;
    const char *p = match;
    while (*p == '"' || *p == '(') {
        const char *q = *p == '"' ? fts_phrase_end(p) : fts_group_end(p);
        if (q == NULL) return 0;
        if (n == RAGD_FTS_PHRASES_MAX) return 0;
        start[n] = p;
        len[n] = (size_t)(q + 1 - p);
        n++;
        p = q + 1;
        if (*p == '\0') return n;
        if (strncmp(p, " OR ", 4) != 0) return 0;
        p += 4;
    }
    return 0;
}

/* Returns: a new string (free()) joining the phrases order[0..n) of start/len with op, or NULL on
 * OOM. */
static char *fts_phrases_join(const char *const *start, const size_t *len, const size_t *order,
                              size_t n, const char *op)
{
    util_buf b = {0};
    int bad = 0;
    for (size_t i = 0; i < n && !bad; i++)
        bad = util_buf_printf(&b, "%s%.*s", i ? op : "", (int)len[order[i]], start[order[i]]);
    if (bad) {
        util_buf_free(&b);
        return NULL;
    }
    return util_buf_steal(&b);
}

/* Counts the chunks matching phrase (len bytes), stopping at cap (through the term cache).
 * Returns: RAGD_OK and *count (at most cap). */
static ragd_rc fts_count_capped(store_db *s, store_reader *r, int64_t gen, const char *phrase,
                                size_t len, size_t cap, size_t *count, ragd_err *err)
{
    store_term_stat stat;
    ragd_rc rc = fts_term_stat(s, r, gen, phrase, len, (int64_t)cap, &stat, err);
    if (rc == RAGD_OK) *count = stat.count < (int64_t)cap ? (size_t)stat.count : cap;
    return rc;
}

/* The bounded plan (see store_db_fts_search_bounded in ragd/store.h), on r's connection inside
 * one read transaction. Returns: RAGD_OK and *found. */
static ragd_rc fts_search_plan(store_db *s, store_reader *r, const char *match, size_t limit,
                               size_t budget, int64_t *ids, double *scores, size_t *found,
                               ragd_err *err)
{
    const char *start[RAGD_FTS_PHRASES_MAX];
    size_t len[RAGD_FTS_PHRASES_MAX], df[RAGD_FTS_PHRASES_MAX], order[RAGD_FTS_PHRASES_MAX];
    fts_snapshot snap = {-1, 0};
    ragd_rc rc = fts_generation(r, &snap.generation, &snap.titles, err);
    if (rc != RAGD_OK) return rc;
    int64_t gen = snap.generation;
    size_t n = budget == 0 ? 0 : fts_phrases_split(match, start, len);
    if (n == 0) return fts_rank(s, r, &snap, match, INT64_MIN, limit, ids, scores, found, err);
    /* Each term's document frequency, counted only up to the budget: a common word costs no
     * more than budget steps of its doclist. */
    size_t total = 0;
    for (size_t i = 0; rc == RAGD_OK && i < n; i++) {
        rc = fts_count_capped(s, r, gen, start[i], len[i], budget + 1, &df[i], err);
        total += df[i];
        order[i] = i;
    }
    char *expr = NULL;
    int64_t min_rowid = INT64_MIN;
    if (rc == RAGD_OK && total <= budget) {
        /* Everything fits: the full query, exactly as an unbounded search ranks it. */
        return fts_rank(s, r, &snap, match, INT64_MIN, limit, ids, scores, found, err);
    }
    /* Rarest first (IDF order); ties keep the query's order. */
    for (size_t i = 1; rc == RAGD_OK && i < n; i++)
        for (size_t j = i; j > 0 && df[order[j]] < df[order[j - 1]]; j--) {
            size_t t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    size_t rare = 0, sum = 0;
    while (rc == RAGD_OK && rare < n && sum + df[order[rare]] <= budget) sum += df[order[rare++]];
    if (rc == RAGD_OK && rare > 0) {
        /* The rare terms rank on their own: the common ones, each in more chunks than the
         * budget, carry little weight in BM25 (their IDF is low) and would cost a score for
         * every chunk they appear in. */
        if ((expr = fts_phrases_join(start, len, order, rare, " OR ")) == NULL)
            rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    } else if (rc == RAGD_OK) {
        /* Every term is common: the chunks holding all of them, when they fit the budget; else
         * the newest budget chunks holding all of them (FTS5 walks rowids in order, so the
         * boundary costs budget steps). */
        if ((expr = fts_phrases_join(start, len, order, n, " AND ")) == NULL)
            rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
        size_t both = 0;
        if (rc == RAGD_OK)
            rc = fts_count_capped(s, r, gen, expr, strlen(expr), budget + 1, &both, err);
        if (rc == RAGD_OK && both > budget) {
            sqlite3_stmt *edge = NULL;
            rc = fts_prepare(r,
                             "SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ?1 "
                             "ORDER BY rowid DESC LIMIT 1 OFFSET ?2",
                             "keyword search: newest matches", &edge, err);
            if (rc == RAGD_OK) {
                sqlite3_bind_text(edge, 1, expr, -1, SQLITE_STATIC);
                sqlite3_bind_int64(edge, 2, (sqlite3_int64)budget - 1);
                int code = sqlite3_step(edge);
                if (code == SQLITE_ROW) min_rowid = sqlite3_column_int64(edge, 0);
                else if (code != SQLITE_DONE)
                    rc = db_fail(r->db, code, "keyword search: newest matches", err);
            }
            sqlite3_finalize(edge);
        }
    }
    if (rc == RAGD_OK) rc = fts_rank(s, r, &snap, expr, min_rowid, limit, ids, scores, found, err);
    free(expr);
    return rc;
}

ragd_rc store_db_fts_search_bounded(store_db *s, const char *match, size_t limit, size_t budget,
                                    int64_t *ids, double *scores, size_t *found, ragd_err *err)
{
    *found = 0;
    if (!s->fts || match == NULL || match[0] == '\0' || limit == 0) return RAGD_OK;
    store_reader *r = NULL;
    ragd_rc rc = reader_acquire(s, &r, err);
    if (rc != RAGD_OK) return rc;
    size_t n = 0;
    if (budget != 0 && budget < limit) budget = limit;
    /* One snapshot for the counts and the ranking. */
    rc = reader_begin(r, "keyword search: begin", err);
    if (rc == RAGD_OK) {
        rc = fts_search_plan(s, r, match, limit, budget, ids, scores, &n, err);
        ragd_rc crc = reader_commit(r, "keyword search: commit", err);
        if (rc == RAGD_OK) rc = crc;
    }
    reader_release(s, r);
    if (rc == RAGD_OK) *found = n;
    return rc;
}

ragd_rc store_db_fts_search(store_db *s, const char *match, size_t limit, int64_t *ids,
                            double *scores, size_t *found, ragd_err *err)
{
    return store_db_fts_search_bounded(s, match, limit, 0, ids, scores, found, err);
}

/* Sets bit j of top_mask[i] for each phrase i that chunk id (top result j) holds, from its
 * indexed columns tokenized in memory (r->fts_tok). Inside r's read transaction. Returns:
 * RAGD_OK (a chunk not in the index holds nothing), or an error. */
static ragd_rc fts_row_terms(store_reader *r, const char *const *phrases, size_t n, int64_t id,
                             size_t j, uint32_t *top_mask, ragd_err *err)
{
    sqlite3_stmt *st = NULL;
    ragd_rc rc = fts_reader_stmt(r, &r->fts_row,
                                 "SELECT title, heading, text FROM chunks_fts WHERE rowid = ?1",
                                 &st, err);
    if (rc != RAGD_OK) return rc;
    sqlite3_bind_int64(st, 1, id);
    int code = sqlite3_step(st);
    if (code == SQLITE_ROW) {
        const char *cols[3];
        for (int c = 0; c < 3; c++) cols[c] = (const char *)sqlite3_column_text(st, c);
        int in[RAGD_FTS_PHRASES_MAX];
        if (n > RAGD_FTS_PHRASES_MAX) n = RAGD_FTS_PHRASES_MAX;
        if (store_fts_phrases_in(r->fts_tok, phrases, n, cols, 3, in) != 0)
            rc = ragd_err_set(err, RAGD_ERR_NOMEM, "term statistics: out of memory");
        for (size_t i = 0; rc == RAGD_OK && i < n; i++)
            if (in[i]) top_mask[i] |= 1u << j;
    } else if (code != SQLITE_DONE) {
        rc = db_fail(r->db, code, "term statistics: chunk text", err);
    }
    sqlite3_reset(st);
    return rc;
}

ragd_rc store_db_fts_terms(store_db *s, const char *const *phrases, size_t n,
                           const int64_t *top_ids, size_t top_n, int64_t *df, uint32_t *top_mask,
                           int64_t *total, ragd_err *err)
{
    *total = 0;
    for (size_t i = 0; i < n; i++) {
        df[i] = 0;
        top_mask[i] = 0;
    }
    if (!s->fts) return RAGD_OK;
    if (top_n > 32) top_n = 32;
    store_reader *r = NULL;
    ragd_rc rc = reader_acquire(s, &r, err);
    if (rc != RAGD_OK) return rc;
    sqlite3_stmt *in_top = NULL, *all = NULL, *span = NULL;
    int64_t id_min = 0, id_max = 0, gen = -1;
    rc = reader_begin(r, "term statistics: begin", err);
    if (rc == RAGD_OK) rc = fts_generation(r, &gen, NULL, err);
    if (rc == RAGD_OK)
        rc = fts_reader_stmt(r, &r->fts_total,
                             s->counts ? "SELECT n FROM ragd_counts WHERE name = 'chunks'"
                                       : "SELECT count(*) FROM chunks",
                             &all, err);
    if (rc == RAGD_OK)
        rc = fts_reader_stmt(r, &r->fts_span,
                             "SELECT (SELECT min(id) FROM chunks), (SELECT max(id) FROM chunks)",
                             &span, err);
    if (rc == RAGD_OK)
        rc = fts_reader_stmt(r, &r->fts_in_top,
                             "SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ?1 AND "
                             "rowid = ?2", &in_top, err);
    if (!r->fts_tok_tried) { /* once per connection; without it, one FTS5 query per pair */
        r->fts_tok = store_fts_tokenizer_new(r->db);
        r->fts_tok_tried = 1;
    }
    if (rc == RAGD_OK) {
        int code = sqlite3_step(all);
        if (code == SQLITE_ROW) *total = sqlite3_column_int64(all, 0);
        else rc = db_fail(r->db, code, "term statistics", err);
    }
    if (rc == RAGD_OK) {
        int code = sqlite3_step(span);
        if (code == SQLITE_ROW) {
            id_min = sqlite3_column_int64(span, 0);
            id_max = sqlite3_column_int64(span, 1);
        } else {
            rc = db_fail(r->db, code, "term statistics", err);
        }
    }
    for (size_t i = 0; rc == RAGD_OK && i < n; i++) {
        /* Exact up to RAGD_FTS_DF_EXACT chunks; past that, a common word is not walked to its
         * end: its frequency is extrapolated from the rowid span its oldest matches cover
         * (chunk ids grow with ingest, so matches spread over them; a common word's IDF is
         * small and the estimate's error with it). */
        store_term_stat stat;
        rc = fts_term_stat(s, r, gen, phrases[i], strlen(phrases[i]), RAGD_FTS_DF_EXACT, &stat,
                           err);
        if (rc == RAGD_OK) {
            df[i] = stat.count;
            int64_t edge = stat.edge;
            if (df[i] >= stat.cap && edge >= id_min && id_max > id_min) {
                double est = (double)df[i] * (double)(id_max - id_min + 1) /
                             (double)(edge - id_min + 1);
                df[i] = est > (double)*total ? *total : (int64_t)est;
                if (df[i] < stat.cap) df[i] = stat.cap;
            }
        }
        int code = SQLITE_OK;
        for (size_t j = 0; rc == RAGD_OK && !r->fts_tok && df[i] > 0 && j < top_n; j++) {
            sqlite3_bind_text(in_top, 1, phrases[i], -1, SQLITE_STATIC);
            sqlite3_bind_int64(in_top, 2, top_ids[j]);
            code = sqlite3_step(in_top);
            if (code == SQLITE_ROW) top_mask[i] |= 1u << j;
            else if (code != SQLITE_DONE) rc = db_fail(r->db, code, "term statistics", err);
            sqlite3_reset(in_top);
        }
    }
    /* Which terms each top chunk holds: its indexed columns tokenized as FTS5 does. */
    for (size_t j = 0; rc == RAGD_OK && r->fts_tok && j < top_n; j++)
        rc = fts_row_terms(r, phrases, n, top_ids[j], j, top_mask, err);
    if (all) sqlite3_reset(all);
    if (span) sqlite3_reset(span);
    if (in_top) {
        sqlite3_reset(in_top);
        sqlite3_clear_bindings(in_top);
    }
    if (rc == RAGD_OK) rc = reader_commit(r, "term statistics: commit", err);
    reader_release(s, r);
    return rc;
}

/* ----- collections ---------------------------------------------------------------------------- */

ragd_rc store_db_collections(store_db *s, store_collection **out, size_t *n, ragd_err *err)
{
    store_reader *r = NULL;
    ragd_rc rc = reader_acquire(s, &r, err);
    if (rc != RAGD_OK) return rc;
    sqlite3_stmt *st = NULL;
    store_collection *list = NULL;
    size_t count = 0, cap = 0;
    rc = reader_begin(r, "list collections: begin", err);
    int code = SQLITE_OK;
    if (rc == RAGD_OK) {
        code = sqlite3_prepare_v2(r->db,
                                  "SELECT d.collection, count(*), coalesce(sum((SELECT count(*) "
                                  "FROM chunks c WHERE c.document_id = d.id)), 0) FROM documents d "
                                  "GROUP BY d.collection ORDER BY d.collection",
                                  -1, &st, NULL);
        if (code != SQLITE_OK) rc = db_fail(r->db, code, "list collections", err);
    }
    while (rc == RAGD_OK && (code = sqlite3_step(st)) == SQLITE_ROW) {
        if (count == cap) {
            size_t next = cap ? cap * 2 : 8;
            store_collection *grown = realloc(list, next * sizeof *grown);
            if (grown == NULL) {
                rc = ragd_err_set(err, RAGD_ERR_NOMEM, "list collections: out of memory");
                break;
            }
            list = grown;
            cap = next;
        }
        store_collection *c = &list[count];
        c->name = column_dup(st, 0);
        c->documents = sqlite3_column_int64(st, 1);
        c->chunks = sqlite3_column_int64(st, 2);
        if (c->name == NULL) {
            rc = ragd_err_set(err, RAGD_ERR_NOMEM, "list collections: out of memory");
            break;
        }
        count++;
    }
    if (rc == RAGD_OK && code != SQLITE_DONE) rc = db_fail(r->db, code, "list collections", err);
    sqlite3_finalize(st);
    if (rc == RAGD_OK) rc = reader_commit(r, "list collections: commit", err);
    reader_release(s, r);
    if (rc != RAGD_OK) {
        store_collections_free(list, count);
        return rc;
    }
    *out = list;
    *n = count;
    return RAGD_OK;
}

ragd_rc store_db_collection_chunk_ids(store_db *s, const char *collection, int64_t **ids,
                                      size_t *n, ragd_err *err)
{
    sqlite3_stmt *st = NULL;
    int code = sqlite3_prepare_v2(s->writer,
                                  "SELECT c.id FROM chunks c JOIN documents d ON d.id = "
                                  "c.document_id WHERE d.collection = ?1 ORDER BY c.id",
                                  -1, &st, NULL);
    if (code != SQLITE_OK) return db_fail(s->writer, code, "list collection chunks", err);
    sqlite3_bind_text(st, 1, collection, -1, SQLITE_STATIC);
    ragd_rc rc = ids_collect(s, st, "list collection chunks", ids, n, err);
    sqlite3_finalize(st);
    return rc;
}

ragd_rc store_db_collection_delete(store_db *s, const char *collection, int64_t *documents,
                                   ragd_err *err)
{
    ragd_rc rc = need_writable(s, "delete collection", err);
    if (rc == RAGD_OK) rc = fts_pending_settle(s, -1, NULL, NULL, err);
    if (rc != RAGD_OK) return rc;
    sqlite3_stmt *st = NULL;
    /* chunks go with their documents: the keyword index's trigger (fts_sql) or ON DELETE
     * CASCADE */
    int code = sqlite3_prepare_v2(s->writer, "DELETE FROM documents WHERE collection = ?1", -1,
                                  &st, NULL);
    if (code != SQLITE_OK) return db_fail(s->writer, code, "delete collection", err);
    sqlite3_bind_text(st, 1, collection, -1, SQLITE_STATIC);
    code = sqlite3_step(st);
    sqlite3_finalize(st);
    if (code != SQLITE_DONE) return db_fail(s->writer, code, "delete collection", err);
    if (documents) *documents = sqlite3_changes64(s->writer);
    return RAGD_OK;
}
