"""Kubernetes' CRI as a scorecard engine: a private containerd (engines/containerd.py) driven with
the calls kubelet makes (engines/cri.py), one pod per cell.

Columns: StopContainer with the grace, then StopPodSandbox and RemovePodSandbox (a pod deletion),
in a pod with its own PID namespace per container and in one with a shared pod PID namespace
(`shareProcessNamespace: true`: undead --pause is the pod's PID 1, the container's undead a
subreaper under it); and the forced deletion (`kubectl delete --grace-period=0 --force`:
StopContainer with timeout 0). Each call is made once, as one pass of kubelet's sync loop would,
and timed; an error is recorded, and the next call is made anyway.

undead's report goes to the container's log (`--report -`), read right after StopContainer.
Needs the CRI client (engines/setup.sh makes target/venv; scorecard/run re-executes itself there).
"""
import os
import shutil
import subprocess
import tempfile
import time

from engines import containerd, images
from engines.cri import Cri as CriClient
from engines.cri import api
from engines.docker import Op, Ran, host_lacks
from engines.scenarios.common import last_json
from scorecard.cell import log

TEST_TAG = "localhost/undead-scorecard-test:%d"
PAUSE_TAG = "localhost/undead-scorecard-pause:%d"


class Cri:
    name = "cri"
    OPS = [Op("pod", "StopContainer(GRACE) + pod deletion", "TERM", removes=True),
           Op("pod-shared", "the same, shared PID ns", "TERM", removes=True),
           Op("force", "forced deletion (grace 0)", "KILL", removes=True)]

    def __init__(self, undead, busybox="/bin/busybox"):
        self.undead, self.busybox = undead, busybox
        self.cd = self.cri = None
        self.tmp = None
        self.notes = []
        self.n = 0

    def available(self):
        why = containerd.available()
        if why:
            return why
        if not os.path.exists(self.busybox):
            return "%s missing (apt-get install busybox-static)" % self.busybox
        return None

    def version(self):
        try:
            v = subprocess.run(["containerd", "--version"], capture_output=True, text=True,
                               timeout=30).stdout.split()[2]
        except (OSError, IndexError, subprocess.SubprocessError):
            v = "?"
        return "Kubernetes CRI (private containerd %s, runc)" % v

    def prepare(self):
        self.tmp = tempfile.mkdtemp(prefix="undead-scorecard-cri-")
        tag = os.getpid()
        self.test_image = TEST_TAG % tag
        pause = PAUSE_TAG % tag
        images.test_image(os.path.join(self.tmp, "test.tar"), self.test_image, self.undead)
        sandbox = getattr(self, "sandbox_undead", None) or self.undead
        images.pause_image(os.path.join(self.tmp, "pause.tar"), pause, sandbox)
        if sandbox != self.undead:
            self.notes.append("the pod sandbox is `undead --pause` from %s" % sandbox)
        self.cd = containerd.Containerd(pause)
        self.cd.start()
        self.cd.import_archive(os.path.join(self.tmp, "test.tar"))
        self.cd.import_archive(os.path.join(self.tmp, "pause.tar"))
        self.cri = CriClient(self.cd, timeout=120)

    def close(self):
        if self.cd:
            left = self.cd.stop()
            if left:
                self.notes.append("private containerd left: %s" % "; ".join(left)[:300])
            self.cd = None
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def can(self, hazard, op=None):
        lacks = host_lacks(hazard)
        if lacks:
            return lacks
        if op is not None and op.name == "pod-shared" and "--withhold-reaping" in hazard.init:
            return ("in a shared pod PID namespace orphans land on the sandbox (the pod's PID 1), "
                    "not on the container's undead: withholding them is the sandbox's job")
        return None

    # -------------------------------------------------------- one pod

    def start(self, hazard, tag, op=None):
        self.n += 1
        name = "%s-%d" % (tag, self.n)
        share = op is not None and op.name == "pod-shared"
        st = {"name": name, "volumes": [], "calls": {}}
        privileged = "privileged" in hazard.needs
        try:
            pod = self.cri.run_pod(name, share_pid=share, privileged=privileged)
            st["pod"] = pod
            c = self.create(pod, hazard, privileged)
            st["c"] = c
            c.start()
            s = c.status()
        except Exception as e:
            return st, "CRI: %s" % (getattr(e, "details", lambda: str(e))())
        st["id"] = pod.id
        st["pid"] = s["pid"]
        return st, None

    def create(self, pod, hazard, privileged):
        """CreateContainer with undead as the command, the row's options, what it needs."""
        cmd = ["/undead", "--report", "-", "--release-after", "5m"] + hazard.init + \
              ["--", "/bin/sleep", "1000000"]
        sc = api.LinuxContainerSecurityContext()
        sc.namespace_options.CopyFrom(pod.config.linux.security_context.namespace_options)
        devices, mounts = [], []
        if "fuse" in hazard.needs:
            sc.capabilities.add_capabilities.extend(["SYS_ADMIN"])
            devices.append(api.Device(container_path="/dev/fuse", host_path="/dev/fuse",
                                      permissions="rwm"))
        sc.privileged = privileged
        if "volume" in hazard.needs:
            vol = tempfile.mkdtemp(prefix="vol-", dir=self.tmp)
            mounts.append(api.Mount(container_path="/data", host_path=vol))
        name = "app"
        config = api.ContainerConfig(
            metadata=api.ContainerMetadata(name=name), image=api.ImageSpec(image=self.test_image),
            command=cmd, devices=devices, mounts=mounts, log_path="%s.log" % name,
            linux=api.LinuxContainerConfig(security_context=sc))
        reply, took = self.cri.call(self.cri.rt.CreateContainer, api.CreateContainerRequest(
            pod_sandbox_id=pod.id, config=config, sandbox_config=pod.config))
        from engines.cri import Container
        c = Container(pod, reply.container_id, name)
        c.took["CreateContainer"] = took
        return c

    def shim_words(self, st):
        return ["-id", st["id"], self.cd.sock]

    def ready_argv(self, st):
        return ["/undead", "status"]

    def exec(self, st, argv, timeout=30.0):
        t0 = time.monotonic()
        try:
            code, out, err = st["c"].exec_sync(argv, timeout=int(timeout))
            return Ran(["ExecSync"] + list(argv), code, out, err, time.monotonic() - t0)
        except Exception as e:
            return Ran(["ExecSync"] + list(argv), None, "",
                       getattr(e, "details", lambda: str(e))(), time.monotonic() - t0)

    def operate(self, st, op, grace, timeout):
        """StopContainer(grace or 0), then StopPodSandbox and RemovePodSandbox, each once."""
        c, pod = st["c"], st["pod"]
        t0 = time.monotonic()
        errors, calls = [], {}
        g = 0 if op.name == "force" else grace
        # kubelet gives each runtime call 2 min (--runtime-request-timeout); a third of the
        # operation's bound each keeps a stuck pod's cell bounded.
        each = max(timeout / 3, g + 5)
        steps = [("StopContainer", lambda: c.stop(g, deadline=each)),
                 ("StopPodSandbox", lambda: pod.stop(timeout=each)),
                 ("RemovePodSandbox", lambda: pod.remove(timeout=each))]
        for what, call in steps:
            t = time.monotonic()
            try:
                call()
                calls[what] = round(time.monotonic() - t, 3)
            except Exception as e:
                calls[what] = round(time.monotonic() - t, 3)
                errors.append("%s: %s" % (what, getattr(e, "details", lambda: str(e))()))
            if what == "StopContainer":
                st["log"] = c.log()
                try:
                    st["status_after_stop"] = c.status()
                except Exception:
                    st["status_after_stop"] = None
        st["calls"] = calls
        r = Ran(["%s(%d)" % (s[0], g) if s[0] == "StopContainer" else s[0] for s in steps],
                0 if not errors else 1, " ".join("%s %.2fs" % kv for kv in calls.items()),
                "; ".join(errors), time.monotonic() - t0)
        return r

    def state(self, st):
        pod = st.get("pod")
        s = st.get("status_after_stop") or {}
        exists = False
        if pod is not None:
            try:
                pod.status()
                exists = True
            except Exception:
                exists = False
        running = False
        if exists and st.get("c"):
            try:
                running = st["c"].status()["state"] == "CONTAINER_RUNNING"
            except Exception:
                running = False
        return {"exists": exists, "running": running, "exit_code": s.get("exit_code"),
                "error": s.get("reason", ""), "calls": st.get("calls", {})}

    def leftovers(self, st):
        return []

    def report(self, st):
        rep = last_json(st.get("log", ""))
        return (rep, "") if rep else (None, "no report in the container's log")

    def remove(self, st):
        pod = st.get("pod")
        if pod is None or pod.removed:
            return []
        try:
            pod.removed = False
            pod.took.pop("StopPodSandbox", None)
            pod.remove(timeout=60)
            return []
        except Exception as e:
            msg = "RemovePodSandbox failed: %s" % getattr(e, "details", lambda: str(e))()
            log(msg)
            return [msg]
