"""One self-contained HTML page of result folders (``fsbench report``), to share a reproduction.

The page holds the result table (ours beside the published numbers, CIs, ``*`` where a run
differs from its preset; built by fsbench.tables), the source tables' layout for every table
whose cells are among the runs, and one section per run: its numbers, training curve (curve.png,
or drawn again from metrics.jsonl), deviations, protocol notes, versions, device and git commit.
Nothing is fetched: CSS is inline and images are data URIs, so the file opens offline, by mail,
on a phone (responsive layout; wide tables scroll sideways in their own box).
"""

from __future__ import annotations

import base64
import html
import math
import os
import tempfile
from pathlib import Path

from fsbench.errors import FsbenchError
from fsbench.results import (
    CURVE,
    METRICS,
    RESULT,
    atomic_write_bytes,
    find_results,
    plot_curve,
    read_metrics,
)

CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; padding: 1rem; background: #fff; color: #1b1f24; line-height: 1.45;
  font: 16px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", sans-serif; }
main { max-width: 1100px; margin: 0 auto; }
h1 { font-size: 1.6rem; margin: .2rem 0 .4rem; }
h2 { font-size: 1.25rem; margin: 1.6rem 0 .4rem; border-bottom: 1px solid #d0d7de; }
h3 { font-size: 1.05rem; margin: 0 0 .4rem; }
p.lead, p.note, figcaption { color: #57606a; }
p.note { font-size: .9rem; margin: .2rem 0 .8rem; }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; border: 1px solid #d0d7de;
  border-radius: 6px; margin: .4rem 0 .6rem; }
table { border-collapse: collapse; font-size: .9rem; min-width: 100%; }
p.caption { font-weight: 600; margin: .8rem 0 .2rem; }
th, td { padding: .35rem .6rem; border-bottom: 1px solid #eaeef2; text-align: left;
  white-space: nowrap; vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:last-child td { border-bottom: 0; }
.mark { color: #bc4c00; font-weight: 700; }
section.run { border: 1px solid #d0d7de; border-radius: 8px; padding: .8rem 1rem; margin: 1rem 0; }
.acc { font-size: 1.15rem; font-weight: 600; margin: .1rem 0 .5rem; }
dl.facts { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: .15rem 1rem;
  margin: .4rem 0 .6rem; font-size: .9rem; }
dl.facts dt { color: #57606a; }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
figure { margin: .5rem 0; }
img { max-width: 100%; height: auto; display: block; }
ul { margin: .2rem 0 .6rem; padding-left: 1.2rem; }
li { overflow-wrap: anywhere; }
code { font-size: .85em; background: #f6f8fa; padding: 0 .2em; border-radius: 3px; }
@media (max-width: 600px) {
  body { padding: .6rem; font-size: 15px; }
  h1 { font-size: 1.35rem; }
  section.run { padding: .6rem .7rem; }
  dl.facts { gap: .15rem .6rem; }
  th, td { padding: .3rem .45rem; }
  th, td:nth-child(-n+2) { white-space: normal; }  /* names wrap; numbers and notes stay */
}
"""


def esc(value) -> str:
    """Text for HTML: escaped; None and NaN as '-'."""
    if missing(value) or value == "":
        return "-"
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # pandas turns a column with gaps (shot) into floats
    return html.escape(str(value))


def pct(x: float | None) -> str:
    """A fraction as a percentage with two decimals."""
    return "-" if x is None else f"{100 * x:.2f}"


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def curve_png(run_dir: Path, result: dict) -> bytes | None:
    """The run's curve.png, or the curve drawn again from metrics.jsonl; None without either."""
    curve = run_dir / CURVE
    if curve.is_file():
        return curve.read_bytes()
    metrics = read_metrics(run_dir / METRICS)
    if not metrics:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / CURVE
        plot_curve(metrics, path, f"{result.get('method')} on {label(result)}")
        return path.read_bytes()


def label(result: dict) -> str:
    return str(result.get("dataset_label") or result.get("dataset"))


def run_title(result: dict) -> str:
    """'protonet on DoubleMNIST, 5-way 1-shot, seed 0'."""
    text = f"{result.get('method')} on {label(result)}"
    if result.get("shot") is not None:
        text += f", {result.get('way')}-way {result.get('shot')}-shot"
    return text + f", seed {result.get('seed')}"


def table_html(
    head: list[str], rows: list[list[str]], caption: str = "", numeric: tuple[int, ...] = ()
) -> str:
    """A table in its own horizontally scrolling box; cells are HTML already (escaped); the
    ``numeric`` columns are right-aligned."""
    cap = f'<p class="caption">{esc(caption)}</p>' if caption else ""
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return (
        f'{cap}<div class="scroll"><table><thead><tr>{th}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def results_table(results: list[dict]) -> str:
    """The runs as table rows (seeds of one setting averaged), ours beside the published number."""
    from fsbench.tables import DEVIATION_MARK, results_frame

    df = results_frame(results)
    has_settings = "settings" in df.columns
    head = ["method", "dataset", "ours % ± 95% CI", "published %", "diff", "way", "shot"]
    head += ["runs", "seeds", "iterations", "episodes"]
    head += (["settings"] if has_settings else []) + ["vs preset", "device"]
    rows = []
    for r in df.to_dict("records"):
        mark = f'<span class="mark">{DEVIATION_MARK}</span>' if r["vs_preset"] else ""
        diff = r["diff"]
        row = [
            esc(r["method"]),
            esc(r["dataset"]),
            f"{r['ours_%']:.2f} ± {r['ci95_%']:.2f}{mark}",
            "-" if missing(r["published_%"]) else f"{r['published_%']:g}",
            "-" if missing(diff) else f"{diff:+.2f}",
            esc(r["way"]),
            esc(r["shot"]),
            esc(r["runs"]),
            esc(r["seeds"]),
            esc(r["iterations"]),
            esc(r["episodes"]),
        ]
        row += ([esc(r["settings"])] if has_settings else []) + [
            esc(r["vs_preset"]),
            esc(r["device"]),
        ]
        rows.append(row)
    methods = sorted({str(m) for m in df["ci95_method"]}) if not df.empty else []
    note = (
        f'<p class="note"><span class="mark">{DEVIATION_MARK}</span> the run differs from its '
        "preset in the settings under 'vs preset': not the published protocol. CI: "
        f"{esc('; '.join(methods))}. Published numbers from the source papers and "
        "repositories (see each run).</p>"
    )
    return table_html(head, rows, numeric=(2, 3, 4, 5, 6, 7, 9, 10)) + note


def source_tables(results: list[dict]) -> list[str]:
    """The source tables' layout (ours ± CI (published)) for each table with runs among these."""
    from fsbench.table_specs import TABLES
    from fsbench.tables import match_cells, pivot_frame, shown

    out = []
    for spec in TABLES.values():
        by_cell = match_cells(spec, results)
        if not by_cell:
            continue
        grid = shown(pivot_frame(spec, by_cell))
        head = [esc(c) for c in grid.columns]
        rows = [[esc(v) for v in row] for row in grid.itertuples(index=False)]
        caption = f"{spec.name}: {spec.source}, ours ± 95% CI (published), percent"
        out.append(table_html(head, rows, caption))
    return out


def facts(result: dict, run_dir: Path) -> list[tuple[str, str]]:
    """(name, value) pairs of a run for its section."""
    git = result.get("git") or {}
    commit = git.get("commit")
    if commit:
        commit = commit[:12] + (" (uncommitted changes)" if git.get("dirty") else "")
    versions = ", ".join(f"{k} {v}" for k, v in (result.get("versions") or {}).items() if v)
    machine = result.get("machine") or {}
    selection = result.get("selection") or {}
    pub = result.get("published_percent")
    rows = [
        ("folder", str(run_dir)),
        ("published", f"{pub:g} % ({result.get('published_source')})" if pub is not None else None),
        ("CI", result.get("ci95_method")),
        ("iterations", result.get("iterations")),
        ("test episodes", result.get("episodes")),
        ("tested model", selection.get("tested")),
        ("device", result.get("device")),
        ("precision", result.get("precision")),
        ("machine", " ".join(str(v) for v in machine.values() if v) or None),
        ("torch threads", result.get("torch_threads")),
        ("time", f"{result['wall_seconds']:.1f} s" if "wall_seconds" in result else None),
        ("versions", versions or None),
        ("git commit", commit),
        ("finished", result.get("finished_at")),
        ("preset", result.get("preset_source")),
    ]
    rerun = result.get("rerun_of")
    if rerun:
        rows.append(
            (
                "rerun of",
                f"{rerun.get('result')}: "
                + (
                    "bit-equal"
                    if rerun.get("equal")
                    else f"{100 * rerun['difference']:+.2f} points"
                ),
            )
        )
    return [(k, esc(v)) for k, v in rows if v is not None]


def run_section(result: dict, run_dir: Path) -> str:
    """One run: title, accuracy, facts, curve, deviations and protocol notes."""
    parts = [f'<section class="run"><h3>{esc(run_title(result))}</h3>']
    acc = f"{pct(result.get('accuracy'))} % ± {pct(result.get('ci95'))}"
    parts.append(f'<p class="acc">accuracy {esc(acc)}</p>')
    if result.get("not_comparable"):
        parts.append(
            f'<p class="note">Not comparable with the published number: {esc(result["not_comparable"])}</p>'
        )
    dl = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts(result, run_dir))
    parts.append(f'<dl class="facts">{dl}</dl>')
    png = curve_png(run_dir, result)
    if png is not None:
        alt = f"training curves of {run_title(result)}"
        parts.append(
            f'<figure><img src="{data_uri(png)}" alt="{esc(alt)}">'
            "<figcaption>training loss and accuracy against iteration</figcaption></figure>"
        )
    else:
        parts.append('<p class="note">No training curve (an evaluation of a trained run).</p>')
    devs = result.get("deviations") or []
    if devs:
        items = "".join(
            f"<li><code>{esc(d.get('setting'))}</code> {esc(d.get('value'))} "
            f"(preset {esc(d.get('preset'))})</li>"
            for d in devs
        )
        parts.append(
            f'<p><span class="mark">*</span> Differs from the preset in:</p><ul>{items}</ul>'
        )
    else:
        parts.append("<p>Ran the preset's protocol (no deviation).</p>")
    notes = result.get("protocol_notes") or []
    if notes:
        items = "".join(f"<li>{esc(n)}</li>" for n in notes)
        parts.append(
            f"<details><summary>Protocol notes ({len(notes)})</summary><ul>{items}</ul></details>"
        )
    parts.append("</section>")
    return "".join(parts)


def environment_table(found: list[tuple[Path, dict]]) -> str:
    """The distinct versions, devices and git commits of the runs, with how many runs each."""
    counts: dict[tuple[str, str], int] = {}
    for _, r in found:
        git = r.get("git") or {}
        versions = ", ".join(f"{k} {v}" for k, v in (r.get("versions") or {}).items() if v)
        for kind, value in (
            ("versions", versions),
            ("device", r.get("device")),
            (
                "git commit",
                (git.get("commit") or "")[:12] + (" (dirty)" if git.get("dirty") else ""),
            ),
        ):
            key = (kind, str(value) if value else "-")
            counts[key] = counts.get(key, 0) + 1
    rows = [[esc(kind), esc(value), str(n)] for (kind, value), n in counts.items()]
    return table_html(["", "value", "runs"], rows, numeric=(2,))


def collect(dirs: list[Path]) -> list[tuple[Path, dict]]:
    """(run folder, result) of every fsbench result under each folder; one error naming the
    folders that hold none."""
    found: list[tuple[Path, dict]] = []
    empty = []
    for d in dirs:
        mine = [
            (p.parent, r) for p, r in find_results([Path(d)]) if "method" in r and "accuracy" in r
        ]
        if not mine:
            empty.append(str(d))
        found.extend(mine)
    if empty:
        raise FsbenchError(
            f"no {RESULT} of an fsbench run under {', '.join(empty)}: give folders that fsbench "
            "run, pretrain or reproduce wrote"
        )
    return sorted(found, key=lambda item: str(item[0]))


def build_report(dirs: list[Path], title: str | None = None) -> str:
    """The HTML page of every result under ``dirs``."""
    found = collect(dirs)
    results = [r for _, r in found]
    title = title or "fsbench report"
    where = ", ".join(str(d) for d in dirs)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="lead">{len(found)} run(s) from {esc(where)}. Accuracies in percent with '
        "their 95% confidence intervals; published numbers in parentheses or beside ours.</p>",
        "<h2>Results</h2>",
        results_table(results),
    ]
    tables = source_tables(results)
    if tables:
        parts.append("<h2>Source tables</h2>")
        parts.extend(tables)
    parts.append("<h2>Runs</h2>")
    parts.extend(run_section(r, d) for d, r in found)
    parts += [
        "<h2>Versions, devices, commits</h2>",
        environment_table(found),
        "</main></body></html>",
    ]
    return "\n".join(parts) + "\n"


def write_report(
    dirs: list[Path], out: Path, *, overwrite: bool = False, title: str | None = None
) -> Path:
    """Write the page to ``out`` (a .html file; atomically; never over a file without overwrite)."""
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise FsbenchError(f"--out must name an .html file, got {out}")
    if out.exists() and not overwrite:
        raise FsbenchError(f"--out {out} exists; pass --overwrite to replace it")
    page = build_report(dirs, title)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, page.encode())
    return Path(os.path.abspath(out))
