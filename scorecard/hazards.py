"""The scorecard's rows (hazards) and columns (operations), as data.

A hazard is: undead's init options, the commands `exec`ed inside the container to raise it, the
`undead wait` arguments that confirm it, and what the container needs (FUSE, privileges, a volume).
A row whose verb or option this undead does not have is skipped, detected from the binary's answer
(exit 2 usage error, or 127 "cannot run 'VERB'" when the word is not a verb at all), never from a
list of versions: rows for new verbs work as soon as the binary has them.

`contract` says what undead itself promises for the row, which is what `--quick` (CI) checks:
  "exits"   on SIGTERM undead forwards it, releases what it holds and exits with 143 by itself
            within the grace; it writes its report;
  "dies"    when undead is SIGKILLed, nothing it made is left after the bound (the kernel frees it);
  None      the engine decides (the workload ignores TERM, or the hazard outlives undead by design).
"""
from dataclasses import dataclass, field

# The workload rows run `--wait-all`: undead then waits for the workload's other processes, as the
# init of a multi-process service must, so it is the engine's grace and SIGKILL that end them.
WAIT_ALL = ["--wait-all"]


@dataclass
class Hazard:
    name: str
    title: str
    init: list = field(default_factory=list)      # undead options before `--`
    raise_: list = field(default_factory=list)    # argv lists exec'ed in the container, in order
    wait: list = field(default_factory=list)      # `undead wait` arguments
    needs: set = field(default_factory=set)       # {"fuse", "privileged", "volume", "freezer-v1"}
    on_term: str = "exits"                        # contract on SIGTERM: "exits" or None
    on_kill: str = "dies"                         # contract on SIGKILL of undead: "dies" or None
    outlive_s: int = 0                            # the victims outlive undead up to this + 15 s


U = "/undead"

HAZARDS = [
    Hazard("none", "none (baseline)"),
    Hazard("zombies", "5 held zombies", raise_=[[U, "zombie", "5"]], wait=["--zombies", "5"]),
    Hazard("holder", "5 zombies under a live holder", raise_=[[U, "zombie", "5", "--holder"]],
           wait=["--zombies", "5"]),
    Hazard("orphans", "5 withheld orphans", init=["--withhold-reaping"],
           raise_=[["/bin/sh", "-c", "for i in 1 2 3 4 5; do sleep 0.1 & done"]],
           wait=["--zombies", "5"]),
    Hazard("vfork", "2 vfork D (killable)", raise_=[[U, "dstate", "2"]], wait=["--dstate", "2"]),
    Hazard("fuse", "2 fuse D (SIGKILL-immune)", raise_=[[U, "dstate", "2", "--kind", "fuse"]],
           wait=["--dstate", "2"], needs={"fuse"}),
    Hazard("fuse-outlive", "2 fuse D --outlive 15s",
           raise_=[[U, "dstate", "2", "--kind", "fuse", "--outlive", "15s"]],
           wait=["--dstate", "2"], needs={"fuse"}, on_kill=None, outlive_s=15),
    Hazard("stopped", "2 stopped (T), unheld", init=WAIT_ALL,
           raise_=[[U, "stopped", "2", "--unheld"]], wait=["--stopped", "2"], on_term=None),
    Hazard("deaf", "2 deaf to TERM, unheld", init=WAIT_ALL, raise_=[[U, "deaf", "2", "--unheld"]],
           wait=["--deaf", "2"], on_term=None),
    Hazard("slow", "2 slow (exit 3 s after TERM), unheld", init=WAIT_ALL,
           raise_=[[U, "slow", "2", "--exit-after", "3s", "--unheld"]], wait=["--slow", "2"],
           on_term=None),
    Hazard("escapee", "2 escapees (own session), unheld", init=WAIT_ALL,
           raise_=[[U, "escapee", "2", "--unheld"]], wait=["--escapee", "2"], on_term=None),
    Hazard("hopper", "2 hoppers (new PID every 10 ms), unheld", init=WAIT_ALL,
           raise_=[[U, "hopper", "2", "--unheld"]], wait=["--hopper", "2"], on_term=None),
    Hazard("frozen", "2 in a frozen cgroup (v1)", raise_=[[U, "frozen", "2", "--unbounded"]],
           wait=["--frozen", "2"], needs={"privileged", "freezer-v1"}, on_kill=None),
    Hazard("busy-volume", "fuse D --outlive 15s, cwd on a volume",
           raise_=[[U, "dstate", "1", "--kind", "fuse", "--outlive", "15s", "--cwd", "/data"]],
           wait=["--dstate", "1"], needs={"fuse", "volume"}, on_kill=None, outlive_s=15),
]

BY_NAME = {h.name: h for h in HAZARDS}

# CI's subset: the rows whose outcome undead alone decides, under each engine's first operation
# that sends SIGTERM ("TERM": docker stop, a CRI pod deletion) and first that SIGKILLs ("KILL").
QUICK = [("none", "TERM"), ("zombies", "TERM"), ("holder", "TERM"), ("orphans", "TERM"),
         ("vfork", "TERM"), ("fuse", "TERM"), ("vfork", "KILL"), ("fuse", "KILL")]


def verbs_of(h):
    """The undead verbs a row needs (the first word after /undead in its raise commands)."""
    return sorted({argv[1] for argv in h.raise_ if argv and argv[0] == U and len(argv) > 1})


def unsupported(argv, code, output):
    """True when undead's answer to argv says it lacks the verb or option (not a runtime failure).

    A word that is not a verb makes undead run it as a command: 127 and "cannot run 'WORD'"
    (inside a container, exec'ed under a fresh undead); an unknown option is a usage error: 2.
    """
    if code == 2:
        return True
    if code == 127 and len(argv) > 1 and ("cannot run '%s'" % argv[1]) in output:
        return True
    return False


def probe_argv(binary, h):
    """Commands that ask the local binary whether it knows every verb and option of a row.

    Each runs the row's own argv against a control socket that cannot exist: a known verb with
    valid options answers 3 (no undead answers); anything it does not know answers 2 or 127.
    """
    sock = "/nonexistent/undead-scorecard-probe.sock"
    out = []
    for argv in h.raise_:
        if argv and argv[0] == U:
            out.append([binary] + argv[1:] + ["--control", sock])
    if h.wait:
        out.append([binary, "wait"] + h.wait + ["--timeout", "1s", "--control", sock])
    return out
