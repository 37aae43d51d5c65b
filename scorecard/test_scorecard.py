"""The scorecard's own logic: verdicts, undead's contract, parsers, leftover detection on a real
process in a PID namespace of its own, and cleanup after a failed cell (a fake engine).

    python3 -m unittest discover scorecard        (cargo test runs it: tests/scorecard.rs)
"""
import copy
import os
import shutil
import subprocess
import sys
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from engines.docker import Op, Ran  # noqa: E402
from scorecard import cell, hazards, host, render, verdict  # noqa: E402

GOOD_REPORT = {"exit_code": 143, "child": {"pid": 6, "exit_code": 143, "signal": "SIGTERM"},
               "term_to_exit_ms": 3, "held": [{"pid": 19, "kind": "zombie"}], "released": [19],
               "remaining": []}


def ran_cell(**kw):
    """A cell that ran: a clean `stop` unless kw says otherwise."""
    c = {"status": "ran", "grace_s": 5, "op_timeout_s": 60, "signal": "TERM", "removes": False,
         "op": {"name": "stop", "code": 0, "seconds": 0.2, "timed_out": False, "stderr": ""},
         "gone_s": 0.1, "after": {"exists": True, "running": False, "exit_code": 143},
         "left": {"processes": [], "fuse": [], "mounts": [], "cgroups": [], "shims": [], "engine": []},
         "report": copy.deepcopy(GOOD_REPORT), "init_alive": False, "cleanup": {"needed": False}}
    for k, v in kw.items():
        if isinstance(v, dict) and isinstance(c.get(k), dict):
            c[k] = dict(c[k], **v)
        else:
            c[k] = v
    return c


class Verdicts(unittest.TestCase):
    def test_clean(self):
        self.assertEqual(verdict.verdict(ran_cell()), "clean")

    def test_slow_when_the_whole_grace_is_spent(self):
        self.assertEqual(verdict.verdict(ran_cell(op={"seconds": 5.2}, gone_s=5.1)), "slow")
        # Negative control: most of the grace is not all of it.
        self.assertEqual(verdict.verdict(ran_cell(op={"seconds": 3.0}, gone_s=3.0)), "clean")

    def test_slow_by_the_last_process_even_if_the_engine_returned_early(self):
        self.assertEqual(verdict.verdict(ran_cell(op={"seconds": 0.1}, gone_s=9.0)), "slow")

    def test_stuck(self):
        self.assertEqual(verdict.verdict(ran_cell(op={"code": 1, "seconds": 12.0})), "stuck")
        self.assertEqual(verdict.verdict(ran_cell(op={"code": None, "timed_out": True})), "stuck")
        self.assertEqual(verdict.verdict(ran_cell(op={"code": None, "stderr": "boom"})), "stuck")
        self.assertEqual(verdict.verdict(ran_cell(after={"running": True})), "stuck")
        self.assertEqual(verdict.verdict(ran_cell(removes=True, after={"exists": True})), "stuck")

    def test_leak_wins_over_everything(self):
        for k in ("processes", "fuse", "mounts", "cgroups", "shims", "engine"):
            c = ran_cell(op={"code": 1, "seconds": 30}, left={k: ["x"]})
            self.assertEqual(verdict.verdict(c), "leak", k)

    def test_skipped_and_error_keep_their_status(self):
        self.assertEqual(verdict.verdict({"status": "skipped"}), "skipped")
        self.assertEqual(verdict.verdict({"status": "error"}), "error")

    def test_label_marks_cleanup(self):
        c = ran_cell(op={"code": 1, "seconds": 12.04}, cleanup={"needed": True})
        self.assertEqual(verdict.cell_label(c), "stuck 12.0s †")


class UndeadContract(unittest.TestCase):
    def test_a_good_stop_is_no_problem(self):
        self.assertEqual(verdict.undead_problems(ran_cell(), "exits", "dies"), [])

    def test_a_slow_or_stuck_engine_is_not_undead_s_problem(self):
        c = ran_cell(op={"code": 1, "seconds": 40, "timed_out": False}, gone_s=None,
                     after={"running": True})
        self.assertEqual(verdict.verdict(c), "stuck")
        self.assertEqual(verdict.undead_problems(c, "exits", "dies"), [])

    def test_term_not_forwarded(self):
        c = ran_cell(report=dict(GOOD_REPORT, child={"signal": None, "exit_code": 0}, exit_code=0))
        p = verdict.undead_problems(c, "exits", "dies")
        self.assertTrue(any("SIGTERM" in x for x in p), p)
        self.assertTrue(any("not 143" in x for x in p), p)

    def test_held_not_released(self):
        c = ran_cell(report=dict(GOOD_REPORT, released=[]))
        self.assertTrue(any("not released" in x for x in verdict.undead_problems(c, "exits", "dies")))

    def test_no_report_after_term(self):
        c = ran_cell(report=None, report_note="no report")
        self.assertTrue(verdict.undead_problems(c, "exits", "dies"))
        # A row where the engine's grace decides (deaf workload) expects no report.
        self.assertEqual(verdict.undead_problems(c, None, "dies"), [])

    def test_undead_processes_outliving_a_killed_undead(self):
        left = {"processes": ["812 D undead-fuse request_wait_answer"]}
        c = ran_cell(signal="KILL", report=None, left=left)
        self.assertTrue(verdict.undead_problems(c, "exits", "dies"))
        # By design for --outlive rows; and not undead's fault while the engine left it alive.
        self.assertEqual(verdict.undead_problems(c, "exits", None), [])
        c["init_alive"] = True
        self.assertEqual(verdict.undead_problems(c, "exits", "dies"), [])

    def test_raise_failure_is_undead_s_fault_only_when_flagged(self):
        self.assertTrue(verdict.undead_problems({"status": "error", "undead_fault": True,
                                                 "error": "wait timed out"}, "exits", "dies"))
        self.assertEqual(verdict.undead_problems({"status": "error", "error": "docker run failed"},
                                                 "exits", "dies"), [])


class Parsers(unittest.TestCase):
    def test_stat_with_a_hostile_comm(self):
        p = host.parse_stat("42 (a) b) c) D 1 42 42 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 777 0 0")
        self.assertEqual((p.pid, p.comm, p.state, p.ppid, p.start), (42, "a) b) c", "D", 1, 777))
        self.assertIsNone(host.parse_stat("garbage"))

    def test_cgroup_file(self):
        text = "8:pids:/docker/abc\n6:freezer:/docker/abc\n1:name=systemd:/docker/abc\n4:memory:/\n0::/docker/abc\n"
        dirs = host.parse_cgroup_file(text, root="/nonexistent")
        self.assertIn("/nonexistent/pids/docker/abc", dirs)
        self.assertIn("/nonexistent/freezer/docker/abc", dirs)
        self.assertIn("/nonexistent/systemd/docker/abc", dirs)
        self.assertNotIn("/nonexistent/memory", dirs)  # the root cgroup is nobody's leftover
        self.assertIn("/nonexistent/docker/abc", dirs)  # v2 without a "unified" mount

    def test_fuse_connections_from_mountinfo(self):
        mi = ("36 35 0:52 / /tmp/m rw,nosuid - fuse.undead undead rw,user_id=0\n"
              "37 35 0:53 / /x rw - fuse.sshfs host:/ rw\n"
              "38 35 8:1 / / rw - ext4 /dev/sda1 rw\n")
        self.assertEqual(host.fuse_conns_in_mountinfo(mi), {52})

    def test_mounts_matching(self):
        mi = "90 29 0:60 / /var/lib/docker/overlay2/L/merged rw - overlay overlay rw\n"
        self.assertEqual(host.mounts_matching(mi, ["/var/lib/docker/overlay2/L/merged", ""]),
                         ["/var/lib/docker/overlay2/L/merged"])
        self.assertEqual(host.mounts_matching(mi, ["", "other"]), [])

    def test_verb_support_is_read_from_the_binary_s_answer(self):
        self.assertTrue(hazards.unsupported(["/undead", "stopped", "2"], 127,
                                            "undead: cannot run 'stopped': No such file"))
        self.assertTrue(hazards.unsupported(["/undead", "dstate", "1", "--cwd", "/"], 2,
                                            "undead: unrecognized argument: --cwd"))
        # A real failure of a known verb is not "unsupported".
        self.assertFalse(hazards.unsupported(["/undead", "dstate", "1"], 1, "made 0 of 1"))
        self.assertFalse(hazards.unsupported(["/undead", "zombie", "1"], 127, "cannot run 'sh'"))

    def test_hazard_table_is_well_formed(self):
        names = [h.name for h in hazards.HAZARDS]
        self.assertEqual(len(names), len(set(names)))
        for h, o in hazards.QUICK:
            self.assertIn(h, names)
        for h in hazards.HAZARDS:
            for argv in h.raise_:
                self.assertTrue(argv[0].startswith("/"), argv)


def undead_binary():
    """The binary under test: $UNDEAD_BIN (cargo test sets it), else cargo's release or debug build."""
    repo = Path(__file__).resolve().parent.parent
    for p in (os.environ.get("UNDEAD_BIN", ""),
              repo / "target/x86_64-unknown-linux-gnu/release/undead",
              repo / "target/x86_64-unknown-linux-gnu/debug/undead"):
        if p and os.access(str(p), os.X_OK):
            return str(p)
    return None


@unittest.skipUnless(undead_binary(), "no undead binary (cargo build)")
class VerbSupport(unittest.TestCase):
    """Rows are skipped by the binary's own answer, never by a list of versions."""

    def probe(self, h):
        from engines.docker import run
        return cell.probe_support(undead_binary(), h, lambda argv, timeout: run(argv, timeout=timeout))

    def test_a_known_verb_is_supported(self):
        self.assertIsNone(self.probe(hazards.BY_NAME["zombies"]))
        self.assertIsNone(self.probe(hazards.BY_NAME["fuse-outlive"]))

    def test_an_unknown_verb_or_option_is_skipped_with_the_binary_s_words(self):
        h = hazards.Hazard("t", "t", raise_=[[hazards.U, "no-such-verb", "2"]])
        why = self.probe(h)
        self.assertIn("verb not in this undead", why)
        self.assertIn("no-such-verb", why)
        h = hazards.Hazard("t", "t", raise_=[[hazards.U, "zombie", "2", "--no-such-option"]])
        self.assertIn("verb not in this undead", self.probe(h))
        h = hazards.Hazard("t", "t", raise_=[[hazards.U, "zombie", "2"]], wait=["--no-such-kind", "1"])
        self.assertIn("verb not in this undead", self.probe(h))


def root_with_unshare():
    return os.geteuid() == 0 and shutil.which("unshare")


class Sandbox:
    """`unshare --pid --fork sleep`: a process (PID 1 of its own namespace) to find and clean up."""

    def __init__(self):
        self.p = subprocess.Popen(["unshare", "--pid", "--fork", "sleep", "300"],
                                  stderr=subprocess.DEVNULL)
        self.pid = None
        t0 = time.monotonic()
        while time.monotonic() - t0 < 10 and self.pid is None:
            kids = host.read("/proc/%d/task/%d/children" % (self.p.pid, self.p.pid)).split()
            if kids and host.pidns_of(int(kids[0])) != host.pidns_of(os.getpid()):
                self.pid = int(kids[0])
            time.sleep(0.02)

    def close(self):
        if self.pid and host.proc_of(self.pid):
            try:
                os.kill(self.pid, 9)
            except OSError:
                pass
        self.p.wait(timeout=10)


@unittest.skipUnless(root_with_unshare(), "needs root and unshare(1)")
class Leftovers(unittest.TestCase):
    def test_a_live_namespace_is_found_and_killed_by_pid(self):
        sb = Sandbox()
        try:
            self.assertIsNotNone(sb.pid, "the sandbox's sleep appeared")
            box = host.Box(id="scorecard-test-%d" % os.getpid(), init_pid=sb.pid)
            box.hold_ns()
            self.assertTrue(box.pidns)
            left = host.leftovers(box)
            self.assertEqual(len(left["processes"]), 1, left)
            self.assertIn(" sleep", left["processes"][0])
            self.assertTrue(verdict.anything_left(left))
            # Negative control: our own process is not in the box.
            self.assertNotIn(os.getpid(), host.box_pids(box))
            self.assertEqual(host.kill_box(box), [sb.pid])
            self.assertIsNotNone(host.wait_until(lambda: host.box_gone(box), 10))
            self.assertFalse(verdict.anything_left(host.leftovers(box)))
            box.release_ns()
        finally:
            sb.close()


class FakeEngine:
    """An engine whose container is an unshare'd sleep; `fail` picks the step that breaks."""
    name = "fake"
    undead = "/bin/false"
    OPS = [Op("stop", "stop", "TERM")]

    def __init__(self, fail):
        self.fail, self.sandboxes, self.removed = fail, [], []

    def can(self, h, op=None):
        return None

    def start(self, h, tag, op=None):
        sb = Sandbox()
        self.sandboxes.append(sb)
        return {"id": "fake-%d" % sb.pid, "pid": sb.pid, "name": tag}, None

    def shim_words(self, st):
        return []

    def ready_argv(self, st):
        return ["ready"]

    def exec(self, st, argv, timeout=30):
        if self.fail == "raise" and argv != ["ready"]:
            return Ran(argv, 1, "", "made 0 of 2")
        return Ran(argv, 0)

    def operate(self, st, op, grace, timeout):
        if self.fail == "operate":
            raise RuntimeError("the engine's client broke")
        return Ran([op.name], 0)

    def state(self, st):
        return {"exists": True, "running": False, "exit_code": 0, "error": ""}

    def report(self, st):
        return None, "fake"

    def leftovers(self, st):
        return []

    def remove(self, st):
        self.removed.append(st["name"])
        return []


@unittest.skipUnless(root_with_unshare(), "needs root and unshare(1)")
class CleanupAfterFailedCell(unittest.TestCase):
    def run_fake(self, fail):
        eng = FakeEngine(fail)
        h = hazards.Hazard("fake", "fake", raise_=[["/undead", "zombie", "2"]])
        try:
            c = cell.run_cell(eng, h, eng.OPS[0], grace=5, bound=1.0, op_timeout=10, support=None)
            return eng, c
        finally:
            for sb in eng.sandboxes:
                sb.close()

    def test_a_failed_raise_is_cleaned_up_and_blamed_on_undead(self):
        eng, c = self.run_fake("raise")
        self.assertEqual(c["status"], "error")
        self.assertTrue(c["undead_problems"], c)
        self.assertTrue(c["cleanup"]["needed"], c["cleanup"])
        self.assertTrue(any("SIGKILLed" in a for a in c["cleanup"]["actions"]), c["cleanup"])
        self.assertTrue(c["cleanup"]["ok"], c["cleanup"])
        self.assertIn("fake", eng.removed)
        self.assertIsNone(host.proc_of(eng.sandboxes[0].pid))

    def test_a_broken_engine_call_is_stuck_and_the_next_cell_still_runs(self):
        eng, c = self.run_fake("operate")
        self.assertEqual(c["status"], "ran")
        self.assertEqual(c["verdict"], "leak")  # the sleep was still there after the bound
        self.assertIn("the engine's client broke", c["op"]["stderr"])
        self.assertEqual(c["undead_problems"], [])
        self.assertTrue(c["cleanup"]["ok"])
        self.assertIsNone(host.proc_of(eng.sandboxes[0].pid))
        # Not poisoned: the next cell starts from a clean state and is judged on its own.
        eng2, c2 = self.run_fake("raise")
        self.assertEqual(c2["status"], "error")
        self.assertTrue(c2["cleanup"]["ok"])

    def test_markdown_and_svg_render_every_status(self):
        cells = [dict(ran_cell(), hazard="none", verdict="clean", undead_problems=[]),
                 dict(ran_cell(op={"code": 1, "seconds": 12, "stderr": "gave up"}), hazard="fuse",
                      verdict="stuck", undead_problems=["x"]),
                 {"hazard": "deaf", "op": {"name": "stop"}, "status": "skipped", "verdict": "skipped",
                  "reason": "verb not in this undead"}]
        for c in cells:
            c["op"]["name"] = "stop"
        res = {"meta": {"date": "today"}, "engines": [{
            "engine": "fake", "version": "Fake 1", "ops": [{"name": "stop", "title": "stop"}],
            "hazards": [{"name": n, "title": n} for n in ("none", "fuse", "deaf")], "cells": cells}]}
        md = render.markdown(res)
        self.assertIn("| none | clean 0.2s |", md)
        self.assertIn("stuck 12.0s [1]", md)
        self.assertIn("UNDEAD: x", md)
        self.assertIn("deaf: verb not in this undead", md)
        self.assertIn("<svg", render.svg(res))


if __name__ == "__main__":
    unittest.main()
