/* SPDX-License-Identifier: MIT */
/*
 * test_support.h - helpers shared by the unit tests: a fresh temporary directory per test, the
 * removal of a directory tree, and deterministic pseudo-random numbers and vectors. Header-only
 * (static functions) so each test binary stays one file.
 */
#ifndef RAGD_TEST_SUPPORT_H
#define RAGD_TEST_SUPPORT_H

#include <ftw.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Creates a new directory $TMPDIR/ragd-<name>-XXXXXX (TMPDIR defaults to /tmp) and writes its
 * path into buf. Returns: 0, or -1 when it cannot be created or does not fit. */
static inline int test_tmpdir_make(char *buf, size_t size, const char *name)
{
    const char *tmp = getenv("TMPDIR");
    int n = snprintf(buf, size, "%s/ragd-%s-XXXXXX", tmp != NULL && *tmp ? tmp : "/tmp", name);
    if (n < 0 || (size_t)n >= size) return -1;
    return mkdtemp(buf) != NULL ? 0 : -1;
}

static inline int test_tree_remove_entry(const char *path, const struct stat *sb, int flag,
                                         struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Writes text to the file dir/name, replacing it. Returns: 0, or -1 when the file cannot be
 * written completely. */
static inline int test_file_write(const char *dir, const char *name, const char *text)
{
    char path[4200];
    int n = snprintf(path, sizeof path, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof path) return -1;
    FILE *fp = fopen(path, "wb");
    if (fp == NULL) return -1;
    size_t len = strlen(text);
    size_t written = fwrite(text, 1, len, fp);
    return fclose(fp) == 0 && written == len ? 0 : -1;
}

/* Removes dir and everything below it (symlinks are removed, not followed).
 * Returns: 0, or -1 when something could not be removed. */
static inline int test_tree_remove(const char *dir)
{
    return nftw(dir, test_tree_remove_entry, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -1;
}

/* Returns: the next number of a xorshift64 sequence kept in *state (not 0; the same start gives
 * the same sequence). */
static inline uint64_t test_rand64(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

/* Fills out with n deterministic pseudo-random vectors of dims floats (the same seed gives the
 * same vectors), L2-normalised when unit is set. */
static inline void test_vectors_make(float *out, size_t n, int dims, uint32_t seed, int unit)
{
    uint32_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        double norm = 0;
        for (int j = 0; j < dims; j++) {
            s = s * 1664525u + 1013904223u;
            float v = (float)((double)(s >> 8) / (double)(1u << 24) - 0.5);
            out[i * (size_t)dims + (size_t)j] = v;
            norm += (double)v * v;
        }
        norm = sqrt(norm);
        if (unit)
            for (int j = 0; j < dims; j++) out[i * (size_t)dims + (size_t)j] /= (float)norm;
    }
}

#endif
