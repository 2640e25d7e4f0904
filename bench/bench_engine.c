/* SPDX-License-Identifier: MIT */
/*
 * bench_engine.c - the HTTP floor: ragd's own connection engine (src/http_front.c, linked from
 * build/release/libragd.a: the same event loop, head checks, body reading, keep-alive and reply
 * writing as ragd) with a stand-in server that answers every request on the event loop with 200
 * and a fixed JSON body of --reply-bytes bytes (default: about the size of a k=10 /retrieve
 * answer on the synthetic store). No route, no worker pool, no engine: what ragd adds on top of
 * this (the hop to a worker, JSON parse, embed, search, SQLite fetch, JSON build) is its own cost.
 * It replaces bench_mhd.c (the floor of libmicrohttpd, which ragd no longer uses).
 *
 * Usage: bench_engine [--reply-bytes B]; prints "READY <port>" and serves until SIGTERM/SIGINT.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/http_int.h"

static char *reply_body;
static size_t reply_len;
static ragd_cfg bench_cfg;

/* The server's side, as src/http_server.c would have it, reduced to a fixed answer. */
int http_server_begin(http_server *s, http_exchange *x)
{
    x->server = s;
    x->cfg = &bench_cfg;
    x->route_name = "bench";
    return 0;
}

void http_server_run(http_server *s, http_exchange *x)
{
    (void)s;
    http_reply r = {.status = 200, .text = malloc(reply_len + 1),
                    .content_type = "application/json"};
    if (r.text) {
        memcpy(r.text, reply_body, reply_len);
        r.text[reply_len] = '\0';
    }
    http_exchange_reply(x, &r);
}

void http_server_end(http_server *s, http_exchange *x)
{
    (void)s;
    (void)x;
}

int main(int argc, char **argv)
{
    size_t bytes = 4000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--reply-bytes") == 0) bytes = (size_t)atol(argv[i + 1]);
        else if (strcmp(argv[i], "--threads") == 0) { /* bench_mhd's flag: one loop here */
        }
    }
    reply_len = bytes < 16 ? 16 : bytes;
    reply_body = malloc(reply_len + 1);
    if (reply_body == NULL) return 1;
    memset(reply_body, ' ', reply_len);
    memcpy(reply_body, "{\"results\":[],", 14);
    reply_body[reply_len - 1] = '}';
    memcpy(reply_body + reply_len - 12, "\"pad\":\"\"", 8);
    ragd_err err = {0};
    if (cfg_defaults_set(&bench_cfg, &err) != RAGD_OK) {
        fprintf(stderr, "bench_engine: %s\n", err.msg);
        return 1;
    }
    bench_cfg.listen_port = 0;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    http_front *f = NULL;
    if (http_front_new(&bench_cfg, NULL, &f, &err) != RAGD_OK ||
        http_front_run(f, NULL, &err) != RAGD_OK) {
        fprintf(stderr, "bench_engine: %s\n", err.msg);
        return 1;
    }
    printf("READY %d\n", http_front_port(f));
    fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
    http_front_free(f);
    cfg_free(&bench_cfg);
    free(reply_body);
    return 0;
}
