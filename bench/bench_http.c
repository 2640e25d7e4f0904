/* SPDX-License-Identifier: MIT */
/*
 * bench_http.c - a closed-loop HTTP/1.1 load client for the retrieve benchmarks: C threads, each
 * with one keep-alive loopback connection, send POST requests back to back and time each one
 * from the first byte written to the last byte of the body read. Requests are
 * {"query": <line i of the query file>, "k": K} (plus "filters": {"tags": ["even"]} with
 * --filter), so ragd embeds exactly the text bench_floor embedded. With --ids FILE and
 * --concurrency 1, the chunk_ids of each query's first answer are written (Q x K int64, -1
 * padded) to measure recall. Used
 * against ragd and against bench_engine (the HTTP floor) alike.
 *
 * --mode M adds "mode": M (vector, keyword, hybrid) and --ef-search N adds "ef_search": N to every
 * request: without --mode the daemon's default mode (hybrid) is what is timed.
 *
 * Usage: bench_http --port P --queries FILE --k K --concurrency C --requests N [--filter]
 *                   [--path /retrieve] [--ids FILE] [--mode M] [--ef-search N]
 * Prints one JSON object: latency percentiles (ms), requests/s, errors, and the means of the
 * server's own timings_ms (embed, search, fetch, total and the split: vector_search,
 * keyword_search, fusion, confidence, context) over the answers.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_common.h"

#define BUF_MAX (4 * 1024 * 1024)

#define TIMING_FIELDS 9
static const char *const timing_names[TIMING_FIELDS] = {
    "embed", "search", "fetch", "total", "vector_search", "keyword_search", "fusion",
    "confidence", "context"};

typedef struct client {
    int port, k, filter, nq, thread, threads, ef_search;
    const char *path, *mode;
    double timing_sum[TIMING_FIELDS]; /* server timings_ms summed over the answers */
    char **queries;
    long requests;   /* this thread's share */
    double *lat;     /* requests entries */
    long done, errors;
    int64_t *ids;    /* nq * k, or NULL */
} client;

static int connect_local(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads one response into buf. Returns: the HTTP status, body at *body (len *blen), or -1. */
static int read_response(int fd, char *buf, char **body, size_t *blen)
{
    size_t have = 0;
    char *end = NULL;
    while (end == NULL) {
        if (have >= BUF_MAX - 1) return -1;
        ssize_t r = read(fd, buf + have, BUF_MAX - 1 - have);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        have += (size_t)r;
        buf[have] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    int status = atoi(buf + 9);
    char *cl = strcasestr(buf, "\r\nContent-Length:");
    if (cl == NULL || cl > end) return -1;
    size_t want = strtoul(cl + 17, NULL, 10);
    size_t head = (size_t)(end + 4 - buf);
    if (head + want >= BUF_MAX) return -1;
    while (have < head + want) {
        ssize_t r = read(fd, buf + have, head + want - have);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        have += (size_t)r;
    }
    buf[head + want] = '\0';
    *body = buf + head;
    *blen = want;
    return status;
}

/* Appends s to out as a JSON string body (the query files hold plain ASCII). */
static size_t json_escape(char *out, const char *s)
{
    size_t n = 0;
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') out[n++] = '\\';
        out[n++] = *s;
    }
    return n;
}

static void ids_parse(const char *body, int64_t *out, int k)
{
    for (int i = 0; i < k; i++) out[i] = -1;
    const char *p = body;
    for (int i = 0; i < k && (p = strstr(p, "\"chunk_id\":")) != NULL; i++) {
        p += 11;
        out[i] = strtoll(p, NULL, 10);
    }
}

/* Adds the answer's timings_ms fields to sum. */
static void timings_parse(const char *body, double *sum)
{
    const char *t = strstr(body, "\"timings_ms\"");
    if (t == NULL) return;
    const char *end = strchr(t, '}'); /* the object is flat: its keys only, not the answer's */
    for (int i = 0; end != NULL && i < TIMING_FIELDS; i++) {
        char key[32];
        snprintf(key, sizeof key, "\"%s\":", timing_names[i]);
        const char *p = strstr(t, key);
        if (p != NULL && p < end) sum[i] += strtod(p + strlen(key), NULL);
    }
}

static void *client_run(void *arg)
{
    client *c = arg;
    char *buf = malloc(BUF_MAX);
    char *req = malloc(8192);
    if (buf == NULL || req == NULL) {
        c->errors = c->requests;
        free(buf);
        free(req);
        return NULL;
    }
    int fd = connect_local(c->port);
    for (long i = 0; i < c->requests; i++) {
        int q = (int)((i * c->threads + c->thread) % c->nq);
        char payload[2048];
        size_t p = (size_t)snprintf(payload, sizeof payload, "{\"query\":\"");
        p += json_escape(payload + p, c->queries[q]);
        p += (size_t)snprintf(payload + p, sizeof payload - p, "\",\"k\":%d%s", c->k,
                              c->filter ? ",\"filters\":{\"tags\":[\"even\"]}" : "");
        if (c->mode)
            p += (size_t)snprintf(payload + p, sizeof payload - p, ",\"mode\":\"%s\"", c->mode);
        if (c->ef_search > 0)
            p += (size_t)snprintf(payload + p, sizeof payload - p, ",\"ef_search\":%d",
                                  c->ef_search);
        p += (size_t)snprintf(payload + p, sizeof payload - p, "}");
        int hl = snprintf(req, 8192,
                          "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
                          "\r\nContent-Length: %zu\r\n\r\n%s", c->path, p, payload);
        double t = bench_now_ms();
        char *body = NULL;
        size_t blen = 0;
        int status = -1;
        for (int attempt = 0; attempt < 2 && status < 0; attempt++) {
            if (fd < 0) fd = connect_local(c->port);
            if (fd >= 0 && write_all(fd, req, (size_t)hl) == 0)
                status = read_response(fd, buf, &body, &blen);
            if (status < 0 && fd >= 0) {
                close(fd);
                fd = -1;
            }
        }
        double ms = bench_now_ms() - t;
        if (status != 200) {
            c->errors++;
            continue;
        }
        c->lat[c->done++] = ms;
        timings_parse(body, c->timing_sum);
        if (c->ids && i < c->nq && c->threads == 1) ids_parse(body, c->ids + (size_t)q * c->k, c->k);
    }
    if (fd >= 0) close(fd);
    free(buf);
    free(req);
    return NULL;
}

int main(int argc, char **argv)
{
    int port = 0, k = 10, conc = 1, filter = 0, ef_search = 0;
    long requests = 1000;
    const char *qfile = NULL, *path = "/retrieve", *ids_out = NULL, *mode = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--filter") == 0) { filter = 1; continue; }
        if (i + 1 >= argc) break;
        if (strcmp(argv[i], "--port") == 0) port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--queries") == 0) qfile = argv[++i];
        else if (strcmp(argv[i], "--k") == 0) k = atoi(argv[++i]);
        else if (strcmp(argv[i], "--concurrency") == 0) conc = atoi(argv[++i]);
        else if (strcmp(argv[i], "--requests") == 0) requests = atol(argv[++i]);
        else if (strcmp(argv[i], "--path") == 0) path = argv[++i];
        else if (strcmp(argv[i], "--ids") == 0) ids_out = argv[++i];
        else if (strcmp(argv[i], "--mode") == 0) mode = argv[++i];
        else if (strcmp(argv[i], "--ef-search") == 0) ef_search = atoi(argv[++i]);
    }
    if (port <= 0 || qfile == NULL || conc <= 0 || requests <= 0 || k <= 0) {
        fprintf(stderr, "usage: bench_http --port P --queries FILE --k K --concurrency C "
                        "--requests N [--filter] [--path P] [--ids FILE] [--mode M] [--ef-search N]\n");
        return 2;
    }
    size_t qlen = 0;
    char *qtext = bench_file_read(qfile, &qlen);
    if (qtext == NULL) {
        fprintf(stderr, "bench_http: cannot read %s\n", qfile);
        return 1;
    }
    char **queries = malloc(sizeof(char *) * (qlen + 1));
    int nq = 0;
    for (char *s = qtext, *e; s < qtext + qlen && (e = memchr(s, '\n', (size_t)(qtext + qlen - s))); s = e + 1) {
        *e = '\0';
        queries[nq++] = s;
    }
    /* Recall is read from a single-connection run, which sends every query in order. */
    int64_t *ids = ids_out && conc == 1 ? malloc(sizeof(int64_t) * (size_t)nq * (size_t)k) : NULL;
    for (size_t i = 0; ids && i < (size_t)nq * (size_t)k; i++) ids[i] = -1;
    client *cs = calloc((size_t)conc, sizeof *cs);
    pthread_t *th = calloc((size_t)conc, sizeof *th);
    for (int t = 0; t < conc; t++) {
        cs[t] = (client){.port = port, .k = k, .filter = filter, .nq = nq, .thread = t,
                         .threads = conc, .path = path, .queries = queries, .mode = mode,
                         .ef_search = ef_search,
                         .requests = requests / conc + (t < requests % conc),
                         .ids = t == 0 ? ids : NULL};
        cs[t].lat = malloc(sizeof(double) * (size_t)(cs[t].requests + 1));
    }
    double t0 = bench_now_ms();
    for (int t = 0; t < conc; t++) pthread_create(&th[t], NULL, client_run, &cs[t]);
    for (int t = 0; t < conc; t++) pthread_join(th[t], NULL);
    double wall = bench_now_ms() - t0;
    double *all = malloc(sizeof(double) * (size_t)(requests + 1));
    long n = 0, errors = 0;
    double timing[TIMING_FIELDS] = {0};
    for (int t = 0; t < conc; t++) {
        for (int i = 0; i < TIMING_FIELDS; i++) timing[i] += cs[t].timing_sum[i];
        memcpy(all + n, cs[t].lat, sizeof(double) * (size_t)cs[t].done);
        n += cs[t].done;
        errors += cs[t].errors;
        free(cs[t].lat);
    }
    double mean = 0;
    for (long i = 0; i < n; i++) mean += all[i];
    mean = n ? mean / (double)n : 0;
    double p50 = bench_pct(all, (size_t)n, 50), p95 = bench_pct(all, (size_t)n, 95),
           p99 = bench_pct(all, (size_t)n, 99);
    if (ids && bench_file_write(ids_out, ids, sizeof(int64_t) * (size_t)nq * (size_t)k) != 0)
        fprintf(stderr, "bench_http: cannot write %s\n", ids_out);
    printf("{\"concurrency\": %d, \"filter\": %s, \"requests\": %ld, \"errors\": %ld, "
           "\"p50_ms\": %.4f, \"p95_ms\": %.4f, \"p99_ms\": %.4f, \"mean_ms\": %.4f, "
           "\"rps\": %.1f, \"mode\": \"%s\", \"ef_search\": %d, \"server_ms\": {", conc,
           filter ? "true" : "false", n, errors, p50, p95, p99, mean, (double)n / (wall / 1e3),
           mode ? mode : "default", ef_search);
    for (int i = 0; i < TIMING_FIELDS; i++)
        printf("%s\"%s\": %.4f", i ? ", " : "", timing_names[i], n ? timing[i] / (double)n : 0.0);
    printf("}}\n");
    free(all);
    free(cs);
    free(th);
    free(ids);
    free(queries);
    free(qtext);
    return errors > 0 && n == 0 ? 1 : 0;
}
