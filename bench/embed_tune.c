/* SPDX-License-Identifier: MIT */
/*
 * embed_tune.c - measures retrieval quality of the local embedder against a BM25 keyword
 * baseline, to pick the embedder's defaults from numbers rather than guesses (docs/EMBEDDER.md).
 *
 * For each (corpus directory, QA file) pair it crawls, extracts and chunks the corpus with ragd's
 * ingest code (target 650, max 800, overlap 0.15), embeds every chunk as
 * "<title> > <heading path>\n\n<chunk text>" (the --context option tries other forms), and ranks
 * all chunks for each question by cosine similarity. A question is answered at rank r when the
 * best-scoring chunk that matches one of its "expected" entries ("file.md", or
 * "file.md#heading substring", "file.md#=exact heading path") is beaten by r - 1 non-matching
 * chunks (ties count against it).
 * It prints recall@1, recall@5 and MRR@10 per set, for BM25 (k1 1.2, b 0.75, the embedder's own
 * tokenizer and stemmer) and for a grid of embedder configurations, as markdown tables.
 *
 * Usage: embed_tune [--grid full|quick|none]
 *                   [--context title-heading|heading-or-title|heading|none] [--salts N]
 *                   [--speed] [--pivot S:P] [--hybrid] [--verbose] [--debug Q]
 *                   CORPUS_DIR QA.jsonl [CORPUS_DIR QA.jsonl ...]
 *   (or the pairs as --corpus CORPUS_DIR --qa QA.jsonl ...)
 *   --salts N   average every embedder row over N hash salts (0 is ragd's), so a configuration
 *               is judged by its expected quality, not by the luck of one set of collisions
 *   --pivot S:P re-rank experiment: cosine * S*L / ((1-S)*P + S*L), L = chunk tf norm
 *   --hybrid    fuse each embedder ranking with BM25's (reciprocal rank fusion, k 60)
 *   --verbose   per-question ranks on stderr; --debug Q: question Q's top chunks
 * A QA line: {"question": "...", "expected": ["file.md", "dir/file.md#Heading", ...]}
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "../src/embed_int.h"
#include "ragd/embed.h"
#include "ragd/ingest.h"
#include "ragd/util.h"

#define TUNE_MAX_SETS 4
#define TUNE_MRR_CUTOFF 10
#define RAGD_EMBED_TUNE_DIMS 1024 /* the dims of the "defaults" rows: the recommended dims */

enum { CONTEXT_TITLE_HEADING, CONTEXT_HEADING_OR_TITLE, CONTEXT_HEADING, CONTEXT_NONE };

typedef struct chunk_rec {
    size_t doc;       /* index into the set's relative paths */
    char *heading;    /* owned */
    char *embed_text; /* owned: what the embedder and BM25 see */
    size_t embed_len;
    uint64_t *terms; /* owned: sorted distinct term hashes (BM25) */
    uint32_t *tfs;   /* owned: their counts */
    size_t term_count;
    size_t length; /* BM25 document length in terms */
} chunk_rec;

typedef struct question {
    char *text;       /* owned */
    char **expected;  /* owned: "file" or "file#heading" */
    size_t expected_count;
    unsigned char *relevant; /* owned: per chunk, 1 when the chunk matches an expected entry */
} question;

typedef struct qa_set {
    const char *name; /* the QA file's base name */
    char **docs;      /* owned relative paths */
    size_t doc_count;
    chunk_rec *chunks;
    size_t chunk_count;
    size_t corpus_bytes;
    question *questions;
    size_t question_count;
    /* BM25 corpus statistics */
    uint64_t *df_terms; /* sorted distinct terms over the corpus */
    uint32_t *df;
    size_t df_count;
    double avg_length;
} qa_set;

typedef struct scores {
    double r1, r5, mrr;
} scores;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "embed_tune: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) die("%s", "out of memory");
    return p;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (p == NULL) die("%s", "out of memory");
    return p;
}

/* ---- terms (BM25) ------------------------------------------------------------------------- */

typedef struct term_vec {
    uint64_t *items;
    size_t count, cap;
} term_vec;

static void term_collect(void *ctx, uint64_t term, const char *stem, size_t len)
{
    (void)stem;
    (void)len;
    term_vec *v = ctx;
    if (v->count == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 64;
        v->items = xrealloc(v->items, v->cap * sizeof *v->items);
    }
    v->items[v->count++] = term;
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorts v and folds it into distinct terms with counts. Returns the distinct count. */
static size_t terms_fold(term_vec *v, uint32_t **tfs)
{
    qsort(v->items, v->count, sizeof *v->items, u64_cmp);
    *tfs = xmalloc((v->count ? v->count : 1) * sizeof **tfs);
    size_t d = 0;
    for (size_t i = 0; i < v->count; i++) {
        if (d > 0 && v->items[d - 1] == v->items[i]) {
            (*tfs)[d - 1]++;
        } else {
            v->items[d] = v->items[i];
            (*tfs)[d++] = 1;
        }
    }
    return d;
}

static long term_find(const uint64_t *terms, size_t n, uint64_t t)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (terms[mid] < t) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && terms[lo] == t ? (long)lo : -1;
}

/* ---- corpus ------------------------------------------------------------------------------- */

static char *context_text(int mode, const char *title, const char *heading, const char *text,
                          size_t len, size_t *out_len)
{
    util_buf b = {0};
    int bad = 0;
    if (mode == CONTEXT_TITLE_HEADING) {
        bad |= util_buf_puts(&b, title);
        if (heading[0]) bad |= util_buf_printf(&b, " > %s", heading);
        bad |= util_buf_append(&b, "\n\n", 2);
    } else if (mode == CONTEXT_HEADING_OR_TITLE) {
        bad |= util_buf_puts(&b, heading[0] ? heading : title);
        bad |= util_buf_append(&b, "\n\n", 2);
    } else if (mode == CONTEXT_HEADING && heading[0]) {
        bad |= util_buf_puts(&b, heading);
        bad |= util_buf_append(&b, "\n\n", 2);
    }
    bad |= util_buf_append(&b, text, len);
    if (bad) die("%s", "out of memory");
    *out_len = b.len;
    char *s = util_buf_steal(&b);
    if (s == NULL) die("%s", "out of memory");
    return s;
}

static void set_load_corpus(qa_set *set, const char *root, int context,
                            const embed_local_params *tokenizer)
{
    ragd_err err = {0};
    ingest_file_list files = {0};
    char *root_abs = NULL;
    if (ingest_crawl_run(root, &files, &root_abs, &err) != RAGD_OK) die("%s", err.msg);
    free(root_abs);
    ingest_chunk_opts opts = {.target_tokens = 650, .max_tokens = 800, .overlap = 0.15};
    size_t cap = 0;
    set->docs = xmalloc(files.count * sizeof *set->docs);
    for (size_t f = 0; f < files.count; f++) {
        char *data = NULL;
        size_t len = 0;
        ragd_err_clear(&err);
        if (util_file_read(files.items[f].path, 64u << 20, &data, &len, &err) != RAGD_OK)
            die("%s", err.msg);
        ingest_doc doc = {0};
        if (ingest_extract_run(files.items[f].path, data, len, &doc, &err) != RAGD_OK) {
            fprintf(stderr, "embed_tune: skipping %s: %s\n", files.items[f].relative, err.msg);
            free(data);
            continue;
        }
        free(data);
        set->corpus_bytes += doc.len;
        size_t d = set->doc_count++;
        set->docs[d] = util_strndup(files.items[f].relative, strlen(files.items[f].relative));
        opts.markdown = doc.markdown;
        ingest_chunk_list list = {0};
        if (ingest_chunk_split(doc.text, doc.len, &opts, &list, &err) != RAGD_OK)
            die("%s", err.msg);
        for (size_t i = 0; i < list.count; i++) {
            if (set->chunk_count == cap) {
                cap = cap ? cap * 2 : 256;
                set->chunks = xrealloc(set->chunks, cap * sizeof *set->chunks);
            }
            const ingest_chunk *c = &list.items[i];
            chunk_rec *r = &set->chunks[set->chunk_count++];
            memset(r, 0, sizeof *r);
            r->doc = d;
            r->heading = util_strndup(c->heading, strlen(c->heading));
            r->embed_text = context_text(context, doc.title, c->heading, doc.text + c->start,
                                         c->end - c->start, &r->embed_len);
            term_vec v = {0};
            embed_local_terms_each(r->embed_text, r->embed_len, tokenizer, term_collect, &v);
            r->length = v.count;
            r->term_count = terms_fold(&v, &r->tfs);
            r->terms = v.items;
        }
        ingest_chunk_list_free(&list);
        ingest_doc_free(&doc);
    }
    ingest_file_list_free(&files);

    /* Document frequencies: merge all chunks' distinct terms. */
    size_t total = 0;
    double length_sum = 0;
    for (size_t i = 0; i < set->chunk_count; i++) {
        total += set->chunks[i].term_count;
        length_sum += (double)set->chunks[i].length;
    }
    term_vec all = {0};
    all.items = xmalloc((total ? total : 1) * sizeof *all.items);
    for (size_t i = 0; i < set->chunk_count; i++)
        for (size_t k = 0; k < set->chunks[i].term_count; k++)
            all.items[all.count++] = set->chunks[i].terms[k];
    set->df_count = terms_fold(&all, &set->df);
    set->df_terms = all.items;
    set->avg_length = set->chunk_count ? length_sum / (double)set->chunk_count : 1.0;
}

/* Returns: 1 when chunk c of the set matches the expected entry: "file", "file#heading path
 * substring" or "file#=exact heading path". */
static int chunk_matches(const qa_set *set, const chunk_rec *c, const char *expected)
{
    const char *hash = strchr(expected, '#');
    size_t file_len = hash ? (size_t)(hash - expected) : strlen(expected);
    const char *doc = set->docs[c->doc];
    if (strlen(doc) != file_len || memcmp(doc, expected, file_len) != 0) return 0;
    if (hash == NULL) return 1;
    if (hash[1] == '=') return strcmp(c->heading, hash + 2) == 0; /* "file#=exact heading path" */
    return strstr(c->heading, hash + 1) != NULL;
}

static void set_load_questions(qa_set *set, const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) die("cannot open %s", path);
    char *line = NULL;
    size_t cap = 0, qcap = 0;
    ssize_t n;
    int lineno = 0;
    while ((n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (n <= 1) continue;
        json_error_t jerr;
        json_t *j = json_loads(line, 0, &jerr);
        json_t *q = j ? json_object_get(j, "question") : NULL;
        json_t *e = j ? json_object_get(j, "expected") : NULL;
        if (!json_is_string(q) || !json_is_array(e) || json_array_size(e) == 0) {
            fprintf(stderr, "embed_tune: %s:%d: bad QA line\n", path, lineno);
            exit(1);
        }
        if (set->question_count == qcap) {
            qcap = qcap ? qcap * 2 : 64;
            set->questions = xrealloc(set->questions, qcap * sizeof *set->questions);
        }
        question *qu = &set->questions[set->question_count++];
        qu->text = strdup(json_string_value(q));
        qu->expected_count = json_array_size(e);
        qu->expected = xmalloc(qu->expected_count * sizeof *qu->expected);
        for (size_t i = 0; i < qu->expected_count; i++) {
            json_t *s = json_array_get(e, i);
            qu->expected[i] = strdup(json_is_string(s) ? json_string_value(s) : "");
        }
        json_decref(j);
        qu->relevant = xmalloc(set->chunk_count);
        memset(qu->relevant, 0, set->chunk_count);
        size_t hits = 0;
        for (size_t i = 0; i < qu->expected_count; i++) {
            size_t entry_hits = 0;
            for (size_t c = 0; c < set->chunk_count; c++)
                if (chunk_matches(set, &set->chunks[c], qu->expected[i])) {
                    if (!qu->relevant[c]) hits++;
                    qu->relevant[c] = 1;
                    entry_hits++;
                }
            if (entry_hits == 0)
                fprintf(stderr, "embed_tune: %s:%d: warning: \"%s\" matches no chunk\n", path,
                        lineno, qu->expected[i]);
        }
        if (hits == 0) {
            fprintf(stderr, "embed_tune: %s:%d: no chunk matches the expected entries\n", path,
                    lineno);
            exit(1);
        }
    }
    free(line);
    fclose(f);
    const char *slash = strrchr(path, '/');
    set->name = slash ? slash + 1 : path;
}

static void set_free(qa_set *set)
{
    for (size_t i = 0; i < set->chunk_count; i++) {
        free(set->chunks[i].heading);
        free(set->chunks[i].embed_text);
        free(set->chunks[i].terms);
        free(set->chunks[i].tfs);
    }
    free(set->chunks);
    for (size_t i = 0; i < set->doc_count; i++) free(set->docs[i]);
    free(set->docs);
    for (size_t i = 0; i < set->question_count; i++) {
        question *q = &set->questions[i];
        free(q->text);
        for (size_t k = 0; k < q->expected_count; k++) free(q->expected[k]);
        free(q->expected);
        free(q->relevant);
    }
    free(set->questions);
    free(set->df_terms);
    free(set->df);
}

/* ---- ranking ------------------------------------------------------------------------------ */

/* The rank of the best relevant chunk: 1 + the non-relevant chunks scoring at least as high. */
static size_t rank_of(const question *q, const double *score, size_t n)
{
    double best = -INFINITY;
    for (size_t c = 0; c < n; c++)
        if (q->relevant[c] && score[c] > best) best = score[c];
    size_t ahead = 0;
    for (size_t c = 0; c < n; c++)
        if (!q->relevant[c] && score[c] >= best) ahead++;
    return ahead + 1;
}

static int verbose;
static long debug_question = -1; /* --debug N: print question N's top chunks */

static void scores_add(scores *s, size_t rank)
{
    if (verbose) fprintf(stderr, " %zu", rank);
    s->r1 += rank == 1;
    s->r5 += rank <= 5;
    s->mrr += rank <= TUNE_MRR_CUTOFF ? 1.0 / (double)rank : 0.0;
}

static void scores_finish(scores *s, size_t n)
{
    s->r1 /= (double)n;
    s->r5 /= (double)n;
    s->mrr /= (double)n;
}

/* BM25 scores of every chunk of the set for text, into score[chunk_count]. */
static void bm25_scores(const qa_set *set, const embed_local_params *tokenizer, double k1,
                        double b, const char *text, double *score)
{
    double n = (double)set->chunk_count;
    term_vec v = {0};
    embed_local_terms_each(text, strlen(text), tokenizer, term_collect, &v);
    uint32_t *qtf = NULL;
    size_t qn = terms_fold(&v, &qtf);
    for (size_t c = 0; c < set->chunk_count; c++) score[c] = 0.0;
    for (size_t t = 0; t < qn; t++) {
        long di = term_find(set->df_terms, set->df_count, v.items[t]);
        if (di < 0) continue;
        double df = set->df[di];
        double idf = log(1.0 + (n - df + 0.5) / (df + 0.5));
        for (size_t c = 0; c < set->chunk_count; c++) {
            const chunk_rec *r = &set->chunks[c];
            long k = term_find(r->terms, r->term_count, v.items[t]);
            if (k < 0) continue;
            double tf = r->tfs[k];
            double norm = k1 * (1.0 - b + b * (double)r->length / set->avg_length);
            score[c] += idf * tf * (k1 + 1.0) / (tf + norm);
        }
    }
    free(v.items);
    free(qtf);
}

static scores bm25_eval(const qa_set *set, const embed_local_params *tokenizer, double k1,
                        double b)
{
    scores s = {0};
    double *score = xmalloc(set->chunk_count * sizeof *score);
    for (size_t qi = 0; qi < set->question_count; qi++) {
        const question *q = &set->questions[qi];
        bm25_scores(set, tokenizer, k1, b, q->text, score);
        scores_add(&s, rank_of(q, score, set->chunk_count));
    }
    free(score);
    scores_finish(&s, set->question_count);
    return s;
}

/* --hybrid: reciprocal rank fusion (k = 60) of the embedder's and BM25's rankings, an experiment
 * for a possible hybrid retriever. */
static int hybrid;
static const double *sort_keys;

static int by_score_desc(const void *a, const void *b)
{
    double x = sort_keys[*(const size_t *)a], y = sort_keys[*(const size_t *)b];
    return x > y ? -1 : x < y;
}

static void rrf_add(const double *score, size_t n, double *fused, size_t *order)
{
    for (size_t c = 0; c < n; c++) order[c] = c;
    sort_keys = score;
    qsort(order, n, sizeof *order, by_score_desc);
    for (size_t r = 0; r < n; r++) fused[order[r]] += 1.0 / (60.0 + (double)r + 1.0);
}

static void hybrid_fuse(const qa_set *set, const char *text, double *score)
{
    size_t n = set->chunk_count;
    embed_local_params tok;
    embed_local_params_default(&tok, 1024);
    double *bm = xmalloc(n * sizeof *bm), *fused = xmalloc(n * sizeof *fused);
    size_t *order = xmalloc(n * sizeof *order);
    bm25_scores(set, &tok, 1.2, 0.75, text, bm);
    for (size_t c = 0; c < n; c++) fused[c] = 0.0;
    rrf_add(score, n, fused, order);
    rrf_add(bm, n, fused, order);
    memcpy(score, fused, n * sizeof *score);
    free(bm);
    free(fused);
    free(order);
}

/* --debug Q: the five best chunks for question Q and the scores of its relevant chunks. */
static void debug_print(const qa_set *set, const question *q, const double *score)
{
    double above = INFINITY;
    fprintf(stderr, "question: %s\n", q->text);
    for (int top = 0; top < 5; top++) {
        long best = -1;
        for (size_t c = 0; c < set->chunk_count; c++)
            if (score[c] < above && (best < 0 || score[c] > score[best])) best = (long)c;
        if (best < 0) break;
        const chunk_rec *r = &set->chunks[best];
        fprintf(stderr, "  %d. %.3f %s [%s] %zu bytes\n", top + 1, score[best],
                set->docs[r->doc], r->heading, r->embed_len);
        above = score[best];
    }
    for (size_t c = 0; c < set->chunk_count; c++) {
        const chunk_rec *r = &set->chunks[c];
        if (q->relevant[c])
            fprintf(stderr, "  relevant %.3f %s [%s] %zu bytes\n", score[c], set->docs[r->doc],
                    r->heading, r->embed_len);
    }
}

/* --pivot S:P: multiply each chunk's cosine by S*L / ((1 - S)*P + S*L), L the chunk's tf norm
 * (pivoted length normalisation as a re-ranking step; an experiment, not what ragd does). */
static double pivot_slope, pivot_at;

static scores embed_eval(const qa_set *set, const embed_local_params *p, double *embed_seconds)
{
    scores s = {0};
    size_t dims = (size_t)p->dims;
    float *vectors = xmalloc(set->chunk_count * dims * sizeof *vectors);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (size_t c = 0; c < set->chunk_count; c++)
        embed_local_vector_params(set->chunks[c].embed_text, set->chunks[c].embed_len, p,
                                  vectors + c * dims);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (embed_seconds)
        *embed_seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    float *qv = xmalloc(dims * sizeof *qv);
    double *score = xmalloc(set->chunk_count * sizeof *score);
    for (size_t qi = 0; qi < set->question_count; qi++) {
        const question *q = &set->questions[qi];
        embed_local_vector_params(q->text, strlen(q->text), p, qv);
        for (size_t c = 0; c < set->chunk_count; c++) {
            const float *v = vectors + c * dims;
            float dot = 0.0f;
            for (size_t i = 0; i < dims; i++) dot += v[i] * qv[i];
            score[c] = dot;
            if (pivot_slope > 0) {
                double ps = pivot_slope, pp = pivot_at;
                const chunk_rec *r = &set->chunks[c];
                double l = 0;
                for (size_t k = 0; k < r->term_count; k++) {
                    double w = 1 + log(r->tfs[k]);
                    l += w * w;
                }
                l = sqrt(l);
                score[c] *= ps * l / ((1 - ps) * pp + ps * l);
            }
        }
        if (hybrid) hybrid_fuse(set, q->text, score);
        if (debug_question == (long)qi) debug_print(set, q, score);
        scores_add(&s, rank_of(q, score, set->chunk_count));
    }
    free(score);
    free(qv);
    free(vectors);
    scores_finish(&s, set->question_count);
    return s;
}

/* ---- output ------------------------------------------------------------------------------- */

static qa_set sets[TUNE_MAX_SETS];
static size_t set_count;

static void table_header(const char *first)
{
    printf("| %s |", first);
    for (size_t i = 0; i < set_count; i++) printf(" %s R@1 | R@5 | MRR |", sets[i].name);
    printf(" mean R@5 | mean MRR |\n|---|");
    for (size_t i = 0; i < set_count; i++) printf("---:|---:|---:|");
    printf("---:|---:|\n");
}

static void table_row(const char *label, const scores *s)
{
    double r5 = 0, mrr = 0;
    printf("| %s |", label);
    for (size_t i = 0; i < set_count; i++) {
        printf(" %.3f | %.3f | %.3f |", s[i].r1, s[i].r5, s[i].mrr);
        r5 += s[i].r5;
        mrr += s[i].mrr;
    }
    printf(" %.3f | %.3f |\n", r5 / (double)set_count, mrr / (double)set_count);
    if (verbose) fprintf(stderr, " <- ranks per question: %s\n", label);
    fflush(stdout);
}

static void params_label(const embed_local_params *p, char *out, size_t n)
{
    int k = snprintf(out, n, "d=%d u=%.2f b=%.2f c=%.2f n=%d-%d%s%s%s%s", p->dims,
                     p->unigram_weight, p->bigram_weight, p->char_weight, p->char_min,
                     p->char_max, p->char_sublinear ? " char-log" : "",
                     p->stem ? "" : " nostem", p->stopwords ? "" : " nostop",
                     p->split_camel ? "" : " nocamel");
    if (p->length_weight > 0 && k > 0 && (size_t)k < n)
        snprintf(out + k, n - (size_t)k, " len=%.2f/%.0f", p->length_weight, p->length_pivot);
}

static int salt_count = 1;

static void run_config(const embed_local_params *params)
{
    embed_local_params copy = *params;
    embed_local_params *p = &copy;
    scores s[TUNE_MAX_SETS];
    char label[128];
    for (size_t i = 0; i < set_count; i++) {
        scores sum = {0};
        for (int k = 0; k < salt_count; k++) {
            p->salt = k == 0 ? 0 : 0x9e3779b97f4a7c15ULL * (uint64_t)k;
            scores one = embed_eval(&sets[i], p, NULL);
            sum.r1 += one.r1 / salt_count;
            sum.r5 += one.r5 / salt_count;
            sum.mrr += one.mrr / salt_count;
        }
        s[i] = sum;
    }
    p->salt = 0;
    params_label(p, label, sizeof label);
    if (hybrid) strncat(label, " + BM25 (RRF)", sizeof label - strlen(label) - 1);
    if (pivot_slope > 0) {
        size_t k = strlen(label);
        snprintf(label + k, sizeof label - k, " pivot %.2f:%.0f", pivot_slope, pivot_at);
    }
    table_row(label, s);
}

static void run_bm25(void)
{
    embed_local_params tok;
    embed_local_params_default(&tok, 512);
    scores s[TUNE_MAX_SETS];
    for (size_t i = 0; i < set_count; i++) s[i] = bm25_eval(&sets[i], &tok, 1.2, 0.75);
    table_row("BM25 k1=1.2 b=0.75", s);
}

static void run_speed(void)
{
    static const int dims_list[] = {256, 384, 512, 768, 1024};
    printf("\n### Embedding speed (chunks of every set, one thread)\n\n");
    printf("| dims | chunks (5 passes) | MB | seconds | MB/s | us/chunk |\n"
           "|---:|---:|---:|---:|---:|---:|\n");
    for (size_t k = 0; k < sizeof dims_list / sizeof dims_list[0]; k++) {
        embed_local_params p;
        embed_local_params_default(&p, dims_list[k]);
        float *v = xmalloc((size_t)p.dims * sizeof *v);
        size_t chunks = 0, bytes = 0;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int rep = 0; rep < 5; rep++)
            for (size_t i = 0; i < set_count; i++)
                for (size_t c = 0; c < sets[i].chunk_count; c++) {
                    embed_local_vector_params(sets[i].chunks[c].embed_text,
                                              sets[i].chunks[c].embed_len, &p, v);
                    chunks++;
                    bytes += sets[i].chunks[c].embed_len;
                }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double sec = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        printf("| %d | %zu | %.1f | %.3f | %.1f | %.1f |\n", p.dims, chunks, (double)bytes / 1e6,
               sec, (double)bytes / 1e6 / sec, sec / (double)chunks * 1e6);
        free(v);
    }

    /* Full-size chunks: all chunk texts back to back, cut into windows of 650 estimated
     * tokens (the chunker's target). */
    util_buf all = {0};
    for (size_t i = 0; i < set_count; i++)
        for (size_t c = 0; c < sets[i].chunk_count; c++)
            if (util_buf_append(&all, sets[i].chunks[c].embed_text, sets[i].chunks[c].embed_len) ||
                util_buf_append(&all, "\n\n", 2))
                die("out of memory");
    size_t *cuts = xmalloc((all.len / 64 + 2) * sizeof *cuts);
    size_t windows = 0, at = 0;
    cuts[0] = 0;
    while (at < all.len) {
        size_t len = 2600 < all.len - at ? 2600 : all.len - at;
        while (len < all.len - at && ingest_tokens_count(all.data + at, len) < 650) len += 64;
        while (len > 64 && ingest_tokens_count(all.data + at, len) > 650) len -= 16;
        at += len;
        cuts[++windows] = at;
    }
    printf("\n| dims | 650-token windows | avg bytes | us/window |\n|---:|---:|---:|---:|\n");
    for (size_t k = 0; k < sizeof dims_list / sizeof dims_list[0]; k++) {
        embed_local_params p;
        embed_local_params_default(&p, dims_list[k]);
        float *v = xmalloc((size_t)p.dims * sizeof *v);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int rep = 0; rep < 5; rep++)
            for (size_t w = 0; w < windows; w++)
                embed_local_vector_params(all.data + cuts[w], cuts[w + 1] - cuts[w], &p, v);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double sec = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        printf("| %d | %zu | %.0f | %.1f |\n", p.dims, windows, (double)all.len / (double)windows,
               sec / (double)(5 * windows) * 1e6);
        free(v);
    }
    free(cuts);
    util_buf_free(&all);
}

static void grid_full(void)
{
    static const int dims_list[] = {256, 384, 512, 768, 1024};
    static const float bigram_list[] = {0.0f, 0.25f, 0.5f};
    static const float char_list[] = {0.0f, 0.25f, 0.5f, 0.75f, 0.9f};
    printf("\n### Grid: dims x bigram weight x char n-gram weight (other settings default)\n\n");
    table_header("configuration");
    for (size_t d = 0; d < sizeof dims_list / sizeof dims_list[0]; d++)
        for (size_t b = 0; b < sizeof bigram_list / sizeof bigram_list[0]; b++)
            for (size_t c = 0; c < sizeof char_list / sizeof char_list[0]; c++) {
                embed_local_params p;
                embed_local_params_default(&p, dims_list[d]);
                p.bigram_weight = bigram_list[b];
                p.char_weight = char_list[c];
                run_config(&p);
            }
}

/* One change at a time from the defaults at the given dims. */
static void ablations(int dims)
{
    static const int ranges[][2] = {{2, 4}, {3, 4}, {3, 6}, {4, 6}};
    static const float lengths[][2] = {{0.5f, 2.0f}, {0.7f, 2.0f}, {0.9f, 2.0f}, {0.9f, 4.0f}};
    printf("\n### Ablations: one change from the defaults (dims %d)\n\n", dims);
    table_header("configuration");
    embed_local_params p;
    embed_local_params_default(&p, dims);
    run_config(&p);
    embed_local_params_default(&p, dims);
    p.stem = 0;
    run_config(&p);
    embed_local_params_default(&p, dims);
    p.stopwords = 0;
    run_config(&p);
    embed_local_params_default(&p, dims);
    p.stem = 0;
    p.stopwords = 0;
    run_config(&p);
    embed_local_params_default(&p, dims);
    p.split_camel = 0;
    run_config(&p);
    embed_local_params_default(&p, dims);
    p.char_sublinear = 1;
    run_config(&p);
    for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++) {
        embed_local_params_default(&p, dims);
        p.char_min = ranges[r][0];
        p.char_max = ranges[r][1];
        run_config(&p);
    }
    for (size_t r = 0; r < sizeof lengths / sizeof lengths[0]; r++) {
        embed_local_params_default(&p, dims);
        p.length_weight = lengths[r][0];
        p.length_pivot = lengths[r][1];
        run_config(&p);
    }
    static const int more_dims[] = {256, 384, 512, 768, 2048, 4096};
    for (size_t r = 0; r < sizeof more_dims / sizeof more_dims[0]; r++) {
        embed_local_params_default(&p, more_dims[r]);
        run_config(&p);
    }
}

int main(int argc, char **argv)
{
    char *pending[2 * TUNE_MAX_SETS];
    int pending_count = 0;
    const char *grid = "quick";
    int context = CONTEXT_TITLE_HEADING, speed = 0;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--grid") == 0 && i + 1 < argc) {
            grid = argv[++i];
        } else if (strcmp(argv[i], "--context") == 0 && i + 1 < argc) {
            i++;
            if (strcmp(argv[i], "title-heading") == 0) context = CONTEXT_TITLE_HEADING;
            else if (strcmp(argv[i], "heading-or-title") == 0) context = CONTEXT_HEADING_OR_TITLE;
            else if (strcmp(argv[i], "heading") == 0) context = CONTEXT_HEADING;
            else if (strcmp(argv[i], "none") == 0) context = CONTEXT_NONE;
            else die("unknown --context %s", argv[i]);
        } else if ((strcmp(argv[i], "--corpus") == 0 || strcmp(argv[i], "--qa") == 0) &&
                   i + 1 < argc) {
            /* --corpus DIR --qa FILE, the same as the positional pair */
            if (pending_count >= 2 * TUNE_MAX_SETS) die("too many sets");
            if ((argv[i][2] == 'c') != (pending_count % 2 == 0)) die("--corpus then --qa");
            pending[pending_count++] = argv[++i];
        } else if (strcmp(argv[i], "--salts") == 0 && i + 1 < argc) {
            salt_count = atoi(argv[++i]);
            if (salt_count < 1 || salt_count > 64) die("--salts must be 1..64");
        } else if (strcmp(argv[i], "--pivot") == 0 && i + 1 < argc) {
            if (sscanf(argv[++i], "%lf:%lf", &pivot_slope, &pivot_at) != 2) die("--pivot S:P");
        } else if (strcmp(argv[i], "--debug") == 0 && i + 1 < argc) {
            debug_question = atol(argv[++i]);
        } else if (strcmp(argv[i], "--hybrid") == 0) {
            hybrid = 1;
        } else if (strcmp(argv[i], "--verbose") == 0) {
            verbose = 1;
        } else if (strcmp(argv[i], "--speed") == 0) {
            speed = 1;
        } else {
            die("unknown option %s", argv[i]);
        }
    }
    if (pending_count > 0) {
        if (i != argc || pending_count % 2 != 0) die("--corpus and --qa come in pairs");
        argv = pending;
        argc = pending_count;
        i = 0;
    }
    if ((argc - i) < 2 || (argc - i) % 2 != 0 || (argc - i) / 2 > TUNE_MAX_SETS) {
        fprintf(stderr, "usage: embed_tune [--grid full|quick|none] [--context title-heading|"
                        "heading-or-title|heading|none] [--salts N] [--speed] [--pivot S:P] "
                        "[--hybrid] [--verbose] [--debug Q] CORPUS_DIR QA.jsonl "
                        "[CORPUS_DIR QA.jsonl ...]\n");
        return 2;
    }
    embed_local_params tokenizer;
    embed_local_params_default(&tokenizer, 512);
    for (; i + 1 < argc; i += 2) {
        qa_set *set = &sets[set_count++];
        set_load_corpus(set, argv[i], context, &tokenizer);
        set_load_questions(set, argv[i + 1]);
        fprintf(stderr, "embed_tune: %s: %zu documents, %zu chunks, %.2f MB, %zu questions\n",
                argv[i], set->doc_count, set->chunk_count, (double)set->corpus_bytes / 1e6,
                set->question_count);
    }

    printf("\n### Baseline and shipped defaults\n\n");
    table_header("configuration");
    run_bm25();
    embed_local_params p;
    embed_local_params_default(&p, RAGD_EMBED_TUNE_DIMS);
    run_config(&p);

    if (strcmp(grid, "full") == 0) {
        grid_full();
        ablations(RAGD_EMBED_TUNE_DIMS);
    } else if (strcmp(grid, "quick") == 0) {
        ablations(RAGD_EMBED_TUNE_DIMS);
    }
    if (speed) run_speed();
    for (size_t k = 0; k < set_count; k++) set_free(&sets[k]);
    return 0;
}
