/* SPDX-License-Identifier: MIT */
/*
 * ingest_chunk.c - the token estimate and the chunker. The estimate imitates how OpenAI's BPE
 * tokenizers (cl100k/o200k) pre-split text (letter runs with a leading space, digit groups of 3,
 * punctuation runs, whitespace runs) and charges each piece a measured average cost. The chunker
 * cuts markdown into sections at headings, turns each section into "units" (sentences, lines,
 * and only when needed words or UTF-8 character runs) that remember how strong the boundary
 * before them is (block > sentence > line > word > character), and packs units greedily into
 * chunks near target_tokens, never above max_tokens, preferring strong boundaries, with overlap
 * between consecutive chunks of one section. Everything is byte offsets into the caller's text:
 * no text is copied or rewritten except heading paths. See docs/CHUNKING.md.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ragd/ingest.h"
#include "ragd/util.h"

/* ---- token estimate ------------------------------------------------------------------------- */

/* Costs in hundredths of a token, fitted to cl100k_base counts (docs/CHUNKING.md). */
#define RAGD_TOK_WORD 100         /* a letter run up to RAGD_TOK_WORD_FREE ASCII letters */
#define RAGD_TOK_WORD_FREE 6      /* letters covered by the first token of a run */
#define RAGD_TOK_WORD_EXTRA 12    /* each further ASCII letter */
#define RAGD_TOK_LATIN_EXT 70     /* each accented Latin letter (U+00C0..U+024F) in a run */
#define RAGD_TOK_SCRIPT 35        /* each letter of another alphabet (Greek, Cyrillic, ...) */
#define RAGD_TOK_UPPER_SWITCH 40  /* lower->upper switch inside a run (camelCase, MixedCase) */
#define RAGD_TOK_CONTRACTION 100  /* 's 't 're ... after a word */
#define RAGD_TOK_DIGITS 120       /* each group of up to 3 digits */
#define RAGD_TOK_PUNCT_FIRST 85   /* first char of an ASCII punctuation run */
#define RAGD_TOK_PUNCT_MORE 12    /* each further char of the run (common runs are one token) */
#define RAGD_TOK_NEWLINES 85      /* a run of line breaks */
#define RAGD_TOK_SPACES 110       /* a run of spaces not absorbed by the next word */
#define RAGD_TOK_CJK 100          /* a CJK ideograph, kana or hangul syllable */
#define RAGD_TOK_EMOJI 250        /* an emoji or pictograph */
#define RAGD_TOK_SYMBOL 50        /* other non-ASCII punctuation and symbols */

enum {
    RAGD_CC_SPACE,
    RAGD_CC_LETTER,     /* ASCII letter */
    RAGD_CC_LETTER_EXT, /* non-ASCII letter of an alphabetic script */
    RAGD_CC_DIGIT,
    RAGD_CC_PUNCT,      /* ASCII punctuation */
    RAGD_CC_CJK,
    RAGD_CC_EMOJI,
    RAGD_CC_SYMBOL
};

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int is_alpha(unsigned char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static int is_upper(unsigned char c) { return c >= 'A' && c <= 'Z'; }

/* Decodes the UTF-8 sequence at s[0..n), n >= 1. Returns: its length (1 for a stray byte). */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t need;
    uint32_t v;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        need = 2;
        v = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        need = 3;
        v = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        need = 4;
        v = c & 0x07;
    } else {
        *cp = 0xFFFD;
        return 1;
    }
    if (need > n) {
        *cp = 0xFFFD;
        return 1;
    }
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = 0xFFFD;
            return 1;
        }
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = v;
    return need;
}

/* The class of each ASCII byte (is_space, is_alpha, is_digit, else punctuation: control
 * characters included), looked up rather than tested: the estimate runs over every byte of every
 * document several times while chunking. Same classes as before: the chunk table cases
 * (tests/data/chunk) pin every chunk's token count. */
#define S RAGD_CC_SPACE
#define L RAGD_CC_LETTER
#define D RAGD_CC_DIGIT
#define P RAGD_CC_PUNCT
static const unsigned char ascii_class[128] = {
    P, P, P, P, P, P, P, P, P, S, S, S, S, S, P, P, P, P, P, P, P, P, P, P, P, P, P, P, P, P, P, P,
    S, P, P, P, P, P, P, P, P, P, P, P, P, P, P, P, D, D, D, D, D, D, D, D, D, D, P, P, P, P, P, P,
    P, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L, P, P, P, P, P,
    P, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L, P, P, P, P, P,
};
#undef S
#undef L
#undef D
#undef P

static int class_of(uint32_t cp)
{
    if (cp < 0x80) return ascii_class[cp];
    if (cp < 0xC0 || cp == 0xD7 || cp == 0xF7) return RAGD_CC_SYMBOL; /* Latin-1 signs */
    if (cp < 0x2000) return RAGD_CC_LETTER_EXT;
    if ((cp >= 0x2E80 && cp <= 0x9FFF) || (cp >= 0xAC00 && cp <= 0xD7AF) ||
        (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0xFF00 && cp <= 0xFFEF) ||
        (cp >= 0x20000 && cp <= 0x3FFFF))
        return RAGD_CC_CJK;
    if ((cp >= 0x1F000 && cp <= 0x1FAFF) || (cp >= 0x2600 && cp <= 0x27BF)) return RAGD_CC_EMOJI;
    return RAGD_CC_SYMBOL;
}

/* Returns: the class of the code point at s[i] (i < n) and its byte length in *step. */
static inline int class_at(const unsigned char *s, size_t n, size_t i, size_t *step)
{
    if (s[i] < 0x80) { /* most text: no UTF-8 decoding */
        *step = 1;
        return ascii_class[s[i]];
    }
    uint32_t cp;
    *step = utf8_decode(s + i, n - i, &cp);
    return class_of(cp);
}

/* cl100k keeps English contractions ('s 't 're 've 'm 'll 'd) as one piece after a word. */
static size_t contraction_len(const unsigned char *s, size_t n, size_t i)
{
    static const char *const forms[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++) {
        size_t fl = strlen(forms[f]);
        if (i + fl > n) continue;
        size_t k = 1;
        while (k < fl && (s[i + k] | 0x20) == (unsigned char)forms[f][k]) k++;
        if (k == fl && (i + fl == n || !is_alpha(s[i + fl]))) return fl;
    }
    return 0;
}

/* The estimator's scan: the raw sum (hundredths of a token) over the pieces that start in
 * s[i..stop), reading ahead up to s[len) and back to s[lo] (the start of the text as the
 * estimator sees it). Sets *any when a piece other than white space was seen. The chunker scans
 * the white space between two units with it, so that a chunk's count is the sum of its units'
 * (see link_acc): scanning s[0..len) in one go or as consecutive parts that each start and end
 * at a piece boundary gives the same sum. */
static uint64_t tok_scan(const unsigned char *s, size_t lo, size_t i, size_t stop, size_t len,
                         int *any_out)
{
    uint64_t acc = 0;
    int any = 0;
    while (i < stop) {
        size_t step;
        int cc = class_at(s, len, i, &step);
        if (cc == RAGD_CC_SPACE) {
            size_t j = i, last_nl = SIZE_MAX;
            /* a punctuation run takes the line breaks right after it (".\n" is one piece) */
            if (i > lo && s[i - 1] < 0x80 && class_of(s[i - 1]) == RAGD_CC_PUNCT)
                while (j < len && (s[j] == '\n' || s[j] == '\r')) j++;
            i = j;
            while (j < len && is_space(s[j])) {
                if (s[j] == '\n' || s[j] == '\r') last_nl = j;
                j++;
            }
            if (last_nl != SIZE_MAX) acc += RAGD_TOK_NEWLINES;
            size_t sp_start = last_nl == SIZE_MAX ? i : last_nl + 1;
            size_t spaces = j - sp_start;
            if (spaces > 0 && j < len) {
                size_t nstep;
                int next = class_at(s, len, j, &nstep);
                /* the last space rides on a following word or punctuation run */
                if (next != RAGD_CC_DIGIT && s[j - 1] == ' ') spaces--;
            }
            if (spaces > 0) acc += RAGD_TOK_SPACES;
            i = j;
            continue;
        }
        any = 1;
        if (cc == RAGD_CC_LETTER || cc == RAGD_CC_LETTER_EXT) {
            size_t ascii = 0, latin = 0, script = 0, switches = 0;
            int prev_lower = 0;
            size_t j = i;
            while (j < len) {
                /* ASCII letters, most of any text: no class lookup beyond the table */
                unsigned char b = s[j];
                if (b < 0x80) {
                    if (ascii_class[b] != RAGD_CC_LETTER) break;
                    int upper = is_upper(b);
                    ascii++;
                    switches += (size_t)(upper & prev_lower);
                    prev_lower = !upper;
                    j++;
                    continue;
                }
                size_t st;
                int c2 = class_at(s, len, j, &st);
                if (c2 == RAGD_CC_LETTER_EXT) {
                    /* lead bytes C3..C9 encode U+00C0..U+027F: accented Latin */
                    if ((unsigned char)s[j] <= 0xC9)
                        latin++;
                    else
                        script++;
                    prev_lower = 0;
                } else {
                    break;
                }
                j += st;
            }
            acc += RAGD_TOK_WORD;
            if (ascii > RAGD_TOK_WORD_FREE)
                acc += (ascii - RAGD_TOK_WORD_FREE) * RAGD_TOK_WORD_EXTRA;
            acc += latin * RAGD_TOK_LATIN_EXT + script * RAGD_TOK_SCRIPT;
            acc += switches * RAGD_TOK_UPPER_SWITCH;
            i = j;
            if (i < len && s[i] == '\'') {
                size_t cl = contraction_len(s, len, i);
                if (cl > 0) {
                    acc += RAGD_TOK_CONTRACTION;
                    i += cl;
                }
            }
            continue;
        }
        if (cc == RAGD_CC_DIGIT) {
            size_t j = i;
            while (j < len && is_digit(s[j])) j++;
            acc += (uint64_t)((j - i + 2) / 3) * RAGD_TOK_DIGITS;
            i = j;
            continue;
        }
        if (cc == RAGD_CC_PUNCT) {
            size_t j = i + 1;
            while (j < len && s[j] < 0x80 && class_of(s[j]) == RAGD_CC_PUNCT) j++;
            acc += RAGD_TOK_PUNCT_FIRST + (uint64_t)(j - i - 1) * RAGD_TOK_PUNCT_MORE;
            i = j;
            continue;
        }
        if (cc == RAGD_CC_CJK)
            acc += RAGD_TOK_CJK;
        else if (cc == RAGD_CC_EMOJI)
            acc += RAGD_TOK_EMOJI;
        else
            acc += RAGD_TOK_SYMBOL;
        i += step;
    }
    *any_out = any;
    return acc;
}

/* Rounds a scan's raw sum to whole tokens: at least 1 for any text but white space. */
static size_t tok_round(uint64_t acc, int any)
{
    size_t tokens = (size_t)((acc + 50) / 100);
    if (tokens == 0 && any) tokens = 1;
    return tokens;
}

size_t ingest_tokens_count(const char *text, size_t len)
{
    int any;
    uint64_t acc = tok_scan((const unsigned char *)text, 0, 0, len, len, &any);
    return tok_round(acc, any);
}

/* Raw estimate of doc[a..b) as a text of its own (the unit's own count before rounding). */
static uint64_t tok_acc(const char *doc, size_t a, size_t b)
{
    int any;
    return tok_scan((const unsigned char *)doc, a, a, b, b, &any);
}

/* ---- chunker: units ------------------------------------------------------------------------- */

/* Strength of the boundary before a unit: where a cut is best made. */
enum {
    RAGD_CUT_CHAR = 0,     /* inside a word longer than max_tokens */
    RAGD_CUT_WORD = 1,     /* between words of a sentence longer than max_tokens */
    RAGD_CUT_LINE = 2,     /* a newline inside a paragraph, code block or table */
    RAGD_CUT_SENTENCE = 3, /* a sentence end, or a new list item */
    RAGD_CUT_BLOCK = 4     /* a blank line, a fence, the end of the section */
};

typedef struct unit {
    size_t start, end; /* trimmed byte range */
    size_t self;       /* tokens of doc[start..end) */
    size_t cum;        /* sum over units <= this one of tokens(doc[prev.end..end)) */
    int strength;      /* boundary before this unit */
    uint64_t acc;      /* raw estimate of doc[start..end) (tok_acc), self before rounding */
    uint64_t link_cum; /* sum over units 1..this one of link_acc (raw), for chunk counts */
    size_t dirty_cum;  /* number of units 1..this one whose link is not additive */
} unit;

typedef struct chunker {
    const char *doc;
    size_t len;
    const ingest_chunk_opts *opts;
    unit *units;
    size_t nunits, capunits;
    ingest_chunk_list out;
    size_t capout;
    int oom;
} chunker;

/* Is doc[a..b), the text between two units, white space at both ends? Then the pieces of the
 * estimate end at a and start at b whether the units are counted alone or together. */
static int gap_clean(const char *doc, size_t a, size_t b)
{
    return a < b && is_space((unsigned char)doc[a]) && is_space((unsigned char)doc[b - 1]);
}

/* Adds unit doc[start..end) (non-empty, not starting with white space) whose raw estimate is
 * acc. Its count from the previous unit's end (cum) and its link for chunk counts come from
 * scanning only the text in between when that text is white space at both ends (gap_clean);
 * otherwise they are counted over the whole text as before. Same numbers either way. */
static void unit_push(chunker *c, size_t start, size_t end, uint64_t acc, int strength)
{
    if (c->oom) return;
    if (c->nunits == c->capunits) {
        size_t cap = c->capunits ? c->capunits * 2 : 256;
        unit *p = realloc(c->units, cap * sizeof *p);
        if (p == NULL) {
            c->oom = 1;
            return;
        }
        c->units = p;
        c->capunits = cap;
    }
    const unsigned char *d = (const unsigned char *)c->doc;
    size_t self = tok_round(acc, 1);
    size_t prev_end = c->nunits ? c->units[c->nunits - 1].end : start;
    size_t piece = self;
    uint64_t link = 0;
    int clean = 0, any;
    if (c->nunits && prev_end < start) {
        if (is_space(d[start - 1])) {
            /* doc[prev_end..end) alone: no look-back before prev_end */
            piece = tok_round(tok_scan(d, prev_end, prev_end, start, end, &any) + acc, 1);
        } else {
            piece = ingest_tokens_count(c->doc + prev_end, end - prev_end);
        }
        if (gap_clean(c->doc, prev_end, start)) {
            /* inside a chunk: the gap is read after the previous unit's last byte */
            link = tok_scan(d, 0, prev_end, start, end, &any) + acc;
            clean = 1;
        }
    }
    unit *prev = c->nunits ? &c->units[c->nunits - 1] : NULL;
    unit *u = &c->units[c->nunits++];
    u->start = start;
    u->end = end;
    u->self = self;
    u->cum = (prev ? prev->cum : 0) + piece;
    u->strength = strength;
    u->acc = acc;
    u->link_cum = (prev ? prev->link_cum : 0) + link;
    u->dirty_cum = prev ? prev->dirty_cum + !clean : 0;
}

/* Returns: the estimate of doc[units[i].start..units[k].end), i <= k: the units' raw sums added
 * when every link in (i, k] is additive, else counted over the text. Equals
 * ingest_tokens_count() of that text either way. */
static size_t chunk_tokens(const chunker *c, size_t i, size_t k)
{
    const unit *ui = &c->units[i], *uk = &c->units[k];
    if (uk->dirty_cum == ui->dirty_cum)
        return tok_round(ui->acc + uk->link_cum - ui->link_cum, 1);
    return ingest_tokens_count(c->doc + ui->start, uk->end - ui->start);
}

/* Splits a word longer than max_tokens at UTF-8 character boundaries into pieces <= max. */
static void add_giant_word(chunker *c, size_t a, size_t b, size_t tokens, int strength)
{
    size_t max = (size_t)c->opts->max_tokens;
    double bytes_per_token = (double)(b - a) / (double)(tokens ? tokens : 1);
    while (a < b && !c->oom) {
        size_t guess = (size_t)(bytes_per_token * (double)max * 0.9);
        if (guess < 1) guess = 1;
        size_t piece_tokens;
        uint64_t piece_acc;
        size_t e;
        for (;;) {
            e = guess >= b - a ? b : a + guess;
            while (e > a + 1 && e < b && ((unsigned char)c->doc[e] & 0xC0) == 0x80) e--;
            if (e == a + 1) /* keep the whole first character */
                while (e < b && ((unsigned char)c->doc[e] & 0xC0) == 0x80) e++;
            piece_acc = tok_acc(c->doc, a, e);
            piece_tokens = tok_round(piece_acc, 1);
            if (piece_tokens <= max || guess <= 1) break;
            guess = guess * 85 / 100;
            if (guess < 1) guess = 1;
        }
        unit_push(c, a, e, piece_acc, strength);
        strength = RAGD_CUT_CHAR;
        a = e;
    }
}

/* Adds doc[a..b) (trimmed) as one unit, or as word / character pieces when it is over max. */
static void add_unit(chunker *c, size_t a, size_t b, int strength)
{
    const char *d = c->doc;
    while (a < b && is_space((unsigned char)d[a])) a++;
    while (b > a && is_space((unsigned char)d[b - 1])) b--;
    if (a == b) return;
    uint64_t acc = tok_acc(d, a, b);
    size_t tokens = tok_round(acc, 1);
    if (tokens <= (size_t)c->opts->max_tokens) {
        unit_push(c, a, b, acc, strength);
        return;
    }
    size_t p = a;
    while (p < b && !c->oom) {
        size_t w = p;
        while (w < b && !is_space((unsigned char)d[w])) w++;
        uint64_t wacc = tok_acc(d, p, w);
        size_t wt = tok_round(wacc, 1);
        if (wt <= (size_t)c->opts->max_tokens)
            unit_push(c, p, w, wacc, strength);
        else
            add_giant_word(c, p, w, wt, strength);
        strength = RAGD_CUT_WORD;
        while (w < b && is_space((unsigned char)d[w])) w++;
        p = w;
    }
}

/* Words after which a period does not end a sentence (compared case-insensitively). */
static int is_abbreviation(const char *w, size_t n)
{
    static const char *const abbrev[] = {
        "e.g", "i.e", "etc", "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "cf",
        "fig", "no", "approx", "inc", "ltd", "co", "corp", "dept", "est", "vol", "al", "ca",
        "resp", "p", "pp", "ch", "sec", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep",
        "sept", "oct", "nov", "dec", "u.s", "a.m", "p.m", "ph.d"};
    for (size_t k = 0; k < sizeof abbrev / sizeof abbrev[0]; k++)
        if (strlen(abbrev[k]) == n && strncasecmp(abbrev[k], w, n) == 0) return 1;
    return 0;
}

/* Returns: 1 if the '.', '!' or '?' at p (inside line [ls, le)) ends a sentence, with *next set
 * to the first byte after the sentence's closing quotes/brackets. */
static int sentence_end_at(const char *d, size_t ls, size_t le, size_t p, size_t *next)
{
    size_t q = p + 1;
    while (q < le && strchr("\"')]*_", d[q]) != NULL) q++;
    if (q >= le || (d[q] != ' ' && d[q] != '\t')) return 0;
    size_t r = q;
    while (r < le && (d[r] == ' ' || d[r] == '\t')) r++;
    if (r >= le) return 0;
    unsigned char n = (unsigned char)d[r];
    if (!(is_upper(n) || is_digit(n) || n >= 0xC0 || strchr("\"'([*_`", (char)n) != NULL))
        return 0;
    if (d[p] == '.') {
        size_t w = p;
        while (w > ls && (is_alpha((unsigned char)d[w - 1]) || d[w - 1] == '.')) w--;
        size_t wl = p - w;
        if (wl == 1 && is_upper((unsigned char)d[w])) return 0; /* an initial: "J. Smith" */
        if (wl > 0 && is_abbreviation(d + w, wl)) return 0;
        if (wl == 0) {
            /* "1. Item": a list number at the start of a line is no sentence end */
            size_t k = p;
            while (k > ls && is_digit((unsigned char)d[k - 1])) k--;
            size_t s = ls;
            while (s < k && (d[s] == ' ' || d[s] == '\t')) s++;
            if (k < p && s == k) return 0;
        }
    }
    *next = q;
    return 1;
}

/* CJK full-width sentence ends (U+3002, U+FF01, U+FF1F) need no following space. */
static size_t cjk_sentence_end(const char *d, size_t p, size_t le)
{
    if (p + 3 > le) return 0;
    const unsigned char *s = (const unsigned char *)d + p;
    if (s[0] == 0xE3 && s[1] == 0x80 && s[2] == 0x82) return 3;
    if (s[0] == 0xEF && s[1] == 0xBC && (s[2] == 0x81 || s[2] == 0x9F)) return 3;
    return 0;
}

/* Adds one prose line [ls, le) split at sentence ends. */
static void add_prose_line(chunker *c, size_t ls, size_t le, int strength)
{
    const char *d = c->doc;
    size_t a = ls;
    for (size_t p = ls; p < le; p++) {
        size_t next = 0, cjk;
        if ((d[p] == '.' || d[p] == '!' || d[p] == '?') && sentence_end_at(d, ls, le, p, &next)) {
            add_unit(c, a, next, strength);
            strength = RAGD_CUT_SENTENCE;
            a = next;
            p = next - 1;
        } else if ((cjk = cjk_sentence_end(d, p, le)) > 0) {
            add_unit(c, a, p + cjk, strength);
            strength = RAGD_CUT_SENTENCE;
            a = p + cjk;
            p = a - 1;
        }
    }
    add_unit(c, a, le, strength);
}

/* ---- chunker: lines and markdown structure --------------------------------------------------- */

typedef struct line {
    size_t start, end; /* content without the line break (and without a trailing \r) */
    size_t next;       /* start of the following line */
} line;

static line line_at(const char *d, size_t len, size_t start)
{
    line l;
    l.start = start;
    const char *nl = memchr(d + start, '\n', len - start);
    size_t e = nl ? (size_t)(nl - d) : len;
    l.next = nl ? e + 1 : len;
    if (e > start && d[e - 1] == '\r') e--;
    l.end = e;
    return l;
}

static int line_blank(const char *d, line l)
{
    for (size_t i = l.start; i < l.end; i++)
        if (!is_space((unsigned char)d[i])) return 0;
    return 1;
}

/* Returns: the offset after up to 3 leading spaces, or SIZE_MAX when indented 4+ (code). */
static size_t line_indent(const char *d, line l)
{
    size_t i = l.start;
    while (i < l.end && i - l.start < 4 && d[i] == ' ') i++;
    if (i - l.start >= 4 || (i < l.end && d[i] == '\t')) return SIZE_MAX;
    return i;
}

/* Returns: the ATX level (1-6) of l, or 0. *text_start receives where the heading text starts. */
static int atx_level(const char *d, line l, size_t *text_start)
{
    size_t i = line_indent(d, l);
    if (i == SIZE_MAX) return 0;
    size_t h = i;
    while (h < l.end && d[h] == '#') h++;
    int level = (int)(h - i);
    if (level < 1 || level > 6) return 0;
    if (h < l.end && d[h] != ' ' && d[h] != '\t') return 0;
    *text_start = h;
    return level;
}

/* Returns: 1 if l opens a fence; sets its char and length. */
static int fence_open(const char *d, line l, char *fch, size_t *flen)
{
    size_t i = line_indent(d, l);
    if (i == SIZE_MAX || i >= l.end || (d[i] != '`' && d[i] != '~')) return 0;
    size_t j = i;
    while (j < l.end && d[j] == d[i]) j++;
    if (j - i < 3) return 0;
    if (d[i] == '`' && memchr(d + j, '`', l.end - j) != NULL) return 0; /* inline code */
    *fch = d[i];
    *flen = j - i;
    return 1;
}

static int fence_close(const char *d, line l, char fch, size_t flen)
{
    size_t i = line_indent(d, l);
    if (i == SIZE_MAX) return 0;
    size_t j = i;
    while (j < l.end && d[j] == fch) j++;
    if (j - i < flen) return 0;
    while (j < l.end && is_space((unsigned char)d[j])) j++;
    return j == l.end;
}

/* Returns: '=' or '-' if l is a setext underline, else 0. */
static int setext_underline(const char *d, line l)
{
    size_t i = line_indent(d, l);
    if (i == SIZE_MAX || i >= l.end || (d[i] != '=' && d[i] != '-')) return 0;
    char ch = d[i];
    size_t j = i;
    while (j < l.end && d[j] == ch) j++;
    size_t n = j - i;
    while (j < l.end && is_space((unsigned char)d[j])) j++;
    if (j != l.end) return 0;
    if (ch == '-' && n < 2) return 0;
    return ch;
}

/* Returns: 1 if l starts a list item ("- ", "* ", "+ ", "1. ", "1) "). */
static int list_item(const char *d, line l)
{
    size_t i = l.start;
    while (i < l.end && (d[i] == ' ' || d[i] == '\t')) i++;
    if (i + 1 < l.end && strchr("-*+", d[i]) && (d[i + 1] == ' ' || d[i + 1] == '\t')) return 1;
    size_t j = i;
    while (j < l.end && is_digit((unsigned char)d[j]) && j - i < 9) j++;
    return j > i && j + 1 < l.end && (d[j] == '.' || d[j] == ')') &&
           (d[j + 1] == ' ' || d[j + 1] == '\t');
}

/* A line that can be the text of a setext heading: plain paragraph text. */
static int paragraph_line(const char *d, line l)
{
    if (line_blank(d, l)) return 0;
    size_t i = line_indent(d, l);
    size_t ts;
    char fch;
    size_t flen;
    if (i == SIZE_MAX || atx_level(d, l, &ts) || fence_open(d, l, &fch, &flen)) return 0;
    if (list_item(d, l) || d[i] == '>' || d[i] == '|' || setext_underline(d, l)) return 0;
    return 1;
}

typedef struct heading {
    size_t start;     /* first byte of the heading line(s) */
    size_t body;      /* first byte after the heading line(s) */
    size_t unit_end;  /* end of the heading's last line */
    int level;
    char *text;       /* cleaned heading text (new) */
} heading;

/* Returns: new cleaned copy of heading text d[a..b): closing #'s, backticks, '*' emphasis and
 * link targets removed, whitespace trimmed. NULL on OOM. */
static char *heading_clean(const char *d, size_t a, size_t b, int atx)
{
    while (a < b && is_space((unsigned char)d[a])) a++;
    while (b > a && is_space((unsigned char)d[b - 1])) b--;
    if (atx) {
        size_t h = b;
        while (h > a && d[h - 1] == '#') h--;
        if (h == a || d[h - 1] == ' ' || d[h - 1] == '\t') b = h;
        while (b > a && is_space((unsigned char)d[b - 1])) b--;
    }
    char *out = malloc(b - a + 1);
    if (out == NULL) return NULL;
    size_t o = 0;
    for (size_t i = a; i < b; i++) {
        if (d[i] == '`' || d[i] == '*') continue;
        if (d[i] == '[') {
            /* [text](target) -> text */
            const char *mid = memmem(d + i, b - i, "](", 2);
            const char *close = mid ? memchr(mid, ')', (size_t)(d + b - mid)) : NULL;
            if (close != NULL) {
                for (const char *t = d + i + 1; t < mid; t++)
                    if (*t != '`' && *t != '*') out[o++] = *t;
                i = (size_t)(close - d);
                continue;
            }
        }
        out[o++] = d[i];
    }
    while (o > 0 && is_space((unsigned char)out[o - 1])) o--;
    out[o] = '\0';
    return out;
}

/* ---- chunker: packing ------------------------------------------------------------------------ */

/* Estimated tokens of doc[units[i].start .. units[k].end). */
static size_t span_tokens(const chunker *c, size_t i, size_t k)
{
    return c->units[i].self + c->units[k].cum - c->units[i].cum;
}

static int chunk_push(chunker *c, size_t start, size_t end, size_t tokens, const char *path)
{
    if (c->out.count == c->capout) {
        size_t cap = c->capout ? c->capout * 2 : 16;
        ingest_chunk *p = realloc(c->out.items, cap * sizeof *p);
        if (p == NULL) return -1;
        c->out.items = p;
        c->capout = cap;
    }
    char *h = strdup(path);
    if (h == NULL) return -1;
    ingest_chunk *ch = &c->out.items[c->out.count++];
    ch->start = start;
    ch->end = end;
    ch->heading = h;
    ch->tokens = tokens;
    ch->page = 0;
    return 0;
}

/* Packs c->units (one section) into chunks. Returns: 0, or -1 on OOM. */
static int pack_section(chunker *c, const char *path)
{
    size_t m = c->nunits;
    if (m == 0) return 0;
    const size_t target = (size_t)c->opts->target_tokens;
    const size_t max = (size_t)c->opts->max_tokens;
    const size_t min_fill = target / 2;
    const size_t tiny = target * 15 / 100;
    const size_t ovl_target = (size_t)(c->opts->overlap * (double)target + 0.5);
    const size_t ovl_cap = max / 2;
    const size_t last = m - 1;
    size_t i = 0, min_k = 0;
    for (;;) {
        size_t k_max = i > min_k ? i : min_k;
        while (k_max < last && span_tokens(c, i, k_max + 1) <= max) k_max++;
        size_t k;
        if (k_max == last && span_tokens(c, i, last) <= target) {
            k = last;
        } else {
            /* best cut: strong boundary, near target, at least half full when possible */
            long best_score = 0;
            int have = 0;
            k = k_max;
            for (size_t j = i > min_k ? i : min_k; j <= k_max; j++) {
                size_t t = span_tokens(c, i, j);
                if (t < min_fill && j < k_max) continue;
                int strength = j == last ? RAGD_CUT_BLOCK : c->units[j + 1].strength;
                long dist = t <= target ? (long)(target - t) : 2 * (long)(t - target);
                long score = (long)strength * (long)target / 5 - dist;
                if (!have || score > best_score) {
                    best_score = score;
                    k = j;
                    have = 1;
                }
            }
            /* a tiny tail rides along when the whole rest still fits */
            if (k < last && span_tokens(c, k + 1, last) < tiny && span_tokens(c, i, last) <= max)
                k = last;
        }
        size_t start = c->units[i].start, end = c->units[k].end;
        size_t tokens = chunk_tokens(c, i, k);
        /* the estimate per unit is additive only approximately: enforce max on the slice */
        while (tokens > max && (k > min_k || i < k)) {
            if (k > min_k && k > i)
                k--;
            else
                i++;
            start = c->units[i].start;
            end = c->units[k].end;
            tokens = chunk_tokens(c, i, k);
        }
        if (chunk_push(c, start, end, tokens, path) != 0) return -1;
        if (k == last) break;
        size_t s = k + 1;
        if (ovl_target > 0 || c->opts->overlap > 0) {
            size_t best = k + 1;
            long best_dist = 0;
            int best_strong = 0;
            for (size_t j = k; j > i; j--) {
                size_t t = span_tokens(c, j, k);
                if (t > ovl_cap) break;
                if (span_tokens(c, j, k + 1) > max) continue;
                int strong = c->units[j].strength >= RAGD_CUT_SENTENCE;
                long dist = labs((long)t - (long)ovl_target);
                if (best == k + 1 || (strong && !best_strong) ||
                    (strong == best_strong && dist < best_dist)) {
                    best = j;
                    best_dist = dist;
                    best_strong = strong;
                }
            }
            s = best;
        }
        min_k = k + 1;
        i = s;
    }
    return 0;
}

/* ---- chunker: sections ----------------------------------------------------------------------- */

/* Turns the lines of [a, b) into units; the first unit gets first_strength. */
static void add_body(chunker *c, size_t a, size_t b, int first_strength)
{
    const char *d = c->doc;
    int pending = first_strength;
    int in_fence = 0;
    char fch = 0;
    size_t flen = 0;
    for (size_t p = a; p < b;) {
        line l = line_at(d, b, p);
        p = l.next;
        if (in_fence) {
            if (fence_close(d, l, fch, flen)) {
                add_unit(c, l.start, l.end, RAGD_CUT_LINE);
                in_fence = 0;
                pending = RAGD_CUT_BLOCK;
            } else if (!line_blank(d, l)) {
                add_unit(c, l.start, l.end, pending);
                pending = RAGD_CUT_LINE;
            }
            continue;
        }
        if (line_blank(d, l)) {
            if (pending > RAGD_CUT_WORD) pending = RAGD_CUT_BLOCK;
            continue;
        }
        size_t before = c->nunits;
        if (c->opts->markdown && fence_open(d, l, &fch, &flen)) {
            add_unit(c, l.start, l.end, pending > RAGD_CUT_WORD ? RAGD_CUT_BLOCK : pending);
            in_fence = 1;
            pending = RAGD_CUT_LINE;
            continue;
        }
        size_t ind = line_indent(d, l);
        int strength = pending;
        if (strength == RAGD_CUT_LINE && list_item(d, l)) strength = RAGD_CUT_SENTENCE;
        if (c->opts->markdown && ind != SIZE_MAX && ind < l.end && d[ind] == '|')
            add_unit(c, l.start, l.end, strength); /* table row */
        else
            add_prose_line(c, l.start, l.end, strength);
        if (c->nunits > before) pending = RAGD_CUT_LINE;
    }
}

/* Returns: new "A > B > C" path of the non-empty stack entries 1..level, or NULL on OOM. */
static char *path_join(char *stack[7], int level)
{
    util_buf b = {0};
    int ok = 1;
    for (int l = 1; l <= level; l++) {
        if (stack[l] == NULL || stack[l][0] == '\0') continue;
        if (b.len > 0 && util_buf_puts(&b, " > ") != 0) ok = 0;
        if (util_buf_puts(&b, stack[l]) != 0) ok = 0;
    }
    if (!ok) {
        util_buf_free(&b);
        return NULL;
    }
    return util_buf_steal(&b);
}

/* Finds the markdown headings. Returns: 0 and *out (new array, texts new), or -1 on OOM. */
static int find_headings(const char *d, size_t len, heading **out, size_t *count)
{
    heading *hs = NULL;
    size_t n = 0, cap = 0;
    int in_fence = 0, prev_open = 1; /* prev_open: previous line blank, heading or start */
    char fch = 0;
    size_t flen = 0;
    for (size_t p = 0; p < len;) {
        line l = line_at(d, len, p);
        p = l.next;
        if (in_fence) {
            if (fence_close(d, l, fch, flen)) in_fence = 0;
            prev_open = 0;
            continue;
        }
        if (fence_open(d, l, &fch, &flen)) {
            in_fence = 1;
            prev_open = 0;
            continue;
        }
        size_t ts = 0;
        int level = atx_level(d, l, &ts);
        line under = {0, 0, 0};
        int setext = 0;
        if (!level && prev_open && p < len && paragraph_line(d, l)) {
            under = line_at(d, len, p);
            int u = setext_underline(d, under);
            if (u) {
                setext = 1;
                level = u == '=' ? 1 : 2;
            }
        }
        if (!level) {
            prev_open = line_blank(d, l);
            continue;
        }
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            heading *q = realloc(hs, nc * sizeof *q);
            if (q == NULL) goto oom;
            hs = q;
            cap = nc;
        }
        heading *h = &hs[n];
        h->start = l.start;
        h->level = level;
        if (setext) {
            h->text = heading_clean(d, l.start, l.end, 0);
            h->unit_end = under.end;
            h->body = under.next;
            p = under.next;
        } else {
            h->text = heading_clean(d, ts, l.end, 1);
            h->unit_end = l.end;
            h->body = l.next;
        }
        if (h->text == NULL) goto oom;
        n++;
        prev_open = 1;
    }
    *out = hs;
    *count = n;
    return 0;
oom:
    for (size_t k = 0; k < n; k++) free(hs[k].text);
    free(hs);
    return -1;
}

static int range_blank(const char *d, size_t a, size_t b)
{
    for (size_t i = a; i < b; i++)
        if (!is_space((unsigned char)d[i])) return 0;
    return 1;
}

/* Units + packing of one section. Returns: 0 or -1 on OOM. */
static int do_section(chunker *c, size_t head_start, size_t head_end, size_t body, size_t end,
                      const char *path)
{
    if (range_blank(c->doc, body, end)) return 0;
    c->nunits = 0;
    int first = RAGD_CUT_BLOCK;
    if (head_end > head_start) {
        add_unit(c, head_start, head_end, RAGD_CUT_BLOCK);
        first = RAGD_CUT_WORD; /* do not cut right after the heading */
    }
    add_body(c, body, end, first);
    if (c->oom) return -1;
    return pack_section(c, path);
}

ragd_rc ingest_chunk_split(const char *text, size_t len, const ingest_chunk_opts *opts,
                           ingest_chunk_list *out, ragd_err *err)
{
    if (opts == NULL || out == NULL || (text == NULL && len > 0))
        return ragd_err_set(err, RAGD_ERR_INVALID, "chunker: missing argument");
    if (opts->target_tokens < 16 || opts->max_tokens < opts->target_tokens ||
        !(opts->overlap >= 0.0 && opts->overlap <= 0.5))
        return ragd_err_set(err, RAGD_ERR_INVALID,
                            "chunker: need target_tokens >= 16, max_tokens >= target_tokens, "
                            "0 <= overlap <= 0.5 (got %d, %d, %g)",
                            opts->target_tokens, opts->max_tokens, opts->overlap);
    chunker c = {0};
    c.doc = text;
    c.len = len;
    c.opts = opts;
    heading *hs = NULL;
    size_t nh = 0;
    char *stack[7] = {0};
    int fail = 0;
    if (opts->markdown && len > 0 && find_headings(text, len, &hs, &nh) != 0) fail = 1;
    if (!fail) {
        size_t first_end = nh ? hs[0].start : len;
        if (do_section(&c, 0, 0, 0, first_end, "") != 0) fail = 1;
    }
    for (size_t k = 0; k < nh && !fail; k++) {
        heading *h = &hs[k];
        for (int l = h->level; l <= 6; l++) {
            free(stack[l]);
            stack[l] = NULL;
        }
        stack[h->level] = h->text;
        h->text = NULL;
        char *path = path_join(stack, h->level);
        if (path == NULL) {
            fail = 1;
            break;
        }
        size_t end = k + 1 < nh ? hs[k + 1].start : len;
        if (do_section(&c, h->start, h->unit_end, h->body, end, path) != 0) fail = 1;
        free(path);
    }
    for (size_t k = 0; k < nh; k++) free(hs[k].text);
    free(hs);
    for (int l = 0; l < 7; l++) free(stack[l]);
    free(c.units);
    if (fail) {
        ingest_chunk_list_free(&c.out);
        return ragd_err_set(err, RAGD_ERR_NOMEM, "chunker: out of memory");
    }
    *out = c.out;
    return RAGD_OK;
}

void ingest_chunk_list_free(ingest_chunk_list *list)
{
    if (list == NULL) return;
    for (size_t i = 0; i < list->count; i++) free(list->items[i].heading);
    free(list->items);
    list->items = NULL;
    list->count = 0;
}

/* ---- paged documents ------------------------------------------------------------------------ */

ragd_rc ingest_doc_split(const ingest_doc *doc, const ingest_chunk_opts *opts,
                         ingest_chunk_list *out, ragd_err *err)
{
    if (doc->page_count == 0) return ingest_chunk_split(doc->text, doc->len, opts, out, err);
    /* Each page on its own: a chunk never spans pages, so its page number is exact. */
    ingest_chunk_list all = {0};
    size_t cap = 0;
    for (size_t p = 0; p < doc->page_count; p++) {
        size_t a = doc->page_starts[p];
        size_t b = p + 1 < doc->page_count ? doc->page_starts[p + 1] : doc->len;
        if (a > b || b > doc->len) continue;
        ingest_chunk_list page = {0};
        ragd_rc rc = ingest_chunk_split(doc->text + a, b - a, opts, &page, err);
        if (rc == RAGD_OK && all.count + page.count > cap) {
            size_t ncap = (all.count + page.count) * 2;
            ingest_chunk *grown = realloc(all.items, ncap * sizeof *grown);
            if (grown == NULL)
                rc = ragd_err_set(err, RAGD_ERR_NOMEM, "chunk: out of memory");
            else {
                all.items = grown;
                cap = ncap;
            }
        }
        if (rc != RAGD_OK) {
            ingest_chunk_list_free(&page);
            ingest_chunk_list_free(&all);
            return rc;
        }
        for (size_t i = 0; i < page.count; i++) {
            ingest_chunk c = page.items[i];
            c.start += a;
            c.end += a;
            c.page = (int)p + 1;
            all.items[all.count++] = c;
        }
        free(page.items); /* the headings moved to all */
    }
    *out = all;
    return RAGD_OK;
}
