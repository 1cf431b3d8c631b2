/* nt_search must agree with memmem everywhere; nt_has_unicode_escape with a plain scan. */
#include "search.h"

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

/* nt_search_clean finds what nt_search finds, and sets *clean exactly when
 * there is no match and no backslash anywhere: a backslash at every position
 * of every length up to 200 (the vector loop's first and last bytes, the
 * tail after it) must be seen. */
START_TEST(clean_is_set_only_without_a_match_and_without_a_backslash)
{
    char hay[201];
    for (size_t n = 0; n <= 200; n++) {
        for (size_t bs = 0; bs <= n; bs++) { /* bs == n: no backslash */
            for (size_t k = 0; k < n; k++)
                hay[k] = "abcdefgh.\"ListAccounts"[k % 8];
            if (bs < n) hay[bs] = '\\';
            for (size_t w = 0; w < sizeof needles / sizeof needles[0]; w++) {
                const char *nd = needles[w];
                size_t m = strlen(nd);
                int clean = 0;
                const char *got = nt_search_clean(hay, n, nd, m, &clean);
                ck_assert_ptr_eq(got, memmem(hay, n, nd, m));
                int want = !got && bs == n;
                ck_assert_msg(clean == want, "n %zu backslash at %zu needle %s: clean %d", n, bs,
                              nd, clean);
            }
        }
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

int main(void)
{
    Suite *s = suite_create("search");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60); /* the backslash-at-every-position sweep, on a shared machine */
    tcase_add_loop_test(tc, agrees_with_memmem_on_random_text, 0, 8);
    tcase_add_test(tc, edge_lengths);
    tcase_add_test(tc, clean_is_set_only_without_a_match_and_without_a_backslash);
    tcase_add_test(tc, unicode_escapes_are_found);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
