"""The report as one self-contained HTML file: inline CSS, figures embedded as base64 PNG, no
external ``src`` or ``href``."""

from __future__ import annotations

import base64
import html as _html

from metaxlm.report import MARKER
from metaxlm.report import tables as T
from metaxlm.report import verdict as V
from metaxlm.report.plots import Figure
from metaxlm.report.summary import Summary

CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Helvetica,Arial,sans-serif;margin:0;
  background:#f6f7f9;color:#1d2228;font-size:14px;line-height:1.45}
main{max-width:1200px;margin:0 auto;padding:24px 28px 60px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 10px;border-bottom:1px solid #d8dde3;
  padding-bottom:4px}h3{font-size:15px;margin:16px 0 6px}
.sub{color:#5b6570;font-size:12.5px}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:16px 0}
.card{flex:1 1 250px;background:#fff;border:1px solid #d8dde3;border-radius:8px;padding:10px 14px;
  border-left:6px solid #9aa4ae}
.card h3{margin:0 0 4px}.card ul{margin:4px 0 0;padding-left:16px}.card .v{font-size:17px;font-weight:600}
.card.v-better{border-left-color:#1a7f37}.card.v-worse{border-left-color:#c62828}
.card.v-below-control{border-left-color:#c77700}
.card.v-no-significant-difference{border-left-color:#6e7781}
table{border-collapse:collapse;background:#fff;margin:6px 0;width:100%;font-size:12.5px}
th,td{border:1px solid #d8dde3;padding:4px 7px;text-align:left;vertical-align:top}
th{background:#eef1f4;font-weight:600}
td.num{font-variant-numeric:tabular-nums;white-space:nowrap}
td.num.wrap{white-space:normal}
td.small{font-size:11.5px;color:#333}
td.ctrl{background:#fafafa;color:#444}
td.beats{background:#e7f5ea}td.below{background:#fdecea}
td.v-better{background:#dff3e3;font-weight:600;color:#116329}
td.v-worse{background:#fbe1e1;font-weight:600;color:#a40e26}
td.v-below-control{background:#fff1d6;font-weight:600;color:#8a5300}
td.v-no-significant-difference{color:#57606a}
td.v-not-run,td.v-not-enough-seeds{color:#8c959f;font-style:italic}
td.num.v-better,td.num.v-worse{font-weight:400}
.note{font-size:12px;color:#57606a;margin:2px 0 8px}
figure{background:#fff;border:1px solid #d8dde3;border-radius:6px;margin:10px 0;padding:8px;display:block}
figure img{max-width:100%;height:auto;display:block;margin:0 auto}
figcaption{font-size:12px;color:#57606a;margin-top:4px}
.notrun{color:#8c959f;font-style:italic}
ul.what li{margin:3px 0}
details{background:#fff;border:1px solid #d8dde3;border-radius:6px;padding:6px 10px;margin:8px 0}
pre{font-size:11.5px;background:#f3f4f6;padding:6px 8px;overflow-x:auto}
code{background:#eef1f4;padding:0 3px;border-radius:3px}
"""


def _e(x) -> str:
    return _html.escape(str(x), quote=True)


def _inline(text: str) -> str:
    """Escape, then turn `code` spans into <code>."""
    parts = _e(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def table(t: T.Table) -> str:
    out = ["<table><thead><tr>" + "".join(f"<th>{_inline(h)}</th>" for h in t.header) + "</tr></thead><tbody>"]
    for i, row in enumerate(t.rows):
        cls = t.classes[i] if i < len(t.classes) else []
        tds = []
        for j, c in enumerate(row):
            k = cls[j] if j < len(cls) else ""
            if c == V.NOT_RUN:
                k = (k + " notrun").strip()
            tds.append(f'<td class="{_e(k)}">{_inline(c)}</td>' if k else f"<td>{_inline(c)}</td>")
        out.append("<tr>" + "".join(tds) + "</tr>")
    out.append("</tbody></table>")
    if t.note:
        out.append(f'<p class="note">{_inline(t.note)}</p>')
    return "\n".join(out)


def _figure(f: Figure) -> str:
    data = base64.b64encode(f.png).decode("ascii")
    return (f'<figure><img alt="{_e(f.title)}" src="data:image/png;base64,{data}">'
            f"<figcaption><b>{_e(f.title)}.</b> {_inline(f.caption)}</figcaption></figure>")


def _cards(s: Summary) -> str:
    out = ['<div class="cards">']
    for claim, title in V.CLAIMS.items():
        rows = [r for r in s.rows if r.metric.claim == claim and r.verdict.verdict != V.NOT_RUN]
        if rows:
            v = rows[0].verdict.verdict
            lines = "".join(f"<li><b>{_e(r.verdict.verdict)}</b>: {_inline(r.metric.label)}, meta − single "
                            f"{_e(V.fmt_delta(r.verdict.comparison))}</li>" for r in rows)
            body = f'<div class="v">{_e(v)}</div><ul class="sub">{lines}</ul>'
        else:
            v = V.NOT_RUN
            body = '<div class="v notrun">not run</div>'
        out.append(f'<div class="card {_e("v-" + v.replace(" ", "-"))}"><h3>{_e(title)}</h3>{body}</div>')
    out.append("</div>")
    return "\n".join(out)


def render(s: Summary, figures: list[Figure]) -> str:
    figs = {f.name: f for f in figures}

    def fig(names) -> str:
        got = [_figure(figs[n]) for n in names if n in figs]
        return "\n".join(got) if got else '<p class="notrun">not run</p>'

    b: list[str] = []
    b.append(f"<h1>{_e(s.title)}</h1>")
    roots = ", ".join(f"<code>{_e(r)}</code>" for r in s.roots)
    b.append(f'<p class="sub">Generated {_e(s.generated_at)} from {roots}. '
             "Every number is read from recorded result files; nothing is recomputed.</p>")
    for c in s.comparisons:
        b.append(f'<p class="sub">{_inline(T.comparison_line(c))}</p>')
    b.append(_cards(s))
    b.append("<h2>What this shows</h2><ul class=\"what\">" +
             "".join(f"<li>{_inline(x)}</li>" for x in s.what_this_shows) + "</ul>")
    b.append("<h2>Headline: did meta-pretraining help?</h2>")
    b.append(table(T.headline(s)))
    for u in s.units:
        b.append(f'<p class="note">{_inline(u)}</p>')
    con = T.contrasts(s)
    if con is not None:
        b.append("<h2>Regime contrasts</h2>")
        b.append(table(con))
    ps = T.per_seed(s)
    if ps.rows:
        b.append(f"<details><summary>Per-seed values behind every interval ({len(ps.rows)} rows)</summary>"
                 f"{table(ps)}</details>")
    b.append("<h2>Against the controls</h2>")
    for claim, title in V.CLAIMS.items():
        lines = s.claim_statements.get(claim) or []
        b.append(f"<p><b>{_e(title)}.</b> " + (" ".join(_inline(x) for x in lines) if lines
                                               else '<span class="notrun">not run.</span>') + "</p>")
    b.append(table(T.controls(s)))
    if s.per_language:
        for task in s.per_language:
            b.append(f"<h2>Per-language transfer: {_e(task)}</h2>")
            b.append(table(T.per_language(s, task)))
    else:
        b.append('<h2>Per-language transfer</h2><p class="notrun">not run</p>')
    b.append("<h2>Training curves</h2>" + fig(["training-loss", "validation-loss"]))
    b.append("<h2>Transfer gap vs English score</h2>" + fig(["gap-vs-english"]))
    b.append("<h2>Retrieval by layer</h2>" + fig(["retrieval-by-layer"]))
    b.append("<h2>Alignment: CKA</h2>" + fig(["cka-by-layer"] + [f.name for f in figures
                                                               if f.name.startswith("cka-pairs")]))
    b.append("<h2>Metrics over pretraining</h2>" + fig(["curves"]))
    b.append("<h2>Provenance</h2>")
    if s.steps:
        st = T.steps(s)
        b.append(f"<details><summary>Comparison steps ({len(st.rows) - 1}, total {_e(st.rows[-1][2])})</summary>"
                 f"{table(st)}</details>")
    b.append("<h3>Training runs</h3>")
    b.append(table(T.provenance(s, training=True)))
    others = T.provenance(s, training=False)
    b.append(f"<details><summary>Evaluation, probe and comparison runs ({len(others.rows)})</summary>"
             f"{table(others)}</details>")
    b.append("<h3>Environment and data</h3>")
    b.append(table(T.environment(s)))
    configs = [p for p in s.provenance if p["config"]]
    if configs:
        inner = "".join(f"<h3>{_e(p['run'])}</h3><pre>{_e(p['config'])}</pre>" for p in configs)
        b.append(f"<details><summary>Configs (config.yaml of every run)</summary>{inner}</details>")
    if s.problems:
        b.append("<h2>Problems while reading</h2><ul>" + "".join(f"<li>{_e(p)}</li>" for p in s.problems) + "</ul>")
    if s.notes:
        b.append("<h2>Notes recorded with the results</h2><ul>" + "".join(f"<li>{_e(p)}</li>" for p in s.notes)
                 + "</ul>")
    return (f"<!DOCTYPE html>\n{MARKER}\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{_e(s.title)}</title>"
            f"<style>{CSS}</style></head><body><main>\n" + "\n".join(b) + "\n</main></body></html>\n")
