/* SPDX-License-Identifier: MIT */
/*
 * eval.h - `ragd eval --qa FILE.jsonl`: retrieval quality on a labeled question set (recall@1/5/10,
 * MRR, nDCG@10, the share of low-confidence answers, latency percentiles), against the store in
 * the data dir (read-only, safe beside a daemon) or a running daemon (--url). src/eval.c.
 */
#ifndef RAGD_EVAL_H
#define RAGD_EVAL_H

/* Runs the eval command with the arguments after "eval". Returns: the process exit code (0 ok,
 * 1 runtime error, 2 usage or configuration error). */
int eval_main(int argc, char **argv);

/* Returns: 1 when a result (source, heading) matches an expected entry: "source" (any chunk of
 * that document), "source#text" (a heading path containing text) or "source#=path" (exactly that
 * heading path); else 0. */
int eval_expected_match(const char *expected, const char *source, const char *heading);

#endif
