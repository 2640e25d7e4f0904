/* SPDX-License-Identifier: MIT */
/*
 * store_pg.c - the pgvector backend of the store interface: documents, chunks, embeddings (by
 * content hash) and both search sides in Postgres, in the schema [store] pg_schema (default
 * "ragd") so that ragd's tables sit beside an application's own.
 *
 * Schema (created and migrated by ragd at a writable open, under an advisory transaction lock so
 * that two daemons starting together do not race): meta (schema_version, embed_model,
 * embed_dims), documents (unique per collection and path), chunks (the chunk's collection, a
 * tsvector of title + heading path (weight A) and text, and embedding vector(D) with an HNSW
 * vector_cosine_ops index built with [store] hnsw_m / hnsw_ef_construction), embeddings
 * (checksum, model, dims -> little-endian float32 bytes, exactly the faiss backend's blobs) and
 * ingest_leases (one ingest per collection across processes).
 *
 * Searches are restricted to their collection in SQL. The vector side orders by cosine distance
 * with hnsw.ef_search = [store] hnsw_ef_search and hnsw.iterative_scan = strict_order (pgvector
 * 0.8), so a selective collection still yields k rows; metadata filters are applied above the
 * interface, with widening, as on the faiss backend. The keyword side ORs one plainto_tsquery per
 * query term (user text never becomes tsquery syntax) and scores with ts_rank (title and heading
 * weigh twice the text, length-normalised): higher is better, > 0, like the faiss side's BM25.
 *
 * Connections: one writer (the engine serialises writers) and a pool of [store] pg_pool readers.
 * Every connect and statement runs against a deadline of [store] pg_timeout_ms (non-blocking
 * libpq and poll()), so an unreachable or restarting Postgres yields RAGD_ERR_UNAVAILABLE (503)
 * in bounded time; a broken connection is dropped and the next call connects again, so ragd
 * recovers by itself when Postgres is back. Messages never contain the URL's password.
 *
 * Cross-process ingest lock: a lease row per collection (holder, expires_at), taken with one
 * INSERT ... ON CONFLICT ... WHERE expired, renewed by a heartbeat thread every third of its
 * life and deleted at the end. A killed holder's lease expires; session advisory locks are not
 * used because behind PGlite's multiplexer they do not exclude each other.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "ragd/cfg.h"
#include "ragd/log.h"
#include "ragd/retrieve.h"
#include "ragd/store.h"
#include "ragd/util.h"

#define PG_SCHEMA_VERSION 1
#define PG_LEASE_MS 15000
#define PG_SCAN_BATCH 1000

typedef struct pg_store {
    store base;
    const ragd_cfg *cfg;
    int readonly;
    char schema[64];
    int timeout_ms;           /* connects and reads: [store] pg_timeout_ms */
    int write_timeout_ms;     /* the writer's statements: at least a minute */
    char model[128];
    int dims;
    int has_vectors;          /* chunks.embedding exists */
    PGconn *writer;           /* writer calls only (serialised by the engine) */
    int in_tx;
    pthread_mutex_t pool_mu;
    pthread_cond_t pool_cv;
    PGconn **idle;
    size_t idle_n, open_n, pool_max;
    /* the ingest lease and its heartbeat */
    char holder[200];
    char host[100];
    char lease_collection[80];
    pthread_t heartbeat;
    int heartbeat_running, heartbeat_stop;
    pthread_mutex_t lease_mu;
    pthread_cond_t lease_cv;
} pg_store;

static pg_store *pg_of(store *s)
{
    return (pg_store *)s;
}

/* ---- connections with a deadline ---------------------------------------------------------- */

static double now_ms(void)
{
    return util_now_ms();
}

/* pgvector accepts hnsw.ef_search in 1..1000 (ragd's own bound is 65536, for FAISS): a larger
 * value is clamped rather than failing every connection's setup or search. */
#define PG_EF_MAX 1000

static int pg_ef(int ef)
{
    return ef < 1 ? 1 : ef > PG_EF_MAX ? PG_EF_MAX : ef;
}

static void notice_ignore(void *arg, const char *message)
{
    (void)arg;
    RAGD_LOG(RAGD_LOG_DEBUG, "store", "postgres: %s", message);
}

/* Copies libpq's message without its trailing newline. */
static void pq_message(char *out, size_t n, const char *msg)
{
    snprintf(out, n, "%s", msg ? msg : "unknown error");
    size_t len = strlen(out);
    while (len > 0 && (out[len - 1] == '\n' || out[len - 1] == ' ')) out[--len] = '\0';
}

/* Waits until sock is readable (or writable) or the deadline passes. Returns: 0, or -1 on
 * timeout or error. */
static int wait_socket(int sock, int writable, double deadline)
{
    for (;;) {
        double left = deadline - now_ms();
        if (left <= 0) return -1;
        struct pollfd p = {.fd = sock, .events = writable ? POLLOUT : POLLIN};
        int r = poll(&p, 1, (int)(left < 1 ? 1 : left));
        if (r > 0) return 0;
        if (r == 0) return -1;
        if (errno != EINTR) return -1;
    }
}

/* Opens a connection and prepares its session (search path, HNSW settings, statement timeout).
 * Returns: RAGD_OK and *out (new, PQfinish), or RAGD_ERR_UNAVAILABLE naming why. */
static ragd_rc pg_connect(pg_store *s, PGconn **out, int writer, ragd_err *err)
{
    double deadline = now_ms() + s->timeout_ms;
    PGconn *c = PQconnectStart(s->cfg->database_url);
    if (c == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "postgres: out of memory");
    char msg[300];
    if (PQstatus(c) == CONNECTION_BAD) {
        pq_message(msg, sizeof msg, PQerrorMessage(c));
        PQfinish(c);
        return ragd_err_set(err, RAGD_ERR_UNAVAILABLE, "postgres unavailable: %s", msg);
    }
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
        if (wait_socket(PQsocket(c), st == PGRES_POLLING_WRITING, deadline) != 0) {
            PQfinish(c);
            return ragd_err_set(err, RAGD_ERR_UNAVAILABLE, "postgres unavailable: no connection "
                                "within %d ms ([store] pg_timeout_ms)", s->timeout_ms);
        }
        st = PQconnectPoll(c);
    }
    if (st == PGRES_POLLING_FAILED) {
        pq_message(msg, sizeof msg, PQerrorMessage(c));
        PQfinish(c);
        return ragd_err_set(err, RAGD_ERR_UNAVAILABLE, "postgres unavailable: %s", msg);
    }
    PQsetNoticeProcessor(c, notice_ignore, NULL);
    *out = c;
    char setup[512];
    snprintf(setup, sizeof setup,
             "SET search_path TO \"%s\", public; SET statement_timeout = %d; "
             "SET hnsw.ef_search = %d; SET hnsw.iterative_scan = strict_order",
             s->schema, writer ? s->write_timeout_ms : s->timeout_ms, pg_ef(s->cfg->hnsw_ef_search));
    PGresult *r = PQexec(c, setup);
    ragd_rc rc = RAGD_OK;
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        pq_message(msg, sizeof msg, PQresultErrorMessage(r));
        rc = ragd_err_set(err, RAGD_ERR_STORE, "postgres: preparing the session: %s", msg);
    }
    PQclear(r);
    if (rc != RAGD_OK) {
        PQfinish(c);
        *out = NULL;
    }
    return rc;
}

/* Returns: 1 when a failed statement's SQLSTATE or the connection says Postgres is unreachable
 * or going away (the caller answers 503 and drops the connection). */
static int pg_gone(PGconn *c, const PGresult *r)
{
    if (c == NULL || PQstatus(c) == CONNECTION_BAD) return 1;
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (state == NULL) return r == NULL;
    return strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
           strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0;
}

/* Returns: sql with each $N replaced by vals[N-1] as an escaped literal (bytea hex for fmts[i]
 * == 1, NULL for a NULL value), new (free()), or NULL on failure. */
static char *sql_inline(PGconn *c, const char *sql, int n, const char *const *vals,
                        const int *lens, const int *fmts)
{
    util_buf b = {0};
    int bad = 0;
    for (const char *p = sql; *p && !bad;) {
        if (p[0] != '$' || p[1] < '0' || p[1] > '9') {
            size_t run = strcspn(p + 1, "$") + 1;
            bad = util_buf_append(&b, p, run) != 0;
            p += run;
            continue;
        }
        char *end = NULL;
        long i = strtol(p + 1, &end, 10);
        p = end;
        if (i < 1 || i > n) {
            bad = 1;
            break;
        }
        const char *v = vals[i - 1];
        if (v == NULL) {
            bad = util_buf_puts(&b, "NULL") != 0;
        } else if (fmts && fmts[i - 1] == 1) {
            bad = util_buf_puts(&b, "'\\x") != 0;
            for (int k = 0; k < lens[i - 1] && !bad; k++)
                bad = util_buf_printf(&b, "%02x", (unsigned char)v[k]) != 0;
            bad |= util_buf_puts(&b, "'::bytea") != 0;
        } else {
            char *lit = PQescapeLiteral(c, v, strlen(v));
            bad = lit == NULL || util_buf_puts(&b, lit) != 0;
            PQfreemem(lit);
        }
    }
    if (bad) {
        util_buf_free(&b);
        return NULL;
    }
    return util_buf_steal(&b);
}

/* Runs one statement with text parameters (binary where fmts says so) against the deadline.
 * Returns: the result (PQclear) when it succeeded, NULL with err set otherwise; *dead is set
 * when the connection must be dropped. */
static PGresult *pg_run(pg_store *s, PGconn *c, const char *sql, int n,
                        const char *const *vals, const int *lens, const int *fmts, int binary,
                        int *dead, ragd_err *err)
{
    /* the writer's statements (a big delete, an index build) may take longer than a read */
    int limit = c == s->writer ? s->write_timeout_ms : s->timeout_ms;
    double deadline = now_ms() + limit;
    *dead = 0;
    char msg[400];
    /* Always the simple protocol, parameters inlined as escaped literals: one 'Q' message per
     * statement. PGlite's multiplexer interleaves the messages of its clients one by one, so an
     * extended-protocol Parse/Bind/Execute of one connection could meet another's. */
    (void)binary;
    char *text = n > 0 ? sql_inline(c, sql, n, vals, lens, fmts) : NULL;
    if (n > 0 && text == NULL) {
        ragd_err_set(err, RAGD_ERR_NOMEM, "postgres: cannot build the statement: %s",
                     PQerrorMessage(c));
        return NULL;
    }
    int sent = PQsendQuery(c, text ? text : sql);
    free(text);
    if (!sent) {
        pq_message(msg, sizeof msg, PQerrorMessage(c));
        *dead = pg_gone(c, NULL);
        ragd_err_set(err, *dead ? RAGD_ERR_UNAVAILABLE : RAGD_ERR_STORE, "postgres%s: %s",
                     *dead ? " unavailable" : "", msg);
        return NULL;
    }
    int f;
    while ((f = PQflush(c)) == 1)
        if (wait_socket(PQsocket(c), 1, deadline) != 0) break;
    PGresult *keep = NULL, *failed = NULL;
    for (;;) {
        if (f == 1 || (PQisBusy(c) && (wait_socket(PQsocket(c), 0, deadline) != 0))) {
            PQclear(keep);
            PQclear(failed);
            *dead = 1; /* the connection's state is unknown: drop it */
            ragd_err_set(err, RAGD_ERR_UNAVAILABLE, "postgres unavailable: no answer within %d "
                         "ms%s", limit, limit == s->timeout_ms ? " ([store] pg_timeout_ms)" : "");
            return NULL;
        }
        if (PQisBusy(c)) {
            if (!PQconsumeInput(c)) {
                pq_message(msg, sizeof msg, PQerrorMessage(c));
                PQclear(keep);
                PQclear(failed);
                *dead = 1;
                ragd_err_set(err, RAGD_ERR_UNAVAILABLE, "postgres unavailable: %s", msg);
                return NULL;
            }
            continue;
        }
        PGresult *r = PQgetResult(c);
        if (r == NULL) break;
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
            PQclear(keep);
            keep = r;
        } else if (failed == NULL) {
            failed = r;
        } else {
            PQclear(r);
        }
    }
    if (failed != NULL) {
        pq_message(msg, sizeof msg, PQresultErrorMessage(failed));
        *dead = pg_gone(c, failed);
        ragd_err_set(err, *dead ? RAGD_ERR_UNAVAILABLE : RAGD_ERR_STORE, "postgres%s: %s",
                     *dead ? " unavailable" : "", msg);
        PQclear(failed);
        PQclear(keep);
        return NULL;
    }
    if (keep == NULL) {
        *dead = pg_gone(c, NULL);
        pq_message(msg, sizeof msg, PQerrorMessage(c));
        ragd_err_set(err, RAGD_ERR_UNAVAILABLE, "postgres unavailable: %s", msg);
    }
    return keep;
}

/* ---- the writer connection ----------------------------------------------------------------- */

/* Runs a statement on the writer connection, connecting first when it is missing. A connection
 * found broken outside a transaction is replaced and the statement tried once more. */
static PGresult *writer_run(pg_store *s, const char *sql, int n, const char *const *vals,
                            const int *lens, const int *fmts, int binary, ragd_err *err)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        int fresh = 0;
        if (s->writer == NULL) {
            if (s->in_tx) {
                ragd_err_set(err, RAGD_ERR_UNAVAILABLE, "postgres unavailable: the connection "
                             "was lost inside a transaction");
                return NULL;
            }
            if (pg_connect(s, &s->writer, 1, err) != RAGD_OK) return NULL;
            fresh = 1;
        }
        int dead = 0;
        ragd_err e2 = {0};
        PGresult *r = pg_run(s, s->writer, sql, n, vals, lens, fmts, binary, &dead, &e2);
        if (r != NULL) return r;
        if (dead) {
            PQfinish(s->writer);
            s->writer = NULL;
            if (!fresh && !s->in_tx) continue; /* a stale connection: once more, fresh */
        }
        ragd_err_set(err, e2.rc, "%s", e2.msg);
        return NULL;
    }
    return NULL;
}

/* writer_run for statements without results. */
static ragd_rc writer_exec(pg_store *s, const char *sql, int n, const char *const *vals,
                           ragd_err *err)
{
    PGresult *r = writer_run(s, sql, n, vals, NULL, NULL, 0, err);
    if (r == NULL) return err && err->rc ? err->rc : RAGD_ERR_STORE;
    PQclear(r);
    return RAGD_OK;
}

/* ---- the reader pool ----------------------------------------------------------------------- */

/* Takes a reader connection (waiting for one while pg_pool are in use). Returns: RAGD_OK and
 * *out (give back with reader_release), *fresh 1 when newly connected. */
static ragd_rc reader_acquire(pg_store *s, PGconn **out, int *fresh, ragd_err *err)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += s->timeout_ms / 1000;
    until.tv_nsec += (long)(s->timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->pool_mu);
    while (s->idle_n == 0 && s->open_n >= s->pool_max) {
        if (pthread_cond_timedwait(&s->pool_cv, &s->pool_mu, &until) == ETIMEDOUT) {
            pthread_mutex_unlock(&s->pool_mu);
            return ragd_err_set(err, RAGD_ERR_UNAVAILABLE, "postgres: all %zu connections "
                                "([store] pg_pool) stayed busy for %d ms", s->pool_max,
                                s->timeout_ms);
        }
    }
    if (s->idle_n > 0) {
        *out = s->idle[--s->idle_n];
        *fresh = 0;
        pthread_mutex_unlock(&s->pool_mu);
        return RAGD_OK;
    }
    s->open_n++;
    pthread_mutex_unlock(&s->pool_mu);
    *fresh = 1;
    ragd_rc rc = pg_connect(s, out, 0, err);
    if (rc != RAGD_OK) {
        pthread_mutex_lock(&s->pool_mu);
        s->open_n--;
        pthread_cond_signal(&s->pool_cv);
        pthread_mutex_unlock(&s->pool_mu);
    }
    return rc;
}

static void reader_release(pg_store *s, PGconn *c, int dead)
{
    pthread_mutex_lock(&s->pool_mu);
    if (dead || c == NULL) {
        if (c) PQfinish(c);
        s->open_n--;
    } else {
        s->idle[s->idle_n++] = c;
    }
    pthread_cond_signal(&s->pool_cv);
    pthread_mutex_unlock(&s->pool_mu);
}

/* Runs one read statement on a pooled connection; a stale pooled connection (Postgres
 * restarted) is replaced and the statement tried once more. Returns: the result or NULL. */
static PGresult *reader_run(pg_store *s, const char *sql, int n, const char *const *vals,
                            const int *lens, const int *fmts, int binary, ragd_err *err)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        PGconn *c = NULL;
        int fresh = 0;
        if (reader_acquire(s, &c, &fresh, err) != RAGD_OK) return NULL;
        int dead = 0;
        ragd_err e2 = {0};
        PGresult *r = pg_run(s, c, sql, n, vals, lens, fmts, binary, &dead, &e2);
        reader_release(s, c, dead);
        if (r != NULL) return r;
        if (dead && !fresh) continue;
        ragd_err_set(err, e2.rc, "%s", e2.msg);
        return NULL;
    }
    return NULL;
}

/* ---- helpers -------------------------------------------------------------------------------- */

static char *col_dup(const PGresult *r, int row, int col)
{
    const char *v = PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col);
    return strdup(v);
}

static int64_t col_i64(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* Returns: the vector as pgvector text ("[0.1,0.2]"), new (free()), or NULL on OOM. */
static char *vector_text(const float *v, int dims)
{
    size_t cap = (size_t)dims * 18 + 4;
    char *out = malloc(cap);
    if (out == NULL) return NULL;
    size_t n = 0;
    out[n++] = '[';
    for (int i = 0; i < dims; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%.9g", i ? "," : "", (double)v[i]);
    out[n++] = ']';
    out[n] = '\0';
    return out;
}

/* Little-endian float32 bytes, the format of the embeddings table on both backends. */
static void floats_to_le(const float *v, int dims, unsigned char *out)
{
    for (int i = 0; i < dims; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        out[4 * i] = (unsigned char)u;
        out[4 * i + 1] = (unsigned char)(u >> 8);
        out[4 * i + 2] = (unsigned char)(u >> 16);
        out[4 * i + 3] = (unsigned char)(u >> 24);
    }
}

static void le_to_floats(const unsigned char *b, int dims, float *out)
{
    for (int i = 0; i < dims; i++) {
        uint32_t u = (uint32_t)b[4 * i] | (uint32_t)b[4 * i + 1] << 8 |
                     (uint32_t)b[4 * i + 2] << 16 | (uint32_t)b[4 * i + 3] << 24;
        memcpy(&out[i], &u, 4);
    }
}

/* Decodes a bytea column in text (hex) output of dims float32 into out. Returns: 0, or -1 when
 * it is not dims * 4 bytes. */
static int bytea_floats(const PGresult *r, int row, int col, int dims, float *out)
{
    const char *t = PQgetvalue(r, row, col);
    if (t[0] != '\\' || t[1] != 'x' || strlen(t + 2) != (size_t)dims * 8) return -1;
    unsigned char *bytes = malloc((size_t)dims * 4);
    if (bytes == NULL) return -1;
    for (size_t i = 0; i < (size_t)dims * 4; i++) {
        unsigned v = 0;
        if (sscanf(t + 2 + 2 * i, "%2x", &v) != 1) {
            free(bytes);
            return -1;
        }
        bytes[i] = (unsigned char)v;
    }
    le_to_floats(bytes, dims, out);
    free(bytes);
    return 0;
}

/* Builds "{1,2,3}" for a bigint[] parameter. Returns: new string (free()), or NULL. */
static char *id_array(const int64_t *ids, size_t n)
{
    util_buf b = {0};
    int bad = util_buf_puts(&b, "{") != 0;
    for (size_t i = 0; i < n && !bad; i++)
        bad = util_buf_printf(&b, "%s%" PRId64, i ? "," : "", ids[i]) != 0;
    bad |= util_buf_puts(&b, "}") != 0;
    if (bad) {
        util_buf_free(&b);
        return NULL;
    }
    return util_buf_steal(&b);
}

/* ---- schema --------------------------------------------------------------------------------- */

/* Creates the extension, the schema and the tables (not the vector column: its dimensions come
 * with the embedding model, see vectors_open). */
static ragd_rc schema_apply(pg_store *s, ragd_err *err)
{
    ragd_err e1 = {0};
    PGresult *r = writer_run(s, "CREATE EXTENSION IF NOT EXISTS vector", 0, NULL, NULL, NULL, 0,
                             &e1);
    if (r == NULL) {
        if (e1.rc == RAGD_ERR_UNAVAILABLE) return ragd_err_set(err, e1.rc, "%s", e1.msg);
        if (strstr(e1.msg, "permission denied") || strstr(e1.msg, "must be owner") ||
            strstr(e1.msg, "superuser"))
            return ragd_err_set(err, RAGD_ERR_STORE, "%s: the database role may not create the "
                                "pgvector extension; have an administrator run CREATE EXTENSION "
                                "vector in this database once", e1.msg);
        return ragd_err_set(err, RAGD_ERR_STORE, "%s: the pgvector extension is not installed on "
                            "the Postgres server (Debian/Ubuntu with the PGDG repository: "
                            "apt install postgresql-16-pgvector)", e1.msg);
    }
    PQclear(r);
    char sql[4096];
    snprintf(sql, sizeof sql,
             "BEGIN;"
             "SELECT pg_advisory_xact_lock(hashtext('ragd schema %s'));"
             "CREATE SCHEMA IF NOT EXISTS \"%s\";"
             "CREATE TABLE IF NOT EXISTS meta (key text PRIMARY KEY, value text NOT NULL);"
             "INSERT INTO meta VALUES ('schema_version', '%d') ON CONFLICT (key) DO NOTHING;"
             "CREATE TABLE IF NOT EXISTS documents (id bigserial PRIMARY KEY,"
             " collection text NOT NULL DEFAULT 'default', path text NOT NULL,"
             " source text NOT NULL, title text NOT NULL, checksum text NOT NULL,"
             " size bigint NOT NULL, mtime bigint NOT NULL, tags text NOT NULL DEFAULT '[]',"
             " metadata text NOT NULL DEFAULT '{}', ingested_at bigint NOT NULL,"
             " UNIQUE (collection, path));"
             "CREATE TABLE IF NOT EXISTS chunks (id bigserial PRIMARY KEY,"
             " document_id bigint NOT NULL REFERENCES documents(id) ON DELETE CASCADE,"
             " collection text NOT NULL, ordinal int NOT NULL, text text NOT NULL,"
             " heading text NOT NULL, tokens bigint NOT NULL, char_start bigint NOT NULL,"
             " char_end bigint NOT NULL, checksum text NOT NULL, page int NOT NULL DEFAULT 0,"
             " tsv tsvector NOT NULL, tsv_len int NOT NULL DEFAULT 0,"
             " UNIQUE (document_id, ordinal));"
             "CREATE INDEX IF NOT EXISTS chunks_tsv ON chunks USING gin (tsv);"
             "CREATE INDEX IF NOT EXISTS chunks_collection ON chunks (collection);"
             "CREATE INDEX IF NOT EXISTS chunks_checksum ON chunks (checksum);"
             "CREATE INDEX IF NOT EXISTS chunks_document ON chunks (document_id);"
             "CREATE TABLE IF NOT EXISTS embeddings (checksum text NOT NULL, model text NOT NULL,"
             " dims int NOT NULL, vector bytea NOT NULL, created_at bigint NOT NULL,"
             " PRIMARY KEY (checksum, model, dims));"
             "CREATE TABLE IF NOT EXISTS ingest_leases (collection text PRIMARY KEY,"
             " holder text NOT NULL, expires_at timestamptz NOT NULL,"
             " host text NOT NULL DEFAULT '', pid int NOT NULL DEFAULT 0);"
             "COMMIT",
             s->schema, s->schema, PG_SCHEMA_VERSION);
    ragd_rc rc = writer_exec(s, sql, 0, NULL, err);
    if (rc != RAGD_OK) {
        PQclear(writer_run(s, "ROLLBACK", 0, NULL, NULL, NULL, 0, &e1));
        return rc;
    }
    r = writer_run(s, "SELECT value FROM meta WHERE key = 'schema_version'", 0, NULL, NULL, NULL,
                   0, err);
    if (r == NULL) return err->rc;
    long v = PQntuples(r) ? strtol(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    PQclear(r);
    if (v > PG_SCHEMA_VERSION)
        return ragd_err_set(err, RAGD_ERR_STORE, "postgres schema %s has ragd schema version %ld "
                            "but this ragd supports up to %d; upgrade ragd or use another "
                            "[store] pg_schema", s->schema, v, PG_SCHEMA_VERSION);
    return RAGD_OK;
}

/* Reads whether chunks.embedding exists and its dimensions (0 when missing). */
static ragd_rc vector_column_dims(pg_store *s, int *dims, ragd_err *err)
{
    char sql[400];
    snprintf(sql, sizeof sql,
             "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
             "to_regclass('\"%s\".chunks') AND attname = 'embedding' AND NOT attisdropped",
             s->schema);
    PGresult *r = writer_run(s, sql, 0, NULL, NULL, NULL, 0, err);
    if (r == NULL) return err->rc;
    *dims = 0;
    if (PQntuples(r) > 0) {
        const char *t = strchr(PQgetvalue(r, 0, 0), '(');
        *dims = t ? atoi(t + 1) : -1;
    }
    PQclear(r);
    return RAGD_OK;
}

/* (Re)creates chunks.embedding as vector(dims) with its HNSW index. */
static ragd_rc vector_column_make(pg_store *s, int drop, ragd_err *err)
{
    char sql[700];
    snprintf(sql, sizeof sql,
             "%s ALTER TABLE chunks ADD COLUMN embedding vector(%d);"
             "CREATE INDEX IF NOT EXISTS chunks_embedding ON chunks USING hnsw "
             "(embedding vector_cosine_ops) WITH (m = %d, ef_construction = %d)",
             drop ? "DROP INDEX IF EXISTS chunks_embedding; ALTER TABLE chunks DROP COLUMN IF "
                    "EXISTS embedding;"
                  : "",
             s->dims, s->cfg->hnsw_m, s->cfg->hnsw_ef_construction);
    ragd_rc rc = writer_exec(s, sql, 0, NULL, err);
    if (rc == RAGD_OK) s->has_vectors = 1;
    return rc;
}

/* ---- open / close --------------------------------------------------------------------------- */

static void lease_stop(pg_store *s);

static void pg_close(store *st)
{
    pg_store *s = pg_of(st);
    if (s == NULL) return;
    lease_stop(s);
    if (s->writer) PQfinish(s->writer);
    for (size_t i = 0; i < s->idle_n; i++) PQfinish(s->idle[i]);
    free(s->idle);
    pthread_mutex_destroy(&s->pool_mu);
    pthread_cond_destroy(&s->pool_cv);
    pthread_mutex_destroy(&s->lease_mu);
    pthread_cond_destroy(&s->lease_cv);
    free(s);
}

static ragd_rc pg_open(const ragd_cfg *cfg, int readonly, store **out, ragd_err *err)
{
    if (cfg->database_url == NULL || cfg->database_url[0] == '\0')
        return ragd_err_set(err, RAGD_ERR_CONFIG, "vector_backend pgvector needs [store] "
                            "database_url (or DATABASE_URL)");
    pg_store *s = calloc(1, sizeof *s);
    if (s == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    s->base.ops = &store_pg_ops;
    s->cfg = cfg;
    s->readonly = readonly;
    s->timeout_ms = cfg->pg_timeout_ms > 0 ? cfg->pg_timeout_ms : 5000;
    s->write_timeout_ms = s->timeout_ms > 60000 ? s->timeout_ms : 60000;
    snprintf(s->schema, sizeof s->schema, "%s", cfg->pg_schema ? cfg->pg_schema : "ragd");
    s->pool_max = cfg->pg_pool > 0 ? (size_t)cfg->pg_pool : 4;
    s->idle = calloc(s->pool_max, sizeof *s->idle);
    pthread_mutex_init(&s->pool_mu, NULL);
    pthread_cond_init(&s->pool_cv, NULL);
    pthread_mutex_init(&s->lease_mu, NULL);
    pthread_cond_init(&s->lease_cv, NULL);
    gethostname(s->host, sizeof s->host - 1);
    if (s->host[0] == '\0') snprintf(s->host, sizeof s->host, "?");
    snprintf(s->holder, sizeof s->holder, "ragd pid %ld on %s (started %lld)", (long)getpid(),
             s->host, (long long)util_unix_time());
    ragd_rc rc = s->idle ? RAGD_OK : ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    if (rc == RAGD_OK && !readonly) rc = schema_apply(s, err);
    if (rc == RAGD_OK && readonly) {
        /* read-only: the schema must be there already */
        char sql[200];
        snprintf(sql, sizeof sql, "SELECT to_regclass('\"%s\".chunks') IS NOT NULL", s->schema);
        PGresult *r = writer_run(s, sql, 0, NULL, NULL, NULL, 0, err);
        if (r == NULL) rc = err->rc;
        else if (strcmp(PQgetvalue(r, 0, 0), "t") != 0)
            rc = ragd_err_set(err, RAGD_ERR_NOT_FOUND, "no ragd store in postgres schema %s; "
                              "run `ragd ingest` first", s->schema);
        PQclear(r);
    }
    if (rc != RAGD_OK) {
        pg_close(&s->base);
        return rc;
    }
    *out = &s->base;
    return RAGD_OK;
}

static ragd_rc meta_get(pg_store *s, const char *key, char **value, ragd_err *err)
{
    const char *vals[1] = {key};
    PGresult *r = writer_run(s, "SELECT value FROM meta WHERE key = $1", 1, vals, NULL, NULL, 0,
                             err);
    if (r == NULL) return err->rc;
    *value = PQntuples(r) ? strdup(PQgetvalue(r, 0, 0)) : NULL;
    PQclear(r);
    return RAGD_OK;
}

static ragd_rc pg_model_check(store *st, const char *model, int dims, ragd_err *err)
{
    pg_store *s = pg_of(st);
    char *stored_model = NULL, *stored_dims = NULL;
    ragd_rc rc = meta_get(s, "embed_model", &stored_model, err);
    if (rc == RAGD_OK) rc = meta_get(s, "embed_dims", &stored_dims, err);
    int64_t chunks = 0;
    if (rc == RAGD_OK) {
        PGresult *r = writer_run(s, "SELECT count(*) FROM (SELECT 1 FROM chunks LIMIT 1) x", 0,
                                 NULL, NULL, NULL, 0, err);
        if (r == NULL) rc = err->rc;
        else chunks = col_i64(r, 0, 0);
        PQclear(r);
    }
    char dims_s[16];
    snprintf(dims_s, sizeof dims_s, "%d", dims);
    if (rc == RAGD_OK && chunks > 0 && stored_model &&
        (strcmp(stored_model, model) != 0 || (stored_dims && strcmp(stored_dims, dims_s) != 0)))
        rc = ragd_err_set(err, RAGD_ERR_MODEL_MISMATCH,
                          "the store was built with embedding model %s (%s dims) but %s (%d dims) "
                          "is configured; re-index with `ragd ingest --reset` or configure %s",
                          stored_model, stored_dims ? stored_dims : "?", model, dims,
                          stored_model);
    if (rc == RAGD_OK && !s->readonly &&
        (stored_model == NULL || strcmp(stored_model, model) != 0 || stored_dims == NULL ||
         strcmp(stored_dims, dims_s) != 0)) {
        const char *v1[2] = {"embed_model", model}, *v2[2] = {"embed_dims", dims_s};
        static const char put[] = "INSERT INTO meta VALUES ($1, $2) ON CONFLICT (key) DO UPDATE "
                                  "SET value = EXCLUDED.value";
        rc = writer_exec(s, put, 2, v1, err);
        if (rc == RAGD_OK) rc = writer_exec(s, put, 2, v2, err);
    }
    free(stored_model);
    free(stored_dims);
    return rc;
}

static ragd_rc pg_vectors_open(store *st, const char *model, int dims, int empty, ragd_err *err)
{
    pg_store *s = pg_of(st);
    snprintf(s->model, sizeof s->model, "%s", model);
    s->dims = dims;
    int have = 0;
    ragd_rc rc = vector_column_dims(s, &have, err);
    if (rc != RAGD_OK) return rc;
    s->has_vectors = have > 0;
    if (s->readonly || have == dims || empty) return RAGD_OK;
    /* missing, or of other dims in a store without chunks (model_check refused otherwise) */
    return vector_column_make(s, have != 0, err);
}

/* ---- transactions ---------------------------------------------------------------------------- */

static ragd_rc pg_begin(store *st, ragd_err *err)
{
    pg_store *s = pg_of(st);
    ragd_rc rc = writer_exec(s, "BEGIN", 0, NULL, err);
    if (rc == RAGD_OK) s->in_tx = 1;
    return rc;
}

static ragd_rc pg_commit(store *st, ragd_err *err)
{
    pg_store *s = pg_of(st);
    ragd_rc rc = writer_exec(s, "COMMIT", 0, NULL, err);
    s->in_tx = 0;
    return rc;
}

static void pg_rollback(store *st)
{
    pg_store *s = pg_of(st);
    if (s->in_tx && s->writer != NULL) {
        ragd_err err = {0};
        PQclear(writer_run(s, "ROLLBACK", 0, NULL, NULL, NULL, 0, &err));
    }
    s->in_tx = 0;
}

static ragd_rc pg_sync(store *st, ragd_err *err)
{
    (void)st;
    (void)err;
    return RAGD_OK; /* a Postgres commit is durable */
}

/* ---- documents and chunks -------------------------------------------------------------------- */

static ragd_rc doc_rows(const PGresult *r, int row, store_doc *d, ragd_err *err)
{
    d->id = col_i64(r, row, 0);
    d->path = col_dup(r, row, 1);
    d->source = col_dup(r, row, 2);
    d->title = col_dup(r, row, 3);
    d->checksum = col_dup(r, row, 4);
    d->size = col_i64(r, row, 5);
    d->mtime = col_i64(r, row, 6);
    d->tags_json = col_dup(r, row, 7);
    d->metadata_json = col_dup(r, row, 8);
    d->collection = col_dup(r, row, 9);
    if (!d->path || !d->source || !d->title || !d->checksum || !d->tags_json ||
        !d->metadata_json || !d->collection) {
        store_doc_free(d);
        return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    }
    return RAGD_OK;
}

#define DOC_COLUMNS "d.id, d.path, d.source, d.title, d.checksum, d.size, d.mtime, d.tags, " \
                    "d.metadata, d.collection"

static ragd_rc pg_doc_find(store *st, const char *collection, const char *path, store_doc *out,
                           int *found, ragd_err *err)
{
    const char *vals[2] = {collection, path};
    PGresult *r = writer_run(pg_of(st), "SELECT " DOC_COLUMNS " FROM documents d WHERE "
                             "d.collection = $1 AND d.path = $2", 2, vals, NULL, NULL, 0, err);
    if (r == NULL) return err->rc;
    *found = PQntuples(r) > 0;
    ragd_rc rc = *found ? doc_rows(r, 0, out, err) : RAGD_OK;
    PQclear(r);
    return rc;
}

static const char *or_default(const char *s, const char *fallback)
{
    return s != NULL ? s : fallback;
}

static ragd_rc pg_doc_put(store *st, const store_doc *doc, int64_t *id, ragd_err *err)
{
    char size[24], mtime[24], now[24];
    snprintf(size, sizeof size, "%" PRId64, doc->size);
    snprintf(mtime, sizeof mtime, "%" PRId64, doc->mtime);
    snprintf(now, sizeof now, "%lld", (long long)util_unix_time());
    const char *vals[10] = {doc->path, or_default(doc->source, doc->path),
                            or_default(doc->title, ""), or_default(doc->checksum, ""), size,
                            mtime, or_default(doc->tags_json, "[]"),
                            or_default(doc->metadata_json, "{}"), now,
                            or_default(doc->collection, RAGD_COLLECTION_DEFAULT)};
    PGresult *r = writer_run(pg_of(st),
                             "INSERT INTO documents (path, source, title, checksum, size, mtime, "
                             "tags, metadata, ingested_at, collection) VALUES ($1, $2, $3, $4, "
                             "$5, $6, $7, $8, $9, $10) ON CONFLICT (collection, path) DO UPDATE "
                             "SET source = EXCLUDED.source, title = EXCLUDED.title, checksum = "
                             "EXCLUDED.checksum, size = EXCLUDED.size, mtime = EXCLUDED.mtime, "
                             "tags = EXCLUDED.tags, metadata = EXCLUDED.metadata, ingested_at = "
                             "EXCLUDED.ingested_at RETURNING id",
                             10, vals, NULL, NULL, 0, err);
    if (r == NULL) return err->rc;
    if (id) *id = col_i64(r, 0, 0);
    PQclear(r);
    return RAGD_OK;
}

/* Runs a statement with one bigint parameter and returns the first column of the first row. */
static ragd_rc writer_count(pg_store *s, const char *sql, int64_t param, int64_t *out,
                            ragd_err *err)
{
    char p[24];
    snprintf(p, sizeof p, "%" PRId64, param);
    const char *vals[1] = {p};
    PGresult *r = writer_run(s, sql, 1, vals, NULL, NULL, 0, err);
    if (r == NULL) return err->rc;
    *out = PQntuples(r) ? col_i64(r, 0, 0) : strtoll(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return RAGD_OK;
}

static ragd_rc pg_doc_chunk_count(store *st, int64_t doc_id, size_t *n, ragd_err *err)
{
    int64_t c = 0;
    ragd_rc rc = writer_count(pg_of(st), "SELECT count(*) FROM chunks WHERE document_id = $1",
                              doc_id, &c, err);
    if (rc == RAGD_OK) *n = (size_t)c;
    return rc;
}

static ragd_rc pg_doc_chunks_delete(store *st, int64_t doc_id, size_t *removed, ragd_err *err)
{
    int64_t c = 0;
    ragd_rc rc = writer_count(pg_of(st), "DELETE FROM chunks WHERE document_id = $1", doc_id, &c,
                              err);
    if (rc == RAGD_OK && removed) *removed = (size_t)c;
    return rc;
}

static ragd_rc pg_doc_delete(store *st, int64_t doc_id, size_t *removed, ragd_err *err)
{
    size_t n = 0;
    ragd_rc rc = pg_doc_chunks_delete(st, doc_id, &n, err);
    int64_t c = 0;
    if (rc == RAGD_OK)
        rc = writer_count(pg_of(st), "DELETE FROM documents WHERE id = $1", doc_id, &c, err);
    if (rc == RAGD_OK && removed) *removed = n;
    return rc;
}

static ragd_rc pg_doc_list_prefix(store *st, const char *collection, const char *prefix,
                                  int64_t **ids, char ***paths, size_t *n, ragd_err *err)
{
    const char *vals[2] = {collection, prefix ? prefix : ""};
    PGresult *r = writer_run(pg_of(st), "SELECT id, path FROM documents WHERE collection = $1 AND "
                             "starts_with(path, $2) ORDER BY path", 2, vals, NULL, NULL, 0, err);
    if (r == NULL) return err->rc;
    size_t rows = (size_t)PQntuples(r);
    int64_t *id_list = calloc(rows ? rows : 1, sizeof *id_list);
    char **path_list = calloc(rows ? rows : 1, sizeof *path_list);
    ragd_rc rc = id_list && path_list ? RAGD_OK
                                      : ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    for (size_t i = 0; rc == RAGD_OK && i < rows; i++) {
        id_list[i] = col_i64(r, (int)i, 0);
        if ((path_list[i] = col_dup(r, (int)i, 1)) == NULL)
            rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    }
    PQclear(r);
    if (rc != RAGD_OK) {
        for (size_t i = 0; path_list && i < rows; i++) free(path_list[i]);
        free(path_list);
        free(id_list);
        return rc;
    }
    *ids = id_list;
    *paths = path_list;
    *n = rows;
    return RAGD_OK;
}

static ragd_rc pg_chunk_put(store *st, int64_t doc_id, const store_chunk_in *c, const float *vec,
                            int dims, int64_t *id, ragd_err *err)
{
    pg_store *s = pg_of(st);
    if (vec != NULL && dims != s->dims)
        return ragd_err_set(err, RAGD_ERR_INVALID, "chunk vector has %d dims, the store %d", dims,
                            s->dims);
    char doc[24], ord[16], tokens[24], cs[24], ce[24], page[16];
    snprintf(doc, sizeof doc, "%" PRId64, doc_id);
    snprintf(ord, sizeof ord, "%d", c->ordinal);
    snprintf(tokens, sizeof tokens, "%" PRId64, c->tokens);
    snprintf(cs, sizeof cs, "%" PRId64, c->char_start);
    snprintf(ce, sizeof ce, "%" PRId64, c->char_end);
    snprintf(page, sizeof page, "%d", c->page);
    char *text = util_strndup(c->text, c->text_len);
    char *vt = vec ? vector_text(vec, dims) : NULL;
    if (text == NULL || (vec && vt == NULL)) {
        free(text);
        free(vt);
        return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    }
    const char *vals[10] = {doc, ord, text, c->heading, tokens, cs, ce, c->checksum, page, vt};
    /* title and heading path weigh A, the text D; tsv_len counts every token position (the
     * document length of BM25) */
    PGresult *r = writer_run(
        s, s->has_vectors
               ? "WITH v AS (SELECT d.collection, setweight(to_tsvector('english', d.title), 'A') "
                 "|| setweight(to_tsvector('english', $4), 'A') || to_tsvector('english', $3) AS "
                 "tsv FROM documents d WHERE d.id = $1) INSERT INTO chunks (document_id, "
                 "collection, ordinal, text, heading, tokens, char_start, char_end, checksum, "
                 "page, tsv, tsv_len, embedding) SELECT $1, v.collection, $2, $3, $4, $5, $6, $7, "
                 "$8, $9, v.tsv, (SELECT coalesce(sum(array_length(positions, 1)), 0) FROM "
                 "unnest(v.tsv)), $10::vector FROM v RETURNING id"
               : "WITH v AS (SELECT d.collection, setweight(to_tsvector('english', d.title), 'A') "
                 "|| setweight(to_tsvector('english', $4), 'A') || to_tsvector('english', $3) AS "
                 "tsv FROM documents d WHERE d.id = $1) INSERT INTO chunks (document_id, "
                 "collection, ordinal, text, heading, tokens, char_start, char_end, checksum, "
                 "page, tsv, tsv_len) SELECT $1, v.collection, $2, $3, $4, $5, $6, $7, $8, $9, "
                 "v.tsv, (SELECT coalesce(sum(array_length(positions, 1)), 0) FROM "
                 "unnest(v.tsv)) FROM v RETURNING id",
        s->has_vectors ? 10 : 9, vals, NULL, NULL, 0, err);
    free(text);
    free(vt);
    if (r == NULL) return err->rc;
    ragd_rc rc = RAGD_OK;
    if (PQntuples(r) == 0)
        rc = ragd_err_set(err, RAGD_ERR_STORE, "store chunk: no document %" PRId64, doc_id);
    else if (id)
        *id = col_i64(r, 0, 0);
    PQclear(r);
    return rc;
}

static ragd_rc pg_reset(store *st, const char *model, int dims, ragd_err *err)
{
    pg_store *s = pg_of(st);
    snprintf(s->model, sizeof s->model, "%s", model);
    s->dims = dims;
    int have = 0;
    ragd_rc rc = pg_begin(st, err);
    if (rc == RAGD_OK)
        rc = writer_exec(s, "DELETE FROM documents; DELETE FROM meta WHERE key IN "
                         "('embed_model', 'embed_dims')", 0, NULL, err);
    if (rc == RAGD_OK) rc = vector_column_dims(s, &have, err);
    if (rc == RAGD_OK && have != dims) rc = vector_column_make(s, have != 0, err);
    if (rc == RAGD_OK) rc = pg_commit(st, err);
    else pg_rollback(st);
    if (rc == RAGD_OK) rc = pg_model_check(st, model, dims, err);
    return rc;
}

static ragd_rc pg_collection_delete(store *st, const char *collection, int64_t *documents,
                                    int64_t *chunks, ragd_err *err)
{
    pg_store *s = pg_of(st);
    const char *vals[1] = {collection};
    int64_t ch = 0, docs = 0;
    ragd_rc rc = pg_begin(st, err);
    if (rc == RAGD_OK) {
        PGresult *r = writer_run(s, "SELECT count(*) FROM chunks WHERE collection = $1", 1, vals,
                                 NULL, NULL, 0, err);
        if (r == NULL) rc = err->rc;
        else ch = col_i64(r, 0, 0);
        PQclear(r);
    }
    if (rc == RAGD_OK) {
        PGresult *r = writer_run(s, "DELETE FROM documents WHERE collection = $1", 1, vals, NULL,
                                 NULL, 0, err);
        if (r == NULL) rc = err->rc;
        else docs = strtoll(PQcmdTuples(r), NULL, 10);
        PQclear(r);
    }
    if (rc == RAGD_OK) rc = pg_commit(st, err);
    else pg_rollback(st);
    if (rc == RAGD_OK) {
        if (documents) *documents = docs;
        if (chunks) *chunks = ch;
    }
    return rc;
}

/* ---- embeddings ------------------------------------------------------------------------------ */

static ragd_rc pg_embedding_get(store *st, const char *checksum, const char *model, int dims,
                                float *out, int *found, ragd_err *err)
{
    char d[16];
    snprintf(d, sizeof d, "%d", dims);
    const char *vals[3] = {checksum, model, d};
    PGresult *r = writer_run(pg_of(st), "SELECT vector FROM embeddings WHERE checksum = $1 AND "
                             "model = $2 AND dims = $3", 3, vals, NULL, NULL, 0, err);
    if (r == NULL) return err->rc;
    ragd_rc rc = RAGD_OK;
    *found = 0;
    if (PQntuples(r) > 0 && out == NULL) {
        *found = 1; /* known: the caller computes the vector */
    } else if (PQntuples(r) > 0) {
        if (bytea_floats(r, 0, 0, dims, out) != 0)
            rc = ragd_err_set(err, RAGD_ERR_STORE, "embedding %s (%s) is not %d float32 values",
                              checksum, model, dims);
        else
            *found = 1;
    }
    PQclear(r);
    return rc;
}

static ragd_rc pg_embedding_put(store *st, const char *checksum, const char *model, int dims,
                                const float *vec, ragd_err *err)
{
    unsigned char *blob = malloc((size_t)dims * 4);
    if (blob == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    floats_to_le(vec, dims, blob);
    char d[16], now[24];
    snprintf(d, sizeof d, "%d", dims);
    snprintf(now, sizeof now, "%lld", (long long)util_unix_time());
    const char *vals[5] = {checksum, model, d, (const char *)blob, now};
    int lens[5] = {0, 0, 0, dims * 4, 0};
    int fmts[5] = {0, 0, 0, 1, 0};
    PGresult *r = writer_run(pg_of(st), "INSERT INTO embeddings VALUES ($1, $2, $3, $4, $5) ON "
                             "CONFLICT DO NOTHING", 5, vals, lens, fmts, 0, err);
    free(blob);
    if (r == NULL) return err->rc;
    PQclear(r);
    return RAGD_OK;
}

static ragd_rc pg_embeddings_prune(store *st, const char *model, int dims, int64_t *removed,
                                   ragd_err *err)
{
    char d[16];
    snprintf(d, sizeof d, "%d", dims);
    const char *vals[2] = {model, d};
    PGresult *r = writer_run(pg_of(st), "DELETE FROM embeddings e WHERE e.model <> $1 OR e.dims "
                             "<> $2 OR NOT EXISTS (SELECT 1 FROM chunks c WHERE c.checksum = "
                             "e.checksum)", 2, vals, NULL, NULL, 0, err);
    if (r == NULL) return err->rc;
    if (removed) *removed = strtoll(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return RAGD_OK;
}

static ragd_rc pg_vectors_each(store *st, const char *model, int dims, store_vector_fn fn,
                               void *ctx, size_t *missing, ragd_err *err)
{
    pg_store *s = pg_of(st);
    char d[16], after[24], limit[16];
    snprintf(d, sizeof d, "%d", dims);
    snprintf(limit, sizeof limit, "%d", PG_SCAN_BATCH);
    int64_t last = 0;
    size_t absent = 0;
    float *vec = malloc(sizeof(float) * (size_t)dims);
    if (vec == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    ragd_rc rc = RAGD_OK;
    for (;;) {
        snprintf(after, sizeof after, "%" PRId64, last);
        const char *vals[4] = {model, d, after, limit};

        PGresult *r = writer_run(s, "SELECT c.id, e.vector FROM chunks c LEFT JOIN embeddings e "
                                 "ON e.checksum = c.checksum AND e.model = $1 AND e.dims = $2 "
                                 "WHERE c.id > $3 ORDER BY c.id LIMIT $4",
                                 4, vals, NULL, NULL, 0, err);
        if (r == NULL) {
            rc = err->rc;
            break;
        }
        int rows = PQntuples(r);
        for (int i = 0; i < rows && rc == RAGD_OK; i++) {
            last = col_i64(r, i, 0);
            if (PQgetisnull(r, i, 1) || bytea_floats(r, i, 1, dims, vec) != 0) {
                absent++;
                continue;
            }
            if (fn(ctx, last, vec, dims) != 0)
                rc = ragd_err_set(err, RAGD_ERR_INTERNAL, "vector iteration stopped");
        }
        PQclear(r);
        if (rc != RAGD_OK || rows < PG_SCAN_BATCH) break;
    }
    free(vec);
    if (rc == RAGD_OK && missing) *missing = absent;
    return rc;
}

/* ---- reads ----------------------------------------------------------------------------------- */

#define HIT_COLUMNS "c.id, c.document_id, c.ordinal, c.text, c.heading, c.tokens, c.char_start, " \
                    "c.char_end, d.source, d.title, d.path, d.tags, d.metadata, c.page, " \
                    "d.collection, c.checksum"

static int hit_fill(const PGresult *r, int row, store_hit *h)
{
    h->chunk_id = col_i64(r, row, 0);
    h->document_id = col_i64(r, row, 1);
    h->ordinal = (int)col_i64(r, row, 2);
    h->text = col_dup(r, row, 3);
    h->heading = col_dup(r, row, 4);
    h->tokens = col_i64(r, row, 5);
    h->char_start = col_i64(r, row, 6);
    h->char_end = col_i64(r, row, 7);
    h->source = col_dup(r, row, 8);
    h->title = col_dup(r, row, 9);
    h->path = col_dup(r, row, 10);
    h->tags_json = col_dup(r, row, 11);
    h->metadata_json = col_dup(r, row, 12);
    h->page = (int)col_i64(r, row, 13);
    h->collection = col_dup(r, row, 14);
    h->checksum = col_dup(r, row, 15);
    if (!h->text || !h->heading || !h->source || !h->title || !h->path || !h->tags_json ||
        !h->metadata_json || !h->collection || !h->checksum) {
        store_hit_free(h);
        return -1;
    }
    return 0;
}

static ragd_rc pg_chunks_get(store *st, const int64_t *ids, size_t n, store_hit *out,
                             ragd_err *err)
{
    memset(out, 0, n * sizeof *out);
    if (n == 0) return RAGD_OK;
    char *arr = id_array(ids, n);
    if (arr == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    const char *vals[1] = {arr};
    PGresult *r = reader_run(pg_of(st), "SELECT " HIT_COLUMNS " FROM chunks c JOIN documents d ON "
                             "d.id = c.document_id WHERE c.id = ANY($1::bigint[])", 1, vals, NULL,
                             NULL, 0, err);
    free(arr);
    if (r == NULL) return err->rc;
    ragd_rc rc = RAGD_OK;
    for (int row = 0; row < PQntuples(r) && rc == RAGD_OK; row++) {
        int64_t id = col_i64(r, row, 0);
        for (size_t i = 0; i < n; i++) {
            if (ids[i] != id || out[i].chunk_id != 0) continue;
            if (hit_fill(r, row, &out[i]) != 0)
                rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
            break;
        }
    }
    PQclear(r);
    if (rc != RAGD_OK)
        for (size_t i = 0; i < n; i++) store_hit_free(&out[i]);
    return rc;
}

static size_t pg_vector_count(store *st)
{
    (void)st;
    /* Not counted per search (a count(*) per retrieval would cost more than the search): the
     * engine's widening stops when a search returns fewer than it asked for. */
    return SIZE_MAX / 4;
}

/* The nearest k of the collection. ef_search > 0: this search's own hnsw.ef_search, set with SET
 * LOCAL in the same Query message, so it lasts exactly this statement's implicit transaction
 * (a failing SELECT rolls it back with it) and never leaks to the pooled connection's next user. */
static ragd_rc vector_search_run(store *st, const char *collection, const float *query, size_t k,
                                 int ef_search, int64_t *ids, float *scores, size_t *found,
                                 ragd_err *err)
{
    pg_store *s = pg_of(st);
    *found = 0;
    if (!s->has_vectors || k == 0) return RAGD_OK;
    char *vt = vector_text(query, s->dims);
    if (vt == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    char lim[24];
    snprintf(lim, sizeof lim, "%zu", k);
    const char *vals[3] = {vt, collection ? collection : RAGD_COLLECTION_DEFAULT, lim};
    static const char select_sql[] =
        "SELECT id, 1 - (embedding <=> $1::vector) FROM chunks WHERE collection = $2 AND "
        "embedding IS NOT NULL ORDER BY embedding <=> $1::vector LIMIT $3";
    char sql[sizeof select_sql + 64];
    if (ef_search > 0)
        snprintf(sql, sizeof sql, "SET LOCAL hnsw.ef_search = %d; %s", pg_ef(ef_search),
                 select_sql);
    else
        snprintf(sql, sizeof sql, "%s", select_sql);
    PGresult *r = reader_run(s, sql, 3, vals, NULL, NULL, 0, err);
    free(vt);
    if (r == NULL) return err->rc;
    size_t rows = (size_t)PQntuples(r);
    for (size_t i = 0; i < rows && i < k; i++) {
        ids[i] = col_i64(r, (int)i, 0);
        scores[i] = strtof(PQgetvalue(r, (int)i, 1), NULL);
    }
    *found = rows < k ? rows : k;
    PQclear(r);
    return RAGD_OK;
}

static ragd_rc pg_vector_search(store *st, const char *collection, const float *query, size_t k,
                                int64_t *ids, float *scores, size_t *found, ragd_err *err)
{
    return vector_search_run(st, collection, query, k, 0, ids, scores, found, err);
}

/* A request's `ef_search`: at least k, so the graph's candidate list can hold the k asked for
 * (iterative scan would find them anyway, in more rounds). */
static ragd_rc pg_vector_search_ef(store *st, const char *collection, const float *query,
                                   size_t k, int ef_search, int64_t *ids, float *scores,
                                   size_t *found, ragd_err *err)
{
    int ef = (size_t)ef_search < k ? (int)(k < PG_EF_MAX ? k : PG_EF_MAX) : ef_search;
    return vector_search_run(st, collection, query, k, ef, ids, scores, found, err);
}

static int pg_keyword_available(store *st)
{
    (void)st;
    return 1;
}

/* BM25 over the tsvector, as SQLite FTS5's bm25() scores on the faiss side: k1 1.2, b 0.75,
 * idf ln((N - df + 0.5) / (df + 0.5)) floored at 1e-6, a term's frequency counted twice in the
 * title and heading path (weight A) and once in the text, document length = every token
 * position; N, df and the mean length over the whole store (FTS5 has one index for every
 * collection too). Candidates are the collection's chunks matching any term (GIN index). */
static const char bm25_sql[] =
    "WITH terms AS (SELECT DISTINCT u.lexeme FROM unnest($3::text[]) t(term), "
    "unnest(to_tsvector('english', t.term)) u), "
    "q AS (SELECT to_tsquery('simple', string_agg(quote_literal(lexeme), ' | ')) AS q FROM terms), "
    "stats AS (SELECT count(*)::float8 AS n, greatest(coalesce(avg(tsv_len), 1), 1)::float8 AS "
    "avgdl FROM chunks), "
    "df AS (SELECT terms.lexeme, (SELECT count(*) FROM chunks c WHERE c.tsv @@ "
    "to_tsquery('simple', quote_literal(terms.lexeme)))::float8 AS df FROM terms), "
    "cand AS (SELECT c.id, c.tsv, c.tsv_len FROM chunks c, q WHERE q.q IS NOT NULL AND "
    "c.collection = $1 AND c.tsv @@ q.q) "
    "SELECT cand.id, sum(greatest(ln((stats.n - df.df + 0.5) / (df.df + 0.5)), 1e-6) * w.tf * "
    "2.2 / (w.tf + 1.2 * (0.25 + 0.75 * cand.tsv_len / stats.avgdl))) AS s "
    "FROM cand CROSS JOIN stats CROSS JOIN LATERAL (SELECT u.lexeme, (SELECT count(*) + "
    "count(*) FILTER (WHERE wt = 'A') FROM unnest(u.weights) wt)::float8 AS tf FROM "
    "unnest(cand.tsv) u WHERE u.lexeme IN (SELECT lexeme FROM terms)) w JOIN df ON df.lexeme = "
    "w.lexeme GROUP BY cand.id ORDER BY s DESC, cand.id LIMIT $2";

static ragd_rc pg_keyword_search(store *st, const char *collection, const retrieve_terms *terms,
                                 size_t limit, int64_t *ids, double *scores, size_t *found,
                                 ragd_err *err)
{
    *found = 0;
    if (terms->count == 0 || limit == 0) return RAGD_OK;
    /* the terms as one text[] literal: {"a","b"} with quotes and backslashes escaped */
    util_buf arr = {0};
    int bad = util_buf_puts(&arr, "{") != 0;
    for (size_t i = 0; i < terms->count && !bad; i++) {
        bad = util_buf_puts(&arr, i ? ",\"" : "\"") != 0;
        for (const char *p = terms->items[i]; *p && !bad; p++)
            bad = util_buf_printf(&arr, "%s%c", *p == '"' || *p == '\\' ? "\\" : "", *p) != 0;
        bad |= util_buf_puts(&arr, "\"") != 0;
    }
    bad |= util_buf_puts(&arr, "}") != 0;
    if (bad) {
        util_buf_free(&arr);
        return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    }
    char lim[24];
    snprintf(lim, sizeof lim, "%zu", limit);
    const char *vals[3] = {collection ? collection : RAGD_COLLECTION_DEFAULT, lim, arr.data};
    PGresult *r = reader_run(pg_of(st), bm25_sql, 3, vals, NULL, NULL, 0, err);
    util_buf_free(&arr);
    if (r == NULL) return err->rc;
    size_t rows = (size_t)PQntuples(r);
    size_t kept = 0;
    for (size_t i = 0; i < rows && kept < limit; i++) {
        double v = strtod(PQgetvalue(r, (int)i, 1), NULL);
        if (v <= 0.0) continue; /* the interface promises scores > 0 */
        ids[kept] = col_i64(r, (int)i, 0);
        scores[kept++] = v;
    }
    *found = kept;
    PQclear(r);
    return RAGD_OK;
}

static ragd_rc pg_keyword_terms(store *st, const retrieve_terms *terms, const int64_t *top_ids,
                                size_t top_n, int64_t *df, uint32_t *top_mask, int64_t *total,
                                ragd_err *err)
{
    for (size_t i = 0; i < terms->count; i++) {
        df[i] = 0;
        top_mask[i] = 0;
    }
    *total = 0;
    char *arr = id_array(top_ids, top_n);
    if (arr == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    util_buf sql = {0};
    int bad = util_buf_puts(&sql, "SELECT -1, (SELECT count(*) FROM chunks), NULL") != 0;
    for (size_t i = 0; i < terms->count && !bad; i++)
        bad = util_buf_printf(&sql, " UNION ALL SELECT %zu, (SELECT count(*) FROM chunks c WHERE "
                              "c.tsv @@ plainto_tsquery('english', $%zu)), (SELECT "
                              "array_to_string(array_agg(c.id), ',') FROM chunks c WHERE c.id = "
                              "ANY($1::bigint[]) AND c.tsv @@ plainto_tsquery('english', $%zu))",
                              i, i + 2, i + 2) != 0;
    if (bad) {
        util_buf_free(&sql);
        free(arr);
        return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    }
    const char *vals[1 + RAGD_TERMS_MAX];
    vals[0] = arr;
    for (size_t i = 0; i < terms->count; i++) vals[1 + i] = terms->items[i];
    PGresult *r = reader_run(pg_of(st), sql.data, 1 + (int)terms->count, vals, NULL, NULL, 0,
                             err);
    util_buf_free(&sql);
    free(arr);
    if (r == NULL) return err->rc;
    for (int row = 0; row < PQntuples(r); row++) {
        long i = strtol(PQgetvalue(r, row, 0), NULL, 10);
        int64_t count = col_i64(r, row, 1);
        if (i < 0) {
            *total = count;
            continue;
        }
        if ((size_t)i >= terms->count) continue;
        df[i] = count;
        const char *p = PQgetisnull(r, row, 2) ? "" : PQgetvalue(r, row, 2);
        while (*p) {
            int64_t id = strtoll(p, (char **)&p, 10);
            for (size_t j = 0; j < top_n && j < 32; j++)
                if (top_ids[j] == id) top_mask[i] |= 1u << j;
            if (*p == ',') p++;
            else break;
        }
    }
    PQclear(r);
    return RAGD_OK;
}

static ragd_rc pg_stats(store *st, store_stats *out, ragd_err *err)
{
    pg_store *s = pg_of(st);
    PGresult *r = reader_run(s, s->has_vectors
                                    ? "SELECT (SELECT count(*) FROM documents), (SELECT count(*) "
                                      "FROM chunks), (SELECT count(*) FROM embeddings), (SELECT "
                                      "count(*) FROM chunks WHERE embedding IS NOT NULL)"
                                    : "SELECT (SELECT count(*) FROM documents), (SELECT count(*) "
                                      "FROM chunks), (SELECT count(*) FROM embeddings), 0",
                             0, NULL, NULL, NULL, 0, err);
    if (r == NULL) return err->rc;
    store_stats x = {.documents = col_i64(r, 0, 0),
                     .chunks = col_i64(r, 0, 1),
                     .embeddings = col_i64(r, 0, 2),
                     .vectors = (size_t)col_i64(r, 0, 3),
                     /* what the vectors take as stored (float32 and the id), as on faiss */
                     .vector_bytes = (size_t)col_i64(r, 0, 3) * ((size_t)s->dims * 4 + 8)};
    PQclear(r);
    *out = x;
    return RAGD_OK;
}

static ragd_rc pg_doc_page(store *st, const char *collection, const char *prefix, int64_t offset,
                           int64_t limit, store_doc **docs, int64_t **chunk_counts, size_t *n,
                           int64_t *total, ragd_err *err)
{
    char lim[24], off[24];
    snprintf(lim, sizeof lim, "%" PRId64, limit);
    snprintf(off, sizeof off, "%" PRId64, offset);
    const char *vals[4] = {collection, prefix ? prefix : "", lim, off};
    PGresult *r = reader_run(pg_of(st),
                             "SELECT " DOC_COLUMNS ", (SELECT count(*) FROM chunks c WHERE "
                             "c.document_id = d.id), count(*) OVER () FROM documents d WHERE "
                             "d.collection = $1 AND starts_with(d.path, $2) ORDER BY d.path "
                             "LIMIT $3 OFFSET $4", 4, vals, NULL, NULL, 0, err);
    if (r == NULL) return err->rc;
    size_t rows = (size_t)PQntuples(r);
    int64_t all = 0;
    store_doc *list = calloc(rows ? rows : 1, sizeof *list);
    int64_t *counts = calloc(rows ? rows : 1, sizeof *counts);
    ragd_rc rc = list && counts ? RAGD_OK : ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    size_t got = 0;
    for (; rc == RAGD_OK && got < rows; got++) {
        rc = doc_rows(r, (int)got, &list[got], err);
        counts[got] = col_i64(r, (int)got, 10);
        all = col_i64(r, (int)got, 11);
    }
    PQclear(r);
    if (rc == RAGD_OK && rows == 0 && offset > 0) {
        /* past the end: the total still counts */
        PGresult *c = reader_run(pg_of(st), "SELECT count(*) FROM documents WHERE collection = $1 "
                                 "AND starts_with(path, $2)", 2, vals, NULL, NULL, 0, err);
        if (c == NULL) rc = err->rc;
        else all = col_i64(c, 0, 0);
        PQclear(c);
    }
    if (rc != RAGD_OK) {
        store_doc_rows_free(list, got);
        free(counts);
        return rc;
    }
    *docs = list;
    *chunk_counts = counts;
    *n = rows;
    *total = all;
    return RAGD_OK;
}

static ragd_rc pg_doc_chunks_read(store *st, int64_t doc_id, store_hit **hits, size_t *n,
                                  ragd_err *err)
{
    char d[24];
    snprintf(d, sizeof d, "%" PRId64, doc_id);
    const char *vals[1] = {d};
    PGresult *r = reader_run(pg_of(st), "SELECT " HIT_COLUMNS " FROM chunks c JOIN documents d ON "
                             "d.id = c.document_id WHERE c.document_id = $1 ORDER BY c.ordinal",
                             1, vals, NULL, NULL, 0, err);
    if (r == NULL) return err->rc;
    size_t rows = (size_t)PQntuples(r);
    store_hit *list = calloc(rows ? rows : 1, sizeof *list);
    ragd_rc rc = list ? RAGD_OK : ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    for (size_t i = 0; rc == RAGD_OK && i < rows; i++)
        if (hit_fill(r, (int)i, &list[i]) != 0)
            rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    PQclear(r);
    if (rc != RAGD_OK) {
        for (size_t i = 0; list && i < rows; i++) store_hit_free(&list[i]);
        free(list);
        return rc;
    }
    *hits = list;
    *n = rows;
    return RAGD_OK;
}

static int pg_collection_exclusive(store *st, const char *collection)
{
    (void)st;
    (void)collection;
    return 1; /* searches are restricted to their collection in SQL */
}

static ragd_rc pg_collections_list(store *st, store_collection **out, size_t *n, ragd_err *err)
{
    PGresult *r = reader_run(pg_of(st),
                             "SELECT d.collection, count(*), coalesce(sum(cc.n), 0) FROM "
                             "documents d LEFT JOIN (SELECT document_id, count(*) n FROM chunks "
                             "GROUP BY document_id) cc ON cc.document_id = d.id GROUP BY "
                             "d.collection ORDER BY d.collection",
                             0, NULL, NULL, NULL, 0, err);
    if (r == NULL) return err->rc;
    size_t rows = (size_t)PQntuples(r);
    store_collection *list = calloc(rows ? rows : 1, sizeof *list);
    ragd_rc rc = list ? RAGD_OK : ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    for (size_t i = 0; rc == RAGD_OK && i < rows; i++) {
        list[i].name = col_dup(r, (int)i, 0);
        list[i].documents = col_i64(r, (int)i, 1);
        list[i].chunks = col_i64(r, (int)i, 2);
        if (list[i].name == NULL) rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    }
    PQclear(r);
    if (rc != RAGD_OK) {
        store_collections_free(list, rows);
        return rc;
    }
    *out = list;
    *n = rows;
    return RAGD_OK;
}

/* ---- the ingest lease ------------------------------------------------------------------------ */

/* Renews the lease every third of its life on a connection of its own, until lease_stop. */
static void *heartbeat_main(void *arg)
{
    pg_store *s = arg;
    PGconn *c = NULL;
    pthread_mutex_lock(&s->lease_mu);
    while (!s->heartbeat_stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += PG_LEASE_MS / 3000;
        while (!s->heartbeat_stop &&
               pthread_cond_timedwait(&s->lease_cv, &s->lease_mu, &until) != ETIMEDOUT) {
        }
        if (s->heartbeat_stop) break;
        char coll[80];
        snprintf(coll, sizeof coll, "%s", s->lease_collection);
        pthread_mutex_unlock(&s->lease_mu);
        ragd_err err = {0};
        if (c == NULL && pg_connect(s, &c, 0, &err) != RAGD_OK) c = NULL;
        if (c != NULL) {
            char ms[16];
            snprintf(ms, sizeof ms, "%d", PG_LEASE_MS);
            const char *vals[3] = {coll, s->holder, ms};
            int dead = 0;
            PGresult *r = pg_run(s, c, "UPDATE ingest_leases SET expires_at = clock_timestamp() "
                                 "+ $3 * interval '1 millisecond' WHERE collection = $1 AND "
                                 "holder = $2", 3, vals, NULL, NULL, 0, &dead, &err);
            if (r == NULL)
                RAGD_LOG(RAGD_LOG_WARN, "store", "ingest lease on '%s' not renewed: %s", coll,
                         err.msg);
            PQclear(r);
            if (dead) {
                PQfinish(c);
                c = NULL;
            }
        }
        pthread_mutex_lock(&s->lease_mu);
    }
    pthread_mutex_unlock(&s->lease_mu);
    if (c) PQfinish(c);
    return NULL;
}

static void lease_stop(pg_store *s)
{
    pthread_mutex_lock(&s->lease_mu);
    int running = s->heartbeat_running;
    s->heartbeat_stop = 1;
    pthread_cond_broadcast(&s->lease_cv);
    pthread_mutex_unlock(&s->lease_mu);
    if (running) pthread_join(s->heartbeat, NULL);
    s->heartbeat_running = 0;
}

/* Tries to take (or renew) the lease. Returns: RAGD_OK with *got. */
static ragd_rc lease_try(pg_store *s, const char *collection, int *got, ragd_err *err)
{
    char ms[16], pid[16];
    snprintf(ms, sizeof ms, "%d", PG_LEASE_MS);
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    const char *vals[5] = {collection, s->holder, ms, s->host, pid};
    PGresult *r = writer_run(s, "INSERT INTO ingest_leases VALUES ($1, $2, clock_timestamp() + $3 "
                             "* interval '1 millisecond', $4, $5) ON CONFLICT (collection) DO "
                             "UPDATE SET holder = EXCLUDED.holder, expires_at = "
                             "EXCLUDED.expires_at, host = EXCLUDED.host, pid = EXCLUDED.pid WHERE "
                             "ingest_leases.expires_at < clock_timestamp() OR "
                             "ingest_leases.holder = EXCLUDED.holder RETURNING holder",
                             5, vals, NULL, NULL, 0, err);
    if (r == NULL) return err->rc;
    *got = PQntuples(r) > 0;
    PQclear(r);
    return RAGD_OK;
}

static ragd_rc pg_ingest_lock(store *st, const char *collection, ragd_err *err)
{
    pg_store *s = pg_of(st);
    int got = 0;
    ragd_rc rc = lease_try(s, collection, &got, err);
    if (rc != RAGD_OK) return rc;
    if (!got) {
        const char *v1[1] = {collection};
        PGresult *r = writer_run(s, "SELECT holder, ceil(extract(epoch FROM expires_at - "
                                 "clock_timestamp())), host, pid FROM ingest_leases WHERE "
                                 "collection = $1", 1, v1, NULL, NULL, 0, err);
        if (r == NULL) return err->rc;
        if (PQntuples(r) > 0 && strcmp(PQgetvalue(r, 0, 2), s->host) == 0) {
            /* A holder on this host that no longer runs (killed) frees the lease at once;
             * elsewhere its lease has to expire. */
            long pid = strtol(PQgetvalue(r, 0, 3), NULL, 10);
            if (pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH) {
                const char *v2[2] = {collection, PQgetvalue(r, 0, 0)};
                PGresult *d = writer_run(s, "DELETE FROM ingest_leases WHERE collection = $1 AND "
                                         "holder = $2", 2, v2, NULL, NULL, 0, err);
                if (d == NULL) {
                    PQclear(r);
                    return err->rc;
                }
                PQclear(d);
                RAGD_LOG(RAGD_LOG_WARN, "store", "ingest lease on '%s' held by %s, which no "
                         "longer runs: taken over", collection, PQgetvalue(r, 0, 0));
                PQclear(r);
                rc = lease_try(s, collection, &got, err);
                if (rc != RAGD_OK) return rc;
                r = NULL;
                if (!got) return ragd_err_set(err, RAGD_ERR_BUSY, "collection '%s' is being "
                                              "ingested by another ragd", collection);
            }
        }
        if (!got) {
            rc = ragd_err_set(err, RAGD_ERR_BUSY, "collection '%s' is being ingested by %s (its "
                              "lease runs %s more seconds unless renewed); try again when it "
                              "has finished", collection,
                              r && PQntuples(r) ? PQgetvalue(r, 0, 0) : "another ragd",
                              r && PQntuples(r) ? PQgetvalue(r, 0, 1) : "?");
            PQclear(r);
            return rc;
        }
    }
    pthread_mutex_lock(&s->lease_mu);
    snprintf(s->lease_collection, sizeof s->lease_collection, "%s", collection);
    s->heartbeat_stop = 0;
    int started = pthread_create(&s->heartbeat, NULL, heartbeat_main, s) == 0;
    s->heartbeat_running = started;
    pthread_mutex_unlock(&s->lease_mu);
    if (!started) RAGD_LOG(RAGD_LOG_WARN, "store", "no heartbeat thread for the ingest lease");
    return RAGD_OK;
}

static void pg_ingest_unlock(store *st, const char *collection)
{
    pg_store *s = pg_of(st);
    lease_stop(s);
    const char *vals[2] = {collection, s->holder};
    ragd_err err = {0};
    PGresult *r = writer_run(s, "DELETE FROM ingest_leases WHERE collection = $1 AND holder = $2",
                             2, vals, NULL, NULL, 0, &err);
    if (r == NULL)
        RAGD_LOG(RAGD_LOG_WARN, "store", "ingest lease on '%s' not released (%s); it expires by "
                 "itself", collection, err.msg);
    PQclear(r);
}

const store_ops store_pg_ops = {
    .name = "pgvector",
    .open = pg_open,
    .close = pg_close,
    .model_check = pg_model_check,
    .vectors_open = pg_vectors_open,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .sync = pg_sync,
    .flush = pg_sync,
    .doc_find = pg_doc_find,
    .doc_put = pg_doc_put,
    .doc_chunk_count = pg_doc_chunk_count,
    .doc_chunks_delete = pg_doc_chunks_delete,
    .doc_delete = pg_doc_delete,
    .doc_list_prefix = pg_doc_list_prefix,
    .chunk_put = pg_chunk_put,
    .reset = pg_reset,
    .collection_delete = pg_collection_delete,
    .embedding_get = pg_embedding_get,
    .embedding_put = pg_embedding_put,
    .embeddings_prune = pg_embeddings_prune,
    .vectors_each = pg_vectors_each,
    .chunks_get = pg_chunks_get,
    .vector_count = pg_vector_count,
    .vector_search = pg_vector_search,
    .vector_search_ef = pg_vector_search_ef,
    .keyword_available = pg_keyword_available,
    .keyword_search = pg_keyword_search,
    .collection_exclusive = pg_collection_exclusive,
    .collections_list = pg_collections_list,
    .keyword_terms = pg_keyword_terms,
    .stats = pg_stats,
    .doc_page = pg_doc_page,
    .doc_chunks_read = pg_doc_chunks_read,
    .ingest_lock = pg_ingest_lock,
    .ingest_unlock = pg_ingest_unlock,
};
