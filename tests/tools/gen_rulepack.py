#!/usr/bin/env python3
"""Generate the rule-pack acceptance corpus under tests/data/rulepack/ (run ONCE,
then hand-checked and committed; the tests read the committed files, never this
script's output at test time).

For every `query` rule of rules/elastic-aws/ the rule's KQL is parsed here (a
small parser of its own, not newtermsd's) and solved for:
  - a positive: a CloudTrail record whose ECS view satisfies the query;
  - near misses: the positive with one thing changed so that the query fails —
    an excluded value from a `not` clause made true, the outcome flipped, the
    action changed to a sibling verb — each checked false by this script's
    own KQL evaluator.
For every `threshold` rule it writes bursts per group: just under the count
(or cardinality), just over, and (replay only) the same number of events
spread wider than the look-back.
For the one rule with alert suppression it writes the suppression cases.

Output: tests/data/rulepack/query/<rule file stem>.json (S3 log file shape),
tests/data/rulepack/threshold/<stem>.json, threshold_window/<stem>.json,
suppression/*.json and manifest.json (what each record must or must not
raise). Usage: python3 tests/tools/gen_rulepack.py [repo root]
"""
import json
import os
import re
import sys
import tomllib
import uuid

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
RULES = os.path.join(ROOT, "rules", "elastic-aws")
OUT = os.path.join(ROOT, "tests", "data", "rulepack")
NS = uuid.UUID("6f1c2a34-7e0b-4d9a-9c61-0d5a2b7e4f10")
ACCOUNT = "111122223333"
BASE_MS = 1795000000000  # 2026-11-18T11:06:40Z; every event time is relative to this

# ---- KQL: parse ---------------------------------------------------------------


def tokenize(q):
    toks, i = [], 0
    while i < len(q):
        c = q[i]
        if c.isspace():
            i += 1
        elif c in "():":
            toks.append(("p", c))
            i += 1
        elif c == '"':
            j, buf = i + 1, ""
            while q[j] != '"':
                if q[j] == "\\":
                    j += 1
                buf += q[j]
                j += 1
            toks.append(("q", buf))
            i = j + 1
        else:
            j, buf = i, ""
            while j < len(q) and not q[j].isspace() and q[j] not in '():"':
                if q[j] == "\\":
                    j += 1
                    buf += "\\" + q[j]  # keep escapes: a literal, not a wildcard
                else:
                    buf += q[j]
                j += 1
            toks.append(("w", buf))
            i = j
    return toks


class P:
    def __init__(self, q):
        self.t = tokenize(q)
        self.i = 0

    def peek(self):
        return self.t[self.i] if self.i < len(self.t) else (None, None)

    def kw(self, k):
        t = self.peek()
        if t[0] == "w" and t[1].lower() == k:
            self.i += 1
            return True
        return False

    def expect(self, v):
        assert self.peek() == ("p", v), (self.peek(), v)
        self.i += 1

    def or_(self, val=None):
        kids = [self.and_(val)]
        while self.kw("or"):
            kids.append(self.and_(val))
        return kids[0] if len(kids) == 1 else ("or", kids)

    def and_(self, val=None):
        kids = [self.not_(val)]
        while self.kw("and"):
            kids.append(self.not_(val))
        return kids[0] if len(kids) == 1 else ("and", kids)

    def not_(self, val=None):
        if self.kw("not"):
            return ("not", self.not_(val))
        if self.peek() == ("p", "("):
            self.i += 1
            e = self.or_(val)
            self.expect(")")
            return e
        if val is not None:  # a value inside field:( ... )
            kind, v = self.t[self.i]
            self.i += 1
            return ("leaf", val, v, kind == "q")
        kind, field = self.t[self.i]
        self.i += 1
        self.expect(":")
        if self.peek() == ("p", "("):
            self.i += 1
            e = self.or_(field)
            self.expect(")")
            return e
        kind, v = self.t[self.i]
        self.i += 1
        return ("leaf", field, v, kind == "q")


def parse(q):
    p = P(q)
    e = p.or_()
    assert p.i == len(p.t), "trailing tokens"
    return e


# ---- KQL: evaluate ---------------------------------------------------------------


def pat_regex(v, quoted):
    if quoted:
        return re.compile(re.escape(v) + r"\Z", re.S)
    out, i = "", 0
    while i < len(v):
        if v[i] == "\\":
            out += re.escape(v[i + 1])
            i += 2
        elif v[i] == "*":
            out += ".*"
            i += 1
        else:
            out += re.escape(v[i])
            i += 1
    return re.compile(out + r"\Z", re.S)


def leaf_match(env, f, v, quoted):
    vals = env.get(f)
    if vals is None:
        return False
    if not quoted and v == "*":
        return True
    rx = pat_regex(v, quoted)
    return any(rx.match(x) for x in vals)


def ev(e, env):
    if e[0] == "leaf":
        return leaf_match(env, e[1], e[2], e[3])
    if e[0] == "not":
        return not ev(e[1], env)
    if e[0] == "and":
        return all(ev(k, env) for k in e[1])
    return any(ev(k, env) for k in e[1])


# ---- KQL: solve (backtracking over or/and choices) -----------------------------------

DEFAULT_VALUE = {"source.ip": "198.51.100.7", "tls.client.server_name": "example-bucket.s3.amazonaws.com"}


def instantiate(f, v, quoted):
    if quoted:
        return v
    if v == "*":
        return DEFAULT_VALUE.get(f, "x")
    return re.sub(r"\\(.)", r"\1", v.replace("*", "x"))


def solve(e, want, env):
    """Yield extensions of env (field -> {'eq': str|None, 'neg': [(v, quoted)]})."""
    kind = e[0]
    if kind == "leaf":
        f, v, quoted = e[1], e[2], e[3]
        c = env.get(f, {"eq": None, "neg": []})
        if want:
            if c["eq"] is not None:
                if leaf_match({f: [c["eq"]]}, f, v, quoted):
                    yield env
                return
            val = instantiate(f, v, quoted)
            if any(leaf_match({f: [val]}, f, nv, nq) for nv, nq in c["neg"]):
                return
            n = dict(env)
            n[f] = {"eq": val, "neg": c["neg"]}
            yield n
        else:
            if c["eq"] is not None:
                if not leaf_match({f: [c["eq"]]}, f, v, quoted):
                    yield env
                return
            n = dict(env)
            n[f] = {"eq": None, "neg": c["neg"] + [(v, quoted)]}
            yield n
    elif kind == "not":
        yield from solve(e[1], not want, env)
    elif (kind == "and") == want:  # and→true / or→false: every child
        def chain(kids, env):
            if not kids:
                yield env
                return
            for n in solve(kids[0], want, env):
                yield from chain(kids[1:], n)
        yield from chain(e[1], env)
    else:  # or→true / and→false: one child
        for k in e[1]:
            yield from solve(k, want, env)


# ---- ECS → CloudTrail ------------------------------------------------------------

NOT_PRODUCED = {"source.as.organization.name", "source.as.number", "user_agent.name"}


def set_path(obj, dotted, value):
    parts = dotted.split(".")
    cur = obj
    for i, p in enumerate(parts):
        last = i == len(parts) - 1
        if p == "items" and not last:
            lst = cur.setdefault("items", [{}])
            cur = lst[0]
            continue
        if last:
            cur[p] = value
        else:
            cur = cur.setdefault(p, {})


def typed(v):
    if v in ("true", "false"):
        return v == "true"
    if re.fullmatch(r"[0-9]+", v):
        return int(v)
    return v


def record(eq, seq, time_ms, tag):
    """A CloudTrail record whose view has the ECS values eq (field -> str)."""
    ui_type = eq.get("aws.cloudtrail.user_identity.type", "IAMUser")
    user = eq.get("user.name", "alice")
    ui = {"type": ui_type, "accountId": ACCOUNT}
    if ui_type == "Root":
        ui.update(principalId=ACCOUNT, arn=f"arn:aws:iam::{ACCOUNT}:root")
    elif ui_type == "AWSService":
        ui = {"type": "AWSService", "invokedBy": eq.get("aws.cloudtrail.user_identity.invoked_by", "ec2.amazonaws.com")}
    elif ui_type == "AssumedRole":
        ui.update(principalId="AROAEXAMPLEROLE:session-1", arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/{user}/session-1",
                  accessKeyId="ASIAEXAMPLE",
                  sessionContext={"sessionIssuer": {"type": "Role", "principalId": "AROAEXAMPLEROLE",
                                                    "arn": f"arn:aws:iam::{ACCOUNT}:role/{user}",
                                                    "accountId": ACCOUNT, "userName": user},
                                  "attributes": {"creationDate": "2026-11-17T00:00:00Z", "mfaAuthenticated": "false"}})
    else:
        ui.update(principalId=eq.get("user.id", "AIDAEXAMPLEUSER"), arn=f"arn:aws:iam::{ACCOUNT}:user/{user}",
                  accessKeyId="AKIAEXAMPLE", userName=user)
    if "aws.cloudtrail.user_identity.arn" in eq:
        ui["arn"] = eq["aws.cloudtrail.user_identity.arn"]
    if "aws.cloudtrail.user_identity.invoked_by" in eq:
        ui["invokedBy"] = eq["aws.cloudtrail.user_identity.invoked_by"]
    action = eq.get("event.action", "ListBuckets")
    r = {
        "eventVersion": "1.09",
        "userIdentity": ui,
        "eventTime": ms_iso(time_ms),
        "eventSource": eq.get("event.provider", "s3.amazonaws.com"),
        "eventName": action,
        "awsRegion": "us-east-1",
        "sourceIPAddress": eq.get("source.address", eq.get("source.ip", "198.51.100.7")),
        "userAgent": eq.get("user_agent.original", "aws-cli/2.15.30 Python/3.11.8 Linux/6.1 exe/x86_64"),
        "requestParameters": None,
        "responseElements": None,
        "requestID": str(uuid.uuid5(NS, f"req {tag} {seq}")),
        "eventID": eq.get("event.id", str(uuid.uuid5(NS, f"evt {tag} {seq}"))),
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
    }
    params = {}
    for f, v in eq.items():
        if f.startswith("aws.cloudtrail.flattened.request_parameters."):
            set_path(params, f[len("aws.cloudtrail.flattened.request_parameters."):], typed(v))
    if "aws.cloudtrail.request_parameters" in eq:
        params["p"] = eq["aws.cloudtrail.request_parameters"]
    if params:
        r["requestParameters"] = params
    outcome = eq.get("event.outcome", "success")
    if action == "ConsoleLogin":
        r["eventType"] = "AwsConsoleSignIn"
        r["responseElements"] = {"ConsoleLogin": "Success" if outcome == "success" else "Failure"}
        r["additionalEventData"] = {"MFAUsed": "No", "LoginTo": "https://console.aws.amazon.com/"}
        if outcome != "success":
            r["errorMessage"] = "Failed authentication"
    elif outcome != "success" or "aws.cloudtrail.error_code" in eq:
        r["errorCode"] = eq.get("aws.cloudtrail.error_code", "AccessDenied")
        r["errorMessage"] = "User is not authorized to perform this operation"
    if "tls.client.server_name" in eq:
        r["tlsDetails"] = {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
                           "clientProvidedHostHeader": eq["tls.client.server_name"]}
    return r


def view(r):
    """This script's own reading of the ECS fields the rules use (for the
    self-check only; the tests judge newtermsd's view)."""
    ui = r.get("userIdentity") or {}
    env = {"data_stream.dataset": ["aws.cloudtrail"], "event.dataset": ["aws.cloudtrail"],
           "event.provider": [r["eventSource"]], "event.action": [r["eventName"]],
           "event.id": [r["eventID"]]}
    if r["eventName"] == "ConsoleLogin" and r.get("responseElements"):
        env["event.outcome"] = [r["responseElements"]["ConsoleLogin"].lower()]
    else:
        env["event.outcome"] = ["failure" if ("errorCode" in r or "errorMessage" in r) else "success"]
    for k, f in (("type", "aws.cloudtrail.user_identity.type"), ("arn", "aws.cloudtrail.user_identity.arn"),
                 ("invokedBy", "aws.cloudtrail.user_identity.invoked_by")):
        if k in ui:
            env[f] = [ui[k]]
    if ui.get("type") == "AssumedRole":
        env["user.name"] = [ui["sessionContext"]["sessionIssuer"]["userName"]]
    elif "userName" in ui:
        env["user.name"] = [ui["userName"]]
    if ui.get("type") != "AWSService" and "principalId" in ui:
        env["user.id"] = [ui["principalId"]]
    env["source.address"] = [r["sourceIPAddress"]]
    if re.fullmatch(r"[0-9.]+|[0-9a-fA-F:]+", r["sourceIPAddress"]):
        env["source.ip"] = [r["sourceIPAddress"]]
    env["user_agent.original"] = [r["userAgent"]]
    env["cloud.account.id"] = [ui.get("accountId", r["recipientAccountId"])]
    if "errorCode" in r:
        env["aws.cloudtrail.error_code"] = [r["errorCode"]]
    if "tlsDetails" in r:
        env["tls.client.server_name"] = [r["tlsDetails"]["clientProvidedHostHeader"]]
    rp = r.get("requestParameters")
    if rp:
        def flat(prefix, v):
            if isinstance(v, dict):
                for k, x in v.items():
                    yield from flat(f"{prefix}.{k}" if prefix else k, x)
            elif isinstance(v, list):
                for x in v:
                    yield from flat(prefix, x)
            else:
                yield prefix, ("true" if v is True else "false" if v is False else str(v))
        for k, v in flat("", rp):
            env.setdefault("aws.cloudtrail.flattened.request_parameters." + k, []).append(v)
        env["aws.cloudtrail.request_parameters"] = [
            "{" + ", ".join(f"{k}={v}" for k, v in rp.items()) + "}"]
    return env


def ms_iso(ms):
    import datetime
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- cases -------------------------------------------------------------------------

SIBLING = [("Delete", "Describe"), ("Create", "Describe"), ("Put", "Get"), ("Update", "Describe"),
           ("Disable", "Describe"), ("Stop", "Describe"), ("Modify", "Describe"), ("Authorize", "Describe"),
           ("Add", "List"), ("Attach", "List"), ("Set", "Get"), ("Associate", "Describe"),
           ("Replace", "Describe"), ("Enable", "Describe"), ("Schedule", "Describe"), ("Leave", "Describe"),
           ("Export", "Describe"), ("Restore", "Describe"), ("Purge", "Get"), ("Register", "List"),
           ("Get", "List"), ("Assume", "Get"), ("Start", "Describe"), ("Revoke", "Describe"), ("Transfer", "Get"),
           ("Invoke", "Get"), ("Close", "Describe"), ("Copy", "Head"), ("Reset", "Get"), ("Import", "List"),
           ("Send", "Get"), ("Subscribe", "List"), ("Publish", "List"), ("Upload", "List"), ("Retrieve", "List"),
           ("Deactivate", "List"), ("Remove", "List"), ("Batch", "List")]


def sibling(action):
    for a, b in SIBLING:
        if action.startswith(a):
            return b + action[len(a):]
    return "List" + action


def first_solution(expr, want=True, env=None):
    for s in solve(expr, want, env or {}):
        eq = {f: c["eq"] for f, c in s.items() if c["eq"] is not None}
        return s, eq
    return None, None


def top_conjuncts(e):
    return e[1] if e[0] == "and" else [e]


def query_cases(rule, expr, stem):
    sol, eq = first_solution(expr)
    needs = sorted(f for f in eq if f in NOT_PRODUCED) if eq else []
    recs, exp = [], []
    pos = record(eq, 0, BASE_MS, stem)
    ok = ev(expr, view(pos))
    if not ok or needs:
        # A positive needs a field no CloudTrail record gives (enrichment).
        recs.append(pos)
        exp.append({"event_id": pos["eventID"], "alert": False,
                    "why": "positive as written, but it needs " + ", ".join(needs or ["?"]) +
                    ", which the view cannot produce: no alert"})
        return recs, exp
    recs.append(pos)
    exp.append({"event_id": pos["eventID"], "alert": True, "why": "positive"})
    seen = set()
    # near miss 1: a `not` clause made true
    for k in top_conjuncts(expr):
        if k[0] != "not":
            continue
        fields = set()

        def walk(x):
            if x[0] == "leaf":
                fields.add(x[1])
            else:
                for y in (x[1] if x[0] in ("and", "or") else [x[1]]):
                    walk(y)
        walk(k[1])
        if fields & NOT_PRODUCED:
            continue
        base = {f: {"eq": v, "neg": []} for f, v in eq.items() if f not in fields}
        s2, eq2 = first_solution(k[1], True, base)
        if not eq2:
            continue
        r = record(eq2, len(recs), BASE_MS + len(recs) * 1000, stem)
        if ev(expr, view(r)) or json.dumps(eq2, sort_keys=True) in seen:
            continue
        seen.add(json.dumps(eq2, sort_keys=True))
        recs.append(r)
        exp.append({"event_id": r["eventID"], "alert": False,
                    "why": "near miss: excluded by `not` on " + ", ".join(sorted(fields))})
        break
    # near miss 2: the outcome flipped
    if eq.get("event.outcome") in ("success", "failure"):
        eq2 = dict(eq)
        eq2["event.outcome"] = "failure" if eq["event.outcome"] == "success" else "success"
        eq2.pop("aws.cloudtrail.error_code", None)
        r = record(eq2, len(recs), BASE_MS + len(recs) * 1000, stem)
        if not ev(expr, view(r)):
            recs.append(r)
            exp.append({"event_id": r["eventID"], "alert": False,
                        "why": f"near miss: event.outcome {eq2['event.outcome']}"})
    # near miss 3: a sibling action of the same provider
    if "event.action" in eq:
        eq2 = dict(eq)
        eq2["event.action"] = sibling(eq["event.action"])
        r = record(eq2, len(recs), BASE_MS + len(recs) * 1000, stem)
        if not ev(expr, view(r)):
            recs.append(r)
            exp.append({"event_id": r["eventID"], "alert": False,
                        "why": f"near miss: event.action {eq2['event.action']}"})
    return recs, exp


def threshold_cases(rule, expr, stem):
    """Groups just under and just over; a spread group (replay only)."""
    thr = rule["threshold"]
    fields = thr.get("field", [])
    value = thr["value"]
    card = (thr.get("cardinality") or [None])[0]
    need = card["value"] if card else value
    sol, eq = first_solution(expr)
    assert eq and ev(expr, view(record(eq, 0, BASE_MS, stem))), stem
    burst, window = [], []
    exp_b, exp_w = [], []

    def group_eq(gname):
        g = dict(eq)
        for f in fields:  # give each group its own values of the group-by fields
            if f == "cloud.account.id":
                continue  # one account; groups differ by another field below
            if f == "user.name":
                g["user.name"] = f"user-{gname}"
            elif f == "user.id":
                g["user.id"] = f"AIDA{gname.upper()}EXAMPLE"
            elif f == "source.ip":
                g["source.ip"] = {"under": "198.51.100.10", "over": "198.51.100.11",
                                  "spread": "198.51.100.12"}[gname]
            elif f == "source.address":
                g["source.address"] = {"under": "198.51.100.20", "over": "198.51.100.21",
                                       "spread": "198.51.100.22"}[gname]
            elif f == "tls.client.server_name":
                g["tls.client.server_name"] = f"bucket-{gname}.s3.amazonaws.com"
        return g

    def burst_of(gname, n, t0, step_ms, out, exp, alert_at):
        g = group_eq(gname)
        for i in range(n):
            e = dict(g)
            if card:
                if card["field"] == "event.id":
                    e["event.id"] = str(uuid.uuid5(NS, f"card {stem} {gname} {i}"))
                else:  # request parameters: a distinct SecretId per event
                    e["aws.cloudtrail.flattened.request_parameters.secretId"] = f"prod/secret-{gname}-{i:03d}"
            r = record(e, len(out), t0 + i * step_ms, f"{stem} {gname}")
            if card and card["field"] == "event.id":
                r["eventID"] = e["event.id"]
            out.append(r)
            exp.append({"event_id": r["eventID"], "group": gname,
                        "alert": i + 1 == alert_at, "why": f"{gname} burst, event {i + 1} of {n}"})

    # Distinct accounts are impossible with one account; a rule grouping on the
    # account alone gets its groups from two accounts.
    if fields == ["cloud.account.id"]:
        global ACCOUNT
        saved = ACCOUNT
        ACCOUNT = "111122220001"
        burst_of("under", need - 1, BASE_MS, 1000, burst, exp_b, None)
        ACCOUNT = "111122220002"
        burst_of("over", need, BASE_MS, 1000, burst, exp_b, need)
        ACCOUNT = "111122220003"
        burst_of("spread", need, BASE_MS, 60_000, window, exp_w, None)
        ACCOUNT = saved
    else:
        burst_of("under", need - 1, BASE_MS, 1000, burst, exp_b, None)
        burst_of("over", need, BASE_MS, 1000, burst, exp_b, need)
        burst_of("spread", need, BASE_MS, 60_000, window, exp_w, None)
    return burst, exp_b, window, exp_w


def suppression_cases(rule, expr, stem):
    sol, eq = first_solution(expr)
    cases = {}

    def rec(e, seq, t):
        return record(e, seq, t, f"{stem} supp")
    a = dict(eq, **{"source.ip": "203.0.113.5"})
    b = dict(eq, **{"source.ip": "203.0.113.6"})
    recs = [rec(a, 0, BASE_MS), rec(a, 1, BASE_MS + 60_000), rec(a, 2, BASE_MS + 120_000),
            rec(b, 3, BASE_MS + 130_000), rec(a, 4, BASE_MS + 400_000)]
    nohost = dict(eq)
    nohost["source.address"] = "s3.amazonaws.com"  # not an IP: no source.ip
    recs += [rec(nohost, 5, BASE_MS + 10_000), rec(nohost, 6, BASE_MS + 20_000)]
    cases["records"] = recs
    cases["expect"] = {
        "alerts": [recs[0]["eventID"], recs[3]["eventID"], recs[4]["eventID"], recs[5]["eventID"]],
        "docs_count": {recs[0]["eventID"]: 2, recs[3]["eventID"]: 0, recs[4]["eventID"]: 0,
                       recs[5]["eventID"]: 1},
        "why": "A: 3 events in 2 minutes → one alert, docs_count 2; B (another source.ip): its own "
               "alert; A again 400 s after the first (past the 5m duration): a new alert; two events "
               "without source.ip (missing_fields_strategy suppress): one group of their own",
    }
    return cases


def main():
    os.makedirs(os.path.join(OUT, "query"), exist_ok=True)
    os.makedirs(os.path.join(OUT, "threshold"), exist_ok=True)
    os.makedirs(os.path.join(OUT, "threshold_window"), exist_ok=True)
    os.makedirs(os.path.join(OUT, "suppression"), exist_ok=True)
    manifest = {"query": [], "threshold": []}
    for name in sorted(os.listdir(RULES)):
        if not name.endswith(".toml"):
            continue
        rule = tomllib.load(open(os.path.join(RULES, name), "rb"))["rule"]
        if rule["type"] not in ("query", "threshold"):
            continue
        stem = name[:-5]
        expr = parse(rule["query"])
        if rule["type"] == "query":
            recs, exp = query_cases(rule, expr, stem)
            with open(os.path.join(OUT, "query", stem + ".json"), "w") as f:
                json.dump({"Records": recs}, f, indent=1)
                f.write("\n")
            manifest["query"].append({"rule_id": rule["rule_id"], "file": f"query/{stem}.json",
                                      "cases": exp})
            if "alert_suppression" in rule:
                c = suppression_cases(rule, expr, stem)
                with open(os.path.join(OUT, "suppression", stem + ".json"), "w") as f:
                    json.dump({"Records": c["records"]}, f, indent=1)
                    f.write("\n")
                manifest["suppression"] = {"rule_id": rule["rule_id"],
                                           "file": f"suppression/{stem}.json", **c["expect"]}
        else:
            burst, exp_b, window, exp_w = threshold_cases(rule, expr, stem)
            for sub, recs in (("threshold", burst), ("threshold_window", window)):
                with open(os.path.join(OUT, sub, stem + ".json"), "w") as f:
                    json.dump({"Records": recs}, f, indent=1)
                    f.write("\n")
            thr = rule["threshold"]
            manifest["threshold"].append({
                "rule_id": rule["rule_id"], "file": f"threshold/{stem}.json",
                "window_file": f"threshold_window/{stem}.json", "field": thr.get("field", []),
                "value": thr["value"], "cardinality": thr.get("cardinality", []),
                "cases": exp_b, "window_cases": exp_w})
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    print(f"{len(manifest['query'])} query rules, {len(manifest['threshold'])} threshold rules")


if __name__ == "__main__":
    main()
