/* SPDX-License-Identifier: MIT */
/*
 * retrieve_fuse.c - the ranking half of retrieval, as pure functions: splitting a query into
 * terms and quoting them into an FTS5 MATCH expression (user text never becomes FTS syntax),
 * fusing the vector and keyword lists (reciprocal rank fusion or relative-score fusion), maximal
 * marginal relevance over word-set similarity, the IDF-weighted lexical coverage behind
 * `low_confidence`, and the clarifying question. docs/RETRIEVAL.md has the formulas and numbers.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ragd/retrieve.h"
#include "ragd/util.h"

/* ---- names ---------------------------------------------------------------------------------- */

static const char *const mode_names[] = {"default", "vector", "keyword", "hybrid"};
static const char *const fusion_names[] = {"default", "rrf", "relative"};

int retrieve_mode_parse(const char *name)
{
    for (int i = 1; name && i < 4; i++)
        if (strcmp(name, mode_names[i]) == 0) return i;
    return RAGD_MODE_DEFAULT;
}

int retrieve_fusion_parse(const char *name)
{
    for (int i = 1; name && i < 3; i++)
        if (strcmp(name, fusion_names[i]) == 0) return i;
    return RAGD_FUSION_DEFAULT;
}

const char *retrieve_mode_name(int mode)
{
    return mode >= 0 && mode < 4 ? mode_names[mode] : "?";
}

const char *retrieve_fusion_name(int fusion)
{
    return fusion >= 0 && fusion < 3 ? fusion_names[fusion] : "?";
}

/* ---- terms ---------------------------------------------------------------------------------- */

/* Function words that say nothing about what a passage is about. Sorted for bsearch. The IDF
 * weighting would discount them anyway on a large corpus; on a small one they would still match
 * everywhere and dilute BM25 and the coverage estimate. */
static const char *const stopwords[] = {
    "a",     "about", "after", "all",   "also",  "am",    "an",    "and",   "any",   "are",
    "as",    "at",    "be",    "been",  "before", "being", "but",  "by",    "can",   "could",
    "did",   "do",    "does",  "doing", "for",   "from",  "get",   "got",   "had",   "has",
    "have",  "having", "he",   "her",   "here",  "him",   "his",   "how",   "i",     "if",
    "in",    "into",  "is",    "it",    "its",   "just",  "me",    "might", "more",  "most",
    "my",    "no",    "not",   "of",    "on",    "or",    "other", "our",   "out",   "shall",
    "she",   "should", "so",   "some",  "such",  "than",  "that",  "the",   "their", "them",
    "then",  "there", "these", "they",  "this",  "those", "to",    "too",   "up",    "us",
    "very",  "was",   "we",    "were",  "what",  "when",  "where", "which", "while", "who",
    "whom",  "why",   "will",  "with",  "would", "you",   "your",
};

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int is_stopword(const char *w)
{
    return bsearch(&w, stopwords, sizeof stopwords / sizeof stopwords[0], sizeof stopwords[0],
                   str_cmp) != NULL;
}

/* Returns: the length in bytes of the word character at s[i] (ASCII letter or digit, or a
 * non-ASCII character outside the punctuation and symbol blocks), or 0 when s[i] separates words.
 * Roughly what FTS5's unicode61 tokenizer does without its tables: spaces, punctuation, symbols,
 * arrows, dingbats and emoji separate; letters of any script join. Invalid UTF-8 separates. */
static size_t word_char(const char *s, size_t len, size_t i)
{
    unsigned char c = (unsigned char)s[i];
    if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
    if (n == 0 || i + n > len) return 0;
    uint32_t cp = c & (n == 2 ? 0x1Fu : n == 3 ? 0x0Fu : 0x07u);
    for (size_t k = 1; k < n; k++) {
        unsigned char d = (unsigned char)s[i + k];
        if ((d & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (d & 0x3Fu);
    }
    int sep = (cp >= 0x80 && cp <= 0xBF) || cp == 0xD7 || cp == 0xF7 ||
              (cp >= 0x2000 && cp <= 0x2BFF) || (cp >= 0x3000 && cp <= 0x303F) ||
              (cp >= 0xE000 && cp <= 0xF8FF) || (cp >= 0xFE30 && cp <= 0xFE4F) ||
              (cp >= 0xFF00 && cp <= 0xFF0F) || cp == 0xFEFF || (cp >= 0x1F000 && cp <= 0x1FAFF);
    return sep ? 0 : n;
}

void retrieve_terms_free(retrieve_terms *t)
{
    if (t == NULL) return;
    for (size_t i = 0; i < t->count; i++) {
        free(t->items[i]);
        free(t->exprs[i]);
    }
    memset(t, 0, sizeof *t);
}

ragd_rc retrieve_terms_split(const char *text, size_t len, retrieve_terms *out, ragd_err *err)
{
    retrieve_terms t = {.count = 0};
    size_t i = 0;
    while (i < len && t.count < RAGD_TERMS_MAX) {
        size_t step;
        while (i < len && word_char(text, len, i) == 0) i++;
        size_t start = i;
        int ascii = 1;
        while (i < len && (step = word_char(text, len, i)) > 0) {
            ascii &= step == 1;
            i += step;
        }
        size_t n = i - start;
        if (n == 0 || (ascii && n < 2) || n > 64) continue;
        char *w = util_strndup(text + start, n);
        if (w == NULL) {
            retrieve_terms_free(&t);
            return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
        }
        for (size_t j = 0; j < n; j++)
            if (w[j] >= 'A' && w[j] <= 'Z') w[j] = (char)(w[j] - 'A' + 'a');
        int dup = is_stopword(w);
        for (size_t j = 0; j < t.count && !dup; j++) dup = strcmp(t.items[j], w) == 0;
        if (dup) {
            free(w);
            continue;
        }
        t.items[t.count++] = w;
    }
    *out = t;
    return RAGD_OK;
}

char *retrieve_fts_phrase(const char *term)
{
    util_buf b = {0};
    int bad = util_buf_append(&b, "\"", 1);
    for (const char *p = term; *p && !bad; p++)
        bad = *p == '"' ? util_buf_append(&b, "\"\"", 2) : util_buf_append(&b, p, 1);
    if (bad || util_buf_append(&b, "\"", 1) != 0) {
        util_buf_free(&b);
        return NULL;
    }
    return util_buf_steal(&b);
}

char *retrieve_fts_match(const retrieve_terms *t)
{
    util_buf b = {0};
    int bad = 0;
    for (size_t i = 0; i < t->count && !bad; i++) {
        char *p = retrieve_fts_term(t, i);
        bad = p == NULL || util_buf_printf(&b, "%s%s", i ? " OR " : "", p) != 0;
        free(p);
    }
    if (bad) {
        util_buf_free(&b);
        return NULL;
    }
    return util_buf_steal(&b);
}

/* ---- fusion --------------------------------------------------------------------------------- */

static int cand_cmp(const void *a, const void *b)
{
    const retrieve_cand *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

void retrieve_fuse(retrieve_cand *c, size_t n, const retrieve_fuse_opts *o)
{
    double wv = o->vector_weight, wk = 1.0 - o->vector_weight;
    double vmin = INFINITY, vmax = -INFINITY, kmin = INFINITY, kmax = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (c[i].vector_rank > 0) {
            vmin = fmin(vmin, c[i].vector_score);
            vmax = fmax(vmax, c[i].vector_score);
        }
        if (c[i].keyword_rank > 0) {
            kmin = fmin(kmin, c[i].keyword_score);
            kmax = fmax(kmax, c[i].keyword_score);
        }
    }
    for (size_t i = 0; i < n; i++) {
        retrieve_cand *x = &c[i];
        double s = 0.0;
        if (o->mode == RAGD_MODE_VECTOR) {
            s = x->vector_rank > 0 ? x->vector_score : 0.0;
        } else if (o->mode == RAGD_MODE_KEYWORD) {
            s = x->keyword_rank > 0 && kmax > 0 ? x->keyword_score / kmax : 0.0;
        } else if (o->fusion == RAGD_FUSION_RRF) {
            /* Weighted RRF, divided by its maximum (rank 1 in both lists) so scores are in
             * (0, 1] whatever k and the weights. */
            double top = 1.0 / (o->rrf_k + 1.0);
            if (x->vector_rank > 0) s += wv / (o->rrf_k + x->vector_rank);
            if (x->keyword_rank > 0) s += wk / (o->rrf_k + x->keyword_rank);
            s /= top;
        } else {
            /* Relative-score fusion: each list min-max normalised to [0, 1] over its candidates
             * (a single candidate, or all equal, normalise to 1), absent = 0, weighted sum. */
            if (x->vector_rank > 0)
                s += wv * (vmax > vmin ? (x->vector_score - vmin) / (vmax - vmin) : 1.0);
            if (x->keyword_rank > 0)
                s += wk * (kmax > kmin ? (x->keyword_score - kmin) / (kmax - kmin) : 1.0);
        }
        x->score = s;
    }
    qsort(c, n, sizeof *c, cand_cmp);
}

/* ---- diversity ------------------------------------------------------------------------------ */

/* FNV-1a of a lower-cased ASCII word. */
static uint64_t word_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 'A' && c <= 'Z') c = (unsigned char)(c - 'A' + 'a');
        h = (h ^ c) * 1099511628211ull;
    }
    return h;
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Returns: the distinct word hashes of s, sorted, new (free()); *n their number. NULL on OOM. */
static uint64_t *word_set(const char *s, size_t *n)
{
    size_t len = strlen(s), cap = 16, count = 0;
    uint64_t *v = malloc(cap * sizeof *v);
    for (size_t i = 0; v && i < len;) {
        size_t w;
        while (i < len && word_char(s, len, i) == 0) i++;
        size_t start = i;
        while (i < len && (w = word_char(s, len, i)) > 0) i += w;
        if (i == start) continue;
        if (count == cap) {
            uint64_t *g = realloc(v, 2 * cap * sizeof *v);
            if (g == NULL) {
                free(v);
                return NULL;
            }
            v = g;
            cap *= 2;
        }
        v[count++] = word_hash(s + start, i - start);
    }
    if (v == NULL) return NULL;
    qsort(v, count, sizeof *v, u64_cmp);
    size_t w = 0;
    for (size_t i = 0; i < count; i++)
        if (w == 0 || v[w - 1] != v[i]) v[w++] = v[i];
    *n = w;
    return v;
}

static double set_jaccard(const uint64_t *a, size_t na, const uint64_t *b, size_t nb)
{
    if (na == 0 && nb == 0) return 1.0;
    size_t i = 0, j = 0, both = 0;
    while (i < na && j < nb) {
        if (a[i] == b[j]) {
            both++;
            i++;
            j++;
        } else if (a[i] < b[j]) {
            i++;
        } else {
            j++;
        }
    }
    return (double)both / (double)(na + nb - both);
}

double retrieve_text_similarity(const char *a, const char *b)
{
    size_t na = 0, nb = 0;
    uint64_t *sa = word_set(a, &na), *sb = word_set(b, &nb);
    double s = sa && sb ? set_jaccard(sa, na, sb, nb) : 0.0;
    free(sa);
    free(sb);
    return s;
}

size_t retrieve_mmr(const double *rel, const char *const *texts, size_t n, size_t k,
                    double lambda, size_t *order)
{
    if (k > n) k = n;
    if (k == 0) return 0;
    uint64_t **sets = calloc(n, sizeof *sets);
    size_t *sizes = calloc(n, sizeof *sizes);
    double *maxsim = calloc(n, sizeof *maxsim);
    unsigned char *taken = calloc(n, 1);
    int ok = sets && sizes && maxsim && taken;
    for (size_t i = 0; ok && i < n; i++) ok = (sets[i] = word_set(texts[i], &sizes[i])) != NULL;
    double top = 0.0;
    for (size_t i = 0; i < n; i++) top = fmax(top, rel[i]);
    if (top <= 0.0) top = 1.0;
    size_t picked = 0;
    while (ok && picked < k) {
        size_t best = n;
        double best_v = -INFINITY;
        for (size_t i = 0; i < n; i++) {
            if (taken[i]) continue;
            double v = lambda * rel[i] / top - (1.0 - lambda) * maxsim[i];
            if (v > best_v) { /* strict: ties keep the better-ranked candidate */
                best_v = v;
                best = i;
            }
        }
        taken[best] = 1;
        order[picked++] = best;
        for (size_t i = 0; i < n; i++)
            if (!taken[i])
                maxsim[i] = fmax(maxsim[i], set_jaccard(sets[i], sizes[i], sets[best],
                                                        sizes[best]));
    }
    for (size_t i = 0; sets && i < n; i++) free(sets[i]);
    free(sets);
    free(sizes);
    free(maxsim);
    free(taken);
    return ok ? picked : 0;
}

/* ---- confidence ----------------------------------------------------------------------------- */

double retrieve_coverage(size_t nterms, const int64_t *df, const int *covered, int64_t total)
{
    if (nterms == 0) return -1.0;
    double all = 0.0, found = 0.0;
    double N = total > 0 ? (double)total : 0.0;
    for (size_t i = 0; i < nterms; i++) {
        double d = df[i] < 0 ? 0.0 : (double)df[i];
        if (d > N) d = N;
        double idf = log(1.0 + (N - d + 0.5) / (d + 0.5));
        all += idf;
        if (covered[i]) found += idf;
    }
    return all > 0.0 ? found / all : -1.0;
}

char *retrieve_clarify_build(const retrieve_terms *t, const int *missing,
                             const char *const *headings, size_t nheadings)
{
    util_buf b = {0};
    int bad = 0;
    size_t nmiss = 0;
    for (size_t i = 0; i < t->count; i++) nmiss += missing[i] != 0;
    if (nmiss > 0) {
        bad |= util_buf_puts(&b, "The documents do not seem to cover ");
        size_t shown = 0;
        for (size_t i = 0; i < t->count && shown < 4; i++) {
            if (!missing[i]) continue;
            const char *sep = shown == 0 ? "" : (shown + 1 == nmiss || shown == 3) ? " or " : ", ";
            bad |= util_buf_printf(&b, "%s\"%s\"", sep, t->items[i]);
            shown++;
        }
        bad |= util_buf_puts(&b, ". ");
    } else {
        bad |= util_buf_puts(&b, "I could not find a passage that clearly answers this. ");
    }
    size_t shown = 0;
    for (size_t i = 0; i < nheadings && shown < 3; i++) {
        if (headings[i] == NULL || headings[i][0] == '\0') continue;
        int dup = 0;
        for (size_t j = 0; j < i && !dup; j++)
            dup = headings[j] && strcmp(headings[j], headings[i]) == 0;
        if (dup) continue;
        bad |= util_buf_printf(&b, "%s\"%s\"", shown == 0 ? "Is your question about " : ", or ",
                               headings[i]);
        shown++;
    }
    if (shown > 0)
        bad |= util_buf_puts(&b, "? If not, could you rephrase it or add details?");
    else
        bad |= util_buf_puts(&b, "Could you rephrase the question or add details?");
    if (bad) {
        util_buf_free(&b);
        return NULL;
    }
    return util_buf_steal(&b);
}
