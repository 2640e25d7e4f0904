/* SPDX-License-Identifier: MIT */
/*
 * http_router.c - the route table, the one place a route exists: method, path, name (logs,
 * metrics, GET /), flags (public, prefix, async) and handler. Lookup, the bearer-token rule,
 * 404, 405 with the Allow header, HEAD answered by GET rows, the metrics label and GET /'s
 * endpoint list all come from the rows. No transport here: http_server.c builds the request
 * and the engine (http_front.c) sends the reply.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_int.h"
#include "ragd/util.h"

/* Adding a route: one row here + one handler function in its own file (see http_int.h). GET /
 * lists the routes in this order. */
static const http_route routes[] = {
    {"GET", "/health", "/health", HTTP_ROUTE_PUBLIC, http_handle_health},
    {"POST", "/retrieve", "/retrieve", HTTP_ROUTE_ASYNC, http_handle_retrieve},
    {"POST", "/context", "/context", HTTP_ROUTE_ASYNC, http_handle_context},
    {"POST", "/ingest", "/ingest", HTTP_ROUTE_ASYNC, http_handle_ingest},
    {"GET", "/", "/", 0, http_handle_root},
    {"GET", "/metrics", "/metrics", 0, http_handle_metrics},
    {"GET", "/documents", "/documents", 0, http_handle_documents_list},
    {"POST", "/documents", "/documents", 0, http_handle_documents_post},
    {"GET", "/documents/", "/documents/{id}", HTTP_ROUTE_PREFIX, http_handle_document_get},
    {"DELETE", "/documents/", "/documents/{id}", HTTP_ROUTE_PREFIX, http_handle_document_delete},
    {"GET", "/jobs/", "/jobs/{id}", HTTP_ROUTE_PREFIX, http_handle_job},
    {"GET", "/collections", "/collections", 0, http_handle_collections_list},
    {"DELETE", "/collections/", "/collections/{name}", HTTP_ROUTE_PREFIX,
     http_handle_collection_delete},
    {"POST", "/v1/chat/completions", "/v1/chat/completions", HTTP_ROUTE_ASYNC, http_handle_chat},
};
#define ROUTE_COUNT (sizeof routes / sizeof routes[0])

/* Returns: 1 when row r's path matches path (full bytes before any '?'). */
static int path_match(const http_route *r, const char *path, size_t full)
{
    size_t pl = strlen(r->path);
    if (r->flags & HTTP_ROUTE_PREFIX) return full > pl && strncmp(r->path, path, pl) == 0;
    /* exact, with one optional trailing slash */
    size_t n = full;
    if (n > 1 && path[n - 1] == '/') n--;
    return pl == n && strncmp(r->path, path, n) == 0;
}

static int method_match(const char *row, const char *method)
{
    return strcmp(row, method) == 0 || (strcmp(method, "HEAD") == 0 && strcmp(row, "GET") == 0);
}

const http_route *http_route_find(const char *method, const char *path, const char **id,
                                  char allow[HTTP_ALLOW_MAX])
{
    size_t full = strcspn(path, "?");
    allow[0] = '\0';
    *id = "";
    size_t used = 0;
    for (size_t i = 0; i < ROUTE_COUNT; i++) {
        if (!path_match(&routes[i], path, full)) continue;
        if (method_match(routes[i].method, method)) {
            if (routes[i].flags & HTTP_ROUTE_PREFIX) *id = path + strlen(routes[i].path);
            allow[0] = '\0';
            return &routes[i];
        }
        int n = snprintf(allow + used, HTTP_ALLOW_MAX - used, "%s%s", used ? ", " : "",
                         routes[i].method);
        if (n > 0 && (size_t)n < HTTP_ALLOW_MAX - used) used += (size_t)n;
    }
    return NULL;
}

const char *http_route_name_of(const char *path)
{
    size_t full = strcspn(path, "?");
    for (size_t i = 0; i < ROUTE_COUNT; i++)
        if (path_match(&routes[i], path, full)) return routes[i].name;
    return "other";
}

const char *http_request_arg(const http_request *req, const char *name)
{
    for (size_t i = 0; i < req->arg_count; i++)
        if (req->args[i].name && strcmp(req->args[i].name, name) == 0) return req->args[i].value;
    return NULL;
}

const char *http_request_header(const http_request *req, const char *name)
{
    return req->header ? req->header(req->header_ctx, name) : NULL;
}

http_reply http_dispatch(http_request *req, char allow[HTTP_ALLOW_MAX])
{
    const char *id = "";
    const http_route *r = http_route_find(req->method, req->path, &id, allow);
    /* Every route but the public ones needs the token; an unknown path too, so that the set of
     * routes is not probed without it. */
    if ((r == NULL || !(r->flags & HTTP_ROUTE_PUBLIC)) && !req->authorized)
        return http_reply_error(RAGD_ERR_UNAUTHORIZED, NULL,
                                "missing or wrong bearer token (Authorization: Bearer <token>)");
    char method[24], path[128];
    if (r == NULL) {
        util_utf8_clip(method, sizeof method, req->method, strlen(req->method));
        util_utf8_clip(path, sizeof path, req->path, strlen(req->path));
        if (allow[0] == '\0')
            return http_reply_errorf(RAGD_ERR_NOT_FOUND, NULL,
                                     "no such endpoint: %s %s; see GET / for the list", method,
                                     path);
        http_reply e = http_reply_errorf(RAGD_ERR_INVALID, "method_not_allowed",
                                         "%s is not allowed on %s; use %s", method, path, allow);
        e.allow = allow;
        return e;
    }
    req->id = id;
    http_reply reply = r->handler(req);
    if (reply.task_run && !(r->flags & HTTP_ROUTE_ASYNC)) {
        /* a handler bug: only routes flagged async may hand work to a thread */
        http_reply bad = http_reply_error(RAGD_ERR_INTERNAL, NULL,
                                          "route handed work to a thread without the async flag");
        if (reply.task_drop) reply.task_drop(reply.task_arg, &bad);
        json_decref(reply.body);
        free(reply.text);
        return bad;
    }
    return reply;
}

json_t *http_route_list_json(void)
{
    json_t *list = json_array();
    for (size_t i = 0; list && i < ROUTE_COUNT; i++) {
        char line[128];
        snprintf(line, sizeof line, "%s %s", routes[i].method, routes[i].name);
        json_array_append_new(list, json_string(line));
    }
    return list;
}
