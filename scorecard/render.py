"""The scorecard's outputs: a Markdown table per engine (with footnotes) and an SVG of the matrix."""
import re
from xml.sax.saxutils import escape

from scorecard import verdict

COLOURS = {"clean": "#4caf50", "slow": "#ffc107", "stuck": "#ff7043", "leak": "#d32f2f",
           "skipped": "#e0e0e0", "error": "#9e9e9e"}


def footnote(cell):
    """One line explaining a cell that is not plainly clean, or None."""
    v = cell.get("verdict")
    if v == "skipped":
        return "skipped: %s" % cell.get("reason", "")
    if v == "error":
        return "error: %s" % cell.get("error", "")
    parts = []
    flags = verdict.engine_flags(cell)
    for k in ("stuck", "leak", "slow"):
        if k != "slow" or v == "slow":  # a stuck or leaking cell spent the grace, of course
            parts += ["%s: %s" % (k, f) for f in flags[k]]
    err = (cell["op"].get("stderr") or "").strip()
    if err and cell["op"].get("code") not in (0, None):
        parts.append("engine said: %s" % err.splitlines()[-1][:160])
    if cell.get("gone_s") is not None and v != "clean":
        parts.append("last process gone %.1f s after the operation began" % cell["gone_s"])
    if cell.get("cleanup", {}).get("needed"):
        parts.append("cleanup: %s" % "; ".join(cell["cleanup"].get("actions", []))[:300])
    for p in cell.get("undead_problems", []):
        parts.append("UNDEAD: %s" % p)
    # 64-hex container ids make the notes unreadable: 12 characters, as `docker ps` shows them.
    return re.sub(r"\b([0-9a-f]{12})[0-9a-f]{52}\b", r"\1…", "; ".join(parts)) if parts else None


def markdown(result):
    out = []
    for eng in result["engines"]:
        out.append("### %s" % eng["version"])
        out.append("")
        if eng.get("skipped"):
            out.append("Not run: %s" % eng["skipped"])
            out.append("")
            continue
        ops = eng["ops"]
        out.append("| hazard | " + " | ".join(o["title"] for o in ops) + " |")
        out.append("|---|" + "---|" * len(ops))
        notes = []
        by = {(c["hazard"], c["op"]["name"]): c for c in eng["cells"]}
        for hz in eng["hazards"]:
            row = ["%s" % hz["title"]]
            for o in ops:
                c = by.get((hz["name"], o["name"]))
                if c is None:
                    row.append("")
                    continue
                label = verdict.cell_label(c)
                note = footnote(c)
                if note and c.get("verdict") != "skipped":
                    notes.append(note)
                    label += " [%d]" % len(notes)
                row.append(label)
            out.append("| " + " | ".join(row) + " |")
        skips = sorted({"%s: %s" % (c["hazard"], c.get("reason", "")) for c in eng["cells"]
                        if c.get("verdict") == "skipped"})
        out.append("")
        for i, n in enumerate(notes, 1):
            out.append("%d. %s" % (i, n.replace("|", "/")))
        for n in eng.get("notes", []):
            out.append("")
            out.append("Note: %s" % n.replace("|", "/"))
        if skips:
            out.append("")
            out.append("Skipped rows: " + "; ".join(s.replace("|", "/") for s in skips))
        out.append("")
    return "\n".join(out)


def wrap(text, width):
    """Words into lines of at most width characters (a longer word gets a line of its own)."""
    lines = [""]
    for w in text.split():
        if lines[-1] and len(lines[-1]) + 1 + len(w) > width:
            lines.append(w)
        else:
            lines[-1] = (lines[-1] + " " + w).strip()
    return lines


def svg(result):
    cw, ch, left, top, gap = 118, 22, 250, 40, 30
    blocks = [e for e in result["engines"] if not e.get("skipped")]
    height = top + sum(len(e["hazards"]) * ch + 3 * gap + 12 for e in blocks) + 40
    width = left + max([len(e["ops"]) for e in blocks] + [1]) * cw + 20
    s = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" '
         'font-size="11">' % (width, height),
         '<rect width="100%" height="100%" fill="white"/>',
         '<text x="10" y="20" font-size="14">undead teardown scorecard (%s)</text>'
         % escape(result["meta"]["date"])]
    y = top
    for e in blocks:
        s.append('<text x="10" y="%d" font-size="13" font-weight="bold">%s</text>'
                 % (y + 14, escape(e["version"])))
        y += gap - 6
        for i, o in enumerate(e["ops"]):
            for j, line in enumerate(wrap(o["title"], 21)[:2]):
                s.append('<text x="%d" y="%d">%s</text>' % (left + i * cw + 4, y + 8 + 12 * j,
                                                           escape(line)))
        y += 26
        by = {(c["hazard"], c["op"]["name"]): c for c in e["cells"]}
        for hz in e["hazards"]:
            s.append('<text x="10" y="%d">%s</text>' % (y + 15, escape(hz["title"][:40])))
            for i, o in enumerate(e["ops"]):
                c = by.get((hz["name"], o["name"]))
                if c is None:
                    continue
                v = c.get("verdict", "error")
                x = left + i * cw
                s.append('<rect x="%d" y="%d" width="%d" height="%d" fill="%s" stroke="white"/>'
                         % (x, y, cw - 2, ch - 2, COLOURS.get(v, "#9e9e9e")))
                s.append('<text x="%d" y="%d">%s</text>' % (x + 4, y + 14, escape(verdict.cell_label(c))))
            y += ch
        y += gap
    lx = 10
    for v, col in COLOURS.items():
        s.append('<rect x="%d" y="%d" width="12" height="12" fill="%s"/>' % (lx, y, col))
        s.append('<text x="%d" y="%d">%s</text>' % (lx + 16, y + 10, v))
        lx += 80
    s.append('<text x="%d" y="%d">† cleanup had to act</text>' % (lx, y + 10))
    s.append("</svg>")
    return "\n".join(s) + "\n"
