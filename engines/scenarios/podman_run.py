"""Podman: undead as `--init-path`, as ENTRYPOINT with the kit, as a pod's
infra container.

    python -m engines.scenarios.podman_run --undead BIN --scenario S

S is one of:
- init: `podman run --init --init-path BIN`: exit codes pass through,
  `podman kill -s USR1` reaches the command, `podman stop` gives 143 at
  once (and, as the control, a bare `sleep` as PID 1 waits out the whole
  grace period and gets 137);
- zombie, vfork, fuse: undead as ENTRYPOINT (`UNDEAD_REPORT=-`), the
  hazard raised over `podman exec`, then `podman stop` (timed), the
  report read back from `podman logs`, `podman rm`, nothing left;
- pod: `podman pod create --infra-image` undead's pause image sharing the
  PID namespace: the infra container is PID 1 of the pod and reaps the
  app's orphans; `podman pod stop` and `podman pod rm` (timed), nothing
  left.
Prints `RESULT {json}`.
"""

import argparse
import os
import sys
import tempfile

from engines import host, images, podman
from engines.scenarios.common import Checks, last_json, ms, skip
from engines.scenarios.cri_pod import (HAZARDS, ORPHANS, comm, ns_pid, poll,
                                       state, victims)

GRACE = 30
FAST = 10
REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def stop(ck, pm, name, grace, what="podman stop"):
    r = pm.stop(name, grace)
    ck.call(what, r.took, error=None if r.code == 0 else r.err.strip())
    return r.took


def run_init(ck, pm, img, undead):
    init = ["--init", "--init-path", undead, "--entrypoint", "/bin/sh"]
    r = pm.run(*init, img, "-c", "exit 3", detach=False)
    ck.equal(r.code, 3, "exit 3 passes through")
    r = pm.run(*init, img, "-c", "kill -9 $$", detach=False)
    ck.equal(r.code, 137, "killed by signal 9 gives 128+9")
    r = pm.run(*init, img, "-c", "tr '\\0' ' ' </proc/1/cmdline; echo;"
               " /run/podman-init --version", detach=False)
    ck.check(r.out.startswith("/run/podman-init -- /bin/sh")
             and "undead" in r.out, "PID 1 is undead, as podman-init", r.out)
    # A signal podman sends reaches the command through undead.
    r = pm.run("--name", "sig", *init, img, "-c",
               "trap 'exit 42' USR1; while :; do sleep 0.1; done")
    poll(lambda: comm(pm.pid("sig")) == "podman-init" and any(
        comm(p) == "sleep" for p in host.descendants(pm.pid("sig"))), 10)
    ck.equal(pm.kill("sig", "USR1").code, 0, "podman kill -s USR1")
    poll(lambda: pm.inspect("sig", "{{.State.Running}}") == "false", 10)
    ck.equal(pm.exit_code("sig"), 42, "podman kill -s USR1: the trap's exit")
    # podman stop: undead forwards SIGTERM, sleep dies, 143 at once.
    pm.run("--name", "stop", "--init", "--init-path", undead,
           "--entrypoint", "/bin/sleep", img, "100000")
    took = stop(ck, pm, "stop", GRACE)
    ck.check(took < FAST, f"podman stop -t {GRACE} < {FAST} s", f"{took}")
    ck.equal(pm.exit_code("stop"), 143, "podman stop exit code")
    # The control: sleep as PID 1 has no handler, so the kernel drops
    # SIGTERM and podman waits out the grace period, then SIGKILLs.
    pm.run("--name", "bare", "--entrypoint", "/bin/sleep", img, "100000")
    took = stop(ck, pm, "bare", 2, "podman stop (no init, -t 2)")
    ck.check(took >= 2, "without an init the grace period is spent",
             f"{took}")
    ck.equal(pm.exit_code("bare"), 137, "no init: SIGKILL")


def run_kit(ck, pm, img, scenario):
    cmd, n, st_letter, name, fuse = HAZARDS[scenario]
    extra = ["--cap-add", "SYS_ADMIN", "--device", "/dev/fuse"] if fuse \
        else []
    r = pm.run("--name", "kit", "-e", "UNDEAD_REPORT=-", *extra, img,
               "/bin/sleep", "100000")
    ck.equal(r.code, 0, "podman run -d", r.err)
    main = pm.pid("kit")
    poll(lambda: comm(main) == "undead" and os.path.exists(
        f"/proc/{main}/root/run/undead.sock"), 10)
    r = pm.exec("kit", *cmd)
    ck.note(exec={"cmd": " ".join(cmd), "exit_code": r.code,
                  "stdout": r.out, "stderr": r.err, "ms": ms(r.took)})
    ck.equal(r.code, 0, f"podman exec {' '.join(cmd)}")
    made = {int(p) for p in r.out.split()}
    ck.equal(len(made), n, "PIDs printed")
    found = victims(main, st_letter, name, n)
    ck.equal(len(found), n, f"{name} in {st_letter} on the host")
    devs = set()
    for v in found:
        devs |= host.undead_fuse_devs(v)
    took = stop(ck, pm, "kit", GRACE)
    ck.note(grace_s=GRACE)
    ck.check(took < FAST, f"podman stop -t {GRACE} < {FAST} s", f"{took}")
    ck.equal(pm.exit_code("kit"), 143, "podman stop exit code")
    ck.check(host.wait_gone(found, 10) is not None,
             "the hazard is gone after podman stop",
             "; ".join(host.describe(found)))
    report = last_json(pm.logs("kit"))
    ck.check(report is not None, "undead's report is in podman logs")
    if report:
        ck.note(report=report)
        ck.equal(report.get("exit_code"), 143, "report exit_code")
        ck.check(made <= set(report.get("released", [])),
                 "report: undead released what it made")
    r = pm.rm("kit")
    ck.call("podman rm", r.took, error=r.err.strip() if r.code else None)
    left = poll(lambda: not pm.leftovers() and not host.fuse_devs_alive(
        devs), 20)
    ck.check(left, "nothing of the container is left",
             "; ".join(pm.leftovers()))


def run_pod(ck, pm, img, pause):
    r = pm.pod_create("pod", pause)
    ck.call("podman pod create", r.took)
    r = pm.run("--pod", "pod", "--name", "app", "--entrypoint", "/bin/sh",
               img, "-c", ORPHANS)
    ck.equal(r.code, 0, "podman run --pod", r.err)
    infra = pm.pid(pod_infra(pm))
    ck.equal(comm(infra), "undead", "the infra container runs undead")
    ck.equal(ns_pid(infra), 1, "the infra container is PID 1 of the pod")
    app = pm.pid("app")
    poll(lambda: comm(app) == "sleep", 10)

    def zombies():
        return [p for p in host.descendants(infra) if state(p) == "Z"]
    ck.check(poll(lambda: not zombies(), 10),
             "the infra container reaps the app's orphans",
             "; ".join(host.describe(zombies())))
    r = pm("pod", "stop", "-t", "10", "pod", timeout=130)
    ck.call("podman pod stop", r.took, error=r.err.strip() or None)
    ck.check(r.took < FAST, f"podman pod stop -t 10 < {FAST} s")
    codes = {"app": pm.exit_code("app"), "infra": pm.exit_code(pod_infra(pm))}
    ck.note(exit_codes=codes)
    ck.equal(codes["infra"], 0, "undead --pause exits 0 on podman's TERM")
    r = pm("pod", "rm", "pod")
    ck.call("podman pod rm", r.took, error=r.err.strip() if r.code else None)
    ck.equal(r.code, 0, "podman pod rm")
    # podman 4.3 with runc on a hybrid host leaves the pod's own cgroup
    # in the name=systemd and unified hierarchies (empty): recorded, and
    # removed by cleanup(); everything else must be gone.
    ck.check(poll(lambda: not pm.leftovers(cgroups=False), 20),
             "nothing of the pod left", "; ".join(pm.leftovers()))
    ck.note(empty_cgroups_left=pm.cgroups_left())


def pod_infra(pm):
    return pm("pod", "inspect", "--format", "{{.InfraContainerID}}", "pod",
              check=True).out.strip()


def pause_image(pm, undead, tag):
    """undead's pause image, built by `podman build -f
    docker/Dockerfile.pause` (offline: FROM scratch) from this binary."""
    with open(os.path.join(REPO, "docker", "Dockerfile.pause")) as f:
        text = f.read()
    src = "target/x86_64-unknown-linux-gnu/release/undead"
    pm.build(tag, text, {src: undead})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--undead", required=True)
    ap.add_argument("--scenario", required=True,
                    choices=["init", "pod", "zombie", "vfork", "fuse"])
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="each podman command and its outcome on stderr")
    a = ap.parse_args()
    why = podman.available()
    if why:
        skip(why)
    ck = Checks(f"podman {a.scenario}", a.verbose)
    work = tempfile.mkdtemp(prefix=f"{images.PREFIX}{os.getpid()}-")
    img = "localhost/undead-podman-test:latest"
    try:
        with podman.Podman(verbose=a.verbose) as pm:
            pm.load(images.test_image(os.path.join(work, "test.tar"), img,
                                      a.undead))
            if a.scenario == "init":
                run_init(ck, pm, img, a.undead)
            elif a.scenario == "pod":
                pause = "localhost/undead-podman-pause:latest"
                pause_image(pm, a.undead, pause)
                run_pod(ck, pm, img, pause)
            else:
                run_kit(ck, pm, img, a.scenario)
            left = pm.cleanup()
            ck.check(not left, "the private podman store left nothing",
                     "; ".join(left))
    finally:
        for f in os.listdir(work):
            os.unlink(os.path.join(work, f))
        os.rmdir(work)
    return ck.finish()


if __name__ == "__main__":
    sys.exit(main())
