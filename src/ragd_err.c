/* SPDX-License-Identifier: MIT */
/*
 * ragd_err.c - the error detail struct shared by all modules: first error wins, and stable names
 * for every ragd_rc (used as error codes in logs and reports).
 */
#include <stdarg.h>
#include <stdio.h>

#include "ragd/ragd.h"

ragd_rc ragd_err_set(ragd_err *err, ragd_rc rc, const char *fmt, ...)
{
    if (err == NULL || err->rc != RAGD_OK || rc == RAGD_OK) return rc;
    err->rc = rc;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return rc;
}

void ragd_err_clear(ragd_err *err)
{
    if (err == NULL) return;
    err->rc = RAGD_OK;
    err->msg[0] = '\0';
}

const char *ragd_rc_name(ragd_rc rc)
{
    switch (rc) {
    case RAGD_OK: return "ok";
    case RAGD_ERR_NOMEM: return "out_of_memory";
    case RAGD_ERR_INVALID: return "invalid";
    case RAGD_ERR_NOT_FOUND: return "not_found";
    case RAGD_ERR_IO: return "io_error";
    case RAGD_ERR_CONFIG: return "config_error";
    case RAGD_ERR_STORE: return "store_error";
    case RAGD_ERR_INDEX: return "index_error";
    case RAGD_ERR_EMBED: return "embed_error";
    case RAGD_ERR_MODEL_MISMATCH: return "model_mismatch";
    case RAGD_ERR_LOCKED: return "locked";
    case RAGD_ERR_BUSY: return "busy";
    case RAGD_ERR_TOO_LARGE: return "too_large";
    case RAGD_ERR_UNSUPPORTED: return "unsupported";
    case RAGD_ERR_DISABLED: return "disabled";
    case RAGD_ERR_INTERNAL: return "internal";
    case RAGD_ERR_UNAVAILABLE: return "unavailable";
    case RAGD_ERR_UNAUTHORIZED: return "unauthorized";
    case RAGD_ERR_FORBIDDEN: return "forbidden";
    case RAGD_ERR_TIMEOUT: return "timeout";
    case RAGD_ERR_UPSTREAM_REFUSED: return "upstream_refused";
    case RAGD_ERR_CACHE: return "cache_error";
    }
    return "unknown";
}
