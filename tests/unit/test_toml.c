/*
 * Unit tests for toml.c: a table of valid documents with the JSON each must
 * become, a table of invalid documents with the status and the message
 * (line:column included) each must give, the size and depth limits, and the
 * real rule files under tests/data/toml/rules/ — each must load, the seed rule
 * must yield known values, and every prefix and single-byte corruption of it
 * must either parse or fail with a positioned message.
 */
#include "toml.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RULES_DIR NT_TEST_DATA "/toml/rules"
#define SEED_RULE RULES_DIR "/aws_account_discovery_by_rare_user.toml"
/* The seed plus 49 new_terms and 85 query rules (see rules/SOURCES.txt). */
#define RULE_FILE_COUNT 140

/* ---- helpers ------------------------------------------------------------ */

static json_t *parse_ok(const char *text, size_t len, const char *what)
{
    json_t *doc = NULL;
    nt_err err = {{0}};
    nt_status st = toml_parse(text, len, &doc, &err);
    ck_assert_msg(st == NT_OK, "%s: status %d: %s", what, st, err.msg);
    ck_assert_ptr_nonnull(doc);
    return doc;
}

/* Follow a path like "rule.threat[0].technique[0].id" through a document. */
static json_t *at_path(json_t *doc, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *node = doc;
    for (char *part = strtok(buf, "."); part && node; part = strtok(NULL, ".")) {
        char *index = strchr(part, '[');
        if (index) *index = '\0';
        node = json_object_get(node, part);
        while (index && node) {
            node = json_array_get(node, strtoul(index + 1, NULL, 10));
            index = strchr(index + 1, '[');
        }
    }
    return node;
}

static const char *string_at(json_t *doc, const char *path)
{
    json_t *node = at_path(doc, path);
    ck_assert_msg(json_is_string(node), "%s is not a string", path);
    return json_string_value(node);
}

/* ---- valid documents ---------------------------------------------------- */

static const struct {
    const char *name;
    const char *toml; /* NUL-terminated unless len is set */
    size_t len;
    const char *json;
} valid_cases[] = {
    {"empty document", "", 0, "{}"},
    {"comments and blank lines only", "# a\n\n   # b\t\n", 0, "{}"},
    {"bare, quoted and literal keys",
     "a = 1\n_b-2 = 2\n\"x y\" = 3\n'p.q' = 4\n\"\" = 5\n1234 = 6\n", 0,
     "{\"a\":1,\"_b-2\":2,\"x y\":3,\"p.q\":4,\"\":5,\"1234\":6}"},
    {"dotted keys build tables", "a.b.c = 1\na . b . d = 2\n\"q\".'r' = 3\n", 0,
     "{\"a\":{\"b\":{\"c\":1,\"d\":2}},\"q\":{\"r\":3}}"},
    {"basic string escapes", "s = \"\\b\\t\\n\\f\\r\\\"\\\\/\"\n", 0,
     "{\"s\":\"\\b\\t\\n\\f\\r\\\"\\\\/\"}"},
    {"unicode escapes become UTF-8", "s = \"\\u00e9\\u20AC\\U0001F600\"\n", 0,
     "{\"s\":\"\\u00e9\\u20ac\\ud83d\\ude00\"}"},
    {"a NUL escape is kept inside the string", "s = \"a\\u0000b\"\n", 0, "{\"s\":\"a\\u0000b\"}"},
    {"raw UTF-8 and tabs pass through", "s = \"caf\xC3\xA9\tok\"\n", 0,
     "{\"s\":\"caf\\u00e9\\tok\"}"},
    {"literal strings keep backslashes", "p = 'C:\\path\\n'\n", 0, "{\"p\":\"C:\\\\path\\\\n\"}"},
    {"multi-line basic string drops the first newline", "s = \"\"\"\nline1\nline2\n\"\"\"\n", 0,
     "{\"s\":\"line1\\nline2\\n\"}"},
    {"line-ending backslash joins lines",
     "s = \"\"\"\nThe quick \\\n\n    brown \\   \n  fox.\"\"\"\n", 0,
     "{\"s\":\"The quick brown fox.\"}"},
    {"multi-line literal string is raw", "s = '''\nraw \\n \"q\"\n  x'''\n", 0,
     "{\"s\":\"raw \\\\n \\\"q\\\"\\n  x\"}"},
    {"quotes may sit before the closing delimiter",
     "a = \"\"\"x\"\"\"\"\"\nb = '''y'''''\nc = \"\"\"\"z\"\"\"\"\n", 0,
     "{\"a\":\"x\\\"\\\"\",\"b\":\"y''\",\"c\":\"\\\"z\\\"\"}"},
    {"CRLF line endings are read as LF", "a = 1\r\ns = \"\"\"\r\nx\r\ny\"\"\"\r\n[t]\r\nb = 2\r\n",
     0, "{\"a\":1,\"s\":\"x\\ny\",\"t\":{\"b\":2}}"},
    {"arrays span lines with comments and a trailing comma",
     "a = [\n  1, # one\n  2,\n\n  # gap\n  3,\n]\n", 0, "{\"a\":[1,2,3]}"},
    {"arrays nest and mix types", "a = [[1, 2], [\"x\"], [], {k = true}, 1.5]\n", 0,
     "{\"a\":[[1,2],[\"x\"],[],{\"k\":true},1.5]}"},
    {"inline tables with dotted keys", "t = { a = 1, b.c = \"x\", b.d = [] }\ne = {}\n", 0,
     "{\"t\":{\"a\":1,\"b\":{\"c\":\"x\",\"d\":[]}},\"e\":{}}"},
    {"integers in every base with underscores",
     "a = 42\nb = +17\nc = -5\nd = 1_000\ne = 0xDEAD_beef\nf = 0o755\ng = 0b1101\nh = 0\ni = -0\n",
     0,
     "{\"a\":42,\"b\":17,\"c\":-5,\"d\":1000,\"e\":3735928559,\"f\":493,\"g\":13,\"h\":0,\"i\":0}"},
    {"64-bit integer extremes",
     "a = 9223372036854775807\nb = -9223372036854775808\nc = 0x7FFFFFFFFFFFFFFF\n", 0,
     "{\"a\":9223372036854775807,\"b\":-9223372036854775808,\"c\":9223372036854775807}"},
    {"floats", "a = 1.5\nb = -0.25\nc = 5e3\nd = 1E-2\ne = 6.25e+1\nf = 1_0.5_0\ng = 0.0\n", 0,
     "{\"a\":1.5,\"b\":-0.25,\"c\":5000.0,\"d\":0.01,\"e\":62.5,\"f\":10.5,\"g\":0.0}"},
    {"booleans", "t = true\nf = false\n", 0, "{\"t\":true,\"f\":false}"},
    {"implicit parent tables may be defined later", "[a.b]\nx = 1\n[a]\ny = 2\n", 0,
     "{\"a\":{\"b\":{\"x\":1},\"y\":2}}"},
    {"header whitespace and quoted parts", "[ a . \"b c\" . 'd' ]\nx = 1\n", 0,
     "{\"a\":{\"b c\":{\"d\":{\"x\":1}}}}"},
    {"arrays of tables append elements", "[[p]]\nn = 1\n[[p]]\nn = 2\n", 0,
     "{\"p\":[{\"n\":1},{\"n\":2}]}"},
    {"nested headers attach to the last element of the enclosing array",
     "[[r.t]]\nf = \"M\"\n[[r.t.q]]\nid = \"T1\"\n[[r.t.q.s]]\nid = \"T1.1\"\n[[r.t.q]]\nid = "
     "\"T2\"\n[r.t.c]\nid = \"TA\"\n"
     "[[r.t]]\nf = \"N\"\n[r.t.c]\nid = \"TB\"\n",
     0,
     "{\"r\":{\"t\":[{\"f\":\"M\",\"q\":[{\"id\":\"T1\",\"s\":[{\"id\":\"T1.1\"}]},{\"id\":\"T2\"}]"
     ",\"c\":{\"id\":\"TA\"}},"
     "{\"f\":\"N\",\"c\":{\"id\":\"TB\"}}]}}"},
    {"a sub-table may extend a table made by dotted keys",
     "[fruit]\napple.color = \"red\"\napple.taste.sweet = true\n[fruit.apple.texture]\nsmooth = "
     "true\n",
     0,
     "{\"fruit\":{\"apple\":{\"color\":\"red\",\"taste\":{\"sweet\":true},\"texture\":{\"smooth\":"
     "true}}}}"},
    {"comments may follow values and headers", "a = \"#not\" # yes\n[t] # c\nb = [1] # c\n", 0,
     "{\"a\":\"#not\",\"t\":{\"b\":[1]}}"},
    {"a leading byte-order mark is skipped",
     "\xEF\xBB\xBF"
     "a = 1\n",
     0, "{\"a\":1}"},
    {"no newline needed at the end", "a = 'x'", 0, "{\"a\":\"x\"}"},
};

START_TEST(valid_documents_become_the_expected_json)
{
    const char *toml = valid_cases[_i].toml;
    size_t len = valid_cases[_i].len ? valid_cases[_i].len : strlen(toml);
    json_t *got = parse_ok(toml, len, valid_cases[_i].name);
    json_error_t jerr;
    json_t *want = json_loads(valid_cases[_i].json, JSON_ALLOW_NUL, &jerr);
    ck_assert_msg(want != NULL, "%s: bad expected JSON: %s", valid_cases[_i].name, jerr.text);
    char *got_text = json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY);
    ck_assert_msg(json_equal(got, want), "%s: got %s, want %s", valid_cases[_i].name, got_text,
                  valid_cases[_i].json);
    free(got_text);
    json_decref(got);
    json_decref(want);
}
END_TEST

/* ---- invalid documents -------------------------------------------------- */

static const struct {
    const char *name;
    const char *toml;
    size_t len; /* 0 = strlen */
    nt_status status;
    const char *message; /* must appear in err.msg */
} invalid_cases[] = {
    {"duplicate key", "a = 1\nb = 2\na = 3\n", 0, NT_ERR_PARSE,
     "line 3, column 1: duplicate key 'a'"},
    {"duplicate dotted key", "a.b = 1\na.b = 2\n", 0, NT_ERR_PARSE,
     "line 2, column 3: duplicate key 'a.b'"},
    {"duplicate key inside an inline table", "t = { a = 1, a = 2 }\n", 0, NT_ERR_PARSE,
     "line 1, column 14: duplicate key 'a'"},
    {"table defined twice", "[a]\nx = 1\n[a]\n", 0, NT_ERR_PARSE,
     "line 3, column 2: table [a] is defined twice"},
    {"sub-table defined twice", "[a.b]\n[a]\n[a.b]\n", 0, NT_ERR_PARSE,
     "line 3, column 4: table [a.b] is defined twice"},
    {"header for a table made by dotted keys", "[a]\nb.c = 1\n[a.b]\n", 0, NT_ERR_PARSE,
     "line 3, column 4: table [a.b] was already defined by dotted keys"},
    {"dotted keys into a table defined by a header", "[a.b.c]\nz = 9\n[a]\nb.c.t = 1\n", 0,
     NT_ERR_PARSE, "line 4, column 3: cannot add dotted keys to table 'b.c'"},
    {"dotted keys into an array of tables", "[[a.b]]\n[a]\nb.x = 1\n", 0, NT_ERR_PARSE,
     "line 3, column 1: key 'b' is an array, not a table"},
    {"dotted keys into an inline table", "a = { b = 1 }\na.c = 2\n", 0, NT_ERR_PARSE,
     "line 2, column 1: cannot add keys to inline table 'a'"},
    {"dotted keys through a value", "a = 1\na.b = 2\n", 0, NT_ERR_PARSE,
     "line 2, column 1: key 'a' already holds a value, not a table"},
    {"header extending an inline table", "a = { b = 1 }\n[a.c]\n", 0, NT_ERR_PARSE,
     "line 2, column 2: cannot add a table to inline table 'a'"},
    {"header redefining an inline table", "a = {}\n[a]\n", 0, NT_ERR_PARSE,
     "line 2, column 2: table [a] is already defined as an inline table"},
    {"header over a plain value", "a = 1\n[a]\n", 0, NT_ERR_PARSE,
     "line 2, column 2: key 'a' already holds a value"},
    {"array of tables over a static array", "a = []\n[[a]]\n", 0, NT_ERR_PARSE,
     "line 2, column 3: cannot append to 'a': it is an array value, not an array of tables"},
    {"array of tables over a table", "[a]\n[[a]]\n", 0, NT_ERR_PARSE,
     "line 2, column 3: 'a' is already a table; it cannot become an array of tables"},
    {"table header over an array of tables", "[[a]]\n[a]\n", 0, NT_ERR_PARSE,
     "line 2, column 2: [a] is an array of tables; write [[a]] to add an element"},
    {"unterminated basic string", "a = 1\nb = \"abc", 0, NT_ERR_PARSE,
     "line 2, column 5: unterminated string"},
    {"unterminated literal string", "b = 'abc", 0, NT_ERR_PARSE,
     "line 1, column 5: unterminated string"},
    {"unterminated multi-line string", "b = \"\"\"abc\n\ndef", 0, NT_ERR_PARSE,
     "line 1, column 5: unterminated multi-line string"},
    {"newline in a basic string", "a = \"abc\ndef\"\n", 0, NT_ERR_PARSE,
     "line 1, column 9: newline in a basic string"},
    {"newline in a literal string", "a = 'abc\n'\n", 0, NT_ERR_PARSE,
     "line 1, column 9: newline in a literal string"},
    {"invalid escape", "a = \"x\\qy\"\n", 0, NT_ERR_PARSE,
     "line 1, column 7: invalid escape '\\q'"},
    {"short unicode escape", "a = \"\\u12G4\"\n", 0, NT_ERR_PARSE,
     "line 1, column 6: invalid escape: \\u needs exactly 4 hex digits"},
    {"surrogate unicode escape", "a = \"\\uD800\"\n", 0, NT_ERR_PARSE,
     "line 1, column 6: invalid escape: \\uD800 is not a Unicode scalar value"},
    {"unicode escape beyond U+10FFFF", "a = \"\\U00110000\"\n", 0, NT_ERR_PARSE,
     "is not a Unicode scalar value"},
    {"backslash-space that does not end a line", "a = \"\"\"x\\ y\"\"\"\n", 0, NT_ERR_PARSE,
     "line 1, column 9: invalid escape '\\ '"},
    {"missing equals sign", "a\n", 0, NT_ERR_PARSE, "line 1, column 2: missing '=' after the key"},
    {"something else where the equals sign belongs", "key \"v\"\n", 0, NT_ERR_PARSE,
     "line 1, column 5: expected '=' after the key, found '\"'"},
    {"missing value", "a = # nothing\n", 0, NT_ERR_PARSE, "line 1, column 5: missing value"},
    {"unquoted string value", "a = hello\n", 0, NT_ERR_PARSE,
     "line 1, column 5: invalid value (strings must be quoted)"},
    {"two values on one line", "a = 1 b = 2\n", 0, NT_ERR_PARSE,
     "line 1, column 7: expected the end of the line after a value, found 'b'"},
    {"control character in a basic string", "a = \"x\x01y\"\n", 0, NT_ERR_PARSE,
     "line 1, column 7: control character U+0001 in a string"},
    {"control character in a comment", "# bell \x07\n", 0, NT_ERR_PARSE,
     "line 1, column 8: control character U+0007 in a comment"},
    {"DEL in a literal string", "a = 'x\x7f'\n", 0, NT_ERR_PARSE,
     "line 1, column 7: control character U+007F"},
    {"NUL byte in the document", "a = 1\n\0", 7, NT_ERR_PARSE,
     "line 2, column 1: control character U+0000"},
    {"lone carriage return", "a = 1\rb = 2\n", 0, NT_ERR_PARSE,
     "line 1, column 6: carriage return not followed by a line feed"},
    {"invalid UTF-8 byte", "a = 1\nb = \"x\xFFy\"\n", 0, NT_ERR_PARSE,
     "line 2, column 7: invalid UTF-8 (byte 0xFF)"},
    {"overlong UTF-8", "a = \"\xC0\xAF\"\n", 0, NT_ERR_PARSE,
     "line 1, column 6: invalid UTF-8 (byte 0xC0)"},
    {"UTF-8 encoded surrogate", "a = \"\xED\xA0\x80\"\n", 0, NT_ERR_PARSE,
     "line 1, column 6: invalid UTF-8 (byte 0xED)"},
    {"truncated UTF-8 at the end", "a = \"\xC3", 0, NT_ERR_PARSE,
     "line 1, column 6: invalid UTF-8 (byte 0xC3)"},
    {"columns count characters, not bytes", "\"\xC3\xA9\xC3\xA9\" = \"x\" y\n", 0, NT_ERR_PARSE,
     "line 1, column 12: expected the end of the line"},
    {"non-ASCII character named by code point", "a = 1 \xE2\x82\xAC\n", 0, NT_ERR_PARSE,
     "line 1, column 7: expected the end of the line after a value, found U+20AC"},
    {"non-ASCII bare key", "\xC3\xA9 = 1\n", 0, NT_ERR_PARSE,
     "line 1, column 1: expected a key (bare keys are"},
    {"empty table header", "[]\n", 0, NT_ERR_PARSE, "line 1, column 2: expected a key, found ']'"},
    {"unclosed table header", "[a\nb = 1\n", 0, NT_ERR_PARSE,
     "line 1, column 3: expected ']' to close the table header"},
    {"unclosed array-of-tables header", "[[a]\n", 0, NT_ERR_PARSE,
     "line 1, column 4: expected ']]' to close the array of tables header"},
    {"text after a header", "[a] x\n", 0, NT_ERR_PARSE,
     "line 1, column 5: expected the end of the line after a table header, found 'x'"},
    {"multi-line string as a key", "\"\"\"k\"\"\" = 1\n", 0, NT_ERR_PARSE,
     "line 1, column 1: a multi-line string cannot be a key"},
    {"missing key before equals", "= 1\n", 0, NT_ERR_PARSE,
     "line 1, column 1: expected a key before '='"},
    {"unterminated array", "a = [1,\n2\n", 0, NT_ERR_PARSE, "line 1, column 5: unterminated array"},
    {"array elements without a comma", "a = [1 2]\n", 0, NT_ERR_PARSE,
     "line 1, column 8: expected ',' or ']' after an array element, found '2'"},
    {"array with an empty slot", "a = [1,,2]\n", 0, NT_ERR_PARSE,
     "line 1, column 8: invalid value"},
    {"trailing comma in an inline table", "t = { a = 1, }\n", 0, NT_ERR_PARSE,
     "line 1, column 14: trailing comma in an inline table"},
    {"newline in an inline table", "t = { a = 1,\n b = 2 }\n", 0, NT_ERR_PARSE,
     "line 1, column 13: newline in an inline table"},
    {"unterminated inline table", "t = { a = 1", 0, NT_ERR_PARSE,
     "line 1, column 5: unterminated inline table"},
    {"leading zeros", "a = 007\n", 0, NT_ERR_PARSE,
     "line 1, column 5: leading zeros are not allowed"},
    {"double underscore in a number", "a = 1__0\n", 0, NT_ERR_PARSE,
     "line 1, column 7: an underscore in a number must sit between two digits"},
    {"trailing underscore in a number", "a = 10_\n", 0, NT_ERR_PARSE,
     "line 1, column 8: a decimal number ends without a digit"},
    {"signed hexadecimal", "a = -0x1F\n", 0, NT_ERR_PARSE,
     "line 1, column 5: a hexadecimal integer may not have a sign"},
    {"bad digit for the base", "a = 0o78\n", 0, NT_ERR_PARSE,
     "line 1, column 8: invalid character '8' in an octal integer"},
    {"integer beyond 64 bits", "a = 9223372036854775808\n", 0, NT_ERR_PARSE,
     "line 1, column 5: integer does not fit in 64 bits"},
    {"hexadecimal beyond 64 bits", "a = 0x8000000000000000\n", 0, NT_ERR_PARSE,
     "integer does not fit in 64 bits"},
    {"float without fraction digits", "a = 1.\n", 0, NT_ERR_PARSE,
     "line 1, column 7: a decimal point must be followed by a digit"},
    {"float out of range", "a = 1e400\n", 0, NT_ERR_PARSE,
     "line 1, column 5: float is out of range"},
    {"junk after a number", "a = 12ab\n", 0, NT_ERR_PARSE,
     "line 1, column 7: invalid character 'a' in a number"},
    {"offset date-time is unsupported", "d = 1979-05-27T07:32:00Z\n", 0, NT_ERR_UNSUPPORTED,
     "line 1, column 5: dates and times are not supported"},
    {"local time is unsupported", "t = [07:32:00]\n", 0, NT_ERR_UNSUPPORTED,
     "line 1, column 6: dates and times are not supported"},
    {"inf is unsupported", "f = -inf\n", 0, NT_ERR_UNSUPPORTED,
     "line 1, column 5: inf and nan are not supported"},
    {"nan is unsupported", "f = nan\n", 0, NT_ERR_UNSUPPORTED,
     "line 1, column 5: inf and nan are not supported"},
    {"long key paths are cut in messages",
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
     "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb."
     "cccccccccccccccccccccccccccccccccccccccccccccccccc = 1\n"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
     "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb."
     "cccccccccccccccccccccccccccccccccccccccccccccccccc = 2\n",
     0, NT_ERR_PARSE, "...'"},
    {"a NUL in a key", "a.\"x\\u0000\" = 1\n", 0, NT_ERR_PARSE,
     "line 1, column 3: a key may not contain U+0000"},
    {"control characters in keys stay out of messages", "\"a\\nb\" = 1\n\"a\\nb\" = 2\n", 0,
     NT_ERR_PARSE, "duplicate key 'a?b'"},
};

START_TEST(invalid_documents_fail_with_a_positioned_message)
{
    const char *toml = invalid_cases[_i].toml;
    size_t len = invalid_cases[_i].len ? invalid_cases[_i].len : strlen(toml);
    json_t *doc = (json_t *)1;
    nt_err err = {{0}};
    nt_status st = toml_parse(toml, len, &doc, &err);
    ck_assert_msg(st == invalid_cases[_i].status, "%s: status %d (want %d): %s",
                  invalid_cases[_i].name, st, invalid_cases[_i].status, err.msg);
    ck_assert_ptr_null(doc);
    ck_assert_msg(strstr(err.msg, invalid_cases[_i].message) != NULL,
                  "%s: message \"%s\" lacks \"%s\"", invalid_cases[_i].name, err.msg,
                  invalid_cases[_i].message);
    ck_assert_msg(strncmp(err.msg, "line ", 5) == 0, "%s: message \"%s\" has no position",
                  invalid_cases[_i].name, err.msg);
    /* messages travel into JSON error bodies, so they must be valid UTF-8 */
    json_t *as_json = json_string(err.msg);
    ck_assert_msg(as_json != NULL, "%s: message is not valid UTF-8", invalid_cases[_i].name);
    json_decref(as_json);
}
END_TEST

START_TEST(keys_keep_document_order)
{
    const char *toml = "z = 1\na = 2\n[m]\nk = 3\n";
    json_t *doc = parse_ok(toml, strlen(toml), "order");
    char *text = json_dumps(doc, JSON_COMPACT);
    ck_assert_str_eq(text, "{\"z\":1,\"a\":2,\"m\":{\"k\":3}}");
    free(text);
    json_decref(doc);
}
END_TEST

START_TEST(a_null_error_pointer_is_allowed)
{
    json_t *doc = NULL;
    ck_assert_int_eq(toml_parse("a = = 1", 7, &doc, NULL), NT_ERR_PARSE);
    ck_assert_ptr_null(doc);
}
END_TEST

/* ---- limits ------------------------------------------------------------- */

START_TEST(documents_over_one_mebibyte_are_refused)
{
    size_t len = TOML_MAX_BYTES + 1;
    char *text = malloc(len);
    ck_assert_ptr_nonnull(text);
    memset(text, '#', len); /* one long comment: valid TOML if it were allowed */
    json_t *doc = NULL;
    nt_err err = {{0}};
    ck_assert_int_eq(toml_parse(text, len, &doc, &err), NT_ERR_LIMIT);
    ck_assert_ptr_nonnull(strstr(err.msg, "1 MiB"));
    ck_assert_int_eq(toml_parse(text, TOML_MAX_BYTES, &doc, &err), NT_OK);
    json_decref(doc);
    free(text);
}
END_TEST

/* "a = " followed by n '[' and n ']' */
static char *nested_arrays(size_t n)
{
    char *s = malloc(2 * n + 8);
    ck_assert_ptr_nonnull(s);
    size_t k = 0;
    memcpy(s, "a = ", 4);
    k = 4;
    for (size_t i = 0; i < n; i++)
        s[k++] = '[';
    for (size_t i = 0; i < n; i++)
        s[k++] = ']';
    s[k] = '\0';
    return s;
}

/* before + "k.k.k…" (n parts) + after, as a new string */
static char *dotted_document(const char *before, size_t n, const char *after)
{
    size_t cap = strlen(before) + 2 * n + strlen(after) + 1;
    char *s = malloc(cap);
    ck_assert_ptr_nonnull(s);
    size_t used = (size_t)snprintf(s, cap, "%s", before);
    for (size_t i = 0; i < n; i++)
        used += (size_t)snprintf(s + used, cap - used, "%sk", i ? "." : "");
    snprintf(s + used, cap - used, "%s", after);
    return s;
}

START_TEST(nesting_is_limited_to_32_levels)
{
    json_t *doc = NULL;
    nt_err err = {{0}};
    char *ok = nested_arrays(TOML_MAX_DEPTH);
    ck_assert_int_eq(toml_parse(ok, strlen(ok), &doc, &err), NT_OK);
    json_decref(doc);
    char *deep = nested_arrays(TOML_MAX_DEPTH + 1);
    ck_assert_int_eq(toml_parse(deep, strlen(deep), &doc, &err), NT_ERR_LIMIT);
    ck_assert_ptr_nonnull(strstr(err.msg, "line 1, column 37: nesting deeper than 32 levels"));
    free(ok);
    free(deep);

    /* 33 dotted key parts */
    char *key = dotted_document("", TOML_MAX_DEPTH + 1, " = 1\n");
    ck_assert_int_eq(toml_parse(key, strlen(key), &doc, &err), NT_ERR_LIMIT);
    ck_assert_ptr_nonnull(strstr(err.msg, "key has more than 32 parts"));
    free(key);

    /* a 30-part header plus a 3-part key is 33 levels; plus 2 is 32 */
    char *header = dotted_document("[", 30, "]\nx.y.z = 1\n");
    ck_assert_int_eq(toml_parse(header, strlen(header), &doc, &err), NT_ERR_LIMIT);
    ck_assert_ptr_nonnull(strstr(err.msg, "line 2, column 1: nesting deeper than 32 levels"));
    free(header);
    header = dotted_document("[", 30, "]\nx.y = 1\n");
    ck_assert_int_eq(toml_parse(header, strlen(header), &doc, &err), NT_OK);
    json_decref(doc);
    free(header);

    /* inline tables count too: x is level 32, y would be 33 */
    header = dotted_document("[", 31, "]\nx = { y = 1 }\n");
    ck_assert_int_eq(toml_parse(header, strlen(header), &doc, &err), NT_ERR_LIMIT);
    ck_assert_ptr_nonnull(strstr(err.msg, "line 2, column 7: nesting deeper than 32 levels"));
    free(header);
    header = dotted_document("[", 31, "]\nx = {}\n");
    ck_assert_int_eq(toml_parse(header, strlen(header), &doc, &err), NT_OK);
    json_decref(doc);
    free(header);
}
END_TEST

/* ---- real rule files ---------------------------------------------------- */

static void check_rule_file(const char *path, void *ctx)
{
    (void)ctx;
    size_t len;
    char *text = tu_read_file(path, &len);
    json_t *doc = parse_ok(text, len, path);
    ck_assert_msg(strlen(string_at(doc, "rule.rule_id")) == 36, "%s: rule_id is not a UUID", path);
    ck_assert_msg(strlen(string_at(doc, "rule.query")) > 0, "%s: empty query", path);
    const char *type = string_at(doc, "rule.type");
    ck_assert_msg(strcmp(type, "new_terms") == 0 || strcmp(type, "query") == 0 ||
                      strcmp(type, "threshold") == 0,
                  "%s: type %s", path, type);
    json_decref(doc);
    free(text);
}

START_TEST(every_copied_rule_file_yields_rule_id_query_and_type)
{
    ck_assert_uint_eq(tu_walk(RULES_DIR, ".toml", 3, check_rule_file, NULL), RULE_FILE_COUNT);
}
END_TEST

START_TEST(the_seed_rule_yields_its_known_values)
{
    size_t len;
    char *text = tu_read_file(SEED_RULE, &len);
    json_t *doc = parse_ok(text, len, SEED_RULE);

    ck_assert_str_eq(string_at(doc, "rule.rule_id"), "444c8fad-874f-4f59-b0ea-cf26cea478bd");
    ck_assert_str_eq(string_at(doc, "rule.type"), "new_terms");
    ck_assert_str_eq(string_at(doc, "rule.language"), "kuery");
    ck_assert_str_eq(string_at(doc, "rule.from"), "now-6m");
    ck_assert_str_eq(string_at(doc, "metadata.creation_date"), "2026/04/01");
    ck_assert_int_eq(json_integer_value(at_path(doc, "rule.risk_score")), 21);

    json_t *terms = at_path(doc, "rule.new_terms.value");
    ck_assert_int_eq(json_array_size(terms), 2);
    ck_assert_str_eq(json_string_value(json_array_get(terms, 0)), "cloud.account.id");
    ck_assert_str_eq(json_string_value(json_array_get(terms, 1)), "user.name");
    ck_assert_str_eq(string_at(doc, "rule.new_terms.field"), "new_terms_fields");
    ck_assert_str_eq(string_at(doc, "rule.new_terms.history_window_start[0].value"), "now-10d");
    ck_assert_str_eq(string_at(doc, "rule.new_terms.history_window_start[0].field"),
                     "history_window_start");

    ck_assert_int_eq(json_array_size(at_path(doc, "rule.threat")), 1);
    ck_assert_str_eq(string_at(doc, "rule.threat[0].framework"), "MITRE ATT&CK");
    ck_assert_int_eq(json_array_size(at_path(doc, "rule.threat[0].technique")), 2);
    ck_assert_str_eq(string_at(doc, "rule.threat[0].technique[0].id"), "T1087");
    ck_assert_str_eq(string_at(doc, "rule.threat[0].technique[0].subtechnique[0].id"), "T1087.004");
    ck_assert_str_eq(string_at(doc, "rule.threat[0].technique[1].id"), "T1580");
    ck_assert_ptr_null(at_path(doc, "rule.threat[0].technique[1].subtechnique"));
    ck_assert_str_eq(string_at(doc, "rule.threat[0].tactic.id"), "TA0007");

    json_t *fields = at_path(doc, "rule.investigation_fields.field_names");
    ck_assert_int_eq(json_array_size(fields), 12);
    ck_assert_str_eq(json_string_value(json_array_get(fields, 0)), "@timestamp");
    ck_assert_str_eq(json_string_value(json_array_get(fields, 11)), "cloud.region");

    /* multi-line strings: the first newline is dropped, the text kept verbatim */
    const char *query = string_at(doc, "rule.query");
    ck_assert_int_eq(strncmp(query, "data_stream.dataset: \"aws.cloudtrail\"\n", 38), 0);
    ck_assert_ptr_nonnull(strstr(query, "\"DescribeOrgnanizationalUnit\""));
    const char *description = string_at(doc, "rule.description");
    ck_assert_int_eq(strncmp(description, "Identifies the first time", 25), 0);
    ck_assert_int_eq(json_array_size(at_path(doc, "rule.false_positives")), 1);
    ck_assert_int_eq(json_array_size(at_path(doc, "rule.tags")), 10);

    json_decref(doc);
    free(text);
}
END_TEST

/* Parse and check the outcome is clean: a document, or a positioned message.
 * Returns 1 when it parsed. */
static int expect_clean_outcome(const char *text, size_t len, const char *what, size_t at)
{
    json_t *doc = NULL;
    nt_err err = {{0}};
    nt_status st = toml_parse(text, len, &doc, &err);
    if (st == NT_OK) {
        ck_assert_ptr_nonnull(doc);
        json_decref(doc);
        return 1;
    }
    ck_assert_ptr_null(doc);
    ck_assert_msg(st == NT_ERR_PARSE || st == NT_ERR_UNSUPPORTED, "%s at %zu: status %d", what, at,
                  st);
    ck_assert_msg(strncmp(err.msg, "line ", 5) == 0, "%s at %zu: message \"%s\"", what, at,
                  err.msg);
    return 0;
}

START_TEST(every_prefix_of_a_rule_parses_or_fails_cleanly)
{
    size_t len;
    char *text = tu_read_file(SEED_RULE, &len);
    size_t parsed = 0;
    for (size_t cut = 0; cut <= len; cut++) {
        /* a copy of exactly cut bytes, so ASan catches a read past the end */
        char *prefix = malloc(cut ? cut : 1);
        ck_assert_ptr_nonnull(prefix);
        memcpy(prefix, text, cut);
        parsed += (size_t)expect_clean_outcome(prefix, cut, "prefix", cut);
        free(prefix);
    }
    /* both outcomes occur: the loop really cut through strings and headers */
    ck_assert_uint_gt(parsed, 100);
    ck_assert_uint_lt(parsed, len / 2);
    free(text);
}
END_TEST

START_TEST(corrupting_any_single_byte_of_a_rule_parses_or_fails_cleanly)
{
    /* byte i is replaced by hostile[i % n], so every byte and every hostile
     * value is tried while the loop stays one parse per byte */
    static const char hostile[] = {'\0', '"',  '\'', '[',    ']',    '{', '=',
                                   '\\', '\n', '#',  '\xFF', '\xC3', '.'};
    size_t len;
    char *text = tu_read_file(SEED_RULE, &len);
    char *copy = malloc(len);
    ck_assert_ptr_nonnull(copy);
    size_t parsed = 0;
    for (size_t at = 0; at < len; at++) {
        memcpy(copy, text, len);
        copy[at] = hostile[at % sizeof hostile];
        parsed += (size_t)expect_clean_outcome(copy, len, "corruption", at);
    }
    ck_assert_uint_lt(parsed, len);
    free(copy);
    free(text);
}
END_TEST

static Suite *toml_suite(void)
{
    Suite *s = suite_create("toml");
    TCase *tc = tcase_create("documents");
    tcase_add_loop_test(tc, valid_documents_become_the_expected_json, 0,
                        (int)(sizeof valid_cases / sizeof valid_cases[0]));
    tcase_add_loop_test(tc, invalid_documents_fail_with_a_positioned_message, 0,
                        (int)(sizeof invalid_cases / sizeof invalid_cases[0]));
    tcase_add_test(tc, keys_keep_document_order);
    tcase_add_test(tc, a_null_error_pointer_is_allowed);
    tcase_add_test(tc, documents_over_one_mebibyte_are_refused);
    tcase_add_test(tc, nesting_is_limited_to_32_levels);
    suite_add_tcase(s, tc);

    TCase *rules = tcase_create("rule files");
    tcase_set_timeout(rules, 120);
    tcase_add_test(rules, every_copied_rule_file_yields_rule_id_query_and_type);
    tcase_add_test(rules, the_seed_rule_yields_its_known_values);
    tcase_add_test(rules, every_prefix_of_a_rule_parses_or_fails_cleanly);
    tcase_add_test(rules, corrupting_any_single_byte_of_a_rule_parses_or_fails_cleanly);
    suite_add_tcase(s, rules);
    return s;
}

NT_TEST_MAIN(toml_suite)
