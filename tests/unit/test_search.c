/* nt_search must agree with memmem everywhere; nt_has_unicode_escape with a plain scan. */
#include "search.h"
#include "testutil.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static const char *const needles[] = {
    "\"iam.amazonaws.com\"", "\"ListAccounts\"", "ab", "a", "\"x\"", "Terraform", "\"\"", "aaaa"};

START_TEST(agrees_with_memmem_on_random_text)
{
    /* Small alphabets make near-misses and overlaps frequent. */
    const char alphabet[] = "\"ab.xiListAcounts";
    unsigned seed = 12345u + (unsigned)_i;
    char hay[300];
    for (int round = 0; round < 4000; round++) {
        size_t n = (size_t)(rand_r(&seed) % (int)sizeof hay);
        for (size_t k = 0; k < n; k++)
            hay[k] = alphabet[rand_r(&seed) % (int)(sizeof alphabet - 1)];
        const char *nd = needles[round % (int)(sizeof needles / sizeof needles[0])];
        size_t m = strlen(nd);
        /* Plant the needle sometimes, at the very end too. */
        if (n >= m && round % 3 == 0)
            memcpy(hay + n - m - (size_t)(rand_r(&seed) % 2 ? 0 : (n - m) / 2), nd, m);
        const char *want = memmem(hay, n, nd, m);
        const char *got = nt_search(hay, n, nd, m);
        ck_assert_msg(want == got, "round %d n %zu needle %s: %td vs %td", round, n, nd,
                      want ? want - hay : -1, got ? got - hay : -1);
    }
}
END_TEST

START_TEST(edge_lengths)
{
    ck_assert_ptr_null(nt_search("abc", 3, "abcd", 4));
    ck_assert_ptr_nonnull(nt_search("abc", 3, "", 0));
    const char *h = "0123456789abcdef0123456789abcdef\"ListAccounts\"";
    ck_assert_ptr_eq(nt_search(h, strlen(h), "\"ListAccounts\"", 14), h + 32);
    ck_assert_ptr_null(nt_search(h, strlen(h) - 1, "\"ListAccounts\"", 14));
}
END_TEST

START_TEST(unicode_escapes_are_found)
{
    ck_assert(nt_has_unicode_escape("x\\u0041", 7));
    ck_assert(!nt_has_unicode_escape("x\\\\u0041", 8)); /* an escaped backslash, then u */
    ck_assert(nt_has_unicode_escape("x\\\\\\u0041", 9));
    ck_assert(!nt_has_unicode_escape("\\\"quoted\\\"", 10));
    ck_assert(!nt_has_unicode_escape("trailing\\", 9));
    ck_assert(!nt_has_unicode_escape("", 0));
}
END_TEST

static Suite *search_suite(void)
{
    Suite *s = suite_create("search");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, agrees_with_memmem_on_random_text, 0, 8);
    tcase_add_test(tc, edge_lengths);
    tcase_add_test(tc, unicode_escapes_are_found);
    suite_add_tcase(s, tc);
    return s;
}

NT_TEST_MAIN(search_suite)
