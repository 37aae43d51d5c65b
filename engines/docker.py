"""Docker as a scorecard engine: undead as the container's init, driven with the docker CLI.

The image is built FROM scratch from the local release binary and busybox-static (no registry),
with ENTRYPOINT ["/undead"] so undead's own options go before `--`. Every container, image and
volume has a name unique to this run (pid + random) and is removed by `remove`/`close`, also when
a cell failed. Standard library only.
"""
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass

DOCKERFILE = """FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox --install -s /bin && mkdir -p /tmp /run /data /out"]
COPY undead /undead
ENTRYPOINT ["/undead"]
"""
REPORT = "/out/report.json"



def host_lacks(hazard):
    """What the host lacks for the row (`hazard.needs`), or None: the same
    for every engine."""
    if "fuse" in hazard.needs and not os.path.exists("/dev/fuse"):
        return "no /dev/fuse on the host"
    if "freezer-v1" in hazard.needs and not os.path.isdir("/sys/fs/cgroup/freezer"):
        return "no cgroup v1 freezer on the host"
    return None

@dataclass
class Ran:
    """What one command (or engine call) did."""
    argv: list
    code: object = None          # exit code; None when it timed out or could not start
    out: str = ""
    err: str = ""
    seconds: float = 0.0
    timed_out: bool = False

    def ok(self):
        return self.code == 0

    def text(self):
        return (self.out + self.err).strip()

    def as_json(self):
        return {"argv": self.argv, "code": self.code, "seconds": round(self.seconds, 3),
                "timed_out": self.timed_out, "stdout": self.out[-2000:], "stderr": self.err[-2000:]}


def run(argv, timeout=60.0, stdin=None):
    """Runs argv to completion; on timeout kills it (by its own pid) and says so."""
    t0 = time.monotonic()
    try:
        p = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as e:
        return Ran(argv, None, "", "cannot run: %s" % e, 0.0)
    try:
        out, err = p.communicate(stdin, timeout=timeout)
        code, timed_out = p.returncode, False
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        code, timed_out = None, True
    dec = (lambda b: b.decode("utf-8", "replace")) if isinstance(out, bytes) else (lambda s: s)
    return Ran(argv, code, dec(out or b""), dec(err or b""), time.monotonic() - t0, timed_out)


@dataclass
class Op:
    name: str
    title: str
    signal: str          # what undead gets first: "TERM" (it may exit by itself) or "KILL"
    removes: bool = False  # the operation also removes the container


def unique(stem):
    return "undead-score-%s-%d-%06x" % (stem, os.getpid(), random.getrandbits(24))


class Docker:
    name = "docker"
    OPS = [Op("stop", "docker stop -t GRACE", "TERM"),
           Op("kill", "docker kill", "KILL"),
           Op("rm", "docker rm -f -v", "KILL", removes=True)]

    def __init__(self, undead, busybox="/bin/busybox", docker="docker"):
        self.undead, self.busybox, self.docker = undead, busybox, docker
        self.image = None
        self.tmp = None
        self.privileged = None   # can this engine run --privileged containers here? (probed once)
        self.notes = []          # what the tables must say about how this engine was driven

    def d(self, *args, timeout=60.0):
        return run([self.docker] + list(args), timeout=timeout)

    # -------------------------------------------------------- engine-wide

    def available(self):
        """None when the engine answers, else why it cannot be used."""
        if shutil.which(self.docker) is None:
            return "no docker client on PATH"
        r = self.d("info", "--format", "{{.ServerVersion}}", timeout=60)
        if not r.ok():
            return "`docker info` failed: %s" % r.text()[-200:]
        if not os.path.exists(self.busybox):
            return "%s missing (apt-get install busybox-static)" % self.busybox
        return None

    def version(self):
        r = self.d("version", "--format", "{{.Server.Version}}")
        return "Docker %s" % r.out.strip() if r.ok() else "Docker (version unknown)"

    def prepare(self):
        self.tmp = tempfile.mkdtemp(prefix="undead-scorecard-")
        ctx = os.path.join(self.tmp, "ctx")
        os.mkdir(ctx)
        with open(os.path.join(ctx, "Dockerfile"), "w") as f:
            f.write(DOCKERFILE)
        shutil.copy(self.undead, os.path.join(ctx, "undead"))
        shutil.copy(self.busybox, os.path.join(ctx, "busybox"))
        tag = unique("img")
        r = self.d("build", "--no-cache", "-q", "-t", tag, ctx, timeout=300)
        if not r.ok():
            raise RuntimeError("docker build failed: %s" % r.text()[-400:])
        self.image = tag

    def close(self):
        if self.image:
            self.d("rmi", "-f", self.image)
            self.image = None
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def can(self, hazard, op=None):
        """None when this engine can run the row, else why not."""
        return host_lacks(hazard)

    # -------------------------------------------------------- one container

    def start(self, hazard, tag, op=None):
        """Starts undead as PID 1 with the row's options; returns the box's engine state."""
        name = unique(tag)
        out = os.path.join(self.tmp, name)
        os.mkdir(out)
        args = ["run", "-d", "--name", name, "-v", "%s:/out" % out]
        if "fuse" in hazard.needs:
            args += ["--cap-add", "SYS_ADMIN", "--device", "/dev/fuse"]
        if "privileged" in hazard.needs:
            args += self.privileged_args()
        if "volume" in hazard.needs:
            args += ["-v", "/data"]  # anonymous: `rm -v` removes it with the container
        args += [self.image, "--report", REPORT, "--release-after", "5m"] + hazard.init
        args += ["--", "sleep", "1000000"]
        st = {"name": name, "out": out, "volumes": []}
        r = self.d(*args, timeout=120)
        if not r.ok():
            return st, "docker run failed: %s" % r.text()[-300:]
        info = self.inspect(name)
        if not info:
            return st, "docker inspect failed after run"
        st["id"] = info["Id"]
        st["pid"] = info["State"]["Pid"]
        st["rootfs"] = info.get("GraphDriver", {}).get("Data", {}).get("MergedDir", "")
        st["volumes"] = [m["Name"] for m in info.get("Mounts", []) if m.get("Type") == "volume"]
        return st, None

    # Where the engine cannot apply every capability (a host whose bounding set lacks one, as in
    # a nested or restricted machine: runc says "unable to apply caps"), `--privileged` cannot
    # start at all; the frozen row then gets what it needs from it, explicitly: SYS_ADMIN and the
    # host's v1 freezer hierarchy mounted writable.
    FREEZER_ARGS = ["--cap-add", "SYS_ADMIN", "--security-opt", "apparmor=unconfined",
                    "-v", "/sys/fs/cgroup/freezer:/sys/fs/cgroup/freezer:rw"]

    def privileged_args(self):
        if self.privileged is None:
            r = self.d("run", "--rm", "--privileged", "--entrypoint", "/bin/true", self.image,
                       timeout=120)
            self.privileged = r.ok()
            if not self.privileged:
                why = "unable to apply caps" if "unable to apply caps" in r.err else r.text()[-120:]
                self.notes.append("`docker run --privileged` fails here (%s): the frozen row runs "
                                  "with `%s` instead" % (why, " ".join(self.FREEZER_ARGS)))
        return ["--privileged"] if self.privileged else list(self.FREEZER_ARGS)

    def inspect(self, name):
        r = self.d("inspect", name)
        try:
            return json.loads(r.out)[0] if r.ok() else None
        except (ValueError, IndexError):
            return None

    def shim_words(self, st):
        return ["-id", st["id"]]

    def ready_argv(self, st):
        return ["/undead", "status"]

    def exec(self, st, argv, timeout=30.0):
        return self.d("exec", st["name"], *argv, timeout=timeout)

    def operate(self, st, op, grace, timeout):
        if op.name == "stop":
            return self.d("stop", "-t", str(grace), st["name"], timeout=timeout)
        if op.name == "kill":
            return self.d("kill", st["name"], timeout=timeout)
        if op.name == "rm":
            return self.d("rm", "-f", "-v", st["name"], timeout=timeout)
        raise ValueError("docker has no operation %r" % op.name)

    def state(self, st):
        """{"exists", "running", "exit_code", "error"} of the container now."""
        info = self.inspect(st["name"])
        if info is None:
            return {"exists": False, "running": False, "exit_code": None, "error": ""}
        s = info["State"]
        return {"exists": True, "running": s.get("Running", False) or s.get("Restarting", False),
                "exit_code": s.get("ExitCode"), "error": s.get("Error", ""),
                "oom_killed": s.get("OOMKilled", False)}

    def leftovers(self, st):
        """Engine objects left: the container record after a removal, its volumes."""
        left = []
        vols = set(self.d("volume", "ls", "-q").out.split())
        left += ["volume %s" % v for v in st.get("volumes", []) if v in vols]
        return left

    def report(self, st):
        """undead's --report from the bind-mounted directory: (dict or None, note)."""
        path = os.path.join(st["out"], "report.json")
        try:
            with open(path) as f:
                return json.load(f), ""
        except FileNotFoundError:
            return None, "no report (undead did not exit by itself)"
        except (OSError, ValueError) as e:
            return None, "unreadable report: %s" % e

    def remove(self, st):
        """Force-removes the container and its volumes; returns what it did and whether it had to."""
        r = self.d("rm", "-f", "-v", st["name"], timeout=90)
        done = []
        if not r.ok() and "No such container" not in r.err:
            done.append("docker rm -f failed: %s" % r.text()[-200:])
        for v in st.get("volumes", []):
            rv = self.d("volume", "rm", "-f", v)
            if not rv.ok():
                done.append("docker volume rm %s failed: %s" % (v, rv.text()[-200:]))
        return done
