"""scorecard/run: how container engines tear down a container while each undead hazard is present.

    scorecard/run                                  Docker, every hazard x operation (<= 10 min)
    scorecard/run --engine docker,podman,cri --json out.json --md out.md --svg out.svg
    scorecard/run --quick                          CI's subset (<= 2 min); exit 1 only if undead
                                                   broke its own contract in a cell
    scorecard/run --only fuse,frozen --ops kill

Exit status: 0 every cell ran (whatever the engines' verdicts); 1 undead broke its contract in a
cell (see `undead_problems` in the JSON); 2 usage; 3 a cell could not be set up (engine error).
Needs root, the engine, busybox-static, and the release binary (cargo build --release).
"""
import argparse
import datetime
import importlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from scorecard import cell as cells
from scorecard import hazards, render

REPO = Path(__file__).resolve().parent.parent
DEFAULT_UNDEAD = REPO / "target/x86_64-unknown-linux-gnu/release/undead"
# engine name -> (module, class): Docker is here; Podman and the CRI come with engines/ (branch
# engines) through scorecard's adapters, and are skipped with the reason while they are absent.
ENGINES = {"docker": ("engines.docker", "Docker"),
           "podman": ("scorecard.podman", "Podman"),
           "cri": ("scorecard.cri", "Cri")}


def log(*a):
    print("scorecard:", *a, file=sys.stderr, flush=True)


def parse_args(argv):
    p = argparse.ArgumentParser(prog="scorecard/run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engine", default="docker", help="comma-separated: docker,podman,cri")
    p.add_argument("--only", default="", help="comma-separated hazards (rows): %s"
                   % ",".join(h.name for h in hazards.HAZARDS))
    p.add_argument("--ops", default="", help="comma-separated operations (columns)")
    p.add_argument("--quick", action="store_true", help="CI's subset: %s (TERM: the engine's "
                   "first graceful operation, KILL: its first kill)"
                   % " ".join("%s/%s" % c for c in hazards.QUICK))
    p.add_argument("--grace", type=int, default=5, help="the stop grace in seconds (5)")
    p.add_argument("--bound", type=float, default=None,
                   help="seconds after the operation to wait for the last process (20; quick 10)")
    p.add_argument("--op-timeout", type=float, default=60.0, help="give an operation up after this")
    p.add_argument("--undead", default=str(DEFAULT_UNDEAD), help="the static undead binary")
    p.add_argument("--busybox", default="/bin/busybox", help="a static busybox for the image")
    p.add_argument("--sandbox-undead", default=None,
                   help="the undead of the CRI's pod sandbox image (undead --pause; default --undead)")
    p.add_argument("--render", nargs="+", metavar="JSON",
                   help="run nothing: merge these runs' JSON and write the outputs")
    p.add_argument("--json", help="write every figure here")
    p.add_argument("--md", help="write the Markdown tables here")
    p.add_argument("--svg", help="write the picture of the matrix here")
    a = p.parse_args(argv)
    if a.bound is None:
        a.bound = 10.0 if a.quick else 20.0
    unknown = [n for n in split(a.only) if n not in hazards.BY_NAME]
    if unknown:
        p.error("unknown hazard(s): %s" % ", ".join(unknown))
    unknown = [n for n in split(a.engine) if n not in ENGINES]
    if unknown:
        p.error("unknown engine(s): %s (have %s)" % (", ".join(unknown), ", ".join(ENGINES)))
    if not os.access(a.undead, os.X_OK) and not a.render:
        p.error("no undead binary at %s (cargo build --release)" % a.undead)
    return a


def split(s):
    return [x for x in s.split(",") if x]


def load_engine(name, args):
    mod, cls = ENGINES[name]
    try:
        engine = getattr(importlib.import_module(mod), cls)(args.undead, args.busybox)
        engine.sandbox_undead = args.sandbox_undead or args.undead
        return engine, None
    except (ImportError, AttributeError) as e:
        return None, "%s adapter not in this tree (%s)" % (name, e)


def plan(args, engine):
    """(hazard, op) pairs of this run, in table order."""
    ops = [o for o in engine.OPS if not split(args.ops) or o.name in split(args.ops)]
    rows = [h for h in hazards.HAZARDS if not split(args.only) or h.name in split(args.only)]
    pairs = [(h, o) for h in rows for o in ops]
    if args.quick:
        first = {}
        for o in engine.OPS:
            first.setdefault(o.signal, o)
        pairs = [(h, o) for h, o in pairs
                 if any(h.name == n and first.get(sig) is o for n, sig in hazards.QUICK)]
    return pairs


def run_engine(name, args):
    engine, why = load_engine(name, args)
    entry = {"engine": name, "version": name, "cells": [], "hazards": [], "ops": []}
    if engine is None or (why := engine.available()):
        log("%s: skipped: %s" % (name, why))
        entry["skipped"] = why
        return entry
    entry["version"] = engine.version()
    pairs = plan(args, engine)
    entry["ops"] = [{"name": o.name, "title": o.title.replace("GRACE", str(args.grace))}
                    for o in engine.OPS if any(o is p[1] for p in pairs)]
    entry["hazards"] = [{"name": h.name, "title": h.title}
                        for h in hazards.HAZARDS if any(h is p[0] for p in pairs)]
    support = {h.name: cells.probe_support(args.undead, h, cells_runner) for h, _ in pairs}
    log("%s: %d cells; image from %s" % (entry["version"], len(pairs), args.undead))
    engine.prepare()
    try:
        for i, (h, op) in enumerate(pairs, 1):
            c = cells.run_cell(engine, h, op, args.grace, args.bound, args.op_timeout, support[h.name])
            entry["cells"].append(c)
            extra = c.get("reason") or c.get("error") or ""
            log("[%s %d/%d] %s x %s: %s %s%s" % (name, i, len(pairs), h.name, op.name,
                                                  render.verdict.cell_label(c), extra[:100],
                                                  "  UNDEAD: %s" % c["undead_problems"]
                                                  if c["undead_problems"] else ""))
    finally:
        entry["notes"] = list(getattr(engine, "notes", []))
        engine.close()
    return entry


def cells_runner(argv, timeout):
    from engines.docker import run
    return run(argv, timeout=timeout)


def meta(args):
    r = subprocess.run([args.undead, "--version"], capture_output=True, text=True)
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "kernel": platform.release(), "cpus": os.cpu_count(),
            "undead": r.stdout.strip(), "undead_bytes": os.path.getsize(args.undead),
            "loadavg": open("/proc/loadavg").read().split()[:3],
            "grace_s": args.grace, "bound_s": args.bound, "quick": args.quick,
            "argv": sys.argv[1:]}


def exit_status(result):
    all_cells = [c for e in result["engines"] for c in e["cells"]]
    if any(c.get("undead_problems") for c in all_cells):
        return 1
    if any(c.get("verdict") == "error" for c in all_cells):
        return 3
    return 0


VENV_PYTHON = REPO / "target/venv/bin/python"


def in_venv_if_needed(args):
    """The CRI client lives in target/venv (engines/setup.sh): re-execute there when asked for."""
    if "cri" not in split(args.engine):
        return
    try:
        import grpc  # noqa: F401
        return
    except ImportError:
        pass
    if VENV_PYTHON.exists() and Path(sys.executable).resolve() != VENV_PYTHON.resolve():
        log("re-executing under %s for the CRI client" % VENV_PYTHON)
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), str(REPO / "scorecard/run")] + sys.argv[1:])


def merge_runs(paths):
    """Several runs' JSON as one result (the first run's meta, every run's engines)."""
    runs = [json.loads(Path(p).read_text()) for p in paths]
    result = {"meta": dict(runs[0]["meta"], runs=[r["meta"] for r in runs]), "engines": []}
    for r in runs:
        result["engines"] += r["engines"]
    return result


def write_outputs(args, result):
    md = render.markdown(result)
    for path, text in ((args.json, json.dumps(result, separators=(",", ":"), default=str) + "\n"),
                       (args.md, md), (args.svg, render.svg(result))):
        if path:
            Path(path).write_text(text)
    print(md)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.render:
        result = merge_runs(args.render)
        write_outputs(args, result)
        return exit_status(result)
    in_venv_if_needed(args)
    if os.geteuid() != 0:
        log("needs root (containers with FUSE, host /proc of other users)")
        return 2
    t0 = time.monotonic()
    result = {"meta": meta(args), "engines": []}
    for name in split(args.engine):
        result["engines"].append(run_engine(name, args))
    result["meta"]["seconds"] = round(time.monotonic() - t0, 1)
    write_outputs(args, result)
    status = exit_status(result)
    log("done in %.0f s; exit %d%s" % (result["meta"]["seconds"], status,
                                        {1: " (undead broke its contract: see UNDEAD in the notes)",
                                         3: " (a cell could not be set up)"}.get(status, "")))
    return status
