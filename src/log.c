/* SPDX-License-Identifier: MIT */
/*
 * log.c - structured stderr logging: one line per event with an ISO-8601 UTC timestamp, the level,
 * the module and a quoted, escaped message. Lines are written with one write() so lines from
 * different threads do not interleave.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "ragd/log.h"

int log_level_current = RAGD_LOG_INFO;

void log_level_set(ragd_log_level level) { log_level_current = (int)level; }

int log_level_parse(const char *name, ragd_log_level *out)
{
    static const struct { const char *name; ragd_log_level level; } names[] = {
        {"debug", RAGD_LOG_DEBUG}, {"info", RAGD_LOG_INFO},   {"warn", RAGD_LOG_WARN},
        {"warning", RAGD_LOG_WARN}, {"error", RAGD_LOG_ERROR},
    };
    for (size_t i = 0; name && i < sizeof names / sizeof names[0]; i++) {
        if (strcasecmp(name, names[i].name) == 0) {
            *out = names[i].level;
            return 0;
        }
    }
    return -1;
}

const char *log_level_name(ragd_log_level level)
{
    switch (level) {
    case RAGD_LOG_DEBUG: return "debug";
    case RAGD_LOG_INFO: return "info";
    case RAGD_LOG_WARN: return "warn";
    case RAGD_LOG_ERROR: return "error";
    }
    return "info";
}

void log_write(ragd_log_level level, const char *module, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);

    char line[4600];
    size_t n = (size_t)snprintf(line, sizeof line,
                                "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s module=%s msg=\"",
                                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                                tm.tm_min, tm.tm_sec, (long)(tv.tv_usec / 1000),
                                log_level_name(level), module ? module : "-");
    /* Escape quotes, backslashes and control characters so one event stays one line. */
    for (const char *p = msg; *p && n + 8 < sizeof line; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\') {
            line[n++] = '\\';
            line[n++] = (char)c;
        } else if (c == '\n') {
            line[n++] = '\\';
            line[n++] = 'n';
        } else if (c < 0x20) {
            n += (size_t)snprintf(line + n, sizeof line - n, "\\x%02x", c);
        } else {
            line[n++] = (char)c;
        }
    }
    line[n++] = '"';
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}
