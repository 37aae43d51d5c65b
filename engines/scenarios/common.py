"""What every scenario script shares: facts checked, results printed.

A scenario prints `RESULT {json}` (its measurements) and exits 0 when
every check held, 1 with one line per failed check, and 77 with
`SKIP: why` when the engine it needs is not installed (the Rust test
prints that and passes: CI installs the engines).
"""

import json
import sys
import time

SKIP = 77


class Checks:
    def __init__(self, name, verbose=False):
        self.name = name
        self.verbose = verbose
        self.failed = []
        self.result = {"scenario": name}
        self.start = time.monotonic()

    def check(self, ok, what, context=""):
        """Records one fact; `what` says what was expected."""
        if not ok:
            self.failed.append(f"{what}{': ' + context if context else ''}")
            print(f"FAILED: {what} {context}", file=sys.stderr, flush=True)
        return ok

    def equal(self, got, want, what, context=""):
        return self.check(got == want, f"{what}: want {want!r}",
                          f"got {got!r} {context}".strip())

    def say(self, line):
        """With -v: one line on stderr saying what was observed."""
        if self.verbose:
            print(line, file=sys.stderr, flush=True)

    def note(self, **kv):
        self.result.update(kv)

    def call(self, name, seconds, tries=1, error=None):
        """Records one engine call: `calls.NAME = {ms, tries, error}`
        (times are integer milliseconds throughout RESULT)."""
        self.result.setdefault("calls", {})[name] = {
            "ms": ms(seconds), "tries": tries, "error": error}

    def called(self, name):
        return name in self.result.get("calls", {})

    def finish(self, extra_context=lambda: ""):
        self.result["total_ms"] = ms(time.monotonic() - self.start)
        print("RESULT " + json.dumps(self.result, sort_keys=True), flush=True)
        if self.failed:
            print(extra_context(), file=sys.stderr)
            print(f"{self.name}: {len(self.failed)} check(s) failed:\n  "
                  + "\n  ".join(self.failed), file=sys.stderr, flush=True)
            return 1
        return 0


def ms(seconds):
    return int(round(seconds * 1000))


def skip(why):
    print(f"SKIP: {why}", flush=True)
    sys.exit(SKIP)


def last_json(text):
    """The last line of `text` that parses as a JSON object, or None."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return None
