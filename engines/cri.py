"""The calls kubelet makes, over the CRI (cri_api.v1, gRPC).

A thin client: each method is one CRI call with the fields a kubelet
would fill for a test pod, and times it. What kubelet itself adds (the
API server, probes, restarts, CNI, volumes) is not here: this is the
container runtime's side of Kubernetes, exactly.

Pods run in the host network namespace (NamespaceOption.network = NODE)
so that no CNI plugin is needed, and therefore set no hostname (runc
refuses one without a private UTS namespace). `share_pid=True` is a
pod's `shareProcessNamespace: true` (NamespaceOption.pid = POD): the
sandbox's process (undead --pause) is PID 1 of the pod and every
container's processes live under it; otherwise each container has its
own PID namespace (CONTAINER).
"""

import json
import os
import sys
import time

import grpc
from cri_api.v1 import api_pb2 as api
from cri_api.v1 import api_pb2_grpc as rpc

FUSE_CAPS = ["SYS_ADMIN"]
FUSE_DEVICE = api.Device(container_path="/dev/fuse", host_path="/dev/fuse",
                         permissions="rwm")


class Cri:
    def __init__(self, containerd, timeout=120, verbose=False):
        self.cd = containerd
        self.channel = grpc.insecure_channel(f"unix://{containerd.sock}")
        self.rt = rpc.RuntimeServiceStub(self.channel)
        self.img = rpc.ImageServiceStub(self.channel)
        self.timeout = timeout
        self.verbose = verbose
        self.pods = []
        # Pods a failed scenario leaves are removed before the daemon stops.
        containerd.before_stop.append(self.remove_all)

    def call(self, method, request, timeout=None):
        """(reply, seconds) of one CRI call; with `verbose`, one line on
        stderr per call, as a CRI client's debug log would say it."""
        start = time.monotonic()
        try:
            reply = method(request, timeout=timeout or self.timeout)
        except grpc.RpcError as e:
            self._say(request, time.monotonic() - start,
                      f"{e.code().name}: {e.details()}")
            raise
        took = time.monotonic() - start
        self._say(request, took, _summary(reply))
        return reply, took

    def _say(self, request, took, outcome):
        if self.verbose:
            name = type(request).__name__.removesuffix("Request")
            print(f"cri: {name}({_summary(request)}) -> {outcome} "
                  f"[{took * 1000:.0f} ms]", file=sys.stderr, flush=True)

    def version(self):
        return self.rt.Version(api.VersionRequest(version="v1"),
                               timeout=self.timeout)

    def image_id(self, image):
        """The image's ID as the CRI knows it, or None."""
        r = self.img.ImageStatus(api.ImageStatusRequest(
            image=api.ImageSpec(image=image)), timeout=self.timeout)
        return r.image.id or None

    def run_pod(self, name, share_pid=False, privileged=False):
        """RunPodSandbox: the sandbox image is containerd's sandbox_image
        (undead's pause image)."""
        logs = os.path.join(self.cd.dir, "logs", name)
        os.makedirs(logs, exist_ok=True)
        ns = api.NamespaceOption(network=api.NODE,
                                 pid=api.POD if share_pid else api.CONTAINER,
                                 ipc=api.POD)
        config = api.PodSandboxConfig(
            metadata=api.PodSandboxMetadata(name=name, uid=f"uid-{name}",
                                            namespace="undead-test"),
            log_directory=logs,
            linux=api.LinuxPodSandboxConfig(
                cgroup_parent=self.cd.cgroup_parent,
                security_context=api.LinuxSandboxSecurityContext(
                    namespace_options=ns, privileged=privileged)))
        reply, took = self.call(self.rt.RunPodSandbox,
                                api.RunPodSandboxRequest(config=config))
        pod = Pod(self, reply.pod_sandbox_id, config)
        pod.took["RunPodSandbox"] = took
        self.pods.append(pod)
        return pod

    def remove_all(self):
        for pod in self.pods:
            pod.remove(timeout=60)


class Pod:
    def __init__(self, cri, pod_id, config):
        self.cri, self.id, self.config = cri, pod_id, config
        self.took = {}
        self.removed = False

    def status(self):
        return self.cri.rt.PodSandboxStatus(
            api.PodSandboxStatusRequest(pod_sandbox_id=self.id, verbose=True),
            timeout=self.cri.timeout)

    def sandbox_pid(self):
        """The host PID of the sandbox's process (undead --pause)."""
        return json.loads(self.status().info.get("info", "{}")).get("pid")

    def create(self, name, image, args, command=(), fuse=None, envs=None):
        """CreateContainer: `command` (the image's ENTRYPOINT, /undead --,
        when empty) with `args`. `fuse` gives what `dstate --kind fuse`
        needs, as a pod spec can: "device" is SYS_ADMIN plus /dev/fuse as
        a device (a device plugin's way; Docker's `--cap-add SYS_ADMIN
        --device /dev/fuse`), "hostpath" SYS_ADMIN plus a hostPath mount of
        /dev/fuse (which the device cgroup then denies), "privileged" a
        privileged container (in a privileged pod: run_pod)."""
        sc = api.LinuxContainerSecurityContext()
        sc.namespace_options.CopyFrom(
            self.config.linux.security_context.namespace_options)
        if fuse in ("device", "hostpath"):
            sc.capabilities.add_capabilities.extend(FUSE_CAPS)
        sc.privileged = fuse == "privileged"
        mounts = [api.Mount(container_path="/dev/fuse",
                            host_path="/dev/fuse")] \
            if fuse == "hostpath" else []
        config = api.ContainerConfig(
            metadata=api.ContainerMetadata(name=name),
            image=api.ImageSpec(image=image),
            command=list(command),
            args=list(args),
            envs=[api.KeyValue(key=k, value=v)
                  for k, v in (envs or {}).items()],
            devices=[FUSE_DEVICE] if fuse == "device" else [],
            mounts=mounts,
            log_path=f"{name}.log",
            linux=api.LinuxContainerConfig(security_context=sc))
        reply, took = self.cri.call(
            self.cri.rt.CreateContainer,
            api.CreateContainerRequest(pod_sandbox_id=self.id, config=config,
                                       sandbox_config=self.config))
        c = Container(self, reply.container_id, name)
        c.took["CreateContainer"] = took
        return c

    def stop(self, timeout=None):
        _, took = self.cri.call(
            self.cri.rt.StopPodSandbox,
            api.StopPodSandboxRequest(pod_sandbox_id=self.id), timeout)
        self.took["StopPodSandbox"] = took

    def remove(self, timeout=None):
        """StopPodSandbox then RemovePodSandbox, as kubelet does when a
        pod is deleted; both timed."""
        if self.removed:
            return
        if "StopPodSandbox" not in self.took:
            self.stop(timeout)
        _, took = self.cri.call(
            self.cri.rt.RemovePodSandbox,
            api.RemovePodSandboxRequest(pod_sandbox_id=self.id), timeout)
        self.took["RemovePodSandbox"] = took
        self.removed = True


class Container:
    def __init__(self, pod, cid, name):
        self.pod, self.id, self.name = pod, cid, name
        self.cri = pod.cri
        self.took = {}

    def start(self):
        _, took = self.cri.call(
            self.cri.rt.StartContainer,
            api.StartContainerRequest(container_id=self.id))
        self.took["StartContainer"] = took

    def status(self):
        """ContainerStatus: state, exit_code, reason, message, host pid."""
        r = self.cri.rt.ContainerStatus(api.ContainerStatusRequest(
            container_id=self.id, verbose=True), timeout=self.cri.timeout)
        s = r.status
        pid = json.loads(r.info.get("info", "{}")).get("pid")
        return {"state": api.ContainerState.Name(s.state),
                "exit_code": s.exit_code, "reason": s.reason,
                "message": s.message, "pid": pid}

    def exec_sync(self, cmd, timeout=60):
        """ExecSync, the `kubectl exec` path: (exit code, stdout, stderr)."""
        reply, _ = self.cri.call(self.cri.rt.ExecSync, api.ExecSyncRequest(
            container_id=self.id, cmd=list(cmd), timeout=timeout),
            timeout + 30)
        return (reply.exit_code, reply.stdout.decode(errors="replace"),
                reply.stderr.decode(errors="replace"))

    def stop(self, timeout, deadline=None):
        """StopContainer with the grace period (seconds): containerd sends
        the image's stop signal (SIGTERM), waits up to `timeout`, then
        SIGKILLs. Returns the seconds the call took."""
        _, took = self.cri.call(
            self.cri.rt.StopContainer,
            api.StopContainerRequest(container_id=self.id, timeout=timeout),
            deadline or timeout + 120)
        self.took["StopContainer"] = took
        return took

    def log(self):
        """The container's log as text. The CRI log format is one
        `TIME STREAM P|F TEXT` per line (P: a partial line continues)."""
        path = os.path.join(self.pod.config.log_directory, f"{self.name}.log")
        try:
            with open(path, errors="replace") as f:
                raw = f.read().splitlines()
        except OSError:
            return ""
        out = []
        for line in raw:
            parts = line.split(" ", 3)
            if len(parts) == 4:
                out.append(parts[3] + ("\n" if parts[2] == "F" else ""))
            elif len(parts) == 3:
                out.append("\n")
        return "".join(out)


def _summary(msg):
    """The fields worth a log line: ids shortened, commands joined."""
    out = []
    for field, value in msg.ListFields():
        name = field.name
        if name in ("pod_sandbox_id", "container_id"):
            out.append(f"{value[:12]}")
        elif name in ("cmd",):
            out.append(" ".join(value))
        elif name in ("timeout", "exit_code"):
            out.append(f"{name}={value}")
        elif name in ("stdout", "stderr") and value:
            text = value.decode(errors="replace").strip().replace("\n", " ")
            out.append(f"{name}={text[:100]!r}")
    if type(msg).__name__ == "StopContainerRequest" and not msg.timeout:
        out.append("timeout=0")  # proto3 lists no field at its default
    return ", ".join(out) or "ok"
