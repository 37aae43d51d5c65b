"""Podman as a scorecard engine, with a private store (engines/podman.py), in two shapes:
undead as podman's init (`--init --init-path UNDEAD`, the workload `sleep` as the command) and
undead as the image's ENTRYPOINT. The operations of Docker's columns, in each shape.

podman runs its init as `INIT -- CMD`, so undead's options are given by environment in both
shapes (`--wait-all` -> UNDEAD_WAIT_ALL=1, `--report PATH` -> UNDEAD_REPORT=PATH).
"""
import json
import os
import tempfile

from engines import images
from engines import podman as podman_store
from engines.docker import Op, Ran, host_lacks

INIT_PATH = "init"     # undead as --init-path
ENTRYPOINT = "ep"      # undead as ENTRYPOINT


def env_of(init_args):
    """undead's command-line options as its environment variables."""
    env, i = {}, 0
    while i < len(init_args):
        name = "UNDEAD_" + init_args[i].lstrip("-").replace("-", "_").upper()
        if i + 1 < len(init_args) and not init_args[i + 1].startswith("--"):
            env[name] = init_args[i + 1]
            i += 2
        else:
            env[name] = "1"
            i += 1
    return env


class Podman:
    name = "podman"
    OPS = [Op("stop-init", "podman stop -t GRACE (--init-path)", "TERM"),
           Op("kill-init", "podman kill (--init-path)", "KILL"),
           Op("rm-init", "podman rm -f (--init-path)", "TERM", removes=True),
           Op("stop", "podman stop -t GRACE (ENTRYPOINT)", "TERM"),
           Op("kill", "podman kill (ENTRYPOINT)", "KILL"),
           Op("rm", "podman rm -f (ENTRYPOINT)", "TERM", removes=True)]

    def __init__(self, undead, busybox="/bin/busybox"):
        self.undead, self.busybox = undead, busybox
        self.p = None
        self.notes = []
        self.n = 0
        self.privileged = None

    def available(self):
        return podman_store.available() or (
            None if os.path.exists(self.busybox) else "%s missing" % self.busybox)

    def version(self):
        import subprocess
        try:
            v = subprocess.run(["podman", "--version"], capture_output=True, text=True,
                               timeout=30).stdout.split()[-1]
        except (OSError, IndexError, subprocess.SubprocessError):
            v = "?"
        return "Podman %s (runc, cgroupfs, private store)" % v

    def prepare(self):
        self.p = podman_store.Podman().__enter__()
        self.tmp = tempfile.mkdtemp(prefix="out-", dir=self.p.dir)
        self.image = "localhost/undead-scorecard:%d" % os.getpid()
        self.p.load(images.test_image(os.path.join(self.tmp, "img.tar"), self.image, self.undead))

    def close(self):
        if self.p:
            left = self.p.cleanup()
            if left:
                self.notes.append("podman's store left: %s" % "; ".join(left)[:300])
            self.p = None

    def can(self, hazard, op=None):
        return host_lacks(hazard)

    def r(self, *args, timeout=60.0):
        import subprocess
        try:
            x = self.p(*args, timeout=timeout)
            return Ran(["podman"] + list(args), x.code, x.out, x.err, x.took)
        except subprocess.TimeoutExpired:
            return Ran(["podman"] + list(args), None, "", "timed out", timeout, True)

    def privileged_args(self):
        if self.privileged is None:
            x = self.p.run("--privileged", "--entrypoint", "/bin/true", self.image, detach=False)
            self.privileged = x.code == 0
            if not self.privileged:
                self.notes.append("`podman run --privileged` fails here: the frozen row runs with "
                                  "SYS_ADMIN and the host's freezer hierarchy mounted writable")
        if self.privileged:
            return ["--privileged"]
        return ["--cap-add", "SYS_ADMIN", "--security-opt", "apparmor=unconfined",
                "-v", "/sys/fs/cgroup/freezer:/sys/fs/cgroup/freezer:rw"]

    def start(self, hazard, tag, op=None):
        self.n += 1
        name = "undead-score-%s-%d-%d" % (tag, os.getpid(), self.n)
        out = tempfile.mkdtemp(prefix="cell-", dir=self.tmp)
        shape = INIT_PATH if op is not None and op.name.endswith("-init") else ENTRYPOINT
        env = dict(env_of(["--report", "/out/report.json", "--release-after", "5m"] + hazard.init))
        args = ["--name", name, "-v", "%s:/out" % out]
        for k, v in env.items():
            args += ["-e", "%s=%s" % (k, v)]
        if "fuse" in hazard.needs:
            args += ["--cap-add", "SYS_ADMIN", "--device", "/dev/fuse"]
        if "privileged" in hazard.needs:
            args += self.privileged_args()
        if "volume" in hazard.needs:
            args += ["-v", "/data"]
        if shape == INIT_PATH:
            args += ["--init", "--init-path", self.undead, "--entrypoint", "/bin/sleep",
                     self.image, "1000000"]
        else:
            args += [self.image, "/bin/sleep", "1000000"]
        st = {"name": name, "out": out, "volumes": [], "shape": shape}
        x = self.p.run(*args)
        if x.code != 0:
            return st, "podman run failed: %s" % (x.out + x.err)[-300:]
        info = self.inspect(name)
        if not info:
            return st, "podman inspect failed after run"
        st["id"] = info["Id"]
        st["pid"] = info["State"]["Pid"]
        st["volumes"] = [m["Name"] for m in info.get("Mounts", []) if m.get("Type") == "volume"]
        return st, None

    def inspect(self, name):
        x = self.r("inspect", name)
        try:
            return json.loads(x.out)[0] if x.ok() else None
        except (ValueError, IndexError):
            return None

    def shim_words(self, st):
        return [st["id"]]

    def ready_argv(self, st):
        return ["/undead", "status"]

    def exec(self, st, argv, timeout=30.0):
        return self.r("exec", st["name"], *argv, timeout=timeout)

    def operate(self, st, op, grace, timeout):
        base = op.name.replace("-init", "")
        if base == "stop":
            return self.r("stop", "-t", str(grace), st["name"], timeout=timeout)
        if base == "kill":
            return self.r("kill", st["name"], timeout=timeout)
        return self.r("rm", "-f", "-v", st["name"], timeout=timeout)

    def state(self, st):
        info = self.inspect(st["name"])
        if info is None:
            return {"exists": False, "running": False, "exit_code": None, "error": ""}
        s = info["State"]
        return {"exists": True, "running": s.get("Running", False),
                "exit_code": s.get("ExitCode"), "error": s.get("Error", "")}

    def leftovers(self, st):
        vols = set(self.r("volume", "ls", "-q").out.split())
        return ["volume %s" % v for v in st.get("volumes", []) if v in vols]

    def report(self, st):
        try:
            with open(os.path.join(st["out"], "report.json")) as f:
                return json.load(f), ""
        except FileNotFoundError:
            return None, "no report (undead did not exit by itself)"
        except (OSError, ValueError) as e:
            return None, "unreadable report: %s" % e

    def remove(self, st):
        done = []
        x = self.r("rm", "-f", "-v", "-t", "0", st["name"], timeout=90)
        if not x.ok() and "no such container" not in x.err.lower():
            done.append("podman rm -f failed: %s" % x.text()[-200:])
        for v in st.get("volumes", []):
            y = self.r("volume", "rm", "-f", v)
            if not y.ok() and "no such volume" not in y.err.lower():
                done.append("podman volume rm %s failed: %s" % (v, y.text()[-200:]))
        return done
