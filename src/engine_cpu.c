/* SPDX-License-Identifier: MIT */
/*
 * engine_cpu.c - whether a hybrid retrieval may run its keyword side in a thread of its own
 * ([retrieve] parallel_sides auto). A second thread shortens a request only when a core is free
 * for it: measured on 2 cores, the parallel sides took a hybrid request's median from 1.07 to
 * 3.60 ms while other jobs kept both cores busy (bench/NOTES.md "Parallel sides"). So `auto`
 * runs them in parallel only while (1) fewer retrievals are in flight in this process than it has
 * CPUs and (2) the other processes of the machine left at least a core and a half free over the
 * last sample interval: one for the request's thread, half for its keyword side (/proc/stat's
 * idle time plus this process's own CPU time, read at most every ENGINE_CPU_SAMPLE_MS by
 * whichever request finds the sample stale; the others use the last value). Where /proc/stat
 * cannot be read, (1) decides alone.
 *
 * Session 4's rule counted this process's own work as busy (the machine left half a core idle):
 * under a steady hybrid load at concurrency 1 ragd's own two threads and its client then turned
 * the parallel sides off for themselves, and on again once sequential requests left a core idle.
 * Counting its own time as free keeps the decision on what it is meant to see, other jobs.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine_int.h"
#include "ragd/util.h"

#define ENGINE_CPU_SAMPLE_MS 200.0
#define ENGINE_CPU_FREE_MIN_MILLI 1500 /* the request's core and half a core for its keyword side */

void engine_cpu_init(engine_cpu *c)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    atomic_init(&c->free_milli, -1);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    c->online = online > 0 ? (int)online : 1;
}

void engine_cpu_destroy(engine_cpu *c)
{
    if (c != NULL) pthread_mutex_destroy(&c->mu);
}

int engine_cpu_stat_parse(const char *line, unsigned long long *idle, unsigned long long *total)
{
    unsigned long long v[8] = {0};
    if (strncmp(line, "cpu ", 4) != 0) return -1;
    int n = sscanf(line + 4, "%llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                   &v[3], &v[4], &v[5], &v[6], &v[7]);
    if (n < 4) return -1;
    /* user nice system idle iowait irq softirq steal; guest time is inside user already */
    *idle = v[3] + v[4];
    *total = 0;
    for (int i = 0; i < 8; i++) *total += v[i];
    return 0;
}

int engine_cpu_free_between(const engine_cpu_sample *s0, const engine_cpu_sample *s1, int cpus)
{
    if (s1->total <= s0->total || s1->idle < s0->idle || s1->own < s0->own || cpus < 1)
        return -1;
    unsigned long long dfree = (s1->idle - s0->idle) + (s1->own - s0->own);
    unsigned long long dtotal = s1->total - s0->total;
    if (dfree > dtotal) dfree = dtotal; /* own time and /proc/stat's are sampled apart */
    return (int)((double)dfree / (double)dtotal * cpus * 1000.0 + 0.5);
}

/* Returns: this process's CPU time (all threads) in /proc/stat's unit (USER_HZ ticks), or 0 when
 * it cannot be read (its time then counts as other processes', as before). */
static unsigned long long own_ticks(void)
{
    struct timespec ts;
    long hz = sysconf(_SC_CLK_TCK);
    if (hz <= 0 || clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) return 0;
    return (unsigned long long)(((double)ts.tv_sec + (double)ts.tv_nsec / 1e9) * (double)hz);
}

/* Reads the aggregate "cpu" line of /proc/stat. Returns: 0, or -1 when it cannot. */
static int stat_read(unsigned long long *idle, unsigned long long *total)
{
    FILE *f = fopen("/proc/stat", "re");
    if (f == NULL) return -1;
    char line[512];
    int rc = fgets(line, sizeof line, f) != NULL ? engine_cpu_stat_parse(line, idle, total) : -1;
    fclose(f);
    return rc;
}

int engine_cpu_free_milli(engine_cpu *c)
{
    double now = util_now_ms();
    /* One request refreshes a stale sample; the others read the last one without waiting. */
    if (pthread_mutex_trylock(&c->mu) == 0) {
        if (now - c->sampled_at >= ENGINE_CPU_SAMPLE_MS) {
            engine_cpu_sample s = {.own = own_ticks()};
            if (stat_read(&s.idle, &s.total) == 0) {
                if (c->sampled_at > 0.0)
                    atomic_store(&c->free_milli, engine_cpu_free_between(&c->last, &s, c->online));
                c->last = s;
            }
            c->sampled_at = now;
        }
        pthread_mutex_unlock(&c->mu);
    }
    return atomic_load(&c->free_milli);
}

int engine_sides_parallel(int setting, int searching, int cpus, int free_milli)
{
    if (setting != RAGD_CFG_BOOL_AUTO) return setting != 0;
    return searching < cpus && (free_milli < 0 || free_milli >= ENGINE_CPU_FREE_MIN_MILLI);
}
