/* SPDX-License-Identifier: MIT */
/*
 * cfg.c - ragd's configuration. One static table describes every key (section, name, type, where
 * it lives in ragd_cfg, default, flags, range, one-line doc); everything else is driven by it:
 * the embedded defaults (parsed through the same setters as user input), INI files read with
 * libinih, RAGD_<SECTION>_<KEY> environment overrides and their aliases, single keys set from
 * command-line flags, cross-key validation, `ragd check-config` output and freeing.
 * A bad line stops start-up with "path:line: message"; the first error wins.
 */
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <ini.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include "ragd/cfg.h"
#include "ragd/chat.h"
#include "ragd/log.h"
#include "ragd/retrieve.h"

/* How a value is parsed and where it is stored. */
typedef enum ragd_cfg_type {
    RAGD_CFG_T_STRING,    /* char *; may be empty */
    RAGD_CFG_T_BOOL,      /* int 0/1: true/false/yes/no/on/off/1/0, any case */
    RAGD_CFG_T_INT,       /* int; decimal, whole string, range-checked */
    RAGD_CFG_T_SIZE,      /* size_t bytes; plain integer or k/m/g suffix (powers of 1024) */
    RAGD_CFG_T_DOUBLE,    /* double; finite, range-checked */
    RAGD_CFG_T_LISTEN,    /* char *host at offset, int port at offset_aux */
    RAGD_CFG_T_PATHS,     /* char **paths (NULL-terminated) at offset, size_t count at offset_aux */
    RAGD_CFG_T_LOG_LEVEL, /* char *; canonical level name */
    RAGD_CFG_T_ENUM       /* char *; one of choices, stored in the table's spelling */
} ragd_cfg_type;

#define RAGD_CFG_F_SECRET 1u   /* never printed: "<redacted>" when set */
#define RAGD_CFG_F_REQUIRED 2u /* must not be empty after all sources are applied */
#define RAGD_CFG_F_BACKEND 4u  /* enum of build-time backends: unknown values are "not available" */
#define RAGD_CFG_F_LIVE 8u     /* SIGHUP applies a new value without a restart (cfg_reload_build) */
#define RAGD_CFG_F_URL_SECRET 16u /* a URL whose password is never printed (user:<redacted>@) */
#define RAGD_CFG_F_AUTO 32u    /* bool that also takes `auto` (stored as RAGD_CFG_BOOL_AUTO) */

typedef struct ragd_cfg_entry {
    const char *section;
    const char *key;
    ragd_cfg_type type;
    size_t offset;     /* the value's member in ragd_cfg */
    size_t offset_aux; /* listen: the port member; paths: the count member */
    const char *default_value;
    unsigned flags;
    double min, max;                 /* int, size and double only */
    const char *const *choices;      /* enum only; NULL-terminated */
    const char *doc;
} ragd_cfg_entry;

#define RAGD_CFG_OFF(member) offsetof(ragd_cfg, member)

static const char *const provider_choices[] = {"auto", "local", "openai", NULL};
static const char *const send_dimensions_choices[] = {"auto", "true", "false", NULL};
static const char *const utf8_choices[] = {"skip", "repair", NULL};
static const char *const mode_choices[] = {"vector", "keyword", "hybrid", NULL};
static const char *const fusion_choices[] = {"rrf", "relative", NULL};
static const char *const ocr_choices[] = {"auto", "off", "force", NULL};
static const char *const rerank_choices[] = {"none", "tei", "cohere", NULL};
static const char *const low_confidence_choices[] = {"ask", "pass", NULL};

#define RAGD_CFG_SIZE_1K 1024.0
#define RAGD_CFG_SIZE_1G 1073741824.0

/* The order here is the order of `ragd check-config`, config.example.ini and docs/CONFIG.md. */
static const ragd_cfg_entry cfg_table[] = {
    {"server", "listen", RAGD_CFG_T_LISTEN, RAGD_CFG_OFF(listen_host), RAGD_CFG_OFF(listen_port),
     "127.0.0.1:8088", 0, 0, 0, NULL, "address to bind, HOST:PORT or [IPv6]:PORT"},
    {"server", "threads", RAGD_CFG_T_INT, RAGD_CFG_OFF(threads), 0, "8", 0, 1, 256, NULL,
     "HTTP worker threads, and retrievals running at once"},
    {"server", "max_body_bytes", RAGD_CFG_T_SIZE, RAGD_CFG_OFF(max_body_bytes), 0, "1048576",
     RAGD_CFG_F_LIVE, RAGD_CFG_SIZE_1K, RAGD_CFG_SIZE_1G, NULL,
     "largest request body in bytes; larger gets 413"},
    {"server", "connection_timeout", RAGD_CFG_T_INT, RAGD_CFG_OFF(connection_timeout_s), 0, "30", 0,
     1, 3600, NULL, "idle connection timeout in seconds"},
    {"server", "shutdown_timeout", RAGD_CFG_T_INT, RAGD_CFG_OFF(shutdown_timeout_s), 0, "30",
     RAGD_CFG_F_LIVE, 1, 3600, NULL, "seconds SIGTERM waits for requests in flight"},
    {"server", "auth_token", RAGD_CFG_T_STRING, RAGD_CFG_OFF(auth_token), 0, "", RAGD_CFG_F_SECRET,
     0, 0, NULL, "bearer token required on every endpoint but /health; empty: no auth"},
    {"server", "max_connections", RAGD_CFG_T_INT, RAGD_CFG_OFF(max_connections), 0, "1024", 0, 8,
     1000000, NULL, "open client connections in all; idle ones are closed first to make room"},
    {"server", "max_connections_per_ip", RAGD_CFG_T_INT, RAGD_CFG_OFF(max_connections_per_ip), 0,
     "256", 0, 1, 1000000, NULL, "open connections from one client address"},
    {"server", "request_timeout", RAGD_CFG_T_INT, RAGD_CFG_OFF(request_timeout_s), 0, "30", 0, 1,
     3600, NULL, "seconds a whole request (head and body) may take to arrive"},

    {"rag", "enabled", RAGD_CFG_T_BOOL, RAGD_CFG_OFF(rag_enabled), 0, "true", RAGD_CFG_F_LIVE, 0,
     0, NULL, "false makes /retrieve answer at once with no chunks"},

    {"store", "data_dir", RAGD_CFG_T_STRING, RAGD_CFG_OFF(data_dir), 0, "var/vectorstore",
     RAGD_CFG_F_REQUIRED, 0, 0, NULL, "directory for the SQLite database and the FAISS index"},
    {"store", "vector_backend", RAGD_CFG_T_ENUM, RAGD_CFG_OFF(vector_backend), 0, "faiss",
     RAGD_CFG_F_BACKEND, 0, 0, store_backend_names,
     "where documents, chunks and vectors live: faiss (SQLite + FAISS in data_dir) or pgvector "
     "(Postgres at database_url)"},
    {"store", "index_factory", RAGD_CFG_T_STRING, RAGD_CFG_OFF(index_factory), 0, "auto", 0, 0, 0,
     NULL, "FAISS index type: auto (Flat below index_auto_threshold vectors, HNSW32 from it), "
     "Flat (exact) or HNSW<M> (approximate)"},
    {"store", "index_auto_threshold", RAGD_CFG_T_INT, RAGD_CFG_OFF(index_auto_threshold), 0,
     "20000", 0, 2, 2000000000, NULL,
     "index_factory = auto: vectors from which the index is HNSW32 (back to Flat below half)"},
    {"store", "index_hnsw_ef_construction", RAGD_CFG_T_INT,
     RAGD_CFG_OFF(index_hnsw_ef_construction), 0, "128", 0, 4, 4096, NULL,
     "FAISS HNSW graph-build breadth (efConstruction): higher builds slower, finds more"},
    {"store", "hnsw_ef_search", RAGD_CFG_T_INT, RAGD_CFG_OFF(hnsw_ef_search), 0, "256", 0, 1, 65536,
     NULL, "HNSW search breadth (efSearch): higher is slower with better recall"},
    {"store", "database_url", RAGD_CFG_T_STRING, RAGD_CFG_OFF(database_url), 0, "",
     RAGD_CFG_F_URL_SECRET, 0, 0, NULL,
     "pgvector: libpq URI of the Postgres database (password redacted everywhere)"},
    {"store", "pg_schema", RAGD_CFG_T_STRING, RAGD_CFG_OFF(pg_schema), 0, "ragd", 0, 0, 0, NULL,
     "pgvector: the schema ragd's tables live in, created and migrated by ragd"},
    {"store", "pg_pool", RAGD_CFG_T_INT, RAGD_CFG_OFF(pg_pool), 0, "4", 0, 1, 64, NULL,
     "pgvector: connections kept open for retrievals (one more is used for writes)"},
    {"store", "pg_timeout_ms", RAGD_CFG_T_INT, RAGD_CFG_OFF(pg_timeout_ms), 0, "5000", 0, 100,
     600000, NULL,
     "pgvector: longest wait for Postgres (connect or statement) before a 503 answer"},
    {"store", "hnsw_m", RAGD_CFG_T_INT, RAGD_CFG_OFF(hnsw_m), 0, "16", 0, 2, 100, NULL,
     "pgvector: HNSW index m (links per node), at index creation"},
    {"store", "hnsw_ef_construction", RAGD_CFG_T_INT, RAGD_CFG_OFF(hnsw_ef_construction), 0, "64",
     0, 4, 1000, NULL, "pgvector: HNSW index ef_construction, at index creation"},

    {"ingest", "paths", RAGD_CFG_T_PATHS, RAGD_CFG_OFF(ingest_paths),
     RAGD_CFG_OFF(ingest_path_count), "docs", 0, 0, 0, NULL,
     "colon-separated files or directories ingested by serve at start"},
    {"ingest", "on_start", RAGD_CFG_T_BOOL, RAGD_CFG_OFF(ingest_on_start), 0, "true", 0, 0, 0, NULL,
     "serve ingests paths in the background at start"},
    {"ingest", "max_file_bytes", RAGD_CFG_T_SIZE, RAGD_CFG_OFF(max_file_bytes), 0, "10485760",
     RAGD_CFG_F_LIVE, RAGD_CFG_SIZE_1K, RAGD_CFG_SIZE_1G, NULL,
     "larger files are reported and skipped, not read"},
    {"ingest", "allowed_roots", RAGD_CFG_T_PATHS, RAGD_CFG_OFF(ingest_allowed_roots),
     RAGD_CFG_OFF(ingest_allowed_root_count), "", 0, 0, 0, NULL,
     "colon-separated directories POST /ingest may read; empty: the paths above"},
    {"ingest", "include", RAGD_CFG_T_PATHS, RAGD_CFG_OFF(ingest_include),
     RAGD_CFG_OFF(ingest_include_count), "", 0, 0, 0, NULL,
     "colon-separated globs; when set, only matching files are ingested"},
    {"ingest", "exclude", RAGD_CFG_T_PATHS, RAGD_CFG_OFF(ingest_exclude),
     RAGD_CFG_OFF(ingest_exclude_count), "", 0, 0, 0, NULL,
     "colon-separated globs of files (or directory names) never ingested"},
    {"ingest", "unknown_as_text", RAGD_CFG_T_BOOL, RAGD_CFG_OFF(ingest_unknown_as_text), 0,
     "false", 0, 0, 0, NULL, "read files of unknown extension as plain text"},
    {"ingest", "invalid_utf8", RAGD_CFG_T_ENUM, RAGD_CFG_OFF(ingest_invalid_utf8), 0, "skip", 0, 0,
     0, utf8_choices, "skip: refuse such files; repair: replace bad bytes (with a warning)"},
    {"ingest", "max_document_bytes", RAGD_CFG_T_SIZE, RAGD_CFG_OFF(max_document_bytes), 0,
     "1048576", 0, RAGD_CFG_SIZE_1K, RAGD_CFG_SIZE_1G, NULL,
     "largest pushed document text (POST /documents); larger gets 413"},
    {"ingest", "ocr", RAGD_CFG_T_ENUM, RAGD_CFG_OFF(ingest_ocr), 0, "auto", 0, 0, 0, ocr_choices,
     "PDF pages without a text layer: auto (OCR them), off (skip them), force (OCR every page)"},
    {"ingest", "ocr_languages", RAGD_CFG_T_STRING, RAGD_CFG_OFF(ingest_ocr_languages), 0, "eng",
     RAGD_CFG_F_REQUIRED, 0, 0, NULL,
     "Tesseract languages joined by +, e.g. eng+deu (Debian package tesseract-ocr-<lang>)"},
    {"ingest", "ocr_page_timeout", RAGD_CFG_T_INT, RAGD_CFG_OFF(ingest_ocr_page_timeout_s), 0,
     "60", 0, 1, 3600, NULL, "seconds OCR may spend on one page; a slower page is left out"},
    {"ingest", "ocr_max_pages", RAGD_CFG_T_INT, RAGD_CFG_OFF(ingest_ocr_max_pages), 0, "100", 0, 0,
     100000, NULL, "pages OCRed per file at most; later pages without text are left out"},
    {"ingest", "ocr_dpi", RAGD_CFG_T_INT, RAGD_CFG_OFF(ingest_ocr_dpi), 0, "300", 0, 72, 600,
     NULL, "resolution pages are rendered at for OCR"},
    {"ingest", "commit_batch_bytes", RAGD_CFG_T_SIZE, RAGD_CFG_OFF(ingest_commit_batch_bytes), 0,
     "1048576", 0, 0, RAGD_CFG_SIZE_1G, NULL,
     "a directory ingest commits several files in one transaction up to this much text; 0: each "
     "file on its own"},
    {"ingest", "commit_batch_ms", RAGD_CFG_T_INT, RAGD_CFG_OFF(ingest_commit_batch_ms), 0, "50", 0,
     0, 60000, NULL, "longest one ingest batch's commit may hold the commit lock (estimated "
     "from the previous batch), in ms; 0: each file on its own (the CLI ingest: bytes only)"},

    {"chunk", "target_tokens", RAGD_CFG_T_INT, RAGD_CFG_OFF(chunk_target_tokens), 0, "650", 0, 32,
     8192, NULL, "chunk size the chunker aims for, in tokens"},
    {"chunk", "max_tokens", RAGD_CFG_T_INT, RAGD_CFG_OFF(chunk_max_tokens), 0, "800", 0, 32, 8192,
     NULL, "hard maximum chunk size in tokens, >= target_tokens"},
    {"chunk", "overlap", RAGD_CFG_T_DOUBLE, RAGD_CFG_OFF(chunk_overlap), 0, "0.15", 0, 0, 0.5, NULL,
     "fraction of target_tokens repeated between neighbouring chunks"},

    {"embed", "provider", RAGD_CFG_T_ENUM, RAGD_CFG_OFF(embed_provider), 0, "auto", 0, 0, 0,
     provider_choices,
     "embedding provider: local (built-in), openai (OpenAI-compatible HTTP API) or auto "
     "(openai when api_key is set, else local)"},
    {"embed", "dims", RAGD_CFG_T_INT, RAGD_CFG_OFF(embed_dims), 0, "1024", 0, 64, 4096, NULL,
     "vector dimensions (openai: checked against every reply, sent as dimensions)"},
    {"embed", "batch_size", RAGD_CFG_T_INT, RAGD_CFG_OFF(embed_batch_size), 0, "64", 0, 1, 2048,
     NULL, "texts per provider call"},
    {"embed", "api_key", RAGD_CFG_T_STRING, RAGD_CFG_OFF(embed_api_key), 0, "", RAGD_CFG_F_SECRET,
     0, 0, NULL, "API key for a remote provider; secret, never printed"},
    {"embed", "base_url", RAGD_CFG_T_STRING, RAGD_CFG_OFF(embed_base_url), 0,
     "https://api.openai.com/v1", 0, 0, 0, NULL,
     "openai: API root; requests go to {base_url}/embeddings"},
    {"embed", "model", RAGD_CFG_T_STRING, RAGD_CFG_OFF(embed_model), 0, "text-embedding-3-small",
     0, 0, 0, NULL, "openai: embedding model name"},
    {"embed", "send_dimensions", RAGD_CFG_T_ENUM, RAGD_CFG_OFF(embed_send_dimensions), 0, "auto",
     0, 0, 0, send_dimensions_choices,
     "openai: send dims as `dimensions`: auto (text-embedding-3 models only), true or false"},
    {"embed", "headers", RAGD_CFG_T_STRING, RAGD_CFG_OFF(embed_headers), 0, "",
     RAGD_CFG_F_SECRET, 0, 0, NULL,
     "openai: extra request headers, \"Name: value\" separated by \";\"; secret"},
    {"embed", "concurrency", RAGD_CFG_T_INT, RAGD_CFG_OFF(embed_concurrency), 0, "4", 0, 1, 64,
     NULL, "openai: embedding requests in flight at once"},
    {"embed", "max_retries", RAGD_CFG_T_INT, RAGD_CFG_OFF(embed_max_retries), 0, "5", 0, 0, 20,
     NULL, "openai: retries of one request on 408/409/429/5xx/timeouts"},
    {"embed", "retry_max_time", RAGD_CFG_T_INT, RAGD_CFG_OFF(embed_retry_max_time_s), 0, "60", 0,
     1, 3600, NULL, "openai: seconds one request may spend in retries before it fails"},
    {"embed", "connect_timeout", RAGD_CFG_T_INT, RAGD_CFG_OFF(embed_connect_timeout_s), 0, "10",
     0, 1, 600, NULL, "openai: TCP+TLS connect timeout in seconds"},
    {"embed", "timeout", RAGD_CFG_T_INT, RAGD_CFG_OFF(embed_timeout_s), 0, "60", 0, 1, 3600,
     NULL, "openai: total timeout of one request attempt in seconds"},
    {"embed", "price_per_million", RAGD_CFG_T_DOUBLE, RAGD_CFG_OFF(embed_price_per_million), 0,
     "0.02", 0, 0, 1000, NULL,
     "price in USD per million embedded tokens, for the cost estimates"},

    {"cache", "redis_url", RAGD_CFG_T_STRING, RAGD_CFG_OFF(cache_redis_url), 0, "",
     RAGD_CFG_F_SECRET, 0, 0, NULL,
     "Redis for query embeddings: redis://[:password@]host:port/db or unix:/path; empty: none"},
    {"cache", "ttl", RAGD_CFG_T_INT, RAGD_CFG_OFF(cache_ttl_s), 0, "600", 0, 1, 2592000, NULL,
     "seconds a query embedding stays in Redis"},
    {"cache", "memory_entries", RAGD_CFG_T_INT, RAGD_CFG_OFF(cache_memory_entries), 0, "1024", 0,
     0, 1000000, NULL, "query embeddings kept in the in-process LRU; 0 turns it off"},
    {"cache", "connect_timeout_ms", RAGD_CFG_T_INT, RAGD_CFG_OFF(cache_connect_timeout_ms), 0,
     "200", 0, 1, 10000, NULL, "Redis connect timeout in milliseconds"},
    {"cache", "command_timeout_ms", RAGD_CFG_T_INT, RAGD_CFG_OFF(cache_command_timeout_ms), 0,
     "100", 0, 1, 10000, NULL, "Redis command timeout in milliseconds"},
    {"cache", "reconnect_interval_ms", RAGD_CFG_T_INT,
     RAGD_CFG_OFF(cache_reconnect_interval_ms), 0, "1000", 0, 50, 600000, NULL,
     "pause between Redis health checks and reconnect attempts, in milliseconds"},

    {"retrieve", "default_k", RAGD_CFG_T_INT, RAGD_CFG_OFF(retrieve_default_k), 0, "5",
     RAGD_CFG_F_LIVE, 1, 1000, NULL, "chunks returned when a request gives no k, <= max_k"},
    {"retrieve", "max_k", RAGD_CFG_T_INT, RAGD_CFG_OFF(retrieve_max_k), 0, "50",
     RAGD_CFG_F_LIVE, 1, 1000, NULL, "largest k a request may ask for; larger is a 400"},
    {"retrieve", "min_score", RAGD_CFG_T_DOUBLE, RAGD_CFG_OFF(retrieve_min_score), 0, "0.0",
     RAGD_CFG_F_LIVE, -1, 1, NULL, "results scoring below this are dropped"},
    /* issue 7: ranking, confidence, context (docs/RETRIEVAL.md) */
    {"retrieve", "mode", RAGD_CFG_T_ENUM, RAGD_CFG_OFF(retrieve_mode), 0, "hybrid", RAGD_CFG_F_LIVE,
     0, 0, mode_choices, "vector, keyword (BM25) or hybrid (both, fused)"},
    {"retrieve", "fusion", RAGD_CFG_T_ENUM, RAGD_CFG_OFF(retrieve_fusion), 0, "relative",
     RAGD_CFG_F_LIVE, 0, 0, fusion_choices,
     "hybrid fusion: rrf (reciprocal rank) or relative (normalised scores)"},
    {"retrieve", "rrf_k", RAGD_CFG_T_INT, RAGD_CFG_OFF(retrieve_rrf_k), 0, "60", RAGD_CFG_F_LIVE, 1,
     10000, NULL, "reciprocal rank fusion constant k"},
    {"retrieve", "vector_weight", RAGD_CFG_T_DOUBLE, RAGD_CFG_OFF(retrieve_vector_weight), 0, "0.3",
     RAGD_CFG_F_LIVE, 0, 1, NULL,
     "share of the vector side in fusion; the keyword side gets the rest"},
    {"retrieve", "vector_length_slope", RAGD_CFG_T_DOUBLE,
     RAGD_CFG_OFF(retrieve_vector_length_slope), 0, "0.5", RAGD_CFG_F_LIVE, 0, 1, NULL,
     "hybrid: pivoted length normalisation of cosines; 0 = off"},
    {"retrieve", "candidates", RAGD_CFG_T_INT, RAGD_CFG_OFF(retrieve_candidates), 0, "50",
     RAGD_CFG_F_LIVE, 1, 1000, NULL, "candidates taken from each side before fusion and diversity"},
    {"retrieve", "keyword_max_matches", RAGD_CFG_T_INT, RAGD_CFG_OFF(retrieve_keyword_max_matches),
     0, "4000", RAGD_CFG_F_LIVE, 0, 10000000, NULL,
     "keyword side: BM25 scores at most about this many matching chunks (rarest terms first); "
     "0 = unbounded"},
    {"retrieve", "diversity", RAGD_CFG_T_BOOL, RAGD_CFG_OFF(retrieve_diversity), 0, "false",
     RAGD_CFG_F_LIVE, 0, 0, NULL, "reorder the results by maximal marginal relevance"},
    {"retrieve", "diversity_lambda", RAGD_CFG_T_DOUBLE, RAGD_CFG_OFF(retrieve_diversity_lambda), 0,
     "0.7", RAGD_CFG_F_LIVE, 0, 1, NULL, "MMR trade-off: 1 = relevance only, 0 = novelty only"},
    {"retrieve", "merge_adjacent", RAGD_CFG_T_BOOL, RAGD_CFG_OFF(retrieve_merge_adjacent), 0,
     "true", RAGD_CFG_F_LIVE, 0, 0, NULL,
     "merge adjacent chunks of one document into one context passage"},
    {"retrieve", "max_context_tokens", RAGD_CFG_T_INT, RAGD_CFG_OFF(retrieve_max_context_tokens), 0,
     "2000", RAGD_CFG_F_LIVE, 16, 1000000, NULL, "token budget of the context block"},
    {"retrieve", "min_coverage", RAGD_CFG_T_DOUBLE, RAGD_CFG_OFF(retrieve_min_coverage), 0, "0.25",
     RAGD_CFG_F_LIVE, 0, 1, NULL,
     "below this lexical coverage of the query the answer is low_confidence"},
    {"retrieve", "max_unknown_share", RAGD_CFG_T_DOUBLE, RAGD_CFG_OFF(retrieve_max_unknown_share),
     0, "0.65", RAGD_CFG_F_LIVE, 0, 1, NULL,
     "share of the query's weight on words found nowhere in the store that makes low_confidence"},
    {"retrieve", "min_vector_score", RAGD_CFG_T_DOUBLE, RAGD_CFG_OFF(retrieve_min_vector_score),
     0, "0.0", RAGD_CFG_F_LIVE, 0, 1, NULL,
     "with a model embedder: a best cosine at or above this is confident even when the lexical "
     "coverage is low; 0: not used"},
    {"retrieve", "lexical_variants", RAGD_CFG_T_BOOL, RAGD_CFG_OFF(retrieve_lexical_variants), 0,
     "false", RAGD_CFG_F_LIVE, 0, 0, NULL,
     "keyword side also matches compound/split forms, numbers with units, British/American "
     "spellings"},
    {"retrieve", "parallel_sides", RAGD_CFG_T_BOOL, RAGD_CFG_OFF(retrieve_parallel_sides), 0,
     "auto", RAGD_CFG_F_LIVE | RAGD_CFG_F_AUTO, 0, 0, NULL,
     "hybrid: keyword side in a thread of its own beside the vector side; auto: only while "
     "fewer retrievals are in flight than CPUs and a core is idle"},

    {"rerank", "provider", RAGD_CFG_T_ENUM, RAGD_CFG_OFF(rerank_provider), 0, "none", 0, 0, 0,
     rerank_choices,
     "second ranking stage: none, tei (Text Embeddings Inference /rerank) or cohere "
     "(/v1/rerank, also Jina and Voyage)"},
    {"rerank", "base_url", RAGD_CFG_T_STRING, RAGD_CFG_OFF(rerank_base_url), 0, "", 0, 0, 0, NULL,
     "reranker API root: tei posts to {base_url}/rerank, cohere to {base_url}/v1/rerank"},
    {"rerank", "model", RAGD_CFG_T_STRING, RAGD_CFG_OFF(rerank_model), 0, "", 0, 0, 0, NULL,
     "reranker model name (sent by cohere; part of the score cache key)"},
    {"rerank", "api_key", RAGD_CFG_T_STRING, RAGD_CFG_OFF(rerank_api_key), 0, "",
     RAGD_CFG_F_SECRET, 0, 0, NULL, "bearer token for the reranker; secret, never printed"},
    {"rerank", "candidates", RAGD_CFG_T_INT, RAGD_CFG_OFF(rerank_candidates), 0, "30",
     RAGD_CFG_F_LIVE, 1, 1000, NULL, "fused results sent to the reranker; the top k come back"},
    {"rerank", "timeout_ms", RAGD_CFG_T_INT, RAGD_CFG_OFF(rerank_timeout_ms), 0, "2000",
     RAGD_CFG_F_LIVE, 10, 600000, NULL,
     "milliseconds a rerank call may take; slower or failed calls keep the fused order"},
    {"rerank", "min_score", RAGD_CFG_T_DOUBLE, RAGD_CFG_OFF(rerank_min_score), 0, "0.0",
     RAGD_CFG_F_LIVE, -1000, 1000, NULL,
     "reranked answers whose best rerank score is below are low_confidence; 0: not used"},
    {"rerank", "price_per_million", RAGD_CFG_T_DOUBLE, RAGD_CFG_OFF(rerank_price_per_million), 0,
     "0.0", 0, 0, 1000, NULL, "price in USD per million tokens sent to the reranker"},

    {"prompt", "template", RAGD_CFG_T_STRING, RAGD_CFG_OFF(prompt_template), 0, "", RAGD_CFG_F_LIVE,
     0, 0, NULL, "system prompt template file for POST /context; empty: the built-in one"},
    {"prompt", "persona", RAGD_CFG_T_STRING, RAGD_CFG_OFF(prompt_persona), 0, "Mathia",
     RAGD_CFG_F_REQUIRED | RAGD_CFG_F_LIVE, 0, 0, NULL,
     "the assistant's name in the system prompt"},
    {"prompt", "tools", RAGD_CFG_T_STRING, RAGD_CFG_OFF(prompt_tools), 0, "", RAGD_CFG_F_LIVE, 0, 0,
     NULL, "comma-separated tools the model may use; empty: none"},

    {"intent", "retrieve", RAGD_CFG_T_STRING, RAGD_CFG_OFF(intent_retrieve), 0, "general_chat, search_info",
     RAGD_CFG_F_LIVE, 0, 0, NULL,
     "intents that retrieve: name[:k[:max_context_tokens]], comma-separated"},

    /* issue 15: the chat endpoint (docs/CHAT.md) */
    {"chat", "base_url", RAGD_CFG_T_STRING, RAGD_CFG_OFF(chat_base_url), 0,
     "https://api.openai.com/v1", RAGD_CFG_F_REQUIRED | RAGD_CFG_F_LIVE, 0, 0, NULL,
     "chat upstream API root; turns go to {base_url}/chat/completions"},
    {"chat", "api_key", RAGD_CFG_T_STRING, RAGD_CFG_OFF(chat_api_key), 0, "",
     RAGD_CFG_F_SECRET | RAGD_CFG_F_LIVE, 0, 0, NULL,
     "chat upstream API key (env RAGD_CHAT_API_KEY, else OPENAI_API_KEY); secret"},
    {"chat", "model", RAGD_CFG_T_STRING, RAGD_CFG_OFF(chat_model), 0, "gpt-4o-mini",
     RAGD_CFG_F_REQUIRED | RAGD_CFG_F_LIVE, 0, 0, NULL, "the base model every turn goes to"},
    {"chat", "use_finetuned", RAGD_CFG_T_BOOL, RAGD_CFG_OFF(chat_use_finetuned), 0, "false",
     RAGD_CFG_F_LIVE, 0, 0, NULL,
     "send the finetuned_intents to finetuned_model (env USE_FINETUNED_MODEL); false: rollback"},
    {"chat", "finetuned_model", RAGD_CFG_T_STRING, RAGD_CFG_OFF(chat_finetuned_model), 0, "",
     RAGD_CFG_F_LIVE, 0, 0, NULL, "the fine-tuned model's name; required by use_finetuned"},
    {"chat", "finetuned_base_url", RAGD_CFG_T_STRING, RAGD_CFG_OFF(chat_finetuned_base_url), 0,
     "", RAGD_CFG_F_LIVE, 0, 0, NULL,
     "API root serving the fine-tuned model (a LoRA endpoint); empty: base_url"},
    {"chat", "finetuned_intents", RAGD_CFG_T_STRING, RAGD_CFG_OFF(chat_finetuned_intents), 0,
     "general_chat, intent_parse", RAGD_CFG_F_LIVE, 0, 0, NULL,
     "comma-separated intents the fine-tuned model answers when use_finetuned is on"},
    {"chat", "allow_caller_model", RAGD_CFG_T_BOOL, RAGD_CFG_OFF(chat_allow_caller_model), 0,
     "false", RAGD_CFG_F_LIVE, 0, 0, NULL,
     "true: the caller's `model` is sent upstream; false: ragd's configuration decides"},
    {"chat", "default_intent", RAGD_CFG_T_STRING, RAGD_CFG_OFF(chat_default_intent), 0,
     "general_chat", RAGD_CFG_F_LIVE, 0, 0, NULL,
     "intent of a turn that names none (body intent or X-Ragd-Intent)"},
    {"chat", "on_low_confidence", RAGD_CFG_T_ENUM, RAGD_CFG_OFF(chat_on_low_confidence), 0, "ask",
     RAGD_CFG_F_LIVE, 0, 0, low_confidence_choices,
     "ask: answer with the clarifying question, no upstream call; pass: send the turn with no "
     "context and the instruction to ask"},
    {"chat", "context_window", RAGD_CFG_T_INT, RAGD_CFG_OFF(chat_context_window), 0, "8192",
     RAGD_CFG_F_LIVE, 256, 10000000, NULL, "the model's context window in tokens"},
    {"chat", "context_windows", RAGD_CFG_T_STRING, RAGD_CFG_OFF(chat_context_windows), 0, "",
     RAGD_CFG_F_LIVE, 0, 0, NULL, "per-model windows, \"model:tokens, ...\"; others use "
     "context_window"},
    {"chat", "reserve_tokens", RAGD_CFG_T_INT, RAGD_CFG_OFF(chat_reserve_tokens), 0, "1024",
     RAGD_CFG_F_LIVE, 0, 1000000, NULL,
     "tokens kept for the answer (a request's max_tokens, when larger, wins)"},
    {"chat", "min_context_tokens", RAGD_CFG_T_INT, RAGD_CFG_OFF(chat_min_context_tokens), 0,
     "256", RAGD_CFG_F_LIVE, 0, 1000000, NULL,
     "the context is cut down to this before history is dropped, then further if needed"},
    {"chat", "followup_terms", RAGD_CFG_T_INT, RAGD_CFG_OFF(chat_followup_terms), 0, "4",
     RAGD_CFG_F_LIVE, 0, 32, NULL,
     "a user turn with fewer search terms is a follow-up, searched with the earlier turns"},
    {"chat", "history_query_turns", RAGD_CFG_T_INT, RAGD_CFG_OFF(chat_history_query_turns), 0,
     "2", RAGD_CFG_F_LIVE, 0, 16, NULL, "earlier user turns searched with a follow-up"},
    {"chat", "append_sources", RAGD_CFG_T_BOOL, RAGD_CFG_OFF(chat_append_sources), 0, "true",
     RAGD_CFG_F_LIVE, 0, 0, NULL,
     "append a \"Sources\" section to an answer that cites [n] tags"},
    {"chat", "connect_timeout", RAGD_CFG_T_INT, RAGD_CFG_OFF(chat_connect_timeout_s), 0, "10",
     RAGD_CFG_F_LIVE, 1, 600, NULL, "chat upstream connect timeout in seconds"},
    {"chat", "timeout", RAGD_CFG_T_INT, RAGD_CFG_OFF(chat_timeout_s), 0, "120", RAGD_CFG_F_LIVE,
     1, 3600, NULL, "seconds one upstream attempt may take (streaming: the whole stream)"},
    {"chat", "max_retries", RAGD_CFG_T_INT, RAGD_CFG_OFF(chat_max_retries), 0, "2",
     RAGD_CFG_F_LIVE, 0, 20, NULL,
     "retries on 408/409/429/5xx/network errors, only before any answer byte was sent"},
    {"chat", "retry_max_time", RAGD_CFG_T_INT, RAGD_CFG_OFF(chat_retry_max_time_s), 0, "30",
     RAGD_CFG_F_LIVE, 1, 3600, NULL, "seconds one turn may spend in retries"},
    {"chat", "price_prompt_per_million", RAGD_CFG_T_DOUBLE,
     RAGD_CFG_OFF(chat_price_prompt_per_million), 0, "0.15", RAGD_CFG_F_LIVE, 0, 10000, NULL,
     "USD per million prompt tokens, for the cost estimates"},
    {"chat", "price_completion_per_million", RAGD_CFG_T_DOUBLE,
     RAGD_CFG_OFF(chat_price_completion_per_million), 0, "0.6", RAGD_CFG_F_LIVE, 0, 10000, NULL,
     "USD per million completion tokens, for the cost estimates"},

    {"log", "level", RAGD_CFG_T_LOG_LEVEL, RAGD_CFG_OFF(log_level), 0, "info", RAGD_CFG_F_LIVE, 0,
     0, NULL, "least severe level written: debug, info, warn or error"},
    {"log", "file", RAGD_CFG_T_STRING, RAGD_CFG_OFF(log_file), 0, "var/logs/rag.log", 0, 0, 0,
     NULL, "JSONL log of retrievals and ingests (reopened on SIGHUP); empty: none"},
    {"log", "log_queries", RAGD_CFG_T_BOOL, RAGD_CFG_OFF(log_queries), 0, "false",
     RAGD_CFG_F_LIVE, 0, 0, NULL, "also write raw query text to the log file, not only its hash"},
};

#define RAGD_CFG_COUNT (sizeof cfg_table / sizeof cfg_table[0])

/* Older names the roadmap uses; the RAGD_<SECTION>_<KEY> form wins when both are set. */
static const struct {
    const char *env;
    const char *section;
    const char *key;
} cfg_aliases[] = {
    {"RAG_ENABLED", "rag", "enabled"},
    {"VECTOR_BACKEND", "store", "vector_backend"},
    {"DATABASE_URL", "store", "database_url"},
    {"OPENAI_API_KEY", "embed", "api_key"},
    {"OPENAI_BASE_URL", "embed", "base_url"},
    {"REDIS_URL", "cache", "redis_url"},
    {"OPENAI_API_KEY", "chat", "api_key"},
    {"USE_FINETUNED_MODEL", "chat", "use_finetuned"},
};

/* ---- member access ------------------------------------------------------------------------ */

static void *cfg_member(const ragd_cfg *cfg, size_t offset)
{
    return (char *)cfg + offset;
}

static char **cfg_str_slot(const ragd_cfg *cfg, const ragd_cfg_entry *e)
{
    return cfg_member(cfg, e->offset);
}

/* Returns: 1 if the entry owns a plain char * at e->offset. */
static int cfg_entry_owns_string(const ragd_cfg_entry *e)
{
    return e->type == RAGD_CFG_T_STRING || e->type == RAGD_CFG_T_LISTEN ||
           e->type == RAGD_CFG_T_LOG_LEVEL || e->type == RAGD_CFG_T_ENUM;
}

static void cfg_paths_free(char **paths)
{
    if (paths == NULL) return;
    for (size_t i = 0; paths[i] != NULL; i++) free(paths[i]);
    free(paths);
}

static const ragd_cfg_entry *cfg_entry_find(const char *section, const char *key)
{
    for (size_t i = 0; i < RAGD_CFG_COUNT; i++) {
        if (strcasecmp(cfg_table[i].section, section) == 0 &&
            strcasecmp(cfg_table[i].key, key) == 0)
            return &cfg_table[i];
    }
    return NULL;
}

static int cfg_section_known(const char *section)
{
    for (size_t i = 0; i < RAGD_CFG_COUNT; i++)
        if (strcasecmp(cfg_table[i].section, section) == 0) return 1;
    return 0;
}

/* Writes "unknown key 'k' in section [s]" plus a hint into out. */
static void cfg_unknown_key_explain(const char *section, const char *key, char *out, size_t n)
{
    size_t len = (size_t)snprintf(out, n, "unknown key '%s' in section [%s]", key, section);
    if (len >= n) return;
    const char *sep = "; did you mean";
    int hinted = 0;
    for (size_t i = 0; i < RAGD_CFG_COUNT && len < n; i++) {
        if (strcasecmp(cfg_table[i].key, key) != 0) continue;
        len += (size_t)snprintf(out + len, n - len, "%s [%s] %s", sep, cfg_table[i].section,
                                cfg_table[i].key);
        sep = " or";
        hinted = 1;
    }
    if (hinted) {
        if (len < n) snprintf(out + len, n - len, "?");
        return;
    }
    if (section[0] == '\0') {
        snprintf(out + len, n - len, "; keys must follow a [section] line");
        return;
    }
    int known = cfg_section_known(section);
    const char *prev = NULL;
    sep = known ? "; keys in this section:" : "; known sections:";
    for (size_t i = 0; i < RAGD_CFG_COUNT && len < n; i++) {
        const char *word;
        if (known) {
            if (strcasecmp(cfg_table[i].section, section) != 0) continue;
            word = cfg_table[i].key;
        } else {
            if (prev != NULL && strcmp(prev, cfg_table[i].section) == 0) continue;
            word = prev = cfg_table[i].section;
        }
        len += (size_t)snprintf(out + len, n - len, "%s %s", sep, word);
        sep = ",";
    }
}

/* ---- value parsers: each returns 0, or -1 with a reason in out ------------------------------ */

static int cfg_bool_parse(const char *v, int *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

static int cfg_int_parse(const ragd_cfg_entry *e, const char *v, int *out, char *why, size_t n)
{
    if (!(isdigit((unsigned char)v[0]) ||
          ((v[0] == '-' || v[0] == '+') && isdigit((unsigned char)v[1])))) {
        snprintf(why, n, "'%s' is not an integer", v);
        return -1;
    }
    char *end = NULL;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (*end != '\0') {
        snprintf(why, n, "'%s' is not an integer", v);
        return -1;
    }
    if (errno == ERANGE || (double)x < e->min || (double)x > e->max) {
        snprintf(why, n, "%s is out of range %.0f..%.0f", v, e->min, e->max);
        return -1;
    }
    *out = (int)x;
    return 0;
}

static int cfg_size_parse(const ragd_cfg_entry *e, const char *v, size_t *out, char *why,
                          size_t n)
{
    if (!isdigit((unsigned char)v[0])) {
        snprintf(why, n, "'%s' is not a size (bytes, or a number with suffix k, m or g)", v);
        return -1;
    }
    char *end = NULL;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    int too_big = errno == ERANGE;
    unsigned shift = 0;
    switch (*end) {
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    default: break;
    }
    if (*end != '\0') {
        snprintf(why, n, "'%s' is not a size (bytes, or a number with suffix k, m or g)", v);
        return -1;
    }
    if (!too_big && shift > 0 && x > (ULLONG_MAX >> shift)) too_big = 1;
    if (!too_big) x <<= shift;
    if (too_big || x > SIZE_MAX || (double)x < e->min || (double)x > e->max) {
        snprintf(why, n, "%s is out of range %.0f..%.0f bytes", v, e->min, e->max);
        return -1;
    }
    *out = (size_t)x;
    return 0;
}

static int cfg_double_parse(const ragd_cfg_entry *e, const char *v, double *out, char *why,
                            size_t n)
{
    char *end = NULL;
    errno = 0;
    double x = v[0] != '\0' && !isspace((unsigned char)v[0]) ? strtod(v, &end) : 0.0;
    if (end == NULL || end == v || *end != '\0') {
        snprintf(why, n, "'%s' is not a number", v);
        return -1;
    }
    if (!isfinite(x) || errno == ERANGE) {
        snprintf(why, n, "'%s' is not a finite number", v);
        return -1;
    }
    if (x < e->min || x > e->max) {
        snprintf(why, n, "%s is out of range %g..%g", v, e->min, e->max);
        return -1;
    }
    *out = x;
    return 0;
}

/* Parses HOST:PORT or [IPv6]:PORT. Returns: 0 with *host_out new (free with free()), -1 with a
 * reason, or -2 when out of memory. */
static int cfg_listen_parse(const char *v, char **host_out, int *port_out, char *why, size_t n)
{
    const char *host, *host_end, *port;
    if (v[0] == '[') {
        host = v + 1;
        host_end = strchr(host, ']');
        if (host_end == NULL || host_end[1] != ':') {
            snprintf(why, n, "'%s' is not [IPv6]:PORT", v);
            return -1;
        }
        port = host_end + 2;
    } else {
        host = v;
        host_end = strrchr(v, ':');
        if (host_end == NULL) {
            snprintf(why, n, "'%s' is not HOST:PORT or [IPv6]:PORT", v);
            return -1;
        }
        if (strchr(v, ':') != host_end) {
            snprintf(why, n, "'%s': put an IPv6 address in brackets, e.g. [::1]:8088", v);
            return -1;
        }
        port = host_end + 1;
    }
    if (host_end == host) {
        snprintf(why, n, "'%s' has no host (use 0.0.0.0:PORT for every address)", v);
        return -1;
    }
    size_t digits = strspn(port, "0123456789");
    if (digits == 0 || port[digits] != '\0') {
        snprintf(why, n, "'%s' has no valid port number", v);
        return -1;
    }
    long p = digits > 6 ? 100000 : strtol(port, NULL, 10);
    if (p == 0) {
        snprintf(why, n, "port 0 is not allowed; pick a fixed port");
        return -1;
    }
    if (p > 65535) {
        snprintf(why, n, "port %s is out of range 1..65535", port);
        return -1;
    }
    char *h = strndup(host, (size_t)(host_end - host));
    if (h == NULL) return -2;
    *host_out = h;
    *port_out = (int)p;
    return 0;
}

/* Splits a colon-separated list, dropping empty entries. Returns: a new NULL-terminated array
 * (free with cfg_paths_free) and *count, or NULL when out of memory. */
static char **cfg_paths_split(const char *v, size_t *count)
{
    size_t cap = 1;
    for (const char *p = v; *p; p++)
        if (*p == ':') cap++;
    char **paths = calloc(cap + 1, sizeof *paths);
    if (paths == NULL) return NULL;
    size_t k = 0;
    for (const char *p = v; *p;) {
        size_t len = strcspn(p, ":");
        if (len > 0) {
            paths[k] = strndup(p, len);
            if (paths[k] == NULL) {
                cfg_paths_free(paths);
                return NULL;
            }
            k++;
        }
        p += len;
        if (*p == ':') p++;
    }
    *count = k;
    return paths;
}

static int cfg_choice_find(const ragd_cfg_entry *e, const char *v)
{
    for (int i = 0; e->choices[i] != NULL; i++)
        if (strcasecmp(e->choices[i], v) == 0) return i;
    return -1;
}

static void cfg_choice_explain(const ragd_cfg_entry *e, const char *v, char *why, size_t n)
{
    size_t len;
    if (e->flags & RAGD_CFG_F_BACKEND)
        len = (size_t)snprintf(why, n, "%s '%s' is not available in this build; supported:",
                               e->key, v);
    else
        len = (size_t)snprintf(why, n, "'%s' is not one of:", v);
    for (int i = 0; e->choices[i] != NULL && len < n; i++)
        len += (size_t)snprintf(why + len, n - len, "%s %s", i ? "," : "", e->choices[i]);
}

/* Replaces *slot with a copy of s. Returns: RAGD_OK or RAGD_ERR_NOMEM (slot unchanged). */
static ragd_rc cfg_str_replace(char **slot, const char *s)
{
    char *copy = strdup(s);
    if (copy == NULL) return RAGD_ERR_NOMEM;
    free(*slot);
    *slot = copy;
    return RAGD_OK;
}

/* Parses v as entry e's type and stores it in cfg. On failure cfg is unchanged and why holds the
 * reason. Returns: RAGD_OK, RAGD_ERR_CONFIG (bad value) or RAGD_ERR_NOMEM. */
static ragd_rc cfg_entry_set(ragd_cfg *cfg, const ragd_cfg_entry *e, const char *v, char *why,
                             size_t n)
{
    void *slot = cfg_member(cfg, e->offset);
    switch (e->type) {
    case RAGD_CFG_T_STRING:
        return cfg_str_replace(slot, v);
    case RAGD_CFG_T_BOOL:
        if ((e->flags & RAGD_CFG_F_AUTO) && strcasecmp(v, "auto") == 0) {
            *(int *)slot = RAGD_CFG_BOOL_AUTO;
            return RAGD_OK;
        }
        if (cfg_bool_parse(v, slot) != 0) {
            snprintf(why, n, "'%s' is not a boolean (true/false, yes/no, on/off, 1/0)%s", v,
                     (e->flags & RAGD_CFG_F_AUTO) ? " or auto" : "");
            return RAGD_ERR_CONFIG;
        }
        return RAGD_OK;
    case RAGD_CFG_T_INT:
        return cfg_int_parse(e, v, slot, why, n) == 0 ? RAGD_OK : RAGD_ERR_CONFIG;
    case RAGD_CFG_T_SIZE:
        return cfg_size_parse(e, v, slot, why, n) == 0 ? RAGD_OK : RAGD_ERR_CONFIG;
    case RAGD_CFG_T_DOUBLE:
        return cfg_double_parse(e, v, slot, why, n) == 0 ? RAGD_OK : RAGD_ERR_CONFIG;
    case RAGD_CFG_T_LISTEN: {
        char *host = NULL;
        int port = 0;
        int rc = cfg_listen_parse(v, &host, &port, why, n);
        if (rc == -2) return RAGD_ERR_NOMEM;
        if (rc != 0) return RAGD_ERR_CONFIG;
        free(*(char **)slot);
        *(char **)slot = host;
        *(int *)cfg_member(cfg, e->offset_aux) = port;
        return RAGD_OK;
    }
    case RAGD_CFG_T_PATHS: {
        size_t count = 0;
        char **paths = cfg_paths_split(v, &count);
        if (paths == NULL) return RAGD_ERR_NOMEM;
        cfg_paths_free(*(char ***)slot);
        *(char ***)slot = paths;
        *(size_t *)cfg_member(cfg, e->offset_aux) = count;
        return RAGD_OK;
    }
    case RAGD_CFG_T_LOG_LEVEL: {
        ragd_log_level level;
        if (log_level_parse(v, &level) != 0) {
            snprintf(why, n, "'%s' is not a log level (debug, info, warn, error)", v);
            return RAGD_ERR_CONFIG;
        }
        return cfg_str_replace(slot, log_level_name(level));
    }
    case RAGD_CFG_T_ENUM: {
        int i = cfg_choice_find(e, v);
        if (i < 0) {
            cfg_choice_explain(e, v, why, n);
            return RAGD_ERR_CONFIG;
        }
        return cfg_str_replace(slot, e->choices[i]);
    }
    }
    snprintf(why, n, "internal error: unknown key type");
    return RAGD_ERR_INTERNAL;
}

/* ---- whole-struct helpers ----------------------------------------------------------------- */

void cfg_free(ragd_cfg *cfg)
{
    if (cfg == NULL) return;
    for (size_t i = 0; i < RAGD_CFG_COUNT; i++) {
        const ragd_cfg_entry *e = &cfg_table[i];
        if (cfg_entry_owns_string(e)) free(*cfg_str_slot(cfg, e));
        else if (e->type == RAGD_CFG_T_PATHS) cfg_paths_free(*(char ***)cfg_member(cfg, e->offset));
    }
    memset(cfg, 0, sizeof *cfg);
}

/* Deep-copies src into *dst so a multi-key source can be applied all or nothing.
 * Returns: RAGD_OK (dst owns its strings; free with cfg_free) or RAGD_ERR_NOMEM (dst zeroed). */
static ragd_rc cfg_copy(ragd_cfg *dst, const ragd_cfg *src)
{
    *dst = *src;
    /* Detach every owned pointer first so a failure part-way frees only what was copied. */
    for (size_t i = 0; i < RAGD_CFG_COUNT; i++) {
        const ragd_cfg_entry *e = &cfg_table[i];
        if (cfg_entry_owns_string(e) || e->type == RAGD_CFG_T_PATHS)
            *(void **)cfg_member(dst, e->offset) = NULL;
    }
    for (size_t i = 0; i < RAGD_CFG_COUNT; i++) {
        const ragd_cfg_entry *e = &cfg_table[i];
        if (cfg_entry_owns_string(e)) {
            const char *s = *cfg_str_slot(src, e);
            if (s != NULL && (*cfg_str_slot(dst, e) = strdup(s)) == NULL) goto nomem;
        } else if (e->type == RAGD_CFG_T_PATHS) {
            char **from = *(char ***)cfg_member(src, e->offset);
            size_t count = *(size_t *)cfg_member(src, e->offset_aux);
            if (from == NULL) continue;
            char **to = calloc(count + 1, sizeof *to);
            if (to == NULL) goto nomem;
            *(char ***)cfg_member(dst, e->offset) = to;
            for (size_t k = 0; k < count; k++)
                if ((to[k] = strdup(from[k])) == NULL) goto nomem;
        }
    }
    return RAGD_OK;
nomem:
    cfg_free(dst);
    return RAGD_ERR_NOMEM;
}

ragd_rc cfg_defaults_set(ragd_cfg *cfg, ragd_err *err)
{
    ragd_cfg tmp;
    memset(&tmp, 0, sizeof tmp);
    for (size_t i = 0; i < RAGD_CFG_COUNT; i++) {
        const ragd_cfg_entry *e = &cfg_table[i];
        char why[RAGD_ERR_MSG_MAX] = "";
        ragd_rc rc = cfg_entry_set(&tmp, e, e->default_value, why, sizeof why);
        if (rc != RAGD_OK) {
            cfg_free(&tmp);
            if (rc == RAGD_ERR_NOMEM) return ragd_err_set(err, rc, "out of memory");
            /* A default that does not parse is a bug in the table above. */
            return ragd_err_set(err, RAGD_ERR_INTERNAL, "default of [%s] %s: %s", e->section,
                                e->key, why);
        }
    }
    *cfg = tmp;
    return RAGD_OK;
}

ragd_rc cfg_key_set(ragd_cfg *cfg, const char *section, const char *key, const char *value,
                    const char *origin, ragd_err *err)
{
    char why[RAGD_ERR_MSG_MAX] = "";
    if (origin == NULL) origin = "setting";
    if (section == NULL || key == NULL || value == NULL)
        return ragd_err_set(err, RAGD_ERR_CONFIG, "%s: missing section, key or value", origin);
    const ragd_cfg_entry *e = cfg_entry_find(section, key);
    if (e == NULL) {
        cfg_unknown_key_explain(section, key, why, sizeof why);
        return ragd_err_set(err, RAGD_ERR_CONFIG, "%s: %s", origin, why);
    }
    ragd_rc rc = cfg_entry_set(cfg, e, value, why, sizeof why);
    if (rc == RAGD_ERR_NOMEM) return ragd_err_set(err, rc, "%s: out of memory", origin);
    if (rc != RAGD_OK) return ragd_err_set(err, RAGD_ERR_CONFIG, "%s: %s", origin, why);
    return RAGD_OK;
}

/* ---- INI files ---------------------------------------------------------------------------- */

typedef struct cfg_parse_ctx {
    ragd_cfg *cfg;
    const char *path;
    FILE *file;
    char *line;      /* getline buffer */
    size_t line_cap;
    int line_no;     /* lines handed to inih so far: the line inih is working on */
    int failed;      /* a first error is recorded below; stop reading */
    int error_line;  /* 0 for errors that are not about one line */
    ragd_rc rc;
    char msg[RAGD_ERR_MSG_MAX];
    int first_seen[RAGD_CFG_COUNT]; /* line where each key was first set, for the duplicate note */
} cfg_parse_ctx;

static void cfg_parse_fail(cfg_parse_ctx *ctx, ragd_rc rc, int line, const char *msg)
{
    if (ctx->failed) return;
    ctx->failed = 1;
    ctx->rc = rc;
    ctx->error_line = line;
    snprintf(ctx->msg, sizeof ctx->msg, "%s", msg);
}

/* inih's fgets-style reader. Reading lines ourselves lets us count them (the r55 handler gets no
 * line number), stop right after the first error, and refuse over-long lines instead of letting
 * inih split them. Leading whitespace is removed so inih never treats an indented key as the
 * continuation of the previous value; an inline comment "  # ..." is cut like inih's " ;". */
static char *cfg_ini_read(char *str, int num, void *stream)
{
    cfg_parse_ctx *ctx = stream;
    if (ctx->failed) return NULL;
    errno = 0;
    ssize_t got = getline(&ctx->line, &ctx->line_cap, ctx->file);
    if (got < 0) {
        if (ferror(ctx->file)) {
            char msg[RAGD_ERR_MSG_MAX];
            snprintf(msg, sizeof msg, "cannot read config file: %s", strerror(errno));
            cfg_parse_fail(ctx, RAGD_ERR_CONFIG, 0, msg);
        }
        return NULL;
    }
    ctx->line_no++;
    char *p = ctx->line;
    if (ctx->line_no == 1 && got >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) p += 3;
    while (*p == ' ' || *p == '\t') p++;
    if (*p != '\0' && *p != '#' && *p != ';') {
        for (char *c = p + 1; *c != '\0'; c++) {
            if (*c == '#' && (c[-1] == ' ' || c[-1] == '\t')) {
                *c = '\0';
                break;
            }
        }
    }
    size_t len = strlen(p);
    if (len + 1 > (size_t)num) {
        char msg[RAGD_ERR_MSG_MAX];
        snprintf(msg, sizeof msg, "line too long (at most %d characters)", num - 3);
        cfg_parse_fail(ctx, RAGD_ERR_CONFIG, ctx->line_no, msg);
        return NULL;
    }
    memcpy(str, p, len + 1);
    return str;
}

static int cfg_ini_handle(void *user, const char *section, const char *name, const char *value)
{
    cfg_parse_ctx *ctx = user;
    char msg[RAGD_ERR_MSG_MAX] = "";
    if (ctx->failed) return 0;
    const ragd_cfg_entry *e = cfg_entry_find(section, name);
    if (e == NULL) {
        cfg_unknown_key_explain(section, name, msg, sizeof msg);
        cfg_parse_fail(ctx, RAGD_ERR_CONFIG, ctx->line_no, msg);
        return 0;
    }
    /* The reason goes after a "[section] key: " prefix in the same buffer. */
    size_t prefix = (size_t)snprintf(msg, sizeof msg, "[%s] %s: ", e->section, e->key);
    ragd_rc rc = cfg_entry_set(ctx->cfg, e, value, msg + prefix, sizeof msg - prefix);
    if (rc == RAGD_ERR_NOMEM) {
        cfg_parse_fail(ctx, rc, ctx->line_no, "out of memory");
        return 0;
    }
    if (rc != RAGD_OK) {
        cfg_parse_fail(ctx, RAGD_ERR_CONFIG, ctx->line_no, msg);
        return 0;
    }
    size_t idx = (size_t)(e - cfg_table);
    if (ctx->first_seen[idx] != 0)
        RAGD_LOG(RAGD_LOG_WARN, "cfg", "%s:%d: [%s] %s was already set on line %d; the last "
                 "value wins", ctx->path, ctx->line_no, e->section, e->key, ctx->first_seen[idx]);
    else
        ctx->first_seen[idx] = ctx->line_no;
    return 1;
}

ragd_rc cfg_file_load(ragd_cfg *cfg, const char *path, ragd_err *err)
{
    if (path == NULL) return ragd_err_set(err, RAGD_ERR_CONFIG, "config file path is missing");
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return ragd_err_set(err, RAGD_ERR_CONFIG, "%s: cannot open config file: %s", path,
                            strerror(errno));

    ragd_cfg tmp;
    if (cfg_copy(&tmp, cfg) != RAGD_OK) {
        fclose(f);
        return ragd_err_set(err, RAGD_ERR_NOMEM, "%s: out of memory", path);
    }
    cfg_parse_ctx *ctx = calloc(1, sizeof *ctx);
    if (ctx == NULL) {
        fclose(f);
        cfg_free(&tmp);
        return ragd_err_set(err, RAGD_ERR_NOMEM, "%s: out of memory", path);
    }
    ctx->cfg = &tmp;
    ctx->path = path;
    ctx->file = f;
    int bad_line = ini_parse_stream(cfg_ini_read, ctx, cfg_ini_handle, ctx);
    fclose(f);
    free(ctx->line);

    ragd_rc rc = RAGD_OK;
    /* inih keeps going after a syntax error (a line with no '=' or no ']') without telling the
     * handler; we stop reading at our own first error, so an earlier bad_line is inih's. */
    if (bad_line < 0)
        rc = ragd_err_set(err, RAGD_ERR_NOMEM, "%s: out of memory", path);
    else if (bad_line != 0 && (!ctx->failed || bad_line < ctx->error_line))
        rc = ragd_err_set(err, RAGD_ERR_CONFIG, "%s:%d: syntax error", path, bad_line);
    else if (ctx->failed && ctx->error_line > 0)
        rc = ragd_err_set(err, ctx->rc, "%s:%d: %s", path, ctx->error_line, ctx->msg);
    else if (ctx->failed)
        rc = ragd_err_set(err, ctx->rc, "%s: %s", path, ctx->msg);
    free(ctx);

    if (rc != RAGD_OK) {
        cfg_free(&tmp);
        return rc;
    }
    cfg_free(cfg);
    *cfg = tmp;
    return RAGD_OK;
}

/* ---- environment -------------------------------------------------------------------------- */

/* Writes RAGD_<SECTION>_<KEY> for e into out. */
static void cfg_env_name(const ragd_cfg_entry *e, char *out, size_t n)
{
    snprintf(out, n, "RAGD_%s_%s", e->section, e->key);
    for (char *p = out; *p; p++) *p = (char)toupper((unsigned char)*p);
}

/* Returns: the value to apply for e from the environment (borrowed from environ), or NULL.
 * An empty value counts as unset except for string and path-list keys, where it empties them;
 * *name_out gets the variable's name. */
static const char *cfg_env_lookup(const ragd_cfg_entry *e, char *name_out, size_t n)
{
    int empty_ok = e->type == RAGD_CFG_T_STRING || e->type == RAGD_CFG_T_PATHS;
    cfg_env_name(e, name_out, n);
    const char *v = getenv(name_out);
    if (v != NULL && (v[0] != '\0' || empty_ok)) return v;
    for (size_t i = 0; i < sizeof cfg_aliases / sizeof cfg_aliases[0]; i++) {
        if (strcmp(cfg_aliases[i].section, e->section) != 0 ||
            strcmp(cfg_aliases[i].key, e->key) != 0)
            continue;
        v = getenv(cfg_aliases[i].env);
        if (v != NULL && (v[0] != '\0' || empty_ok)) {
            snprintf(name_out, n, "%s", cfg_aliases[i].env);
            return v;
        }
    }
    return NULL;
}

ragd_rc cfg_env_apply(ragd_cfg *cfg, ragd_err *err)
{
    ragd_cfg tmp;
    if (cfg_copy(&tmp, cfg) != RAGD_OK) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < RAGD_CFG_COUNT; i++) {
        const ragd_cfg_entry *e = &cfg_table[i];
        char name[128];
        char why[RAGD_ERR_MSG_MAX] = "";
        const char *v = cfg_env_lookup(e, name, sizeof name);
        if (v == NULL) continue;
        ragd_rc rc = cfg_entry_set(&tmp, e, v, why, sizeof why);
        if (rc != RAGD_OK) {
            cfg_free(&tmp);
            if (rc == RAGD_ERR_NOMEM)
                return ragd_err_set(err, rc, "environment %s: out of memory", name);
            return ragd_err_set(err, RAGD_ERR_CONFIG, "environment %s: %s", name, why);
        }
    }
    cfg_free(cfg);
    *cfg = tmp;
    return RAGD_OK;
}

/* ---- validation, loading, printing -------------------------------------------------------- */

ragd_rc cfg_validate(const ragd_cfg *cfg, ragd_err *err)
{
    if (cfg == NULL) return ragd_err_set(err, RAGD_ERR_INTERNAL, "no configuration");
    /* Keys are range-checked when set; checking again here catches values set directly in the
     * struct by code. */
    for (size_t i = 0; i < RAGD_CFG_COUNT; i++) {
        const ragd_cfg_entry *e = &cfg_table[i];
        const void *slot = cfg_member(cfg, e->offset);
        double x;
        switch (e->type) {
        case RAGD_CFG_T_INT: x = *(const int *)slot; break;
        case RAGD_CFG_T_SIZE: x = (double)*(const size_t *)slot; break;
        case RAGD_CFG_T_DOUBLE: x = *(const double *)slot; break;
        case RAGD_CFG_T_LISTEN: {
            int port = *(const int *)cfg_member(cfg, e->offset_aux);
            const char *host = *(char *const *)slot;
            if (host == NULL || host[0] == '\0')
                return ragd_err_set(err, RAGD_ERR_CONFIG, "%s.%s has no host", e->section, e->key);
            if (port < 1 || port > 65535)
                return ragd_err_set(err, RAGD_ERR_CONFIG, "%s.%s port %d is out of range 1..65535",
                                    e->section, e->key, port);
            continue;
        }
        case RAGD_CFG_T_ENUM: {
            const char *v = *(char *const *)slot;
            if (v == NULL || cfg_choice_find(e, v) < 0) {
                char why[RAGD_ERR_MSG_MAX];
                cfg_choice_explain(e, v ? v : "", why, sizeof why);
                return ragd_err_set(err, RAGD_ERR_CONFIG, "%s.%s: %s", e->section, e->key, why);
            }
            continue;
        }
        case RAGD_CFG_T_LOG_LEVEL: {
            ragd_log_level level;
            const char *v = *(char *const *)slot;
            if (v == NULL || log_level_parse(v, &level) != 0)
                return ragd_err_set(err, RAGD_ERR_CONFIG, "%s.%s: '%s' is not a log level",
                                    e->section, e->key, v ? v : "");
            continue;
        }
        case RAGD_CFG_T_STRING: {
            const char *v = *(char *const *)slot;
            if ((e->flags & RAGD_CFG_F_REQUIRED) && (v == NULL || v[0] == '\0'))
                return ragd_err_set(err, RAGD_ERR_CONFIG, "%s.%s must not be empty", e->section,
                                    e->key);
            continue;
        }
        default: continue;
        }
        if (!isfinite(x) || x < e->min || x > e->max)
            return ragd_err_set(err, RAGD_ERR_CONFIG, "%s.%s = %g is out of range %g..%g",
                                e->section, e->key, x, e->min, e->max);
    }
    if (cfg->chunk_max_tokens < cfg->chunk_target_tokens)
        return ragd_err_set(err, RAGD_ERR_CONFIG,
                            "chunk.max_tokens (%d) must be >= chunk.target_tokens (%d)",
                            cfg->chunk_max_tokens, cfg->chunk_target_tokens);
    if (strcmp(cfg->vector_backend, "pgvector") == 0 &&
        (cfg->database_url == NULL || cfg->database_url[0] == '\0'))
        return ragd_err_set(err, RAGD_ERR_CONFIG, "store.vector_backend = pgvector needs "
                            "store.database_url (or DATABASE_URL), a libpq URI such as "
                            "postgresql://user:password@host:5432/dbname");
    if (!util_sql_identifier_valid(cfg->pg_schema))
        return ragd_err_set(err, RAGD_ERR_CONFIG, "store.pg_schema = '%s' must be a plain SQL "
                            "identifier: a lower-case letter or '_', then lower-case letters, "
                            "digits or '_', at most 63 bytes", cfg->pg_schema);
    if (cfg->retrieve_default_k > cfg->retrieve_max_k)
        return ragd_err_set(err, RAGD_ERR_CONFIG,
                            "retrieve.default_k (%d) must be <= retrieve.max_k (%d)",
                            cfg->retrieve_default_k, cfg->retrieve_max_k);
    if (strcmp(cfg->rerank_provider, "none") != 0 &&
        (cfg->rerank_base_url == NULL || cfg->rerank_base_url[0] == '\0'))
        return ragd_err_set(err, RAGD_ERR_CONFIG, "rerank.provider = %s needs rerank.base_url",
                            cfg->rerank_provider);
    ragd_err ierr = {0};
    if (retrieve_intent_find(cfg->intent_retrieve, NULL, NULL, &ierr) != RAGD_OK)
        return ragd_err_set(err, RAGD_ERR_CONFIG, "intent.retrieve: %s", ierr.msg);
    if (chat_cfg_check(cfg, &ierr) != RAGD_OK)
        return ragd_err_set(err, RAGD_ERR_CONFIG, "%s", ierr.msg);
    return RAGD_OK;
}

ragd_rc cfg_load(ragd_cfg *cfg, const char *path, ragd_err *err)
{
    ragd_cfg tmp;
    ragd_rc rc = cfg_defaults_set(&tmp, err);
    if (rc != RAGD_OK) {
        memset(cfg, 0, sizeof *cfg);
        return rc;
    }
    if (path == NULL) {
        /* The documented file search: --config FILE (the caller's path), else $RAGD_CONFIG. */
        const char *env = getenv("RAGD_CONFIG");
        if (env != NULL && env[0] != '\0') path = env;
    }
    if (path != NULL) rc = cfg_file_load(&tmp, path, err);
    if (rc == RAGD_OK) rc = cfg_env_apply(&tmp, err);
    if (rc == RAGD_OK) rc = cfg_validate(&tmp, err);
    if (rc != RAGD_OK) {
        cfg_free(&tmp);
        memset(cfg, 0, sizeof *cfg);
        return rc;
    }
    *cfg = tmp;
    return RAGD_OK;
}

/* Writes the shortest decimal form of x that reads back as the same double. */
static void cfg_double_format(double x, char *out, size_t n)
{
    for (int precision = 1; precision <= 17; precision++) {
        snprintf(out, n, "%.*g", precision, x);
        if (strtod(out, NULL) == x) break;
    }
    /* Keep a decimal point so the value reads as a fraction, e.g. "0.0" not "0". */
    if (strpbrk(out, ".eEn") == NULL && strlen(out) + 3 <= n) strcat(out, ".0");
}

static void cfg_value_print(const ragd_cfg *cfg, const ragd_cfg_entry *e, FILE *out)
{
    const void *slot = cfg_member(cfg, e->offset);
    switch (e->type) {
    case RAGD_CFG_T_STRING:
    case RAGD_CFG_T_LOG_LEVEL:
    case RAGD_CFG_T_ENUM: {
        const char *s = *(char *const *)slot;
        if (s == NULL) s = "";
        if ((e->flags & RAGD_CFG_F_SECRET) && s[0] != '\0') s = "<redacted>";
        if (e->flags & RAGD_CFG_F_URL_SECRET) {
            char *shown = util_url_redact(s);
            fputs(shown ? shown : "<redacted>", out);
            free(shown);
            break;
        }
        fputs(s, out);
        break;
    }
    case RAGD_CFG_T_BOOL: {
        int b = *(const int *)slot;
        fputs(b == RAGD_CFG_BOOL_AUTO ? "auto" : b ? "true" : "false", out);
        break;
    }
    case RAGD_CFG_T_INT: fprintf(out, "%d", *(const int *)slot); break;
    case RAGD_CFG_T_SIZE: fprintf(out, "%zu", *(const size_t *)slot); break;
    case RAGD_CFG_T_DOUBLE: {
        char buf[64];
        cfg_double_format(*(const double *)slot, buf, sizeof buf);
        fputs(buf, out);
        break;
    }
    case RAGD_CFG_T_LISTEN: {
        const char *host = *(char *const *)slot;
        int port = *(const int *)cfg_member(cfg, e->offset_aux);
        if (host == NULL) host = "";
        if (strchr(host, ':') != NULL) fprintf(out, "[%s]:%d", host, port);
        else fprintf(out, "%s:%d", host, port);
        break;
    }
    case RAGD_CFG_T_PATHS: {
        char *const *paths = *(char **const *)slot;
        size_t count = *(const size_t *)cfg_member(cfg, e->offset_aux);
        for (size_t i = 0; paths != NULL && i < count; i++)
            fprintf(out, "%s%s", i ? ":" : "", paths[i]);
        break;
    }
    }
}

void cfg_print(const ragd_cfg *cfg, FILE *out)
{
    if (cfg == NULL || out == NULL) return;
    fputs("# ragd effective configuration (defaults < file < environment < flags)\n", out);
    const char *section = NULL;
    for (size_t i = 0; i < RAGD_CFG_COUNT; i++) {
        const ragd_cfg_entry *e = &cfg_table[i];
        if (section == NULL || strcmp(section, e->section) != 0) {
            fprintf(out, "\n[%s]\n", e->section);
            section = e->section;
        }
        fprintf(out, "# %s: %s (default %s)\n", e->key, e->doc,
                e->default_value[0] != '\0' ? e->default_value : "empty");
        fprintf(out, "%s = ", e->key);
        cfg_value_print(cfg, e, out);
        fputc('\n', out);
    }
}

/* ---- SIGHUP reload ------------------------------------------------------------------------ */

int cfg_key_live(const char *section, const char *key)
{
    const ragd_cfg_entry *e = section && key ? cfg_entry_find(section, key) : NULL;
    return e != NULL && (e->flags & RAGD_CFG_F_LIVE) != 0;
}

/* Returns: the entry's value as cfg_print writes it (secrets unredacted), new (free()), or NULL
 * when out of memory. */
static char *cfg_value_text(const ragd_cfg *cfg, const ragd_cfg_entry *e)
{
    if (e->type == RAGD_CFG_T_STRING) {
        const char *s = *cfg_str_slot(cfg, e);
        return strdup(s ? s : "");
    }
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL) return NULL;
    cfg_value_print(cfg, e, f);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

/* Copies the value of live entry e from fresh into next (a private copy no reader sees yet).
 * Returns: RAGD_OK or RAGD_ERR_NOMEM. */
static ragd_rc cfg_live_copy(ragd_cfg *next, const ragd_cfg *fresh, const ragd_cfg_entry *e)
{
    void *slot = cfg_member(next, e->offset);
    const void *from = cfg_member(fresh, e->offset);
    switch (e->type) {
    case RAGD_CFG_T_BOOL:
    case RAGD_CFG_T_INT: *(int *)slot = *(const int *)from; return RAGD_OK;
    case RAGD_CFG_T_SIZE: *(size_t *)slot = *(const size_t *)from; return RAGD_OK;
    case RAGD_CFG_T_DOUBLE: *(double *)slot = *(const double *)from; return RAGD_OK;
    case RAGD_CFG_T_STRING:
    case RAGD_CFG_T_LOG_LEVEL:
    case RAGD_CFG_T_ENUM: {
        const char *v = *(char *const *)from;
        char *copy = strdup(v ? v : "");
        if (copy == NULL) return RAGD_ERR_NOMEM;
        free(*(char **)slot);
        *(char **)slot = copy;
        return RAGD_OK;
    }
    case RAGD_CFG_T_LISTEN:
    case RAGD_CFG_T_PATHS: break;
    }
    return RAGD_ERR_INTERNAL; /* never marked live: see the table */
}

ragd_rc cfg_reload_build(const ragd_cfg *cur, const ragd_cfg *fresh, ragd_cfg *next,
                         util_buf *applied, util_buf *restart, ragd_err *err)
{
    ragd_cfg n;
    if (cfg_copy(&n, cur) != RAGD_OK)
        return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory reloading");
    for (size_t i = 0; i < RAGD_CFG_COUNT; i++) {
        const ragd_cfg_entry *e = &cfg_table[i];
        char *now = cfg_value_text(cur, e);
        char *then = cfg_value_text(fresh, e);
        int changed = now && then && strcmp(now, then) != 0;
        int nomem = now == NULL || then == NULL;
        free(now);
        free(then);
        ragd_rc rc = nomem ? RAGD_ERR_NOMEM : RAGD_OK;
        if (rc == RAGD_OK && changed && (e->flags & RAGD_CFG_F_LIVE))
            rc = cfg_live_copy(&n, fresh, e);
        util_buf *names = (e->flags & RAGD_CFG_F_LIVE) ? applied : restart;
        if (rc == RAGD_OK && changed && names != NULL &&
            util_buf_printf(names, "%s%s.%s", names->len ? ", " : "", e->section, e->key) != 0)
            rc = RAGD_ERR_NOMEM;
        if (rc != RAGD_OK) {
            cfg_free(&n);
            return ragd_err_set(err, rc, "cannot reload [%s] %s", e->section, e->key);
        }
    }
    /* the pair default_k <= max_k was validated in fresh; the mix of live keys from fresh and
     * the rest from cur is validated again as a whole */
    if (cfg_validate(&n, err) != RAGD_OK) {
        cfg_free(&n);
        return err ? err->rc : RAGD_ERR_CONFIG;
    }
    *next = n;
    return RAGD_OK;
}
