/* SPDX-License-Identifier: MIT */
/*
 * store_simd_int.h - ragd's own FAISS index classes (src/store_faiss_simd.cpp): flat storage
 * whose exact search and distance computer use the run-time dispatched kernels of
 * include/ragd/simd.h instead of the scalar loops Debian's FAISS was compiled with. They are
 * installed into an index after it is created or read (the classes are subclasses of FAISS's
 * IndexFlatIP / IndexFlatL2 and write exactly FAISS's format). Private to the store module.
 */
#ifndef RAGD_STORE_SIMD_INT_H
#define RAGD_STORE_SIMD_INT_H

#include <faiss/c_api/Index_c.h>

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Replaces the flat storage inside index (an IndexIDMap2 over an IndexFlat, or over an IndexHNSW
 * whose storage is an IndexFlat; inner product or L2) by ragd's class holding the same vectors
 * (moved, not copied). Nothing happens when simd_level_get() is RAGD_SIMD_OFF, when the layout
 * is another one, or when the objects are not owned by their parents. Call it before the index
 * is shared with other threads. Never throws.
 * Returns: 1 installed, 0 left as it was, -1 out of memory (index left as it was). */
int store_simd_install(FaissIndex *index);

/* Sets the graph-build breadth (efConstruction) of index when it is an IndexHNSW (FAISS's
 * default is 40; wider builds a better-connected graph: higher recall at the same efSearch, at
 * a build cost roughly proportional to it). Only vectors added afterwards are affected; the
 * value is not part of FAISS's file format. Never throws.
 * Returns: 1 set, 0 not an HNSW index. */
int store_simd_hnsw_ef_construction(FaissIndex *index, int ef_construction);

/* Returns: 1 when index's flat storage is ragd's class (after store_simd_install). */
int store_simd_installed(const FaissIndex *index);

/* Shared passes of exact search (see src/store_faiss_simd.cpp): at most passes scans of one
 * index run at once (0: every search scans alone), each serving up to batch queries (1..64).
 * The defaults come from RAGD_FLAT_PASSES (the CPUs the process may run on) and
 * RAGD_FLAT_BATCH (16); a
 * negative passes or a batch below 1 keeps the current value. Process-wide; for tests and
 * benchmarks, not meant to race with searches. */
void store_simd_flat_limits(int passes, int batch);

/* Stores the current limits of the shared passes in *passes and *batch (resolving the defaults
 * on first use, as a search does). */
void store_simd_flat_limits_get(int *passes, int *batch);

/* hold 1: no new pass of index's flat storage starts (searches queue; passes running finish);
 * hold 0: undoes one hold, and the queued searches start in batches. For tests: lets a batch
 * of known size build up. Returns: 1 done, 0 the storage is not ragd's class. */
int store_simd_flat_hold(FaissIndex *index, int hold);

typedef struct store_simd_flat_stat {
    size_t pending;     /* searches queued now */
    uint64_t passes;    /* passes run so far (a lone search is a pass of one) */
    uint64_t queries;   /* queries served by them */
    uint64_t max_batch; /* the most queries one pass served */
} store_simd_flat_stat;

/* Fills out with index's pass counters. Returns: 1 done, 0 not ragd's class. */
int store_simd_flat_stats(const FaissIndex *index, store_simd_flat_stat *out);

#ifdef __cplusplus
}
#endif

#endif
