/*
 * fuzz_main.c — the libFuzzer entry point of every target. CMake builds it
 * once per target with NT_FUZZ_TARGET set to the target's name ("firehose",
 * "record", "ctview", "kql", "toml", "exception"); the body is that target's
 * function in targets.c, shared with the regression test that replays
 * tests/data/fuzz-regressions/<target>/. The setup (fixed rules and events) is
 * built once, before the first input; libFuzzer's entry points carry no user
 * pointer, hence the two file-level pointers.
 */
#include "targets.h"

#include <stdio.h>
#include <stdlib.h>

#ifndef NT_FUZZ_TARGET
#error "build with -DNT_FUZZ_TARGET=\"name\""
#endif

static fuzz_env *fuzz_shared_env;
static const fuzz_target *fuzz_selected;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_shared_env = fuzz_env_new();
    fuzz_selected = fuzz_target_find(NT_FUZZ_TARGET);
    if (!fuzz_shared_env || !fuzz_selected) {
        fprintf(stderr, "fuzz_%s: setup failed\n", NT_FUZZ_TARGET);
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_selected->run(fuzz_shared_env, data, size);
    return 0;
}
