"""The command-line side of few-shot detection: ``fsbench run repmet-det|finetune-det
mnist-detect|voc``, ``fsbench eval`` / ``predict`` of a detection run and ``fsbench reproduce
repmet-detection`` call these from cli.py's commands (the functions live in ``detection/``)."""

from __future__ import annotations

from pathlib import Path

import click

from fsbench.errors import FsbenchError


def run_detection_cli(method: str, dataset: str, opts: dict) -> None:
    """``fsbench run`` of a detector: the declared settings it reads (detection/run.py's READS);
    any other setting, data option or data argument given is an error naming its flag."""
    from fsbench.commands.common import configure_logging, fmt_pct
    from fsbench.commands.options import split_run_options
    from fsbench.detection.run import run_detection, settings_for
    from fsbench.engine.stop import process_start, stop_on_signals
    from fsbench.settings import flag

    overrides, data_values, ex = split_run_options(dict(opts))
    configure_logging(ex["quiet"])
    elsewhere = [k for k, v in data_values.items() if v is not None]
    elsewhere += ["nproc"] if ex.get("nproc") is not None else []
    elsewhere += ["download"] if ex.get("download") else []
    if elsewhere:
        raise FsbenchError(f"{flag(elsewhere[0])} does not apply to {method}")
    settings = settings_for(method, dataset.lower(), ex.get("dataset_dir"), **overrides)
    default = f"{method}_{dataset}_{settings.way}w{settings.shot}s_seed{settings.seed}"
    out = ex["out"] or Path("runs") / default
    with stop_on_signals():
        result = run_detection(
            settings,
            out,
            data_root=ex["data_root"],
            device=ex["device"],
            resume=ex["resume"],
            overwrite=ex["overwrite"],
            quiet=ex["quiet"],
            time_limit=ex["time_limit"],
            started=process_start(),
        )
    click.echo(result_line(result, out, fmt_pct))


def result_line(result: dict, out: Path, fmt) -> str:
    return (
        f"{result['method']} on {result['dataset']} {result['way']}-way {result['shot']}-shot: "
        f"mAP@0.5 {fmt(result['map50'])} % ± {fmt(result['ci95'])} over {result['episodes']} "
        f"episodes (random boxes {fmt(result['random_boxes_map50'])} %); wrote {out}/result.json"
    )


def eval_detection_cli(run_dir: Path, opts: dict) -> None:
    """``fsbench eval`` of a detection run."""
    from fsbench.commands.common import configure_logging as _configure_logging
    from fsbench.commands.common import fmt_pct as _fmt_pct
    from fsbench.detection.run import evaluate_detection_run, recorded_settings

    _configure_logging(opts["quiet"])
    settings = recorded_settings(run_dir)
    way, shot = opts["way"] or settings.way, opts["shot"] or settings.shot
    out = opts["out"] or Path(run_dir) / f"eval-{way}w{shot}s"
    result = evaluate_detection_run(
        run_dir,
        out,
        way=opts["way"],
        shot=opts["shot"],
        query=opts["query"],
        episodes=opts["episodes"],
        seed=opts["seed"],
        data_root=opts["data_root"],
        device=opts["device"],
        overwrite=opts["overwrite"],
        quiet=opts["quiet"],
    )
    click.echo(result_line(result, out, _fmt_pct))


def predict_detection_cli(
    run_dir: Path, support: Path, query: Path, out: Path | None, device: str, overwrite: bool
) -> None:
    """``fsbench predict`` of a detection run: --out is a folder (default RUN_DIR/predict)."""
    from fsbench.detection.predict import predict_folder

    out = out or Path(run_dir) / "predict"
    if (out / "predictions.json").exists() and not overwrite:
        raise FsbenchError(f"--out {out} holds predictions.json; pass --overwrite to replace it")
    doc = predict_folder(run_dir, support, query, out, device=device)
    boxes = sum(len(im["boxes"]) for im in doc["images"])
    click.echo(
        f"{len(doc['images'])} images, {boxes} boxes of {len(doc['classes'])} classes "
        f"({doc['shot']}-shot); wrote {out}/predictions.json and a PNG per image"
    )


def reproduce_detection_cli(quick: bool, out: Path | None, opts: dict) -> None:
    """``fsbench reproduce repmet-detection``: its own table (detection/reproduce.py); the
    options that do not apply to it (--seeds, --precision) are refused."""
    from fsbench.commands.common import configure_logging
    from fsbench.detection.reproduce import reproduce_repmet_detection
    from fsbench.engine.stop import process_start, stop_on_signals

    for key in ("seeds", "precision"):
        if opts.get(key) is not None:
            raise FsbenchError(f"--{key} does not apply to repmet-detection (one seed, fp32)")
    configure_logging(opts["quiet"])
    out = out or Path("reproduce") / ("repmet-detection" + ("-quick" if quick else ""))
    with stop_on_signals():
        reproduce_repmet_detection(
            out,
            quick=quick,
            data_root=opts["data_root"],
            device=opts["device"],
            quiet=opts["quiet"],
            echo=click.echo,
            jobs=opts.get("jobs") or 1,
            threads=opts.get("threads"),
            iterations=opts.get("iterations"),
            time_limit=opts.get("time_limit"),
            started=process_start(),
            overwrite=bool(opts.get("overwrite")),
        )
