/* SPDX-License-Identifier: MIT */
/*
 * log.h - structured logging to stderr. One line per event:
 *   2026-11-25T22:46:23.123Z level=info module=http msg="listening" addr=127.0.0.1:8088
 * RAGD_LOG skips all formatting work when the level is filtered out.
 */
#ifndef RAGD_LOG_H
#define RAGD_LOG_H

typedef enum ragd_log_level {
    RAGD_LOG_DEBUG = 0,
    RAGD_LOG_INFO = 1,
    RAGD_LOG_WARN = 2,
    RAGD_LOG_ERROR = 3
} ragd_log_level;

extern int log_level_current;

/* Sets the minimum level that is written. Thread-safe enough: a plain int store. */
void log_level_set(ragd_log_level level);

/* Parses "debug", "info", "warn"/"warning", "error". Returns: 0 and sets *out, or -1. */
int log_level_parse(const char *name, ragd_log_level *out);

/* Returns: the level's name; static storage. */
const char *log_level_name(ragd_log_level level);

/* Writes one line; msg is printf-style and is escaped into a quoted msg="..." field. */
void log_write(ragd_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define RAGD_LOG(level, module, ...)                                                               \
    do {                                                                                           \
        if ((int)(level) >= log_level_current) log_write((level), (module), __VA_ARGS__);          \
    } while (0)

#endif
