"""Drivers for the container engines undead is tested and scored on.

Standard library only, except cri.py (the CRI client: grpcio and
container-runtime-interface-api, installed into target/venv by
engines/setup.sh). Shared by the Rust tests (tests/cri.rs, tests/podman.rs
run the scenario scripts in engines/scenarios/) and the teardown scorecard.

- images.py      image archives written from local files (no registry)
- containerd.py  a private containerd with the CRI plugin, and its cleanup
- cri.py         the calls kubelet makes, over cri_api.v1
- podman.py      podman with a private store and containers.conf
- host.py        what is left on the host: processes, mounts, FUSE, cgroups
"""
