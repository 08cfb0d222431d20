"""``fsbench run`` and ``fsbench pretrain``: one setting trained and tested, a flag per setting."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from fsbench.catalog import MAML_METHODS
from fsbench.commands.common import configure_logging, dataset_name, result_line
from fsbench.commands.options import run_options, split_run_options
from fsbench.errors import FsbenchError
from fsbench.methods import METHODS
from fsbench.settings import DETECTION_METHODS, data_options_for

RUN_METHODS = sorted([m for m in METHODS if m != "pretrain"] + list(DETECTION_METHODS))
POS = click.IntRange(min=1)


class MethodChoice(click.Choice):
    """The built-in methods, or a user's registered method (fsbench.methods.registry)."""

    def convert(self, value, param, ctx):
        from fsbench.methods.registry import is_user_method

        if str(value).lower() not in self.choices and is_user_method(str(value).lower()):
            return str(value).lower()
        return super().convert(value, param, ctx)


@click.command()
@click.argument("method", type=MethodChoice(RUN_METHODS, case_sensitive=False), metavar="METHOD")
@click.argument("dataset")
@click.option(
    "--nproc",
    type=POS,
    help="train data-parallel in N processes on this machine: the same command under "
    "torchrun --nproc-per-node N (several machines: run torchrun yourself, see the README)",
)
@run_options
def run(method: str, dataset: str, nproc: int | None, **opts) -> int:
    """Train and evaluate METHOD on DATASET with its published protocol; a flag overrides one value."""
    if method.lower() in DETECTION_METHODS:
        from fsbench.commands.detection import run_detection_cli

        run_detection_cli(method.lower(), dataset, {**opts, "nproc": nproc})
        return 0
    if nproc is not None and nproc > 1:
        check_meta_batch(method.lower(), dataset, opts["meta_batch"], nproc)
        root = click.get_current_context().find_root().command  # FsbenchGroup keeps the argv
        return launch_torchrun(nproc, list(getattr(root, "argv", sys.argv[1:])))
    run_command(method.lower(), dataset, opts)
    return 0


@click.command()
@click.argument("dataset")
@run_options
def pretrain(dataset: str, **opts) -> None:
    """Pre-train a backbone by many-way classification on DATASET's training classes.

    The folder it writes is what `fsbench run mtl DATASET --pretrained DIR` loads; its own
    result is the few-shot accuracy of the pre-trained features with a new linear head.
    """
    run_command("pretrain", dataset, opts)


def check_meta_batch(method: str, dataset: str, meta_batch: int | None, nproc: int) -> None:
    """Before starting torchrun: MAML and MTL need a meta-batch that splits over the processes."""
    from fsbench.resolve import resolve_settings
    from fsbench.settings import check_meta_batch_split

    overrides = {} if meta_batch is None else {"meta_batch": meta_batch}
    settings = resolve_settings(method, dataset_name(dataset), overrides)
    if method in (*MAML_METHODS, "mtl"):
        check_meta_batch_split(int(settings["meta_batch"]), nproc)


def without_nproc(argv: list[str]) -> list[str]:
    """The command line without its --nproc N (or --nproc=N)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def launch_torchrun(nproc: int, argv: list[str]) -> int:
    """``run --nproc N``: this command again under torchrun (one machine, N processes); its code."""
    import os
    import subprocess

    if "WORLD_SIZE" in os.environ:
        raise FsbenchError("--nproc starts torchrun itself; under torchrun, leave --nproc out")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += ["--nproc-per-node", str(nproc), "-m", "fsbench", *without_nproc(argv)]
    return subprocess.call(cmd)


def run_command(method: str, dataset: str, opts: dict) -> None:
    """``run`` and ``pretrain``: resolve the settings, train, evaluate, print one line."""
    from fsbench.data.location import location_options, user_data_validation
    from fsbench.data.registry import OPTIONS
    from fsbench.engine import distributed, run_setting
    from fsbench.engine.stop import process_start, stop_on_signals
    from fsbench.resolve import resolve_settings

    overrides, data_values, ex = split_run_options(dict(opts))
    configure_logging(ex["quiet"])
    name = dataset_name(dataset)
    data_options = location_options(name, ex["dataset_dir"], ex["download"])
    data_options.update(data_options_for(name, data_values))
    user_data_validation(name, data_options, overrides)
    if data_options:
        overrides["data_options"] = data_options
    settings = resolve_settings(method, name, overrides)
    if "progress" in OPTIONS[name]:
        settings["data_options"].setdefault("progress", not ex["quiet"])
    default = f"{method}_{name}_{settings['way']}w{settings['shot']}s_seed{settings['seed']}"
    if method == "pretrain":
        default = f"pretrain_{name}_{settings['backbone']}_seed{settings['seed']}"
    out = ex["out"] or Path("runs") / default
    main_rank = True
    try:
        with stop_on_signals():
            result = run_setting(
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
        main_rank = distributed.is_main()
    finally:
        distributed.shutdown()
    if main_rank:
        click.echo(result_line(name, result, out))
