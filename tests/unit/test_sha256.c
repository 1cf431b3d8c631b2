/* SHA-256 against the FIPS 180-4 / NIST example vectors. */
#include "sha256.h"
#include "testutil.h"

#include <check.h>
#include <string.h>

static const struct {
    const char *msg;
    const char *hex;
} vectors[] = {
    {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
    {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
    {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
};

START_TEST(digests_match_the_nist_vectors)
{
    unsigned char d[32];
    char hex[65];
    sha256_ctx c;
    sha256_init(&c);
    /* feed byte by byte to exercise the buffering path */
    for (const char *p = vectors[_i].msg; *p; p++)
        sha256_update(&c, p, 1);
    sha256_final(&c, d);
    sha256_hex(d, 32, hex);
    ck_assert_str_eq(hex, vectors[_i].hex);
}
END_TEST

START_TEST(a_million_a_matches)
{
    static char block[1000];
    memset(block, 'a', sizeof block);
    sha256_ctx c;
    sha256_init(&c);
    for (int i = 0; i < 1000; i++)
        sha256_update(&c, block, sizeof block);
    unsigned char d[32];
    char hex[65];
    sha256_final(&c, d);
    sha256_hex(d, 32, hex);
    ck_assert_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}
END_TEST

static Suite *sha256_suite(void)
{
    Suite *s = suite_create("sha256");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, digests_match_the_nist_vectors, 0, sizeof vectors / sizeof vectors[0]);
    tcase_add_test(tc, a_million_a_matches);
    suite_add_tcase(s, tc);
    return s;
}

NT_TEST_MAIN(sha256_suite)
