/* SPDX-License-Identifier: MIT */
/*
 * simd_dist.c - float32 inner product and squared L2 kernels at three levels (scalar, AVX2 + FMA,
 * AVX-512F), dispatched at run time with __builtin_cpu_supports so one binary runs on any x86-64
 * (and, scalar only, anywhere else). The vector index spends nearly all its time here: an exact
 * search computes one product per stored vector, an HNSW search or build a few thousand. The
 * vector loops keep four independent accumulators so the FMA latency is hidden; what is left of
 * d after the wide steps is done with a masked load (AVX-512) or a scalar tail.
 *
 * The active level lives in one atomic pointer to a table of kernels, resolved once
 * (pthread_once) from the CPU and RAGD_SIMD; simd_level_set swaps it (tests, benchmarks).
 */
#include "ragd/simd.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define RAGD_SIMD_X86 1
#include <immintrin.h>
#else
#define RAGD_SIMD_X86 0
#endif

typedef struct simd_kernels {
    simd_level level;
    float (*ip)(const float *, const float *, size_t);
    float (*l2sq)(const float *, const float *, size_t);
    void (*ip_many)(const float *, const float *, size_t, size_t, float *);
    void (*l2sq_many)(const float *, const float *, size_t, size_t, float *);
    void (*ip_batch)(const float *const *, size_t, const float *, size_t, size_t, float *);
    void (*l2sq_batch)(const float *const *, size_t, const float *, size_t, size_t, float *);
} simd_kernels;

/* The batch forms (several queries, one pass): row after row, every query against the row
 * while it is in L1, so the rows come from memory once for all the queries; each pair goes
 * through the same inline kernel as the single and _many forms, so the values are identical. */
#define RAGD_BATCH_KERNEL(attr, name, pair)                                                      \
    attr static void name(const float *const *qs, size_t nq, const float *base, size_t n,      \
                          size_t d, float *out)                                                 \
    {                                                                                            \
        for (size_t j = 0; j < n; j++)                                                           \
            for (size_t b = 0; b < nq; b++) out[b * n + j] = pair(qs[b], base + j * d, d);      \
    }

/* ---- scalar ------------------------------------------------------------------------------- */

/* Four partial sums, like the vector levels, so that the results differ from theirs only by
 * the rounding of a different summation order, and the loop pipelines on any CPU. */
static inline float ip_scalar_inline(const float *a, const float *b, size_t d)
{
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= d; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < d; i++) s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

static inline float l2sq_scalar_inline(const float *a, const float *b, size_t d)
{
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= d; i += 4) {
        float t0 = a[i] - b[i], t1 = a[i + 1] - b[i + 1];
        float t2 = a[i + 2] - b[i + 2], t3 = a[i + 3] - b[i + 3];
        s0 += t0 * t0;
        s1 += t1 * t1;
        s2 += t2 * t2;
        s3 += t3 * t3;
    }
    for (; i < d; i++) {
        float t = a[i] - b[i];
        s0 += t * t;
    }
    return (s0 + s1) + (s2 + s3);
}

static float ip_scalar(const float *a, const float *b, size_t d)
{
    return ip_scalar_inline(a, b, d);
}

static float l2sq_scalar(const float *a, const float *b, size_t d)
{
    return l2sq_scalar_inline(a, b, d);
}

static void ip_many_scalar(const float *q, const float *base, size_t n, size_t d, float *out)
{
    for (size_t i = 0; i < n; i++) out[i] = ip_scalar_inline(q, base + i * d, d);
}

static void l2sq_many_scalar(const float *q, const float *base, size_t n, size_t d, float *out)
{
    for (size_t i = 0; i < n; i++) out[i] = l2sq_scalar_inline(q, base + i * d, d);
}

RAGD_BATCH_KERNEL(, ip_batch_scalar, ip_scalar_inline)
RAGD_BATCH_KERNEL(, l2sq_batch_scalar, l2sq_scalar_inline)

static const simd_kernels kernels_scalar = {RAGD_SIMD_SCALAR, ip_scalar,       l2sq_scalar,
                                            ip_many_scalar,   l2sq_many_scalar, ip_batch_scalar,
                                            l2sq_batch_scalar};

#if RAGD_SIMD_X86
/* ---- AVX2 + FMA --------------------------------------------------------------------------- */

#define RAGD_AVX2 __attribute__((target("avx2,fma")))

RAGD_AVX2 static inline float hsum256(__m256 v)
{
    __m128 lo = _mm256_castps256_ps128(v);
    __m128 hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    __m128 sh = _mm_movehdup_ps(lo);
    __m128 s = _mm_add_ps(lo, sh);
    sh = _mm_movehl_ps(sh, s);
    s = _mm_add_ss(s, sh);
    return _mm_cvtss_f32(s);
}

RAGD_AVX2 static inline float ip_avx2_inline(const float *a, const float *b, size_t d)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= d; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= d; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float r = hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < d; i++) r += a[i] * b[i];
    return r;
}

RAGD_AVX2 static inline float l2sq_avx2_inline(const float *a, const float *b, size_t d)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= d; i += 32) {
        __m256 t0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        __m256 t1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
        __m256 t2 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16));
        __m256 t3 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24));
        s0 = _mm256_fmadd_ps(t0, t0, s0);
        s1 = _mm256_fmadd_ps(t1, t1, s1);
        s2 = _mm256_fmadd_ps(t2, t2, s2);
        s3 = _mm256_fmadd_ps(t3, t3, s3);
    }
    for (; i + 8 <= d; i += 8) {
        __m256 t = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        s0 = _mm256_fmadd_ps(t, t, s0);
    }
    float r = hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < d; i++) {
        float t = a[i] - b[i];
        r += t * t;
    }
    return r;
}

RAGD_AVX2 static float ip_avx2(const float *a, const float *b, size_t d)
{
    return ip_avx2_inline(a, b, d);
}

RAGD_AVX2 static float l2sq_avx2(const float *a, const float *b, size_t d)
{
    return l2sq_avx2_inline(a, b, d);
}

RAGD_AVX2 static void ip_many_avx2(const float *q, const float *base, size_t n, size_t d,
                                   float *out)
{
    for (size_t i = 0; i < n; i++) out[i] = ip_avx2_inline(q, base + i * d, d);
}

RAGD_AVX2 static void l2sq_many_avx2(const float *q, const float *base, size_t n, size_t d,
                                     float *out)
{
    for (size_t i = 0; i < n; i++) out[i] = l2sq_avx2_inline(q, base + i * d, d);
}

RAGD_BATCH_KERNEL(RAGD_AVX2, ip_batch_avx2, ip_avx2_inline)
RAGD_BATCH_KERNEL(RAGD_AVX2, l2sq_batch_avx2, l2sq_avx2_inline)

static const simd_kernels kernels_avx2 = {RAGD_SIMD_AVX2, ip_avx2,       l2sq_avx2,
                                          ip_many_avx2,   l2sq_many_avx2, ip_batch_avx2,
                                          l2sq_batch_avx2};

/* ---- AVX-512F ----------------------------------------------------------------------------- */

#define RAGD_AVX512 __attribute__((target("avx512f")))

RAGD_AVX512 static inline float ip_avx512_inline(const float *a, const float *b, size_t d)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    __m512 s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 64 <= d; i += 64) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
    }
    for (; i + 16 <= d; i += 16)
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    if (i < d) {
        /* The masked load reads only the d - i floats that exist. */
        __mmask16 m = (__mmask16)((1u << (d - i)) - 1u);
        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

RAGD_AVX512 static inline float l2sq_avx512_inline(const float *a, const float *b, size_t d)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    __m512 s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 64 <= d; i += 64) {
        __m512 t0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
        __m512 t1 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));
        __m512 t2 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32));
        __m512 t3 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48));
        s0 = _mm512_fmadd_ps(t0, t0, s0);
        s1 = _mm512_fmadd_ps(t1, t1, s1);
        s2 = _mm512_fmadd_ps(t2, t2, s2);
        s3 = _mm512_fmadd_ps(t3, t3, s3);
    }
    for (; i + 16 <= d; i += 16) {
        __m512 t = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
        s0 = _mm512_fmadd_ps(t, t, s0);
    }
    if (i < d) {
        __mmask16 m = (__mmask16)((1u << (d - i)) - 1u);
        __m512 t = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i));
        s1 = _mm512_fmadd_ps(t, t, s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

RAGD_AVX512 static float ip_avx512(const float *a, const float *b, size_t d)
{
    return ip_avx512_inline(a, b, d);
}

RAGD_AVX512 static float l2sq_avx512(const float *a, const float *b, size_t d)
{
    return l2sq_avx512_inline(a, b, d);
}

RAGD_AVX512 static void ip_many_avx512(const float *q, const float *base, size_t n, size_t d,
                                       float *out)
{
    for (size_t i = 0; i < n; i++) out[i] = ip_avx512_inline(q, base + i * d, d);
}

RAGD_AVX512 static void l2sq_many_avx512(const float *q, const float *base, size_t n, size_t d,
                                         float *out)
{
    for (size_t i = 0; i < n; i++) out[i] = l2sq_avx512_inline(q, base + i * d, d);
}

/* Two queries against two rows at once (four pairs): each 16-float step of a row and of a
 * query is loaded once for two pairs, so the loads per FMA halve (the per-pair kernels are bound
 * by their two loads per FMA once the rows are in cache). Each pair keeps the four accumulators
 * of ip_avx512_inline / l2sq_avx512_inline, fed in the same order, with the same tail and the
 * same final reduction: the four values are bit for bit those of the per-pair kernels. TERM(x, y)
 * is what a step multiplies: x * y for the inner product, (x - y)^2 for L2. */
#define RAGD_TILE_IP(acc, x, y) acc = _mm512_fmadd_ps(x, y, acc)
#define RAGD_TILE_L2(acc, x, y)                                                                  \
    do {                                                                                         \
        __m512 t_ = _mm512_sub_ps(x, y);                                                         \
        acc = _mm512_fmadd_ps(t_, t_, acc);                                                      \
    } while (0)
#define RAGD_TILE_STEP(TERM, k, off, LOAD)                                                       \
    do {                                                                                         \
        __m512 x0 = LOAD(q0 + (off)), x1 = LOAD(q1 + (off));                                     \
        __m512 y0 = LOAD(r0 + (off)), y1 = LOAD(r1 + (off));                                     \
        TERM(p00[k], x0, y0);                                                                    \
        TERM(p01[k], x0, y1);                                                                    \
        TERM(p10[k], x1, y0);                                                                    \
        TERM(p11[k], x1, y1);                                                                    \
    } while (0)
#define RAGD_TILE_SUM(p) _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(p[0], p[1]),        \
                                                            _mm512_add_ps(p[2], p[3])))
#define RAGD_TILE_KERNEL(name, TERM)                                                             \
    RAGD_AVX512 static inline void name(const float *q0, const float *q1, const float *r0,      \
                                        const float *r1, size_t d, float out[4])                 \
    {                                                                                            \
        __m512 p00[4], p01[4], p10[4], p11[4];                                                   \
        for (int k = 0; k < 4; k++)                                                              \
            p00[k] = p01[k] = p10[k] = p11[k] = _mm512_setzero_ps();                             \
        size_t i = 0;                                                                            \
        for (; i + 64 <= d; i += 64) {                                                           \
            RAGD_TILE_STEP(TERM, 0, i, _mm512_loadu_ps);                                         \
            RAGD_TILE_STEP(TERM, 1, i + 16, _mm512_loadu_ps);                                    \
            RAGD_TILE_STEP(TERM, 2, i + 32, _mm512_loadu_ps);                                    \
            RAGD_TILE_STEP(TERM, 3, i + 48, _mm512_loadu_ps);                                    \
        }                                                                                        \
        for (; i + 16 <= d; i += 16) RAGD_TILE_STEP(TERM, 0, i, _mm512_loadu_ps);                \
        if (i < d) {                                                                             \
            __mmask16 m = (__mmask16)((1u << (d - i)) - 1u);                                     \
            RAGD_TILE_STEP(TERM, 1, i, RAGD_TILE_MASKED);                                        \
        }                                                                                        \
        out[0] = RAGD_TILE_SUM(p00);                                                             \
        out[1] = RAGD_TILE_SUM(p01);                                                             \
        out[2] = RAGD_TILE_SUM(p10);                                                             \
        out[3] = RAGD_TILE_SUM(p11);                                                             \
    }
#define RAGD_TILE_MASKED(ptr) _mm512_maskz_loadu_ps(m, ptr)

RAGD_TILE_KERNEL(ip_tile_avx512, RAGD_TILE_IP)
RAGD_TILE_KERNEL(l2sq_tile_avx512, RAGD_TILE_L2)

/* The batch forms at AVX-512: two rows and two queries at a time through the tile kernel; an
 * odd last query or row goes through the per-pair kernel (the same values either way). */
#define RAGD_BATCH_TILED(name, tile, pair)                                                       \
    RAGD_AVX512 static void name(const float *const *qs, size_t nq, const float *base, size_t n, \
                                 size_t d, float *out)                                           \
    {                                                                                            \
        size_t j = 0;                                                                            \
        for (; j + 2 <= n; j += 2) {                                                             \
            const float *r0 = base + j * d, *r1 = r0 + d;                                        \
            size_t b = 0;                                                                        \
            for (; b + 2 <= nq; b += 2) {                                                        \
                float v[4];                                                                      \
                tile(qs[b], qs[b + 1], r0, r1, d, v);                                            \
                out[b * n + j] = v[0];                                                           \
                out[b * n + j + 1] = v[1];                                                       \
                out[(b + 1) * n + j] = v[2];                                                     \
                out[(b + 1) * n + j + 1] = v[3];                                                 \
            }                                                                                    \
            if (b < nq) {                                                                        \
                out[b * n + j] = pair(qs[b], r0, d);                                             \
                out[b * n + j + 1] = pair(qs[b], r1, d);                                         \
            }                                                                                    \
        }                                                                                        \
        if (j < n)                                                                               \
            for (size_t b = 0; b < nq; b++) out[b * n + j] = pair(qs[b], base + j * d, d);       \
    }

RAGD_BATCH_TILED(ip_batch_avx512, ip_tile_avx512, ip_avx512_inline)
RAGD_BATCH_TILED(l2sq_batch_avx512, l2sq_tile_avx512, l2sq_avx512_inline)

static const simd_kernels kernels_avx512 = {RAGD_SIMD_AVX512, ip_avx512,       l2sq_avx512,
                                            ip_many_avx512,   l2sq_many_avx512, ip_batch_avx512,
                                            l2sq_batch_avx512};
#endif

/* ---- dispatch ----------------------------------------------------------------------------- */

static _Atomic(const simd_kernels *) active;
static atomic_int installing = 1; /* 0 when the level is RAGD_SIMD_OFF */
static pthread_once_t resolve_once = PTHREAD_ONCE_INIT;

simd_level simd_level_best(void)
{
#if RAGD_SIMD_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return RAGD_SIMD_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return RAGD_SIMD_AVX2;
#endif
    return RAGD_SIMD_SCALAR;
}

/* Returns: the kernels of level (at most the CPU's best; OFF uses the scalar table for direct
 * calls, since FAISS's own kernels are not reachable from here). */
static const simd_kernels *kernels_for(simd_level level)
{
    simd_level best = simd_level_best();
    if (level > best) level = best;
#if RAGD_SIMD_X86
    if (level == RAGD_SIMD_AVX512) return &kernels_avx512;
    if (level == RAGD_SIMD_AVX2) return &kernels_avx2;
#endif
    return &kernels_scalar;
}

static void level_publish(simd_level level)
{
    atomic_store(&installing, level != RAGD_SIMD_OFF);
    atomic_store(&active, kernels_for(level == RAGD_SIMD_OFF ? RAGD_SIMD_SCALAR : level));
}

static void resolve(void)
{
    simd_level level = simd_level_best();
    const char *env = getenv("RAGD_SIMD");
    if (env != NULL && env[0] != '\0' && strcmp(env, "auto") != 0) {
        static const struct {
            const char *name;
            simd_level level;
        } names[] = {{"off", RAGD_SIMD_OFF},
                     {"scalar", RAGD_SIMD_SCALAR},
                     {"avx2", RAGD_SIMD_AVX2},
                     {"avx512", RAGD_SIMD_AVX512}};
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (strcmp(env, names[i].name) == 0 && names[i].level < level) level = names[i].level;
    }
    level_publish(level);
}

static const simd_kernels *kernels(void)
{
    pthread_once(&resolve_once, resolve);
    return atomic_load_explicit(&active, memory_order_acquire);
}

simd_level simd_level_get(void)
{
    const simd_kernels *k = kernels();
    return atomic_load(&installing) ? k->level : RAGD_SIMD_OFF;
}

simd_level simd_level_set(simd_level level)
{
    pthread_once(&resolve_once, resolve);
    level_publish(level);
    return simd_level_get();
}

const char *simd_level_name(simd_level level)
{
    switch (level) {
    case RAGD_SIMD_OFF: return "off";
    case RAGD_SIMD_SCALAR: return "scalar";
    case RAGD_SIMD_AVX2: return "avx2";
    case RAGD_SIMD_AVX512: return "avx512";
    }
    return "unknown";
}

float simd_dist_ip(const float *a, const float *b, size_t d)
{
    return kernels()->ip(a, b, d);
}

float simd_dist_l2sq(const float *a, const float *b, size_t d)
{
    return kernels()->l2sq(a, b, d);
}

void simd_dist_ip_many(const float *q, const float *base, size_t n, size_t d, float *out)
{
    kernels()->ip_many(q, base, n, d, out);
}

void simd_dist_l2sq_many(const float *q, const float *base, size_t n, size_t d, float *out)
{
    kernels()->l2sq_many(q, base, n, d, out);
}

void simd_dist_ip_batch(const float *const *qs, size_t nq, const float *base, size_t n, size_t d,
                        float *out)
{
    kernels()->ip_batch(qs, nq, base, n, d, out);
}

void simd_dist_l2sq_batch(const float *const *qs, size_t nq, const float *base, size_t n,
                          size_t d, float *out)
{
    kernels()->l2sq_batch(qs, nq, base, n, d, out);
}
