/*
 * fuzz_ctview.c — libFuzzer entry point for the CloudTrail→ECS view of any JSON document.
 *
 * The body is fuzz_ctview() in targets.c, shared with the regression test that
 * replays tests/data/fuzz-regressions/ctview/. The setup (fixed rules and events)
 * is built once, before the first input; libFuzzer's entry points carry no
 * user pointer, hence the one file-level pointer.
 */
#include "targets.h"

#include <stdio.h>
#include <stdlib.h>

static fuzz_env *fuzz_shared_env;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_shared_env = fuzz_env_new();
    if (!fuzz_shared_env) {
        fprintf(stderr, "fuzz_ctview: setup failed\n");
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_ctview(fuzz_shared_env, data, size);
    return 0;
}
