#!/usr/bin/python3
"""Speed of the interactive graph page on issue 16's workload: a 2-layer bidirectional LSTM over
500 steps (about 34 000 ops), written by `rewind graph --html` and opened in headless Chromium.

Reports: the time to write the file (median of 3 runs), its size and whether the runs wrote the
same bytes; the time from navigation start until the page is interactive; and median / p95 of
each interaction, measured inside the page from the event until the frame after it is painted
(rewind.act): moving the window one step, expanding a step, collapsing or expanding a gate,
tracing ancestors and descendants, a search, a colour switch.

Usage: tools/bench/html_page.py [--rewind build/tools/rewind/rewind] [--out /tmp/rewind-page]
"""

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import cdp  # noqa: E402


def p95(v):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(0.95 * (len(v) - 1))))]


def main():
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    ap = argparse.ArgumentParser()
    ap.add_argument("--rewind", default=os.path.join(root, "build", "tools", "rewind", "rewind"))
    ap.add_argument("--out", default="/tmp/rewind-page")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--screenshot", help="save a screenshot of the page here")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    page = os.path.join(a.out, "page.html")

    writes, digests = [], set()
    for _ in range(3):
        t = time.monotonic()
        out = subprocess.run([a.rewind, "graph", "--cell", "lstm", "--layers", "2", "--bidirectional",
                              "--steps", str(a.steps), "--html", page], check=True,
                             capture_output=True, text=True).stdout.strip()
        writes.append(time.monotonic() - t)
        with open(page, "rb") as f:
            digests.add(hashlib.sha256(f.read()).hexdigest())
    size = os.path.getsize(page)
    print(out)
    print(f"write: median {statistics.median(writes):.2f} s of {len(writes)} runs; "
          f"{size / 1e6:.2f} MB; byte-identical: {'yes' if len(digests) == 1 else 'NO'}")

    times = {}
    with cdp.Browser() as b:
        p = b.open("file://" + page, 1400, 850)
        print(f"interactive: {p.evaluate('rewind.readyAt'):.0f} ms after navigation start "
              f"({p.evaluate('rewind.panes[0].n')} ops)")

        def act(name, js, how="render"):
            # how: "restyle" for what moves nothing (a trace, a colour), as the page's handlers do
            r = p.evaluate(f"rewind.act({json.dumps(name)}, () => {js}, {json.dumps(how)}).then(r => r.ms)")
            times.setdefault(name, []).append(r)

        for k in range(1, 31):
            act("move the window one step", f"rewind.setWindow({k})")
        for k in range(40, 70):
            act("expand a step", f"rewind.state.steps.set('layer1/fwd/t{k}', true)")
        for k in range(30):
            path = f"layer0/bwd/t{5 + k % 20}/{'fiog'[k % 4]}"
            act("collapse or expand a gate",
                f"rewind.state.closed.has('{path}') ? rewind.state.closed.delete('{path}') : rewind.state.closed.add('{path}')")
        n = p.evaluate("rewind.panes[0].n")
        for k in range(20):
            act("trace", f"rewind.trace(0, {(k * 7919 + 13) % n})", "restyle")
        act("trace", "rewind.trace(0, null)", "restyle")
        for q in ["layer1/bwd/t42/**", "layer0/*/t1?/f/sigmoid", "/^layer1\\/fwd\\/t3[0-9]\\/o\\//",
                  "**/mul", "layer0/fwd/t499/**"] * 2:
            act("search", f"rewind.search({json.dumps(q)})")
        for mode in ["value", "off", "grad"] * 4:
            act("colour switch", f"rewind.setColour('{mode}')", "restyle")
        if a.screenshot:
            p.evaluate("rewind.search(''); rewind.state.steps.clear(); rewind.setWindow(0); rewind.act('x', () => null)")
            p.screenshot(a.screenshot)
        errors = p.errors()
    print(f"{'interaction':28s} {'n':>3s} {'median ms':>10s} {'p95 ms':>8s}")
    for name, v in times.items():
        print(f"{name:28s} {len(v):3d} {statistics.median(v):10.1f} {p95(v):8.1f}")
    if errors:
        print("page errors:", errors)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
