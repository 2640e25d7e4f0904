/* SPDX-License-Identifier: MIT */
/*
 * engine_cpu.c - whether a hybrid retrieval may run its keyword side in a thread of its own
 * ([retrieve] parallel_sides auto). A second thread shortens a request only when a core is free
 * for it: measured on 2 cores, the parallel sides took a hybrid request's median from 1.07 to
 * 3.60 ms while other jobs kept both cores busy (bench/NOTES.md "Parallel sides"). So `auto`
 * runs them in parallel only while (1) fewer retrievals are in flight in this process than it has
 * CPUs and (2) the machine as a whole left at least half a core idle over the last sample
 * interval (/proc/stat, read at most every ENGINE_CPU_SAMPLE_MS by whichever request finds the
 * sample stale; the others use the last value). Where /proc/stat cannot be read, (1) decides
 * alone.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "engine_int.h"
#include "ragd/util.h"

#define ENGINE_CPU_SAMPLE_MS 200.0
#define ENGINE_CPU_IDLE_MIN_MILLI 500 /* half a core */

void engine_cpu_init(engine_cpu *c)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    atomic_init(&c->idle_milli, -1);
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

int engine_cpu_idle_between(unsigned long long idle0, unsigned long long total0,
                            unsigned long long idle1, unsigned long long total1, int cpus)
{
    if (total1 <= total0 || idle1 < idle0 || cpus < 1) return -1;
    unsigned long long didle = idle1 - idle0, dtotal = total1 - total0;
    if (didle > dtotal) didle = dtotal;
    return (int)((double)didle / (double)dtotal * cpus * 1000.0 + 0.5);
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

int engine_cpu_idle_milli(engine_cpu *c)
{
    double now = util_now_ms();
    /* One request refreshes a stale sample; the others read the last one without waiting. */
    if (pthread_mutex_trylock(&c->mu) == 0) {
        if (now - c->sampled_at >= ENGINE_CPU_SAMPLE_MS) {
            unsigned long long idle = 0, total = 0;
            if (stat_read(&idle, &total) == 0) {
                if (c->sampled_at > 0.0)
                    atomic_store(&c->idle_milli,
                                 engine_cpu_idle_between(c->idle, c->total, idle, total,
                                                         c->online));
                c->idle = idle;
                c->total = total;
            }
            c->sampled_at = now;
        }
        pthread_mutex_unlock(&c->mu);
    }
    return atomic_load(&c->idle_milli);
}

int engine_sides_parallel(int setting, int searching, int cpus, int idle_milli)
{
    if (setting != RAGD_CFG_BOOL_AUTO) return setting != 0;
    return searching < cpus && (idle_milli < 0 || idle_milli >= ENGINE_CPU_IDLE_MIN_MILLI);
}
