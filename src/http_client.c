/* SPDX-License-Identifier: MIT */
/*
 * http_client.c - the CLI's one HTTP client for a running daemon: libcurl easy handle kept for
 * the client's life (so `ragd eval --url` reuses its connection), JSON bodies, the bearer token
 * on every request, the answer parsed as JSON whatever its status.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "ragd/http_client.h"
#include "ragd/util.h"

struct http_client {
    CURL *curl;
    char *base;
    struct curl_slist *headers;
    long timeout_s;
};

static size_t collect(char *data, size_t size, size_t n, void *ctx)
{
    return util_buf_append(ctx, data, size * n) == 0 ? size * n : 0;
}

http_client *http_client_new(const char *base_url, const char *token, long timeout_s)
{
    http_client *c = calloc(1, sizeof *c);
    if (c == NULL) return NULL;
    size_t n = strlen(base_url);
    while (n > 0 && base_url[n - 1] == '/') n--;
    c->base = util_strndup(base_url, n);
    c->curl = curl_easy_init();
    c->timeout_s = timeout_s;
    c->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (c->headers && token && token[0]) {
        util_buf auth = {0};
        util_buf_printf(&auth, "Authorization: Bearer %s", token);
        struct curl_slist *more = auth.data ? curl_slist_append(c->headers, auth.data) : NULL;
        util_buf_free(&auth);
        if (more == NULL) {
            curl_slist_free_all(c->headers);
            c->headers = NULL;
        } else {
            c->headers = more;
        }
    }
    if (c->base == NULL || c->curl == NULL || c->headers == NULL) {
        http_client_free(c);
        return NULL;
    }
    return c;
}

void http_client_free(http_client *c)
{
    if (c == NULL) return;
    if (c->curl) curl_easy_cleanup(c->curl);
    curl_slist_free_all(c->headers);
    free(c->base);
    free(c);
}

char *http_client_url_of_listen(const char *host, int port, char *buf, size_t size)
{
    int v6 = strchr(host, ':') != NULL;
    snprintf(buf, size, "http://%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "", port);
    return buf;
}

ragd_rc http_client_call(http_client *c, const char *method, const char *path, const char *body,
                         long *status, json_t **reply, char **raw, ragd_err *err)
{
    util_buf url = {0}, resp = {0};
    if (util_buf_printf(&url, "%s%s", c->base, path) != 0)
        return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    CURL *h = c->curl;
    curl_easy_reset(h); /* keeps the connection cache */
    curl_easy_setopt(h, CURLOPT_URL, url.data);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (body) curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    else if (strcmp(method, "GET") == 0) curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 5L);
    if (c->timeout_s > 0) curl_easy_setopt(h, CURLOPT_TIMEOUT, c->timeout_s);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    CURLcode cc = curl_easy_perform(h);
    ragd_rc rc = RAGD_OK;
    if (cc != CURLE_OK) {
        rc = ragd_err_set(err, RAGD_ERR_IO, "%s %s: %s", method, url.data, curl_easy_strerror(cc));
    } else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
        *reply = resp.data ? json_loads(resp.data, JSON_DECODE_ANY, NULL) : NULL;
        if (raw) *raw = resp.data ? util_buf_steal(&resp) : strdup("");
    }
    util_buf_free(&url);
    util_buf_free(&resp);
    return rc;
}

const char *http_client_error_message(json_t *reply, const char *fallback)
{
    const char *m = json_string_value(json_object_get(json_object_get(reply, "error"), "message"));
    return m ? m : fallback;
}
