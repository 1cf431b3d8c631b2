#!/usr/bin/env python3
"""Bookkeeping for tests/bench/run.sh: snapshots, per-step results and the final table.

  report.py snap URL PID [PID...]      print a JSON snapshot: the target's counters (newtermsd /metrics or the
                                       reference handler's /stats), CPU ticks and VmHWM/VmRSS of each PID,
                                       the monotonic time and /proc/loadavg
  report.py step RESULTS NAME WRK_OUT BEFORE AFTER --target newtermsd|reference --kind firehose|eventbridge
                 --records-per-request N [--note TEXT] [--full-load 0|1] [--rate REQ_PER_S]
                                       turn one wrk run (its BENCH_JSON line) and the two snapshots into one
                                       JSON line appended to RESULTS, and print a one-line summary. A full-load
                                       step whose server side (service + redis) used under 90% of its core is
                                       marked "not a measurement" (the client or a neighbour was the limit).
  report.py yard RESULTS NAME YARD_JSON
                                       append the no-HTTP Python yardstick's result (yardstick.py --json)
  report.py table RESULTS MANIFEST     print the final table, the targets and the consistency checks;
                                       exit 1 if a consistency check fails (a target miss is reported, not
                                       an exit status)

Records/s = completed requests x records per request / wrk duration. MB/s counts request bodies sent.
Latency percentiles come from wrk's own histogram (per request = per delivery). CPU% is the service's
(+ redis') user+system time during the step over the step's wall time: 100% = one core.
"""
import json
import os
import re
import sys
import time
import urllib.request

TICK = os.sysconf("SC_CLK_TCK")
LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def prom(text):
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = LINE.match(line)
        if not m:
            continue
        labels = dict(LABEL.findall(m.group(2) or ""))
        try:
            out.append((m.group(1), labels, float(m.group(3))))
        except ValueError:
            continue
    return out


def counters(url):
    try:
        with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
            rows = prom(r.read().decode())
    except OSError:
        rows = None
    if rows is None or not rows:
        try:
            with urllib.request.urlopen(url + "/stats", timeout=10) as r:
                st = json.loads(r.read())
            return {"source": "stats", "records": st["records"], "rule_matches": st["candidates"],
                    "alerts": st["alerts"], "rejected": st["rejected"], "ok_firehose": st["requests"],
                    "ok_eventbridge": 0, "by_outcome": {"prefiltered": st.get("prefiltered", 0)}}
        except OSError as e:
            return {"source": "none", "error": str(e)}

    def total(name, pred=lambda lab: True):
        return sum(v for n, lab, v in rows if n == name and pred(lab))

    def ok(route):
        return total("newtermsd_http_requests_total",
                     lambda lab: route in " ".join(lab.values()) and "200" in lab.values())
    by_outcome, by_shape, buckets = {}, {}, {}
    for n, lab, v in rows:
        if n == "newtermsd_http_request_duration_seconds_bucket" and lab.get("route") in ("firehose",
                                                                                          "eventbridge"):
            b = buckets.setdefault(lab["route"], {})
            b[lab.get("le", "+Inf")] = b.get(lab.get("le", "+Inf"), 0) + v
        if n == "newtermsd_records_total":
            o = lab.get("outcome", "?")
            by_outcome[o] = by_outcome.get(o, 0) + v
            s = lab.get("shape", "?")
            by_shape[s] = by_shape.get(s, 0) + v
    return {"source": "metrics", "records": total("newtermsd_records_total"),
            "rule_matches": total("newtermsd_rule_matches_total"),
            "candidates": total("newtermsd_candidates_total"),
            "alerts": total("newtermsd_alerts_total"), "rejected": total("newtermsd_rejected_records_total"),
            "ok_firehose": ok("firehose"), "ok_eventbridge": ok("eventbridge"),
            "redis_round_trips": total("newtermsd_redis_round_trips_total"),
            "by_outcome": by_outcome, "by_shape": by_shape, "duration_buckets": buckets}


def proc(pid):
    try:
        with open("/proc/%s/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])
        st = {}
        with open("/proc/%s/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmHWM", "VmRSS"):
                    st[k] = int(v.split()[0])
        # time its threads sat runnable on a run queue while another task had the CPU (schedstat field 2)
        wait_ns = 0
        for tid in os.listdir("/proc/%s/task" % pid):
            try:
                with open("/proc/%s/task/%s/schedstat" % (pid, tid)) as f:
                    wait_ns += int(f.read().split()[1])
            except (OSError, IndexError, ValueError):
                pass
        return {"cpu_s": ticks / TICK, "wait_s": wait_ns / 1e9, "hwm_kib": st.get("VmHWM", 0),
                "rss_kib": st.get("VmRSS", 0)}
    except OSError:
        return {"cpu_s": 0.0, "wait_s": 0.0, "hwm_kib": 0, "rss_kib": 0}


def cmd_snap(url, *pids):
    with open("/proc/loadavg") as f:
        load = float(f.read().split()[0])
    print(json.dumps({"t": time.monotonic(), "load1": load, "counters": counters(url),
                      "procs": {p: proc(p) for p in pids}}))


def load_wrk(path):
    with open(path) as f:
        for line in f:
            if line.startswith("BENCH_JSON "):
                return json.loads(line[len("BENCH_JSON "):])
    raise SystemExit("report.py: no BENCH_JSON line in %s (did wrk fail? see the file)" % path)


MIN_FULL_LOAD_CPU = 90.0


def measured(r):
    """False for a full-load step where the server side did not saturate its core."""
    return not r.get("full_load") or r.get("cpu_pct", 0) >= MIN_FULL_LOAD_CPU


def cmd_yard(results, name, path):
    with open(path) as f:
        y = json.load(f)
    row = {"name": name, "target": "yardstick", "kind": "yardstick", "records_s": y["records_s"],
           "records_per_cpu_s": y["records_per_cpu_s"], "python": "%s %s" % (y["python"], y["version"]),
           "deliveries": y["deliveries"], "records": y["records"], "candidates": y["candidates"],
           "pairs": y["pairs"], "duration_s": y["wall_s"]}
    with open(results, "a") as f:
        f.write(json.dumps(row) + "\n")
    print("%-20s %9d rec/s (no HTTP, %d per CPU-s) %d deliveries, %d candidates, %s" % (
        name, y["records_s"], y["records_per_cpu_s"], y["deliveries"], y["candidates"], row["python"]))


def cmd_step(results, name, wrk_out, before, after, target, kind, rpr, note="", full_load=0, rate=0.0):
    w = load_wrk(wrk_out)
    with open(before) as f:
        b = json.load(f)
    with open(after) as f:
        a = json.load(f)
    dur = w["duration_us"] / 1e6
    req_s = w["requests"] / dur
    cb, ca = b["counters"], a["counters"]
    delta = {k: ca.get(k, 0) - cb.get(k, 0) for k in ("records", "rule_matches", "alerts", "rejected",
                                                       "ok_firehose", "ok_eventbridge", "candidates",
                                                       "redis_round_trips")}
    delta["by_outcome"] = {k: v - cb.get("by_outcome", {}).get(k, 0) for k, v in ca.get("by_outcome", {}).items()}
    # the service's own request-duration histogram over this step: where the latency tail is made
    route = "firehose" if kind == "firehose" else "eventbridge"
    ba = ca.get("duration_buckets", {}).get(route, {})
    bb = cb.get("duration_buckets", {}).get(route, {})
    dh = sorted(((float(le), ba[le] - bb.get(le, 0)) for le in ba), key=lambda x: x[0])
    server_hist = None
    if dh and dh[-1][1] > 0:
        tot = dh[-1][1]
        p99_le = next(le for le, c in dh if c >= 0.99 * tot)
        p50_le = next(le for le, c in dh if c >= 0.50 * tot)
        le10 = next((c for le, c in dh if abs(le - 0.01) < 1e-9), None)
        server_hist = {"p50_le_ms": p50_le * 1000, "p99_le_ms": p99_le * 1000,
                       "share_le_10ms": round(le10 / tot, 4) if le10 is not None else None}
    # The snapshots bracket wrk's start-up (it formats every request before its clock starts) and the
    # 1 s settle after it, when the server is idle but for the last in-flight deliveries: the load lasted
    # wrk's duration, so that is the wall (the in-flight tail may put a saturated step a little over 100%).
    wall = min(a["t"] - b["t"], dur)
    cpu = sum(a["procs"][p]["cpu_s"] - b["procs"].get(p, {}).get("cpu_s", 0) for p in a["procs"])
    waited = sum(a["procs"][p].get("wait_s", 0) - b["procs"].get(p, {}).get("wait_s", 0) for p in a["procs"])
    first = next(iter(a["procs"]), None)
    row = {"name": name, "target": target, "kind": kind, "note": note, "records_per_request": rpr,
           "requests": w["requests"], "duration_s": round(dur, 3), "req_s": round(req_s, 1),
           "records_s": round(req_s * rpr), "mb_s": round(w["sent_bytes"] / dur / 1e6, 1),
           "p50_ms": w["lat_us"]["p50"] / 1000, "p90_ms": w["lat_us"]["p90"] / 1000,
           "p99_ms": w["lat_us"]["p99"] / 1000, "max_ms": w["lat_us"]["max"] / 1000,
           "errors": w["errors"], "cpu_pct": round(100 * cpu / wall, 1) if wall > 0 else 0,
           # share of the step the server side was ready to run but another task held its core
           "cpu_wait_pct": round(100 * waited / wall, 1) if wall > 0 else 0,
           # records the server side handled per CPU-second it got (service + redis): the figure that does
           # not depend on how much of core 0 other work on a shared machine took away
           "records_per_cpu_s": round(delta["records"] / cpu) if cpu > 0 and kind == "firehose" else None,
           "hwm_mib": round(a["procs"][first]["hwm_kib"] / 1024, 1) if first else 0,
           "load1": b["load1"], "server": delta, "server_latency": server_hist, "full_load": bool(full_load),
           "rate": rate}
    with open(results, "a") as f:
        f.write(json.dumps(row) + "\n")
    errs = sum(w["errors"].values())
    if not measured(row):
        print("%-20s NOT A MEASUREMENT: full load, but the server side used %.0f%% of its core (< %.0f%%)" % (
            name, row["cpu_pct"], MIN_FULL_LOAD_CPU))
    print("%-20s %8.1f req/s %9d rec/s %7.1f MB/s  p50 %7.2f ms  p99 %7.2f ms  cpu %5.1f%% (waited %4.1f%%)  errors %d  "
          "server: records +%d matches +%d alerts +%d" % (
              name, req_s, row["records_s"], row["mb_s"], row["p50_ms"], row["p99_ms"], row["cpu_pct"],
              row["cpu_wait_pct"], errs,
              delta["records"], delta["rule_matches"], delta["alerts"]))


def cmd_table(results, manifest_path):
    with open(manifest_path) as f:
        man = json.load(f)
    rows = [json.loads(line) for line in open(results) if line.strip()]
    by = {r["name"]: r for r in rows}
    print()
    print("| step | target | req/s | records/s | MB/s | p50 ms | p99 ms | server CPU % | waited for CPU % "
          "| records/CPU-s | peak RSS MiB | errors |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if r["name"].startswith("warmup"):
            continue
        rpc = r.get("records_per_cpu_s")
        if r["kind"] == "yardstick":
            print("| %s | Python, no HTTP (%s) | | %d | | | | 100 | | %d | | |" % (
                r["name"], r["python"], r["records_s"], rpc))
            continue
        label = r["name"]
        if not measured(r):
            label += " (NOT A MEASUREMENT: server CPU %.0f%% < 90%%)" % r["cpu_pct"]
        print("| %s | %s | %.1f | %d | %.1f | %.2f | %.2f | %.0f | %.0f | %s | %.1f | %d |" % (
            label, r["target"], r["req_s"], r["records_s"], r["mb_s"], r["p50_ms"], r["p99_ms"],
            r["cpu_pct"], r.get("cpu_wait_pct", 0), "%d" % rpc if rpc else "-", r["hwm_mib"],
            sum(r["errors"].values())))
    print()
    verdicts, failures = [], []

    def target(label, ok, detail):
        verdicts.append("%-4s %s: %s" % ("MET" if ok else "MISS", label, detail))

    eb, ref, half = by.get("eb_1core"), by.get("ref_eb_1core"), by.get("eb_1core_half")
    unmeasured = [r["name"] for r in rows
                  if r["kind"] != "yardstick" and not measured(r) and not r["name"].startswith("warmup")]
    pairs = [(eb, ref)] if eb and ref else []
    i = 1
    while by.get("eb_round%d" % i) and by.get("ref_eb_round%d" % i):
        pairs.append((by["eb_round%d" % i], by["ref_eb_round%d" % i]))
        i += 1

    def median(xs):
        xs = sorted(xs)
        n = len(xs)
        return (xs[n // 2] + xs[(n - 1) // 2]) / 2 if n else 0

    pairs = [(a, b) for a, b in pairs if measured(a) and measured(b)]
    if eb and not measured(eb):
        target("≥150k records/s on one core (EventBridge-wrapped mix)", False,
               "eb_1core is not a measurement (server CPU %.0f%%); records per CPU-second %d" % (
                   eb["cpu_pct"], eb["records_per_cpu_s"] or 0))
    elif eb:
        runs = [p[0]["records_s"] for p in pairs] or [eb["records_s"]]
        target("≥150k records/s on one core (EventBridge-wrapped mix)", eb["records_s"] >= 150000,
               "eb_1core %d records/s (%.0f%% of target); all eb runs min/median/max %d/%d/%d; "
               "records per CPU-second %d" % (eb["records_s"], 100 * eb["records_s"] / 150000, min(runs),
                                              median(runs), max(runs), eb["records_per_cpu_s"] or 0))
    if pairs:
        ratios = [a["records_s"] / max(b["records_s"], 1) for a, b in pairs]
        cpu_ratios = [(a["records_per_cpu_s"] or 0) / max(b["records_per_cpu_s"] or 1, 1) for a, b in pairs]
        target("≥4× the Python reference, same run", median(ratios) >= 4,
               "median of %d back-to-back pairs %.2f× (pairs: %s); per CPU-second %.2f×" % (
                   len(pairs), median(ratios), ", ".join("%.2f" % x for x in ratios), median(cpu_ratios)))
    def paced_ok(r):
        """A paced step measured the latency at its rate only if it achieved (nearly) that rate."""
        return not r.get("rate") or r["req_s"] >= 0.95 * r["rate"]

    def paced_note(r):
        return "" if paced_ok(r) else " — NOT A MEASUREMENT: achieved %.1f of the %.1f req/s asked" % (
            r["req_s"], r["rate"])

    if half:
        target("p99 ≤10 ms per 500-record delivery at half load", half["p99_ms"] <= 10 and paced_ok(half),
               "p99 %.2f ms, p50 %.2f ms at %.1f req/s (paced); the server waited for its core %.0f%% of "
               "the step%s" % (half["p99_ms"], half["p50_ms"], half["req_s"], half.get("cpu_wait_pct", 0),
                               "; its own histogram: p50 ≤%g ms, p99 ≤%g ms, %.1f%% ≤10 ms" % (
                                   half["server_latency"]["p50_le_ms"], half["server_latency"]["p99_le_ms"],
                                   100 * (half["server_latency"]["share_le_10ms"] or 0))
                               if half.get("server_latency") else "") + paced_note(half))
    # Mix B against the no-HTTP yardstick, same core, same run
    mb, ymb, mbh = by.get("mixb_1core"), by.get("yard_mixb"), by.get("mixb_1core_half")
    mpairs = [(mb, ymb)] if mb and ymb else []
    i = 1
    while by.get("mixb_round%d" % i) and by.get("yard_mixb_round%d" % i):
        mpairs.append((by["mixb_round%d" % i], by["yard_mixb_round%d" % i]))
        i += 1
    all_mpairs = mpairs
    mpairs = [(a, b) for a, b in mpairs if measured(a)]
    if all_mpairs:
        # records per CPU-second on both sides: the figure a busy shared machine moves least
        cr = [(a["records_per_cpu_s"] or 0) / max(b["records_per_cpu_s"] or 1, 1) for a, b in all_mpairs]
        print("Mix B per CPU-second (service + redis vs the yardstick, all %d pairs, measured or not): median "
              "%.2f× (%s)" % (len(cr), median(cr), ", ".join("%.2f" % x for x in cr)))
    if mpairs:
        ratios = [a["records_s"] / max(b["records_s"], 1) for a, b in mpairs]
        cpu_ratios = [(a["records_per_cpu_s"] or 0) / max(b["records_per_cpu_s"] or 1, 1) for a, b in mpairs]
        target("Mix B: ≥4× the no-HTTP Python yardstick, same run, same core", median(ratios) >= 4,
               "median of %d pairs %.2f× (pairs: %s); per CPU-second %.2f×; mixb_1core %d records/s, "
               "yardstick %d records/s (%s)" % (
                   len(mpairs), median(ratios), ", ".join("%.2f" % x for x in ratios), median(cpu_ratios),
                   mb["records_s"] if mb else 0, ymb["records_s"] if ymb else 0, ymb["python"] if ymb else "?"))
    elif mb or ymb:
        target("Mix B: ≥4× the no-HTTP Python yardstick", False, "no measured pair (see NOT A MEASUREMENT)")
    if eb and by.get("yard_eb") and measured(eb):
        print("eb_1core / yard_eb (no-HTTP yardstick on the eb bodies): %.2f× (%d / %d records/s)" % (
            eb["records_s"] / max(by["yard_eb"]["records_s"], 1), eb["records_s"], by["yard_eb"]["records_s"]))
    if mbh:
        target("Mix B: p99 ≤10 ms per 500-record delivery at half load", mbh["p99_ms"] <= 10 and paced_ok(mbh),
               "p99 %.2f ms, p50 %.2f ms at %.1f req/s (paced)%s" % (mbh["p99_ms"], mbh["p50_ms"], mbh["req_s"],
                                                                    paced_note(mbh)))
    # the same two paced steps on a service with --busy-poll-us (run.sh's BUSY_POLL_US)
    for name, what in (("eb_1core_half_bp", "eb"), ("mixb_1core_half_bp", "Mix B")):
        r = by.get(name)
        if r:
            target("%s: p99 ≤10 ms at half load with --busy-poll-us" % what, r["p99_ms"] <= 10 and paced_ok(r),
                   "p99 %.2f ms, p50 %.2f ms at %.1f req/s (paced)%s" % (r["p99_ms"], r["p50_ms"], r["req_s"],
                                                                        paced_note(r)))
    if unmeasured:
        target("every full-load step saturated the server's core (≥90% CPU)", False,
               "not a measurement: %s" % ", ".join(unmeasured))
    pk = by.get("pack_mixb")
    if pk:
        target("whole AWS pack (139 rules), Mix B: ≥100k records/s on one core", measured(pk) and pk["records_s"] >= 100000,
               "%s%d records/s, %d records per CPU-second (service + redis)%s" % (
                   "" if measured(pk) else "NOT A MEASUREMENT: ", pk["records_s"], pk["records_per_cpu_s"] or 0,
                   "; other mixes: " + ", ".join("%s %d records/s" % (n, by[n]["records_s"])
                                                 for n in ("pack_eb", "pack_bare", "pack_cwl") if n in by)))
    peak = max([r["hwm_mib"] for r in rows if r["target"] == "newtermsd"] or [0])
    ppeak = max([r["hwm_mib"] for r in rows if r["target"] == "newtermsd-pack"] or [0])
    target("peak RSS ≤64 MiB", 0 < peak <= 64, "%.1f MiB (VmHWM)%s" % (
        peak, "; with the whole pack %.1f MiB" % ppeak if ppeak else ""))
    for v in verdicts:
        print(v)
    print()
    # consistency: the service's own counters must account for what wrk says it delivered
    rpb = man["records_per_body"]
    cpb = man["candidates_per_body"]
    alerts_total = 0
    for r in rows:
        if r["kind"] == "yardstick":
            ok = r["candidates"] == r["deliveries"] * cpb
            line = "%s %s: yardstick counted %d candidates in %d deliveries (expected %d)" % (
                "ok  " if ok else "FAIL", r["name"], r["candidates"], r["deliveries"], r["deliveries"] * cpb)
            print(line)
            if not ok:
                failures.append(line)
            continue
        s = r["server"]
        if r["target"] not in ("newtermsd", "newtermsd-pack"):
            if r["kind"] == "firehose" and s.get("ok_firehose"):
                exp = s["ok_firehose"] * rpb
                ok = s["records"] == exp and s["rule_matches"] == s["ok_firehose"] * cpb
                line = "%s %s: reference counted %d records / %d candidates for %d deliveries (expected %d / %d)" % (
                    "ok  " if ok else "FAIL", r["name"], s["records"], s["rule_matches"], s["ok_firehose"], exp,
                    s["ok_firehose"] * cpb)
                print(line)
                if not ok:
                    failures.append(line)
            continue
        pack = r["target"] == "newtermsd-pack"
        if not pack:
            alerts_total += s["alerts"]
        n_ok = s["ok_firehose"] if r["kind"] == "firehose" else s["ok_eventbridge"]
        if r["kind"] == "firehose":
            # the pack's rules match far more than the seed rule's 5 per delivery: records only
            exp_rec, exp_match = n_ok * rpb, None if pack else n_ok * cpb
        else:
            exp_rec = n_ok
            exp_match = None  # single events: 1% of them, depending on which ones were sent
        ok = n_ok >= r["requests"] and s["records"] == exp_rec and (exp_match is None or s["rule_matches"] == exp_match)
        line = ("%s %s: server answered 200 to %d requests (wrk saw %d complete); records_total +%d (expected %d)"
                "; rule matches +%d%s; alerts +%d; outcomes %s" % (
                    "ok  " if ok else "FAIL", r["name"], n_ok, r["requests"], s["records"], exp_rec,
                    s["rule_matches"], "" if exp_match is None else " (expected %d)" % exp_match, s["alerts"],
                    json.dumps({k: int(v) for k, v in s.get("by_outcome", {}).items() if v})))
        print(line)
        if not ok:
            failures.append(line)
    exp_alerts = man["expected_alerts_fresh_redis"]
    ok = alerts_total == exp_alerts
    line = ("%s alerts over all newtermsd steps: %d; the corpus holds %d distinct (account, user) candidate pairs, "
            "each sent many times, so a fresh Redis must raise exactly %d" % ("ok  " if ok else "FAIL",
                                                                               alerts_total, exp_alerts, exp_alerts))
    print(line)
    if not ok:
        failures.append(line)
    return 1 if failures else 0


def main(argv):
    if len(argv) < 2:
        raise SystemExit(__doc__)
    cmd = argv[1]
    if cmd == "snap" and len(argv) >= 3:
        cmd_snap(argv[2], *argv[3:])
        return 0
    if cmd == "step" and len(argv) >= 7:
        opts = {"--target": "newtermsd", "--kind": "firehose", "--records-per-request": "500", "--note": "",
                "--full-load": "0", "--rate": "0"}
        rest = argv[7:]
        for i in range(0, len(rest) - 1, 2):
            if rest[i] not in opts:
                raise SystemExit("report.py step: unknown option %s" % rest[i])
            opts[rest[i]] = rest[i + 1]
        cmd_step(argv[2], argv[3], argv[4], argv[5], argv[6], opts["--target"], opts["--kind"],
                 int(opts["--records-per-request"]), opts["--note"], int(opts["--full-load"]),
                 float(opts["--rate"]))
        return 0
    if cmd == "yard" and len(argv) == 5:
        cmd_yard(argv[2], argv[3], argv[4])
        return 0
    if cmd == "table" and len(argv) == 4:
        return cmd_table(argv[2], argv[3])
    raise SystemExit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
