"""What a container left on the host, seen from the host's /proc and /sys, and how to take it back.

Engine-neutral: an engine adapter gives a `Box` (the container's init pid, pid namespace, cgroup
directories, id and rootfs) and this module finds its processes (state, wchan), its FUSE connections,
mounts, cgroups and runtime shims. Parsers are pure functions (unit-tested on captured text); the
scanners read the live system. Nothing here touches a process, cgroup or connection that is not
the box's own: every kill is by PID after checking the PID still belongs to the box's namespace.
"""
import fcntl
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field

FUSE_LOCK = "/tmp/undead-tests-fuse.lock"
FUSECTL = "/sys/fs/fuse/connections"
CGROUP_ROOT = "/sys/fs/cgroup"


@dataclass
class Proc:
    pid: int
    ppid: int
    state: str
    comm: str
    start: int = 0
    wchan: str = ""

    def brief(self):
        w = (" " + self.wchan) if self.wchan and self.wchan != "0" else ""
        return "%d %s %s%s" % (self.pid, self.state, self.comm, w)


@dataclass
class Box:
    """A running container (or pod) as the host sees it."""
    id: str                      # the engine's id (also searched in shim cmdlines, cgroup paths)
    init_pid: int                # host pid of its PID 1
    pidns: str = ""              # e.g. "pid:[4026532192]"
    cgroups: list = field(default_factory=list)   # host cgroup directories of the container
    rootfs: str = ""             # the rootfs mount point on the host (overlay merged dir)
    shim_words: list = field(default_factory=list)  # every word must be in a shim's cmdline
    fuse_conns: set = field(default_factory=set)    # FUSE connection ids of the cell's victims
    ns_fd: int = -1              # held open for the cell: the kernel cannot reuse the ns's inode
                                 # number for another container while we match processes by it

    def hold_ns(self):
        """Pins the pid namespace (its inode number identifies the box's processes)."""
        try:
            self.ns_fd = os.open("/proc/%d/ns/pid" % self.init_pid, os.O_RDONLY | os.O_CLOEXEC)
            self.pidns = os.readlink("/proc/self/fd/%d" % self.ns_fd)
        except OSError:
            self.pidns = ""

    def release_ns(self):
        if self.ns_fd >= 0:
            os.close(self.ns_fd)
            self.ns_fd = -1


# ---------------------------------------------------------------- pure parsers

def parse_stat(text):
    """One /proc/PID/stat line -> Proc (without wchan); None if it does not parse."""
    try:
        open_, close = text.index("("), text.rindex(")")
        rest = text[close + 2:].split()
        return Proc(pid=int(text[:open_]), ppid=int(rest[1]), state=rest[0],
                    comm=text[open_ + 1:close], start=int(rest[19]))
    except (ValueError, IndexError):
        return None


def parse_cgroup_file(text, root=CGROUP_ROOT):
    """/proc/PID/cgroup -> host directories of that process's non-root cgroups (v1 and v2)."""
    dirs = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3 or parts[2] in ("", "/"):
            continue
        _, ctrls, path = parts
        if ctrls == "":
            hier = "unified" if os.path.isdir(os.path.join(root, "unified")) else ""
        elif ctrls.startswith("name="):
            hier = ctrls[5:]
        else:
            hier = ctrls
        dirs.append(os.path.normpath(os.path.join(root, hier, path.lstrip("/"))))
    return dirs


def fuse_conns_in_mountinfo(text, fstype="fuse.undead"):
    """Connection ids (the minor device number) of the mounts of type fstype in a mountinfo."""
    conns = set()
    for line in text.splitlines():
        pre, sep, post = line.partition(" - ")
        if not sep or not post.split() or post.split()[0] != fstype:
            continue
        fields = pre.split()
        if len(fields) > 2 and ":" in fields[2]:
            major, minor = fields[2].split(":", 1)
            if major == "0" and minor.isdigit():
                conns.add(int(minor))
    return conns


def mounts_matching(mountinfo, needles):
    """Mount points in a mountinfo whose mount point or source contains one of needles."""
    out = []
    needles = [n for n in needles if n]
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4 and any(n in line for n in needles):
            out.append(fields[4])
    return out


# ---------------------------------------------------------------- live scanners

def read(path, default=""):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return default


def proc_of(pid):
    p = parse_stat(read("/proc/%d/stat" % pid))
    if p:
        p.wchan = read("/proc/%d/wchan" % pid).strip()
    return p


def pidns_of(pid):
    try:
        return os.readlink("/proc/%d/ns/pid" % pid)
    except OSError:
        return ""


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def box_pids(box):
    """Host pids of the box: every process in its pid namespace or in one of its cgroups."""
    pids = set()
    for d in box.cgroups:
        for line in read(os.path.join(d, "cgroup.procs")).split():
            if line.isdigit():
                pids.add(int(line))
    if box.pidns:
        for pid in all_pids():
            if pid not in pids and pidns_of(pid) == box.pidns:
                pids.add(pid)
    return sorted(pids)


def box_procs(box):
    return [p for p in (proc_of(pid) for pid in box_pids(box)) if p]


def scan_fuse_conns(box):
    """The undead FUSE connections that the box's processes have mounted (seen by its victims)."""
    conns = set()
    for pid in box_pids(box):
        conns |= fuse_conns_in_mountinfo(read("/proc/%d/mountinfo" % pid))
    return conns


def fusectl_mounted():
    return " - fusectl " in read("/proc/self/mountinfo")


def live_fuse_conns(conns):
    """Which of conns still exist: by fusectl when mounted, else None (cannot tell)."""
    if not fusectl_mounted():
        return None
    return sorted(c for c in conns if os.path.isdir(os.path.join(FUSECTL, str(c))))


def ns_inode(pidns):
    """"pid:[4026532192]" -> "4026532192"."""
    return pidns[pidns.find("[") + 1:pidns.rfind("]")] if "[" in pidns else ""


def kit_cgroups(box, root=CGROUP_ROOT, depth=4):
    """undead's own frozen cgroups for this box: `undead-frozen-<pidns inode>-...`, wherever undead
    made them (at the top of a hierarchy it can write, or below its own cgroup)."""
    inode = ns_inode(box.pidns)
    if not inode:
        return []
    prefix = "undead-frozen-%s-" % inode
    out = []
    for hier in ("freezer", "unified", ""):
        top = os.path.join(root, hier)
        if not os.path.isdir(top) or (hier == "" and os.path.isdir(os.path.join(root, "freezer"))):
            continue
        base = top.count(os.sep)
        for dirpath, dirs, _ in os.walk(top):
            if dirpath.count(os.sep) - base >= depth:
                dirs[:] = []
            out += [os.path.join(dirpath, d) for d in dirs if d.startswith(prefix)]
            dirs[:] = [d for d in dirs if not d.startswith(prefix)]
    return sorted(out)


def existing_cgroups(box):
    return [d for d in box.cgroups if os.path.isdir(d)] + kit_cgroups(box)


def shims(box):
    """Runtime shim processes (containerd-shim*, conmon) whose cmdline names the box."""
    out = []
    if not box.shim_words:
        return out
    for pid in all_pids():
        cmd = read("/proc/%d/cmdline" % pid).replace("\0", " ")
        if all(w in cmd for w in box.shim_words):
            p = proc_of(pid)
            if p and (p.comm.startswith("containerd-shim") or p.comm == "conmon"):
                out.append(p)
    return out


def host_mounts(box):
    """Mounts left in the host's mount table that belong to the box (its rootfs, its id)."""
    return mounts_matching(read("/proc/1/mountinfo"), [box.rootfs, box.id])


def leftovers(box):
    """Everything of the box still on the host: {processes, fuse, mounts, cgroups, shims}."""
    procs = box_procs(box)
    fuse = live_fuse_conns(box.fuse_conns)
    if fuse is None:  # no fusectl: a connection lives as long as a process of the box holds it
        fuse = sorted(box.fuse_conns & scan_fuse_conns(box))
    return {
        "processes": [p.brief() for p in procs],
        "fuse": fuse,
        "mounts": host_mounts(box),
        "cgroups": existing_cgroups(box),
        "shims": [p.brief() for p in shims(box)],
    }


def box_gone(box):
    return not box_procs(box)


def anything_left(left):
    return any(left.get(k) for k in ("processes", "fuse", "mounts", "cgroups", "shims"))


# ---------------------------------------------------------------- taking it back

class FuseLock:
    """The host-wide flock every suite that raises FUSE victims or aborts connections holds."""

    def __init__(self, path=FUSE_LOCK):
        self.path = path
        self.fd = None

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)
        self.fd = None


def abort_fuse(conns):
    """Aborts exactly these FUSE connections through fusectl (mounting it for the moment if needed)."""
    done = []
    if not conns:
        return done
    mounted_here = fusectl_mounted()
    if not mounted_here:
        if subprocess.run(["mount", "-t", "fusectl", "fusectl", FUSECTL],
                          capture_output=True, timeout=10).returncode != 0:
            return done
    for c in sorted(conns):
        try:
            with open(os.path.join(FUSECTL, str(c), "abort"), "w") as f:
                f.write("1")
            done.append(c)
        except OSError:
            pass
    if not mounted_here:
        subprocess.run(["umount", FUSECTL], capture_output=True, timeout=10)
    return done


def thaw_frozen(box):
    """Thaws every frozen cgroup below the box's own cgroups (v1 freezer.state, v2 cgroup.freeze)."""
    thawed = []
    for top in existing_cgroups(box):
        for dirpath, _, files in os.walk(top):
            try:
                if "freezer.state" in files and read(os.path.join(dirpath, "freezer.state")).strip() != "THAWED":
                    with open(os.path.join(dirpath, "freezer.state"), "w") as f:
                        f.write("THAWED")
                    thawed.append(dirpath)
                elif "cgroup.freeze" in files and read(os.path.join(dirpath, "cgroup.freeze")).strip() == "1":
                    with open(os.path.join(dirpath, "cgroup.freeze"), "w") as f:
                        f.write("0")
                    thawed.append(dirpath)
            except OSError:
                pass
    return thawed


def remove_kit_cgroups(box):
    """Removes the box's empty undead-frozen cgroups (undead could not: it was killed first)."""
    removed = []
    for d in sorted(kit_cgroups(box), key=len, reverse=True):
        for sub, _, _ in sorted(os.walk(d), key=lambda w: len(w[0]), reverse=True):
            try:
                os.rmdir(sub)
                removed.append(sub)
            except OSError:
                pass
    return removed


def kill_box(box, timeout=10.0):
    """SIGKILLs the box's processes by PID until none is left (hoppers fork as they die)."""
    killed = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        procs = [p for p in box_procs(box) if p.state != "Z"]
        if not procs:
            break
        for p in procs:
            if pidns_of(p.pid) == box.pidns or not box.pidns:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                    killed.add(p.pid)
                except OSError:
                    pass
        time.sleep(0.05)
    return sorted(killed)


def wait_until(pred, timeout, step=0.05):
    """Polls pred until it is true or timeout passes; returns the seconds it took, or None."""
    t0 = time.monotonic()
    while True:
        if pred():
            return time.monotonic() - t0
        if time.monotonic() - t0 >= timeout:
            return None
        time.sleep(step)
