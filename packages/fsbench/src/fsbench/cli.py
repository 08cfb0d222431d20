"""The ``fsbench`` command: run a setting, evaluate a trained run, reproduce a table, render tables.

User mistakes (FsbenchError, click usage errors) print one line and exit non-zero, no traceback.
What is happening (data loaded, device, an estimate of the run, progress without a terminal)
goes to stderr as plain lines through the ``fsbench`` logger; ``--quiet`` keeps only warnings.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import click

from fsbench.errors import FsbenchError
from fsbench.methods import DESCRIPTIONS, METHODS
from fsbench.presets import (
    CHOICES,
    MDMNIST_BASED,
    MDMNIST_DATASETS,
    MODES_DATASETS,
    NATURAL_DATASETS,
    TABLES,
    USER_DATASETS,
)

SIZED_DATASETS = (*MDMNIST_BASED, "flowers102", "pets", *USER_DATASETS)  # --image-size

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "bf16", "fp16")
POS = click.IntRange(min=1)
NONNEG = click.IntRange(min=0)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class _EchoHandler(logging.Handler):
    """fsbench's log lines on the current stderr: info plain, warnings as 'Warning: ...'."""

    def emit(self, record: logging.LogRecord) -> None:
        prefix = "Warning: " if record.levelno >= logging.WARNING else ""
        click.echo(prefix + _one_line(record.getMessage()), err=True)


def _configure_logging(quiet: bool = False) -> None:
    logger = logging.getLogger("fsbench")
    if not any(isinstance(h, _EchoHandler) for h in logger.handlers):
        logger.addHandler(_EchoHandler())
    logger.setLevel(logging.WARNING if quiet else logging.INFO)


class FsbenchGroup(click.Group):
    """A click group whose errors are one line on stderr and a non-zero exit code."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        self.argv = list(sys.argv[1:] if args is None else args)  # for run --nproc
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as exc:
            click.echo(f"Error: {_one_line(exc.format_message())}", err=True)
            sys.exit(exc.exit_code)
        except FsbenchError as exc:
            click.echo(f"Error: {_one_line(str(exc))}", err=True)
            sys.exit(1)
        except (click.Abort, KeyboardInterrupt):
            click.echo("Aborted.", err=True)
            sys.exit(130)
        code = rv if isinstance(rv, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


@click.group(cls=FsbenchGroup)
@click.version_option(package_name="fsbench", prog_name="fsbench")
def main() -> None:
    """Few-shot benchmark harness: train the published protocols, print tables beside the published numbers."""
    _configure_logging()


def _dataset(value: str) -> str:
    from fsbench.data import resolve_dataset

    return resolve_dataset(value)


def _fmt_pct(x: float) -> str:
    return f"{100 * x:.2f}"


def _data_options(name: str, dataset_dir: Path | None, download: bool) -> dict:
    """Data-layer options for --dataset-dir and --download; the source format is detected."""
    options: dict = {}
    if download:
        if name not in ("omniglot", "fc100"):
            raise FsbenchError(f"--download applies to omniglot and fc100, not {name}")
        options["download"] = True
    if dataset_dir is None:
        return options
    if name == "omniglot":
        options["omniglot_dir"] = str(dataset_dir)
    elif name in MDMNIST_BASED:
        if (dataset_dir / "train.h5").is_file():
            options.update(path=str(dataset_dir), source="hdf5")
        elif (dataset_dir / "train").is_dir():
            options.update(path=str(dataset_dir), source="png")
        else:
            raise FsbenchError(
                f"--dataset-dir {dataset_dir} holds neither train.h5 (mdmnist HDF5) nor a "
                "train/ PNG tree"
            )
    elif name in NATURAL_DATASETS + MODES_DATASETS + USER_DATASETS:
        options["path"] = str(dataset_dir)
    else:
        raise FsbenchError(f"--dataset-dir does not apply to {name} (it is generated)")
    return options


def _choice(key: str) -> click.Choice:
    return click.Choice(list(CHOICES[key]))


def _result_line(name: str, result: dict, out: Path) -> str:
    pub = result.get("published_percent")
    unit = "examples" if result["shot"] is None else "episodes"
    line = (
        f"{result['method']} on {result.get('dataset_label', name)}: accuracy "
        f"{_fmt_pct(result['accuracy'])} % ± {_fmt_pct(result['ci95'])} "
        f"({result['ci95_method']}, {result['episodes']} {unit})"
    )
    if pub is not None:
        line += f"; published {pub:g} %"
    elif result.get("not_comparable"):
        line += "; no published number for this data"
    devs = result.get("deviations") or []
    if devs:
        line += "; differs from the preset in " + ", ".join(d["setting"] for d in devs)
    return line + f"; {result['wall_seconds']:.1f} s on {result['device']}; results in {out}"


def _run_options(func):
    """The options of ``run`` and ``pretrain``: a flag overrides one value of the preset."""
    options = [
        click.option("--way", type=POS, help="classes per test episode (MAML: also training)"),
        click.option("--shot", type=POS, help="support examples per class"),
        click.option("--query", type=POS, help="query examples per class at evaluation"),
        click.option("--train-way", type=POS, help="ProtoNets: classes per training episode"),
        click.option("--train-shot", type=POS, help="ProtoNets: support examples in training"),
        click.option("--train-query", type=POS, help="query examples per class in training"),
        click.option("--iterations", type=POS, help="meta-iterations / training episodes / steps"),
        click.option("--epochs", type=POS, help="pretrain: epochs over the training split"),
        click.option("--meta-batch", type=POS, help="tasks per meta-iteration (MAML, MTL)"),
        click.option("--episodes", type=POS, help="test episodes (classifiers: full test split)"),
        click.option("--seed", type=NONNEG, help="training seed (default 0)"),
        click.option(
            "--lr", type=click.FloatRange(min=0, min_open=True), help="(outer) learning rate"
        ),
        click.option(
            "--ss-lr",
            type=click.FloatRange(min=0, min_open=True),
            help="MTL: Adam lr of the scaling/shifting (or of the backbone with --mtl-mode ft)",
        ),
        click.option("--momentum", type=click.FloatRange(min=0), help="pretrain: SGD momentum"),
        click.option("--weight-decay", type=click.FloatRange(min=0), help="pretrain: weight decay"),
        click.option(
            "--inner-lr", type=click.FloatRange(min=0, min_open=True), help="MAML/MTL inner lr"
        ),
        click.option("--inner-steps", type=POS, help="MAML/MTL inner steps at training"),
        click.option("--test-inner-steps", type=POS, help="inner steps at test"),
        click.option(
            "--inner-loss",
            type=_choice("inner_loss"),
            help="MAML inner loss: mean cross-entropy, or cbfinn's sum over the support set / "
            "shot (= way x mean)",
        ),
        click.option("--backbone", type=_choice("backbone"), help="pretrain/MTL backbone"),
        click.option(
            "--widths",
            help="ResNet-12 block widths, comma-separated (default 64,128,256,512)",
        ),
        click.option("--hidden", type=POS, help="Conv-4 filters"),
        click.option(
            "--dropout", type=click.FloatRange(0, 1, max_open=True), help="pretrain dropout"
        ),
        click.option(
            "--norm",
            type=_choice("norm"),
            help="batch norm: batch statistics always (transductive, MAML) or running "
            "statistics with eval() at test (ProtoNets)",
        ),
        click.option(
            "--norm-affine", type=_choice("norm_affine"), help="batch norm's learned terms"
        ),
        click.option("--init", type=_choice("init"), help="weight initialisation"),
        click.option(
            "--distance", type=_choice("distance"), help="ProtoNets distance to prototypes"
        ),
        click.option(
            "--lite-h",
            type=POS,
            help="LITE (protonet): back-propagate through H random support images per task, "
            "their gradient scaled by N/H; needs --norm group or running",
        ),
        click.option(
            "--modes",
            type=int,
            help="magnet/repmet: K clusters (modes) per class, in training and in each test "
            "episode's support set",
        ),
        click.option(
            "--clusters-per-batch",
            type=int,
            help="magnet: M clusters per training batch; repmet: M classes (default 12)",
        ),
        click.option(
            "--images-per-cluster",
            type=int,
            help="magnet/repmet: D images of each cluster (class) in a batch (default 4)",
        ),
        click.option(
            "--margin", type=float, help="magnet/repmet: the margin alpha of the loss (default 1)"
        ),
        click.option(
            "--refresh-every",
            type=int,
            help="magnet: iterations between k-means refreshes of the training split "
            "(0: once per epoch)",
        ),
        click.option("--nearest", type=int, help="magnet: L, the modes that vote (default 128)"),
        click.option("--sigma", type=float, help="repmet: the modes' standard deviation (0.5)"),
        click.option("--embedding-dim", type=int, help="repmet: embedding size (default 1024)"),
        click.option(
            "--pretrained",
            type=click.Path(file_okay=False, path_type=Path),
            help="MTL: the folder of a finished fsbench pretrain run of this dataset",
        ),
        click.option(
            "--mtl-mode",
            type=_choice("mtl_mode"),
            help="MTL: meta-train scaling/shifting (ss) or every backbone weight (ft)",
        ),
        click.option(
            "--head-init",
            type=_choice("head_init"),
            help="MTL: start of the meta-learned classifier: xavier (the official code's "
            "random init) or zeros (the same start as a new head on the pre-trained features)",
        ),
        click.option(
            "--hard-tasks/--no-hard-tasks",
            default=None,
            help="MTL: hard-task meta-batch (tasks re-composed of failure classes)",
        ),
        click.option("--batch-size", type=POS, help="classifier / pretrain minibatch size"),
        click.option(
            "--batch-order",
            type=_choice("batch_order"),
            help="classifiers: the reference loop's fixed slices, or random minibatches",
        ),
        click.option(
            "--train-split",
            type=_choice("train_split"),
            help="train on the train classes, or on train + val (final training; no selection)",
        ),
        click.option("--eval-every", type=NONNEG, help="validate every N iterations (0: never)"),
        click.option("--eval-episodes", type=POS, help="episodes per validation"),
        click.option("--val-way", type=POS, help="classes per validation episode (default: --way)"),
        click.option(
            "--select",
            type=_choice("select"),
            help="test the last model, or the best on validation (needs --eval-every)",
        ),
        click.option(
            "--omniglot-split",
            type=click.Choice(["vinyals", "cbfinn"]),
            help="omniglot: the Vinyals class lists (ProtoNets) or cbfinn's character split (MAML)",
        ),
        click.option(
            "--images-per-class",
            type=POS,
            help="doublemnist/triplemnist: images per class to generate/load",
        ),
        click.option(
            "--image-size",
            type=POS,
            help="doublemnist/triplemnist: generate/load NxN images (e.g. 224 for LITE) "
            "instead of the published size; a recorded deviation",
        ),
        click.option(
            "--split-ratios",
            help="folder: TRAIN,VAL,TEST fractions of the classes of a flat DIR/<class>/ folder "
            "(default 0.64,0.16,0.2)",
        ),
        click.option(
            "--split-seed",
            type=NONNEG,
            help="folder: seed of the class shuffle before --split-ratios (default 0)",
        ),
        click.option(
            "--resize",
            type=POS,
            help="image datasets: resize every image to NxN at load (bilinear, antialias); "
            "a recorded deviation",
        ),
        click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True),
        click.option(
            "--precision",
            type=click.Choice(PRECISIONS),
            help="fp32 (default; TF32 matmuls on CUDA), or bf16/fp16 autocast on CUDA",
        ),
        click.option(
            "--maml-exec",
            type=click.Choice(["auto", "measure", "loop", "vmap", "compile"]),
            help="how MAML runs a meta-batch; measure: time loop and vmap on the first "
            "meta-batch and keep the faster; auto: loop on CPU (measured), measure on CUDA",
        ),
        click.option("--threads", type=POS, help="torch CPU threads (default: torch's own)"),
        click.option(
            "--out", type=click.Path(file_okay=False, path_type=Path), help="output directory"
        ),
        click.option(
            "--resume",
            is_flag=True,
            help="continue OUT/checkpoint.pt (same settings, or more iterations)",
        ),
        click.option("--overwrite", is_flag=True, help="replace an earlier run in OUT"),
        click.option(
            "--data-root",
            type=click.Path(file_okay=False, path_type=Path),
            help="dataset cache (default $FSBENCH_DATA or ~/.cache/fsbench)",
        ),
        click.option(
            "--dataset-dir",
            type=click.Path(exists=True, file_okay=False, path_type=Path),
            help="use this dataset folder as it is: an mdmnist output (HDF5 or PNG tree, e.g. "
            "the published download), an Omniglot folder of official zips, or for the folder "
            "dataset your images (DIR/train|val|test/<class>/<image> or DIR/<class>/<image>)",
        ),
        click.option(
            "--download", is_flag=True, help="omniglot: download the full official set if missing"
        ),
        click.option(
            "--checkpoint-every",
            type=NONNEG,
            help="checkpoint every N iterations (0: only at the end)",
        ),
        click.option("--quiet", is_flag=True, help="no progress bars or progress lines"),
    ]
    for option in reversed(options):
        func = option(func)
    return func


RUN_METHODS = sorted([m for m in METHODS if m != "pretrain"] + ["repmet-det", "finetune-det"])


@main.command()
@click.argument("method", type=click.Choice(RUN_METHODS, case_sensitive=False), metavar="METHOD")
@click.argument("dataset")
@click.option(
    "--nproc",
    type=POS,
    help="train data-parallel in N processes on this machine: the same command under "
    "torchrun --nproc-per-node N (several machines: run torchrun yourself, see the README)",
)
@_run_options
@click.option(
    "--backbone-weights",
    type=click.Path(dir_okay=False, path_type=Path),
    help="repmet-det/finetune-det: a state dict for the detector's backbone",
)
@click.option("--scenes", type=POS, help="repmet-det/finetune-det: training scenes of mnist-detect")
@click.option(
    "--finetune-steps", type=POS, help="finetune-det: Adam steps on each episode's support"
)
def run(method: str, dataset: str, nproc: int | None, **opts) -> int:
    """Train and evaluate METHOD on DATASET with its published protocol; a flag overrides one value."""
    if method.lower() in ("repmet-det", "finetune-det"):  # few-shot detection: detection/run.py
        from fsbench.commands.detection import run_detection_cli

        return run_detection_cli(method.lower(), dataset, opts) or 0
    for key in ("backbone_weights", "scenes", "finetune_steps"):
        if opts.pop(key) is not None:
            raise FsbenchError(
                f"--{key.replace('_', '-')} applies to repmet-det and finetune-det only"
            )
    if nproc is not None and nproc > 1:
        check_meta_batch(method.lower(), dataset, opts["meta_batch"], nproc)
        return launch_torchrun(nproc, click.get_current_context().find_root().command.argv)
    _run(method.lower(), dataset, opts)
    return 0


def check_meta_batch(method: str, dataset: str, meta_batch: int | None, nproc: int) -> None:
    """Before starting torchrun: MAML and MTL need a meta-batch that splits over the processes."""
    from fsbench.presets import resolve_settings

    overrides = {} if meta_batch is None else {"meta_batch": meta_batch}
    settings = resolve_settings(method, _dataset(dataset), overrides)
    if method in ("maml", "fomaml", "mtl") and int(settings["meta_batch"]) % nproc:
        raise FsbenchError(
            f"--meta-batch {settings['meta_batch']} cannot be split over {nproc} processes; use "
            f"a multiple of {nproc}"
        )


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


@main.command()
@click.argument("dataset")
@_run_options
def pretrain(dataset: str, **opts) -> None:
    """Pre-train a backbone by many-way classification on DATASET's training classes.

    The folder it writes is what `fsbench run mtl DATASET --pretrained DIR` loads; its own
    result is the few-shot accuracy of the pre-trained features with a new linear head.
    """
    _run("pretrain", dataset, opts)


def _widths(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        widths = [int(w) for w in text.split(",")]
    except ValueError:
        raise FsbenchError(f"--widths must be comma-separated integers, got {text!r}") from None
    if len(widths) != 4 or min(widths) < 1:
        raise FsbenchError(f"--widths must be four positive integers (one per block), got {text!r}")
    return widths


def _user_data_validation(name: str, data_options: dict, overrides: dict) -> None:
    """Your own data (an image folder or a TFDS folder) without a val split trains without
    validation, and the last model is tested, unless --eval-every/--select say otherwise."""
    if name == "folder":
        from fsbench.data.folder import LAYOUT_HELP, has_validation

        path = data_options.get("path")
        if path is None:
            raise FsbenchError(f"the folder dataset needs --dataset-dir DIR ({LAYOUT_HELP})")
        ratios, seed = data_options.get("split_ratios"), data_options.get("split_seed", 0)
        present = has_validation(Path(path), ratios, seed)
    else:
        from fsbench.data.tfds_source import dataset_folder, has_validation

        path = dataset_folder(data_options.get("path"))
        present = has_validation(path)
    if present or overrides.get("eval_every") is not None or overrides.get("select") is not None:
        return
    logging.getLogger("fsbench").info(
        "%s has no val split: no validation, the last model is tested", path
    )
    overrides["eval_every"], overrides["select"] = 0, "last"


def _run(method: str, dataset: str, opts: dict) -> None:
    """``run`` and ``pretrain``: resolve the settings, train, evaluate, print one line."""
    from fsbench.engine import distributed, run_setting
    from fsbench.presets import resolve_settings

    _configure_logging(opts["quiet"])
    opts["widths"] = _widths(opts["widths"])
    if opts["pretrained"] is not None:
        if method != "mtl":
            raise FsbenchError(f"--pretrained applies to mtl, not {method}")
        opts["pretrained"] = str(opts["pretrained"])
    name = _dataset(dataset)
    images = opts.pop("images_per_class")
    split = opts.pop("omniglot_split")
    resize = opts.pop("resize")
    image_size = opts.pop("image_size")
    folder_split = {"split_ratios": opts.pop("split_ratios"), "split_seed": opts.pop("split_seed")}
    data_options = _data_options(name, opts.pop("dataset_dir"), opts.pop("download"))
    overrides = {
        k: opts.pop(k)
        for k in list(opts)
        if k not in ("device", "out", "resume", "overwrite", "data_root", "quiet")
    }
    if images is not None:
        if name not in MDMNIST_BASED:
            raise FsbenchError(
                f"--images-per-class applies to {', '.join(MDMNIST_BASED)} only, not {name}"
            )
        data_options["num_image_per_class"] = images
    if image_size is not None:
        if name not in SIZED_DATASETS:
            raise FsbenchError(
                f"--image-size applies to {', '.join(SIZED_DATASETS)} only, not {name}"
            )
        data_options["image_size"] = image_size
    if split is not None:
        if name != "omniglot":
            raise FsbenchError(f"--omniglot-split applies to omniglot only, not {name}")
        data_options["omniglot_split"] = split
    for key, value in folder_split.items():
        if value is not None:
            if name != "folder":
                flag = "--" + key.replace("_", "-")
                raise FsbenchError(f"{flag} applies to the folder dataset only, not {name}")
            data_options[key] = value
    if name in USER_DATASETS:
        _user_data_validation(name, data_options, overrides)
    if resize is not None:
        if name not in MDMNIST_DATASETS + NATURAL_DATASETS + MODES_DATASETS + USER_DATASETS + (
            "omniglot",
        ):
            raise FsbenchError(f"--resize applies to image datasets, not {name}")
        data_options["resize"] = resize
    if data_options:
        overrides["data_options"] = data_options
    settings = resolve_settings(method, name, overrides)
    if name in MDMNIST_DATASETS + NATURAL_DATASETS + MODES_DATASETS + USER_DATASETS or (
        name == "omniglot"
    ):
        settings["data_options"].setdefault("progress", not opts["quiet"])
    default = f"{method}_{name}_{settings['way']}w{settings['shot']}s_seed{settings['seed']}"
    if method == "pretrain":
        default = f"pretrain_{name}_{settings['backbone']}_seed{settings['seed']}"
    out = opts["out"] or Path("runs") / default
    main_rank = True
    try:
        result = run_setting(
            settings,
            out,
            data_root=opts["data_root"],
            device=opts["device"],
            resume=opts["resume"],
            overwrite=opts["overwrite"],
            quiet=opts["quiet"],
        )
        main_rank = distributed.is_main()
    finally:
        distributed.shutdown()
    if main_rank:
        click.echo(_result_line(name, result, out))


@main.command(name="eval")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--way", type=POS, help="classes per test episode (default: the run's)")
@click.option("--shot", type=POS, help="support examples per class (default: the run's)")
@click.option("--query", type=POS, help="queries per class (default: the run's)")
@click.option("--episodes", type=POS, help="test episodes (default: the run's)")
@click.option("--seed", type=NONNEG, help="seed of the test episodes (default: the run's)")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="output directory (default RUN_DIR/eval-WwSs)",
)
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path))
@click.option("--overwrite", is_flag=True, help="replace an earlier evaluation in OUT")
@click.option("--quiet", is_flag=True, help="no progress bars")
def eval_(run_dir: Path, **opts) -> None:
    """Test the trained run in RUN_DIR on other episode settings, without retraining."""
    from fsbench.detection.run import is_detection_run
    from fsbench.engine.evaluate import evaluate_run, trained_settings

    if is_detection_run(run_dir):  # a detector: commands/detection.py
        from fsbench.commands.detection import eval_detection_cli

        return eval_detection_cli(run_dir, opts)
    _configure_logging(opts["quiet"])
    settings, _ = trained_settings(run_dir)
    way = opts["way"] or settings["way"]
    shot = opts["shot"] or settings["shot"]
    out = opts["out"] or run_dir / f"eval-{way}w{shot}s"
    result = evaluate_run(
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
    click.echo(_result_line(settings["dataset"], result, out))


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--support",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="labelled images: DIR/<class>/<image>, any number per class",
)
@click.option(
    "--query",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="images to classify: DIR/<image>, or DIR/<class>/<image> to also score the accuracy",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="file to write (default: print to stdout); a detection run: a folder",
)
@click.option(
    "--format",
    "format_",
    type=click.Choice(["csv", "json"]),
    help="csv (default; json when --out ends in .json)",
)
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option("--overwrite", is_flag=True, help="replace an existing --out file")
@click.option("--quiet", is_flag=True, help="warnings only")
def predict(
    run_dir: Path,
    support: Path,
    query: Path,
    out: Path | None,
    format_: str | None,
    device: str,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Classify the --query images among the --support folder's classes with the run in RUN_DIR.

    Writes one row per query image: its path, the predicted class, the true class when the
    query folder has class folders, and a score (probability) per support class.
    """
    from fsbench.detection.run import is_detection_run
    from fsbench.engine.predict import predict_folders, to_csv, to_json
    from fsbench.results import atomic_write_bytes

    _configure_logging(quiet)
    if is_detection_run(run_dir):  # boxes: --out is a folder of predictions.json and PNGs
        from fsbench.commands.detection import predict_detection_cli

        return predict_detection_cli(run_dir, support, query, out, device, overwrite)
    if out is not None and out.is_dir():
        raise FsbenchError(f"--out {out} is a directory; give a file to write")
    if out is not None and out.exists() and not overwrite:
        raise FsbenchError(f"--out {out} exists; pass --overwrite to replace it")
    fmt = format_ or ("json" if out is not None and out.suffix.lower() == ".json" else "csv")
    pred = predict_folders(run_dir, support, query, device=device)
    text = to_json(pred) if fmt == "json" else to_csv(pred)
    if out is None:
        click.echo(text, nl=False)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out, text.encode())
    summary = (
        f"{len(pred.files)} images, {len(pred.classes)} classes ({pred.method}: {pred.meaning})"
    )
    if pred.accuracy is not None:
        summary += f"; accuracy {_fmt_pct(pred.accuracy)} % on the labelled queries"
    if out is not None:
        summary += f"; wrote {out}"
    logging.getLogger("fsbench").info(summary)


def _parse_seeds(seeds: str | None) -> tuple[int, ...] | None:
    if not seeds:
        return None
    try:
        values = tuple(int(s) for s in seeds.split(","))
    except ValueError:
        raise FsbenchError(f"--seeds must be comma-separated integers, got {seeds!r}") from None
    if any(s < 0 for s in values):
        raise FsbenchError(f"--seeds must be >= 0, got {seeds!r}")
    return values


def what_ran(results: list[dict]) -> list[str]:
    """Footer lines: the settings that differ from the presets, as actually recorded."""
    lines: dict[str, list[str]] = {}
    for r in results:
        devs = r.get("deviations") or []
        text = ", ".join(f"{d['setting']} {d['value']} (preset {d['preset']})" for d in devs)
        cell = f"{r['method']} {r.get('dataset_label', r['dataset'])}"
        if r.get("shot") is not None:
            cell += f" {r['way']}w{r['shot']}s"
        lines.setdefault(text, []).append(cell)
    out = []
    for text, cells in lines.items():
        who = "all cells" if len(lines) == 1 else ", ".join(dict.fromkeys(cells))
        out.append(f"{who}: " + (f"differ from the preset in {text}" if text else "the preset"))
    return out


@main.command()
@click.argument("table", type=click.Choice([*sorted(TABLES), "repmet-detection"]), metavar="TABLE")
@click.option(
    "--quick", is_flag=True, help="short CPU version (minutes): fewer iterations, episodes, images"
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="output directory (default reproduce/TABLE[-quick])",
)
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    help="fp32 (default; TF32 matmuls on CUDA), or bf16/fp16 autocast on CUDA",
)
@click.option("--seeds", help="comma-separated seeds (default: the table's)")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--threads", type=POS, help="torch CPU threads for every cell (default: the preset's)"
)
@click.option(
    "--overwrite", is_flag=True, help="re-run cells that already have a result or a checkpoint"
)
@click.option("--quiet", is_flag=True, help="no progress bars")
@click.option("--iterations", type=POS, help="training iterations of every cell (e.g. a smoke run)")
@click.option(
    "--jobs",
    type=POS,
    default=1,
    show_default=True,
    help="cells run side by side in this many processes (one torch thread each unless --threads)",
)
def reproduce(
    table: str,
    quick: bool,
    out: Path | None,
    device: str,
    precision: str | None,
    seeds: str | None,
    data_root,
    threads: int | None,
    overwrite: bool,
    quiet: bool,
    iterations: int | None,
    jobs: int,
) -> None:
    """Run every cell of a source TABLE and print it beside the published numbers."""
    from fsbench.engine.reproduce import plan_table, run_plan
    from fsbench.tables import pivot_frame, results_frame, to_markdown, write_tables

    if table == "repmet-detection":  # RepMet vs fine-tuning detectors: detection/reproduce.py
        from fsbench.commands.detection import reproduce_detection_cli

        return reproduce_detection_cli(
            quick, out, {"data_root": data_root, "device": device, "quiet": quiet}
        )
    _configure_logging(quiet)
    spec = TABLES[table]
    out = out or Path("reproduce") / (table + ("-quick" if quick else ""))
    seed_list = _parse_seeds(seeds) or (spec.quick_seeds if quick else spec.seeds)
    t0 = time.perf_counter()
    plan = plan_table(
        spec,
        out,
        quick=quick,
        seeds=seed_list,
        overrides={"threads": threads, "iterations": iterations, "precision": precision},
        overwrite=overwrite,
        jobs=jobs,
        progress=not quiet,
    )
    for item in run_plan(
        plan, data_root=data_root, device=device, quiet=quiet, jobs=jobs, echo=click.echo
    ):
        if item.action == "keep":
            continue
        res = item.result
        how = {"eval": f"evaluated from {item.trained_in}", "resume": "resumed"}.get(
            item.action, "trained"
        )
        click.echo(
            f"{item.label} {_fmt_pct(res['accuracy'])} % ± {_fmt_pct(res['ci95'])} "
            f"in {res['wall_seconds']:.1f} s ({how})"
        )
    results = [p.result for p in plan if p.result is not None]
    by_cell: dict[str, list[dict]] = {}
    for p in plan:
        if p.result is not None:
            by_cell.setdefault(p.cell.name, []).append(p.result)
    df = results_frame(results)
    grid = pivot_frame(spec, by_cell)
    write_tables(df, out, "table")
    write_tables(grid, out, "table_source_layout")
    minutes = (time.perf_counter() - t0) / 60
    click.echo("")
    click.echo(f"{spec.source} — ours ± 95% CI (published), percent")
    click.echo(
        f"seeds {', '.join(map(str, seed_list))} ({len(seed_list)} run(s) per cell, mean shown)"
        + (f"; {spec.quick_note}" if quick else "")
    )
    click.echo(to_markdown(grid))
    click.echo("")
    click.echo(to_markdown(df.drop(columns=["ci95_method", "device"])))
    click.echo("")
    for line in what_ran(results):
        click.echo(f"Ran: {line}")
    if any(r.get("deviations") for r in results):
        click.echo(
            "* the cell's run differs from the preset (see 'Ran:'); not the published protocol"
        )
    methods = sorted(set(df["ci95_method"])) if not df.empty else []
    click.echo(f"CI: {'; '.join(methods) or '-'}; {minutes:.1f} min; tables in {out}/table*.md|csv")


@main.command()
@click.argument("dirs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="write table.md and table.csv here",
)
def table(dirs: tuple[Path, ...], out: Path | None) -> None:
    """Render the result.json files under DIRS (recursively) as markdown and CSV.

    Runs are averaged only when all their settings but the seed agree; others are rows of their
    own, whose 'settings' column names what sets them apart.
    """
    from fsbench.tables import load_results, results_frame, shown, to_markdown, write_tables

    results = load_results(list(dirs))
    if not results:
        raise FsbenchError(f"no result.json found under {', '.join(map(str, dirs))}")
    df = results_frame(results)
    click.echo(to_markdown(df))
    if out is not None:
        md, csv = write_tables(df, out)
        click.echo(f"wrote {md} and {csv}")
    else:
        click.echo("")
        click.echo(shown(df).to_csv(index=False).rstrip())


def _checkpoint_settings(run: Path) -> dict:
    """The settings of a run still training (no result.json yet), from its checkpoint."""
    from fsbench.engine.trainer import load_checkpoint
    from fsbench.results import CHECKPOINT

    try:
        return dict(load_checkpoint(run / CHECKPOINT).get("settings") or {})
    except Exception:  # no or unreadable checkpoint: the folder name labels it
        return {}


@main.command()
@click.argument(
    "runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="PNG to write"
)
@click.option("--title", help="figure title (default: method and dataset of the first run)")
@click.option("--overwrite", is_flag=True, help="replace an existing picture")
def plot(runs: tuple[Path, ...], out: Path, title: str | None, overwrite: bool) -> None:
    """Draw the training and validation curves of one or more RUNS in one picture.

    Each run is labelled by the settings in which the runs differ (e.g. distance=euclidean).
    """
    from fsbench.presets import semantic
    from fsbench.results import METRICS, RESULT, plot_curves, read_json, read_metrics
    from fsbench.tables import differing_settings

    if out.exists() and not overwrite:
        raise FsbenchError(f"--out {out} exists; pass --overwrite to replace it")
    if out.suffix.lower() != ".png":
        raise FsbenchError(f"--out must name a .png file, got {out}")
    missing = [str(r) for r in runs if not (r / METRICS).is_file()]
    if missing:
        raise FsbenchError(f"no {METRICS} in {', '.join(missing)}: not fsbench run folders")
    results = [read_json(r / RESULT) if (r / RESULT).is_file() else {} for r in runs]
    settings = [
        res.get("settings") or _checkpoint_settings(r) for res, r in zip(results, runs, strict=True)
    ]
    labels = differing_settings([semantic(s) for s in settings])
    labels = [lab or run.name for lab, run in zip(labels, runs, strict=True)]
    first = results[0]
    title = title or " ".join(
        str(x) for x in (first.get("method"), first.get("dataset_label")) if x
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_curves(
        [(lab, read_metrics(r / METRICS)) for lab, r in zip(labels, runs, strict=True)],
        out,
        title or "training curves",
    )
    click.echo(f"wrote {out}")


@main.command(name="list")
def list_() -> None:
    """Show methods, datasets, presets (with their sources and notes) and reproducible tables."""
    from fsbench.data import ALIASES, DATASETS
    from fsbench.presets import CLASSIFIER_METHODS, IMAGE_DATASETS, MNIST1D_DATASETS, preset_for

    click.echo("Methods:")
    for m in METHODS:
        click.echo(f"  {m:<10} {DESCRIPTIONS[m]}")
    click.echo("Datasets:")
    back: dict[str, list[str]] = {}
    for a, t in ALIASES.items():
        back.setdefault(t, []).append(a)
    for d, desc in DATASETS.items():
        alias = f" (alias {', '.join(back[d])})" if d in back else ""
        click.echo(f"  {d}{alias}: {desc}")
    click.echo("Presets (method / dataset: defaults; source):")
    keys = (
        "way",
        "shot",
        "query",
        "train_way",
        "meta_batch",
        "inner_lr",
        "inner_steps",
        "test_inner_steps",
        "inner_loss",
        "iterations",
        "lr",
        "lr_step",
        "batch_size",
        "norm",
        "modes",
        "select",
        "episodes",
    )
    for m in METHODS:
        for d in MNIST1D_DATASETS if m in CLASSIFIER_METHODS else IMAGE_DATASETS:
            try:
                p = preset_for(m, d)
            except FsbenchError:  # no preset for this pair
                continue
            s = p.settings
            shown_ = ", ".join(f"{k}={s[k]}" for k in keys if k in s)
            click.echo(f"  {m} / {d}: {shown_}")
            click.echo(f"      {p.source}")
    click.echo("Tables (fsbench reproduce TABLE [--quick]):")
    for t in TABLES.values():
        click.echo(f"  {t.name}: {t.source}; {len(t.cells)} cells")


if __name__ == "__main__":  # pragma: no cover
    main()
