/* SPDX-License-Identifier: MIT */
/*
 * fuzz_http_body.c - libFuzzer target: JSON request bodies through the routes' field specs, as
 * POST /retrieve (and /context), POST /documents and POST /ingest check them (the first input byte
 * picks the route). Every refusal must be a 4xx with a JSON error body: a 5xx from client input,
 * or a reply that cannot be built, aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/http_int.h"
#include "ragd/log.h"

static ragd_cfg cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    ragd_err err = {0};
    log_level_set(RAGD_LOG_ERROR);
    /* allowed roots that exist nowhere: /ingest paths are checked, nothing is ever read */
    if (cfg_defaults_set(&cfg, &err) != RAGD_OK ||
        cfg_key_set(&cfg, "ingest", "allowed_roots", "/nonexistent-ragd-fuzz-root", "fuzz",
                    &err) != RAGD_OK ||
        cfg_key_set(&cfg, "ingest", "max_document_bytes", "4096", "fuzz", &err) != RAGD_OK) {
        fprintf(stderr, "fuzz setup: %s\n", err.msg);
        abort();
    }
    return 0;
}

static void reply_check(int rc, http_reply *r)
{
    if (rc == 0) {
        if (r->body) abort(); /* accepted: nothing to send yet */
        return;
    }
    json_t *e = json_object_get(r->body, "error");
    if (r->status < 400 || r->status > 499 || !json_is_string(json_object_get(e, "code")) ||
        !json_is_string(json_object_get(e, "message")))
        abort();
    json_decref(r->body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    http_reply r = {0};
    int rc;
    switch (data[0] % 3) {
    case 0:
        rc = http_retrieve_body_check(&cfg, body, len, &r);
        reply_check(rc, &r);
        break;
    case 1:
        rc = http_documents_body_check(&cfg, body, len, &r);
        reply_check(rc, &r);
        break;
    default: {
        http_ingest_req req = {0};
        rc = http_ingest_req_parse(&cfg, body, len, &req, &r);
        if (rc == 0) abort(); /* no path can be inside a root that does not exist */
        reply_check(rc, &r);
        break;
    }
    }
    return 0;
}
