/* SPDX-License-Identifier: MIT */
/*
 * ragd.h - definitions shared by every module: the version, the one error enum (ragd_rc) and the
 * error detail struct (ragd_err) that functions take as their last argument.
 *
 * Convention: a function that can fail returns ragd_rc and takes `ragd_err *err` last. err may be
 * NULL. The first error recorded in an err wins: later ragd_err_set() calls on an err whose rc is
 * already non-zero do nothing, so the root cause reaches the user.
 */
#ifndef RAGD_RAGD_H
#define RAGD_RAGD_H

#include <stddef.h>
#include <stdint.h>

#define RAGD_VERSION "0.1.0"

/* Error codes. Add new codes last; never renumber (they appear in logs). */
typedef enum ragd_rc {
    RAGD_OK = 0,
    RAGD_ERR_NOMEM,          /* allocation failed */
    RAGD_ERR_INVALID,        /* bad input from a caller: request, argument, file content */
    RAGD_ERR_NOT_FOUND,      /* a path, document or route that does not exist */
    RAGD_ERR_IO,             /* filesystem or OS error */
    RAGD_ERR_CONFIG,         /* bad configuration (message carries file:line) */
    RAGD_ERR_STORE,          /* SQLite error */
    RAGD_ERR_INDEX,          /* FAISS error */
    RAGD_ERR_EMBED,          /* embedding provider error */
    RAGD_ERR_MODEL_MISMATCH, /* store built with another embedding model or dimensions */
    RAGD_ERR_LOCKED,         /* data dir in use by another process */
    RAGD_ERR_BUSY,           /* an operation of the same kind is already running */
    RAGD_ERR_TOO_LARGE,      /* body, file or value over a configured limit */
    RAGD_ERR_UNSUPPORTED,    /* format or feature not supported */
    RAGD_ERR_DISABLED,       /* RAG is disabled by configuration */
    RAGD_ERR_INTERNAL,       /* a bug: an invariant did not hold */
    RAGD_ERR_UNAVAILABLE,    /* a dependency is not ready (store not open, shutting down) */
    RAGD_ERR_UNAUTHORIZED,   /* missing or wrong bearer token */
    RAGD_ERR_FORBIDDEN,      /* a path outside the allowed roots, or another refused access */
    RAGD_ERR_TIMEOUT,        /* an upstream or dependency did not answer in time */
    RAGD_ERR_UPSTREAM_REFUSED, /* upstream refused for good: bad key, no quota, unknown model */
    RAGD_ERR_CACHE           /* query-embedding cache (Redis) error; never fails a request */
} ragd_rc;

#define RAGD_ERR_MSG_MAX 512

typedef struct ragd_err {
    ragd_rc rc;
    char msg[RAGD_ERR_MSG_MAX];
} ragd_err;

/* Records rc and a printf-style message in err unless err is NULL or already holds an error.
 * Returns: rc, so callers can write `return ragd_err_set(err, RAGD_ERR_IO, "...")`. */
ragd_rc ragd_err_set(ragd_err *err, ragd_rc rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Resets err to RAGD_OK with an empty message. err may be NULL. */
void ragd_err_clear(ragd_err *err);

/* Returns: a stable lower_snake_case name for rc ("invalid", "not_found", ...); static storage. */
const char *ragd_rc_name(ragd_rc rc);

#endif
