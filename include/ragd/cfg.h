/* SPDX-License-Identifier: MIT */
/*
 * cfg.h - ragd's configuration: embedded defaults, then an INI file, then environment variables,
 * then command-line flags (each later source wins). The keys are described by one table in
 * src/cfg.c, which drives parsing, validation, environment overrides and `ragd check-config`.
 *
 * Environment: every key is RAGD_<SECTION>_<KEY> (upper case), e.g. RAGD_SERVER_LISTEN.
 * The roadmap's flags are honoured too: RAG_ENABLED -> rag.enabled, VECTOR_BACKEND ->
 * store.vector_backend, OPENAI_API_KEY -> embed.api_key, OPENAI_BASE_URL -> embed.base_url,
 * REDIS_URL -> cache.redis_url, RAGD_CONFIG -> the config file path.
 */
#ifndef RAGD_CFG_H
#define RAGD_CFG_H

/* A boolean key that also takes `auto` (parallel_sides) holds 0, 1 or this. */
#define RAGD_CFG_BOOL_AUTO 2

#include <stddef.h>
#include <stdio.h>

#include "ragd/ragd.h"
#include "ragd/util.h"

typedef struct ragd_cfg {
    /* [server] */
    char *listen_host;        /* listen = 127.0.0.1:8088; host part */
    int listen_port;          /* port part, 1..65535 (0 refused) */
    int threads;              /* threads = 8; HTTP worker threads and retrievals at once, 1..256 */
    size_t max_body_bytes;    /* max_body_bytes = 1048576; larger request bodies get 413 */
    int connection_timeout_s; /* connection_timeout = 30; idle connection timeout, seconds */
    int shutdown_timeout_s;   /* shutdown_timeout = 30; seconds SIGTERM waits for requests in
                               * flight before closing them; live */
    char *auth_token;         /* auth_token = (empty); bearer token for every endpoint except
                               * /health; secret, redacted everywhere */
    int max_connections;      /* max_connections = 1024; open client connections in all */
    int max_connections_per_ip; /* max_connections_per_ip = 256; from one client address */
    int request_timeout_s;    /* request_timeout = 30; seconds a request may take to arrive
                               * (head and body) */

    /* [rag] */
    int rag_enabled; /* enabled = true; false: /retrieve answers at once with no chunks */

    /* [store] */
    char *data_dir;       /* data_dir = var/vectorstore */
    char *vector_backend; /* vector_backend = faiss; the only backend for now */
    char *index_factory;  /* index_factory = auto; auto, or a FAISS factory string (Flat, HNSW<M>) */
    int index_auto_threshold; /* index_auto_threshold = 20000; auto: HNSW32 from this many vectors */
    int index_hnsw_ef_construction; /* index_hnsw_ef_construction = 128; FAISS HNSW efConstruction */
    int hnsw_ef_search;   /* hnsw_ef_search = 256; efSearch of HNSW indexes (FAISS and pgvector) */
    char *database_url;   /* database_url = (empty); pgvector: libpq URI; password redacted */
    char *pg_schema;      /* pg_schema = ragd; pgvector: schema of ragd's tables */
    int pg_pool;          /* pg_pool = 4; pgvector: reader connections */
    int pg_timeout_ms;    /* pg_timeout_ms = 5000; pgvector: longest wait on Postgres */
    int hnsw_m;           /* hnsw_m = 16; pgvector HNSW index m */
    int hnsw_ef_construction; /* hnsw_ef_construction = 64; pgvector HNSW ef_construction */

    /* [ingest] */
    char **ingest_paths;    /* paths = docs; colon-separated list, ingested by `serve` at start */
    size_t ingest_path_count;
    int ingest_on_start;    /* on_start = true; serve ingests `paths` in the background at start */
    size_t max_file_bytes;  /* max_file_bytes = 10485760; larger files are reported, not read */
    char **ingest_allowed_roots; /* allowed_roots = (empty); colon-separated; POST /ingest paths
                                  * must resolve inside one; empty: the ingest paths */
    size_t ingest_allowed_root_count;
    char **ingest_include;       /* include = (empty); colon-separated globs */
    size_t ingest_include_count;
    char **ingest_exclude;       /* exclude = (empty); colon-separated globs */
    size_t ingest_exclude_count;
    int ingest_unknown_as_text;  /* unknown_as_text = false */
    char *ingest_invalid_utf8;   /* invalid_utf8 = skip; skip | repair */
    size_t max_document_bytes;   /* max_document_bytes = 1048576; pushed document text limit */
    char *ingest_ocr;            /* ocr = auto; auto | off | force: OCR of PDF pages (issue 17) */
    char *ingest_ocr_languages;  /* ocr_languages = eng; Tesseract languages, "eng+deu" */
    int ingest_ocr_page_timeout_s; /* ocr_page_timeout = 60; seconds per page, 1..3600 */
    int ingest_ocr_max_pages;    /* ocr_max_pages = 100; pages OCRed per file, 0..100000 */
    int ingest_ocr_dpi;          /* ocr_dpi = 300; render resolution for OCR, 72..600 */
    size_t ingest_commit_batch_bytes; /* commit_batch_bytes = 1048576; text per ingest commit */
    int ingest_commit_batch_ms;  /* commit_batch_ms = 50; lock time of one batch's commit */

    /* [chunk] */
    int chunk_target_tokens; /* target_tokens = 650 */
    int chunk_max_tokens;    /* max_tokens = 800; hard maximum, >= target_tokens */
    double chunk_overlap;    /* overlap = 0.15; fraction of target_tokens repeated, 0..0.5 */

    /* [embed] */
    char *embed_provider; /* provider = auto; auto | local | openai */
    int embed_dims;       /* dims = 1024; local provider dimensions, 64..4096 */
    int embed_batch_size; /* batch_size = 64; texts per provider call, 1..2048 */
    char *embed_api_key;  /* api_key = (empty); secret, redacted everywhere */
    char *embed_base_url;          /* base_url = https://api.openai.com/v1; env OPENAI_BASE_URL */
    char *embed_model;             /* model = text-embedding-3-small; openai provider */
    char *embed_send_dimensions;   /* send_dimensions = auto; auto | true | false */
    char *embed_headers;           /* headers = (empty); "Name: value; ..."; secret */
    int embed_concurrency;         /* concurrency = 4; requests in flight, 1..64 */
    int embed_max_retries;         /* max_retries = 5; 0..20 */
    int embed_retry_max_time_s;    /* retry_max_time = 60; seconds, 1..3600 */
    int embed_connect_timeout_s;   /* connect_timeout = 10; seconds, 1..600 */
    int embed_timeout_s;           /* timeout = 60; seconds per attempt, 1..3600 */
    double embed_price_per_million; /* price_per_million = 0.02; USD per 1M tokens, 0..1000 */

    /* [cache] */
    char *cache_redis_url;           /* redis_url = (empty); env REDIS_URL; secret */
    int cache_ttl_s;                 /* ttl = 600; seconds, 1..2592000 */
    int cache_memory_entries;        /* memory_entries = 1024; in-process LRU size, 0..1000000 */
    int cache_connect_timeout_ms;    /* connect_timeout_ms = 200; 1..10000 */
    int cache_command_timeout_ms;    /* command_timeout_ms = 100; 1..10000 */
    int cache_reconnect_interval_ms; /* reconnect_interval_ms = 1000; 50..600000 */

    /* [retrieve] */
    int retrieve_default_k;    /* default_k = 5 */
    int retrieve_max_k;        /* max_k = 50; larger k is a 400 */
    double retrieve_min_score; /* min_score = 0.0; results below are dropped */
    char *retrieve_mode;       /* mode = hybrid; vector | keyword | hybrid */
    char *retrieve_fusion;     /* fusion = relative; rrf | relative */
    int retrieve_rrf_k;        /* rrf_k = 60; reciprocal rank fusion constant, 1..10000 */
    double retrieve_vector_weight;    /* vector_weight = 0.3; vector share in fusion, 0..1 */
    double retrieve_vector_length_slope; /* vector_length_slope = 0.5; hybrid length pivot, 0..1 */
    int retrieve_candidates;          /* candidates = 50; per side before fusion, 1..1000 */
    int retrieve_keyword_max_matches; /* keyword_max_matches = 4000; BM25 work bound, 0 = none */
    int retrieve_diversity;           /* diversity = false; MMR reordering */
    double retrieve_diversity_lambda; /* diversity_lambda = 0.7; MMR relevance weight, 0..1 */
    int retrieve_merge_adjacent;      /* merge_adjacent = true; one passage per adjacent run */
    int retrieve_max_context_tokens;  /* max_context_tokens = 2000; context budget, 16..1000000 */
    double retrieve_min_coverage;     /* min_coverage = 0.25; low_confidence below, 0..1 */
    double retrieve_max_unknown_share; /* max_unknown_share = 0.65; low_confidence at or above */
    double retrieve_min_vector_score; /* min_vector_score = 0.0; with a model embedder: a best
                                       * cosine at or above is confident whatever the coverage */
    int retrieve_lexical_variants;    /* lexical_variants = false; compound/number/spelling
                                       * variants of query terms on the keyword side */
    int retrieve_parallel_sides;      /* parallel_sides = auto; hybrid: keyword side in its own
                                       * thread while the vector side searches: 0 never, 1
                                       * always, RAGD_CFG_BOOL_AUTO while fewer retrievals are in
                                       * flight than online CPUs */

    /* [rerank] (issue 17, docs/RETRIEVAL.md "Reranking") */
    char *rerank_provider;     /* provider = none; none | tei | cohere */
    char *rerank_base_url;     /* base_url = (empty); API root of the reranker */
    char *rerank_model;        /* model = (empty); sent as model (cohere shape) */
    char *rerank_api_key;      /* api_key = (empty); secret */
    int rerank_candidates;     /* candidates = 30; fused results sent to the reranker, 1..1000 */
    int rerank_timeout_ms;     /* timeout_ms = 2000; whole rerank call, 10..600000 */
    double rerank_min_score;   /* min_score = 0.0; low_confidence when the best rerank score is
                                * below (the model's floor; docs/RETRIEVAL.md) */
    double rerank_price_per_million; /* price_per_million = 0.0; USD per 1M tokens sent */

    /* [prompt] */
    char *prompt_template; /* template = (empty); file for POST /context; empty: built-in */
    char *prompt_persona;  /* persona = Mathia */
    char *prompt_tools;    /* tools = (empty); comma-separated tool whitelist */

    /* [intent] */
    char *intent_retrieve; /* retrieve = general_chat, search_info; name[:k[:max_context_tokens]], ... */

    /* [chat] POST /v1/chat/completions (issue 15; docs/CHAT.md). Every key is live (SIGHUP). */
    char *chat_base_url;           /* base_url = https://api.openai.com/v1; the upstream API root */
    char *chat_api_key;            /* api_key = (empty); env RAGD_CHAT_API_KEY, else
                                    * OPENAI_API_KEY; secret */
    char *chat_model;              /* model = gpt-4o-mini; the base model */
    int chat_use_finetuned;        /* use_finetuned = false; env USE_FINETUNED_MODEL */
    char *chat_finetuned_model;    /* finetuned_model = (empty); required by use_finetuned */
    char *chat_finetuned_base_url; /* finetuned_base_url = (empty): base_url; a LoRA endpoint */
    char *chat_finetuned_intents;  /* finetuned_intents = general_chat, intent_parse */
    int chat_allow_caller_model;   /* allow_caller_model = false: ragd's config names the model */
    char *chat_default_intent;     /* default_intent = general_chat; a turn without an intent */
    char *chat_on_low_confidence;  /* on_low_confidence = ask; ask | pass */
    int chat_context_window;       /* context_window = 8192; tokens of the model's window */
    char *chat_context_windows;    /* context_windows = (empty); "model:tokens, ..." overrides */
    int chat_reserve_tokens;       /* reserve_tokens = 1024; kept for the answer */
    int chat_min_context_tokens;   /* min_context_tokens = 256; context kept before history goes */
    int chat_followup_terms;       /* followup_terms = 4; fewer search terms: a follow-up */
    int chat_history_query_turns;  /* history_query_turns = 2; earlier user turns searched with it */
    int chat_append_sources;       /* append_sources = true; "Sources" section when [n] cited */
    int chat_connect_timeout_s;    /* connect_timeout = 10; seconds */
    int chat_timeout_s;            /* timeout = 120; seconds per upstream attempt */
    int chat_max_retries;          /* max_retries = 2; before the first byte only */
    int chat_retry_max_time_s;     /* retry_max_time = 30; seconds of retries per turn */
    double chat_price_prompt_per_million;     /* price_prompt_per_million = 0.15; USD */
    double chat_price_completion_per_million; /* price_completion_per_million = 0.6; USD */

    /* [log] */
    char *log_level; /* level = info; debug | info | warn | error */
    char *log_file;  /* file = var/logs/rag.log; JSONL retrieval/ingest log; empty: none */
    int log_queries; /* log_queries = false; true also writes raw queries (not only hashes) */

} ragd_cfg;

/* Fills cfg with the embedded defaults. Returns: RAGD_OK or RAGD_ERR_NOMEM.
 * The strings inside cfg are owned by it: release with cfg_free(). */
ragd_rc cfg_defaults_set(ragd_cfg *cfg, ragd_err *err);

/* Applies an INI file over cfg. Unknown sections or keys and bad values fail with
 * RAGD_ERR_CONFIG and a message "path:line: ...". A missing file is RAGD_ERR_CONFIG too. */
ragd_rc cfg_file_load(ragd_cfg *cfg, const char *path, ragd_err *err);

/* Applies environment overrides (see the file comment). A bad value fails with
 * RAGD_ERR_CONFIG and a message "environment RAGD_X_Y: ...". */
ragd_rc cfg_env_apply(ragd_cfg *cfg, ragd_err *err);

/* Sets one key from a string as the file and environment do; origin names the source in errors
 * (e.g. "--listen"). Returns: RAGD_OK, or RAGD_ERR_CONFIG with "origin: message". */
ragd_rc cfg_key_set(ragd_cfg *cfg, const char *section, const char *key, const char *value,
                    const char *origin, ragd_err *err);

/* Cross-key checks run after all sources are applied (max >= target, backend known, ...). */
ragd_rc cfg_validate(const ragd_cfg *cfg, ragd_err *err);

/* Convenience: defaults, then file (if path non-NULL), then environment, then validate.
 * On failure cfg is left freed (safe to cfg_free again). */
ragd_rc cfg_load(ragd_cfg *cfg, const char *path, ragd_err *err);

/* Writes the effective configuration as INI, every key, secrets shown as "<redacted>" when set. */
void cfg_print(const ragd_cfg *cfg, FILE *out);

/* Returns: 1 when [section] key is live (SIGHUP applies a new value without a restart), 0 when
 * not or when there is no such key. */
int cfg_key_live(const char *section, const char *key);

/* SIGHUP reload, without touching cur (readers may hold it): builds *next, a new configuration
 * with cur's values and the changed live keys taken from fresh (a complete, validated
 * configuration), validated as a whole, and appends "section.key" names, comma-separated, to
 * applied (live keys changed) and to restart (changed keys that need a restart; next keeps
 * cur's value). Publish next as a new snapshot (cfg_snapshot.h). Returns: RAGD_OK and *next
 * (free with cfg_free), or an error (nothing built). */
ragd_rc cfg_reload_build(const ragd_cfg *cur, const ragd_cfg *fresh, ragd_cfg *next,
                         util_buf *applied, util_buf *restart, ragd_err *err);

/* Frees the strings owned by cfg and zeroes it. cfg may be NULL. */
void cfg_free(ragd_cfg *cfg);

#endif
