"""Result tables: gather result.json files, average seeds of identical settings, published beside ours.

A row is one setting: runs are averaged only when every setting but the seed is the same (and
execution-only ones such as threads). Runs of the same method/dataset/way/shot with other settings
are rows of their own, whose ``settings`` column names the values that set them apart. With
several seeds, the CI is computed from the seeds' spread (1.96 x sample std / sqrt(seeds)); with
one seed it is that run's own CI. Rows of data that differ from the published protocol's (e.g.
the small Omniglot sets) get no published number. A user's method (result.json's
``user_method``) is marked "NAME (user method)" in every table and never shown beside a
published number.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from fsbench.catalog import BUILTIN_METHODS, CLASSIFIER_METHODS
from fsbench.published import published
from fsbench.resolve import UNUSED
from fsbench.results import find_results
from fsbench.settings import semantic
from fsbench.table_specs import TableSpec

KEYS = ["method", "dataset", "way", "shot"]
SEED_CI = "1.96*std/sqrt(seeds) over seed means"
USER_MARK = " (user method)"


def method_label(result: dict) -> str:
    """A result's method as the tables show it: a user's method is marked."""
    name = str(result.get("method"))
    return name + USER_MARK if result.get("user_method") else name


def _key(result: dict) -> tuple:
    if result.get("method") in CLASSIFIER_METHODS and not result.get("user_method"):
        return (result["method"], result["dataset"], None, None)
    return (method_label(result), *(result.get(k) for k in KEYS[1:]))


def _signature(result: dict) -> str:
    """Everything that must agree for two runs to be seeds of one setting."""
    settings = semantic(result.get("settings") or {})
    for key in ("seed", *UNUSED.get(str(result.get("method")), ())):  # never read by the method
        settings.pop(key, None)
    return json.dumps(
        {"settings": settings, "label": result.get("dataset_label"), "query": result.get("query")},
        sort_keys=True,
        default=str,
    )


def _published(result: dict, method: str, dataset: str, way, shot) -> float | None:
    if result.get("user_method"):  # never beside a built-in method's published number
        return None
    if "published_percent" in result:  # written by fsbench: None when not comparable
        return result["published_percent"]
    return published(method, dataset, way, shot)


def _differing(signatures: list[str]) -> list[str]:
    """For each signature, 'key=value' of the settings in which the signatures disagree."""
    return differing_settings([json.loads(s)["settings"] for s in signatures])


def differing_settings(parsed: list[dict]) -> list[str]:
    """For each settings dict, 'key=value' of the keys in which the dicts disagree."""
    keys = sorted({k for p in parsed for k in p})
    diff = [k for k in keys if len({json.dumps(p.get(k), sort_keys=True) for p in parsed}) > 1]
    return [", ".join(f"{k}={p.get(k)}" for k in diff) for p in parsed]


def _deviations(run: dict) -> str:
    devs = run.get("deviations") or []
    return ", ".join(f"{d['setting']}={d['value']}" for d in devs) if devs else ""


def summarize(runs: list[dict]) -> dict:
    """One row of seeds of one setting: mean, CI (over seeds when several), published, ..."""
    runs = sorted(runs, key=lambda r: r.get("seed", 0))
    first = runs[0]
    method, dataset, way, shot = _key(first)  # method: marked when it is a user's
    accs = [100.0 * r["accuracy"] for r in runs]
    n = len(accs)
    mean = sum(accs) / n
    std = math.sqrt(sum((a - mean) ** 2 for a in accs) / (n - 1)) if n > 1 else 0.0
    ci = 1.96 * std / math.sqrt(n) if n > 1 else 100.0 * first["ci95"]
    pub = _published(first, method, dataset, way, shot)
    return {
        "method": method,
        "dataset": first.get("dataset_label") or dataset,
        "way": way if way is not None else first.get("way"),
        "shot": shot,
        "ours_%": round(mean, 2),
        "ci95_%": round(ci, 2),
        "seed_std_%": round(std, 2),
        "runs": n,
        "seeds": " ".join(str(r.get("seed")) for r in runs),
        "published_%": pub,
        "diff": round(mean - pub, 2) if pub is not None else None,
        "iterations": first.get("iterations"),
        "episodes": first.get("episodes"),
        "settings": "",
        "vs_preset": _deviations(first),
        "ci95_method": SEED_CI if n > 1 else first.get("ci95_method", ""),
        "device": first.get("device"),
        "train_s": round(sum(r.get("train_seconds", 0.0) for r in runs), 1),
        "_dataset": dataset,
    }


def results_frame(results: list[dict]) -> pd.DataFrame:
    """One row per distinct setting, seeds averaged; percentages."""
    groups: dict[tuple, dict[str, list[dict]]] = {}
    for r in results:
        groups.setdefault(_key(r), {}).setdefault(_signature(r), []).append(r)
    rows = []
    for by_settings in groups.values():
        labels = _differing(list(by_settings)) if len(by_settings) > 1 else [""]
        for label, runs in zip(labels, by_settings.values(), strict=True):
            rows.append({**summarize(runs), "settings": label})
    df = pd.DataFrame(rows)
    if not df.empty:
        df = df.sort_values(
            ["method", "dataset", "way", "shot", "settings"], na_position="first"
        ).reset_index(drop=True)
        if not df["settings"].astype(bool).any():
            df = df.drop(columns=["settings"])
    return df


def shown(df: pd.DataFrame) -> pd.DataFrame:
    """The frame without its internal columns (for printing and files)."""
    return df.drop(columns=[c for c in df.columns if c.startswith("_")])


def load_results(dirs: list[Path]) -> list[dict]:
    """The parsed result.json files under the directories, recursively."""
    return [
        r for _, r in find_results([Path(d) for d in dirs]) if "method" in r and "accuracy" in r
    ]


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub markdown table (no tabulate dependency); None/NaN/'' print as '-'."""
    df = shown(df)
    if df.empty:
        return "(no results)"

    def fmt(v) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)) or v == "":
            return "-"
        if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
            return f"{v:g}"
        return str(v)

    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(" --- " for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(fmt(v) for v in row) + " |")
    return "\n".join(lines)


DEVIATION_MARK = "*"


def match_cells(spec: TableSpec, results: list[dict]) -> dict[str, list[dict]]:
    """The results of each cell of ``spec`` (by method, dataset and the cell's own settings)."""
    out: dict[str, list[dict]] = {}
    for cell in spec.cells:
        for r in results:
            settings = r.get("settings") or {}
            if (r.get("method"), r.get("dataset")) != (cell.method, cell.dataset):
                continue
            if bool(r.get("user_method")) != (cell.method not in BUILTIN_METHODS):
                continue  # a user's method under a built-in name is not the built-in's cell
            own = {k: v for k, v in cell.overrides.items() if k != "pretrained"}
            if cell.method not in CLASSIFIER_METHODS:
                own.setdefault("way", r.get("way"))
            if all(settings.get(k, r.get(k)) == v for k, v in own.items()):
                out.setdefault(cell.name, []).append(r)
    return out


def pivot_frame(spec: TableSpec, by_cell: dict[str, list[dict]]) -> pd.DataFrame:
    """The source table's layout, each cell 'ours ± ci (published)' from that cell's runs.

    A cell whose run differs from the preset is marked with '*'; a row whose data differ from the
    published protocol's is labelled with what it is and shows no published number.
    """
    rows = list(dict.fromkeys(c.row for c in spec.cells))
    cols = list(dict.fromkeys(c.column for c in spec.cells))
    grid = pd.DataFrame("-", index=rows, columns=cols)
    labels = {r: r for r in rows}
    for cell in spec.cells:
        runs = by_cell.get(cell.name) or []
        pub = published(
            cell.method, cell.dataset, cell.overrides.get("way"), cell.overrides.get("shot")
        )
        if not runs:
            grid.loc[cell.row, cell.column] = f"- ({pub:g})" if pub is not None else "-"
            continue
        r = summarize(runs)
        if spec.rows_are == "dataset" and r["dataset"] != cell.dataset:
            labels[cell.row] = r["dataset"]  # a label for data that is not the published set
            if cell.method not in BUILTIN_METHODS:  # a user's row (reproduce --with)
                labels[cell.row] += f", {r['method']}"
        pub = r["published_%"]
        mark = DEVIATION_MARK if r["vs_preset"] else ""
        text = f"{r['ours_%']:.1f} ± {r['ci95_%']:.1f}{mark}"
        if pub is not None and not (isinstance(pub, float) and math.isnan(pub)):
            text += f" ({pub:g})"
        grid.loc[cell.row, cell.column] = text
    grid.index = [labels[r] for r in rows]
    grid.index.name = spec.rows_are
    return grid.reset_index()


def write_tables(df: pd.DataFrame, out_dir: Path, stem: str = "table") -> tuple[Path, Path]:
    """``stem.md`` and ``stem.csv`` in out_dir."""
    from fsbench.results import atomic_write_bytes

    df = shown(df)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md, csv = out_dir / f"{stem}.md", out_dir / f"{stem}.csv"
    atomic_write_bytes(md, (to_markdown(df) + "\n").encode())
    atomic_write_bytes(csv, df.to_csv(index=False).encode())
    return md, csv
