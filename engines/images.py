"""Image archives written from local files: no registry, no Docker.

`write_archive` produces the `docker save` format (manifest.json, one
config, one layer tar), which `ctr images import` and `podman load` both
read, so the CRI and Podman tests need neither a registry nor a Docker
daemon. Entries are written with mtime 0, so the same files give the same
image ID.

Two images:
- the test image: static busybox (a shell and coreutils, each applet a
  symlink as `busybox --install -s` makes them) and undead as ENTRYPOINT in
  the form docker-init is invoked, `/undead -- CMD...`;
- the pause image: undead alone with ENTRYPOINT ["/undead", "--pause"]
  (docker/Dockerfile.pause is its Dockerfile twin).
"""

import hashlib
import io
import json
import os
import subprocess
import tarfile

BUSYBOX = "/bin/busybox"
# Scratch directories for archives: /tmp/undead-images-PID-RAND.
PREFIX = "undead-images-"
PAUSE_ARGS = ["/undead", "--pause"]
DIRS = {"tmp": 0o1777, "run": 0o755, "proc": 0o555, "sys": 0o555,
        "dev": 0o755, "etc": 0o755, "sbin": 0o755, "mnt": 0o755,
        "bin": 0o755}


def pause_args(undead):
    """The pause image's ENTRYPOINT for this binary (kept for callers of
    the earlier stand-in: every undead since --pause gets PAUSE_ARGS)."""
    del undead
    return PAUSE_ARGS


def _add_dir(tar, name, mode):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    tar.addfile(info)


def _add_file(tar, name, source, mode=0o755):
    info = tarfile.TarInfo(name)
    info.size = os.path.getsize(source)
    info.mode = mode
    with open(source, "rb") as f:
        tar.addfile(info, f)


def _add_symlink(tar, name, target):
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    tar.addfile(info)


def _busybox_applets():
    out = subprocess.run([BUSYBOX, "--list"], capture_output=True,
                         text=True, timeout=30, check=True)
    return [a for a in out.stdout.split() if a and a != "busybox"]


def layer(undead, busybox=True):
    """The one layer, as tar bytes: undead, and busybox if asked."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) \
            as tar:
        for name, mode in sorted(DIRS.items()):
            _add_dir(tar, name, mode)
        _add_file(tar, "undead", undead)
        if busybox:
            _add_file(tar, "bin/busybox", BUSYBOX)
            for applet in _busybox_applets():
                _add_symlink(tar, f"bin/{applet}", "busybox")
    return buf.getvalue()


def write_archive(path, tag, layer_tar, entrypoint, cmd=None):
    """Writes a `docker save` archive of one layer to `path`."""
    diff_id = "sha256:" + hashlib.sha256(layer_tar).hexdigest()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {"Entrypoint": list(entrypoint),
                   "Cmd": list(cmd) if cmd else None,
                   "Env": ["PATH=/bin:/sbin"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "1970-01-01T00:00:00Z",
                     "created_by": "engines/images.py"}],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    layer_name = diff_id.split(":")[1] + "/layer.tar"
    manifest = [{"Config": config_name, "RepoTags": [tag],
                 "Layers": [layer_name]}]
    with tarfile.open(path, "w") as out:
        for name, data in ((layer_name, layer_tar),
                           (config_name, config_bytes),
                           ("manifest.json", json.dumps(manifest).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    return path


def test_image(path, tag, undead):
    """busybox + undead, ENTRYPOINT ["/undead", "--"]."""
    return write_archive(path, tag, layer(undead, busybox=True),
                         ["/undead", "--"])


def pause_image(path, tag, undead, extra=()):
    """undead alone as the pod sandbox: ENTRYPOINT ["/undead", "--pause",
    *extra] (e.g. extra=["--withhold-reaping"])."""
    return write_archive(path, tag, layer(undead, busybox=False),
                         [*PAUSE_ARGS, *extra])
