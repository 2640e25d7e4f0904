/* SPDX-License-Identifier: MIT */
/*
 * cfg.h - ragd's configuration: embedded defaults, then an INI file, then environment variables,
 * then command-line flags (each later source wins). The keys are described by one table in
 * src/cfg.c, which drives parsing, validation, environment overrides and `ragd check-config`.
 *
 * Environment: every key is RAGD_<SECTION>_<KEY> (upper case), e.g. RAGD_SERVER_LISTEN.
 * The roadmap's flags are honoured too: RAG_ENABLED -> rag.enabled, VECTOR_BACKEND ->
 * store.vector_backend, OPENAI_API_KEY -> embed.api_key, RAGD_CONFIG -> the config file path.
 */
#ifndef RAGD_CFG_H
#define RAGD_CFG_H

#include <stddef.h>
#include <stdio.h>

#include "ragd/ragd.h"

typedef struct ragd_cfg {
    /* [server] */
    char *listen_host;        /* listen = 127.0.0.1:8088; host part */
    int listen_port;          /* port part, 1..65535 (0 refused) */
    int threads;              /* threads = 4; HTTP worker threads, 1..256 */
    size_t max_body_bytes;    /* max_body_bytes = 1048576; larger request bodies get 413 */
    int connection_timeout_s; /* connection_timeout = 30; idle connection timeout, seconds */

    /* [rag] */
    int rag_enabled; /* enabled = true; false: /retrieve answers at once with no chunks */

    /* [store] */
    char *data_dir;       /* data_dir = var/vectorstore */
    char *vector_backend; /* vector_backend = faiss; the only backend for now */
    char *index_factory;  /* index_factory = Flat; FAISS factory string (Flat or HNSW<M>) */
    int hnsw_ef_search;   /* hnsw_ef_search = 64; efSearch of HNSW indexes */

    /* [ingest] */
    char **ingest_paths;    /* paths = docs; colon-separated list, ingested by `serve` at start */
    size_t ingest_path_count;
    int ingest_on_start;    /* on_start = true; serve ingests `paths` in the background at start */
    size_t max_file_bytes;  /* max_file_bytes = 10485760; larger files are reported, not read */

    /* [chunk] */
    int chunk_target_tokens; /* target_tokens = 650 */
    int chunk_max_tokens;    /* max_tokens = 800; hard maximum, >= target_tokens */
    double chunk_overlap;    /* overlap = 0.15; fraction of target_tokens repeated, 0..0.5 */

    /* [embed] */
    char *embed_provider; /* provider = auto; auto | local */
    int embed_dims;       /* dims = 1024; local provider dimensions, 64..4096 */
    int embed_batch_size; /* batch_size = 64; texts per provider call, 1..2048 */
    char *embed_api_key;  /* api_key = (empty); secret, redacted everywhere */

    /* [retrieve] */
    int retrieve_default_k;    /* default_k = 5 */
    int retrieve_max_k;        /* max_k = 50; larger k is a 400 */
    double retrieve_min_score; /* min_score = 0.0; results below are dropped */

    /* [log] */
    char *log_level; /* level = info; debug | info | warn | error */
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

/* Frees the strings owned by cfg and zeroes it. cfg may be NULL. */
void cfg_free(ragd_cfg *cfg);

#endif
