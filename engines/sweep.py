"""Removes what a killed test run left: private containerds and podman
stores whose owner process is gone.

    python3 -m engines.sweep

A run that ends normally, fails, or gets SIGTERM cleans up after itself
(context managers, atexit); one killed by SIGKILL cannot. Its directory
(/tmp/undead-containerd-PID-RAND, /tmp/undead-podman-PID-RAND) names its
owner: when that PID is gone, this does the owner's cleanup (its
containerd's shims, its podman's containers, the processes in its
cgroups, its mounts, cgroups and directory). Directories of live owners
(another run on the same machine) are left alone. Exit 1 if something
could not be removed.
"""

import os
import shutil
import sys
import tempfile

from . import containerd, host, images, podman


def owner_alive(name, prefix):
    pid = name[len(prefix):].split("-", 1)[0]
    return pid.isdigit() and host.proc_stat(int(pid)) is not None


def sweep(tmp=None):
    tmp = tmp or tempfile.gettempdir()
    problems = []
    for name in sorted(os.listdir(tmp)):
        path = os.path.join(tmp, name)
        if name.startswith(containerd.PREFIX):
            if owner_alive(name, containerd.PREFIX):
                continue
            print(f"sweep: {path}")
            problems += containerd.cleanup(path,
                                           containerd.cgroup_parent(path))
        elif name.startswith(podman.PREFIX):
            if owner_alive(name, podman.PREFIX):
                continue
            print(f"sweep: {path}")
            problems += podman.Podman(path).cleanup()
        elif name.startswith(images.PREFIX):
            if not owner_alive(name, images.PREFIX):
                shutil.rmtree(path, ignore_errors=True)
    return problems


if __name__ == "__main__":
    left = sweep()
    for p in left:
        print(f"sweep: left {p}", file=sys.stderr)
    sys.exit(1 if left else 0)
