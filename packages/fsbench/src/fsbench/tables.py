"""Result tables: gather result.json files, average over seeds, put the published number beside ours."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from fsbench.presets import CLASSIFIER_METHODS, TableSpec, published
from fsbench.results import find_results

KEYS = ["method", "dataset", "way", "shot"]


def _key(result: dict) -> tuple:
    if result.get("method") in CLASSIFIER_METHODS:
        return (result["method"], result["dataset"], None, None)
    return tuple(result.get(k) for k in KEYS)


def results_frame(results: list[dict]) -> pd.DataFrame:
    """One row per setting (method, dataset, way, shot), seeds averaged; percentages."""
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault(_key(r), []).append(r)
    rows = []
    for key, runs in groups.items():
        method, dataset, way, shot = key
        accs = [100.0 * r["accuracy"] for r in runs]
        mean = sum(accs) / len(accs)
        std = (
            math.sqrt(sum((a - mean) ** 2 for a in accs) / (len(accs) - 1))
            if len(accs) > 1
            else 0.0
        )
        ci = sum(100.0 * r["ci95"] for r in runs) / len(runs)
        pub = runs[0].get("published_percent")
        if pub is None:
            pub = published(method, dataset, way, shot)
        rows.append(
            {
                "method": method,
                "dataset": dataset,
                "way": way if way is not None else runs[0].get("way"),
                "shot": shot,
                "ours_%": round(mean, 2),
                "ci95_%": round(ci, 2),
                "seed_std_%": round(std, 2),
                "runs": len(runs),
                "seeds": " ".join(
                    str(r.get("seed")) for r in sorted(runs, key=lambda r: r.get("seed", 0))
                ),
                "published_%": pub,
                "diff": round(mean - pub, 2) if pub is not None else None,
                "iterations": runs[0].get("iterations"),
                "episodes": runs[0].get("episodes"),
                "ci95_method": runs[0].get("ci95_method", ""),
                "device": runs[0].get("device"),
                "train_s": round(sum(r.get("train_seconds", 0.0) for r in runs), 1),
            }
        )
    df = pd.DataFrame(rows)
    if not df.empty:
        df = df.sort_values(["method", "dataset", "way", "shot"], na_position="first").reset_index(
            drop=True
        )
    return df


def load_results(dirs: list[Path]) -> list[dict]:
    """The parsed result.json files under the directories, recursively."""
    return [
        r for _, r in find_results([Path(d) for d in dirs]) if "method" in r and "accuracy" in r
    ]


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub markdown table (no tabulate dependency); None/NaN print as '-'."""
    if df.empty:
        return "(no results)"

    def fmt(v) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "-"
        if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
            return f"{v:g}"
        return str(v)

    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(" --- " for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(fmt(v) for v in row) + " |")
    return "\n".join(lines)


def pivot_frame(spec: TableSpec, df: pd.DataFrame) -> pd.DataFrame:
    """The source table's layout (rows x columns of its cells), each cell 'ours ± ci (published)'."""
    rows = list(dict.fromkeys(c.row for c in spec.cells))
    cols = list(dict.fromkeys(c.column for c in spec.cells))
    grid = pd.DataFrame("-", index=rows, columns=cols)
    grid.index.name = "dataset"
    for cell in spec.cells:
        way = cell.overrides.get("way")
        shot = cell.overrides.get("shot")
        match = (
            df[(df["method"] == cell.method) & (df["dataset"] == cell.dataset)]
            if not df.empty
            else df
        )
        if cell.method not in CLASSIFIER_METHODS and not match.empty:
            match = match[(match["way"] == way) & (match["shot"] == shot)]
        pub = published(cell.method, cell.dataset, way, shot)
        pub_s = f"{pub:g}" if pub is not None else "-"
        if match.empty:
            grid.loc[cell.row, cell.column] = f"- ({pub_s})"
        else:
            r = match.iloc[0]
            grid.loc[cell.row, cell.column] = f"{r['ours_%']:.1f} ± {r['ci95_%']:.1f} ({pub_s})"
    return grid.reset_index()


def write_tables(df: pd.DataFrame, out_dir: Path, stem: str = "table") -> tuple[Path, Path]:
    """``stem.md`` and ``stem.csv`` in out_dir."""
    from fsbench.results import atomic_write_bytes

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md, csv = out_dir / f"{stem}.md", out_dir / f"{stem}.csv"
    atomic_write_bytes(md, (to_markdown(df) + "\n").encode())
    atomic_write_bytes(csv, df.to_csv(index=False).encode())
    return md, csv
