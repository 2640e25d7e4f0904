/* SPDX-License-Identifier: MIT */
/*
 * embed_local.c - the built-in offline embedder "ragd-local-v1": deterministic signed feature
 * hashing of word stems, stem bigrams and character n-grams into a fixed number of dimensions,
 * with sublinear term weighting and L2 normalisation. No model files, no network; the same text
 * always gives the same vector, on any machine. docs/EMBEDDER.md describes the algorithm and the
 * measurements behind the default weights.
 *
 * Pipeline for one text (the defaults are in embed_local_params_default):
 *   1. Words: runs of ASCII alphanumerics and non-ASCII UTF-8 bytes, ASCII lower-cased. An
 *      apostrophe (' or U+2019) between word characters joins ("don't"); a trailing "'s" is cut.
 *      U+2000..U+207F (general punctuation: dashes, curly quotes, ...) and U+00A0 separate words.
 *      A camelCase word also yields its parts ("readFile": readfile, read, file).
 *   2. Stopwords (built-in English list) are dropped; the rest are lightly stemmed (stem_apply).
 *   3. Features: each stem (unigram), each pair of consecutive kept stems (bigram; weight 0 by
 *      default), and the character n-grams (3..5 bytes) of each distinct kept word with '<' '>'
 *      boundary markers.
 *   4. Unigrams and bigrams weigh 1 + ln(tf); each block is scaled to its configured L2 mass
 *      (unigram_weight, bigram_weight, char_weight), the n-gram block by its exact norm, the
 *      others by their expected norm sqrt(sum of squared weights), which signed hashing preserves
 *      in expectation. The sum is L2-normalised. (An optional length prior, off by default, is
 *      described in embed_int.h.)
 *   5. Hashing: a 64-bit hash per feature with a per-kind seed; bits 32..63 pick the dimension
 *      (multiply-shift range reduction), bit 0 the sign.
 *
 * Memory: a per-call open-addressing table of distinct features (on the stack for short texts,
 * one heap block otherwise); no allocation per feature. A bounded per-thread word cache (see
 * "the word cache") keeps what each recent word hashes and stems to.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "embed_int.h"
#include "ragd/embed.h"

#define RAGD_EMBED_LOCAL_MAX_BATCH 256

/* Per-kind hash seeds. Changing any of them changes every vector: bump the model name. */
#define RAGD_SEED_SURFACE 0x5f3759df9e3779b9ULL
#define RAGD_SEED_UNIGRAM 0x243f6a8885a308d3ULL
#define RAGD_SEED_BIGRAM 0x13198a2e03707344ULL
#define RAGD_SEED_CHAR 0xa4093822299f31d0ULL

/* Feature table bounds (slots). Texts with more distinct features than half the largest table
 * keep the first ones (chunks are far below this: about 3 features per word). */
#define RAGD_TABLE_STACK_SLOTS 256
#define RAGD_TABLE_MAX_SLOTS (1u << 20)

enum { RAGD_FEAT_NONE = 0, RAGD_FEAT_UNIGRAM, RAGD_FEAT_BIGRAM, RAGD_FEAT_SURFACE, RAGD_FEAT_CHAR };

/* ---- hashing --------------------------------------------------------------------------------- */

/* MurmurHash3's 64-bit finaliser: a bijective mixer with full avalanche. */
static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

/* Little-endian load of 8 bytes, so vectors are the same on every architecture. */
static inline uint64_t load8_le(const unsigned char *s)
{
    uint64_t w;
    memcpy(&w, s, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    return w;
}

/* Little-endian load of n (0..7) bytes. */
static inline uint64_t load_tail_le(const unsigned char *s, size_t n)
{
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++) w |= (uint64_t)s[i] << (8 * i);
    return w;
}

static uint64_t bytes_hash(const char *text, size_t n, uint64_t seed)
{
    const unsigned char *s = (const unsigned char *)text;
    uint64_t h = seed ^ ((uint64_t)n * 0x9e3779b97f4a7c15ULL);
    while (n >= 8) {
        h = (h ^ load8_le(s)) * 0xff51afd7ed558ccdULL;
        h ^= h >> 29;
        s += 8;
        n -= 8;
    }
    if (n > 0) {
        h = (h ^ load_tail_le(s, n)) * 0xff51afd7ed558ccdULL;
        h ^= h >> 29;
    }
    return mix64(h);
}

/* Returns: the slot of feature hash h among dims dimensions: the dimension (bits 32..63 of the
 * salted hash, multiply-shift) times 2, plus 1 when the sign is negative (bit 0). */
static inline uint32_t feature_slot(int dims, uint64_t h, uint64_t salt)
{
    if (salt != 0) h = mix64(h ^ salt);
    uint32_t idx = (uint32_t)(((h >> 32) * (uint64_t)(uint32_t)dims) >> 32);
    return idx << 1 | (uint32_t)(h & 1);
}

/* Adds sign * w to the dimension a feature_slot value names. */
static inline void slot_add(float *out, uint32_t slot, float w)
{
    out[slot >> 1] += (slot & 1) ? -w : w;
}

/* Adds sign(h) * w to the dimension h selects among out[0..dims); callers pass out + 1 and
 * dims - 1 to keep dimension 0 for the length prior. */
static inline void feature_add(float *out, int dims, uint64_t h, float w, uint64_t salt)
{
    slot_add(out, feature_slot(dims, h, salt), w);
}

/* ---- stopwords and the tf weight table (built once) ------------------------------------------ */

static const char *const stopword_list[] = {
    "a", "about", "above", "after", "again", "against", "all", "also", "am", "an", "and", "any",
    "are", "aren't", "as", "at", "be", "because", "been", "before", "being", "below", "between",
    "both", "but", "by", "can", "can't", "cannot", "could", "couldn't", "did", "didn't", "do",
    "does", "doesn't", "doing", "don't", "down", "during", "each", "either", "etc", "few", "for",
    "from", "further", "had", "hadn't", "has", "hasn't", "have", "haven't", "having", "he", "her",
    "here", "hers", "herself", "him", "himself", "his", "how", "however", "i", "i'd", "i'll",
    "i'm", "i've", "if", "in", "into", "is", "isn't", "it", "its", "itself", "just", "let", "may",
    "me", "might", "more", "most", "must", "my", "myself", "no", "nor", "not", "now", "of", "off",
    "on", "once", "only", "or", "other", "our", "ours", "ourselves", "out", "over", "own", "per",
    "same", "shall", "she", "should", "shouldn't", "so", "some", "such", "than", "that", "the",
    "their", "theirs", "them", "themselves", "then", "there", "these", "they", "they're", "this",
    "those", "through", "thus", "to", "too", "under", "until", "up", "upon", "us", "very", "via",
    "was", "wasn't", "we", "we're", "were", "weren't", "what", "when", "where", "whether",
    "which", "while", "who", "whom", "whose", "why", "will", "with", "within", "without",
    "won't", "would", "wouldn't", "yet", "you", "you'd", "you'll", "you're", "you've", "your",
    "yours", "yourself", "yourselves",
};

#define RAGD_STOP_SLOTS 512 /* power of two, > 2x the list */
#define RAGD_TF_TABLE 64

static uint64_t stop_table[RAGD_STOP_SLOTS];
static float tf_table[RAGD_TF_TABLE + 1];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void tables_build(void)
{
    for (size_t i = 0; i < sizeof stopword_list / sizeof stopword_list[0]; i++) {
        const char *w = stopword_list[i];
        uint64_t h = bytes_hash(w, strlen(w), RAGD_SEED_SURFACE);
        size_t slot = (size_t)h & (RAGD_STOP_SLOTS - 1);
        while (stop_table[slot] != 0 && stop_table[slot] != h)
            slot = (slot + 1) & (RAGD_STOP_SLOTS - 1);
        stop_table[slot] = h;
    }
    tf_table[0] = 0.0f;
    for (int tf = 1; tf <= RAGD_TF_TABLE; tf++) tf_table[tf] = 1.0f + logf((float)tf);
}

/* Membership by 64-bit surface hash: a false positive needs a 64-bit collision. */
static int stopword_has(uint64_t surface_hash)
{
    size_t slot = (size_t)surface_hash & (RAGD_STOP_SLOTS - 1);
    while (stop_table[slot] != 0) {
        if (stop_table[slot] == surface_hash) return 1;
        slot = (slot + 1) & (RAGD_STOP_SLOTS - 1);
    }
    return 0;
}

static float tf_weight(uint32_t tf)
{
    return tf <= RAGD_TF_TABLE ? tf_table[tf] : 1.0f + logf((float)tf);
}

/* ---- words ----------------------------------------------------------------------------------- */

typedef struct word {
    char text[RAGD_EMBED_WORD_MAX]; /* lower-cased, cut at RAGD_EMBED_WORD_MAX */
    size_t n;                       /* bytes in text */
    size_t full;                    /* whole length; > n when cut */
    int ascii;                      /* 1: no byte >= 0x80 */
    unsigned char cuts[RAGD_EMBED_CAMEL_MAX]; /* camelCase part starts within text, ascending */
    int cut_count;
} word;

/* Returns: the byte length of a separator at s[i] that the word rules treat as punctuation
 * although its bytes are >= 0x80 (U+00A0, U+2000..U+207F), or 0. */
static size_t unicode_separator_len(const unsigned char *s, size_t len, size_t i)
{
    if (s[i] == 0xc2 && i + 1 < len && s[i + 1] == 0xa0) return 2;
    if (s[i] == 0xe2 && i + 2 < len && (s[i + 1] == 0x80 || s[i + 1] == 0x81)) return 3;
    return 0;
}

static int ascii_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Returns: 1 if s[i] starts a word character. */
static int word_char_at(const unsigned char *s, size_t len, size_t i)
{
    if (i >= len) return 0;
    if (ascii_alnum(s[i])) return 1;
    return s[i] >= 0x80 && unicode_separator_len(s, len, i) == 0;
}

/* Notes a camelCase boundary before the byte about to be pushed: "readFile" -> read|File,
 * "HTTPServer" -> HTTP|Server. prev and next are the original bytes around c (0: none). */
static void word_camel_note(word *w, unsigned char prev, unsigned char c, unsigned char next)
{
    int upper = c >= 'A' && c <= 'Z';
    int lower_before = (prev >= 'a' && prev <= 'z') || (prev >= '0' && prev <= '9');
    int acronym_end = prev >= 'A' && prev <= 'Z' && next >= 'a' && next <= 'z';
    if (!upper || !(lower_before || acronym_end) || w->n == 0 || w->n >= RAGD_EMBED_WORD_MAX)
        return;
    if (w->cut_count < RAGD_EMBED_CAMEL_MAX) w->cuts[w->cut_count++] = (unsigned char)w->n;
}

static void word_push(word *w, unsigned char c)
{
    if (w->n < RAGD_EMBED_WORD_MAX) w->text[w->n++] = (char)c;
    w->full++;
}

/* Scans the next word at or after *pos. Returns: 1 with *w filled and *pos past the word, or 0
 * at the end of the text. */
static int word_next(const unsigned char *s, size_t len, size_t *pos, word *w)
{
    size_t i = *pos;
    while (i < len && !word_char_at(s, len, i)) {
        size_t sep = s[i] >= 0x80 ? unicode_separator_len(s, len, i) : 0;
        i += sep > 0 ? sep : 1;
    }
    if (i >= len) {
        *pos = len;
        return 0;
    }
    w->n = 0;
    w->full = 0;
    w->ascii = 1;
    w->cut_count = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (ascii_alnum(c)) {
            if (c >= 'A' && c <= 'Z' && w->n > 0)
                word_camel_note(w, s[i - 1], c, i + 1 < len ? s[i + 1] : 0);
            word_push(w, (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c);
            i++;
        } else if (c == '\'') {
            if (!word_char_at(s, len, i + 1)) break;
            word_push(w, '\'');
            i++;
        } else if (c >= 0x80) {
            size_t sep = unicode_separator_len(s, len, i);
            if (sep == 3 && s[i + 1] == 0x80 && s[i + 2] == 0x99) { /* U+2019 as apostrophe */
                if (!word_char_at(s, len, i + 3)) break;
                word_push(w, '\'');
                i += 3;
            } else if (sep > 0) {
                break;
            } else {
                word_push(w, c);
                w->ascii = 0;
                i++;
            }
        } else {
            break;
        }
    }
    *pos = i;
    /* Possessive: "ragd's" -> "ragd". */
    if (w->full == w->n && w->n >= 3 && w->text[w->n - 2] == '\'' && w->text[w->n - 1] == 's') {
        w->n -= 2;
        w->full -= 2;
    }
    return 1;
}

/* ---- stemming -------------------------------------------------------------------------------- */

static int is_vowel(char c)
{
    return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u' || c == 'y';
}

static int has_vowel(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (is_vowel(s[i])) return 1;
    return 0;
}

static int ends_with(const char *s, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* "stopp" -> "stop", "embedd" -> "embed"; keeps ll, ss, zz ("install", "pass") and short stems
 * ("add"). */
static size_t undouble(const char *s, size_t n)
{
    if (n >= 4 && s[n - 1] == s[n - 2] && !is_vowel(s[n - 1]) && s[n - 1] != 'l' &&
        s[n - 1] != 's' && s[n - 1] != 'z')
        return n - 1;
    return n;
}

/*
 * Light, conservative suffix stemming of an ASCII lower-case word s[0..n) in place (only the
 * last byte may be rewritten). Returns: the stem's length. Rules, in order:
 *   1. plural: -ies -> -y (n >= 5); -s -> "" unless after s, u, i (class, status, analysis).
 *   2. one of: -ing (stem keeps a vowel, >= 2 bytes), -ied -> -y, -ed (not -eed; stem keeps a
 *      vowel, >= 2 bytes), each followed by undoubling; -ly after l e t s d n r h k (stem >= 4);
 *      -ment (stem >= 5).
 *   3. a final -e is dropped (not -ee), so use/uses/used/using all give "us", and
 *      configure/configured/configuring give "configur".
 * So refund/refunds/refunded/refunding -> "refund", policy/policies -> "policy".
 */
static size_t stem_apply(char *s, size_t n)
{
    if (n >= 5 && ends_with(s, n, "ies")) {
        n -= 2;
        s[n - 1] = 'y';
    } else if (n >= 4 && s[n - 1] == 's' && s[n - 2] != 's' && s[n - 2] != 'u' &&
               s[n - 2] != 'i') {
        n -= 1;
    }

    if (n >= 5 && ends_with(s, n, "ing") && has_vowel(s, n - 3)) {
        n = undouble(s, n - 3);
    } else if (n >= 5 && ends_with(s, n, "ied")) {
        n -= 2;
        s[n - 1] = 'y';
    } else if (n >= 4 && ends_with(s, n, "ed") && !ends_with(s, n, "eed") &&
               has_vowel(s, n - 2)) {
        n = undouble(s, n - 2);
    } else if (n >= 6 && ends_with(s, n, "ly") && strchr("letsdnrhk", s[n - 3]) != NULL) {
        n -= 2;
    } else if (n >= 9 && ends_with(s, n, "ment")) {
        n -= 4;
    }

    if (n >= 3 && s[n - 1] == 'e' && s[n - 2] != 'e') n -= 1;
    return n;
}

/* ---- the tokenizer shared by the embedder and the tuner's BM25 ------------------------------- */

typedef struct term {
    const word *surface;   /* the word as written (lower-cased, possessive cut) */
    uint64_t surface_hash; /* RAGD_SEED_SURFACE hash of the surface */
    const char *stem;      /* stem bytes (borrowed for the callback) */
    size_t stem_len;
    uint64_t unigram_hash; /* RAGD_SEED_UNIGRAM hash of the stem */
} term;

typedef void (*term_fn)(void *ctx, const term *t);

static uint64_t word_hash(const char *s, size_t n, size_t full, uint64_t seed)
{
    uint64_t h = bytes_hash(s, n, seed);
    return full > n ? mix64(h ^ (uint64_t)full) : h;
}

/* Filters, stems and hashes one word whose surface hash is surface_hash into *t (t->stem points
 * into stem). Returns: 1, or 0 for a dropped stopword (*t then holds only the surface). */
static int term_make(const word *w, uint64_t surface_hash, const embed_local_params *p, term *t,
                     char stem[RAGD_EMBED_WORD_MAX])
{
    t->surface = w;
    t->surface_hash = surface_hash;
    if (p->stopwords && w->full == w->n && stopword_has(surface_hash)) return 0;
    memcpy(stem, w->text, w->n);
    t->stem = stem;
    t->stem_len = w->n;
    if (p->stem && w->ascii && w->full == w->n) t->stem_len = stem_apply(stem, w->n);
    t->unigram_hash =
        word_hash(stem, t->stem_len, w->full - w->n + t->stem_len, RAGD_SEED_UNIGRAM);
    return 1;
}

/* Filters, stems and hashes one word and hands it to fn. */
static void term_emit(const word *w, const embed_local_params *p, term_fn fn, void *ctx)
{
    char stem[RAGD_EMBED_WORD_MAX];
    term t;
    if (term_make(w, word_hash(w->text, w->n, w->full, RAGD_SEED_SURFACE), p, &t, stem))
        fn(ctx, &t);
}

/* Calls word_fn(ctx, w) for each word of text[0..len) and then for each of its camelCase parts,
 * in text order. */
static void words_run(const char *text, size_t len, const embed_local_params *p,
                      void (*word_fn)(void *ctx, const word *w), void *ctx)
{
    pthread_once(&tables_once, tables_build);
    const unsigned char *s = (const unsigned char *)text;
    size_t pos = 0;
    word w;
    while (word_next(s, len, &pos, &w)) {
        word_fn(ctx, &w);
        if (!p->split_camel || w.cut_count == 0) continue;
        /* The parts of a camelCase identifier are terms too, so "readFile" meets "read file". */
        for (int k = 0; k <= w.cut_count; k++) {
            size_t from = k == 0 ? 0 : w.cuts[k - 1];
            size_t to = k == w.cut_count ? w.n : w.cuts[k];
            if (to > w.n) to = w.n; /* a cut past a removed possessive */
            if (from >= to || to - from < 2) continue;
            word part = {.n = to - from, .full = to - from, .ascii = w.ascii};
            memcpy(part.text, w.text + from, part.n);
            word_fn(ctx, &part);
        }
    }
}

typedef struct terms_run_ctx {
    const embed_local_params *p;
    term_fn fn;
    void *ctx;
} terms_run_ctx;

static void terms_run_word(void *ctx, const word *w)
{
    terms_run_ctx *c = ctx;
    term_emit(w, c->p, c->fn, c->ctx);
}

/* Calls fn for each kept term of text[0..len), in text order. */
static void terms_run(const char *text, size_t len, const embed_local_params *p, term_fn fn,
                      void *ctx)
{
    terms_run_ctx c = {p, fn, ctx};
    words_run(text, len, p, terms_run_word, &c);
}

/* ---- the feature table ----------------------------------------------------------------------- */

typedef struct feat {
    uint64_t key;
    uint32_t count;
    uint32_t kind; /* RAGD_FEAT_* */
} feat;

/* Distinct features in insertion order (items) behind an open-addressing index of
 * item number + 1 (0: free), so the final passes touch only used entries. */
typedef struct feat_table {
    uint32_t *index; /* cap slots */
    feat *items;     /* cap / 2 entries; the load stays at most 1/2 */
    size_t cap;      /* power of two */
    size_t used;
    void *heap; /* the block holding index and items when on the heap, else NULL */
} feat_table;

/* Points t at a zeroed index and item space for cap slots inside block. */
static void table_layout(feat_table *t, void *block, size_t cap)
{
    t->items = block;
    t->index = (uint32_t *)(t->items + cap / 2);
    memset(t->index, 0, cap * sizeof *t->index);
    t->cap = cap;
}

static size_t table_bytes(size_t cap)
{
    return cap / 2 * sizeof(feat) + cap * sizeof(uint32_t);
}

static void table_insert_index(feat_table *t, size_t item)
{
    size_t j = (size_t)t->items[item].key & (t->cap - 1);
    while (t->index[j] != 0) j = (j + 1) & (t->cap - 1);
    t->index[j] = (uint32_t)item + 1;
}

/* Doubles the table. Returns: 0, or -1 when at the size limit or out of memory (unchanged). */
static int table_grow(feat_table *t)
{
    if (t->cap >= RAGD_TABLE_MAX_SLOTS) return -1;
    void *block = malloc(table_bytes(t->cap * 2));
    if (block == NULL) return -1;
    feat *old = t->items;
    void *old_heap = t->heap;
    table_layout(t, block, t->cap * 2);
    memcpy(t->items, old, t->used * sizeof *old);
    for (size_t i = 0; i < t->used; i++) table_insert_index(t, i);
    free(old_heap);
    t->heap = block;
    return 0;
}

/* Counts one occurrence of (kind, key). Returns: 1 when new, 0 when seen before, -1 when the
 * table is full and the feature was dropped. */
static int table_add(feat_table *t, uint32_t kind, uint64_t key)
{
    for (;;) {
        size_t j = (size_t)key & (t->cap - 1);
        while (t->index[j] != 0) {
            feat *f = &t->items[t->index[j] - 1];
            if (f->key == key && f->kind == kind) {
                f->count++;
                return 0;
            }
            j = (j + 1) & (t->cap - 1);
        }
        if (t->used + 1 > t->cap / 2) {
            if (table_grow(t) != 0) return -1;
            continue;
        }
        t->items[t->used] = (feat){.key = key, .count = 1, .kind = kind};
        t->index[j] = (uint32_t)++t->used;
        return 1;
    }
}

/* ---- the word cache -------------------------------------------------------------------------- */

/*
 * Most words of a corpus recur: hashing, stopword lookup, stemming and the character n-gram
 * hashes of a word are the same every time under the same parameters. A per-thread,
 * direct-mapped cache keeps them per surface word, so an ingest computes them about once per
 * distinct word instead of once per occurrence (per distinct word per chunk for the n-grams).
 * The cache only replaces computations by their stored results: the same features reach the
 * table and the output in the same order with the same values, so vectors are bit-identical
 * (tests/unit/test_embed.c test_vectors_bit_identical). Bounded: RAGD_WORD_CACHE_SLOTS entries
 * (about 540 KiB) per thread that has embedded a text of RAGD_WORD_CACHE_TEXT bytes or more (the
 * ingest's; threads that only embed short queries make none), freed when the thread exits.
 * Off until embed_local_word_cache(1): `ragd ingest` (a batch process) turns it on; the daemon
 * leaves it off, since each thread that ingests would keep its 540 KiB for the process's life
 * and the daemon's RSS has a budget (bench/NOTES.md, session 5 lead).
 */
#define RAGD_WORD_CACHE_SLOTS 4096 /* power of two */
#define RAGD_WORD_CACHE_LEN 16     /* longer words are not cached (measured: as fast as 24) */
#define RAGD_WORD_CACHE_GRAMS 45   /* n-gram slots per entry: 3..5-grams of 16 bytes need 45 */
#define RAGD_WORD_CACHE_TEXT 256   /* a thread makes its cache for a text this long (a chunk) */
#define RAGD_GRAMS_NONE 0xffff     /* the entry holds no n-grams (computed each time) */

typedef struct cached_word {
    uint64_t surface_hash;
    uint64_t unigram_hash;
    uint32_t generation; /* valid when equal to the cache's; 0: never filled */
    uint8_t n;           /* bytes in text */
    uint8_t stop;        /* 1: a dropped stopword */
    uint8_t ascii;       /* the word's ascii flag: a camelCase part inherits its whole word's */
    uint16_t gram_count; /* entries in grams, or RAGD_GRAMS_NONE */
    char text[RAGD_WORD_CACHE_LEN];
    uint16_t grams[RAGD_WORD_CACHE_GRAMS]; /* feature_slot values of the char n-grams, in order */
} cached_word;

/* What the cached results depend on besides the word. */
typedef struct word_cache_key {
    int dims; /* dimensions available to features */
    int char_min, char_max;
    int stem, stopwords;
    int grams; /* 1: n-grams are cached (char_weight > 0, not char_sublinear) */
    uint64_t salt;
} word_cache_key;

typedef struct word_cache {
    word_cache_key key;
    uint32_t generation; /* bumped when the key changes: every entry goes stale at once */
    cached_word slots[RAGD_WORD_CACHE_SLOTS];
} word_cache;

static atomic_int cache_on; /* embed_local_word_cache */
static pthread_key_t cache_tls;
static int cache_tls_ok;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void cache_tls_make(void)
{
    cache_tls_ok = pthread_key_create(&cache_tls, free) == 0;
}

/* Returns: this thread's cache set up for p's parameters (borrowed; owned by the thread, freed
 * at its exit), or NULL when there is none (the caller computes everything): none is made for a
 * text shorter than RAGD_WORD_CACHE_TEXT bytes, or when memory is short. */
static word_cache *word_cache_for(const embed_local_params *p, int dims, size_t text_len)
{
    if (!atomic_load_explicit(&cache_on, memory_order_relaxed)) return NULL;
    pthread_once(&cache_once, cache_tls_make);
    if (!cache_tls_ok) return NULL;
    word_cache *c = pthread_getspecific(cache_tls);
    if (c == NULL) {
        if (text_len < RAGD_WORD_CACHE_TEXT) return NULL;
        c = calloc(1, sizeof *c);
        if (c == NULL) return NULL;
        if (pthread_setspecific(cache_tls, c) != 0) {
            free(c);
            return NULL;
        }
    }
    word_cache_key k;
    memset(&k, 0, sizeof k); /* compared with memcmp: no stray padding bytes */
    k.dims = dims;
    k.char_min = p->char_min;
    k.char_max = p->char_max;
    k.stem = p->stem;
    k.stopwords = p->stopwords;
    k.grams = p->char_weight > 0 && !p->char_sublinear;
    k.salt = p->salt;
    if (c->generation == 0 || memcmp(&k, &c->key, sizeof k) != 0) {
        c->key = k;
        if (++c->generation == 0) { /* wrapped: clear, so no entry claims the new generation */
            memset(c->slots, 0, sizeof c->slots);
            c->generation = 1;
        }
    }
    return c;
}

void embed_local_word_cache(int on)
{
    atomic_store(&cache_on, on != 0);
}

/* ---- the embedding --------------------------------------------------------------------------- */

typedef struct embed_run {
    const embed_local_params *p;
    feat_table table;
    float *out;        /* where features go: the output, past dimension 0 when it is reserved */
    int dims;          /* dimensions available to features */
    uint64_t previous; /* unigram hash of the previous kept stem */
    int has_previous;
    word_cache *cache; /* this thread's, or NULL */
} embed_run;

/* Character n-grams of "<surface>": into the table (char_sublinear) or straight into out. When
 * fill is not NULL (not char_sublinear), their slots are also recorded in it (it has room). */
static void char_ngrams_add(embed_run *r, const word *w, cached_word *fill)
{
    const embed_local_params *p = r->p;
    unsigned char g[RAGD_EMBED_WORD_MAX + 2 + 8] = {0};
    size_t n = w->n;
    g[0] = '<';
    memcpy(g + 1, w->text, n);
    g[n + 1] = '>';
    size_t total = n + 2;
    size_t count = 0;
    for (int k = p->char_min; k <= p->char_max; k++) {
        if ((size_t)k > total) break;
        uint64_t mask = (1ULL << (8 * k)) - 1;
        uint64_t tag = (uint64_t)k << 56;
        for (size_t i = 0; i + (size_t)k <= total; i++) {
            uint64_t packed = (load8_le(g + i) & mask) | tag;
            uint64_t h = mix64(packed ^ RAGD_SEED_CHAR);
            if (p->char_sublinear) {
                table_add(&r->table, RAGD_FEAT_CHAR, h);
            } else {
                uint32_t slot = feature_slot(r->dims, h, p->salt);
                slot_add(r->out, slot, 1.0f);
                if (fill != NULL) fill->grams[count++] = (uint16_t)slot;
            }
        }
    }
    if (fill != NULL) fill->gram_count = (uint16_t)count;
}

/* Returns: the number of char n-grams of a word of n bytes under p. */
static size_t char_ngram_count(const embed_local_params *p, size_t n)
{
    size_t count = 0;
    for (int k = p->char_min; k <= p->char_max; k++)
        if ((size_t)k <= n + 2) count += n + 2 - (size_t)k + 1;
    return count;
}

/* Counts one kept term: its unigram, the bigram with the previous term, and, the first time the
 * surface occurs in this text, its char n-grams (from c when it holds them). */
static void embed_term_add(embed_run *r, uint64_t unigram_hash, uint64_t surface_hash,
                           const word *w, cached_word *c)
{
    const embed_local_params *p = r->p;
    if (p->unigram_weight > 0) table_add(&r->table, RAGD_FEAT_UNIGRAM, unigram_hash);
    if (p->bigram_weight > 0 && r->has_previous) {
        uint64_t b = mix64(r->previous ^ ((unigram_hash << 21) | (unigram_hash >> 43)) ^
                           RAGD_SEED_BIGRAM);
        table_add(&r->table, RAGD_FEAT_BIGRAM, b);
    }
    r->previous = unigram_hash;
    r->has_previous = 1;
    if (p->char_weight > 0 && table_add(&r->table, RAGD_FEAT_SURFACE, surface_hash) == 1) {
        if (c != NULL && c->gram_count != RAGD_GRAMS_NONE) {
            for (size_t i = 0; i < c->gram_count; i++) slot_add(r->out, c->grams[i], 1.0f);
        } else {
            int fill = c != NULL && r->cache->key.grams &&
                       char_ngram_count(p, w->n) <= RAGD_WORD_CACHE_GRAMS;
            char_ngrams_add(r, w, fill ? c : NULL);
        }
    }
}

/* One word of the text: from the cache when it holds the word, else computed (and cached). */
static void embed_word(void *ctx, const word *w)
{
    embed_run *r = ctx;
    uint64_t surface_hash = word_hash(w->text, w->n, w->full, RAGD_SEED_SURFACE);
    cached_word *c = NULL;
    if (r->cache != NULL && w->n == w->full && w->n <= RAGD_WORD_CACHE_LEN) {
        c = &r->cache->slots[surface_hash & (RAGD_WORD_CACHE_SLOTS - 1)];
        if (c->generation == r->cache->generation && c->surface_hash == surface_hash &&
            c->n == w->n && c->ascii == (uint8_t)w->ascii &&
            memcmp(c->text, w->text, w->n) == 0) {
            if (!c->stop) embed_term_add(r, c->unigram_hash, surface_hash, w, c);
            return;
        }
    }
    char stem[RAGD_EMBED_WORD_MAX];
    term t;
    int kept = term_make(w, surface_hash, r->p, &t, stem);
    if (c != NULL) { /* take the slot over */
        c->generation = r->cache->generation;
        c->surface_hash = surface_hash;
        c->n = (uint8_t)w->n;
        c->ascii = (uint8_t)w->ascii;
        memcpy(c->text, w->text, w->n);
        c->stop = (uint8_t)!kept;
        c->unigram_hash = kept ? t.unigram_hash : 0;
        c->gram_count = RAGD_GRAMS_NONE;
    }
    if (kept) embed_term_add(r, t.unigram_hash, surface_hash, w, c);
}

static void vector_scale(float *v, int dims, float scale)
{
    for (int i = 0; i < dims; i++) v[i] *= scale;
}

static double vector_norm(const float *v, int dims)
{
    double sum = 0.0;
    for (int i = 0; i < dims; i++) sum += (double)v[i] * v[i];
    return sqrt(sum);
}

static size_t pow2_at_least(size_t n)
{
    size_t c = 1;
    while (c < n) c <<= 1;
    return c;
}

void embed_local_vector_params(const char *text, size_t len, const embed_local_params *p,
                               float *out)
{
    if (p->dims <= 0) return;
    memset(out, 0, (size_t)p->dims * sizeof *out);
    if (text == NULL || len == 0) return;

    /* feat-aligned stack space for a RAGD_TABLE_STACK_SLOTS table */
    feat stack_block[RAGD_TABLE_STACK_SLOTS / 2 + RAGD_TABLE_STACK_SLOTS / 4];
    int reserve = p->length_weight > 0;
    embed_run r = {.p = p, .out = out + reserve, .dims = p->dims - reserve};
    /* About 3 distinct features per word and >= 4 bytes per word: len slots keep load < 1/2. */
    size_t want = pow2_at_least(len);
    if (want > (1u << 16)) want = 1u << 16;
    if (want > RAGD_TABLE_STACK_SLOTS) r.table.heap = malloc(table_bytes(want));
    if (r.table.heap != NULL) {
        table_layout(&r.table, r.table.heap, want);
    } else {
        /* Short text, or no memory: start on the stack; table_grow moves to the heap. */
        table_layout(&r.table, stack_block, RAGD_TABLE_STACK_SLOTS);
    }

    r.cache = word_cache_for(p, r.dims, len);
    words_run(text, len, p, embed_word, &r);

    /* The char n-gram block is alone in out so far: scale it to its mass. */
    double char_norm = vector_norm(out, p->dims);
    if (char_norm > 0) vector_scale(out, p->dims, (float)(p->char_weight / char_norm));

    double sum_uni = 0.0, sum_bi = 0.0, sum_char = 0.0;
    for (size_t i = 0; i < r.table.used; i++) {
        const feat *f = &r.table.items[i];
        double w = tf_weight(f->count);
        if (f->kind == RAGD_FEAT_UNIGRAM) sum_uni += w * w;
        else if (f->kind == RAGD_FEAT_BIGRAM) sum_bi += w * w;
        else if (f->kind == RAGD_FEAT_CHAR) sum_char += w * w;
    }
    float scale[RAGD_FEAT_CHAR + 1] = {0};
    if (sum_uni > 0) scale[RAGD_FEAT_UNIGRAM] = (float)(p->unigram_weight / sqrt(sum_uni));
    if (sum_bi > 0) scale[RAGD_FEAT_BIGRAM] = (float)(p->bigram_weight / sqrt(sum_bi));
    if (sum_char > 0) scale[RAGD_FEAT_CHAR] = (float)(p->char_weight / sqrt(sum_char));
    for (size_t i = 0; i < r.table.used; i++) {
        const feat *f = &r.table.items[i];
        if (scale[f->kind] != 0.0f)
            feature_add(r.out, r.dims, f->key, scale[f->kind] * tf_weight(f->count), p->salt);
    }
    free(r.table.heap);

    double norm = vector_norm(out, p->dims);
    if (norm > 0) vector_scale(out, p->dims, (float)(1.0 / norm));
    if (norm > 0 && p->length_weight > 0) {
        double l = sqrt(sum_uni);
        double b = p->length_weight * l / (l + p->length_pivot);
        if (b > 0.99) b = 0.99;
        vector_scale(out, p->dims, (float)sqrt(1.0 - b * b));
        out[0] = (float)b;
    }
}

/* ---- parameters ------------------------------------------------------------------------------ */

void embed_local_params_default(embed_local_params *p, int dims)
{
    p->dims = dims;
    p->unigram_weight = 1.0f;
    p->bigram_weight = 0.0f; /* measured: bigrams never helped (docs/EMBEDDER.md) */
    p->char_weight = 0.5f;
    p->char_min = 3;
    p->char_max = 5;
    p->stem = 1;
    p->stopwords = 1;
    p->char_sublinear = 0;
    p->length_weight = 0.0f;
    p->length_pivot = 8.0f;
    p->split_camel = 1;
    p->salt = 0;
}

int embed_local_params_valid(const embed_local_params *p)
{
    if (p == NULL || p->dims < 64 || p->dims > 4096) return 0;
    if (!(p->unigram_weight >= 0 && p->unigram_weight < 1e6f)) return 0;
    if (!(p->bigram_weight >= 0 && p->bigram_weight < 1e6f)) return 0;
    if (!(p->char_weight >= 0 && p->char_weight < 1e6f)) return 0;
    if (!(p->length_weight >= 0 && p->length_weight <= 0.9f)) return 0;
    if (p->length_weight > 0 && !(p->length_pivot > 0 && p->length_pivot < 1e6f)) return 0;
    if (p->char_weight > 0 && (p->char_min < 2 || p->char_max < p->char_min ||
                               p->char_max > RAGD_EMBED_CHAR_NGRAM_MAX))
        return 0;
    return 1;
}

void embed_local_vector(const char *text, size_t len, int dims, float *out)
{
    embed_local_params p;
    embed_local_params_default(&p, dims);
    embed_local_vector_params(text, len, &p, out);
}

typedef struct terms_ctx {
    embed_term_fn fn;
    void *ctx;
} terms_ctx;

static void terms_forward(void *ctx, const term *t)
{
    terms_ctx *c = ctx;
    c->fn(c->ctx, t->unigram_hash, t->stem, t->stem_len);
}

void embed_local_terms_each(const char *text, size_t len, const embed_local_params *p,
                            embed_term_fn fn, void *ctx)
{
    if (text == NULL || len == 0) return;
    terms_ctx c = {fn, ctx};
    terms_run(text, len, p, terms_forward, &c);
}

/* ---- the provider ---------------------------------------------------------------------------- */

static ragd_rc local_batch(embed_provider *p, const char *const *texts, const size_t *lens,
                           size_t n, float *out, ragd_err *err)
{
    const embed_local_params *params = p->state;
    if (n > 0 && (texts == NULL || out == NULL))
        return ragd_err_set(err, RAGD_ERR_INVALID, "embed: texts and out are required");
    for (size_t i = 0; i < n; i++) {
        const char *t = texts[i];
        size_t len = t == NULL ? 0 : (lens != NULL ? lens[i] : strlen(t));
        embed_local_vector_params(t, len, params, out + i * (size_t)params->dims);
    }
    return RAGD_OK;
}

static void local_destroy(embed_provider *p)
{
    free(p->state);
    free(p);
}

static const embed_ops local_ops = {
    .name = "local",
    .in_process = 1,
    .batch = local_batch,
    .destroy = local_destroy,
};

ragd_rc embed_local_new_params(const embed_local_params *params, embed_provider **out,
                               ragd_err *err)
{
    if (!embed_local_params_valid(params))
        return ragd_err_set(err, RAGD_ERR_INVALID,
                            "embed: local embedder parameters invalid (dims must be 64..4096)");
    embed_provider *p = calloc(1, sizeof *p);
    embed_local_params *state = malloc(sizeof *state);
    if (p == NULL || state == NULL) {
        free(p);
        free(state);
        return ragd_err_set(err, RAGD_ERR_NOMEM, "embed: out of memory");
    }
    *state = *params;
    p->ops = &local_ops;
    strcpy(p->model, RAGD_EMBED_LOCAL_MODEL);
    p->dims = params->dims;
    p->max_batch = RAGD_EMBED_LOCAL_MAX_BATCH;
    p->state = state;
    *out = p;
    return RAGD_OK;
}

ragd_rc embed_local_new(int dims, embed_provider **out, ragd_err *err)
{
    if (dims < 64 || dims > 4096)
        return ragd_err_set(err, RAGD_ERR_INVALID, "embed: dims %d out of range 64..4096", dims);
    embed_local_params params;
    embed_local_params_default(&params, dims);
    return embed_local_new_params(&params, out, err);
}
