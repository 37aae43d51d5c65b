"""Podman with a store, config and cgroup parent of its own.

Everything lives under one temporary directory: containers.conf (runc,
cgroupfs, host network, ulimits the machine allows), storage.conf (the
vfs driver: no overlay mounts, root and runroot here) and podman's tmp
dir; every container and pod gets `--cgroup-parent` of its own
(`/undead-podman-PID-RAND`, named like the directory). The machine's own podman store is never
touched.

Facts the config encodes (podman 4.3.1, Debian 12, hybrid cgroups):
- crun 1.8.1 refuses the hybrid hierarchy: `runtime = "runc"`;
- podman's default nofile/nproc ulimits exceed the machine's hard limit:
  `default_ulimits` of 1024;
- no CNI/netavark is needed with `netns = "host"`;
- podman keeps an empty `conmon` cgroup under a container's cgroup parent
  after the container is gone (by design: conmon processes of later
  containers join it): `leftovers()` reports it apart, `cleanup()` removes
  it.

Use as a context manager; `cleanup()` also runs at exit and on SIGTERM.
"""

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from . import host

# /tmp/undead-podman-PID-RAND (PID the owner's), and its cgroup parent
# /undead-podman-PID-RAND: engines/sweep.py removes those of owners gone.
PREFIX = "undead-podman-"
CONTAINERS_CONF = """[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
netns = "host"
log_driver = "k8s-file"
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
events_logger = "file"
tmp_dir = "{d}/tmp"
"""
STORAGE_CONF = """[storage]
driver = "vfs"
runroot = "{d}/runroot"
graphroot = "{d}/root"
"""


def available():
    """None when podman and runc are installed, else why not."""
    for tool in ("podman", "runc", "conmon"):
        if shutil.which(tool) is None:
            return f"{tool} not found (apt-get install podman runc)"
    if os.geteuid() != 0:
        return "not root"
    return None


class Ran:
    def __init__(self, args, proc, took):
        self.args, self.code, self.took = args, proc.returncode, took
        self.out = proc.stdout.decode(errors="replace")
        self.err = proc.stderr.decode(errors="replace")

    def __str__(self):
        return (f"podman {' '.join(self.args)} -> {self.code} in "
                f"{self.took:.2f} s\n{self.out}{self.err}")


class Podman:
    def __init__(self, workdir=None, verbose=False):
        self.dir = workdir or tempfile.mkdtemp(
            prefix=f"{PREFIX}{os.getpid()}-")
        self.cgroup_parent = "/" + os.path.basename(self.dir)
        self.env = dict(os.environ,
                        CONTAINERS_CONF=os.path.join(self.dir, "c.conf"),
                        CONTAINERS_STORAGE_CONF=os.path.join(self.dir,
                                                             "s.conf"))
        self._clean = False
        self.verbose = verbose

    def __enter__(self):
        os.makedirs(os.path.join(self.dir, "tmp"), exist_ok=True)
        for name, text in (("c.conf", CONTAINERS_CONF),
                           ("s.conf", STORAGE_CONF)):
            with open(os.path.join(self.dir, name), "w") as f:
                f.write(text.format(d=self.dir))
        atexit.register(self.cleanup)
        signal.signal(signal.SIGTERM, _exit_on_signal)
        return self

    def __exit__(self, *exc):
        self.cleanup()

    def __call__(self, *args, timeout=120, check=False):
        """Runs podman with this store; returns a Ran (code, out, err,
        took in seconds)."""
        start = time.monotonic()
        proc = subprocess.run(["podman", *args], env=self.env,
                              stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout)
        ran = Ran(args, proc, time.monotonic() - start)
        if self.verbose:
            said = (ran.out.strip() or ran.err.strip()).replace("\n", " ")
            print(f"$ podman {' '.join(args)}\n  -> {ran.code} "
                  f"[{ran.took * 1000:.0f} ms] {said[:120]}",
                  file=sys.stderr, flush=True)
        if check and ran.code != 0:
            raise RuntimeError(str(ran))
        return ran

    # -- images -----------------------------------------------------------
    def load(self, archive):
        """`podman load` of a `docker save` archive (images.py)."""
        self("load", "-i", archive, check=True, timeout=300)

    def build(self, tag, containerfile, files):
        """`podman build` offline: `files` maps a path in the context to a
        local file; FROM scratch needs no registry."""
        ctx = tempfile.mkdtemp(prefix="ctx-", dir=self.dir)
        try:
            with open(os.path.join(ctx, "Containerfile"), "w") as f:
                f.write(containerfile)
            for dest, source in files.items():
                os.makedirs(os.path.dirname(os.path.join(ctx, dest)),
                            exist_ok=True)
                shutil.copy(source, os.path.join(ctx, dest))
            self("build", "--network", "host", "-q", "-t", tag, "-f",
                 os.path.join(ctx, "Containerfile"), ctx, check=True,
                 timeout=300)
        finally:
            shutil.rmtree(ctx, ignore_errors=True)

    # -- containers and pods ----------------------------------------------
    def run(self, *args, detach=True, timeout=120):
        """`podman run` in this cgroup parent; args end with IMAGE CMD."""
        flags = ["-d"] if detach else ["--rm"]
        return self("run", *flags, "--cgroup-parent", self.cgroup_parent,
                    *args, timeout=timeout)

    def pod_create(self, name, infra_image, share="pid,ipc,net,uts"):
        return self("pod", "create", "--name", name, "--infra-image",
                    infra_image, "--share", share, "--network", "host",
                    "--cgroup-parent", self.cgroup_parent, check=True)

    def exec(self, name, *argv, timeout=60):
        return self("exec", name, *argv, timeout=timeout)

    def stop(self, name, grace):
        """`podman stop -t GRACE`: SIGTERM, GRACE seconds, SIGKILL."""
        return self("stop", "-t", str(grace), name, timeout=grace + 120)

    def kill(self, name, signal="KILL"):
        return self("kill", "-s", signal, name)

    def rm(self, name, force=False):
        return self("rm", *(["-f", "-t", "0"] if force else []), name)

    def inspect(self, name, fmt):
        return self("inspect", "--format", fmt, name, check=True).out.strip()

    def pid(self, name):
        """The host PID of a container's first process."""
        return int(self.inspect(name, "{{.State.Pid}}"))

    def exit_code(self, name):
        return int(self.inspect(name, "{{.State.ExitCode}}"))

    def logs(self, name):
        r = self("logs", name)
        return r.out + r.err

    # -- teardown ---------------------------------------------------------
    def conmons(self):
        """conmon processes serving this store (their arguments name it)."""
        want = self.dir.encode()
        # One read of each stat: a process may exit between two.
        return [p for p in host.all_pids()
                if (host.proc_stat(p) or ("", 0, ""))[2] == "conmon"
                and any(want in a for a in host.cmdline(p))]

    def cgroups_left(self):
        """Cgroups under the parent but the parent and the `conmon` one
        podman keeps."""
        keep = {h + self.cgroup_parent + suffix for h in host.hierarchies()
                for suffix in ("", "/conmon")}
        return [d for d in host.cgroups_under(self.cgroup_parent)
                if d not in keep]

    def leftovers(self, cgroups=True):
        """What this podman's containers left on the host: processes in
        its cgroups, cgroups (unless `cgroups` is False), conmon
        processes, mounts under its directory."""
        out = [f"cgroup process {p}" for p in
               host.pids_in_cgroups(self.cgroup_parent)]
        if cgroups:
            out += [f"cgroup {d}" for d in self.cgroups_left()]
        out += [f"conmon {p}" for p in host.describe(self.conmons())]
        out += [f"mount {m}" for m in host.mounts_under(self.dir)]
        return out

    def cleanup(self):
        """Removes every container, pod and image of this store, then
        whatever is left (by PID, mount point, cgroup), then the store.
        Idempotent; returns what could not be removed."""
        if self._clean:
            return []
        self._clean = True
        confs = [self.env["CONTAINERS_CONF"], self.env["CONTAINERS_STORAGE_CONF"]]
        try:
            # Without both files podman would act on the machine's own
            # store: never run `rm -a` then.
            if not all(os.path.exists(c) for c in confs):
                raise OSError(f"{self.dir}: config gone, podman not run")
            self("pod", "rm", "-af", "-t", "0", timeout=120)
            self("rm", "-af", "-t", "0", timeout=120)
            self("rmi", "-af", timeout=120)
        except (subprocess.TimeoutExpired, OSError) as e:
            print(f"podman cleanup: {e}", file=sys.stderr)
        conmons = self.conmons()
        host.kill_pids(conmons)
        left = [f"conmon {p}" for p in host.describe(conmons)
                if host.wait_gone(conmons, 10) is None]
        left += [f"cgroup {d}" for d in
                 host.empty_cgroups(self.cgroup_parent)]
        left += [f"mount {m}" for m in host.unmount_under(self.dir)]
        if not host.mounts_under(self.dir):
            shutil.rmtree(self.dir, ignore_errors=True)
        return left


def _exit_on_signal(signum, _frame):
    sys.exit(128 + signum)  # runs atexit: the store is removed
