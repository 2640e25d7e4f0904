/* SPDX-License-Identifier: MIT */
/*
 * retrieve_lexical.c - lexical variants of the query's terms for the keyword side, so the forms
 * people write for one thing meet (docs/RETRIEVAL.md "Lexical variants"):
 *   compounds   "backup" also matches the phrase "back up" (and so "back-up"); "back up" and
 *               "back-up" in a question also match "backup"; "e-mail" meets "email";
 *   numbers     "30days" matches "30 days"; "30 days" also matches "30-day"... (the tokenizer
 *               splits at the hyphen) and "24 hours" meets "24h" / "24 hrs";
 *   spelling    British and American forms where a rule is cheap and safe: -our/-or,
 *               -ise/-ize (-isation), -yse/-yze, -tre/-ter, -ence/-ense, -elled/-eled,
 *               -ogue/-og, plus a short table of pairs (grey/gray, programme/program, ...).
 * Each term becomes an FTS5 group ("term" OR "alt" OR "a b") used both for matching and for the
 * confidence's per-term counts. Variants that are not words cost one index lookup and match
 * nothing; the rules avoid variants that are other real words ("four" is never "for").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ragd/retrieve.h"
#include "ragd/util.h"

#define LEX_ALTS_MAX 16
#define LEX_WORD_MAX 64
#define LEX_TOKENS_MAX 128

typedef struct alt_set {
    char items[LEX_ALTS_MAX][2 * LEX_WORD_MAX + 2];
    size_t count;
} alt_set;

static void alt_add(alt_set *s, const char *v)
{
    if (v[0] == '\0' || strlen(v) > 2 * LEX_WORD_MAX || s->count >= LEX_ALTS_MAX) return;
    for (size_t i = 0; i < s->count; i++)
        if (strcmp(s->items[i], v) == 0) return;
    snprintf(s->items[s->count++], sizeof s->items[0], "%s", v);
}

static void alt_add2(alt_set *s, const char *a, const char *sep, const char *b)
{
    char buf[2 * LEX_WORD_MAX + 2];
    if (strlen(a) + strlen(sep) + strlen(b) >= sizeof buf) return;
    snprintf(buf, sizeof buf, "%s%s%s", a, sep, b);
    alt_add(s, buf);
}

static int is_alpha(const char *w)
{
    if (*w == '\0') return 0;
    for (; *w; w++)
        if (*w < 'a' || *w > 'z') return 0;
    return 1;
}

static int is_number(const char *w)
{
    if (*w == '\0') return 0;
    for (; *w; w++)
        if (*w < '0' || *w > '9') return 0;
    return 1;
}

static int ends_with(const char *w, const char *suffix)
{
    size_t n = strlen(w), m = strlen(suffix);
    return n >= m && strcmp(w + n - m, suffix) == 0;
}

/* ---- compounds -------------------------------------------------------------------------------- */

/* Second parts of phrasal compounds ("backup", "shutdown", "checkout", "takeoff"). Not "in"
 * and "on": "log in" and "sign on" are as often a noun and a preposition ("the log in CSV
 * format"), so "login" is not split (measured on the PostgreSQL set, docs/RETRIEVAL.md). */
static const char *const particles[] = {"up", "down", "out", "off", "over", NULL};
/* Short first parts written with a hyphen ("e-mail", "re-use", "co-worker"). */
static const char *const prefixes[] = {"e", "re", "co", NULL};

/* Words a query may write apart from the word before them: "log in", "sign on", "back up". */
static const char *const join_particles[] = {"up", "down", "out", "off", "over", "in", "on",
                                             NULL};

static int in_list(const char *const *list, const char *w, size_t n)
{
    for (size_t i = 0; list[i]; i++)
        if (strlen(list[i]) == n && strncmp(list[i], w, n) == 0) return 1;
    return 0;
}

/* "backup" -> "back up": every split into two parts of four letters or more ("timezone",
 * "username"), or before a particle, or after a short prefix. Shorter parts meet the stemmer's
 * edge cases ("log ins" is stemmed to "log in"). */
static void splits_add(alt_set *s, const char *w)
{
    size_t n = strlen(w);
    if (!is_alpha(w) || n < 5 || n > 24) return;
    for (size_t p = 1; p + 2 <= n; p++) {
        size_t right = n - p;
        int ok = (p >= 4 && right >= 4) || (p >= 3 && in_list(particles, w + p, right)) ||
                 (right >= 3 && in_list(prefixes, w, p));
        if (!ok) continue;
        char a[LEX_WORD_MAX + 1];
        snprintf(a, sizeof a, "%.*s", (int)p, w);
        alt_add2(s, a, " ", w + p);
    }
}

/* ---- numbers and units ------------------------------------------------------------------------ */

/* Abbreviations written after a number. "s" and "d" are left out: "30s" is as often a decade
 * or a configuration value's own syntax as thirty seconds. */
static const struct unit {
    const char *full; /* plural; the porter stemmer makes the singular meet it */
    const char *abbr[4];
} units[] = {
    {"milliseconds", {"ms", NULL}},        {"seconds", {"sec", "secs", NULL}},
    {"minutes", {"min", "mins", NULL}},    {"hours", {"h", "hr", "hrs", NULL}},
    {"days", {NULL}},                      {"weeks", {"wk", "wks", NULL}},
    {"months", {"mo", NULL}},              {"years", {"yr", "yrs", NULL}},
    {"kilobytes", {"kb", NULL}},           {"megabytes", {"mb", NULL}},
    {"gigabytes", {"gb", NULL}},           {"terabytes", {"tb", NULL}},
};

/* Returns: the unit w names (full, singular or abbreviation), or NULL. */
static const struct unit *unit_find(const char *w)
{
    size_t n = strlen(w);
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        const char *f = units[i].full;
        if (strcmp(w, f) == 0 || (n + 1 == strlen(f) && strncmp(w, f, n) == 0)) return &units[i];
        for (size_t k = 0; units[i].abbr[k]; k++)
            if (strcmp(w, units[i].abbr[k]) == 0) return &units[i];
    }
    return NULL;
}

/* "30days" / "24h" -> "30 days", "24 h", "24 hours". */
static void number_unit_split(alt_set *s, const char *w)
{
    size_t d = 0;
    while (w[d] >= '0' && w[d] <= '9') d++;
    if (d == 0 || w[d] == '\0' || !is_alpha(w + d)) return;
    char num[LEX_WORD_MAX + 1];
    snprintf(num, sizeof num, "%.*s", (int)d, w);
    alt_add2(s, num, " ", w + d);
    const struct unit *u = unit_find(w + d);
    if (u) alt_add2(s, num, " ", u->full);
}

/* A unit word after a number ("30 days", "24 hours"): the phrase, the joined form and the
 * abbreviations ("24h", "24 hrs"). */
static void number_unit_join(alt_set *s, const char *num, const char *w)
{
    const struct unit *u = unit_find(w);
    if (u == NULL) return;
    alt_add2(s, num, " ", w);
    alt_add2(s, num, "", w);
    alt_add2(s, num, " ", u->full);
    for (size_t k = 0; u->abbr[k]; k++) {
        alt_add2(s, num, "", u->abbr[k]);
        alt_add2(s, num, " ", u->abbr[k]);
    }
}

/* ---- British / American spelling -------------------------------------------------------------- */

static const char *const spelling_pairs[][2] = {
    {"grey", "gray"},           {"programme", "program"},     {"programmes", "programs"},
    {"tyre", "tire"},           {"tyres", "tires"},           {"aluminium", "aluminum"},
    {"mould", "mold"},          {"plough", "plow"},           {"sceptical", "skeptical"},
    {"ageing", "aging"},        {"enrol", "enroll"},          {"enrolment", "enrollment"},
    {"fulfil", "fulfill"},      {"fulfilment", "fulfillment"}, {"instalment", "installment"},
    {"judgement", "judgment"},  {"acknowledgement", "acknowledgment"},
    {"practise", "practice"},   {"jewellery", "jewelry"},     {"draught", "draft"},
    {"manoeuvre", "maneuver"},  {"pyjamas", "pajamas"},       {"cosy", "cozy"},
    {"disc", "disk"},           {"discs", "disks"},           {"learnt", "learned"},
};

/* Words that end like a British form but are not one. */
static const char *const our_exceptions[] = {"four", "hour", "tour", "pour", "your", "sour",
                                             "flour", "detour", "contour", "devour", "scour",
                                             NULL};

/* Replaces suffix from (at the end of w, with at least min_stem letters before it) by to.
 * Returns: 1 when a variant was added. */
static int suffix_swap(alt_set *s, const char *w, const char *from, const char *to,
                       size_t min_stem)
{
    size_t n = strlen(w), m = strlen(from);
    if (n < m + min_stem || strcmp(w + n - m, from) != 0) return 0;
    char buf[LEX_WORD_MAX + 16];
    if (n - m + strlen(to) >= sizeof buf) return 0;
    snprintf(buf, sizeof buf, "%.*s%s", (int)(n - m), w, to);
    alt_add(s, buf);
    return 1;
}

static void spelling_add(alt_set *s, const char *w)
{
    if (!is_alpha(w)) return;
    for (size_t i = 0; i < sizeof spelling_pairs / sizeof spelling_pairs[0]; i++) {
        if (strcmp(w, spelling_pairs[i][0]) == 0) alt_add(s, spelling_pairs[i][1]);
        if (strcmp(w, spelling_pairs[i][1]) == 0) alt_add(s, spelling_pairs[i][0]);
    }
    /* Each family lists its endings longest first; the first that fits is used. */
    static const char *const fam[][2] = {
        /* -our / -or: colour, behaviour, favourite */
        {"ourable", "orable"}, {"ouring", "oring"}, {"ourite", "orite"}, {"oured", "ored"},
        {"ourful", "orful"},   {"ours", "ors"},     {"our", "or"},
        /* -ise / -ize */
        {"isations", "izations"}, {"isation", "ization"}, {"ising", "izing"},
        {"isers", "izers"},       {"iser", "izer"},       {"ised", "ized"},
        {"ises", "izes"},         {"ise", "ize"},
        /* -yse / -yze */
        {"ysing", "yzing"}, {"ysed", "yzed"}, {"yses", "yzes"}, {"yse", "yze"},
        /* -tre / -ter, -bre / -ber: centre, metre, fibre */
        {"tres", "ters"}, {"tre", "ter"}, {"bres", "bers"}, {"bre", "ber"},
        /* -ence / -ense: licence, defence, offence */
        {"ences", "enses"}, {"ence", "ense"},
        /* -elled / -eled: cancelled, travelled, modelling */
        {"ellers", "elers"}, {"elling", "eling"}, {"elled", "eled"}, {"eller", "eler"},
        {"alling", "aling"}, {"alled", "aled"},
        /* -ogue / -og: catalogue, dialogue */
        {"ogues", "ogs"}, {"ogue", "og"},
    };
    int is_exception = 0;
    for (size_t i = 0; our_exceptions[i]; i++)
        if (ends_with(w, our_exceptions[i]) && strlen(w) <= strlen(our_exceptions[i]) + 1)
            is_exception = 1;
    /* British -> American */
    for (size_t i = 0; i < sizeof fam / sizeof fam[0]; i++) {
        if (i <= 6 && is_exception) continue;
        if (suffix_swap(s, w, fam[i][0], fam[i][1], 3)) break;
    }
    /* American -> British ("-og" only after four letters: "blog" is not "blogue") */
    for (size_t i = 0; i < sizeof fam / sizeof fam[0]; i++) {
        size_t stem = strcmp(fam[i][1], "og") == 0 || strcmp(fam[i][1], "ogs") == 0 ? 4 : 3;
        if (suffix_swap(s, w, fam[i][1], fam[i][0], stem)) break;
    }
}

/* ---- the query's raw tokens ------------------------------------------------------------------- */

typedef struct token {
    char text[LEX_WORD_MAX + 1]; /* lower-case */
    char gap_after;              /* ' ' or '-' when the next token follows after exactly that
                                  * one character, else 0 */
} token;

/* Splits the query into ASCII-lowercased runs of letters and digits (other bytes >= 0x80 count
 * as letters, as in the term splitter). Returns: the number of tokens. */
static size_t tokens_scan(const char *text, size_t len, token *out, size_t max)
{
    size_t n = 0, i = 0;
    while (i < len && n < max) {
        while (i < len && !((unsigned char)text[i] >= 0x80 || (text[i] >= 'a' && text[i] <= 'z') ||
                            (text[i] >= 'A' && text[i] <= 'Z') || (text[i] >= '0' && text[i] <= '9')))
            i++;
        size_t a = i;
        while (i < len && ((unsigned char)text[i] >= 0x80 || (text[i] >= 'a' && text[i] <= 'z') ||
                           (text[i] >= 'A' && text[i] <= 'Z') || (text[i] >= '0' && text[i] <= '9')))
            i++;
        if (i == a) break;
        size_t m = i - a < LEX_WORD_MAX ? i - a : LEX_WORD_MAX;
        for (size_t k = 0; k < m; k++) {
            char c = text[a + k];
            out[n].text[k] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
        }
        out[n].text[m] = '\0';
        out[n].gap_after = 0;
        if (i + 1 < len && (text[i] == ' ' || text[i] == '-')) {
            char c = text[i + 1];
            if ((unsigned char)c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                (c >= '0' && c <= '9'))
                out[n].gap_after = text[i];
        }
        n++;
    }
    return n;
}

/* ---- the groups ------------------------------------------------------------------------------- */

/* Returns: 1 when w is one of t's terms. */
static int term_of(const retrieve_terms *t, const char *w)
{
    for (size_t i = 0; i < t->count; i++)
        if (strcmp(t->items[i], w) == 0) return 1;
    return 0;
}

/* Returns: new FTS5 group "(\"t\" OR ...)" (free()), NULL on OOM. */
static char *group_build(const char *term, const alt_set *s)
{
    util_buf b = {0};
    char *p = retrieve_fts_phrase(term);
    int bad = p == NULL || util_buf_printf(&b, "(%s", p) != 0;
    free(p);
    for (size_t i = 0; i < s->count && !bad; i++) {
        if (strcmp(s->items[i], term) == 0) continue;
        char *q = retrieve_fts_phrase(s->items[i]);
        bad = q == NULL || util_buf_printf(&b, " OR %s", q) != 0;
        free(q);
    }
    if (bad || util_buf_puts(&b, ")") != 0) {
        util_buf_free(&b);
        return NULL;
    }
    return util_buf_steal(&b);
}

ragd_rc retrieve_terms_expand(const char *text, size_t len, retrieve_terms *t, ragd_err *err)
{
    token *tok = calloc(LEX_TOKENS_MAX, sizeof *tok);
    alt_set *s = calloc(1, sizeof *s);
    if (tok == NULL || s == NULL) {
        free(tok);
        free(s);
        return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    }
    size_t nt = tokens_scan(text, len, tok, LEX_TOKENS_MAX);
    /* A neighbour is joined when it is a search term itself ("time zone"), a particle after
     * ("back up", "log in") or a short prefix before ("e-mail"); never a plain function word
     * ("a", "my"), whose joins are noise. */
    ragd_rc rc = RAGD_OK;
    for (size_t i = 0; i < t->count && rc == RAGD_OK; i++) {
        const char *w = t->items[i];
        s->count = 0;
        splits_add(s, w);
        number_unit_split(s, w);
        spelling_add(s, w);
        for (size_t j = 0; j < nt; j++) {
            if (strcmp(tok[j].text, w) != 0) continue;
            if (j + 1 < nt && tok[j].gap_after) {
                const char *next = tok[j + 1].text;
                int joinable = term_of(t, next) ||
                               in_list(join_particles, next, strlen(next));
                if (joinable && is_alpha(w) && is_alpha(next)) {
                    alt_add2(s, w, "", next);                      /* "back up" -> backup */
                    if (tok[j].gap_after == '-') alt_add2(s, w, " ", next); /* back-up */
                }
            }
            if (j > 0 && tok[j - 1].gap_after) {
                const char *prev = tok[j - 1].text;
                int joinable = term_of(t, prev) || in_list(prefixes, prev, strlen(prev));
                if (joinable && is_alpha(w) && is_alpha(prev)) {
                    alt_add2(s, prev, "", w);                      /* "e-mail" -> email */
                    if (tok[j - 1].gap_after == '-') alt_add2(s, prev, " ", w);
                } else if (is_number(prev)) {
                    number_unit_join(s, prev, w);                  /* "30 days" -> 30-day */
                }
            }
            break;
        }
        if (s->count == 0) continue;
        char *g = group_build(w, s);
        if (g == NULL) {
            rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
            break;
        }
        free(t->exprs[i]);
        t->exprs[i] = g;
    }
    free(tok);
    free(s);
    return rc;
}

char *retrieve_fts_term(const retrieve_terms *t, size_t i)
{
    if (t->exprs[i] != NULL) return util_strndup(t->exprs[i], strlen(t->exprs[i]));
    return retrieve_fts_phrase(t->items[i]);
}
