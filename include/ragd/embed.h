/* SPDX-License-Identifier: MIT */
/*
 * embed.h - embedding providers behind one function table, made for batches. The built-in
 * offline provider "local" is deterministic feature hashing (src/embed_local.c); network
 * providers plug in as further tables.
 */
#ifndef RAGD_EMBED_H
#define RAGD_EMBED_H

#include <stddef.h>

#include "ragd/cfg.h"
#include "ragd/ragd.h"

typedef struct embed_provider embed_provider;

typedef struct embed_ops {
    const char *name; /* "local", ... */
    /* Embeds n texts into out (n * dims floats, each row L2-normalised; an empty text gives a
     * zero row). Must be safe to call from several threads at once. */
    ragd_rc (*batch)(embed_provider *p, const char *const *texts, const size_t *lens, size_t n,
                     float *out, ragd_err *err);
    void (*destroy)(embed_provider *p);
} embed_ops;

struct embed_provider {
    const embed_ops *ops;
    char model[128]; /* recorded in the store: a different model means re-index */
    int dims;
    size_t max_batch; /* largest n the provider accepts in one batch call */
    void *state;      /* provider-private */
};

/* Creates the provider the configuration selects ("auto" picks local when no API key).
 * Returns: RAGD_OK and *out (new, free with embed_provider_free). */
ragd_rc embed_provider_new(const ragd_cfg *cfg, embed_provider **out, ragd_err *err);

/* Frees p. p may be NULL. */
void embed_provider_free(embed_provider *p);

/* Embeds n texts, splitting into provider-sized batches. out holds n * p->dims floats. */
ragd_rc embed_batch_run(embed_provider *p, const char *const *texts, const size_t *lens, size_t n,
                        float *out, ragd_err *err);

/* The local provider. Model name "ragd-local-v1". dims 64..4096.
 * Returns: RAGD_OK and *out (new, free with embed_provider_free). */
ragd_rc embed_local_new(int dims, embed_provider **out, ragd_err *err);

/* The local embedding of one text, as embed_local's batch does: deterministic, L2-normalised
 * (all zeros when the text has no features). out holds dims floats. */
void embed_local_vector(const char *text, size_t len, int dims, float *out);

#endif
