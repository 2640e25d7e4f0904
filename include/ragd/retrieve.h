/* SPDX-License-Identifier: MIT */
/*
 * retrieve.h - ranking and context assembly on top of the engine's two searches (the FAISS
 * vector index and the SQLite FTS5 keyword index), as pure functions the engine calls and the
 * unit tests drive directly:
 *   - src/retrieve_fuse.c: query terms and the safe FTS5 MATCH expression, score fusion (RRF and
 *     relative-score), maximal marginal relevance, the lexical coverage behind `low_confidence`
 *     and the clarifying question;
 *   - src/retrieve_context.c: the token-budgeted context block with numbered source tags and its
 *     `sources` list (adjacent chunks of one document merged into one passage), per-intent
 *     settings, and the system-prompt template renderer behind POST /context.
 * docs/RETRIEVAL.md explains the scores and the measurements behind every default.
 */
#ifndef RAGD_RETRIEVE_H
#define RAGD_RETRIEVE_H

#include <stddef.h>
#include <stdint.h>

#include "ragd/cfg.h"
#include "ragd/ragd.h"
#include "ragd/store.h"

/* ---- modes ---------------------------------------------------------------------------------- */
/* 0 is "the configured one" in requests, so a zero-initialised engine_query uses the config. */
typedef enum retrieve_mode {
    RAGD_MODE_DEFAULT = 0,
    RAGD_MODE_VECTOR, /* the vector index only; score = cosine similarity */
    RAGD_MODE_KEYWORD,    /* BM25 only; score = bm25 / best bm25 of the query (0..1] */
    RAGD_MODE_HYBRID      /* both, fused */
} retrieve_mode;

typedef enum retrieve_fusion {
    RAGD_FUSION_DEFAULT = 0,
    RAGD_FUSION_RRF, /* reciprocal rank fusion */
    RAGD_FUSION_RELATIVE /* min-max normalised scores, weighted sum */
} retrieve_fusion;

#define RAGD_DIVERSITY_DEFAULT 0
#define RAGD_DIVERSITY_OFF 1
#define RAGD_DIVERSITY_ON 2

/* Returns: the mode or fusion for a name ("vector", "keyword", "hybrid"; "rrf", "relative"),
 * or 0 (RAGD_*_DEFAULT) when unknown. */
int retrieve_mode_parse(const char *name);
int retrieve_fusion_parse(const char *name);
/* Returns: the static name of a mode or fusion. */
const char *retrieve_mode_name(int mode);
const char *retrieve_fusion_name(int fusion);

/* ---- query terms ---------------------------------------------------------------------------- */
#define RAGD_TERMS_MAX 32

typedef struct retrieve_terms {
    char *items[RAGD_TERMS_MAX]; /* owned; lower-case words, distinct, stopwords dropped */
    size_t count;
    char *exprs[RAGD_TERMS_MAX]; /* owned; FTS5 group of items[i] with its lexical variants
                                  * (retrieve_terms_expand), NULL when it has none */
} retrieve_terms;

/* Splits text into search terms: runs of ASCII letters and digits and of non-ASCII letters
 * (punctuation, symbol and emoji blocks separate, as in FTS5's unicode61), lower-cased (ASCII), without one-character ASCII words and English stopwords,
 * each kept once, at most RAGD_TERMS_MAX. Returns: RAGD_OK and *out (free with
 * retrieve_terms_free), RAGD_ERR_NOMEM. */
ragd_rc retrieve_terms_split(const char *text, size_t len, retrieve_terms *out, ragd_err *err);
void retrieve_terms_free(retrieve_terms *t);

/* Adds lexical variants to t's terms (src/retrieve_lexical.c): compound and split forms
 * ("backup" / "back up" / "back-up", "e-mail" / "email"), numbers with units ("30 days" /
 * "30-day" / "30days", "24 hours" / "24h"), British / American spellings. text is the query the
 * terms came from (adjacent words are joined). Fills t->exprs. Returns: RAGD_OK, RAGD_ERR_NOMEM. */
ragd_rc retrieve_terms_expand(const char *text, size_t len, retrieve_terms *t, ragd_err *err);

/* Returns: new FTS5 expression for term i (free()): its group of variants, else its phrase;
 * NULL on OOM. */
char *retrieve_fts_term(const retrieve_terms *t, size_t i);

/* Returns: the FTS5 phrase for one term ("\"term\"", quotes doubled), new (free()), or NULL. */
char *retrieve_fts_phrase(const char *term);
/* Returns: an FTS5 MATCH expression that ORs every term as a quoted phrase ("\"a\" OR \"b\""),
 * new (free()); "" when there are no terms; NULL on OOM. User text never becomes FTS syntax. */
char *retrieve_fts_match(const retrieve_terms *t);

/* ---- fusion --------------------------------------------------------------------------------- */
typedef struct retrieve_cand {
    int64_t id;
    double vector_score; /* cosine; valid when vector_rank > 0 */
    double keyword_score; /* -bm25 (> 0); valid when keyword_rank > 0 */
    int vector_rank;      /* 1-based rank in the vector list; 0 = not in it */
    int keyword_rank;     /* 1-based rank in the keyword list; 0 = not in it */
    double score;         /* set by retrieve_fuse */
    size_t slot;          /* caller's index (where its hit lives) */
} retrieve_cand;

typedef struct retrieve_fuse_opts {
    int mode;             /* retrieve_mode */
    int fusion;           /* retrieve_fusion */
    double rrf_k;         /* RRF constant, > 0 (60) */
    double vector_weight; /* 0..1: share of the vector side (0.5 = equal) */
} retrieve_fuse_opts;

/* Scores every candidate for the mode (see RETRIEVAL.md "Scores") and sorts them best first
 * (ties: lower id first). Candidates the mode cannot see (no rank on its side) get score 0. */
void retrieve_fuse(retrieve_cand *c, size_t n, const retrieve_fuse_opts *o);

/* ---- diversity ------------------------------------------------------------------------------ */

/* Returns: the Jaccard similarity (0..1) of the word sets of two texts. */
double retrieve_text_similarity(const char *a, const char *b);

/* Maximal marginal relevance: picks up to k of the n candidates (relevance rel[i], text texts[i],
 * given best first), each time the one maximising lambda * rel / max(rel) - (1 - lambda) *
 * max similarity to those already picked. order receives the picked indexes in order.
 * Returns: the number picked (min(n, k)), or 0 on OOM (order untouched). */
size_t retrieve_mmr(const double *rel, const char *const *texts, size_t n, size_t k,
                    double lambda, size_t *order);

/* ---- confidence ----------------------------------------------------------------------------- */

/* Lexical coverage of the query by a passage: the IDF-weighted share of query terms found in
 * it, idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5)) over N chunks (a term found
 * nowhere weighs the most). covered[i] says whether term i is in the passage.
 * Returns: 0..1, or -1 when there are no terms (nothing to judge). */
double retrieve_coverage(size_t nterms, const int64_t *df, const int *covered, int64_t total);

/* Builds the clarifying question for a low-confidence answer from the query's uncovered terms
 * (missing[i]) and the headings nearest to the question (borrowed strings, "" skipped, may be
 * none). Returns: new string (free()), or NULL on OOM. */
char *retrieve_clarify_build(const retrieve_terms *t, const int *missing,
                             const char *const *headings, size_t nheadings);

/* ---- context -------------------------------------------------------------------------------- */
typedef struct retrieve_source {
    int n;                 /* tag number in the context, 1-based */
    const store_hit *hit;  /* borrowed: the first (best) chunk of the passage */
    char *heading;         /* owned: heading of the passage (first chunk's, or "" ) */
    int page;              /* page the passage starts on in a paged format (PDF); 0 = none */
    size_t ranks[8];       /* 1-based result ranks merged into this passage */
    size_t rank_count;
    int tokens;            /* tokens of the passage as put in the context */
    int truncated;         /* the passage was cut at a sentence end to fit the budget */
} retrieve_source;

typedef struct retrieve_context {
    char *text;                 /* owned; "" when nothing fits */
    retrieve_source *sources;   /* owned; in tag order */
    size_t source_count;
    int *result_n;              /* owned; per result: its tag number, 0 = not in the context */
    int tokens;                 /* estimated tokens of text */
} retrieve_context;

/* Builds the context from n results (hits best first): passages in rank order, adjacent chunks
 * of one document merged (merge != 0) into one passage with their overlap removed, each passage
 * tagged "[n] source > heading"; passages are added best first while max_tokens allows, a
 * passage that does not fit whole is cut after its last whole sentence that fits (never
 * mid-sentence) or left out. Returns: RAGD_OK and *out (free with retrieve_context_free). */
ragd_rc retrieve_context_build(const store_hit *const *hits, size_t n, int max_tokens, int merge,
                               retrieve_context *out, ragd_err *err);
void retrieve_context_free(retrieve_context *c);

/* Returns: the length of the longest prefix of text[0..len) that ends at a sentence end (after
 * ". ", "! ", "? ", a line break, or at len) and has at most max_tokens tokens; 0 when none. */
size_t retrieve_sentence_cut(const char *text, size_t len, int max_tokens);

/* ---- intents -------------------------------------------------------------------------------- */
typedef struct retrieve_intent {
    int retrieves;   /* 0: this intent gets no retrieval */
    int k;           /* 0: the request's k or [retrieve] default_k */
    int max_tokens;  /* 0: the request's or [retrieve] max_context_tokens */
} retrieve_intent;

/* Looks intent up in spec, the [intent] retrieve list: "name[:k[:max_context_tokens]]" entries
 * separated by commas or spaces. Returns: RAGD_OK and *out; RAGD_ERR_CONFIG with a message for a
 * malformed spec (also how cfg_validate checks it: pass intent NULL). */
ragd_rc retrieve_intent_find(const char *spec, const char *intent, retrieve_intent *out,
                             ragd_err *err);

/* ---- system prompt -------------------------------------------------------------------------- */

/* The built-in template: share/ragd/system_prompt.txt, compiled in (a unit test keeps the two
 * equal). Static. */
const char *retrieve_prompt_default(void);

typedef struct retrieve_prompt_vars {
    const char *persona;  /* [prompt] persona */
    const char *tools;    /* [prompt] tools: comma-separated names, may be "" */
    const char *context;  /* the context block, may be "" */
    const char *sources;  /* the numbered source list, may be "" */
    const char *question; /* the user's question */
    const char *clarify;  /* the clarifying question (low confidence), may be "" */
} retrieve_prompt_vars;

/* Renders tmpl: {{persona}}, {{tools}} (a "- name" line per tool, or "(none)"), {{context}},
 * {{sources}}, {{question}}, {{clarify}}; sections {{#has_context}}...{{/has_context}},
 * {{#no_context}}...{{/no_context}}, {{#has_tools}}...{{/has_tools}},
 * {{#no_tools}}...{{/no_tools}} are kept or dropped. An unknown placeholder or an unclosed
 * section is RAGD_ERR_INVALID naming it. Returns: RAGD_OK and *out new (free()). */
ragd_rc retrieve_prompt_render(const char *tmpl, const retrieve_prompt_vars *v, char **out,
                               ragd_err *err);

#endif
