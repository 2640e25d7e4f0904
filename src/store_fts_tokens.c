/* SPDX-License-Identifier: MIT */
/*
 * store_fts_tokens.c - "does this chunk contain this query term?" answered in memory, with the
 * keyword index's own tokenizer (FTS5's porter over unicode61, remove_diacritics 2, taken from
 * the SQLite connection through the fts5_api), instead of one FTS5 query per term and chunk.
 * The confidence estimate asks it for every query term in each of the top five results: as
 * FTS5 queries that cost ~70 us each on a store of 14 index segments (every query opens every
 * segment), 2-3 ms per request; tokenizing five chunks costs a few tens of microseconds.
 *
 * Semantics are FTS5's: a phrase ("a b") occurs in a chunk when its query tokens appear one
 * after the other in one column (title, heading or text); a group of variants ("a" OR "a b")
 * when any of its phrases does. The unit test checks the answers against FTS5 MATCH.
 */
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "store_fts_tokens_int.h"

struct store_fts_tokenizer {
    fts5_tokenizer api;
    Fts5Tokenizer *tok;
};

fts5_api *store_fts_api(sqlite3 *db)
{
    fts5_api *api = NULL;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT fts5(?1)", -1, &st, NULL) != SQLITE_OK) return NULL;
    sqlite3_bind_pointer(st, 1, (void *)&api, "fts5_api_ptr", NULL);
    sqlite3_step(st);
    sqlite3_finalize(st);
    return api;
}

store_fts_tokenizer *store_fts_tokenizer_new(sqlite3 *db)
{
    fts5_api *api = store_fts_api(db);
    if (api == NULL || api->iVersion < 2) return NULL;
    store_fts_tokenizer *t = calloc(1, sizeof *t);
    if (t == NULL) return NULL;
    void *user = NULL;
    /* chunks_fts: tokenize = 'porter unicode61 remove_diacritics 2' (src/store_db.c) */
    const char *args[] = {"unicode61", "remove_diacritics", "2"};
    if (api->xFindTokenizer(api, "porter", &user, &t->api) != SQLITE_OK ||
        t->api.xCreate(user, args, 3, &t->tok) != SQLITE_OK) {
        free(t);
        return NULL;
    }
    return t;
}

void store_fts_tokenizer_free(store_fts_tokenizer *t)
{
    if (t == NULL) return;
    if (t->tok != NULL) t->api.xDelete(t->tok);
    free(t);
}

/* A token list: the tokens' bytes one after the other, each NUL-terminated. */
typedef struct token_list {
    char *bytes;
    size_t len, cap;
    size_t *starts;
    size_t count, starts_cap;
    int oom;
} token_list;

static int token_add(void *ctx, int flags, const char *token, int n, int start, int end)
{
    (void)start;
    (void)end;
    token_list *l = ctx;
    if (flags & FTS5_TOKEN_COLOCATED) return SQLITE_OK; /* a synonym at the same position */
    if (l->len + (size_t)n + 1 > l->cap) {
        size_t cap = l->cap ? l->cap : 256;
        while (cap < l->len + (size_t)n + 1) cap *= 2;
        char *b = realloc(l->bytes, cap);
        if (b == NULL) {
            l->oom = 1;
            return SQLITE_NOMEM;
        }
        l->bytes = b;
        l->cap = cap;
    }
    if (l->count == l->starts_cap) {
        size_t cap = l->starts_cap ? l->starts_cap * 2 : 64;
        size_t *s = realloc(l->starts, cap * sizeof *s);
        if (s == NULL) {
            l->oom = 1;
            return SQLITE_NOMEM;
        }
        l->starts = s;
        l->starts_cap = cap;
    }
    l->starts[l->count++] = l->len;
    memcpy(l->bytes + l->len, token, (size_t)n);
    l->len += (size_t)n;
    l->bytes[l->len++] = '\0';
    return SQLITE_OK;
}

static void token_list_free(token_list *l)
{
    free(l->bytes);
    free(l->starts);
    memset(l, 0, sizeof *l);
}

static const char *token_at(const token_list *l, size_t i)
{
    return l->bytes + l->starts[i];
}

/* Returns: 0, or -1 on OOM or a tokenizer error. */
static int tokenize(store_fts_tokenizer *t, int mode, const char *text, size_t len,
                    token_list *out)
{
    if (len == 0) return 0;
    int code = t->api.xTokenize(t->tok, out, mode, text, (int)len, token_add);
    return code == SQLITE_OK && !out->oom ? 0 : -1;
}

/* Returns: 1 when the phrase's tokens (phrase->count > 0) appear one after the other in col. */
static int phrase_in(const token_list *phrase, const token_list *col)
{
    if (phrase->count == 0 || phrase->count > col->count) return 0;
    for (size_t i = 0; i + phrase->count <= col->count; i++) {
        size_t j = 0;
        while (j < phrase->count && strcmp(token_at(col, i + j), token_at(phrase, j)) == 0) j++;
        if (j == phrase->count) return 1;
    }
    return 0;
}

/* Finds the next quoted phrase in expr from *pos: its text, unescaped ("" -> "), into buf
 * (new, free()). Returns: 1 found, 0 none left, -1 on OOM. */
static int next_phrase(const char *expr, size_t *pos, char **buf, size_t *len)
{
    const char *p = strchr(expr + *pos, '"');
    if (p == NULL) return 0;
    size_t cap = strlen(p) + 1, n = 0;
    char *b = malloc(cap);
    if (b == NULL) return -1;
    const char *q = p + 1;
    for (; *q != '\0'; q++) {
        if (*q == '"') {
            if (q[1] == '"') {
                b[n++] = '"';
                q++;
                continue;
            }
            break;
        }
        b[n++] = *q;
    }
    b[n] = '\0';
    *pos = (size_t)(q - expr) + (*q != '\0');
    *buf = b;
    *len = n;
    return 1;
}

int store_fts_phrases_in(store_fts_tokenizer *t, const char *const *phrases, size_t n,
                         const char *const *cols, size_t ncols, int *in)
{
    token_list col[STORE_FTS_COLS_MAX];
    memset(col, 0, sizeof col);
    int rc = ncols > STORE_FTS_COLS_MAX ? -1 : 0;
    for (size_t c = 0; rc == 0 && c < ncols; c++)
        if (cols[c] != NULL) rc = tokenize(t, FTS5_TOKENIZE_DOCUMENT, cols[c], strlen(cols[c]),
                                           &col[c]);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        in[i] = 0;
        size_t pos = 0;
        char *text = NULL;
        size_t len = 0;
        int got;
        /* a term is one phrase, or a group of variants: any phrase of it */
        while (rc == 0 && !in[i] && (got = next_phrase(phrases[i], &pos, &text, &len)) != 0) {
            if (got < 0) {
                rc = -1;
                break;
            }
            token_list q = {0};
            rc = tokenize(t, FTS5_TOKENIZE_QUERY, text, len, &q);
            for (size_t c = 0; rc == 0 && c < ncols && !in[i]; c++) in[i] = phrase_in(&q, &col[c]);
            token_list_free(&q);
            free(text);
        }
    }
    for (size_t c = 0; c < ncols; c++) token_list_free(&col[c]);
    return rc;
}
