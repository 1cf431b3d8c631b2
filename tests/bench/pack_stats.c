/*
 * pack_stats.c — which rules' prefilters pass which records, and how many of those the rule
 * matches.
 *
 * Not built by CMake (a bench tool): after a normal build,
 *   python3 -c 'import json,base64,sys
 *   for i,l in enumerate(open("tests/bench/out/firehose_mixb.ndjson")):
 *       if i>=4: break
 *       for r in json.loads(l)["records"]:
 * print(base64.b64decode(r["data"]).decode().replace("\n"," "))' > /tmp/mixb.txt
 *   gcc -O1 -Iservice tests/bench/pack_stats.c build/libntcore.a -ljansson -lhiredis -lmicrohttpd
 * -lz \ -lssl -lcrypto -lcurl -lmaxminddb -lm -lpthread -o /tmp/pack_stats /tmp/pack_stats
 * rules/elastic-aws /tmp/mixb.txt | sort -k1,1nr | head Input: one EventBridge-wrapped CloudTrail
 * record per line. Output: per rule, records its prefilter passed, records it matched, rule_id and
 * its prefilter clauses; first line: records, passed by any rule, matched by any rule. A rule
 * passing many records it never matches has a weak prefilter.
 */
#include "ctview.h"
#include "kql.h"
#include "rule.h"
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: pack_stats RULES_DIR RECORDS.txt\n");
        return 2;
    }
    nt_ruleset *rs;
    nt_err err;
    if (ruleset_load_dir(argv[1], 0, &rs, &err) != NT_OK) return 1;
    FILE *f = fopen(argv[2], "r");
    if (!f) return 1;
    size_t *pass = calloc(rs->n, sizeof *pass), *match = calloc(rs->n, sizeof *match);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    size_t recs = 0, anypass = 0, anymatch = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        recs++;
        json_t *doc = json_loadb(line, (size_t)n, 0, NULL);
        json_t *d = json_object_get(doc, "detail");
        ct_event ev;
        ct_event_init(&ev, rs->schema, d, 0);
        int ap = 0, am = 0;
        for (size_t i = 0; i < rs->n; i++) {
            int p = kql_prefilter(rs->rules[i]->query, line, (size_t)n);
            if (!p) continue;
            pass[i]++;
            ap = 1;
            if (kql_match(rs->rules[i]->query, &ev)) {
                match[i]++;
                am = 1;
            }
        }
        anypass += ap;
        anymatch += am;
        json_decref(doc);
    }
    printf("records %zu anypass %zu anymatch %zu\n", recs, anypass, anymatch);
    for (size_t i = 0; i < rs->n; i++)
        if (pass[i]) {
            char buf[300];
            kql_prefilter_describe(rs->rules[i]->query, buf, sizeof buf);
            printf("%5zu %5zu %s | %s\n", pass[i], match[i], rs->rules[i]->rule_id, buf);
        }
    return 0;
}
