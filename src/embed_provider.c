/* SPDX-License-Identifier: MIT */
/*
 * embed_provider.c - choosing an embedding provider from the configuration and running batches
 * through its function table. Only the built-in "local" provider exists so far; "auto" picks it
 * (a network provider, used when an API key is set, is planned).
 */
#include <string.h>

#include "ragd/embed.h"
#include "ragd/log.h"

ragd_rc embed_provider_new(const ragd_cfg *cfg, embed_provider **out, ragd_err *err)
{
    if (cfg == NULL || out == NULL)
        return ragd_err_set(err, RAGD_ERR_INVALID, "embed: configuration required");
    const char *name = cfg->embed_provider != NULL ? cfg->embed_provider : "auto";
    if (strcmp(name, "auto") != 0 && strcmp(name, "local") != 0)
        return ragd_err_set(err, RAGD_ERR_CONFIG,
                            "embed: unknown provider \"%s\" (expected auto or local)", name);
    if (strcmp(name, "auto") == 0 && cfg->embed_api_key != NULL && cfg->embed_api_key[0] != '\0')
        RAGD_LOG(RAGD_LOG_INFO, "embed",
                 "an API key is set but no network provider is built yet; using local");

    embed_provider *p = NULL;
    ragd_rc rc = embed_local_new(cfg->embed_dims, &p, err);
    if (rc != RAGD_OK) return rc;
    if (cfg->embed_batch_size > 0) p->max_batch = (size_t)cfg->embed_batch_size;
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

ragd_rc embed_batch_run(embed_provider *p, const char *const *texts, const size_t *lens, size_t n,
                        float *out, ragd_err *err)
{
    if (p == NULL) return ragd_err_set(err, RAGD_ERR_INVALID, "embed: no provider");
    if (n == 0) return RAGD_OK;
    if (texts == NULL || out == NULL)
        return ragd_err_set(err, RAGD_ERR_INVALID, "embed: texts and out are required");
    size_t step = p->max_batch > 0 ? p->max_batch : n;
    for (size_t at = 0; at < n; at += step) {
        size_t count = n - at < step ? n - at : step;
        ragd_rc rc = p->ops->batch(p, texts + at, lens != NULL ? lens + at : NULL, count,
                                   out + at * (size_t)p->dims, err);
        if (rc != RAGD_OK) return rc;
    }
    return RAGD_OK;
}
