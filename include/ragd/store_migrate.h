/* SPDX-License-Identifier: MIT */
/*
 * store_migrate.h - copying a store between backends without embedding anything again (`ragd
 * migrate`, src/store_migrate.c).
 */
#ifndef RAGD_STORE_MIGRATE_H
#define RAGD_STORE_MIGRATE_H

#include <stdint.h>

#include "ragd/ragd.h"
#include "ragd/store.h"

typedef struct store_migrate_report {
    int64_t collections;              /* in the source */
    int64_t documents, chunks;        /* in the target at the end (equal to the source's) */
    int64_t documents_copied, chunks_copied, embeddings_copied;
    int64_t documents_unchanged;      /* already in the target as they are */
    int64_t documents_removed;        /* in the target but no longer in the source */
    int64_t chunks_without_embedding; /* copied, not searchable by vector (none in a sound store) */
} store_migrate_report;

/* Copies every collection of src into dst (both open, writable dst, vectors opened for
 * model/dims): documents, chunks with their stored embeddings as vectors, the embeddings
 * themselves. Re-runnable: unchanged documents are skipped, vanished ones removed. Verifies that
 * every collection's document and chunk counts agree. Returns: RAGD_OK and *rep, or the first
 * error (documents copied before it stay copied). */
ragd_rc store_migrate_run(store *src, store *dst, const char *model, int dims,
                          store_migrate_report *rep, ragd_err *err);

#endif
