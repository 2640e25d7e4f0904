/* SPDX-License-Identifier: MIT */
/*
 * embed_int.h - declarations private to the embed module: the parameters of the local
 * feature-hashing embedder (so bench/embed_tune.c can vary them) and its tokenizer/stemmer (so the
 * tuner's BM25 baseline sees exactly the terms the embedder sees), and the pure pieces of the
 * openai provider (batch packing, retry decisions, Retry-After parsing) for the unit tests.
 * Not a public contract.
 */
#ifndef RAGD_EMBED_INT_H
#define RAGD_EMBED_INT_H

#include <stddef.h>
#include <stdint.h>

#include "ragd/ragd.h"

/* The longest word (in bytes) that is stemmed and cut into character n-grams; longer words (URLs,
 * hashes) are hashed whole as unigrams, and their n-grams come from the first
 * RAGD_EMBED_WORD_MAX bytes. */
#define RAGD_EMBED_WORD_MAX 64

/* Character n-gram lengths are packed into one 64-bit word with the length: at most 7 bytes. */
#define RAGD_EMBED_CHAR_NGRAM_MAX 7

/* At most this many camelCase cuts per word are honoured (later parts stay joined). */
#define RAGD_EMBED_CAMEL_MAX 7

/* Everything that shapes a local embedding. Weights are the L2 masses of the three feature
 * blocks before the final normalisation: with the defaults (unigram 1, bigram 0, char 0.5) the
 * char n-grams hold 0.25 / 1.25 = 20% of the squared norm. A weight of 0 disables a block (and
 * skips its work). */
typedef struct embed_local_params {
    int dims;             /* 64..4096 */
    float unigram_weight; /* word stems */
    float bigram_weight;  /* consecutive kept stems */
    float char_weight;    /* character n-grams of each distinct word, with '<' '>' markers */
    int char_min;         /* shortest n-gram, 2..RAGD_EMBED_CHAR_NGRAM_MAX */
    int char_max;         /* longest n-gram, char_min..RAGD_EMBED_CHAR_NGRAM_MAX */
    int stem;             /* 1: light suffix stemming (see embed_local.c) */
    int stopwords;        /* 1: drop English stopwords from every feature kind */
    int char_sublinear;   /* 1: each distinct n-gram weighs 1 + ln(count); 0: count */
    /* Length prior (an experiment; 0 = off in ragd): dimension 0 is reserved and holds
     * b = length_weight * L / (L + length_pivot), L = sqrt(sum over stems of (1 + ln tf)^2); the
     * features keep sqrt(1 - b^2). Dot products then gain b_query * b_chunk, favouring longer
     * chunks, but scores stop being plain cosines: unrelated texts score > 0. */
    float length_weight;  /* 0..0.9 */
    float length_pivot;   /* > 0 */
    int split_camel; /* 1: "readFile" also yields the terms "read" and "file" */
    uint64_t salt;   /* 0 in ragd; the tuner averages over salts to measure past hash luck */
} embed_local_params;

/* Fills p with the shipped defaults for the given dims (the values docs/EMBEDDER.md justifies). */
void embed_local_params_default(embed_local_params *p, int dims);

/* Returns: 1 when p is usable (dims 64..4096, weights >= 0 and finite, n-gram range valid). */
int embed_local_params_valid(const embed_local_params *p);

/* The embedding of text[0..len) under p into out (p->dims floats): L2-normalised, or all zeros
 * when the text has no features. Pure function of its inputs; thread-safe (a thread that embeds
 * texts of 256 bytes or more keeps a word cache of about 540 KiB until it exits, which changes
 * no result). */
void embed_local_vector_params(const char *text, size_t len, const embed_local_params *p,
                               float *out);

/* Called once per kept term, in text order. term is the 64-bit hash of the (stemmed) word, the
 * same hash the unigram feature uses; stem[0..stem_len) is the normalised word (borrowed for the
 * call; at most RAGD_EMBED_WORD_MAX bytes, words longer than that are cut). */
typedef void (*embed_term_fn)(void *ctx, uint64_t term, const char *stem, size_t stem_len);

/* Runs the embedder's tokenizer over text[0..len) with p's stem and stopwords switches and calls
 * fn for each kept term. Used by the tuner's BM25 baseline. */
void embed_local_terms_each(const char *text, size_t len, const embed_local_params *p,
                            embed_term_fn fn, void *ctx);

/* Creates a local provider with explicit parameters (embed_local_new uses the defaults).
 * Returns: RAGD_OK and *out (new, free with embed_provider_free); RAGD_ERR_INVALID for bad p. */
struct embed_provider;
ragd_rc embed_local_new_params(const embed_local_params *p, struct embed_provider **out,
                               ragd_err *err);

/* ---- openai provider (src/embed_openai.c) ------------------------------------------------- */

/* The API's limits: inputs per request, tokens per request, tokens per input. */
#define RAGD_OPENAI_MAX_INPUTS 2048
#define RAGD_OPENAI_MAX_REQUEST_TOKENS 300000
#define RAGD_OPENAI_MAX_INPUT_TOKENS 8191

/* How many of the next n inputs (token bounds tokens[0..n)) go into one request: at least 1, at
 * most max_inputs, their tokens summing to at most max_tokens (a single input over max_tokens is
 * the caller's problem and is refused before packing). Returns: 0 only when n is 0. */
size_t embed_batch_pack(const size_t *tokens, size_t n, size_t max_inputs, size_t max_tokens);

/* What to do with a failed attempt. */
typedef enum embed_verdict {
    RAGD_EMBED_RETRY = 0, /* transient: try again after a delay */
    RAGD_EMBED_REFUSED,   /* the upstream said no for good: fail at once with its message */
    RAGD_EMBED_FAIL       /* not the upstream's refusal, but retrying cannot help */
} embed_verdict;

/* The verdict for an HTTP status with the reply's error.code / error.type (either may be NULL).
 * 408, 409, 429 (except insufficient_quota), 5xx: retry; 400, 401, 403, 404, 429
 * insufficient_quota and any other 4xx: refused. */
embed_verdict embed_status_verdict(long status, const char *code, const char *type);

/* The delay a reply asks for, in ms: retry-after-ms (milliseconds, may be fractional) wins over
 * Retry-After (seconds, or an HTTP date compared with now). Either may be NULL. Returns: -1 when
 * neither header gives a usable value. */
double embed_retry_after_ms(const char *retry_after_ms, const char *retry_after, int64_t now);

/* Exponential backoff with jitter for the attempt-th retry (1 = first): a random point in
 * [d/2, d] where d = min(cap_ms, base_ms * 2^(attempt-1)); random is uniform in [0, 1). */
double embed_backoff_ms(int attempt, double base_ms, double cap_ms, double random);

#endif
