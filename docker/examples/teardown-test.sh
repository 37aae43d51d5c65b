#!/usr/bin/env bash
# Teardown test for a container runtime, with undead as the container's init.
#
# Starts a container whose PID 1 is undead, raises 5 zombies and 2 processes
# in D state (killable vfork holders) inside it, then `docker stop`s it and
# asserts that the stop was fast (TERM forwarded, everything undead held
# released) and what undead's teardown report (`--report`) says. Copy it and change the
# image, the command and the limits to test your own runtime or service.
#
# Needs: docker, the static undead binary, a static busybox (Debian:
# busybox-static) for a shell in the image, and python3 to read the report.
# No registry is used: the image is built FROM scratch from local files.
#
#   cargo build --release && docker/examples/teardown-test.sh
#
# Environment (all optional):
#   UNDEAD_BIN        undead binary
#                     (target/x86_64-unknown-linux-gnu/release/undead)
#   BUSYBOX           static busybox (/bin/busybox)
#   STOP_TIMEOUT      docker stop -t: when Docker would SIGKILL (30)
#   MAX_STOP_SECONDS  the assertion: stop must take at most this long (5)
set -euo pipefail

UNDEAD_BIN=${UNDEAD_BIN:-target/x86_64-unknown-linux-gnu/release/undead}
BUSYBOX=${BUSYBOX:-/bin/busybox}
STOP_TIMEOUT=${STOP_TIMEOUT:-30}
MAX_STOP_SECONDS=${MAX_STOP_SECONDS:-5}

name="undead-teardown-$$-$RANDOM"
image="$name"
work=$(mktemp -d)

cleanup() {
  docker rm -f "$name" >/dev/null 2>&1 || true
  docker rmi -f "$image" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  docker logs "$name" >&2 2>&1 || true
  exit 1
}

# The image: busybox for a shell, undead as PID 1. ENTRYPOINT ["/undead"]
# so that undead's own options go before `--`.
cp "$UNDEAD_BIN" "$work/undead"
cp "$BUSYBOX" "$work/busybox"
mkdir "$work/out"
cat >"$work/Dockerfile" <<'EOF'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox --install -s /bin && mkdir -p /tmp /run"]
COPY undead /undead
ENTRYPOINT ["/undead"]
EOF
# --no-cache: a cached layer shared with another build can be removed
# under this one by that build's `docker rmi` ("unknown parent image ID").
docker build --no-cache -q -t "$image" "$work" >/dev/null

# The report is written when undead exits, into a bind-mounted directory.
docker run -d --name "$name" -v "$work/out:/out" "$image" \
  --report /out/report.json -- sleep 600 >/dev/null

# Bounded wait for undead's control socket.
for _ in $(seq 1 150); do
  docker exec "$name" /undead status >/dev/null 2>&1 && break
  sleep 0.1
done
docker exec "$name" /undead zombie 5
docker exec "$name" /undead dstate 2
docker exec "$name" /undead wait --zombies 5 --dstate 2 --timeout 10s
echo "--- inside the container before docker stop:"
docker exec "$name" /undead ps

start=$(date +%s%N)
docker stop -t "$STOP_TIMEOUT" "$name" >/dev/null
end=$(date +%s%N)
ms=$(((end - start) / 1000000))
code=$(docker inspect -f '{{.State.ExitCode}}' "$name")
echo "docker stop took ${ms} ms (Docker's SIGKILL was ${STOP_TIMEOUT} s away); exit code ${code}"

[ "$code" = 143 ] || fail "exit code $code, expected 143 (TERM forwarded)"
[ "$ms" -le $((MAX_STOP_SECONDS * 1000)) ] ||
  fail "docker stop took ${ms} ms, more than ${MAX_STOP_SECONDS} s"

report="$work/out/report.json"
[ -s "$report" ] || fail "no teardown report at $report"
echo "--- teardown report:"
python3 - "$report" "$MAX_STOP_SECONDS" <<'EOF' || fail "the report is not what we expect"
import json, sys
report = json.load(open(sys.argv[1]))
limit_ms = int(sys.argv[2]) * 1000
print(json.dumps(report, indent=2))
problems = []
def check(ok, what):
    if not ok:
        problems.append(what)
check(report["exit_code"] == 143, "undead's exit code is 143")
check(report["child"]["signal"] == "SIGTERM", "the command died of the forwarded SIGTERM")
check(any(s["signal"] == "SIGTERM" for s in report["signals"]), "undead saw docker stop's SIGTERM")
check(report["term_to_exit_ms"] <= limit_ms, "undead exited within the limit after TERM")
kinds = [h["kind"] for h in report["held"]]
check(kinds.count("zombie") == 5, "it held the 5 zombies")
check(kinds.count("vfork") == 2, "it held the 2 D-state (vfork) holders")
held = {h["pid"] for h in report["held"]}
check(held <= set(report["released"]), "it released everything it held")
check(all(p["state"] != "D" for p in report["remaining"]), "nothing left in D at exit")
for p in problems:
    print("report check failed:", p, file=sys.stderr)
sys.exit(1 if problems else 0)
EOF
echo PASS
