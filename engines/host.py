"""What an engine left on the host: processes, mounts, FUSE, cgroups.

Read from the host's /proc and /sys/fs/cgroup. Every cleanup here acts
only on what the caller names: processes by PID (found in a cgroup the
caller created, or by a command line naming the caller's own socket),
mounts under the caller's own directory, cgroups under the caller's own
parent. Nothing else on the host is signalled, unmounted or removed.
"""

import os
import signal
import subprocess
import time

CGROUP_ROOT = "/sys/fs/cgroup"
FUSECTL = "/sys/fs/fuse/connections"


def proc_stat(pid):
    """(state letter, ppid, comm) of a host PID, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    head, _, tail = raw.rpartition(")")
    comm = head.split("(", 1)[1] if "(" in head else "?"
    fields = tail.split()
    return fields[0], int(fields[1]), comm


def all_pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def pids_with_arg(arg):
    """PIDs whose command line has `arg` as one argument (e.g. a socket)."""
    want = arg.encode()
    return [p for p in all_pids() if want in cmdline(p)]


def descendants(root):
    """Every process under `root` (by ppid), zombies included."""
    children = {}
    for pid in all_pids():
        st = proc_stat(pid)
        if st:
            children.setdefault(st[1], []).append(pid)
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def describe(pids):
    """'PID STATE COMM' for each PID still there."""
    out = []
    for pid in pids:
        st = proc_stat(pid)
        if st:
            out.append(f"{pid} {st[0]} {st[2]}")
    return out


def hierarchies():
    """Every mounted cgroup hierarchy directory (v1 controllers, v2)."""
    out = []
    for name in sorted(os.listdir(CGROUP_ROOT)):
        path = os.path.join(CGROUP_ROOT, name)
        if os.path.isdir(path) and not os.path.islink(path):
            out.append(path)
    return out


def cgroups_under(parent):
    """Every cgroup directory under `parent` (e.g. "/undead-cri-1-ab"),
    in every hierarchy, deepest first; `parent` itself included."""
    out = []
    for h in hierarchies():
        top = h + parent
        if not os.path.isdir(top):
            continue
        for d, _, _ in os.walk(top):
            out.append(d)
    return sorted(out, key=lambda d: -d.count("/"))


def pids_in_cgroups(parent):
    pids = set()
    for d in cgroups_under(parent):
        try:
            with open(os.path.join(d, "cgroup.procs")) as f:
                pids.update(int(x) for x in f.read().split())
        except (OSError, ValueError):
            pass
    return sorted(pids)


def mounts_under(prefix, pid="self"):
    """Mount points under `prefix` in a process's mount table."""
    out = []
    try:
        with open(f"/proc/{pid}/mountinfo") as f:
            for line in f:
                point = line.split()[4].replace("\\040", " ")
                if point == prefix or point.startswith(prefix + "/"):
                    out.append(point)
    except OSError:
        pass
    return out


def undead_fuse_devs(pid):
    """The `0:N` devices of undead's FUSE mounts seen by a process (its
    fusectl connection is N). Never another FUSE filesystem."""
    out = set()
    try:
        with open(f"/proc/{pid}/mountinfo") as f:
            for line in f:
                mount, _, fs = line.partition(" - ")
                fields = fs.split()
                if len(fields) < 2 or not fields[0].startswith("fuse"):
                    continue
                if "undead" in fields[0] or "undead" in fields[1]:
                    out.add(mount.split()[2])
    except OSError:
        pass
    return out


def fuse_devs_alive(devs):
    """Which of these undead FUSE devices any process on the host still
    sees (a mount namespace holding the mount), plus, when fusectl is
    mounted, which connections still exist."""
    alive = set()
    for pid in all_pids():
        alive |= undead_fuse_devs(pid) & set(devs)
    if os.path.isdir(FUSECTL) and os.listdir(FUSECTL):
        for dev in devs:
            if os.path.exists(os.path.join(FUSECTL, dev.split(":")[1])):
                alive.add(dev)
    return sorted(alive)


def wait_gone(pids, limit):
    """Polls until none of `pids` is left (zombies count as left, since
    their parent has not reaped them). Returns the seconds it took, or None
    if some are still there after `limit` seconds."""
    start = time.monotonic()
    while True:
        if not any(proc_stat(p) for p in pids):
            return time.monotonic() - start
        if time.monotonic() - start > limit:
            return None
        time.sleep(0.05)


def kill_pids(pids, sig=signal.SIGKILL):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def abort_fuse(devs):
    """Aborts these undead FUSE connections through fusectl, mounting it
    for the moment if needed (then unmounting only what it mounted)."""
    if not devs:
        return
    mounted_here = bool(os.path.isdir(FUSECTL) and os.listdir(FUSECTL))
    if not mounted_here:
        subprocess.run(["mount", "-t", "fusectl", "fusectl", FUSECTL],
                       capture_output=True, timeout=10)
    for dev in devs:
        try:
            with open(os.path.join(FUSECTL, dev.split(":")[1], "abort"),
                      "w") as f:
                f.write("1")
        except OSError:
            pass
    if not mounted_here:
        subprocess.run(["umount", FUSECTL], capture_output=True, timeout=10)


def thaw(parent):
    """Thaws every frozen cgroup under `parent` (v1 freezer, v2 freeze)."""
    for d in cgroups_under(parent):
        for name, value in (("freezer.state", "THAWED"),
                            ("cgroup.freeze", "0")):
            path = os.path.join(d, name)
            if os.path.exists(path):
                try:
                    with open(path, "w") as f:
                        f.write(value)
                except OSError:
                    pass


def empty_cgroups(parent, limit=20):
    """Kills what is left in the cgroups under `parent` (by PID, after
    aborting undead FUSE connections its D victims wait on and thawing),
    then removes the cgroups. Returns what could not be removed."""
    deadline = time.monotonic() + limit
    while True:
        pids = pids_in_cgroups(parent)
        if not pids or time.monotonic() > deadline:
            break
        devs = set()
        for pid in pids:
            devs |= undead_fuse_devs(pid)
        abort_fuse(sorted(devs))
        thaw(parent)
        kill_pids(pids)
        time.sleep(0.1)
    left = []
    for d in cgroups_under(parent):
        try:
            os.rmdir(d)
        except OSError:
            left.append(d)
    return left


def unmount_under(prefix):
    """Unmounts every mount under `prefix` in our mount table, deepest
    first (lazily when busy). Returns what is still mounted."""
    for point in sorted(mounts_under(prefix), key=lambda p: -len(p)):
        r = subprocess.run(["umount", point], capture_output=True,
                           timeout=30)
        if r.returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True,
                           timeout=30)
    return mounts_under(prefix)
