/* SPDX-License-Identifier: MIT */
/*
 * finetune.h - the phase-2 tooling around the chat endpoint: `ragd finetune check|convert`
 * (src/finetune.c: the fine-tune dataset's checks and its OpenAI chat conversion) and
 * `ragd redteam --url URL` (src/redteam.c: the red-team list run through a daemon's
 * POST /v1/chat/completions, reporting the structural guards that held or failed).
 */
#ifndef RAGD_FINETUNE_H
#define RAGD_FINETUNE_H

/* Runs `ragd finetune` with the arguments after "finetune". Returns: the exit code (0 valid or
 * converted, 1 invalid data or I/O error, 2 usage or configuration error). */
int finetune_main(int argc, char **argv);

/* Runs `ragd redteam` with the arguments after "redteam". Returns: the exit code (0 every guard
 * held, 1 a guard failed or an entry could not run, 2 usage or configuration error). */
int redteam_main(int argc, char **argv);

#endif
