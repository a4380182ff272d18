#!/usr/bin/env python3
"""Turns the guest's result channel (build/vm/results.log) into one TAP file
per suite, dmesg.txt and summary.json, prints a table, and exits non-zero if a
gate fails: a suite of ours failed or did not finish, the upstream baseline
did not finish, the guest never finished, or the kernel log has a splat."""

import json
import re
import sys
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent

# Kernel reports that fail the run wherever they appear.
SPLATS = re.compile(
    r"BUG:|WARNING:|Oops|Call Trace:|KASAN:|UBSAN:|kernel BUG|"
    r"possible recursive locking|possible circular locking|inconsistent lock state|"
    r"suspicious RCU usage|DEBUG_LOCKS_WARN_ON|INFO: task .* blocked|Kernel panic"
)
TOTALS = re.compile(r"^# Totals: pass:(\d+) fail:(\d+) xfail:(\d+) xpass:(\d+) skip:(\d+) error:(\d+)")
UPSTREAM_BASELINE = {"pass": 233, "fail": 8, "skip": 5}  # 7.3.4, see docs/testing.md

# Upstream cases iommufd_rs must pass: every case of both suites (the IOAS
# core, issue 3, and HWPTs/nesting/events, issue 5).
GATED_FIXTURES = {
    "upstream_iommufd@iommufd_rs": ("",),
    "upstream_fail_nth@iommufd_rs": ("",),
}
# Cases that skip by design: the no_viommu variant's vIOMMU-only tests.
MAY_SKIP = re.compile(r"^iommufd_viommu\.no_viommu\.")
# How many cases each gated suite has in 7.3.4: fewer means some did not run.
EXPECTED_CASES = {"upstream_iommufd@iommufd_rs": 246, "upstream_fail_nth@iommufd_rs": 8}
# The KUnit suites inside iommufd_rs.ko; every one must run (and pass) at load.
KUNIT_SUITES = ("iommufd_rs_platform", "iommufd_rs_pagetable")
# The page-table benchmark's lines in the kernel log (module loaded with pt_bench=1).
PTBENCH = re.compile(r"iommufd_rs_ptbench: (\{.*\})\s*$")


def gated_failures(name, body):
    """Gated upstream cases that did not pass, and how many were gated."""
    prefixes = GATED_FIXTURES.get(name)
    if not prefixes:
        return [], 0
    failed, gated = [], 0
    for line in body:
        m = re.match(r"^(not )?ok \d+ (\S+)", line)
        if not m or not m.group(2).startswith(prefixes):
            continue
        gated += 1
        if m.group(1) or ("# SKIP" in line and not MAY_SKIP.search(m.group(2))):
            failed.append(m.group(2))
    return failed, gated


def sections(text):
    """Yields (name, server, body lines, rc) for every framed section."""
    name = None
    for line in text.splitlines():
        line = line.rstrip("\r")
        m = re.match(r"^@@@ BEGIN (\S+) server=(\S+)", line)
        if m:
            name, server, body = m.group(1), m.group(2), []
            continue
        m = re.match(r"^@@@ END (\S+) rc=(\d+)(.*)", line)
        if m and name == m.group(1):
            yield name, server, body, int(m.group(2)), m.group(3)
            name = None
            continue
        if name is not None:
            body.append(line)
    if name is not None:  # cut off by a crash
        yield name, server, body, -1, ""


def count(body):
    """pass/fail/skip of a TAP body; `complete` if the run reached its end."""
    for line in body:
        m = TOTALS.match(line)
        if m:
            p, f, xf, xp, s, e = map(int, m.groups())
            return {"pass": p + xf, "fail": f + xp + e, "skip": s, "complete": True}
    res = {"pass": 0, "fail": 0, "skip": 0}
    for line in body:
        if re.match(r"^not ok \d+", line):
            res["fail"] += 1
        elif re.match(r"^ok \d+", line):
            res["skip" if "# SKIP" in line else "pass"] += 1
    plan = next((int(m.group(1)) for l in body if (m := re.match(r"^1\.\.(\d+)$", l))), None)
    res["complete"] = plan is not None and plan == sum(res.values())
    return res


def kunit_suites(dmesg):
    """Yields (suite, TAP body) for every KUnit suite of ours in the kernel log
    (they run when the module loads); the body is dedented to top level."""
    lines = [re.sub(r"^\[\s*\d+\.\d+\] ?", "", l) for l in dmesg.splitlines()]
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)# Subtest: (iommufd_rs\w*)$", line)
        if not m:
            continue
        indent, name, body = m.group(1), m.group(2), []
        for l in lines[i + 1:]:
            if re.match(rf"^\s*(not )?ok \d+ {name}\b", l):
                break
            body.append(l[len(indent):] if l.startswith(indent) else l)
        yield name, body


def write_bench(merged, out):
    """bench.json: per cell, the median of each server and the throughput
    ratio ours/upstream (= upstream time / our time). Returns problems."""
    runs = {}
    for server in ("iommufd_rs", "iommufd"):
        sec = merged.get(f"bench@{server}")
        cells = {}
        for line in (sec["body"] if sec else []):
            if line.startswith("{"):
                try:
                    c = json.loads(line)
                except ValueError:
                    continue
                cells[c["cell"]] = c
        runs[server] = cells
    table = {}
    for cell, ours in runs["iommufd_rs"].items():
        up = runs["iommufd"].get(cell)
        if "kib_per_gib" in ours:
            # Memory cells: ratio = ours / upstream (at most 1: no more).
            row = {"bytes": ours["bytes"], "reps": ours["reps"],
                   "iommufd_rs_kib_per_gib": ours["kib_per_gib"],
                   "iommufd_kib_per_gib": up["kib_per_gib"] if up else None}
            row["mem_ratio"] = (round(ours["kib_per_gib"] / up["kib_per_gib"], 3)
                                if up and up["kib_per_gib"] > 0 else None)
            table[cell] = row
            continue
        row = {"bytes": ours["bytes"], "reps": ours["reps"],
               "iommufd_rs_median_ns": ours["median_ns"],
               "iommufd_median_ns": up["median_ns"] if up else None}
        row["ratio"] = round(up["median_ns"] / ours["median_ns"], 3) if up and ours["median_ns"] else None
        table[cell] = row
    (out / "bench.json").write_text(json.dumps({"cells": table}, indent=2) + "\n")
    if table:
        print(f"{'cell':28} {'iommufd_rs ms':>14} {'iommufd ms':>11} {'ratio':>6}")
        for cell, r in table.items():
            if "mem_ratio" in r:
                continue
            up = r["iommufd_median_ns"]
            print(f"{cell:28} {r['iommufd_rs_median_ns'] / 1e6:14.2f} "
                  f"{(up or 0) / 1e6:11.2f} {r['ratio'] or 0:6.2f}")
        mem = {c: r for c, r in table.items() if "mem_ratio" in r}
        if mem:
            print(f"{'cell':28} {'iommufd_rs KiB/GiB':>18} {'iommufd KiB/GiB':>16} {'ours/up':>8}")
            for cell, r in mem.items():
                print(f"{cell:28} {r['iommufd_rs_kib_per_gib']:18} "
                      f"{r['iommufd_kib_per_gib'] or 0:16} {r['mem_ratio'] or 0:8.2f}")
    problems = []
    if not runs["iommufd_rs"] or not runs["iommufd"]:
        problems.append("a benchmark run produced no results")
    return problems


def write_bench_pt(dmesg, out):
    """bench-pt.json: the in-kernel page-table benchmark (our ARM stage-1 4K
    format with and without the contiguous hint vs io-pgtable-arm), medians in
    ns per map + unmap pair, and ratio = io-pgtable time / our time. Returns
    problems."""
    cases, problems = {}, []
    for line in dmesg.splitlines():
        m = PTBENCH.search(line)
        if not m:
            continue
        try:
            c = json.loads(m.group(1))
        except ValueError:
            problems.append(f"unparsable page-table benchmark line: {line.strip()}")
            continue
        name = c.pop("case", "?")
        if "error" in c:
            problems.append(f"page-table benchmark {name}: {c['error']}")
            continue
        iop = c.get("iopgtable_ns")
        for key, ratio in (("ours_ns", "ratio"), ("ours_nocont_ns", "ratio_nocont")):
            c[ratio] = round(iop / c[key], 3) if iop and c.get(key) else None
        cases[name] = c
    (out / "bench-pt.json").write_text(json.dumps(
        {"unit": "ns per map+unmap (median of rounds)",
         "ratio": "io-pgtable-arm time / iommufd_rs time (>1: ours faster)",
         "cases": cases}, indent=2) + "\n")
    if cases:
        print(f"{'page table':10} {'ours ns':>10} {'no-hint ns':>11} {'io-pgtable ns':>14} "
              f"{'ratio':>6} {'no-hint':>8}")
        for name, c in cases.items():
            print(f"{name:10} {c['ours_ns']:10.1f} {c['ours_nocont_ns']:11.1f} "
                  f"{c['iopgtable_ns']:14.1f} {c['ratio'] or 0:6.2f} {c['ratio_nocont'] or 0:8.2f}")
    else:
        problems.append("the page-table benchmark produced no results")
    return problems


# The differential test: selftests/iommufd_diff.c runs the same seeded
# operation sequences against both servers; their logs must agree step by
# step but for the differences allowlisted in selftests/iommufd_diff.allow.
DIFF_SERVERS = ("iommufd_rs", "iommufd")
DIFF_KEY = re.compile(r"^S(\d+)\.(\d+|end) (.*)$")


def diff_steps(text):
    """{(seed, step): line without its key}, in order, and the # lines."""
    steps, meta = {}, []
    for line in text.splitlines():
        m = DIFF_KEY.match(line)
        if m:
            step = int(m.group(2)) if m.group(2) != "end" else 1 << 30
            steps[(int(m.group(1)), step)] = m.group(3)
        elif line.startswith("#"):
            meta.append(line)
    return steps, meta


def load_allowlist(problems):
    """Allowlist entries: (op, ours regex, upstream regex, documented
    difference). Each must quote a line of docs/uapi.md's differences."""
    entries = []
    uapi = (TOP / "docs/uapi.md").read_text()
    doc = uapi[uapi.find("Deliberate differences"):uapi.find("## Extensions")]
    doc = " ".join(doc.split())
    for n, line in enumerate((TOP / "selftests/iommufd_diff.allow").read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        f = line.split("\t")
        if len(f) != 4:
            problems.append(f"iommufd_diff.allow:{n}: want op, ours, upstream, doc (tab-separated)")
            continue
        if " ".join(f[3].split()) not in doc:
            problems.append(f"iommufd_diff.allow:{n}: {f[3]!r} is not a difference listed in docs/uapi.md")
            continue
        entries.append((f[0], re.compile(f[1]), re.compile(f[2]), f[3]))
    return entries


def allowed(entries, ours, up):
    """The allowlist entry that explains the difference: same op, each side
    matches its regex, and the lines are equal with the matches cut out."""
    op = ours.split(" ", 1)[0]
    for e_op, e_ours, e_up, doc in entries:
        if op != e_op or up.split(" ", 1)[0] != op:
            continue
        mo, mu = e_ours.search(ours), e_up.search(up)
        if mo and mu and ours[:mo.start()] + ours[mo.end():] == up[:mu.start()] + up[mu.end():]:
            return doc
    return None


def difftest(merged, out):
    """Compares the two difftest logs; returns (summary, problems)."""
    problems, logs = [], {}
    for server in DIFF_SERVERS:
        sec = merged.pop(f"difftest@{server}", None)
        text = "\n".join(sec["body"]) + "\n" if sec else None
        if text is None:
            problems.append(f"difftest: no log from {server}")
            continue
        (out / f"difftest@{server}.log").write_text(text)
        if sec["server"] != server:
            problems.append(f"difftest@{server} ran against {sec['server']}")
        if not any(l.startswith("# done") for l in text.splitlines()):
            last = [l for l in text.splitlines() if DIFF_KEY.match(l)][-1:]
            m = DIFF_KEY.match(last[0]) if last else None
            again = (f"; replay: iommufd_diff --seed {m.group(1)} --steps {int(m.group(2)) + 2}"
                     if m and m.group(2) != "end" else "")
            problems.append(f"difftest against {server} did not finish (rc={sec['rc']}); "
                            f"last step logged: {last}{again}")
        m = re.search(r"secs=(\d+)", sec.get("end", ""))
        logs[server] = (text, int(m.group(1)) if m else None)
    if len(logs) < 2:
        return {"problems": problems}, problems
    entries = load_allowlist(problems)
    (ours, ours_meta), (up, _) = (diff_steps(logs[s][0]) for s in DIFF_SERVERS)
    report, failed, allow_hits = [], [], {}
    for key in list(dict.fromkeys(list(ours) + list(up))):
        a, b = ours.get(key, "(missing)"), up.get(key, "(missing)")
        if a == b:
            continue
        doc = allowed(entries, a, b)
        seed, step = key
        name = f"S{seed}.{'end' if step == 1 << 30 else step}"
        report.append(f"{name} {'allowed: ' + doc if doc else 'DIFFERS'}\n"
                      f"  iommufd_rs: {a}\n  iommufd:    {b}")
        if doc:
            allow_hits[doc] = allow_hits.get(doc, 0) + 1
        else:
            failed.append((seed, step, name, a, b))
    (out / "difftest.txt").write_text("\n".join(report) + "\n")
    cover = next((l for l in ours_meta if l.startswith("# coverage")), "")
    hits = dict(kv.split("=") for kv in cover.split()[2:])
    unhit = [op for op, n in hits.items() if n == "0"]
    summary = {"steps": len(ours), "differing": len(report), "failed": len(failed),
               "allowed": allow_hits, "secs": {s: logs[s][1] for s in DIFF_SERVERS},
               "ops_not_run": unhit,
               "failed_steps": [f[2] for f in failed][:200]}
    # A comparison of two logs of failures proves little: most steps must
    # get somewhere.
    for server, steps in zip(DIFF_SERVERS, (ours, up)):
        ok = sum(1 for l in steps.values() if re.search(r" -> (0|ok|[1-9]\d*)\b", l))
        summary.setdefault("steps_with_success", {})[server] = ok
        if ok < 0.3 * len(steps):
            problems.append(f"difftest: only {ok} of {len(steps)} steps against {server} "
                            "had any success")
    if not ours or not up:
        problems.append("difftest: a log has no steps")
    if unhit:
        problems.append(f"difftest: ops never run: {unhit}")
    if failed:
        seed, step, name, a, b = failed[0]
        seeds = sorted({f[0] for f in failed})
        again = f"--steps {step + 1}" if step != 1 << 30 else ""
        # Not gated yet: 46 known divergences remain (issue 11 notes);
        # they are reported, and crashes/missing logs above still fail.
        print(
            f"difftest: {len(failed)} steps differ (seeds {seeds[:20]}; all in "
            f"build/vm/difftest.txt); first {name}\n  iommufd_rs: {a}\n  iommufd:    {b}\n"
            f"  reproduce: iommufd_diff --seed {seed} {again}")
    print(f"difftest: {len(ours)} steps, {len(report)} differ, {len(failed)} not allowlisted, "
          f"secs {summary['secs']}")
    summary["problems"] = problems
    return summary, problems


def main():
    mode, out = sys.argv[1], Path(sys.argv[2])
    log = (out / "results.log").read_text(errors="replace") if (out / "results.log").exists() else ""
    console = (out / "console.log").read_text(errors="replace") if (out / "console.log").exists() else ""
    merged = {}
    for name, server, body, rc, end in sections(log):
        s = merged.setdefault(name, {"server": server, "body": [], "rc": 0})
        s["body"] += body
        s["rc"] = max(s["rc"], rc)
        s["end"] = end
    dmesg = "\n".join(merged.pop("dmesg", {"body": []})["body"])
    (out / "dmesg.txt").write_text(dmesg + "\n")
    done = "@@@ DONE" in log
    for name, body in kunit_suites(dmesg):
        merged[f"kunit_{name}@iommufd_rs"] = {"server": "iommufd_rs", "body": body, "rc": 0}

    problems = []
    if not done:
        problems.append("the guest did not finish (crash, panic or timeout; see build/vm/console.log)")
    splats = [l for l in (dmesg + "\n" + console).splitlines() if SPLATS.search(l)]
    if splats:
        problems.append(f"kernel splats in dmesg: {splats[:3]}")

    if mode == "demo":
        demo = merged.get("demo")
        print("\n".join(demo["body"]) if demo else "(the demo produced no output)")
        if not demo or demo["rc"] != 0:
            problems.append("the demo client reported failures")
    if mode == "bench":
        problems += write_bench(merged, out)
        problems += write_bench_pt(dmesg, out)
    summary = {"mode": mode, "completed": done, "splats": splats, "suites": {}}
    if mode in ("test", "difftest"):
        summary["difftest"], p = difftest(merged, out)
        problems += p
    for name, s in merged.items():
        if name == "demo" or name.startswith("bench@"):
            continue
        (out / f"{name}.tap").write_text("\n".join(s["body"]) + "\n")
        c = count(s["body"])
        summary["suites"][name] = dict(c, server=s["server"], exit_code=s["rc"])
        ours = name.startswith(("iommufd_rs_abi@", "module_lifecycle", "kunit_"))
        if ours and (c["fail"] or not c["complete"] or c["pass"] == 0):
            problems.append(f"suite {name} failed: {c}")
        failed, gated = gated_failures(name, s["body"])
        if gated:
            summary["suites"][name]["gated"] = {"cases": gated, "failed": failed}
            if failed or not c["complete"]:
                problems.append(f"gated upstream cases failed in {name}: {failed[:8]}")
            if gated < EXPECTED_CASES.get(name, 0):
                problems.append(f"only {gated} of {EXPECTED_CASES[name]} cases of {name} ran")
        if name == "upstream_iommufd@iommufd" and not c["complete"]:
            problems.append("the upstream baseline run did not complete")
    if mode == "test":
        base = summary["suites"].get("upstream_iommufd@iommufd")
        summary["upstream_baseline_expected"] = UPSTREAM_BASELINE
        if base is None:
            problems.append("the upstream baseline did not run")
        for k in KUNIT_SUITES:
            if f"kunit_{k}@iommufd_rs" not in summary["suites"]:
                problems.append(f"the KUnit suite {k} of iommufd_rs did not run at module load")
    summary["problems"] = problems
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

    if summary["suites"]:
        print(f"{'suite':38} {'server':11} {'pass':>5} {'fail':>5} {'skip':>5}  complete")
        for name, s in summary["suites"].items():
            print(f"{name:38} {s['server']:11} {s['pass']:5} {s['fail']:5} {s['skip']:5}  {s['complete']}")
    for p in problems:
        print(f"FAIL: {p}")
    print(f"results: {out}/summary.json")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
