/* Unit tests for base64.c: RFC 4648 §10 vectors, strictness, error offsets, round trips. */
#include "base64.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *plain, *encoded;
} rfc_vectors[] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
    /* longer than one unrolled step, every padding case */
    {"foobarfoobarfo", "Zm9vYmFyZm9vYmFyZm8="},
    {"foobarfoobarf", "Zm9vYmFyZm9vYmFyZg=="},
    {"\xff\xfe\xfd", "//79"},
    {"\xfb\xef\xbe", "++++"},
};

START_TEST(rfc4648_vectors_decode)
{
    const char *enc = rfc_vectors[_i].encoded;
    unsigned char out[64];
    size_t n = 99;
    nt_err err = {{0}};
    ck_assert_int_eq(b64_decode(enc, strlen(enc), out, sizeof out, &n, &err), NT_OK);
    ck_assert_uint_eq(n, strlen(rfc_vectors[_i].plain));
    ck_assert(memcmp(out, rfc_vectors[_i].plain, n) == 0);
    ck_assert_uint_eq(b64_decoded_len(enc, strlen(enc)), n);
    ck_assert_uint_ge(b64_decoded_max(strlen(enc)), n);
}
END_TEST

START_TEST(rfc4648_vectors_encode)
{
    const char *plain = rfc_vectors[_i].plain;
    char out[64];
    size_t n = 99;
    ck_assert_int_eq(
        b64_encode((const unsigned char *)plain, strlen(plain), out, sizeof out, &n, NULL), NT_OK);
    ck_assert_str_eq(out, rfc_vectors[_i].encoded);
    ck_assert_uint_eq(n, strlen(rfc_vectors[_i].encoded));
    ck_assert_uint_eq(b64_encoded_len(strlen(plain)), n);
}
END_TEST

static const struct {
    const char *in;
    size_t len; /* 0 = strlen */
    const char *msg;
} bad_inputs[] = {
    {"Zg=", 0, "length 3 is not a multiple of 4"},
    {"Zm9vY", 0, "length 5 is not a multiple of 4"},
    {"Zm9*", 0, "invalid base64 character 0x2a ('*') at offset 3"},
    {"Zm 9vYg==", 0, "length 9"},
    {"Zm 9vYg=", 0, "invalid base64 character 0x20 (' ') at offset 2"},
    {"Zm9\nYmFy", 0, "invalid base64 character 0x0a at offset 3"},
    {"Zm9-", 0, "0x2d ('-') at offset 3"},
    {"Zm9_", 0, "0x5f ('_') at offset 3"},
    {"Z===", 0, "misplaced base64 padding '=' at offset 1"},
    {"====", 0, "misplaced base64 padding '=' at offset 0"},
    {"Zg==Zm8=", 0, "misplaced base64 padding '=' at offset 2"},
    {"Zm=v", 0, "misplaced base64 padding '=' at offset 2"},
    {"Zh==", 0, "non-zero padding bits in base64 at offset 1"},
    {"Zm9=", 0, "non-zero padding bits in base64 at offset 2"},
    {"Zm9\xc3", 0, "invalid base64 character 0xc3 at offset 3"},
    {"Zm9v\0Zm9", 8, "invalid base64 character 0x00 at offset 4"},
    {"AAAAAAAAAAAAAAAA*AAAAAAA", 0, "at offset 16"},
    {"AAAAAAAAAAAAAAAAAAAA*AAA", 0, "at offset 20"},
    {"AAAAAAAAAAAAAAAAAAAAAAAAAAA\"", 0, "0x22 ('\"') at offset 27"},
};

START_TEST(malformed_base64_is_refused_with_the_offending_offset)
{
    const char *in = bad_inputs[_i].in;
    size_t len = bad_inputs[_i].len ? bad_inputs[_i].len : strlen(in);
    unsigned char out[64];
    size_t n;
    nt_err err = {{0}};
    ck_assert_int_eq(b64_decode(in, len, out, sizeof out, &n, &err), NT_ERR_PARSE);
    ck_assert_msg(strstr(err.msg, bad_inputs[_i].msg), "input %s: got \"%s\"", in, err.msg);
}
END_TEST

START_TEST(an_invalid_character_is_found_at_every_position)
{
    /* Exercises both the two-quad loop, the one-quad loop and the last quad. */
    char in[69];
    unsigned char out[64];
    for (size_t pos = 0; pos < 68; pos++) {
        memset(in, 'Q', 68);
        in[68] = '\0';
        in[pos] = '.';
        nt_err err = {{0}};
        size_t n;
        ck_assert_int_eq(b64_decode(in, 68, out, sizeof out, &n, &err), NT_ERR_PARSE);
        char want[32];
        snprintf(want, sizeof want, "at offset %zu", pos);
        ck_assert_msg(strstr(err.msg, want), "pos %zu: %s", pos, err.msg);
    }
}
END_TEST

START_TEST(a_too_small_output_buffer_is_a_limit_error)
{
    unsigned char out[5];
    size_t n;
    nt_err err = {{0}};
    ck_assert_int_eq(b64_decode("Zm9vYmFy", 8, out, sizeof out, &n, &err), NT_ERR_LIMIT);
    ck_assert_ptr_nonnull(strstr(err.msg, "6 bytes"));
    ck_assert_int_eq(b64_decode("Zm9vYg==", 8, out, 4, &n, &err), NT_OK);
    ck_assert_uint_eq(n, 4);
    char enc[9];
    ck_assert_int_eq(b64_encode((const unsigned char *)"foobar", 6, enc, 8, &n, &err),
                     NT_ERR_LIMIT);
    ck_assert_int_eq(b64_encode((const unsigned char *)"foobar", 6, enc, 9, &n, &err), NT_OK);
}
END_TEST

START_TEST(an_empty_input_decodes_to_nothing)
{
    unsigned char out[1];
    size_t n = 7;
    ck_assert_int_eq(b64_decode("", 0, out, 0, &n, NULL), NT_OK);
    ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(every_length_and_byte_value_round_trips)
{
    unsigned char plain[300], back[300];
    char enc[405];
    unsigned seed = 12345;
    for (size_t len = 0; len <= sizeof plain; len++) {
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            plain[i] = (unsigned char)(i < 256 && len == sizeof plain ? i : seed >> 16);
        }
        size_t elen, dlen;
        ck_assert_int_eq(b64_encode(plain, len, enc, sizeof enc, &elen, NULL), NT_OK);
        ck_assert_uint_eq(elen, b64_encoded_len(len));
        ck_assert_int_eq(b64_decode(enc, elen, back, sizeof back, &dlen, NULL), NT_OK);
        ck_assert_uint_eq(dlen, len);
        ck_assert(memcmp(plain, back, len) == 0);
    }
}
END_TEST

/* RFC 4648 §10 vectors in the §5 alphabet without padding, plus the two
 * characters that differ from the standard alphabet. */
static const struct {
    const char *plain, *url;
} url_vectors[] = {
    {"", ""},           {"f", "Zg"},          {"fo", "Zm8"},          {"foo", "Zm9v"},
    {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"}, {"\xfb\xff", "-_8"},
};

START_TEST(base64url_vectors_round_trip_without_padding)
{
    const char *plain = url_vectors[_i].plain, *url = url_vectors[_i].url;
    size_t plen = strlen(plain), n = 0;
    char enc[32];
    unsigned char dec[32];
    nt_err err = {{0}};
    ck_assert_int_eq(b64url_encode((const unsigned char *)plain, plen, enc, sizeof enc, &n, &err),
                     NT_OK);
    ck_assert_str_eq(enc, url);
    ck_assert_uint_eq(n, b64url_encoded_len(plen));
    ck_assert_int_eq(b64url_decode(url, strlen(url), dec, sizeof dec, &n, &err), NT_OK);
    ck_assert_uint_eq(n, plen);
    ck_assert(memcmp(dec, plain, plen) == 0);
}
END_TEST

START_TEST(malformed_base64url_is_refused)
{
    static const struct {
        const char *in;
        nt_status want;
        const char *msg;
    } bad[] = {
        {"Zm9v+A", NT_ERR_PARSE, "invalid base64url character 0x2b ('+') at offset 4"},
        {"Zm9v/A", NT_ERR_PARSE, "invalid base64url character 0x2f ('/') at offset 4"},
        {"Zg==", NT_ERR_PARSE, "invalid base64url character 0x3d ('=') at offset 2"},
        {"Zm9vY", NT_ERR_PARSE, "base64url length 5 is impossible (1 mod 4)"},
        {"Zh", NT_ERR_PARSE, "non-zero padding bits in base64url at offset 1"},
        {"Zm9vYmFyZm9vYmFy", NT_ERR_LIMIT, "base64url decodes to 12 bytes, buffer holds 8"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        unsigned char out[8];
        size_t n = 0;
        nt_err err = {{0}};
        ck_assert_int_eq(b64url_decode(bad[i].in, strlen(bad[i].in), out, sizeof out, &n, &err),
                         bad[i].want);
        ck_assert_str_eq(err.msg, bad[i].msg);
    }
    char small[4];
    nt_err err = {{0}};
    ck_assert_int_eq(
        b64url_encode((const unsigned char *)"foo", 3, small, sizeof small, NULL, &err),
        NT_ERR_LIMIT);
}
END_TEST

/* Long inputs go through the 32-character vector blocks where the CPU has
 * AVX2: every byte value at every position of a 200-character input (but the
 * last quad, where '=' may be padding) must be
 * accepted exactly when it is in the alphabet, refused with its own offset
 * otherwise, and decode to what the encoder was given. */
START_TEST(every_byte_value_at_every_position_of_a_long_input)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned char plain[150], back[150];
    char enc[201];
    for (size_t i = 0; i < sizeof plain; i++)
        plain[i] = (unsigned char)(i * 37 + 11);
    size_t elen, n;
    ck_assert_int_eq(b64_encode(plain, sizeof plain, enc, sizeof enc, &elen, NULL), NT_OK);
    ck_assert_uint_eq(elen, 200);
    for (size_t pos = 0; pos + 4 < elen; pos++) { /* the last quad ('=') has its own tests */
        for (int c = 0; c < 256; c++) {
            /* every byte value in the first 40 positions, a few after them */
            if (pos >= 40 && !strchr("A/+.=-_ \x80\xff", c)) continue;
            char in[200];
            memcpy(in, enc, sizeof in);
            in[pos] = (char)c;
            nt_err err = {{0}};
            nt_status st = b64_decode(in, sizeof in, back, sizeof back, &n, &err);
            int valid = c != 0 && strchr(alphabet, c) != NULL;
            if (valid) {
                ck_assert_msg(st == NT_OK, "pos %zu byte 0x%02x: %s", pos, c, err.msg);
                /* only the 3-byte group holding pos may differ from plain */
                for (size_t k = 0; k < sizeof plain; k++)
                    if (k / 3 != pos / 4) ck_assert_uint_eq(back[k], plain[k]);
            } else {
                ck_assert_msg(st == NT_ERR_PARSE, "pos %zu byte 0x%02x accepted", pos, c);
                char want[32];
                snprintf(want, sizeof want, "at offset %zu", pos);
                ck_assert_msg(strstr(err.msg, want), "pos %zu byte 0x%02x: %s", pos, c, err.msg);
            }
        }
    }
}
END_TEST

static Suite *base64_suite(void)
{
    Suite *s = suite_create("base64");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60); /* the byte-by-position sweep, on a shared machine */
    tcase_add_loop_test(tc, rfc4648_vectors_decode, 0, sizeof rfc_vectors / sizeof rfc_vectors[0]);
    tcase_add_loop_test(tc, rfc4648_vectors_encode, 0, sizeof rfc_vectors / sizeof rfc_vectors[0]);
    tcase_add_loop_test(tc, malformed_base64_is_refused_with_the_offending_offset, 0,
                        sizeof bad_inputs / sizeof bad_inputs[0]);
    tcase_add_test(tc, an_invalid_character_is_found_at_every_position);
    tcase_add_test(tc, a_too_small_output_buffer_is_a_limit_error);
    tcase_add_test(tc, an_empty_input_decodes_to_nothing);
    tcase_add_test(tc, every_length_and_byte_value_round_trips);
    tcase_add_loop_test(tc, base64url_vectors_round_trip_without_padding, 0,
                        sizeof url_vectors / sizeof url_vectors[0]);
    tcase_add_test(tc, malformed_base64url_is_refused);
    tcase_add_test(tc, every_byte_value_at_every_position_of_a_long_input);
    suite_add_tcase(s, tc);
    return s;
}

NT_TEST_MAIN(base64_suite)
