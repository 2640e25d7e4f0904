/* SPDX-License-Identifier: MIT */
/*
 * fuzz_http_head.c - libFuzzer target: request heads and chunked framing (src/http_head.c), the
 * first thing that reads a client's bytes. Checks the contract, not only the absence of crashes:
 * an accepted head ends inside the input, a refusal has a status of 4xx and a UTF-8 message, and
 * the chunked decoder (http_chunked_parse, what the connection engine reads bodies with) agrees
 * with the framing check and decodes exactly the length it measures, within what it consumed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/http_int.h"
#include "ragd/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    http_head h;
    int rc = http_head_check(buf, size, 1048576, &h);
    if (rc > 0) {
        if (h.head_len == 0 || h.head_len > size) abort();
        if (h.chunked && h.content_length >= 0) abort();
        int c = http_chunked_check(buf + h.head_len, size - h.head_len);
        if (c < -1 || c > 1) abort();
        size_t consumed = 0, data_len = 0;
        util_buf out = {0};
        int d = http_chunked_parse(buf + h.head_len, size - h.head_len, &consumed, &data_len,
                                   &out);
        if (d != c) abort();
        if (d == 1 && (consumed == 0 || consumed > size - h.head_len || out.len != data_len ||
                       data_len >= consumed))
            abort();
        util_buf_free(&out);
    } else if (rc < 0) {
        if (h.status < 400 || h.status > 499 || h.code == NULL || h.message[0] == '\0' ||
            !util_utf8_valid(h.message, strlen(h.message)))
            abort();
    }
    /* a prefix of an accepted head is never refused for being malformed */
    if (rc > 0 && h.head_len > 1) {
        http_head p;
        if (http_head_check(buf, h.head_len - 1, 1048576, &p) < 0 && p.status != 414 &&
            p.status != 431)
            abort();
    }
    return 0;
}
