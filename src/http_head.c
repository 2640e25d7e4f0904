/* SPDX-License-Identifier: MIT */
/*
 * http_head.c - the checks every request head must pass before it is routed: request line
 * (method token, target length, HTTP/1.0 or 1.1), header syntax (no space before the colon, no
 * folded lines), one consistent Content-Length of digits, Transfer-Encoding only "chunked" and
 * never together with Content-Length, and the size of the head. Each refused case gets a
 * JSON 4xx from the connection engine (src/http_front.c), which also reads chunked bodies through
 * http_chunked_parse here. Pure function: fuzzed.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http_int.h"

/* RFC 9110 tchar */
static int is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static void fail(http_head *h, unsigned status, const char *code, const char *msg)
{
    h->status = status;
    h->code = code;
    snprintf(h->message, sizeof h->message, "%s", msg);
}

/* Trims optional white space around [*s, *s + *n). */
static void ows_trim(const char **s, size_t *n)
{
    while (*n > 0 && (**s == ' ' || **s == '\t')) (*s)++, (*n)--;
    while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t')) (*n)--;
}

int http_head_check(const char *buf, size_t len, size_t max_body, http_head *h)
{
    memset(h, 0, sizeof *h);
    h->content_length = -1;
    /* the end of the head: an empty line (CRLF or bare LF line endings) */
    size_t end = 0;
    int found = 0;
    for (size_t i = 0; i < len && !found; i++) {
        if (buf[i] != '\n') continue;
        if (i + 1 < len && buf[i + 1] == '\n') end = i + 2, found = 1;
        else if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n') end = i + 3, found = 1;
    }
    size_t line_end = 0;
    while (line_end < len && buf[line_end] != '\n') line_end++;
    if (!found) {
        if (line_end >= len && len > HTTP_URI_MAX + 64) {
            fail(h, 414, "uri_too_long", "request line over the limit (8192-byte URI)");
            return -1;
        }
        if (len >= HTTP_HEAD_MAX) {
            fail(h, 431, "headers_too_large", "request head over the limit of 16384 bytes");
            return -1;
        }
        return 0; /* incomplete */
    }
    if (end > HTTP_HEAD_MAX) {
        fail(h, 431, "headers_too_large", "request head over the limit of 16384 bytes");
        return -1;
    }
    h->head_len = end;

    /* request line: METHOD SP target SP HTTP/x.y */
    size_t rl = line_end > 0 && buf[line_end - 1] == '\r' ? line_end - 1 : line_end;
    size_t i = 0;
    while (i < rl && is_tchar((unsigned char)buf[i])) i++;
    if (i == 0 || i > 32 || i >= rl || buf[i] != ' ') {
        fail(h, 400, "bad_request", "malformed request line: expected METHOD SP target SP "
                                    "HTTP/1.1");
        return -1;
    }
    size_t t0 = i + 1, t = t0;
    while (t < rl && buf[t] != ' ') {
        unsigned char c = (unsigned char)buf[t];
        if (c < 0x20 || c == 0x7f) {
            fail(h, 400, "bad_request", "control character in the request target");
            return -1;
        }
        t++;
    }
    if (t == t0 || t >= rl) {
        fail(h, 400, "bad_request", "malformed request line: expected METHOD SP target SP "
                                    "HTTP/1.1");
        return -1;
    }
    if (t - t0 > HTTP_URI_MAX) {
        fail(h, 414, "uri_too_long", "request target over the limit of 8192 bytes");
        return -1;
    }
    const char *ver = buf + t + 1;
    size_t vn = rl - (t + 1);
    if (vn == 8 && memcmp(ver, "HTTP/1.1", 8) == 0) {
        h->http11 = 1;
    } else if (vn == 8 && memcmp(ver, "HTTP/1.0", 8) == 0) {
        h->http11 = 0;
    } else if (vn == 8 && memcmp(ver, "HTTP/", 5) == 0 && ver[5] >= '0' && ver[5] <= '9' &&
               ver[6] == '.' && ver[7] >= '0' && ver[7] <= '9') {
        fail(h, 400, "http_version_not_supported", "HTTP version not supported: use HTTP/1.1");
        return -1;
    } else {
        fail(h, 400, "bad_request", "malformed request line: expected METHOD SP target SP "
                                    "HTTP/1.1");
        return -1;
    }
    h->method_len = i;

    /* header fields */
    int te = 0, headers = 0;
    for (size_t p = line_end + 1; p < end;) {
        size_t q = p;
        while (q < end && buf[q] != '\n') q++;
        size_t n = q > p && buf[q - 1] == '\r' ? q - 1 - p : q - p;
        const char *line = buf + p;
        p = q + 1;
        if (n == 0) break; /* the empty line */
        if (++headers > HTTP_HEADERS_MAX) {
            fail(h, 431, "headers_too_large", "more than 100 header fields");
            return -1;
        }
        if (line[0] == ' ' || line[0] == '\t') {
            fail(h, 400, "bad_request", "folded header line (obsolete line folding)");
            return -1;
        }
        size_t k = 0;
        while (k < n && is_tchar((unsigned char)line[k])) k++;
        if (k == 0 || k >= n || line[k] != ':') {
            fail(h, 400, "bad_request", "malformed header field (expected name: value, no "
                                        "space before the colon)");
            return -1;
        }
        const char *v = line + k + 1;
        size_t vl = n - k - 1;
        for (size_t j = 0; j < vl; j++) {
            if (v[j] == '\0' || v[j] == '\r') {
                fail(h, 400, "bad_request", "control character in a header value");
                return -1;
            }
        }
        ows_trim(&v, &vl);
        if (k == 14 && strncasecmp(line, "Content-Length", 14) == 0) {
            long long cl = 0;
            if (vl == 0) {
                fail(h, 400, "bad_request", "malformed Content-Length (digits only)");
                return -1;
            }
            for (size_t j = 0; j < vl; j++) {
                if (v[j] < '0' || v[j] > '9') {
                    fail(h, 400, "bad_request", "malformed Content-Length (digits only)");
                    return -1;
                }
                if (cl < 100000000000000000LL) cl = cl * 10 + (v[j] - '0'); /* else: huge */
            }
            if (h->content_length >= 0 && h->content_length != cl) {
                fail(h, 400, "bad_request", "conflicting Content-Length headers");
                return -1;
            }
            h->content_length = cl;
        } else if (k == 6 && strncasecmp(line, "Expect", 6) == 0) {
            h->expect_continue = vl == 12 && strncasecmp(v, "100-continue", 12) == 0;
        } else if (k == 17 && strncasecmp(line, "Transfer-Encoding", 17) == 0) {
            if (te++ || vl != 7 || strncasecmp(v, "chunked", 7) != 0) {
                fail(h, 400, "unsupported", "Transfer-Encoding other than one 'chunked' is not "
                                            "supported; send the body with Content-Length or "
                                            "chunked");
                return -1;
            }
            h->chunked = 1;
        }
    }
    if (h->chunked && h->content_length >= 0) {
        fail(h, 400, "bad_request", "both Transfer-Encoding and Content-Length");
        return -1;
    }
    if (h->content_length > 0 && (unsigned long long)h->content_length > max_body) {
        char msg[128];
        snprintf(msg, sizeof msg, "request body over the limit of %zu bytes", max_body);
        fail(h, 413, "payload_too_large", msg);
        return -1;
    }
    return 1;
}

int http_chunked_check(const char *buf, size_t len)
{
    size_t consumed = 0, data_len = 0;
    return http_chunked_parse(buf, len, &consumed, &data_len, NULL);
}

/* The line end (CRLF, or a bare LF) at *q of a chunked body. Returns: 1 with *q past it, 0 when
 * buf ends before it is whole, -1 when something else stands there. */
static int line_end(const char *buf, size_t len, size_t *q)
{
    if (*q == len) return 0;
    if (buf[*q] == '\n') {
        (*q)++;
        return 1;
    }
    if (buf[*q] != '\r') return -1;
    if (*q + 1 == len) return 0;
    if (buf[*q + 1] != '\n') return -1;
    *q += 2;
    return 1;
}

int http_chunked_parse(const char *buf, size_t len, size_t *consumed, size_t *data_len,
                       util_buf *out)
{
    http_chunked_pos pos = {0};
    return http_chunked_resume(buf, len, &pos, consumed, data_len, out);
}

int http_chunked_resume(const char *buf, size_t len, http_chunked_pos *pos, size_t *consumed,
                        size_t *data_len, util_buf *out)
{
    size_t p = pos->offset;
    *data_len = pos->decoded;
    for (;;) {
        /* chunk-size [; ext] CRLF */
        size_t q = p, digits = 0;
        unsigned long long size = 0;
        while (q < len && ((buf[q] >= '0' && buf[q] <= '9') || (buf[q] >= 'a' && buf[q] <= 'f') ||
                           (buf[q] >= 'A' && buf[q] <= 'F'))) {
            if (++digits > 15) return -1;
            char c = buf[q];
            size = size * 16 + (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
            q++;
        }
        if (q == len) return 0;
        if (digits == 0) return -1;
        if (buf[q] == ';') { /* extensions: skip to the line end (a bounded line: an unfinished
                              * one is walked again when more arrives) */
            while (q < len && buf[q] != '\n') {
                if (buf[q] == '\0' || q - p > HTTP_HEAD_MAX) return -1;
                q++;
            }
            if (q == len) return 0;
            q++;
        } else {
            int e = line_end(buf, len, &q);
            if (e <= 0) return e;
        }
        if (size == 0) {
            /* trailer fields, then the empty line (at most HTTP_HEAD_MAX bytes of them: they
             * are walked again each time more arrive) */
            size_t trailers = q;
            for (;;) {
                size_t e = q;
                while (e < len && buf[e] != '\n') e++;
                if (e - trailers > HTTP_HEAD_MAX) return -1;
                if (e == len) return 0;
                size_t n = e > q && buf[e - 1] == '\r' ? e - 1 - q : e - q;
                q = e + 1;
                if (n == 0) {
                    *consumed = q;
                    return 1;
                }
            }
        }
        if (size > len - q) { /* the data runs past what we have */
            *data_len += len - q;
            return 0;
        }
        if (out && util_buf_append(out, buf + q, (size_t)size) != 0) return -1;
        *data_len += (size_t)size;
        q += size;
        int e = line_end(buf, len, &q);
        if (e <= 0) return e;
        p = q;
        /* a whole chunk is behind p: a later call on more bytes starts here */
        pos->offset = p;
        pos->decoded = *data_len;
    }
}
