/* SPDX-License-Identifier: MIT */
/*
 * embed_provider.c - choosing an embedding provider from the configuration and running batches
 * through its function table: "local" (built in, offline), "openai" (OpenAI-compatible HTTP API)
 * and "auto" (openai when an API key is configured, else local). Also the counters every
 * provider keeps, read for /health and /metrics.
 */
#include <stdlib.h>
#include <string.h>

#include "ragd/embed.h"
#include "ragd/log.h"
#include "ragd/util.h"

/* Models whose vectors are a pure function of (text, dims): recomputed, never stored. */
static const struct {
    const char *model;
    embed_vector_fn fn;
} recomputable[] = {
    {RAGD_EMBED_LOCAL_MODEL, embed_local_vector},
};

embed_vector_fn embed_recompute_for(const char *model)
{
    for (size_t i = 0; model != NULL && i < sizeof recomputable / sizeof recomputable[0]; i++)
        if (strcmp(recomputable[i].model, model) == 0) return recomputable[i].fn;
    return NULL;
}

ragd_rc embed_chunk_recompute(const char *model, int dims, const char *checksum,
                              const char *heading, const char *text, size_t len, float *out,
                              ragd_err *err)
{
    embed_vector_fn fn = embed_recompute_for(model);
    if (fn == NULL)
        return ragd_err_set(err, RAGD_ERR_STORE,
                            "corrupt embedding for chunk checksum %s: no vector bytes, and model "
                            "'%s' cannot recompute one", checksum, model);
    if (text == NULL)
        return ragd_err_set(err, RAGD_ERR_STORE, "embedding for chunk checksum %s: no vector "
                            "bytes and no chunk text to recompute them from", checksum);
    char *in = embed_chunk_input(heading, text, len);
    if (in == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "recompute embedding: out of memory");
    size_t in_len = strlen(in);
    char sum[UTIL_SHA256_HEX_LEN + 1];
    util_sha256_hex(in, in_len, sum);
    ragd_rc rc = RAGD_OK;
    if (strcmp(sum, checksum) != 0)
        rc = ragd_err_set(err, RAGD_ERR_STORE,
                          "embedding for chunk checksum %s: the chunk's text hashes to %s; "
                          "re-ingest with --reset to repair", checksum, sum);
    else
        fn(in, in_len, dims, out);
    free(in);
    return rc;
}

/* The heading path gives the chunk its context (measured: a context line is worth several
 * points of recall, docs/EMBEDDER.md). A chunk without headings is embedded as its text alone:
 * the heading path comes from the content, so identical text is still embedded once however many
 * documents (and file names) hold it. */
char *embed_chunk_input(const char *heading, const char *text, size_t len)
{
    util_buf b = {0};
    int bad = 0;
    if (heading != NULL && heading[0])
        bad = util_buf_puts(&b, heading) != 0 || util_buf_append(&b, "\n\n", 2) != 0;
    if (bad || util_buf_append(&b, text, len) != 0) {
        util_buf_free(&b);
        return NULL;
    }
    return util_buf_steal(&b);
}

ragd_rc embed_provider_new(const ragd_cfg *cfg, embed_provider **out, ragd_err *err)
{
    if (cfg == NULL || out == NULL)
        return ragd_err_set(err, RAGD_ERR_INVALID, "embed: configuration required");
    const char *name = cfg->embed_provider != NULL ? cfg->embed_provider : "auto";
    if (strcmp(name, "auto") != 0 && strcmp(name, "local") != 0 && strcmp(name, "openai") != 0)
        return ragd_err_set(err, RAGD_ERR_CONFIG,
                            "embed: unknown provider \"%s\" (expected auto, local or openai)",
                            name);
    int has_key = cfg->embed_api_key != NULL && cfg->embed_api_key[0] != '\0';
    int openai = strcmp(name, "openai") == 0 || (strcmp(name, "auto") == 0 && has_key);

    embed_provider *p = NULL;
    ragd_rc rc = openai ? embed_openai_new(cfg, &p, err) : embed_local_new(cfg->embed_dims, &p,
                                                                            err);
    if (rc != RAGD_OK) return rc;
    if (cfg->embed_batch_size > 0) p->max_batch = (size_t)cfg->embed_batch_size;
    p->price_per_million = openai ? cfg->embed_price_per_million : 0.0;
    RAGD_LOG(RAGD_LOG_DEBUG, "embed", "provider %s model %s dims %d", p->ops->name, p->model,
             p->dims);
    *out = p;
    return RAGD_OK;
}

void embed_provider_free(embed_provider *p)
{
    if (p == NULL) return;
    p->ops->destroy(p);
}

ragd_rc embed_batch_run_each(embed_provider *p, const char *const *texts, const size_t *lens,
                             size_t n, float *out, embed_done_fn done, void *ctx, ragd_err *err)
{
    if (p == NULL) return ragd_err_set(err, RAGD_ERR_INVALID, "embed: no provider");
    if (n == 0) return RAGD_OK;
    if (texts == NULL || out == NULL)
        return ragd_err_set(err, RAGD_ERR_INVALID, "embed: texts and out are required");
    if (p->ops->run != NULL) return p->ops->run(p, texts, lens, n, out, done, ctx, err);
    size_t step = p->max_batch > 0 ? p->max_batch : n;
    for (size_t at = 0; at < n; at += step) {
        size_t count = n - at < step ? n - at : step;
        float *rows = out + at * (size_t)p->dims;
        ragd_rc rc = p->ops->batch(p, texts + at, lens != NULL ? lens + at : NULL, count, rows,
                                   err);
        if (rc != RAGD_OK) return rc;
        atomic_fetch_add(&p->counters.inputs, count);
        if (done != NULL && (rc = done(ctx, at, count, rows, 0, err)) != RAGD_OK) return rc;
    }
    return RAGD_OK;
}

ragd_rc embed_batch_run(embed_provider *p, const char *const *texts, const size_t *lens, size_t n,
                        float *out, ragd_err *err)
{
    return embed_batch_run_each(p, texts, lens, n, out, NULL, NULL, err);
}

void embed_counters_get(const embed_provider *p, embed_counters *out)
{
    memset(out, 0, sizeof *out);
    if (p == NULL) return;
    /* The cells are atomic; reading through a const pointer needs the cast C11 atomics want. */
    embed_counter_cells *c = (embed_counter_cells *)&p->counters;
    out->requests = atomic_load(&c->requests);
    out->inputs = atomic_load(&c->inputs);
    out->tokens = atomic_load(&c->tokens);
    out->retries = atomic_load(&c->retries);
    out->errors_rate_limited = atomic_load(&c->rate_limited);
    out->errors_server = atomic_load(&c->server);
    out->errors_timeout = atomic_load(&c->timeout);
    out->errors_network = atomic_load(&c->network);
    out->errors_bad_reply = atomic_load(&c->bad_reply);
    out->errors_refused = atomic_load(&c->refused);
    out->cost_usd = (double)out->tokens * p->price_per_million / 1e6;
}
