"""One cell of the scorecard: start, raise, confirm, operate, watch, judge, clean up.

Every step is bounded in time, and `run_cell` never raises: whatever fails, the cell's record
says so and `clean_up` takes back what the cell left (engine removal, then FUSE abort of the
cell's own connections, thaw of its own frozen cgroups, SIGKILL of its own processes by PID, and
`undead rescue` only as the last resort), so the next cell starts on a clean machine.
"""
import contextlib
import subprocess
import sys
import threading
import time

from engines.docker import Ran
from scorecard import hazards, host, verdict

CONFIRM_S = 20.0   # raising and confirming a hazard
READY_S = 20.0     # undead answering after the container started
SETTLE_S = 5.0     # the engine noticing that the container's processes are gone


def log(*a):
    print("scorecard:", *a, file=sys.stderr, flush=True)


def probe_support(binary, h, runner):
    """None when the local binary knows every verb and option of the row, else the reason."""
    for argv in hazards.probe_argv(binary, h):
        argv = [a if not a.startswith("/") or i == 0 else "/" for i, a in enumerate(argv)]
        argv[-1] = "/nonexistent/undead-scorecard-probe.sock"
        r = runner(argv, timeout=10)
        if r.code == 3:
            continue
        if hazards.unsupported(argv, r.code, r.text()):
            return "verb not in this undead: `%s` says %s" % (
                " ".join(argv[1:-2]), (r.text().splitlines() or ["exit %s" % r.code])[-1][:120])
        return "probe `%s` answered exit %s: %s" % (" ".join(argv[1:]), r.code, r.text()[-120:])
    return None


def wait_ready(engine, st):
    t0 = time.monotonic()
    while time.monotonic() - t0 < READY_S:
        if engine.exec(st, engine.ready_argv(st), timeout=10).ok():
            return True
        time.sleep(0.1)
    return False


def raise_hazard(engine, st, h, cell):
    """Raises and confirms the hazard; returns None, or (reason, undead_fault, skipped)."""
    for argv in h.raise_:
        r = engine.exec(st, argv, timeout=CONFIRM_S)
        cell.setdefault("raised", []).append(r.as_json())
        if r.ok():
            continue
        if hazards.unsupported(argv, r.code, r.text()):
            return "verb not in this undead: %s" % r.text()[-160:], False, True
        return "`%s` failed (exit %s): %s" % (" ".join(argv), r.code, r.text()[-200:]), True, False
    if not h.wait:
        return None
    argv = ["/undead", "wait"] + h.wait + ["--timeout", "%ds" % CONFIRM_S]
    r = engine.exec(st, argv, timeout=CONFIRM_S + 10)
    cell["confirm"] = r.as_json()
    if r.ok():
        return None
    if hazards.unsupported(argv, r.code, r.text()):
        return "wait option not in this undead: %s" % r.text()[-160:], False, True
    return "`undead wait %s` failed (exit %s): %s" % (" ".join(h.wait), r.code, r.text()[-200:]), True, False


def make_box(engine, st, h):
    pid = st["pid"]
    # A cgroup the scorecard itself is in (or below) is not the container's own: never match by it.
    ours = host.parse_cgroup_file(host.read("/proc/self/cgroup"))
    dirs = [d for d in host.parse_cgroup_file(host.read("/proc/%d/cgroup" % pid))
            if not any(o == d or o.startswith(d + "/") for o in ours)]
    box = host.Box(id=st["id"], init_pid=pid, cgroups=dirs,
                   rootfs=st.get("rootfs", ""), shim_words=engine.shim_words(st))
    box.hold_ns()
    return box


def operate_and_watch(engine, st, box, op, grace, op_timeout, bound):
    """Runs the operation in a thread while polling the host; returns (ran, gone_s)."""
    result = {}
    t0 = time.monotonic()
    def target():
        try:
            result["r"] = engine.operate(st, op, grace, op_timeout)
        except Exception as e:  # the engine's client broke: the cell says so, the run goes on
            result["r"] = Ran([op.name], None, "", "scorecard: %s: %s" % (type(e).__name__, e))

    th = threading.Thread(target=target)
    th.start()
    gone_s = op_end = None
    while True:
        now = time.monotonic()
        if gone_s is None and host.box_gone(box):
            gone_s = now - t0
        if op_end is None and not th.is_alive():
            op_end = now
        if op_end is not None and (gone_s is not None or now - op_end >= bound):
            break
        time.sleep(0.05)
    th.join()
    return result["r"], gone_s, op_end


def clean_up(engine, st, box, h, lock_held):
    """Takes back what the cell left; returns {"actions", "needed", "left_after"}."""
    actions = []
    needed = False
    if box is not None:
        left = host.leftovers(box)
        if left["fuse"] or any(" D " in p for p in left["processes"]):
            conns = box.fuse_conns | host.scan_fuse_conns(box)
            aborted = host.abort_fuse(conns)
            if aborted:
                actions.append("aborted FUSE connections %s" % aborted)
                needed = True
        thawed = host.thaw_frozen(box)
        if thawed:
            actions.append("thawed %s" % ", ".join(thawed))
            needed = True
    if st.get("name"):
        failed = engine.remove(st)
        if failed:
            actions += failed
            needed = True
    if box is not None:
        killed = host.kill_box(box)
        if killed:
            actions.append("SIGKILLed %s" % killed)
            needed = True
        if host.wait_until(lambda: host.box_gone(box), 10.0) is None and lock_held:
            # Last resort, and only under the host-wide FUSE lock: rescue aborts every undead
            # connection on the host, other suites' too.
            r = subprocess.run([engine.undead, "rescue"], capture_output=True, text=True, timeout=60)
            actions.append("undead rescue: %s" % (r.stdout + r.stderr).strip()[-200:])
            needed = True
            host.wait_until(lambda: host.box_gone(box), 10.0)
            host.thaw_frozen(box)
            host.kill_box(box)
        removed = host.remove_kit_cgroups(box)
        if removed:
            actions.append("removed %s" % ", ".join(removed))
            needed = True
        if st.get("name") and needed:
            more = engine.remove(st)
            actions += ["retry: " + m for m in more]
    left_after = host.leftovers(box) if box is not None else {}
    if hasattr(engine, "leftovers") and st.get("name"):
        left_after["engine"] = engine.leftovers(st)
    return {"actions": actions, "needed": needed, "left_after": left_after,
            "ok": not verdict.anything_left(left_after)}


def run_cell(engine, h, op, grace, bound, op_timeout, support):
    """One cell, never raising. `support` is probe_support's answer for the row (None: supported)."""
    cell = {"engine": engine.name, "hazard": h.name, "op": {"name": op.name}, "grace_s": grace,
            "bound_s": bound, "op_timeout_s": op_timeout, "signal": op.signal, "removes": op.removes}
    why = support or engine.can(h, op)
    if why:
        cell.update(status="skipped", reason=why, verdict="skipped", undead_problems=[])
        return cell
    # `undead rescue` (ours, or another suite's) aborts every undead FUSE connection and thaws
    # every undead frozen cgroup on the host: such rows run under the host-wide lock.
    needs_lock = bool({"fuse", "freezer-v1"} & h.needs)
    lock = host.FuseLock() if needs_lock else contextlib.nullcontext()
    st, box = {}, None
    t_cell = time.monotonic()
    with lock:
        try:
            st, err = engine.start(h, h.name, op)
            if err:
                cell.update(status="error", error=err)
            elif not wait_ready(engine, st):
                cell.update(status="error", error="undead did not answer `status` in %ds" % READY_S,
                            undead_fault=True)
            else:
                box = make_box(engine, st, h)
                cell["box"] = {"id": box.id, "init_pid": box.init_pid, "pidns": box.pidns,
                               "cgroup": sorted({d.split("/", 5)[-1] for d in box.cgroups}),
                               "hierarchies": len(box.cgroups), "rootfs": box.rootfs}
                failed = raise_hazard(engine, st, h, cell)
                if failed:
                    reason, fault, skipped = failed
                    cell.update(status="skipped" if skipped else "error",
                                **{"reason" if skipped else "error": reason, "undead_fault": fault})
                else:
                    box.fuse_conns = host.scan_fuse_conns(box)
                    cell["before"] = [p.brief() for p in host.box_procs(box)]
                    measure(engine, st, box, op, grace, bound, op_timeout, cell)
        except Exception as e:  # a bug in a cell must not poison the next one
            cell.update(status="error", error="scorecard: %s: %s" % (type(e).__name__, e))
        try:
            cell["cleanup"] = clean_up(engine, st, box, h, needs_lock)
        except Exception as e:
            cell["cleanup"] = {"actions": ["cleanup failed: %s" % e], "needed": True, "ok": False}
        if box is not None:
            box.release_ns()
    cell["cell_s"] = round(time.monotonic() - t_cell, 2)
    cell["verdict"] = verdict.verdict(cell)
    cell["undead_problems"] = verdict.undead_problems(cell, h.on_term, h.on_kill)
    return cell


def measure(engine, st, box, op, grace, bound, op_timeout, cell):
    ran, gone_s, op_end = operate_and_watch(engine, st, box, op, grace, op_timeout, bound)
    cell["op"] = dict(ran.as_json(), name=op.name)
    cell["gone_s"] = round(gone_s, 3) if gone_s is not None else None
    # The engine learns of the exit a moment after the kernel: give it that moment (bounded).
    def settled():
        s = engine.state(st)
        return not (s["running"] or (op.removes and s["exists"]))

    if gone_s is not None:
        host.wait_until(settled, SETTLE_S, step=0.2)
    cell["after"] = engine.state(st)
    # Shims, mounts and cgroups go a moment after the last process: judge what is left once
    # nothing is, or when the bound is over.
    def left_now():
        left = host.leftovers(box)
        left["engine"] = []
        if op.removes:
            left["engine"] = (["container still exists"] if engine.state(st)["exists"] else []) \
                + engine.leftovers(st)
        return left

    left = left_now()
    while verdict.anything_left(left) and time.monotonic() < op_end + bound:
        time.sleep(0.25)
        left = left_now()
    left["fuse_conns_raised"] = sorted(box.fuse_conns)
    cell["left"] = left
    cell["init_alive"] = host.proc_of(box.init_pid) is not None and host.pidns_of(box.init_pid) == box.pidns
    report, note = engine.report(st)
    cell["report"] = report
    cell["report_note"] = note
    cell["status"] = "ran"
