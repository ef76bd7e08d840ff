"""The Markdown twin of the report: same content as the HTML, with PNGs written beside it."""

from __future__ import annotations

from metaxlm.report import MARKER
from metaxlm.report import tables as T
from metaxlm.report.plots import Figure
from metaxlm.report.summary import Summary
from metaxlm.report.verdict import CLAIMS


def _esc(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def table(t: T.Table) -> str:
    out = ["| " + " | ".join(_esc(h) for h in t.header) + " |",
           "|" + "|".join("---" for _ in t.header) + "|"]
    out += ["| " + " | ".join(_esc(c) for c in row) + " |" for row in t.rows]
    if t.note:
        out += ["", f"_{t.note}_"]
    return "\n".join(out)


def sections(s: Summary, figures: list[Figure], fig_paths: dict[str, str]) -> list[tuple[str, str]]:
    """(heading, body) pairs; ``fig_paths`` maps a figure name to its relative PNG path."""
    figs = {f.name: f for f in figures}

    def fig(names) -> str:
        parts = []
        for n in names:
            f = figs.get(n)
            if f is not None:
                parts.append(f"![{f.title}]({fig_paths[n]})\n\n_{f.caption}_")
        return "\n\n".join(parts)

    out = [("What this shows", "\n".join(f"- {x}" for x in s.what_this_shows))]
    body = table(T.headline(s))
    if s.units:
        body += "\n\n" + " ".join(s.units)
    ps = T.per_seed(s)
    if ps.rows:
        body += ("\n\n<details><summary>Per-seed values behind every interval</summary>\n\n" + table(ps)
                 + "\n\n</details>")
    out.append(("Headline: did meta-pretraining help?", body))
    con = T.contrasts(s)
    if con is not None:
        out.append(("Regime contrasts", table(con)))
    stmts = []
    for claim, title in CLAIMS.items():
        lines = s.claim_statements.get(claim) or []
        stmts.append(f"**{title}.** " + (" ".join(lines) if lines else "not run."))
    out.append(("Against the controls", "\n\n".join(stmts) + "\n\n" + table(T.controls(s))))
    for task in s.per_language:
        out.append((f"Per-language transfer: {task}", table(T.per_language(s, task))))
    if not s.per_language:
        out.append(("Per-language transfer", "not run"))
    groups = [("Training curves", ["training-loss", "validation-loss"]),
              ("Transfer gap vs English score", ["gap-vs-english"]),
              ("Retrieval by layer", ["retrieval-by-layer"]),
              ("Alignment: CKA", ["cka-by-layer"] + [f.name for f in figures if f.name.startswith("cka-pairs")]),
              ("Metrics over pretraining", ["curves"])]
    for title, names in groups:
        out.append((title, fig(names) or "not run"))
    others = T.provenance(s, training=False)
    prov = (("### Comparison steps\n\n" + table(T.steps(s)) + "\n\n" if s.steps else "") +
            "### Training runs\n\n" + table(T.provenance(s, training=True)) +
            f"\n\n<details><summary>Evaluation, probe and comparison runs ({len(others.rows)})</summary>\n\n"
            + table(others) + "\n\n</details>\n\n### Environment and data\n\n" + table(T.environment(s)))
    configs = [p for p in s.provenance if p["config"]]
    if configs:
        prov += "\n\n<details><summary>Configs (config.yaml of every run)</summary>\n\n"
        for p in configs:
            prov += f"**{p['run']}**\n\n```yaml\n{p['config'].rstrip()}\n```\n\n"
        prov += "</details>"
    out.append(("Provenance", prov))
    if s.problems:
        out.append(("Problems while reading", "\n".join(f"- {_esc(p)}" for p in s.problems)))
    if s.notes:
        out.append(("Notes recorded with the results", "\n".join(f"- {_esc(p)}" for p in s.notes)))
    return out


def render(s: Summary, figures: list[Figure], fig_paths: dict[str, str]) -> str:
    head = [MARKER, f"# {s.title}", "",
            f"Generated {s.generated_at} from {', '.join(f'`{r}`' for r in s.roots)}. "
            "Every number is read from recorded result files; nothing is recomputed.", ""]
    for c in s.comparisons:
        head += [T.comparison_line(c), ""]
    for h, body in sections(s, figures, fig_paths):
        head += [f"## {h}", "", body, ""]
    return "\n".join(head)
