/* SPDX-License-Identifier: MIT */
/*
 * bench_mhd.c - the HTTP floor: a minimal libmicrohttpd server started with the same daemon
 * flags, thread pool and connection memory limit as ragd's src/http_server.c, which reads each
 * POST body and answers 200 with a fixed JSON body of --reply-bytes bytes (default: about the
 * size of a k=10 /retrieve answer on the synthetic store) and a Content-Length. What ragd adds
 * on top of this (JSON parse, embed, search, SQLite fetch, JSON build) is its own cost.
 *
 * Usage: bench_mhd [--threads N] [--reply-bytes B]; prints "READY <port>" and serves until
 * SIGTERM/SIGINT.
 */
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *reply_body;
static size_t reply_len;
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **state)
{
    (void)cls;
    (void)url;
    (void)method;
    (void)version;
    (void)upload;
    if (*state == NULL) { /* first call: headers only */
        *state = conn;
        return MHD_YES;
    }
    if (*upload_size > 0) { /* body bytes: consume */
        *upload_size = 0;
        return MHD_YES;
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(reply_len, reply_body, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

int main(int argc, char **argv)
{
    unsigned threads = 4;
    size_t bytes = 4000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--threads") == 0) threads = (unsigned)atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--reply-bytes") == 0) bytes = (size_t)atol(argv[i + 1]);
    }
    reply_len = bytes < 16 ? 16 : bytes;
    reply_body = malloc(reply_len + 1);
    if (reply_body == NULL) return 1;
    memset(reply_body, ' ', reply_len);
    memcpy(reply_body, "{\"results\":[],", 14);
    reply_body[reply_len - 1] = '}';
    memcpy(reply_body + reply_len - 12, "\"pad\":\"\"", 8);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL_LINUX_ONLY | MHD_USE_ITC, 0, NULL, NULL,
        on_request, NULL, MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)30, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024), MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "bench_mhd: cannot start\n");
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    printf("READY %u\n", info ? (unsigned)info->port : 0u);
    fflush(stdout);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    while (!stop) pause();
    MHD_stop_daemon(d);
    free(reply_body);
    return 0;
}
