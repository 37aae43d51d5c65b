"""A private containerd with its CRI plugin, beside Docker's own.

Everything it owns lives under one temporary directory (root, state, the
gRPC socket, its config and log) and one cgroup parent of its own
(`/undead-cri-PID-RAND`, given to every pod as LinuxPodSandboxConfig's
cgroup_parent). Docker's containerd (/var/run/docker/containerd) is never
touched: everything here is found by that directory, that socket or that
cgroup parent.

Facts the config encodes (containerd 1.6, runc 1.1 on this kind of host):
- `restrict_oom_score_adj = true`: without it runc init fails
  `failed to update /proc/self/oom_score_adj: Permission denied` when the
  caller's own oom_score_adj is below what the pod asks for.
- `snapshotter = "native"`: plain copies, no overlay mounts to leak.
- `sandbox_image`: undead's pause image (images.pause_image), imported
  before the first RunPodSandbox since no registry can be reached.

Use as a context manager; `stop()` also runs at exit and on SIGTERM, and
removes everything: pods (through the hook cri.py registers), tasks, the
daemon, its shims (by PID, found by their `-address SOCK` argument), what
is left in its cgroups, mounts under its directory, the directory.
engines/sweep.py does the same for the directory of a run that was
killed (by SIGKILL, so no atexit ran).
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

CONFIG = """version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.overlayfs",
]
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{d}/cni/bin"
    conf_dir = "{d}/cni/conf"
"""

NAMESPACE = "k8s.io"
# /tmp/undead-containerd-PID-RAND, PID the owner's: engines/sweep.py
# removes the directories of owners that are gone.
PREFIX = "undead-containerd-"


def cgroup_parent(workdir):
    """/undead-cri-PID-RAND for /tmp/undead-containerd-PID-RAND."""
    return "/undead-cri-" + os.path.basename(workdir)[len(PREFIX):]


def available():
    """None when containerd, ctr and runc are installed, else why not."""
    for tool in ("containerd", "ctr", "runc", "containerd-shim-runc-v2"):
        if shutil.which(tool) is None:
            return f"{tool} not found (apt-get install containerd runc)"
    if os.geteuid() != 0:
        return "not root"
    return None


def _pdeathsig():
    # The daemon dies with the process that started it, even by SIGKILL,
    # so a killed test cannot leave it running (prctl(2) PR_SET_PDEATHSIG).
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM, 0, 0, 0)


class Containerd:
    def __init__(self, sandbox_image, workdir=None):
        self.dir = workdir or tempfile.mkdtemp(
            prefix=f"{PREFIX}{os.getpid()}-")
        self.sock = os.path.join(self.dir, "containerd.sock")
        self.sandbox_image = sandbox_image
        self.cgroup_parent = cgroup_parent(self.dir)
        self.proc = None
        self.before_stop = []
        self._stopped = False

    # -- life cycle -------------------------------------------------------
    def start(self, timeout=60):
        with open(os.path.join(self.dir, "config.toml"), "w") as f:
            f.write(CONFIG.format(d=self.dir,
                                  sandbox_image=self.sandbox_image))
        for sub in ("cni/bin", "cni/conf", "opt", "logs"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        atexit.register(self.stop)
        signal.signal(signal.SIGTERM, _exit_on_signal)
        log = open(os.path.join(self.dir, "containerd.log"), "w")
        self.proc = subprocess.Popen(
            ["containerd", "--config", os.path.join(self.dir, "config.toml"),
             "--log-level", "info"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            preexec_fn=_pdeathsig)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"containerd exited {self.proc.returncode}"
                                   f":\n{self.log_tail()}")
            if os.path.exists(self.sock) and self.ctr(
                    "version", check=False).returncode == 0:
                return self
            if time.monotonic() > deadline:
                raise RuntimeError(f"containerd did not answer within "
                                   f"{timeout} s:\n{self.log_tail()}")
            time.sleep(0.1)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def log_tail(self, lines=30):
        try:
            with open(os.path.join(self.dir, "containerd.log")) as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    # -- ctr --------------------------------------------------------------
    def ctr(self, *args, check=True, input=None, timeout=120):
        r = subprocess.run(["ctr", "--address", self.sock, "-n", NAMESPACE,
                            *args], input=input, capture_output=True,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"ctr {' '.join(args)}: "
                               f"{r.stderr.decode(errors='replace')}")
        return r

    def import_archive(self, path):
        """Imports a `docker save` archive (images.write_archive)."""
        self.ctr("images", "import", "--snapshotter", "native", path)

    def import_from_docker(self, image):
        """`docker save IMAGE | ctr images import -`."""
        save = subprocess.Popen(["docker", "save", image],
                                stdout=subprocess.PIPE)
        r = subprocess.run(["ctr", "--address", self.sock, "-n", NAMESPACE,
                            "images", "import", "--snapshotter", "native",
                            "-"], stdin=save.stdout, capture_output=True,
                           timeout=300)
        save.stdout.close()
        if save.wait(timeout=60) != 0 or r.returncode != 0:
            raise RuntimeError(f"docker save {image} | ctr import: "
                               f"{r.stderr.decode(errors='replace')}")

    # -- teardown ---------------------------------------------------------
    def shims(self):
        """PIDs of the runc shims serving this containerd."""
        return host.pids_with_arg(self.sock)

    def stop(self):
        """Removes everything this containerd made. Idempotent; returns a
        list of what could not be removed (empty when clean)."""
        if self._stopped:
            return []
        self._stopped = True
        for hook in self.before_stop:
            try:
                hook()
            except Exception as e:  # a dead daemon must not stop cleanup
                print(f"containerd cleanup hook: {e}", file=sys.stderr)
        if self.proc is not None and self.proc.poll() is None:
            self._kill_tasks()
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        return cleanup(self.dir, self.cgroup_parent)

    def _kill_tasks(self):
        r = self.ctr("tasks", "ls", "-q", check=False, timeout=30)
        for task in r.stdout.decode().split():
            self.ctr("tasks", "kill", "-a", "-s", "SIGKILL", task,
                     check=False, timeout=30)
            self.ctr("tasks", "delete", "-f", task, check=False, timeout=30)


def cleanup(workdir, cgroup_parent=None):
    """What is left of a private containerd once the daemon is gone:
    its shims, its cgroups' processes, its mounts, its directory."""
    left = []
    sock = os.path.join(workdir, "containerd.sock")
    shims = host.pids_with_arg(sock)
    host.kill_pids(shims)
    if host.wait_gone(shims, 10) is None:
        left += [f"shim {p}" for p in host.describe(shims)]
    if cgroup_parent:
        left += [f"cgroup {d}" for d in host.empty_cgroups(cgroup_parent)]
    left += [f"mount {m}" for m in host.unmount_under(workdir)]
    if not host.mounts_under(workdir):
        shutil.rmtree(workdir, ignore_errors=True)
    return left


def _exit_on_signal(signum, _frame):
    sys.exit(128 + signum)  # runs atexit: the private containerd stops
