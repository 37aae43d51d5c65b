"""Verdicts: pure functions of a cell's record (a dict, as it appears in the JSON).

Two separate judgements, so CI can fail on one and only report the other:
- the engine's verdict (`clean`, `slow`, `stuck`, `leak`), from timings and what was left;
- undead's contract (`undead_problems`), from undead's own report and what its processes did,
  judged only where the row says undead alone decides the outcome (hazards.Hazard.on_term/on_kill).
An engine that is slow, gives up or leaks never makes `undead_problems` non-empty; undead that does
not forward TERM, does not release what it holds, or leaves its processes behind after it died does.
"""

SEVERITY = ["clean", "slow", "stuck", "leak"]
# "the whole grace was spent": under load a clean stop still takes a moment, so a margin.
SLOW_FRACTION = 0.9


def anything_left(left):
    return any(left.get(k) for k in ("processes", "fuse", "mounts", "cgroups", "shims", "engine"))


def engine_flags(cell):
    """The reasons behind the verdict: {"slow": [...], "stuck": [...], "leak": [...]}."""
    op, after, grace = cell["op"], cell.get("after", {}), cell["grace_s"]
    flags = {"slow": [], "stuck": [], "leak": []}
    if op.get("timed_out"):
        flags["stuck"].append("the operation did not return within %ss" % cell.get("op_timeout_s"))
    elif op.get("code") is None:
        flags["stuck"].append("the operation could not run: %s" % (op.get("stderr") or "")[-120:])
    elif op.get("code") != 0:
        flags["stuck"].append("the operation failed (exit %s)" % op.get("code"))
    if after.get("running"):
        flags["stuck"].append("the container still ran after the operation")
    if cell.get("removes") and after.get("exists"):
        flags["stuck"].append("the container still existed after its removal")
    spent = max(op.get("seconds") or 0.0, cell.get("gone_s") or 0.0)
    if spent >= SLOW_FRACTION * grace:
        flags["slow"].append("%.1f s of a %d s grace" % (spent, grace))
    left = cell.get("left", {})
    for k in ("processes", "fuse", "mounts", "cgroups", "shims", "engine"):
        items = [str(x).replace("/sys/fs/cgroup/", "") for x in left.get(k) or []]
        if len(items) > 3:
            items = items[:2] + ["%d more" % (len(items) - 2)]
        if items:
            flags["leak"].append("%s: %s" % (k, ", ".join(items)))
    return flags


def verdict(cell):
    """clean | slow | stuck | leak (the worst that applies); skipped/error cells keep their status."""
    if cell.get("status") != "ran":
        return cell.get("status", "error")
    flags = engine_flags(cell)
    for v in reversed(SEVERITY[1:]):
        if flags[v]:
            return v
    return "clean"


def undead_problems(cell, on_term, on_kill):
    """What undead did wrong in this cell, judged only by what undead alone decides."""
    problems = []
    if cell.get("status") == "error" and cell.get("undead_fault"):
        return [cell.get("error", "undead failed to raise the hazard")]
    if cell.get("status") != "ran":
        return problems
    sig = cell.get("signal")
    report = cell.get("report")
    left = cell.get("left", {}).get("processes", [])
    mine = [p for p in left if " undead" in p]
    delivered = cell.get("op", {}).get("code") == 0  # else the engine never got the signal there
    if sig == "TERM" and on_term == "exits" and delivered:
        if report is None:
            problems.append("no teardown report after SIGTERM (%s)" % cell.get("report_note", ""))
        else:
            child = report.get("child") or {}
            if child.get("signal") != "SIGTERM":
                problems.append("the child did not die of the forwarded SIGTERM: %s" % child)
            if report.get("exit_code") != 143:
                problems.append("undead exited %s, not 143" % report.get("exit_code"))
            held = {h.get("pid") for h in report.get("held", [])}
            unreleased = held - set(report.get("released", []))
            if unreleased:
                problems.append("held but not released: %s" % sorted(unreleased))
            t = report.get("term_to_exit_ms")
            if t is None or t > cell["grace_s"] * 1000:
                problems.append("undead took %s ms from SIGTERM to exit" % t)
        if mine:
            problems.append("undead's processes left after it exited: %s" % ", ".join(mine[:4]))
    if sig == "KILL" and on_kill == "dies" and mine and not cell.get("init_alive"):
        problems.append("undead's processes outlived it: %s" % ", ".join(mine[:4]))
    return problems


def cell_label(cell):
    """The table's text for a cell: verdict, time, a dagger when cleanup had to act."""
    v = verdict(cell)
    if v in ("skipped", "error"):
        return v
    t = max(cell["op"].get("seconds") or 0.0, cell.get("gone_s") or 0.0)
    mark = " †" if cell.get("cleanup", {}).get("needed") else ""
    return "%s %.1fs%s" % (v, t, mark)
