/* SPDX-License-Identifier: MIT */
/*
 * ingest_glob.c - include / exclude globs on the relative paths an ingest lists (fnmatch(3)).
 * A pattern with a '/' matches the whole relative path ("drafts/ *.md" without the space, '*' crossing '/'); one
 * without matches the file name ("*.pdf"), and for excludes also any directory on the path
 * ("drafts" or "node_modules" drop everything below such a directory).
 */
#include <fnmatch.h>
#include <string.h>

#include "ragd/ingest.h"

#define GLOB_MAX_BYTES 256

int ingest_glob_valid(const char *pattern)
{
    if (pattern == NULL) return 0;
    size_t n = strnlen(pattern, GLOB_MAX_BYTES + 1);
    return n > 0 && n <= GLOB_MAX_BYTES;
}

/* Returns: 1 if pattern matches relative as described in the file comment; components: also
 * test each directory name. */
static int glob_match(const char *pattern, const char *relative, int components)
{
    if (strchr(pattern, '/') != NULL) return fnmatch(pattern, relative, 0) == 0;
    const char *base = strrchr(relative, '/');
    if (fnmatch(pattern, base ? base + 1 : relative, 0) == 0) return 1;
    if (!components) return 0;
    char part[4096];
    for (const char *p = relative; base && p < base;) {
        const char *slash = strchr(p, '/');
        size_t n = (size_t)(slash - p);
        if (n < sizeof part) {
            memcpy(part, p, n);
            part[n] = '\0';
            if (fnmatch(pattern, part, 0) == 0) return 1;
        }
        p = slash + 1;
    }
    return 0;
}

int ingest_glob_selected(const ingest_globs *globs, const char *relative)
{
    if (globs == NULL || relative == NULL) return 1;
    int in = globs->include_count == 0;
    for (size_t i = 0; !in && i < globs->include_count; i++)
        in = glob_match(globs->include[i], relative, 0);
    for (size_t i = 0; in && i < globs->exclude_count; i++)
        if (glob_match(globs->exclude[i], relative, 1)) in = 0;
    return in;
}
