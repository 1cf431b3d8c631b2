/* SHA-256 against the FIPS 180-4 / NIST example vectors. */
#include "sha256.h"
#include "testutil.h"

#include <check.h>
#include <stdint.h>
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

/* The SHA-extension rounds and the portable ones agree on every length from
 * 0 to 300 bytes (one, two, three and more blocks, every padding case) and
 * on split updates. Where the CPU has no SHA extensions both runs are the
 * portable path and the test still checks the digests against each other. */
START_TEST(accelerated_and_portable_rounds_agree)
{
    unsigned char msg[300];
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < sizeof msg; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        msg[i] = (unsigned char)x;
    }
    for (size_t n = 0; n <= sizeof msg; n++) {
        unsigned char a[32], b[32];
        sha256_ctx c;
        sha256_accelerated(1);
        sha256_init(&c);
        sha256_update(&c, msg, n / 3);
        sha256_update(&c, msg + n / 3, n - n / 3);
        sha256_final(&c, a);
        sha256_accelerated(0);
        sha256_init(&c);
        sha256_update(&c, msg, n);
        sha256_final(&c, b);
        ck_assert_msg(memcmp(a, b, 32) == 0, "digests differ at length %zu", n);
    }
    sha256_accelerated(1);
}
END_TEST

START_TEST(the_portable_rounds_match_the_nist_vectors)
{
    sha256_accelerated(0);
    unsigned char d[32];
    char hex[65];
    sha256_ctx c;
    sha256_init(&c);
    sha256_update(&c, vectors[2].msg, strlen(vectors[2].msg));
    sha256_final(&c, d);
    sha256_hex(d, 32, hex);
    sha256_accelerated(1);
    ck_assert_str_eq(hex, vectors[2].hex);
}
END_TEST

static Suite *sha256_suite(void)
{
    Suite *s = suite_create("sha256");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, digests_match_the_nist_vectors, 0, sizeof vectors / sizeof vectors[0]);
    tcase_add_test(tc, a_million_a_matches);
    tcase_add_test(tc, accelerated_and_portable_rounds_agree);
    tcase_add_test(tc, the_portable_rounds_match_the_nist_vectors);
    suite_add_tcase(s, tc);
    return s;
}

NT_TEST_MAIN(sha256_suite)
