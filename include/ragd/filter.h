/* SPDX-License-Identifier: MIT */
/*
 * filter.h - metadata filters for retrieval in the JSON shape of OpenAI's vector-store search
 * filters, so code written for one works with the other:
 *   {"type": "eq"|"ne"|"gt"|"gte"|"lt"|"lte", "key": K, "value": V}
 *   {"type": "in"|"nin", "key": K, "value": [V, ...]}
 *   {"type": "and"|"or", "filters": [F, ...]}
 * Keys name document metadata (front matter scalars, pushed documents' "metadata"), plus three
 * built-in keys: "source" (eq/ne/in/nin match a prefix of the document's source), "tags" (eq/in:
 * the document has the tag / one of them; ne/nin: it has none of them) and "page" (the chunk's
 * page number; 0 when none). See docs/API.md for the full rules.
 */
#ifndef RAGD_FILTER_H
#define RAGD_FILTER_H

#include <jansson.h>

#include "ragd/ragd.h"

typedef struct retrieve_filter retrieve_filter;

#define RETRIEVE_FILTER_MAX_DEPTH 8
#define RETRIEVE_FILTER_MAX_NODES 256

/* Parses a filter. where names the JSON value in messages ("filters"). A malformed filter fails
 * with RAGD_ERR_INVALID and a message naming the offending part, e.g.
 * "filters.filters[1].type: unknown filter type 'equals' (expected eq, ne, ...)".
 * json is borrowed. Returns: RAGD_OK and *out (new, free with retrieve_filter_free). */
ragd_rc retrieve_filter_parse(const json_t *json, const char *where, retrieve_filter **out,
                              ragd_err *err);

/* Frees f. f may be NULL. */
void retrieve_filter_free(retrieve_filter *f);

/* Returns: 1 when a chunk matches: source (document source), tags (JSON array, may be NULL),
 * metadata (JSON object, may be NULL), page (0 when none). All borrowed. */
int retrieve_filter_match(const retrieve_filter *f, const char *source, const json_t *tags,
                          const json_t *metadata, int page);

#endif
