/* SPDX-License-Identifier: MIT */
/*
 * ingest_int.h - helpers shared by the ingest module's files (extractors and the table in
 * ingest_extract.c); not part of the public ingest interface.
 */
#ifndef RAGD_INGEST_INT_H
#define RAGD_INGEST_INT_H

#include <stddef.h>

#include "ragd/ingest.h"

/* Returns: new copy of the file name of path without directory and extension (free()), or NULL
 * on OOM. */
char *ingest_path_title(const char *path);

/* Fills out with copies of text[0..len) and title (stolen), tags "[]", metadata_json (copied, or
 * "{}" when NULL), markdown. On failure frees title. Returns: RAGD_OK or RAGD_ERR_NOMEM. */
ragd_rc ingest_doc_fill(ingest_doc *out, const char *text, size_t len, char *title,
                        const char *metadata_json, int markdown, ragd_err *err);

#endif
