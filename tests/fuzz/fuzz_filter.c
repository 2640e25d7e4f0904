/* SPDX-License-Identifier: MIT */
/*
 * fuzz_filter.c - libFuzzer target: OpenAI-style metadata filters (src/retrieve_filter.c) from any
 * JSON, and the query terms and FTS5 MATCH expression (src/retrieve_fuse.c) from any text: user
 * text must never become FTS syntax (every term comes out as a quoted phrase).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ragd/filter.h"
#include "ragd/retrieve.h"
#include "ragd/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *j = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    if (j) {
        retrieve_filter *f = NULL;
        ragd_err err = {0};
        if (retrieve_filter_parse(j, "filters", &f, &err) == RAGD_OK) {
            if (f == NULL) abort();
        } else if (err.rc == RAGD_OK || err.msg[0] == '\0') {
            abort();
        }
        retrieve_filter_free(f);
        json_decref(j);
    }
    retrieve_terms t;
    ragd_err err = {0};
    if (retrieve_terms_split((const char *)data, size, &t, &err) == RAGD_OK) {
        char *m = retrieve_fts_match(&t);
        /* only quoted phrases joined by OR */
        if (m && m[0] && m[0] != '"') abort();
        free(m);
        retrieve_terms_free(&t);
    }
    return 0;
}
