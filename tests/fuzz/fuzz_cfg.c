/* SPDX-License-Identifier: MIT */
/*
 * fuzz_cfg.c - libFuzzer target: the INI configuration file (src/cfg.c over inih). Any file either
 * loads and validates, or fails with a `file:line: message`; never a crash or a leak.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ragd/cfg.h"
#include "ragd/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("ragd-fuzz.ini", MFD_CLOEXEC);
    if (fd < 0) return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ragd_cfg cfg;
    ragd_err err = {0};
    if (cfg_defaults_set(&cfg, &err) != RAGD_OK) abort();
    ragd_rc rc = cfg_file_load(&cfg, path, &err);
    if (rc == RAGD_OK) rc = cfg_validate(&cfg, &err);
    if (rc != RAGD_OK && err.msg[0] == '\0') abort();
    cfg_free(&cfg);
    close(fd);
    return 0;
}
