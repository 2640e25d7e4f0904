/* SPDX-License-Identifier: MIT */
/*
 * store_hnsw_walk_int.h - ragd's own walk of a FAISS HNSW graph (src/store_hnsw_walk.cpp): the
 * same algorithm as FAISS 1.7.3's IndexHNSW::search (greedy descent on the upper levels, one
 * bounded beam at level 0, the same heaps and tie rules), so the results are FAISS's own (same
 * labels, same distances), but with the next neighbours' vectors prefetched, per-thread visited
 * marks by generation instead of a zeroed table per query, and no virtual call per distance.
 * It covers the layout ragd builds (IndexHNSWFlat whose storage is ragd's SIMD flat class, one
 * query, upper_beam 1, bounded queue, no reorder); anything else is left to FAISS. Private to
 * the store module.
 */
#ifndef RAGD_STORE_HNSW_WALK_INT_H
#define RAGD_STORE_HNSW_WALK_INT_H

#include "store_faiss_int.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Searches index (an IndexHNSW as above, or an IndexIDMap2 over one: labels are then mapped to
 * ids) for the k nearest of the one query x, as faiss_Index_search(_with_params) would: params
 * is NULL or a FaissSearchParametersHNSW (efSearch, selector). Fills distances and labels (k
 * each, FAISS's padding: label -1). Never throws.
 * Returns: 1 searched, 0 not covered (the caller asks FAISS; nothing was written), -1 failed
 * (out of memory, or the selector threw). */
int store_hnsw_walk_search(const FaissIndex *index, const float *x, int64_t k,
                           const FaissSearchParameters *params, float *distances,
                           int64_t *labels);

/* Turns the walk on (1) or off (0: every search is FAISS's own), process-wide; a negative on
 * only reads the setting. The default comes from RAGD_HNSW_WALK (0 turns it off; default on).
 * For tests and side-by-side benchmarks. Returns: the setting before the call. */
int store_hnsw_walk_enable(int on);

#ifdef __cplusplus
}
#endif

#endif
