/* SPDX-License-Identifier: MIT */
/*
 * store_index_int.h - the vector index file's checksum, taken in the same pass as FAISS reads or
 * writes the file (src/store_index_sum.c). Private to src/store_index.c and its unit tests.
 *
 * A store_sum is a stdio stream over a file descriptor: every byte FAISS reads through it (or
 * writes through it) is fed to a digest on its way, so saving an index writes it once and loading
 * one reads it once, instead of a second full pass to hash it. Two digests: SHA-256 (index metas
 * of format 1, written by ragd before this file existed) and XXH3-64 (format 2, what ragd writes
 * now: the file is ragd's own derived state, the checksum guards against torn, stale or swapped
 * files and media errors, not against an attacker who could rewrite the meta as well, and XXH3
 * runs at memory speed where SHA-256 costs about a second per 1.5 GB).
 */
#ifndef RAGD_STORE_INDEX_INT_H
#define RAGD_STORE_INDEX_INT_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "ragd/ragd.h"

/* The digest of an index file; the value is the meta's format number that records it. */
typedef enum store_sum_kind {
    RAGD_SUM_SHA256 = 1, /* meta format 1: "sha256", 64 hex digits */
    RAGD_SUM_XXH3 = 2    /* meta format 2: "xxh3", 16 hex digits (XXH3_64bits, seed 0) */
} store_sum_kind;

#define RAGD_SUM_HEX_MAX 65 /* the longest digest in hex plus its NUL */

typedef struct store_sum store_sum;

/* Starts a digest of kind over fd (borrowed: it must stay open until store_sum_free), reading or
 * writing from offset 0 with pread/pwrite, whatever fd's own position is.
 * Returns: RAGD_OK and *out (new, free with store_sum_free), or RAGD_ERR_NOMEM. */
ragd_rc store_sum_new(store_sum_kind kind, int fd, store_sum **out, ragd_err *err);

/* Frees s; a stream from store_sum_stream must have been closed first. NULL is a no-op. */
void store_sum_free(store_sum *s);

/* Returns: a new stdio stream (close with fclose, before store_sum_free) that reads ("r") or
 * writes ("w") fd through the digest, fully buffered in large blocks; NULL on failure (errno). */
FILE *store_sum_stream(store_sum *s, const char *mode);

/* Makes the write stream of s write around the page cache: path must name fd's file (checked: same
 * device and inode), which is opened a second time with O_DIRECT (the descriptor is s's own,
 * closed by store_sum_free). Call before the first write. Bytes, digest and errors (ENOSPC) are
 * those of a plain stream; a file system that refuses O_DIRECT gets the bytes through fd.
 * Returns: 1 when direct writing is on, 0 when it is not available (the stream writes through
 * fd as before). */
int store_sum_direct(store_sum *s, const char *path);

/* Returns: the bytes s wrote with O_DIRECT so far (the rest went through the page cache). */
uint64_t store_sum_direct_bytes(const store_sum *s);

/* The pwrite of the O_DIRECT writes: pwrite itself; unit tests replace it to make the file system
 * refuse a write (EINVAL), write short, or fail (ENOSPC). */
extern ssize_t (*store_sum_direct_pwrite)(int fd, const void *buf, size_t size, off_t at);

/* Reads fd from where the stream stopped to its end through the digest (a reader that did not
 * consume the whole file still has every byte checked). Returns: RAGD_OK or RAGD_ERR_IO. */
ragd_rc store_sum_drain(store_sum *s, ragd_err *err);

/* Returns: the bytes that passed through the digest so far. */
uint64_t store_sum_bytes(const store_sum *s);

/* Returns: 1 when an I/O error happened inside the stream (the digest is then meaningless). */
int store_sum_failed(const store_sum *s);

/* Returns: the errno of the stream's first I/O error (ENOSPC on a full disk), 0 when none. */
int store_sum_errno(const store_sum *s);

/* Finishes the digest into hex (lowercase, NUL-terminated; 64 digits for SHA-256, 16 for XXH3).
 * Returns: RAGD_OK, or RAGD_ERR_INTERNAL when the digest library fails. */
ragd_rc store_sum_hex(store_sum *s, char hex[RAGD_SUM_HEX_MAX], ragd_err *err);

/* Returns: the number of hex digits a digest of kind has (0 for an unknown kind). */
size_t store_sum_hex_len(store_sum_kind kind);

#endif
