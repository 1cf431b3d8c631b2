/*
 * fuzz_toml.c — libFuzzer entry point for the TOML reader and rule loading.
 *
 * The body is fuzz_toml() in targets.c, shared with the regression test that
 * replays tests/data/fuzz-regressions/toml/. The setup (fixed rules and events)
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
        fprintf(stderr, "fuzz_toml: setup failed\n");
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_toml(fuzz_shared_env, data, size);
    return 0;
}
