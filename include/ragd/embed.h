/* SPDX-License-Identifier: MIT */
/*
 * embed.h - embedding providers behind one function table, made for batches. The built-in
 * offline provider "local" is deterministic feature hashing (src/embed_local.c); "openai" speaks
 * the OpenAI embeddings protocol over libcurl (src/embed_openai.c) to OpenAI or any compatible
 * server, with batching under the API's limits, requests in flight, retries and usage counting.
 */
#ifndef RAGD_EMBED_H
#define RAGD_EMBED_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "ragd/cfg.h"
#include "ragd/ragd.h"

typedef struct embed_provider embed_provider;

/* Called once for each finished batch, as soon as it returns: texts[first..first+count) now have
 * their rows in vectors (count * dims floats, borrowed for the call); tokens is what the upstream
 * billed for the batch (0 for local). Returning an error stops the run with that error. */
typedef ragd_rc (*embed_done_fn)(void *ctx, size_t first, size_t count, const float *vectors,
                                 int64_t tokens, ragd_err *err);

typedef struct embed_ops {
    const char *name; /* "local", ... */
    /* Embeds n texts into out (n * dims floats, each row L2-normalised; an empty text gives a
     * zero row). Must be safe to call from several threads at once. */
    ragd_rc (*batch)(embed_provider *p, const char *const *texts, const size_t *lens, size_t n,
                     float *out, ragd_err *err);
    void (*destroy)(embed_provider *p);
    /* Optional: embeds n texts in as many batches as it likes (several in flight), calling done
     * (may be NULL) after each. Providers without it are driven batch by batch through batch. */
    ragd_rc (*run)(embed_provider *p, const char *const *texts, const size_t *lens, size_t n,
                   float *out, embed_done_fn done, void *ctx, ragd_err *err);
    /* 1: computed in-process, nothing paid: an ingest may keep its vectors with the documents'
     * commit instead of storing each batch at once (a lost batch is computed again). */
    int in_process;
} embed_ops;

/* What a provider has done since it was created; for /health and /metrics. Network providers
 * count everything; local counts inputs only. */
typedef struct embed_counters {
    uint64_t requests;        /* HTTP requests sent, retries included */
    uint64_t inputs;          /* texts embedded */
    uint64_t tokens;          /* tokens billed (the replies' usage.total_tokens) */
    uint64_t retries;         /* requests sent again after a retryable failure */
    uint64_t errors_rate_limited; /* 429 rate_limit_exceeded (and other retryable 429s) */
    uint64_t errors_server;   /* 5xx, 408, 409 */
    uint64_t errors_timeout;  /* no complete reply within embed.timeout */
    uint64_t errors_network;  /* connect refused, reset, truncated transfer */
    uint64_t errors_bad_reply; /* 2xx whose body is not a valid embeddings reply */
    uint64_t errors_refused;  /* 400, 401, 403, 404, 429 insufficient_quota: never retried */
    double cost_usd;          /* tokens * embed.price_per_million / 1e6 */
} embed_counters;

/* The live cells behind embed_counters; updated from any thread. */
typedef struct embed_counter_cells {
    atomic_ullong requests, inputs, tokens, retries, rate_limited, server, timeout, network,
        bad_reply, refused;
} embed_counter_cells;

struct embed_provider {
    const embed_ops *ops;
    char model[128]; /* recorded in the store: a different model means re-index */
    int dims;
    size_t max_batch; /* largest n the provider accepts in one batch call */
    void *state;      /* provider-private */
    embed_counter_cells counters;
    double price_per_million; /* USD, for embed_counters.cost_usd */
    size_t max_input_tokens;  /* longest input the provider accepts (embed_tokens_bound); 0: any */
};

/* A conservative (high) token count of text[0..len) for a provider's limits: the chunker's
 * estimate plus 25%, never more than len (a BPE token is at least one byte). */
size_t embed_tokens_bound(const char *text, size_t len);

/* Creates the provider the configuration selects ("auto" picks local when no API key).
 * Returns: RAGD_OK and *out (new, free with embed_provider_free). */
ragd_rc embed_provider_new(const ragd_cfg *cfg, embed_provider **out, ragd_err *err);

/* Frees p. p may be NULL. */
void embed_provider_free(embed_provider *p);

/* Embeds n texts, splitting into provider-sized batches. out holds n * p->dims floats. */
ragd_rc embed_batch_run(embed_provider *p, const char *const *texts, const size_t *lens, size_t n,
                        float *out, ragd_err *err);

/* As embed_batch_run, and calls done (may be NULL) after each batch returns, so a caller can make
 * each batch durable at once. When a later batch fails, the batches already passed to done stay
 * done. */
ragd_rc embed_batch_run_each(embed_provider *p, const char *const *texts, const size_t *lens,
                             size_t n, float *out, embed_done_fn done, void *ctx, ragd_err *err);

/* Fills *out with p's counters (all zero when p is NULL). Thread-safe. */
void embed_counters_get(const embed_provider *p, embed_counters *out);

/* The OpenAI-compatible provider over libcurl, configured by cfg's [embed] keys (base_url, model,
 * dims, api_key, headers, batch_size, concurrency, retries, timeouts). Model recorded in the store:
 * cfg->embed_model. Returns: RAGD_OK and *out (new, free with embed_provider_free);
 * RAGD_ERR_CONFIG for a bad base_url or headers value. */
ragd_rc embed_openai_new(const ragd_cfg *cfg, embed_provider **out, ragd_err *err);

/* The local provider. Model name "ragd-local-v1". dims 64..4096.
 * Returns: RAGD_OK and *out (new, free with embed_provider_free). */
ragd_rc embed_local_new(int dims, embed_provider **out, ragd_err *err);

/* The local embedding of one text, as embed_local's batch does: deterministic, L2-normalised
 * (all zeros when the text has no features). out holds dims floats. */
void embed_local_vector(const char *text, size_t len, int dims, float *out);
/* Turns the local embedder's per-thread word cache on (on != 0) or off, process-wide: on, each
 * thread that embeds documents keeps about 540 KiB of recent words' hashes, stems and n-gram
 * slots (ingest CPU about x0.95; vectors bit-identical either way). Off by default; for batch
 * processes (`ragd ingest`): the daemon's RSS has a budget. */
void embed_local_word_cache(int on);

/* The model name the local provider records in a store. */
#define RAGD_EMBED_LOCAL_MODEL "ragd-local-v1"

/* The text a chunk is embedded as: its heading path (when not empty), a blank line, then the
 * chunk's text[0..len). The one definition used by ingest (whose chunk checksum is the SHA-256
 * of this text) and by every place that recomputes a chunk's vector.
 * Returns: new string (free()), or NULL when out of memory. */
char *embed_chunk_input(const char *heading, const char *text, size_t len);

/* Computes the embedding of text[0..len) (dims floats into out) as a model does. */
typedef void (*embed_vector_fn)(const char *text, size_t len, int dims, float *out);

/* The function that recomputes model's vectors when model is a deterministic in-process
 * embedder whose output depends only on the text and dims (the local provider: its vectors
 * need not be stored, see store_db_embedding_put). Returns: the function, or NULL when model's
 * vectors cannot be recomputed (a remote model: paid for, stored). */
embed_vector_fn embed_recompute_for(const char *model);

/* Recomputes the vector of a chunk (heading, text[0..len)) as model embedded it at ingest: the
 * input is embed_chunk_input's, and it must hash (SHA-256, hex) to checksum, the key its
 * embedding was stored under. Returns: RAGD_OK and out (dims floats); RAGD_ERR_STORE when model
 * cannot recompute or the text does not match checksum (never a wrong vector). */
ragd_rc embed_chunk_recompute(const char *model, int dims, const char *checksum,
                              const char *heading, const char *text, size_t len, float *out,
                              ragd_err *err);

#endif
