/* SPDX-License-Identifier: MIT */
/*
 * main.c - the `ragd` command line: serve (with its signals: SIGTERM/SIGINT drain and stop,
 * SIGHUP reopens the event log and reloads live settings), ingest, query, check-config, health.
 * Each subcommand loads the configuration (defaults < file < environment < flags), opens the
 * engine, and maps failures to exit codes: 0 ok, 1 runtime error, 2 usage or configuration error,
 * 3 ingest finished with per-file errors.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "ragd/cfg.h"
#include "ragd/cfg_snapshot.h"
#include "ragd/engine.h"
#include "ragd/eval.h"
#include "ragd/finetune.h"
#include "ragd/store_migrate.h"
#include "ragd/http.h"
#include "ragd/http_client.h"
#include "ragd/log.h"
#include "ragd/log_event.h"
#include "ragd/util.h"

#define EVENT_LOG_QUEUE_LINES 4096
#define HEALTH_TIMEOUT_S 5L

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2, EXIT_PARTIAL = 3 };

static const char usage_main[] =
    "ragd " RAGD_VERSION " - a retrieval-augmented generation sidecar: ingest docs, retrieve context\n"
    "\n"
    "usage: ragd <command> [options]\n"
    "\n"
    "commands:\n"
    "  serve          run the HTTP daemon (default 127.0.0.1:8088)\n"
    "  ingest         ingest a file or directory into the store\n"
    "  query          retrieve the chunks that answer a question\n"
    "  check-config   print the effective configuration (secrets redacted)\n"
    "  health         ask a running daemon for /health; exit 1 when down or unreachable\n"
    "  eval           measure retrieval quality on a labeled question set (--qa FILE.jsonl)\n"
    "  finetune       check or convert the fine-tune dataset (check FILE | convert FILE --to ...)\n"
    "  redteam        run the red-team prompts through a daemon's chat endpoint (--url URL)\n"
    "  migrate        copy the store to the other backend (--to pgvector|faiss), no re-embedding\n"
    "\n"
    "options for every command:\n"
    "  --config FILE      INI configuration file (default: $RAGD_CONFIG, else built-in defaults)\n"
    "  --data-dir DIR     store directory (default var/vectorstore)\n"
    "  --log-level LEVEL  debug | info | warn | error\n"
    "  -h, --help         help for the command\n"
    "  --version          print the version\n"
    "\n"
    "`ragd <command> --help` describes a command. Exit codes: 0 ok, 1 runtime error,\n"
    "2 usage or configuration error, 3 ingest finished with per-file errors.\n";

static const char usage_serve[] =
    "usage: ragd serve [--listen HOST:PORT] [--no-ingest] [--config FILE] [--data-dir DIR]\n"
    "                  [--log-level LEVEL]\n"
    "\n"
    "Runs the HTTP API (GET /health, POST /retrieve, POST /ingest). Unless --no-ingest is given or\n"
    "[ingest] on_start is false, the [ingest] paths (default: docs) are ingested in the background\n"
    "at start; retrievals are answered meanwhile. SIGINT/SIGTERM stop it cleanly (requests in\n"
    "flight finish within [server] shutdown_timeout); SIGHUP reopens the log file and reloads the\n"
    "settings that can change live.\n"
    "\n"
    "  --listen HOST:PORT  address to bind (default 127.0.0.1:8088; port 0 is refused)\n"
    "  --no-ingest         do not ingest the configured paths at start\n";

static const char usage_ingest[] =
    "usage: ragd ingest --path PATH [--reset] [--collection NAME] [--json] [--config FILE]\n"
    "                   [--data-dir DIR]\n"
    "\n"
    "Ingests a file or directory incrementally: unchanged files are skipped, changed ones\n"
    "replaced, files gone from the directory removed. Formats, by extension: .md .markdown .txt\n"
    ".html .htm .xhtml .rst .rest .pdf .docx .odt .xlsx .ods .csv .tsv ([ingest] include and\n"
    "exclude narrow the set). If a daemon serves the data dir, the ingest is sent to it over HTTP.\n"
    "\n"
    "  --path PATH  file or directory to ingest (required)\n"
    "  --reset      empty the collection first\n"
    "  --collection NAME  the collection to ingest into (default: default)\n"
    "  --json       print the ingest report as JSON on stdout\n";

static const char usage_query[] =
    "usage: ragd query TEXT [-k N] [--min-score X] [--collection NAME] [--json] [--config FILE]\n"
    "                  [--data-dir DIR]\n"
    "\n"
    "Retrieves the chunks that best answer TEXT from the store (read-only; safe beside a running\n"
    "daemon).\n"
    "\n"
    "  -k N           number of results (default [retrieve] default_k)\n"
    "  --min-score X  drop results scoring below X (-1..1)\n"
    "  --collection NAME  search this collection (default: default)\n"
    "  --json         print the same JSON as POST /retrieve\n";

static const char usage_health[] =
    "usage: ragd health [--url URL] [--config FILE]\n"
    "\n"
    "Asks a running daemon for GET /health and prints the JSON document. Exit 0 when the status is\n"
    "ok or degraded, 1 when it is down or the daemon does not answer (for scripts and probes).\n"
    "\n"
    "  --url URL  the daemon's base URL (default http://<[server] listen>)\n";

static const char usage_migrate[] =
    "usage: ragd migrate --to pgvector|faiss [--database-url URL] [--config FILE] [--data-dir DIR]\n"
    "\n"
    "Copies the store to the other backend: every collection's documents and chunks, and the\n"
    "embeddings they use, by content hash. Nothing is embedded again. --to pgvector copies the\n"
    "faiss store in the data dir into Postgres ([store] database_url, or --database-url; schema\n"
    "[store] pg_schema); --to faiss copies Postgres into the data dir. Safe to re-run: unchanged\n"
    "documents are skipped, documents gone from the source are removed from the target. Ends by\n"
    "comparing the document and chunk counts of every collection (exit 1 when they differ).\n"
    "Stop a daemon writing either side first.\n"
    "\n"
    "  --to BACKEND        pgvector or faiss: the backend to copy into\n"
    "  --database-url URL  the Postgres database (libpq URI; default [store] database_url)\n";

static const char usage_check[] =
    "usage: ragd check-config [--config FILE] [--data-dir DIR]\n"
    "\n"
    "Loads the configuration as `serve` would and prints the effective values as INI, secrets\n"
    "redacted. Exits 2 with FILE:LINE: message when the configuration is invalid.\n";

/* Options shared by every subcommand plus the subcommand's own. */
typedef struct cli {
    const char *command;
    const char *config_path;
    const char *data_dir;
    const char *log_level;
    const char *listen;
    const char *path;
    const char *query;
    const char *min_score;
    const char *url;
    const char *collection;
    const char *to, *database_url; /* migrate */
    int k;
    int reset, json, no_ingest;
} cli;

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ragd: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nrun `ragd --help` for usage\n");
    va_end(ap);
    return EXIT_USAGE;
}

static const char *command_usage(const char *command)
{
    if (strcmp(command, "serve") == 0) return usage_serve;
    if (strcmp(command, "ingest") == 0) return usage_ingest;
    if (strcmp(command, "query") == 0) return usage_query;
    if (strcmp(command, "check-config") == 0) return usage_check;
    if (strcmp(command, "migrate") == 0) return usage_migrate;
    if (strcmp(command, "health") == 0) return usage_health;
    return NULL;
}

/* Parses argv after the command. Returns: -1 to go on, or an exit code (help printed = 0). */
static int cli_parse(cli *c, int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        char name[64];
        const char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
        if (eq) {
            size_t n = (size_t)(eq - a);
            if (n >= sizeof name) return usage_error("unknown option '%s'", a);
            memcpy(name, a, n);
            name[n] = '\0';
            val = eq + 1;
            a = name;
        }
#define TAKE_VALUE()                                                                              \
    do {                                                                                          \
        if (val == NULL) {                                                                        \
            if (i + 1 >= argc) return usage_error("option %s needs a value", a);                  \
            val = argv[++i];                                                                      \
        }                                                                                         \
    } while (0)
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(command_usage(c->command), stdout);
            return EXIT_OK;
        } else if (strcmp(a, "--config") == 0) {
            TAKE_VALUE();
            c->config_path = val;
        } else if (strcmp(a, "--data-dir") == 0) {
            TAKE_VALUE();
            c->data_dir = val;
        } else if (strcmp(a, "--log-level") == 0) {
            TAKE_VALUE();
            c->log_level = val;
        } else if (strcmp(c->command, "serve") == 0 && strcmp(a, "--listen") == 0) {
            TAKE_VALUE();
            c->listen = val;
        } else if (strcmp(c->command, "health") == 0 && strcmp(a, "--url") == 0) {
            TAKE_VALUE();
            c->url = val;
        } else if (strcmp(c->command, "serve") == 0 && strcmp(a, "--no-ingest") == 0 && !eq) {
            c->no_ingest = 1;
        } else if (strcmp(c->command, "ingest") == 0 && strcmp(a, "--path") == 0) {
            TAKE_VALUE();
            c->path = val;
        } else if (strcmp(c->command, "ingest") == 0 && strcmp(a, "--reset") == 0 && !eq) {
            c->reset = 1;
        } else if ((strcmp(c->command, "ingest") == 0 || strcmp(c->command, "query") == 0) &&
                   strcmp(a, "--json") == 0 && !eq) {
            c->json = 1;
        } else if (strcmp(c->command, "query") == 0 &&
                   (strcmp(a, "-k") == 0 || strcmp(a, "--k") == 0)) {
            TAKE_VALUE();
            char *end = NULL;
            errno = 0;
            long k = strtol(val, &end, 10);
            if (errno || end == val || *end || k < 1 || k > INT_MAX)
                return usage_error("-k needs a positive integer, got '%s'", val);
            c->k = (int)k;
        } else if ((strcmp(c->command, "ingest") == 0 || strcmp(c->command, "query") == 0) &&
                   strcmp(a, "--collection") == 0) {
            TAKE_VALUE();
            if (!engine_collection_valid(val))
                return usage_error("--collection needs a name of 1..64 ASCII letters, digits, "
                                   "'_', '-' or '.' (not starting with '.'), got '%s'", val);
            c->collection = val;
        } else if (strcmp(c->command, "migrate") == 0 && strcmp(a, "--to") == 0) {
            TAKE_VALUE();
            if (strcmp(val, "pgvector") != 0 && strcmp(val, "faiss") != 0)
                return usage_error("--to needs pgvector or faiss, got '%s'", val);
            c->to = val;
        } else if (strcmp(c->command, "migrate") == 0 && strcmp(a, "--database-url") == 0) {
            TAKE_VALUE();
            c->database_url = val;
        } else if (strcmp(c->command, "query") == 0 && strcmp(a, "--min-score") == 0) {
            TAKE_VALUE();
            c->min_score = val;
        } else if (strcmp(c->command, "query") == 0 && a[0] != '-' && c->query == NULL) {
            c->query = a;
        } else if (a[0] == '-') {
            return usage_error("unknown option '%s' for this command", argv[i]);
        } else {
            return usage_error("unexpected argument '%s'", a);
        }
#undef TAKE_VALUE
    }
    return -1;
}

/* Loads the configuration (file, environment) and applies the flags over it, as at start-up and
 * on SIGHUP. Returns: RAGD_OK with *cfg filled, or an error (cfg left freed). */
static ragd_rc config_build(const cli *c, ragd_cfg *cfg, ragd_err *err)
{
    const char *path = c->config_path;
    if (path == NULL) {
        const char *env = getenv("RAGD_CONFIG");
        if (env && env[0]) path = env;
    }
    ragd_rc rc = cfg_load(cfg, path, err);
    if (rc == RAGD_OK && c->data_dir)
        rc = cfg_key_set(cfg, "store", "data_dir", c->data_dir, "--data-dir", err);
    if (rc == RAGD_OK && c->listen)
        rc = cfg_key_set(cfg, "server", "listen", c->listen, "--listen", err);
    if (rc == RAGD_OK && c->log_level)
        rc = cfg_key_set(cfg, "log", "level", c->log_level, "--log-level", err);
    if (rc == RAGD_OK) rc = cfg_validate(cfg, err);
    if (rc != RAGD_OK) cfg_free(cfg);
    return rc;
}

/* Loads the configuration and applies the flags. Returns: -1 to go on, or an exit code. */
static int config_load(const cli *c, ragd_cfg *cfg)
{
    ragd_err err = {0};
    ragd_rc rc = config_build(c, cfg, &err);
    if (rc != RAGD_OK) {
        fprintf(stderr, "ragd: %s\n", err.msg);
        cfg_free(cfg);
        return EXIT_USAGE;
    }
    ragd_log_level level = RAGD_LOG_INFO;
    if (log_level_parse(cfg->log_level, &level) == 0) log_level_set(level);
    return -1;
}

static int exit_for(ragd_rc rc)
{
    return rc == RAGD_ERR_CONFIG || rc == RAGD_ERR_INVALID ? EXIT_USAGE : EXIT_RUNTIME;
}

/* ---- migrate ------------------------------------------------------------------------------ */

/* Builds the configuration of one side of a migration: the loaded one with backend set.
 * Returns: RAGD_OK and *out (cfg_free), or an error. */
static ragd_rc migrate_side(const cli *c, const char *backend, ragd_cfg *out, ragd_err *err)
{
    ragd_rc rc = config_build(c, out, err);
    if (rc != RAGD_OK) return rc;
    rc = cfg_key_set(out, "store", "vector_backend", backend, "ragd migrate", err);
    if (rc == RAGD_OK && c->database_url)
        rc = cfg_key_set(out, "store", "database_url", c->database_url, "--database-url", err);
    if (rc == RAGD_OK && strcmp(backend, "pgvector") == 0 && out->database_url[0] == '\0')
        rc = ragd_err_set(err, RAGD_ERR_CONFIG, "migrate needs the Postgres database: "
                          "--database-url URL or [store] database_url");
    if (rc != RAGD_OK) cfg_free(out);
    return rc;
}

static int cmd_migrate(const ragd_cfg *cfg, const cli *c)
{
    if (c->to == NULL) return usage_error("%s", "migrate needs --to pgvector or --to faiss");
    long pid = 0;
    char listen[128];
    if (engine_lock_owner(cfg->data_dir, &pid, listen, sizeof listen)) {
        fprintf(stderr, "ragd: data dir %s is in use by ragd pid %ld; stop it before migrating\n",
                cfg->data_dir, pid);
        return EXIT_RUNTIME;
    }
    const char *from = strcmp(c->to, "pgvector") == 0 ? "faiss" : "pgvector";
    ragd_cfg src_cfg, dst_cfg;
    ragd_err err = {0};
    if (migrate_side(c, from, &src_cfg, &err) != RAGD_OK) {
        fprintf(stderr, "ragd: %s\n", err.msg);
        return EXIT_USAGE;
    }
    if (migrate_side(c, c->to, &dst_cfg, &err) != RAGD_OK) {
        cfg_free(&src_cfg);
        fprintf(stderr, "ragd: %s\n", err.msg);
        return EXIT_USAGE;
    }
    embed_provider *embedder = NULL;
    store *src = NULL, *dst = NULL;
    store_stats st = {0};
    store_migrate_report rep;
    ragd_rc rc = embed_provider_new(cfg, &embedder, &err);
    if (rc == RAGD_OK) rc = store_open(&src_cfg, 1, &src, &err);
    if (rc == RAGD_OK) rc = store_stats_get(src, &st, &err);
    /* the source must hold the configured model: its embeddings are the vectors */
    if (rc == RAGD_OK && st.chunks > 0)
        rc = store_model_check(src, embedder->model, embedder->dims, &err);
    if (rc == RAGD_OK) rc = store_open(&dst_cfg, 0, &dst, &err);
    if (rc == RAGD_OK) rc = store_model_check(dst, embedder->model, embedder->dims, &err);
    if (rc == RAGD_OK) rc = store_vectors_open(dst, embedder->model, embedder->dims, 0, &err);
    if (rc == RAGD_OK)
        rc = store_migrate_run(src, dst, embedder->model, embedder->dims, &rep, &err);
    store_close(dst);
    store_close(src);
    embed_provider_free(embedder);
    cfg_free(&src_cfg);
    cfg_free(&dst_cfg);
    if (rc != RAGD_OK) {
        fprintf(stderr, "ragd: migrate to %s failed: %s\n", c->to, err.msg);
        return exit_for(rc);
    }
    json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:{s:I, s:I, s:I, s:I, s:I, s:I}, s:b}",
                          "from", from, "to", c->to, "collections", (json_int_t)rep.collections,
                          "documents", (json_int_t)rep.documents, "chunks",
                          (json_int_t)rep.chunks, "copied", "documents",
                          (json_int_t)rep.documents_copied, "chunks",
                          (json_int_t)rep.chunks_copied, "embeddings",
                          (json_int_t)rep.embeddings_copied, "unchanged",
                          (json_int_t)rep.documents_unchanged, "removed",
                          (json_int_t)rep.documents_removed, "chunks_without_embedding",
                          (json_int_t)rep.chunks_without_embedding, "verified", 1);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    printf("%s\n", text ? text : "{}");
    free(text);
    json_decref(o);
    return EXIT_OK;
}

/* ---- serve -------------------------------------------------------------------------------- */

typedef struct startup_ingest {
    http_server *server;
    const ragd_cfg *cfg;
} startup_ingest;

/* The start-up ingest of the configured paths, each as an ingest job of the server (a request
 * meanwhile gets 409 with its job_id; the job logs and records its report). */
static void *startup_ingest_run(void *arg)
{
    startup_ingest *si = arg;
    for (size_t i = 0; i < si->cfg->ingest_path_count; i++) {
        const char *p = si->cfg->ingest_paths[i];
        if (access(p, F_OK) != 0) {
            RAGD_LOG(RAGD_LOG_WARN, "ingest", "configured ingest path %s does not exist; skipped",
                     p);
            continue;
        }
        ragd_err err = {0};
        if (http_server_ingest_job(si->server, p, &err) != RAGD_OK) {
            RAGD_LOG(RAGD_LOG_ERROR, "ingest", "ingest of %s failed: %s", p, err.msg);
            if (err.rc == RAGD_ERR_UNAVAILABLE) break; /* shutting down */
        }
    }
    return NULL;
}

/* SIGHUP: reopens the event log, then re-reads the configuration (file, environment, flags)
 * and publishes a new snapshot with the keys that can change live (requests in flight keep the
 * one they started with); names the changed keys that need a restart. */
static void serve_reload(cfg_live *live, const cli *c, log_event *events)
{
    log_event_reopen(events);
    ragd_cfg fresh, next;
    ragd_err err = {0};
    if (config_build(c, &fresh, &err) != RAGD_OK) {
        RAGD_LOG(RAGD_LOG_ERROR, "main", "SIGHUP: configuration not reloaded, keeping the running "
                 "one: %s", err.msg);
        return;
    }
    util_buf applied = {0}, restart = {0};
    const ragd_cfg *cur = cfg_live_acquire(live);
    ragd_rc rc = cfg_reload_build(cur, &fresh, &next, &applied, &restart, &err);
    cfg_live_release(cur);
    cfg_free(&fresh);
    if (rc == RAGD_OK) {
        ragd_log_level level;
        if (log_level_parse(next.log_level, &level) == 0) log_level_set(level);
        rc = cfg_live_publish(live, &next, &err);
        cfg_free(&next); /* zeroed by a publish; freed when it failed */
    }
    if (rc != RAGD_OK) {
        RAGD_LOG(RAGD_LOG_ERROR, "main", "SIGHUP: configuration not reloaded, keeping the running "
                 "one: %s", err.msg);
    } else {
        if (applied.len == 0 && restart.len == 0)
            RAGD_LOG(RAGD_LOG_INFO, "main", "SIGHUP: log file reopened; configuration unchanged");
        if (applied.len > 0)
            RAGD_LOG(RAGD_LOG_INFO, "main", "SIGHUP: applied live: %s", applied.data);
        if (restart.len > 0)
            RAGD_LOG(RAGD_LOG_WARN, "main", "SIGHUP: changed but not live, restart to apply: %s",
                     restart.data);
    }
    util_buf_free(&applied);
    util_buf_free(&restart);
}

/* The thread that takes signals with sigwait (cmd_serve). */
static pthread_t signal_thread;

/* Runs only in a thread that does not block the signal: one a library started before cmd_serve
 * set the mask (OpenBLAS starts its pool when it is loaded). Without a handler the default action
 * would end the process there, skipping the drain; instead the signal goes to the waiting thread.
 * pthread_kill is async-signal-safe. */
static void signal_forward(int sig)
{
    pthread_kill(signal_thread, sig);
}

static int cmd_serve(ragd_cfg *cfg, const cli *c)
{
    /* Signals are taken synchronously by this thread; every other thread inherits the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal_thread = pthread_self();
    struct sigaction forward;
    memset(&forward, 0, sizeof forward);
    forward.sa_handler = signal_forward;
    sigfillset(&forward.sa_mask);
    sigaction(SIGINT, &forward, NULL);
    sigaction(SIGTERM, &forward, NULL);
    sigaction(SIGHUP, &forward, NULL);

    engine *e = NULL;
    ragd_err err = {0};
    if (engine_open(cfg, 0, &e, &err) != RAGD_OK) {
        fprintf(stderr, "ragd: %s\n", err.msg);
        return exit_for(err.rc);
    }
    log_event *events = NULL;
    if (cfg->log_file[0] != '\0' &&
        log_event_open(cfg->log_file, EVENT_LOG_QUEUE_LINES, &events, &err) != RAGD_OK) {
        fprintf(stderr, "ragd: %s\n", err.msg);
        engine_close(e);
        return exit_for(err.rc);
    }
    log_event_global_set(events);
    http_server *server = NULL;
    cfg_live *live = cfg_live_new(cfg);
    if (live == NULL) ragd_err_set(&err, RAGD_ERR_NOMEM, "out of memory");
    if (live == NULL || http_server_start(e, cfg, live, &server, &err) != RAGD_OK) {
        fprintf(stderr, "ragd: %s\n", err.msg);
        cfg_live_free(live);
        log_event_close(events);
        engine_close(e);
        return exit_for(err.rc);
    }
    engine_listen_note(e, cfg->listen_host, cfg->listen_port);
    RAGD_LOG(RAGD_LOG_INFO, "main", "ragd %s listening on http://%s:%d (data dir %s, rag %s)",
             RAGD_VERSION, cfg->listen_host, cfg->listen_port, cfg->data_dir,
             cfg->rag_enabled ? "enabled" : "disabled");

    startup_ingest si = {.server = server, .cfg = cfg};
    pthread_t ingest_thread;
    int ingesting = 0;
    if (!c->no_ingest && cfg->ingest_on_start && cfg->ingest_path_count > 0)
        ingesting = pthread_create(&ingest_thread, NULL, startup_ingest_run, &si) == 0;

    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0) continue;
        if (sig == SIGHUP) {
            serve_reload(live, c, events);
            continue;
        }
        RAGD_LOG(RAGD_LOG_INFO, "main", "%s received: shutting down",
                 sig == SIGINT ? "SIGINT" : "SIGTERM");
        break;
    }
    if (http_server_stop(server) < 0) {
        /* An ingest is still inside one document: SQLite keeps every committed document and
         * the index is rebuilt from it at the next start, so leaving now loses nothing. */
        RAGD_LOG(RAGD_LOG_ERROR, "main", "exiting without saving the index; it is rebuilt from "
                 "SQLite at the next start");
        log_event_flush(events);
        _exit(EXIT_RUNTIME);
    }
    if (ingesting) pthread_join(ingest_thread, NULL);
    engine_close(e);
    cfg_live_free(live);
    log_event_global_set(NULL);
    log_event_close(events);
    RAGD_LOG(RAGD_LOG_INFO, "main", "stopped");
    return EXIT_OK;
}

/* ---- ingest ------------------------------------------------------------------------------- */

static void progress_print(void *ctx, size_t done, size_t total, const char *relative)
{
    int tty = *(int *)ctx;
    if (!tty) {
        fprintf(stderr, "ingest: %zu/%zu %s\n", done, total, relative);
        return;
    }
    int width = 30, filled = total ? (int)((double)done / (double)total * width) : width;
    char bar[32];
    for (int i = 0; i < width; i++) bar[i] = i < filled ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\r\033[K[%s] %zu/%zu %.40s", bar, done, total, relative);
    if (done == total) fputc('\n', stderr);
    fflush(stderr);
}

static void report_print(const engine_ingest_report *r, FILE *out)
{
    fprintf(out,
            "ingested %s%s in %.0f ms\n"
            "  documents: %lld seen, %lld added, %lld updated, %lld unchanged, %lld removed, "
            "%lld failed\n"
            "  chunks:    %lld added, %lld removed, %lld embedded, %lld deduplicated\n",
            r->root, r->reset ? " (after reset)" : "", r->duration_ms, (long long)r->docs_seen,
            (long long)r->docs_added, (long long)r->docs_updated, (long long)r->docs_unchanged,
            (long long)r->docs_removed, (long long)r->docs_failed, (long long)r->chunks_added,
            (long long)r->chunks_removed, (long long)r->chunks_embedded,
            (long long)r->chunks_deduplicated);
    for (size_t i = 0; i < r->error_count; i++)
        fprintf(out, "  error: %s: %s (%s)\n", r->errors[i].source, r->errors[i].message,
                r->errors[i].code);
    for (size_t i = 0; i < r->warning_count; i++)
        fprintf(out, "  warning: %s: %s\n", r->warnings[i].source, r->warnings[i].message);
    for (size_t i = 0; i < r->ocr_count; i++) {
        fprintf(out, "  ocr: %s: page%s", r->ocr[i].source, r->ocr[i].page_count > 1 ? "s" : "");
        for (size_t k = 0; k < r->ocr[i].page_count; k++)
            fprintf(out, "%s%d", k ? ", " : " ", r->ocr[i].pages[k]);
        fprintf(out, " (mean confidence %.0f)\n", r->ocr[i].mean_confidence);
    }
}

/* Sends the ingest to the daemon that holds the data dir as a background job and follows it
 * through GET /jobs/{id}, showing progress (a bar on a terminal, lines otherwise).
 * Returns: an exit code. */
static int ingest_forward(const ragd_cfg *cfg, const cli *c, long pid, const char *listen)
{
    char *abs = realpath(c->path, NULL);
    if (abs == NULL) {
        fprintf(stderr, "ragd: %s: %s\n", c->path, strerror(errno));
        return EXIT_RUNTIME;
    }
    fprintf(stderr, "ragd: the data dir is served by ragd (pid %ld) at %s; sending the ingest "
            "there\n", pid, listen);
    json_t *req = json_pack("{s:s, s:b, s:b}", "path", abs, "reset", c->reset, "wait", 0);
    if (req && c->collection) json_object_set_new(req, "collection", json_string(c->collection));
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    free(abs);
    char base[300];
    snprintf(base, sizeof base, "http://%s", listen);
    http_client *client = http_client_new(base, cfg->auth_token, 0);
    long status = 0;
    json_t *o = NULL;
    ragd_err err = {0};
    int code = EXIT_RUNTIME;
    ragd_rc rc = body && client ? http_client_call(client, "POST", "/ingest", body, &status, &o,
                                                   NULL, &err)
                                : ragd_err_set(&err, RAGD_ERR_NOMEM, "out of memory");
    free(body);
    if (rc != RAGD_OK) {
        fprintf(stderr, "ragd: data dir is locked by ragd pid %ld, and its HTTP API at %s did not "
                "answer: %s\n", pid, listen, err.msg);
        goto out;
    }
    if (status != 202) {
        fprintf(stderr, "ragd: the daemon refused the ingest (HTTP %ld): %s\n", status,
                http_client_error_message(o, "no JSON answer"));
        goto out;
    }
    char job[64], path[96];
    snprintf(job, sizeof job, "%s", json_string_value(json_object_get(o, "job_id")));
    snprintf(path, sizeof path, "/jobs/%s", job);
    int tty = isatty(STDERR_FILENO);
    json_int_t last_done = -1;
    for (;;) {
        json_decref(o);
        o = NULL;
        if ((rc = http_client_call(client, "GET", path, NULL, &status, &o, NULL, &err)) !=
                RAGD_OK ||
            status != 200) {
            fprintf(stderr, "ragd: lost track of ingest job %s at %s (%s)\n", job, listen,
                    rc != RAGD_OK ? err.msg : "job not found");
            goto out;
        }
        json_t *p = json_object_get(o, "progress");
        json_int_t done = json_integer_value(json_object_get(p, "files_done"));
        json_int_t total = json_integer_value(json_object_get(p, "files_total"));
        const char *state = json_string_value(json_object_get(o, "state"));
        if (done != last_done && total > 0) {
            progress_print(&tty, (size_t)done, (size_t)total, "");
            last_done = done;
        }
        if (state == NULL || strcmp(state, "running") != 0) break;
        struct timespec pause = {0, 250 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    json_t *report = json_object_get(o, "report");
    if (!json_is_object(report)) {
        const char *msg = json_string_value(json_object_get(json_object_get(o, "error"),
                                                            "message"));
        fprintf(stderr, "ragd: ingest failed: %s\n", msg ? msg : "unknown error");
        goto out;
    }
    json_int_t failed = json_integer_value(json_object_get(json_object_get(report, "documents"),
                                                            "failed"));
    char *text = json_dumps(report, c->json ? JSON_COMPACT : JSON_INDENT(2));
    printf("%s\n", text ? text : "{}");
    free(text);
    code = failed > 0 ? EXIT_PARTIAL : EXIT_OK;
out:
    json_decref(o);
    http_client_free(client);
    return code;
}

static int cmd_ingest(const ragd_cfg *cfg, const cli *c)
{
    if (c->path == NULL) return usage_error("%s", "ingest needs --path PATH");
    long pid = 0;
    char listen[128];
    if (engine_lock_owner(cfg->data_dir, &pid, listen, sizeof listen)) {
        if (listen[0]) return ingest_forward(cfg, c, pid, listen);
        fprintf(stderr, "ragd: data dir %s is in use by another ragd process (pid %ld) that "
                "serves no HTTP API; wait for it to finish\n", cfg->data_dir, pid);
        return EXIT_RUNTIME;
    }
    /* a batch process that exits: page faults and CPU matter more than a few MiB of RSS */
    store_grow_huge_pages(1);
    embed_local_word_cache(1);
    store_writer_cache_set(RAGD_STORE_WRITER_CACHE_BATCH_KIB);
    engine *e = NULL;
    ragd_err err = {0};
    if (engine_open(cfg, c->reset ? RAGD_ENGINE_RESETTING : 0, &e, &err) != RAGD_OK) {
        fprintf(stderr, "ragd: %s\n", err.msg);
        return exit_for(err.rc);
    }
    int tty = isatty(STDERR_FILENO);
    engine_ingest_report r;
    engine_ingest_opts io = {.path = c->path, .reset = c->reset, .progress = progress_print,
                             .progress_ctx = &tty, .collection = c->collection,
                             .no_lock_waiters = 1};
    ragd_rc rc = engine_ingest_run(e, &io, &r, &err);
    engine_close(e);
    if (rc != RAGD_OK) {
        fprintf(stderr, "ragd: ingest failed: %s\n", err.msg);
        return EXIT_RUNTIME;
    }
    if (c->json) {
        char *text = engine_ingest_report_json(&r);
        printf("%s\n", text ? text : "{}");
        free(text);
    } else {
        report_print(&r, stdout);
    }
    int code = r.docs_failed > 0 ? EXIT_PARTIAL : EXIT_OK;
    engine_ingest_report_free(&r);
    return code;
}

/* ---- query -------------------------------------------------------------------------------- */

static int cmd_query(const ragd_cfg *cfg, const cli *c)
{
    if (c->query == NULL || c->query[0] == '\0')
        return usage_error("%s", "query needs the question text");
    size_t qlen = strlen(c->query);
    if (!util_utf8_valid(c->query, qlen)) return usage_error("%s", "query is not valid UTF-8");
    engine_query q = {.query = c->query,
                      .query_len = qlen,
                      .k = c->k ? c->k : cfg->retrieve_default_k,
                      .min_score = cfg->retrieve_min_score,
                      .collection = c->collection};
    if (q.k > cfg->retrieve_max_k)
        return usage_error("%s", "-k is over [retrieve] max_k");
    if (c->min_score) {
        char *end = NULL;
        q.min_score = strtod(c->min_score, &end);
        if (end == c->min_score || *end || q.min_score < -1 || q.min_score > 1)
            return usage_error("--min-score needs a number between -1 and 1, got '%s'",
                               c->min_score);
    }
    engine *e = NULL;
    ragd_err err = {0};
    if (engine_open(cfg, RAGD_ENGINE_READONLY, &e, &err) != RAGD_OK) {
        fprintf(stderr, "ragd: %s\n", err.msg);
        return exit_for(err.rc);
    }
    engine_answer a;
    ragd_rc rc = engine_retrieve(e, &q, &a, &err);
    if (rc != RAGD_OK) {
        engine_close(e);
        fprintf(stderr, "ragd: query failed: %s\n", err.msg);
        return EXIT_RUNTIME;
    }
    if (c->json) {
        json_t *o = http_answer_json(&q, &a);
        char *text = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
        printf("%s\n", text ? text : "{}");
        free(text);
        json_decref(o);
    } else if (!a.rag_enabled) {
        printf("RAG is disabled (RAG_ENABLED=false): no context retrieved\n");
    } else if (a.count == 0) {
        printf("no results (low confidence)\n");
    } else {
        for (size_t i = 0; i < a.count; i++) {
            const store_hit *h = &a.results[i].hit;
            printf("%zu. [%.3f] %s%s%s\n", i + 1, a.results[i].score, h->source,
                   h->heading[0] ? " > " : "", h->heading);
            size_t n = strlen(h->text);
            int cut = n > 240;
            if (cut) {
                n = 240;
                while (n > 0 && ((unsigned char)h->text[n] & 0xC0) == 0x80) n--;
            }
            printf("   %.*s%s\n\n", (int)n, h->text, cut ? "..." : "");
        }
    }
    engine_answer_free(&a);
    engine_close(e);
    return EXIT_OK;
}

/* ---- health ------------------------------------------------------------------------------- */

/* Asks a daemon for GET /health, with the bearer token when one is configured (the details need
 * it; without, a daemon with a token answers the status only). */
static int cmd_health(const ragd_cfg *cfg, const cli *c)
{
    char base[600];
    if (c->url != NULL)
        snprintf(base, sizeof base, "%.500s", c->url);
    else
        http_client_url_of_listen(cfg->listen_host, cfg->listen_port, base, sizeof base);
    http_client *client = http_client_new(base, cfg->auth_token, HEALTH_TIMEOUT_S);
    long status = 0;
    json_t *o = NULL;
    char *raw = NULL;
    ragd_err err = {0};
    ragd_rc rc = client ? http_client_call(client, "GET", "/health", NULL, &status, &o, &raw,
                                           &err)
                        : ragd_err_set(&err, RAGD_ERR_NOMEM, "out of memory");
    http_client_free(client);
    if (rc != RAGD_OK) {
        fprintf(stderr, "ragd: %s did not answer: %s\n", base, err.msg);
        return EXIT_RUNTIME;
    }
    const char *state = json_string_value(json_object_get(o, "status"));
    char *pretty = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
    printf("%s\n", pretty ? pretty : (raw ? raw : ""));
    free(pretty);
    int code = EXIT_RUNTIME;
    if (status == 200 && state && (strcmp(state, "ok") == 0 || strcmp(state, "degraded") == 0))
        code = EXIT_OK;
    else
        fprintf(stderr, "ragd: %s/health: HTTP %ld, status %s\n", base, status,
                state ? state : "unknown");
    json_decref(o);
    free(raw);
    return code;
}

/* ---- entry -------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage_main, stderr);
        return EXIT_USAGE;
    }
    const char *command = argv[1];
    if (strcmp(command, "--version") == 0 || strcmp(command, "version") == 0) {
        printf("ragd %s\n", RAGD_VERSION);
        return EXIT_OK;
    }
    if (strcmp(command, "--help") == 0 || strcmp(command, "-h") == 0 ||
        strcmp(command, "help") == 0) {
        fputs(usage_main, stdout);
        return EXIT_OK;
    }
    if (strcmp(command, "eval") == 0) return eval_main(argc - 2, argv + 2);
    if (strcmp(command, "finetune") == 0) return finetune_main(argc - 2, argv + 2);
    if (strcmp(command, "redteam") == 0) return redteam_main(argc - 2, argv + 2);
    if (command_usage(command) == NULL)
        return usage_error("unknown command '%s'", command);

    cli c = {.command = command};
    int code = cli_parse(&c, argc - 2, argv + 2);
    if (code >= 0) return code;

    ragd_cfg cfg;
    code = config_load(&c, &cfg);
    if (code >= 0) return code;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (strcmp(command, "serve") == 0)
        code = cmd_serve(&cfg, &c);
    else if (strcmp(command, "ingest") == 0)
        code = cmd_ingest(&cfg, &c);
    else if (strcmp(command, "query") == 0)
        code = cmd_query(&cfg, &c);
    else if (strcmp(command, "health") == 0)
        code = cmd_health(&cfg, &c);
    else if (strcmp(command, "migrate") == 0)
        code = cmd_migrate(&cfg, &c);
    else {
        cfg_print(&cfg, stdout);
        code = EXIT_OK;
    }
    curl_global_cleanup();
    cfg_free(&cfg);
    return code;
}
