/* SPDX-License-Identifier: MIT */
/*
 * bench_g17.c - the cost of one double's "%.17g": glibc's snprintf against util_double_g17
 * (src/util.c, exact integer arithmetic, the same bytes), which ragd's JSON writer uses for every
 * real in a reply or a log line. Three sets of N doubles of the kinds a /retrieve reply carries:
 * scores in [0, 1) (53 random bits), vector scores (floats widened to double), and timings in
 * milliseconds (differences of two monotonic clock readings, as util_now_ms gives them, 1 us to
 * 50 ms). Each round formats every set with both, in turn (the order alternating from round to
 * round), timed in thread CPU time; the medians of the rounds are reported, in ns per double.
 * Also checks that both wrote the same bytes for every value (mismatches must be 0).
 *
 * Usage: bench_g17 [--n N] [--rounds R]      (defaults 200000 and 9)
 * Prints one JSON object.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ragd/util.h"

#include "bench_common.h"

#define SETS 3
static const char *const SET_NAMES[SETS] = {"scores", "float_scores", "timings_ms"};

static double thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Formats v[0..n) with snprintf ("%.17g") or util_double_g17. Returns: the bytes written, so the
 * work cannot be optimised away. */
static size_t format_all(const double *v, size_t n, int g17)
{
    char out[UTIL_G17_MAX];
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (g17)
            total += util_double_g17(v[i], out);
        else
            total += (size_t)snprintf(out, sizeof out, "%.17g", v[i]);
        total += (unsigned char)out[0];
    }
    return total;
}

int main(int argc, char **argv)
{
    size_t n = 200000;
    int rounds = 9;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--n") == 0)
            n = (size_t)strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--rounds") == 0)
            rounds = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: bench_g17 [--n N] [--rounds R]\n");
            return 2;
        }
    }
    if (n == 0 || rounds < 1) return 2;
    double *sets[SETS];
    uint64_t seed = 8;
    for (int s = 0; s < SETS; s++) {
        sets[s] = malloc(n * sizeof(double));
        if (sets[s] == NULL) return 1;
    }
    for (size_t i = 0; i < n; i++) {
        sets[0][i] = (double)(bench_rand(&seed) >> 11) * 0x1p-53;
        sets[1][i] = (double)(float)((double)(bench_rand(&seed) >> 11) * 0x1p-53);
        double start = 86400e3 * 3 + (double)(bench_rand(&seed) % 1000000000) / 1e6;
        double took = (double)(1000 + bench_rand(&seed) % 50000000) / 1e6;
        sets[2][i] = (start + took) - start;
    }
    size_t mismatches = 0;
    for (int s = 0; s < SETS; s++)
        for (size_t i = 0; i < n; i++) {
            char a[64], b[UTIL_G17_MAX];
            snprintf(a, sizeof a, "%.17g", sets[s][i]);
            util_double_g17(sets[s][i], b);
            mismatches += strcmp(a, b) != 0;
        }
    double *ns[SETS][2];
    for (int s = 0; s < SETS; s++)
        for (int m = 0; m < 2; m++) {
            ns[s][m] = malloc((size_t)rounds * sizeof(double));
            if (ns[s][m] == NULL) return 1;
        }
    size_t sink = 0;
    for (int r = 0; r < rounds; r++)
        for (int s = 0; s < SETS; s++)
            for (int k = 0; k < 2; k++) {
                int m = (r + k) % 2; /* 0 snprintf, 1 util_double_g17; first one, then the other */
                double t0 = thread_cpu_ns();
                sink += format_all(sets[s], n, m);
                ns[s][m][r] = (thread_cpu_ns() - t0) / (double)n;
            }
    printf("{\"n\":%zu,\"rounds\":%d,\"mismatches\":%zu,\"sink\":%zu,\"sets\":{", n, rounds,
           mismatches, sink % 10);
    for (int s = 0; s < SETS; s++) {
        double printf_ns = bench_pct(ns[s][0], (size_t)rounds, 50);
        double g17_ns = bench_pct(ns[s][1], (size_t)rounds, 50);
        printf("%s\"%s\":{\"snprintf_ns\":%.1f,\"g17_ns\":%.1f,\"ratio\":%.2f}", s ? "," : "",
               SET_NAMES[s], printf_ns, g17_ns, printf_ns / g17_ns);
    }
    printf("}}\n");
    for (int s = 0; s < SETS; s++) {
        free(sets[s]);
        free(ns[s][0]);
        free(ns[s][1]);
    }
    return mismatches != 0;
}
