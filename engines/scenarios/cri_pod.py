"""A pod through the CRI, in kubelet's order, with one teardown hazard.

    python -m engines.scenarios.cri_pod --undead BIN --scenario S [--share-pid]

S is one of:
- zombie, vfork, fuse: the container (undead -- sleep, `--report -`)
  raises 3 zombies, 2 vfork D or 2 FUSE D over ExecSync;
- withhold, reap: the sandbox is undead --pause (with --withhold-reaping
  for `withhold`) in a shared PID namespace, and the container's shell
  leaves 3 orphans that exit: the sandbox withholds them (Z under it) or
  reaps them;
- outlive: 2 FUSE D victims with `--outlive 15s`, which survive undead
  and the container: what StopContainer, StopPodSandbox and
  RemovePodSandbox do while they live, and that they are gone within the
  kernel's bound (15-30 s after their request).

Calls: RunPodSandbox, CreateContainer, StartContainer, ExecSync,
StopContainer(grace), ContainerStatus, StopPodSandbox, RemovePodSandbox.
Then: no process, mount, shim, FUSE connection or cgroup of the pod is
left on the host. Prints `RESULT {json}` with every call's time.
"""

import argparse
import json
import os
import sys
import tempfile
import time

from engines import containerd, host, images
from engines.scenarios.common import Checks, last_json, ms, skip

GRACE = 30           # StopContainer's timeout (kubelet's grace period)
FAST = 10            # what "well within the grace period" means here
TEST_IMAGE = "localhost/undead-cri-test:{}"
PAUSE_IMAGE = "localhost/undead-cri-pause:{}"

HAZARDS = {  # scenario: (ExecSync command, count, state, comm, fuse)
    "zombie": (["/undead", "zombie", "3"], 3, "Z", "undead-zombie", None),
    "vfork": (["/undead", "dstate", "2"], 2, "D", "undead-vfork", None),
    "fuse": (["/undead", "dstate", "2", "--kind", "fuse"], 2, "D",
             "undead-fuse", "device"),
    "outlive": (["/undead", "dstate", "2", "--kind", "fuse", "--outlive",
                 "15s"], 2, "D", "undead-fuse", "device"),
}
ORPHANS = "for i in 1 2 3; do (sleep 0 &); done; exec sleep 100000"


def ns_pid(pid):
    """The PID a host process has in its innermost PID namespace."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except OSError:
        pass
    return None


def comm(pid):
    return (host.proc_stat(pid) or ("", 0, ""))[2]


def state(pid):
    return (host.proc_stat(pid) or ("", 0, ""))[0]


def victims(root, want_state, want_comm, want, limit=20):
    """Host PIDs of `want` processes named `comm` in `state` under root."""
    want_st = (want_state, want_comm)
    deadline = time.monotonic() + limit
    while True:
        found = [p for p in host.descendants(root)
                 if (host.proc_stat(p) or ("", 0, ""))[0:3:2] == want_st]
        if len(found) >= want or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def poll(probe, limit):
    deadline = time.monotonic() + limit
    while True:
        got = probe()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def attempt(ck, what, call, retry_for=0):
    """Runs one CRI call, retrying failures for `retry_for` seconds as
    kubelet's sync loop would. Records its time, outcome and attempts."""
    start = time.monotonic()
    tries, error, first = 0, None, None
    while True:
        tries += 1
        try:
            call()
            error = None
            break
        except Exception as e:  # grpc.RpcError: record what the engine said
            code = e.code() if hasattr(e, "code") else "?"
            details = e.details() if hasattr(e, "details") else str(e)
            error = f"{code}: {details}"
            first = first or error
            if time.monotonic() - start > retry_for:
                break
            time.sleep(1)
    ck.call(what, time.monotonic() - start, tries, error)
    ck.result["calls"][what]["first_error"] = first
    return error is None


def run_hazard(ck, cd, cri, scenario, share_pid, tag):
    cmd, n, st_letter, name, fuse = HAZARDS[scenario]
    pod = cri.run_pod(f"pod-{scenario}", share_pid=share_pid)
    sandbox = pod.sandbox_pid()
    # runc start returns once the sandbox's init is released, which may be
    # a moment before it has exec'd undead.
    poll(lambda: comm(sandbox) == "undead", 10)
    ck.equal(comm(sandbox), "undead",
             "the sandbox process is undead")
    ck.equal(ns_pid(sandbox), 1, "the sandbox is PID 1 of its namespace")
    c = pod.create("app", TEST_IMAGE.format(tag), [], fuse=fuse, command=[
        "/undead", "--report", "-", "--", "/bin/sleep", "100000"])
    c.start()
    record_start(ck, pod, c)
    st = c.status()
    ck.equal(st["state"], "CONTAINER_RUNNING", "after StartContainer")
    main = st["pid"]
    # Shared PID namespace: the container's undead is a subreaper under
    # the sandbox's PID 1; otherwise it is PID 1 of its own namespace.
    ck.check((ns_pid(main) == 1) != share_pid,
             "container undead is PID 1 exactly when the pod shares no "
             "PID namespace", f"ns pid {ns_pid(main)}")
    if scenario == "zombie":
        exec_negative_controls(ck, c)
    t0 = time.monotonic()
    code, out, err = c.exec_sync(cmd)
    ck.note(exec_sync={"cmd": " ".join(cmd), "exit_code": code,
                       "stdout": out, "stderr": err,
                       "ms": ms(time.monotonic() - t0)})
    ck.equal(code, 0, f"ExecSync {' '.join(cmd)} exit code")
    ck.equal(len(out.split()), n, "PIDs printed by the verb")
    found = victims(main, st_letter, name, n)
    ck.equal(len(found), n, f"{name} in {st_letter} on the host")
    ck.say(f"host: sandbox undead pid {sandbox} (pid 1 in the pod), "
           f"container undead pid {main} (pid {ns_pid(main)} in the pod); "
           f"{len(found)} {name} in {st_letter}: {found}")
    devs = set()
    for v in found:
        devs |= host.undead_fuse_devs(v)
    if fuse:
        ck.check(devs, "the FUSE victims see undead's FUSE mount")
    if scenario == "outlive":
        return teardown_outlive(ck, cd, pod, c, (found, devs, sandbox), t0)
    took = c.stop(GRACE)
    ck.call("StopContainer", took)
    ck.note(grace_s=GRACE)
    ck.check(took < FAST, f"StopContainer returns well within its "
             f"{GRACE} s grace period (< {FAST} s)", f"took {took:.2f} s")
    st = c.status()
    ck.say(f"ContainerStatus: {st['state']} exit_code={st['exit_code']} "
           f"reason={st['reason']}")
    ck.equal((st["state"], st["exit_code"], st["reason"]),
             ("CONTAINER_EXITED", 143, "Error"), "ContainerStatus after stop")
    gone = host.wait_gone(found, 10)
    ck.check(gone is not None, "the hazard is gone after StopContainer",
             "; ".join(host.describe(found)))
    report = last_json(c.log())
    ck.check(report is not None, "undead's teardown report is in the log",
             c.log()[-500:])
    if report:
        ck.note(report=report)
        ck.say(f"log: {json.dumps(report)[:300]}")
        ck.equal(report.get("exit_code"), 143, "report exit_code")
        made = {int(p) for p in out.split()}
        ck.check(made <= set(report.get("released", [])),
                 "report: undead released what the verb made",
                 f"made {sorted(made)}, report {report.get('released')}")
    if scenario == "zombie" and not share_pid:
        stop_without_init(ck, pod, tag)
    remove_and_check(ck, cd, pod, found, devs, sandbox)


def stop_without_init(ck, pod, tag, grace=3):
    """The control for StopContainer's time: `sleep` as PID 1 of its
    container has no SIGTERM handler, so the kernel drops the signal and
    containerd waits out the whole grace period, then SIGKILLs (137)."""
    c = pod.create("bare", TEST_IMAGE.format(tag), [],
                   command=["/bin/sleep", "100000"])
    c.start()
    poll(lambda: comm(c.status()["pid"]) == "sleep", 10)
    took = c.stop(grace)
    ck.call(f"StopContainer (no init, grace {grace} s)", took)
    ck.check(took >= grace, f"without an init the {grace} s grace period "
             "is spent", f"{took:.2f} s")
    st = c.status()
    ck.equal(st["exit_code"], 137, "without an init: SIGKILL")
    ck.say(f"control: sleep as PID 1, StopContainer(timeout={grace}) took "
           f"{took:.1f} s, exit_code={st['exit_code']}")


def record_start(ck, pod, c):
    ck.call("RunPodSandbox", pod.took["RunPodSandbox"])
    for call in ("CreateContainer", "StartContainer"):
        ck.call(call, c.took[call])


def exec_negative_controls(ck, c):
    """ExecSync passes exit codes and output through, failures included:
    the FUSE kind needs what this container was not given."""
    code, out, _ = c.exec_sync(["/bin/sh", "-c", "echo hi; exit 7"])
    ck.equal((code, out), (7, "hi\n"), "ExecSync sh -c 'echo hi; exit 7'")
    code, _, err = c.exec_sync(["/undead", "dstate", "1", "--kind", "fuse"])
    ck.equal(code, 1, "ExecSync dstate --kind fuse without SYS_ADMIN fails")
    ck.check("SYS_ADMIN" in err or "/dev/fuse" in err,
             "its one line says what is missing", err)
    ck.note(exec_without_fuse=err.strip())


def run_fuse_access(ck, cd, cri, tag):
    """Which pod spec gives `dstate --kind fuse` what it needs under
    containerd: SYS_ADMIN with a hostPath mount of /dev/fuse does not
    (the node's device cgroup denies the open); a privileged container
    does (and so does a device, the `fuse` scenario)."""
    pod = cri.run_pod("pod-fuse-access", privileged=True)
    sandbox = pod.sandbox_pid()
    found, outcome = [], {}
    for how in ("hostpath", "privileged"):
        c = pod.create(how, TEST_IMAGE.format(tag), [], fuse=how,
                       command=["/undead", "--", "/bin/sleep", "100000"])
        c.start()
        code, out, err = c.exec_sync(["/undead", "dstate", "1", "--kind",
                                      "fuse"])
        outcome[how] = {"exit_code": code, "stderr": err.strip()}
        found += victims(c.status()["pid"], "D", "undead-fuse",
                         len(out.split()), limit=5 if code == 0 else 0)
        took = c.stop(GRACE)
        ck.call(f"StopContainer ({how})", took)
    ck.note(fuse_access=outcome)
    ck.equal(outcome["hostpath"]["exit_code"], 1, "hostPath /dev/fuse")
    ck.check("Operation not permitted" in outcome["hostpath"]["stderr"],
             "the device cgroup denies a hostPath /dev/fuse",
             outcome["hostpath"]["stderr"])
    ck.equal(outcome["privileged"]["exit_code"], 0, "privileged")
    ck.equal(len(found), 1, "the privileged container's victim was in D")
    remove_and_check(ck, cd, pod, found, set(), sandbox)


def run_reaping(ck, cd, cri, withhold, tag):
    pod = cri.run_pod("pod-reap", share_pid=True)
    sandbox = pod.sandbox_pid()
    poll(lambda: comm(sandbox) == "undead", 10)
    c = pod.create("app", TEST_IMAGE.format(tag), [],
                   command=["/bin/sh", "-c", ORPHANS])
    c.start()
    record_start(ck, pod, c)
    main = c.status()["pid"]
    poll(lambda: comm(main) == "sleep", 10)

    def orphans():  # exited orphans of the pod, under the sandbox's undead
        return [p for p in host.descendants(sandbox)
                if state(p) == "Z"]
    if withhold:
        zombies = poll(lambda: len(orphans()) >= 3 and orphans(), 10) or []
        ck.equal(len(zombies), 3, "orphans withheld as Z under the sandbox")
        ck.say(f"host: {len(zombies)} zombies {zombies} under the sandbox's "
               f"undead (pid {sandbox}, pid 1 of the pod): withheld")
        for z in zombies:
            ck.equal(host.proc_stat(z)[1], sandbox, "a zombie's parent")
    else:
        zombies = []
        ck.check(poll(lambda: not orphans(), 10),
                 "the sandbox reaps the pod's orphans",
                 "; ".join(host.describe(orphans())))
        ck.say(f"host: no zombie under the sandbox's undead (pid {sandbox}, "
               f"pid 1 of the pod): reaped")
    took = c.stop(GRACE)
    ck.call("StopContainer", took)
    ck.note(grace_s=GRACE, withheld=len(zombies))
    if zombies:
        pod.stop()
        ck.check(host.wait_gone(zombies, 10) is not None,
                 "the withheld zombies go with the pod's PID namespace")
        ck.say("host: after StopPodSandbox the zombies are gone")
    ck.check(took < FAST, f"StopContainer < {FAST} s", f"{took:.2f} s")
    st = c.status()
    ck.equal((st["exit_code"], st["reason"]), (143, "Error"),
             "ContainerStatus after stop")
    remove_and_check(ck, cd, pod, zombies, set(), sandbox)


def teardown_outlive(ck, cd, pod, c, hazard, t0):
    """The victims hold the FUSE descriptor themselves: the container's
    PID namespace cannot finish dying until the kernel's request timeout
    (15 s, checked every 15 s) aborts the connection."""
    found, devs, sandbox = hazard
    # Grace 0 is a forced deletion (`kubectl delete --grace-period=0
    # --force`): containerd SIGKILLs undead at once, so it cannot release
    # them (with a grace period it does, and they go with it). The calls
    # get a 5 s deadline and are retried, as kubelet's sync loop does.
    stopped = attempt(ck, "StopContainer", lambda: c.stop(0, deadline=5))
    in_d = sum(1 for v in found if state(v) == "D")
    ck.say(f"host: {in_d} of {len(found)} victims still in D, "
           f"ContainerStatus {c.status()['state']}")
    ck.note(victims_in_d_after_stop_container=in_d)
    ck.equal(in_d, len(found), "the victims outlive SIGKILLed undead")
    ck.note(status_after_stop=c.status())
    attempt(ck, "StopPodSandbox", lambda: pod.stop(timeout=5), 40)
    st = c.status()
    ck.note(status_after_stop_pod=st)
    ck.say(f"ContainerStatus after StopPodSandbox: {st['state']} "
           f"exit_code={st['exit_code']} reason={st['reason']}")
    ck.note(victims_in_d_after_stop_pod=sum(
        1 for v in found if state(v) == "D"))
    ok = attempt(ck, "RemovePodSandbox", lambda: pod.remove(timeout=5), 40)
    ck.note(status_after_remove=c.status() if not ok else "removed")
    ck.check(ok, "RemovePodSandbox succeeds once the victims are gone")
    gone = host.wait_gone(found, max(1, 45 - (time.monotonic() - t0)))
    since = time.monotonic() - t0
    ck.say(f"host: victims gone {since:.1f} s after their request")
    ck.note(victims_gone_ms=ms(since), stop_container_ok=stopped)
    ck.check(gone is not None and since <= 45,
             "victims gone within the kernel's bound (15-30 s + slack)",
             "; ".join(host.describe(found)))
    remove_and_check(ck, cd, pod, found, devs, sandbox)


def remove_and_check(ck, cd, pod, found, devs, sandbox):
    """StopPodSandbox + RemovePodSandbox (timed), then nothing is left."""
    if not pod.removed:
        pod.remove()
    for call in ("StopPodSandbox", "RemovePodSandbox"):
        if not ck.called(call):  # outlive records its own tries
            ck.call(call, pod.took.get(call, -1))
    left = poll(lambda: not leftovers(cd, found, devs, sandbox), 20)
    ck.check(left, "nothing of the pod is left on the host",
             "; ".join(leftovers(cd, found, devs, sandbox)))
    ck.say("host: no process, cgroup, mount, shim or FUSE connection of "
           "the pod left" if left else "host: leftovers!")


def leftovers(cd, found, devs, sandbox):
    out = [f"process {d}" for d in host.describe(list(found) + [sandbox])]
    out += [f"cgroup process {p}" for p in
            host.pids_in_cgroups(cd.cgroup_parent)]
    parent = [h + cd.cgroup_parent for h in host.hierarchies()]
    out += [f"cgroup {d}" for d in host.cgroups_under(cd.cgroup_parent)
            if d not in parent]
    out += [f"mount {m}" for m in host.mounts_under(cd.dir)]
    out += [f"shim {p}" for p in host.describe(cd.shims())]
    out += [f"FUSE connection {d}" for d in host.fuse_devs_alive(devs)]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--undead", required=True)
    ap.add_argument("--scenario", required=True,
                    choices=[*HAZARDS, "withhold", "reap", "fuse-access"])
    ap.add_argument("--share-pid", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="one line per CRI call on stderr")
    a = ap.parse_args()
    why = containerd.available()
    if why:
        skip(why)
    try:
        from engines import cri
    except ImportError as e:
        skip(f"the CRI client is missing ({e}): run engines/setup.sh")
    name = f"{a.scenario}{'-shared' if a.share_pid else ''}"
    ck = Checks(f"cri {name}", a.verbose)
    tag = f"{os.getpid()}-{int(time.time() * 1000) % 100000}"
    work = tempfile.mkdtemp(prefix=f"{images.PREFIX}{os.getpid()}-")
    # `withhold`: the pause image with withholding on for the whole pod.
    images.pause_image(os.path.join(work, "pause.tar"),
                       PAUSE_IMAGE.format(tag), a.undead,
                       ["--withhold-reaping"] if a.scenario == "withhold"
                       else [])
    images.test_image(os.path.join(work, "test.tar"),
                      TEST_IMAGE.format(tag), a.undead)
    cd = containerd.Containerd(PAUSE_IMAGE.format(tag))
    ck.note(share_pid=a.share_pid or a.scenario in ("withhold", "reap"))
    try:
        with cd:
            for archive in ("pause.tar", "test.tar"):
                cd.import_archive(os.path.join(work, archive))
            client = cri.Cri(cd, verbose=a.verbose)
            if a.scenario in HAZARDS:
                run_hazard(ck, cd, client, a.scenario, a.share_pid, tag)
            elif a.scenario == "fuse-access":
                run_fuse_access(ck, cd, client, tag)
            else:
                run_reaping(ck, cd, client, a.scenario == "withhold", tag)
            tail = cd.log_tail()
        left = cd.stop()
        ck.check(not left, "the private containerd left nothing",
                 "; ".join(left))
    finally:
        for f in os.listdir(work):
            os.unlink(os.path.join(work, f))
        os.rmdir(work)
    return ck.finish(lambda: "containerd log:\n" + tail)


if __name__ == "__main__":
    sys.exit(main())
