/* SPDX-License-Identifier: MIT */
/*
 * bench_common.h - small helpers shared by the C benchmark programs in bench/ (never part of
 * ragd): a deterministic random source, percentiles, whole-file binary I/O. Header-only, static.
 */
#ifndef RAGD_BENCH_COMMON_H
#define RAGD_BENCH_COMMON_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* splitmix64: a deterministic stream from a seed. */
static inline uint64_t bench_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Fills v with dims standard normal floats (Box-Muller) and L2-normalises it. */
static inline void bench_unit_vector(uint64_t *s, float *v, int dims)
{
    double norm = 0;
    for (int j = 0; j < dims; j += 2) {
        double u1 = ((double)(bench_rand(s) >> 11) + 1.0) / 9007199254740993.0;
        double u2 = (double)(bench_rand(s) >> 11) / 9007199254740992.0;
        double r = sqrt(-2.0 * log(u1));
        v[j] = (float)(r * cos(2 * M_PI * u2));
        if (j + 1 < dims) v[j + 1] = (float)(r * sin(2 * M_PI * u2));
    }
    for (int j = 0; j < dims; j++) norm += (double)v[j] * v[j];
    norm = sqrt(norm);
    for (int j = 0; j < dims; j++) v[j] = (float)(v[j] / norm);
}

static inline double bench_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int bench_dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v in place. Returns: the p-th percentile (nearest rank), 0 when n is 0. */
static inline double bench_pct(double *v, size_t n, double p)
{
    if (n == 0) return 0;
    qsort(v, n, sizeof *v, bench_dbl_cmp);
    size_t i = (size_t)llround(p / 100.0 * (double)(n - 1));
    return v[i < n ? i : n - 1];
}

/* Reads a whole binary file. Returns: new buffer (free()) and *len, or NULL. */
static inline void *bench_file_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) return NULL;
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return NULL;
    }
    long n = ftell(f);
    rewind(f);
    void *buf = n > 0 ? malloc((size_t)n) : NULL;
    if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* Writes len bytes to path. Returns: 0 or -1. */
static inline int bench_file_write(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL) return -1;
    int ok = fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok ? 0 : -1;
}

#endif
