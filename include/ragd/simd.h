/* SPDX-License-Identifier: MIT */
/*
 * simd.h - float32 distance kernels (inner product, squared L2) for the vector index, chosen at
 * run time for the CPU: AVX-512F, AVX2 + FMA, or a portable scalar loop. Debian's FAISS is built
 * for baseline x86-64 and its own kernels are the scalar reference loops; ragd's index classes
 * (src/store_faiss_simd.cpp) call these instead. Every level returns the same value up to float
 * rounding (the sums are taken in another order).
 *
 * The level is resolved once, on first use: the best the CPU supports, capped by the environment
 * variable RAGD_SIMD (auto, avx512, avx2, scalar, or off: FAISS's own index classes and kernels,
 * as before ragd had its own; for side-by-side measurements). Thread-safe.
 */
#ifndef RAGD_SIMD_H
#define RAGD_SIMD_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum simd_level {
    RAGD_SIMD_OFF = 0,    /* ragd's kernels are not installed into FAISS at all */
    RAGD_SIMD_SCALAR = 1, /* portable C loops (any CPU) */
    RAGD_SIMD_AVX2 = 2,   /* AVX2 + FMA */
    RAGD_SIMD_AVX512 = 3  /* AVX-512F */
} simd_level;

/* Returns: the level in use (resolved on the first call). */
simd_level simd_level_get(void);

/* Returns: the best level this CPU supports (ignores RAGD_SIMD). */
simd_level simd_level_best(void);

/* Forces a level (tests, benchmarks): a level above the CPU's best is lowered to it.
 * Returns: the level now in use. Not meant to race with searches. */
simd_level simd_level_set(simd_level level);

/* Returns: a static name for level ("off", "scalar", "avx2", "avx512"). */
const char *simd_level_name(simd_level level);

/* Returns: the inner product of a and b, d floats each. */
float simd_dist_ip(const float *a, const float *b, size_t d);

/* Returns: the squared L2 distance between a and b, d floats each. */
float simd_dist_l2sq(const float *a, const float *b, size_t d);

/* out[i] = inner product of q with row i of base (n rows of d floats, contiguous), i < n. */
void simd_dist_ip_many(const float *q, const float *base, size_t n, size_t d, float *out);

/* out[i] = squared L2 distance of q to row i of base, i < n. */
void simd_dist_l2sq_many(const float *q, const float *base, size_t n, size_t d, float *out);

/* out[b * n + i] = inner product of qs[b] with row i of base, b < nq, i < n: several queries in
 * one pass over the rows (each row is read once for all of them). The same values as
 * simd_dist_ip_many gives each query. */
void simd_dist_ip_batch(const float *const *qs, size_t nq, const float *base, size_t n, size_t d,
                        float *out);

/* out[b * n + i] = squared L2 distance of qs[b] to row i of base; as simd_dist_ip_batch. */
void simd_dist_l2sq_batch(const float *const *qs, size_t nq, const float *base, size_t n,
                          size_t d, float *out);

#ifdef __cplusplus
}
#endif

#endif
