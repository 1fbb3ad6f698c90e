"""The interactive graph page (rwd::write_html) in headless Chromium, over the DevTools protocol.

Opens pages written by make_pages (which also writes reference.json: what the page must show,
computed from the tapes in C++) and by the rewind command (custom and file-defined cells, a
500-step 2-layer bidirectional LSTM), then clicks, slides, types and reads the DOM. Timings are
printed, never asserted (tools/bench/html_page.py reports them). Exit 77 (skipped) only when
Chromium is not installed.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools"))
import cdp  # noqa: E402

ARGS = None
REF = None
BROWSER = None
TIMES = {}


def page_path(name):
    return os.path.join(ARGS.out, name)


def open_page(name, width=1400, height=850):
    page = BROWSER.open("file://" + page_path(name), width, height)
    ready = page.evaluate("document.body.getAttribute('data-ready') === '1' && window.rewind.ready")
    if not ready:
        raise AssertionError(f"{name}: the page did not get ready: {page.errors()}")
    TIMES.setdefault("ready " + name, []).append(page.evaluate("rewind.readyAt"))
    return page


def timed(page, name, js, how="render"):
    """Runs an action through the page's act() and records how long it took to paint; how is
    "restyle" for actions that move nothing (a trace, a colour switch), as the page's own
    handlers do."""
    r = page.evaluate(f"rewind.act({json.dumps(name)}, () => {js}, {json.dumps(how)}).then(r => r)")
    TIMES.setdefault(name, []).append(r["ms"])
    return r.get("result")


def center(box):
    return box["x"] + box["w"] / 2, box["y"] + box["h"] / 2


class Page(unittest.TestCase):
    def setUp(self):
        self.page = open_page("lstm.html")
        self.ref = REF["lstm"]

    def tearDown(self):
        self.assertEqual(self.page.errors(), [], "the page logged errors")

    def test_loads_offline_and_matches_the_tape(self):
        p = self.page
        self.assertEqual([u for u in p.requests() if not u.startswith(("file:", "data:"))], [])
        self.assertEqual(p.evaluate("rewind.panes[0].n"), self.ref["n"])
        rows = p.evaluate("rewind.panes[0].rows.map(r => r.path)")
        self.assertEqual(sorted(rows), sorted(self.ref["sequences"]))
        # One template for all the steps of a layer direction but the first (its initial state is
        # a leaf of that step): a handful, not hundreds.
        self.assertLessEqual(p.evaluate("rewind.panes[0].templates.length"), 2 * len(rows))
        self.assertIn("steps 0–2 of 20", p.evaluate("document.getElementById('wlabel').textContent"))

    def test_the_window_slides_without_relayout(self):
        p = self.page
        open0 = p.evaluate("rewind.openSteps(0)")
        self.assertEqual(sorted({s.rsplit('/', 1)[1] for s in open0}), ["t0", "t1", "t2"])
        # A node's place inside its step is its template's, wherever the window is.
        before = p.evaluate("(() => { const L = rewind.panes[0].L, f = L.items.get('f' + rewind.stepId(0, 'layer1/fwd/t2').slice(1)), n = L.items.get('n' + rewind.panes[0].instances[rewind.stepId(0, 'layer1/fwd/t2').slice(1)].nodes[5]); return [n.x - f.x, n.y - f.y]; })()")
        p.key("ArrowRight")
        p.evaluate("new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)))")
        self.assertEqual(p.evaluate("rewind.state.start"), 1)
        after = p.evaluate("(() => { const L = rewind.panes[0].L, f = L.items.get('f' + rewind.stepId(0, 'layer1/fwd/t2').slice(1)), n = L.items.get('n' + rewind.panes[0].instances[rewind.stepId(0, 'layer1/fwd/t2').slice(1)].nodes[5]); return [n.x - f.x, n.y - f.y]; })()")
        self.assertEqual(before, after)
        self.assertEqual(sorted({s.rsplit('/', 1)[1] for s in p.evaluate("rewind.openSteps(0)")}), ["t1", "t2", "t3"])
        # The slider, as a user drags it.
        for k in range(2, 12):
            timed(p, "window", f"rewind.setWindow({k})")
        p.evaluate("(() => { const s = document.getElementById('window'); s.value = '9'; s.dispatchEvent(new Event('input')); })()")
        p.evaluate("new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)))")
        self.assertEqual(sorted({s.rsplit('/', 1)[1] for s in p.evaluate("rewind.openSteps(0)")}), ["t10", "t11", "t9"])

    def test_clicks_expand_and_collapse_steps_gates_and_rows(self):
        p = self.page
        sid = p.evaluate("rewind.stepId(0, 'layer0/bwd/t6')")
        box = p.evaluate(f"rewind.screenBox(0, {json.dumps(sid)})")
        self.assertIsNotNone(box, "the folded step t6 is not drawn")
        p.click(*center(box))
        p.evaluate("new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)))")
        self.assertIn("layer0/bwd/t6", p.evaluate("rewind.openSteps(0)"))
        # Its gate f, collapsed by a click on the gate's label, then expanded again.
        k = sid[1:]
        label = p.evaluate(f"(() => {{ const e = document.querySelector('[data-gate=\"{k}:f\"]'); const b = e.getBoundingClientRect(); return {{x: b.x, y: b.y, w: b.width, h: b.height}}; }})()")
        p.click(*center(label))
        p.evaluate("new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)))")
        self.assertTrue(p.evaluate(f"rewind.panes[0].L.items.has('g{k}:f')"))
        f_nodes = p.evaluate(f"rewind.panes[0].instances[{k}].nodes.filter((i, s) => rewind.panes[0].templates[rewind.panes[0].instances[{k}].tpl].relPath[s] === 'f')")
        self.assertGreater(len(f_nodes), 0)
        for i in f_nodes:
            self.assertEqual(p.evaluate(f"rewind.rep(0, {i})"), f"g{k}:f")
        gbox = p.evaluate(f"rewind.screenBox(0, 'g{k}:f')")
        p.click(*center(gbox))
        p.evaluate("new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)))")
        self.assertFalse(p.evaluate(f"rewind.panes[0].L.items.has('g{k}:f')"))
        # The step's label folds it again.
        flabel = p.evaluate(f"(() => {{ const e = document.querySelector('.framelabel[data-step=\"{k}\"]'); const b = e.getBoundingClientRect(); return {{x: b.x, y: b.y, w: b.width, h: b.height}}; }})()")
        p.click(*center(flabel))
        p.evaluate("new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)))")
        self.assertNotIn("layer0/bwd/t6", p.evaluate("rewind.openSteps(0)"))
        # A layer, by its name in a row label: both directions fold into one bar; the bar opens it.
        row = p.evaluate("(() => { const e = document.querySelector('tspan[data-row=\"layer1\"]'); const b = e.getBoundingClientRect(); return {x: b.x, y: b.y, w: b.width, h: b.height}; })()")
        p.click(*center(row))
        p.evaluate("new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)))")
        self.assertTrue(p.evaluate("rewind.panes[0].L.items.has('blayer1')"))
        self.assertFalse(any(s.startswith("layer1/") for s in p.evaluate("rewind.openSteps(0)")))
        bar = p.evaluate("rewind.screenBox(0, 'blayer1')")
        p.click(bar["x"] + 40, bar["y"] + bar["h"] / 2)
        p.evaluate("new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)))")
        self.assertTrue(any(s.startswith("layer1/fwd/") for s in p.evaluate("rewind.openSteps(0)")))
        for k2 in range(3, 13):  # timings: expanding steps one by one
            timed(p, "expand step", f"rewind.state.steps.set('layer0/fwd/t{k2}', true)")

    def test_hover_card_shows_the_ops_statistics(self):
        p = self.page
        for card in self.ref["cards"]:
            i = card["node"]
            p.evaluate(f"rewind.focusNode(0, {i}); rewind.act('focus', () => null)")
            box = p.evaluate(f"rewind.screenBox(0, 'n{i}')")
            self.assertIsNotNone(box, f"node {i} is not drawn after focusing it")
            p.hover(*center(box))
            text = p.evaluate("document.getElementById('card').style.display === 'block' ? document.getElementById('card').textContent : ''")
            self.assertIn(card["kind"], text)
            self.assertIn(card["shape"], text)
            self.assertIn(card["scope"] or "top level", text)
            for v in card["value"]:
                self.assertIn(f"{float(f'{v:.4g}'):g}"[:5], text.replace("e+", "e"))
            if card["grad"] is not None:
                self.assertIn("gradient: min", text)

    def test_tracing_matches_the_cpp_reference(self):
        p = self.page
        for probe in self.ref["probes"]:
            timed(p, "trace", f"rewind.trace(0, {probe['node']})", "restyle")
            self.assertEqual(p.evaluate("rewind.traceNodes(0)"), probe["traced"], f"node {probe['node']}")
        # By a click on a drawn node, and the folded steps that hold traced ops light up.
        i = p.evaluate("rewind.panes[0].rows.find(r => r.path === 'layer1/fwd').nodes[1][3]")
        box = p.evaluate(f"rewind.screenBox(0, 'n{i}')")
        p.click(*center(box))
        p.evaluate("new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)))")
        self.assertEqual(p.evaluate("rewind.panes[0].traced.node"), i)
        self.assertGreater(p.evaluate("document.querySelectorAll('.scene .step.lit').length"), 0)
        p.key("Escape")
        p.evaluate("new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)))")
        self.assertIsNone(p.evaluate("rewind.panes[0].traced"))

    def test_search_by_glob_and_regex_from_the_box(self):
        p = self.page
        for case in self.ref["search"]:
            p.evaluate("document.getElementById('search').focus(); document.getElementById('search').value = ''")
            p.type_text(case["query"])
            p.key("Enter")
            p.evaluate("new Promise(r => setTimeout(r, 50))")
            hits = case["hits"]
            self.assertEqual(p.evaluate("document.getElementById('hits').textContent"),
                             f"{hits} hit{'' if hits == 1 else 's'}", case["query"])
            self.assertEqual(p.evaluate("rewind.panes[0].hits.length"), hits)
            # Every hit is drawn (its step and gates opened) and outlined.
            drawn = p.evaluate("rewind.panes[0].hits.filter(i => rewind.rep(0, i) === 'n' + i).length")
            self.assertEqual(drawn, hits)
            TIMES.setdefault("search", []).append(p.evaluate("rewind.timings.search.slice(-1)[0]"))
        p.evaluate("document.getElementById('search').value = ''")
        p.evaluate("document.getElementById('search').focus()")
        p.type_text("/([/")
        p.key("Enter")
        p.evaluate("new Promise(r => setTimeout(r, 50))")
        self.assertIn("bad pattern", p.evaluate("document.getElementById('hits').textContent"))

    def test_colour_modes_and_legend(self):
        p = self.page
        self.assertEqual(p.evaluate("rewind.state.colour"), "grad")  # the page has gradients
        self.assertEqual(p.evaluate("document.querySelectorAll('#legend .swatch:not(.zero)').length"), 9)
        # White nodes (no or zero gradient) have their entry too.
        self.assertEqual(p.evaluate("[...document.querySelectorAll('#legend .swatch.zero')].map(e => e.textContent)"),
                         ["0 or none"])
        # Folded steps are painted in their colour (no style rule hides the attribute).
        strips = p.evaluate("[...document.querySelectorAll('.scene path.step')].map(e => [e.getAttribute('fill'), getComputedStyle(e).fill])")
        self.assertGreater(len({a for a, _ in strips}), 2)
        for attr, painted in strips:
            rgb = tuple(int(attr[k:k + 2], 16) for k in (1, 3, 5))
            self.assertEqual(painted, "rgb(%d, %d, %d)" % rgb)
        fill = lambda: p.evaluate("[...document.querySelectorAll('.scene rect.node')].map(e => e.getAttribute('fill')).join(',')")
        grad = fill()
        p.evaluate("(() => { const s = document.getElementById('colour'); s.value = 'value'; s.dispatchEvent(new Event('change')); })()")
        p.evaluate("new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)))")
        self.assertIn("value", p.evaluate("document.getElementById('legend').textContent"))
        self.assertEqual(p.evaluate("document.querySelector('#legend .swatch.zero').textContent"), "0")
        self.assertNotEqual(fill(), grad)
        for mode in ["off", "grad", "value"] * 3:
            timed(p, "colour", f"rewind.setColour('{mode}')", "restyle")
        timed(p, "colour", "rewind.setColour('off')", "restyle")
        self.assertEqual(p.evaluate("document.querySelectorAll('#legend .swatch').length"), 0)
        self.assertEqual(set(fill().split(",")) - {"#ffffff", "#cfe2f3", "#d9ead3", "#eeeeee"}, set())

    def test_search_placeholder_is_an_example_that_finds_something(self):
        p = self.page
        placeholder = p.evaluate("document.getElementById('search').placeholder")
        self.assertTrue(placeholder.startswith("search: ") and placeholder.endswith(" or /regex/"), placeholder)
        example = placeholder[len("search: "):-len(" or /regex/")]
        p.evaluate("document.getElementById('search').focus(); document.getElementById('search').value = ''")
        p.type_text(example)
        p.key("Enter")
        p.evaluate("new Promise(r => setTimeout(r, 50))")
        self.assertGreater(p.evaluate("rewind.panes[0].hits.length"), 0, example)

    def test_products_name_their_parameters(self):
        p = self.page
        labels = p.evaluate("[...document.querySelectorAll('.scene text.nodetext')].map(t => [t.firstChild.textContent, t.querySelector('tspan') ? t.querySelector('tspan').textContent : ''])")
        products = [line2 for op, line2 in labels if op.startswith(("matmul", "affine"))]
        self.assertTrue(products, labels[:20])
        named = [line2 for line2 in products if " · weight_" in line2]
        self.assertTrue(named, products[:10])
        # Each name fits its node: the layout sized the node by the same two lines.
        overflow = p.evaluate("""[...document.querySelectorAll('.scene text.nodetext')].filter(t => {
            const r = t.previousElementSibling; if (!r || r.tagName !== 'rect') return false;
            return t.getBBox().width > Number(r.getAttribute('width')) + 1; }).length""")
        self.assertEqual(overflow, 0)

    def test_overview_labels_are_readable(self):
        p = self.page
        p.evaluate("document.getElementById('tab-overview').click()")
        p.evaluate("new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)))")
        # Per labelled node: its text's stroke and the contrast of its fill against the shape's.
        rows = p.evaluate("""(() => {
          const rgb = (c) => (c.match(/[0-9.]+/g) || []).slice(0, 3).map(Number);
          const lum = ([r, g, b]) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
                                       return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
          const out = [];
          for (const g of document.querySelectorAll('.overview g.node')) {
            const shape = g.querySelector('polygon, ellipse, path'), text = g.querySelector('text');
            if (!shape || !text) continue;
            const ts = getComputedStyle(text), back = getComputedStyle(shape).fill;
            if (!back.startsWith('rgb')) continue;
            const a = lum(rgb(ts.fill)), b = lum(rgb(back));
            out.push([text.textContent, ts.stroke, parseFloat(ts.strokeWidth), (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)]);
          }
          return out; })()""")
        self.assertGreater(len(rows), 10)
        for label, stroke, width, contrast in rows:
            self.assertTrue(stroke == "none" or width == 0, f"{label}: outlined ({stroke})")
            self.assertGreaterEqual(contrast, 3.0, f"{label}: contrast {contrast:.2f}")

    def test_overview_addresses_the_unrolled_view(self):
        p = self.page
        p.evaluate("document.getElementById('tab-overview').click()")
        self.assertTrue(p.evaluate("getComputedStyle(document.querySelector('.overview')).display === 'block'"))
        ids = p.evaluate("[...document.querySelectorAll('.overview g[id^=\"ov-\"]')].map(g => g.id)")
        self.assertIn("ov-c:layer0/fwd", ids)
        node = next(x for x in ids if x.startswith("ov-n"))
        i = int(node[4:])
        p.evaluate(f"document.getElementById('{node}').querySelector('*').dispatchEvent(new MouseEvent('click', {{bubbles: true}}))")
        p.evaluate("new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)))")
        self.assertEqual(p.evaluate("rewind.state.tab"), "unrolled")
        self.assertEqual(p.evaluate("rewind.panes[0].traced.node"), i)
        self.assertEqual(p.evaluate(f"rewind.rep(0, {i})"), f"n{i}")


class OtherPages(unittest.TestCase):
    def test_first_nan_is_found(self):
        p = open_page("nan.html")
        first = REF["nan"]["first_bad"]
        self.assertGreaterEqual(first, 0)
        p.evaluate("document.getElementById('bad').click()")
        p.evaluate("new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)))")
        self.assertEqual(p.evaluate("rewind.panes[0].traced.node"), first)
        self.assertEqual(p.evaluate(f"rewind.rep(0, {first})"), f"n{first}")
        self.assertIn("NaN/Inf", p.evaluate("document.getElementById('legend').textContent"))
        self.assertEqual(p.errors(), [])

    def test_compare_panes_are_synchronised_and_outline_differences(self):
        p = open_page("compare.html", 1600, 850)
        ref = REF["compare"]
        self.assertEqual(p.evaluate("rewind.panes.map(q => q.n)"), ref["n"])
        self.assertEqual(p.evaluate("rewind.data.compare.differ[0]"), ref["differ"])
        self.assertGreater(len(ref["differ"]), 0)
        self.assertEqual(p.evaluate("document.querySelectorAll('.pane').length"), 2)
        p.key("ArrowRight")
        p.evaluate("new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)))")
        self.assertEqual(p.evaluate("rewind.openSteps(0)"), p.evaluate("rewind.openSteps(1)"))
        self.assertEqual(p.evaluate("document.querySelector('#pane-0 .scene').getAttribute('transform')"),
                         p.evaluate("document.querySelector('#pane-1 .scene').getAttribute('transform')"))
        # Shown (its step opened on both sides, the view on it), the op is outlined in both panes.
        p.evaluate(f"rewind.focusNode(0, {ref['differ'][0]}); rewind.act('focus', () => null)")
        self.assertGreater(p.evaluate("document.querySelectorAll('#pane-0 .differ').length"), 0)
        self.assertGreater(p.evaluate("document.querySelectorAll('#pane-1 .differ').length"), 0)
        # Tracing on one side traces the matching op on the other.
        i = ref["differ"][0]
        p.evaluate(f"rewind.trace(0, {i}); rewind.act('trace', () => null)")
        j = p.evaluate(f"rewind.data.compare.match[{i}]")
        self.assertEqual(p.evaluate("rewind.panes[1].traced.node"), j)
        p.screenshot(page_path("compare.png"))
        self.assertEqual(p.errors(), [])

    def test_custom_and_file_cells_get_the_same_page(self):
        for name, args, gate in [
            ("mgu.html", ["--cell", "mgu"], "f"),
            ("ugrnn.html", ["--cell-file", os.path.join(ARGS.examples, "cells", "ugrnn.cell")], None),
        ]:
            subprocess.run([ARGS.rewind, "graph", *args, "--steps", "8", "--layers", "2", "--html",
                            page_path(name)], check=True, stdout=subprocess.DEVNULL)
            p = open_page(name)
            self.assertGreaterEqual(p.evaluate("rewind.panes[0].templates.length"), 1)
            self.assertEqual(len(p.evaluate("rewind.panes[0].rows")), 2)
            gates = p.evaluate("[...new Set(rewind.panes[0].templates.flatMap(t => t.relPath))].filter(Boolean)")
            self.assertGreater(len(gates), 0, name)
            if gate:
                self.assertIn(gate, gates)
            r = p.evaluate(f"rewind.search('layer1/fwd/t3/{gates[0]}/**')")
            self.assertGreater(r["hits"], 0)
            self.assertEqual(p.errors(), [])

    def test_500_steps_of_a_2_layer_bidirectional_lstm(self):
        p = open_page("big.html")
        ref = REF["big"]
        self.assertEqual(p.evaluate("rewind.panes[0].n"), ref["n"])
        self.assertGreater(ref["n"], 30000)
        for k in range(1, 21):
            timed(p, "window (500 steps)", f"rewind.setWindow({k})")
        self.assertEqual(sorted({s.rsplit('/', 1)[1] for s in p.evaluate("rewind.openSteps(0)")}), ["t20", "t21", "t22"])
        for probe in ref["probes"]:
            timed(p, "trace (500 steps)", f"rewind.trace(0, {probe['node']})", "restyle")
            self.assertEqual(p.evaluate("rewind.traceNodes(0)"), probe["traced"], f"node {probe['node']}")
        timed(p, "search (500 steps)", "rewind.search('layer1/bwd/t42/**')")
        self.assertEqual(p.evaluate("rewind.panes[0].hits.length"), p.evaluate("rewind.panes[0].hits.filter(i => rewind.rep(0, i) === 'n' + i).length"))
        p.screenshot(page_path("big.png"))
        self.assertEqual(p.errors(), [])

    def test_the_command_writes_the_same_page(self):
        subprocess.run([ARGS.rewind, "graph", "--cell", "lstm", "--layers", "2", "--bidirectional",
                        "--steps", "30", "--html", page_path("cli.html")], check=True,
                       stdout=subprocess.DEVNULL)
        p = open_page("cli.html")
        self.assertEqual(len(p.evaluate("rewind.panes[0].rows")), 6)
        self.assertEqual(p.errors(), [])


def main():
    global ARGS, REF, BROWSER
    parser = argparse.ArgumentParser()
    parser.add_argument("--make-pages", required=True)
    parser.add_argument("--rewind", required=True)
    parser.add_argument("--examples", required=True)
    parser.add_argument("--out", required=True)
    ARGS, rest = parser.parse_known_args()
    if not cdp.find_chromium():
        print("browser_page: skipped: chromium is not installed (tools/setup --browser installs it)")
        return 77
    os.makedirs(ARGS.out, exist_ok=True)
    subprocess.run([ARGS.make_pages, ARGS.out], check=True)
    with open(page_path("reference.json")) as f:
        REF = json.load(f)
    with cdp.Browser() as browser:
        BROWSER = browser
        result = unittest.main(argv=[sys.argv[0], *rest, "-v"], exit=False).result
    print("timings, ms (median / max over the runs in this suite; not asserted):")
    for name, v in sorted(TIMES.items()):
        print(f"  {name:24s} n={len(v):3d} median {statistics.median(v):7.1f}  max {max(v):7.1f}")
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
