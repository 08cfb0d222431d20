"""Every setting of a run, declared once: its type, default, allowed values, where it applies, help.

``Settings`` is the frozen, typed object a method receives; each field's ``spec(...)`` is the one
declaration of that setting. From these declarations come the ``run``/``pretrain`` command-line
options (fsbench.commands.options), the checks of ``validate`` (one rule, one message, naming the
parameter: the CLI shows it as a flag), the execution-only key sets, the defaults (``BASE``) that
result.json's ``settings`` and ``deviations`` are made of, and ``fsbench list``.

Adding a setting is one ``spec`` field below: its flag, check, default and help follow from it.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fsbench.catalog import LITE_METHODS, MAML_METHODS, MODES_METHODS
from fsbench.data.registry import OPTIONS as DATA_OPTIONS_BY_DATASET
from fsbench.errors import FsbenchError
from fsbench.methods.maml import EXECUTIONS as MAML_EXECUTIONS
from fsbench.methods.maml import INNER_LOSSES
from fsbench.methods.protonet import DISTANCES
from fsbench.models.conv4 import AFFINES as NORM_AFFINES
from fsbench.models.conv4 import INITS, NORMS

# What kind of difference a setting makes: "result" settings change what a run computes (a
# deviation from the preset, a reason to refuse a resume, a table row of their own); "execution"
# settings change only how it runs (threads, checkpoints, MAML's batching).
RESULT, EXECUTION = "result", "execution"

PRECISIONS = ("fp32", "bf16", "fp16")
SELECTIONS = ("last", "best-val")
BATCH_ORDERS = ("sequential", "random")
TRAIN_SPLITS = ("train", "trainval")
MTL_MODES = ("ss", "ft")
HEAD_INITS = ("xavier", "zeros")
BACKBONES = ("conv4", "resnet12")
OMNIGLOT_SPLITS = ("vinyals", "cbfinn")
DETECTION_METHODS = ("repmet-det", "finetune-det")  # few-shot detection: fsbench.detection
DETECTOR_BACKBONES = ("small", "resnet18", "resnet50")


@dataclass(frozen=True)
class Spec:
    """The declaration of one setting beside its name and type (the field's name and annotation).

    ``methods``: the methods that read it (None: every method); with ``refuse_elsewhere`` giving it
    to another method is an error. ``datasets``: for a data option, the datasets that accept it.
    ``cli``: a flag of run/pretrain; ``flag`` when it is not ``--name-with-dashes``; ``parse``
    turns the flag's text into the value (e.g. comma-separated widths). ``off``: a default that
    means "not used", outside the range, that presets and records may hold but a flag may not
    (lite_h 0: every support image, no LITE); giving it to another method is not refused.
    """

    help: str
    kind: str = RESULT
    choices: tuple[str, ...] | None = None
    min: float | None = None
    min_open: bool = False
    max: float | None = None
    max_open: bool = False
    methods: tuple[str, ...] | None = None
    refuse_elsewhere: bool = False
    datasets: tuple[str, ...] | None = None
    cli: bool = True
    flag: str | None = None
    parse: Callable[[str], Any] | None = None
    off: Any = None


def spec(default: Any, help: str, **kw: Any) -> Any:
    """A dataclass field holding the default and the declaration of one setting."""
    meta = {"spec": Spec(help, **kw)}
    if isinstance(default, dict | list):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


class SettingError(FsbenchError):
    """A bad setting. The message names parameters as ``{name}`` placeholders: ``str()`` shows
    the parameter name (``lite_h``), ``for_cli()`` the command-line flag (``--lite-h``)."""

    def __init__(self, template: str, *names: str) -> None:
        self.template, self.names = template, names
        super().__init__(self._render(lambda n: n))

    def _render(self, name_of: Callable[[str], str]) -> str:
        text = self.template
        for n in self.names:
            text = text.replace("{" + n + "}", name_of(n))
        return text

    def for_cli(self) -> str:
        return self._render(flag)


def parse_widths(text: str) -> list[int]:
    """'64,128,256,512' -> [64, 128, 256, 512]."""
    try:
        return [int(w) for w in text.split(",")]
    except ValueError:
        raise SettingError(
            f"{{widths}} must be comma-separated integers, got {text!r}", "widths"
        ) from None


def _accepting(option: str) -> tuple[str, ...]:
    """The datasets whose data layer takes ``option`` (data/registry.py's OPTIONS)."""
    return tuple(d for d, opts in DATA_OPTIONS_BY_DATASET.items() if option in opts)


POS = {"min": 1}
NONNEG = {"min": 0}
POSITIVE = {"min": 0, "min_open": True}


@dataclass(frozen=True)
class Settings:
    """The settings of one run, complete and checked: what every method, model and the engine read.

    Built by ``fsbench.resolve.resolve_settings`` (BASE, the preset, then the user's values);
    ``as_dict()`` is the layout result.json and checkpoints record.
    """

    way: int = spec(5, "classes per test episode (MAML: also training)", **POS)
    shot: int = spec(1, "support examples per class", **POS)
    query: int = spec(15, "query examples per class at evaluation", **POS)
    train_way: int | None = spec(None, "classes per training episode (default: --way)", **POS)
    train_shot: int | None = spec(None, "support examples per class in training", **POS)
    train_query: int | None = spec(None, "query examples per class in training", **POS)
    iterations: int = spec(1000, "meta-iterations / training episodes / steps", **POS)
    meta_batch: int = spec(1, "tasks per meta-iteration (MAML, MTL)", **POS)
    episodes: int = spec(600, "test episodes (classifiers: the full test split)", **POS)
    seed: int = spec(0, "training seed", **NONNEG)
    lr: float = spec(1e-3, "(outer) learning rate", **POSITIVE)
    lr_step: int = spec(
        0, "multiply the lr by --lr-gamma every N iterations (0: constant)", **NONNEG
    )
    lr_gamma: float = spec(0.5, "the lr's factor at every --lr-step", **POSITIVE)
    inner_lr: float = spec(0.4, "MAML/MTL inner lr", **POSITIVE)
    inner_steps: int = spec(1, "MAML/MTL inner steps at training", **POS)
    test_inner_steps: int = spec(1, "inner steps at test", **POS)
    inner_loss: str = spec(
        "mean",
        "MAML inner loss: mean cross-entropy, or cbfinn's sum over the support set / shot "
        "(= way x mean)",
        choices=INNER_LOSSES,
    )
    hidden: int = spec(64, "Conv-4 filters", **POS)
    pool: str = spec(
        "max",
        "Conv-4 downsampling: 2x2 max-pool or stride-2 convolutions",
        choices=("max", "stride"),
    )
    readout: str = spec(
        "flatten",
        "Conv-4 features: the flattened last map or its spatial mean",
        choices=("flatten", "mean"),
    )
    norm: str = spec(
        "batch",
        "batch norm: batch statistics always (transductive, MAML) or running statistics with "
        "eval() at test (ProtoNets); or group norm",
        choices=NORMS,
    )
    norm_affine: str = spec("scale+shift", "batch norm's learned terms", choices=NORM_AFFINES)
    init: str = spec("torch", "weight initialisation", choices=INITS)
    distance: str = spec("sqeuclidean", "ProtoNets distance to prototypes", choices=DISTANCES)
    batch_size: int = spec(100, "classifier / pretrain minibatch size", **POS)
    batch_order: str = spec(
        "random",
        "classifiers: the reference loop's fixed slices, or random minibatches",
        choices=BATCH_ORDERS,
    )
    train_split: str = spec(
        "train",
        "train on the train classes, or on train + val (final training; no selection)",
        choices=TRAIN_SPLITS,
    )
    eval_every: int = spec(0, "validate every N iterations (0: never)", **NONNEG)
    eval_episodes: int = spec(50, "episodes per validation", **POS)
    val_way: int | None = spec(None, "classes per validation episode (default: --way)", **POS)
    val_shot: int | None = spec(
        None, "support examples per class in validation (default: the training shot)", **POS
    )
    select: str = spec(
        "last",
        "test the last model, or the best on validation (needs --eval-every)",
        choices=SELECTIONS,
    )
    checkpoint_every: int = spec(
        1000, "checkpoint every N iterations (0: only at the end)", kind=EXECUTION, **NONNEG
    )
    maml_exec: str = spec(
        "auto",
        "how MAML runs a meta-batch; graph/graph-vmap: loop/vmap captured as CUDA graphs "
        "(CUDA only); measure: time loop and vmap (CUDA: and both graphs) on the first "
        "meta-batch and keep the fastest; auto: loop on CPU (measured), measure on CUDA",
        kind=EXECUTION,
        choices=MAML_EXECUTIONS,
        methods=MAML_METHODS,
    )
    precision: str = spec(
        "fp32", "fp32 (TF32 matmuls on CUDA), or bf16/fp16 autocast on CUDA", choices=PRECISIONS
    )
    data_options: dict = spec({}, "options of the data layer (see DATA_SETTINGS)", cli=False)
    threads: int | None = spec(
        None, "torch CPU threads (default: torch's own)", kind=EXECUTION, **POS
    )
    log: str | None = spec(
        None,
        "also log to TensorBoard event files in OUT/tb (pip install 'fsbench[tensorboard]')",
        kind=EXECUTION,
        choices=("tensorboard",),
    )
    # pre-training and Meta-Transfer Learning
    backbone: str = spec("conv4", "pretrain/MTL backbone", choices=BACKBONES)
    widths: list[int] | None = spec(
        None, "ResNet-12 block widths, comma-separated (default 64,128,256,512)", parse=parse_widths
    )
    dropout: float = spec(0.0, "pretrain dropout", min=0, max=1, max_open=True)
    epochs: int = spec(
        0, "pretrain: epochs over the training split (0: use --iterations)", **NONNEG
    )
    optimizer: str = spec(
        "sgd",
        "pretrain: the optimiser: sgd (Nesterov when --momentum > 0) or adam",
        choices=("sgd", "adam"),
        methods=("pretrain",),
        refuse_elsewhere=True,
    )
    momentum: float = spec(0.0, "pretrain: SGD momentum", **NONNEG)
    weight_decay: float = spec(0.0, "pretrain: weight decay", **NONNEG)
    pretrained: str | None = spec(
        None,
        "MTL: the folder of a finished fsbench pretrain run of this dataset",
        methods=("mtl",),
        refuse_elsewhere=True,
    )
    mtl_mode: str = spec(
        "ss",
        "MTL: meta-train scaling/shifting (ss) or every backbone weight (ft)",
        choices=MTL_MODES,
    )
    hard_tasks: bool = spec(
        False, "MTL: hard-task meta-batch (tasks re-composed of failure classes)"
    )
    head_init: str = spec(
        "xavier",
        "MTL: start of the meta-learned classifier: xavier (the official code's random init) or "
        "zeros (the same start as a new head on the pre-trained features)",
        choices=HEAD_INITS,
    )
    ss_lr: float = spec(
        1e-4,
        "MTL: Adam lr of the scaling/shifting (or of the backbone with --mtl-mode ft)",
        **POSITIVE,
    )
    lite_h: int = spec(
        0,
        "LITE (protonet, simple_cnaps): back-propagate through H random support images per "
        "task, their gradient scaled by N/H; needs --norm group or running (default: all, no "
        "LITE)",
        methods=LITE_METHODS,
        refuse_elsewhere=True,
        off=0,
        **POS,
    )
    # Meta-Dataset's variable-way/shot episodes (data/md_sampling.py)
    md_episodes: bool = spec(
        False,
        "Meta-Dataset's episodes (variable way 5..50, support budget 500, imbalance, "
        "Omniglot's alphabets, ILSVRC's hierarchy) for training, validation and test",
        methods=LITE_METHODS,
        refuse_elsewhere=True,
    )
    md_max_way: int | None = spec(
        None, "MD episodes: largest way (default 50)", methods=LITE_METHODS, **POS
    )
    md_max_support: int | None = spec(
        None, "MD episodes: support set budget (default 500)", methods=LITE_METHODS, **POS
    )
    md_way: int | None = spec(None, "MD episodes: a fixed way", methods=LITE_METHODS, **POS)
    md_shot: int | None = spec(
        None, "MD episodes: a fixed shot per class", methods=LITE_METHODS, **POS
    )
    md_query: int | None = spec(
        None, "MD episodes: a fixed query per class", methods=LITE_METHODS, **POS
    )
    # Magnet loss and RepMet
    modes: int = spec(
        1,
        "magnet/repmet/repmet-det: K clusters (modes) per class, in training and in each test "
        "episode's support set",
        methods=(*MODES_METHODS, "repmet-det"),
        refuse_elsewhere=True,
        **POS,
    )
    clusters_per_batch: int = spec(
        12,
        "magnet: M clusters per training batch; repmet: M classes",
        methods=MODES_METHODS,
        refuse_elsewhere=True,
        min=2,
    )
    images_per_cluster: int = spec(
        4,
        "magnet/repmet: D images of each cluster (class) in a batch",
        methods=MODES_METHODS,
        refuse_elsewhere=True,
        **POS,
    )
    margin: float = spec(
        1.0,
        "magnet/repmet: the margin alpha of the loss",
        methods=MODES_METHODS,
        refuse_elsewhere=True,
        **NONNEG,
    )
    refresh_every: int = spec(
        0,
        "magnet: iterations between k-means refreshes of the training split (0: once per epoch)",
        methods=("magnet",),
        refuse_elsewhere=True,
        **NONNEG,
    )
    nearest: int = spec(
        128, "magnet: L, the modes that vote", methods=("magnet",), refuse_elsewhere=True, **POS
    )
    sigma: float = spec(
        0.5,
        "repmet/repmet-det: the modes' standard deviation",
        methods=("repmet", "repmet-det"),
        refuse_elsewhere=True,
        **POSITIVE,
    )
    embedding_dim: int = spec(
        1024,
        "repmet/repmet-det: embedding size",
        methods=("repmet", "repmet-det"),
        refuse_elsewhere=True,
        **POS,
    )
    # Few-shot detection (fsbench.detection): the detector, the mnist-detect scenes and VOC. The shared
    # settings (way, query, iterations, lr, batch_size, modes...) take the detection preset's
    # values (detection/run.py's PRESET).
    detector_backbone: str = spec(
        "small",
        "detection: the FPN backbone, trained from scratch (small: a 4-stage CNN for CPUs)",
        choices=DETECTOR_BACKBONES,
        methods=DETECTION_METHODS,
        refuse_elsewhere=True,
    )
    backbone_weights: str | None = spec(
        None,
        "detection: a state dict (torch.save file) for the detector's backbone",
        methods=DETECTION_METHODS,
        refuse_elsewhere=True,
    )
    fpn_channels: int = spec(
        32, "detection: FPN channels", methods=DETECTION_METHODS, refuse_elsewhere=True, **POS
    )
    representation: int = spec(
        256,
        "detection: the box head's ROI feature size",
        methods=DETECTION_METHODS,
        refuse_elsewhere=True,
        **POS,
    )
    rois_per_image: int = spec(
        64,
        "detection: ROIs per training image for the box head",
        methods=DETECTION_METHODS,
        refuse_elsewhere=True,
        **POS,
    )
    finetune_steps: int = spec(
        100,
        "finetune-det: Adam steps on each episode's support ROIs",
        methods=("finetune-det",),
        refuse_elsewhere=True,
        **POS,
    )
    finetune_lr: float = spec(
        0.01,
        "finetune-det: the learning rate of those steps",
        methods=("finetune-det",),
        refuse_elsewhere=True,
        **POSITIVE,
    )
    scene_size: int = spec(
        128,
        "mnist-detect: scene side in pixels",
        methods=DETECTION_METHODS,
        refuse_elsewhere=True,
        min=16,
    )
    train_scenes: int = spec(
        2000,
        "mnist-detect: training scenes",
        methods=DETECTION_METHODS,
        refuse_elsewhere=True,
        **POS,
    )
    val_scenes: int = spec(
        200,
        "mnist-detect: validation scenes",
        methods=DETECTION_METHODS,
        refuse_elsewhere=True,
        **POS,
    )
    test_scenes: int = spec(
        500, "mnist-detect: test scenes", methods=DETECTION_METHODS, refuse_elsewhere=True, **POS
    )
    clutter: int = spec(
        1,
        "mnist-detect: up to N clutter digits (of no class) per scene",
        methods=DETECTION_METHODS,
        refuse_elsewhere=True,
        **NONNEG,
    )
    scene_seed: int = spec(
        0,
        "mnist-detect: seed of the generated scenes",
        methods=DETECTION_METHODS,
        refuse_elsewhere=True,
        **NONNEG,
    )
    voc_split: int = spec(
        1,
        "voc: Kang et al.'s class split (1-3): its 15 base classes train, its 5 novel ones test",
        methods=DETECTION_METHODS,
        refuse_elsewhere=True,
        min=1,
        max=3,
    )
    voc_size: int = spec(
        320,
        "voc: images resized to this shorter side (the longer one at most 5/3 of it)",
        methods=DETECTION_METHODS,
        refuse_elsewhere=True,
        min=32,
    )
    # what the run is, recorded beside the settings (not flags: the command's arguments)
    method: str = spec("", "the method", cli=False)
    dataset: str = spec("", "the canonical dataset name", cli=False)
    preset_source: str | None = spec(None, "where the preset comes from", kind=EXECUTION, cli=False)
    world_size: int | None = spec(None, "processes under torchrun (recorded when > 1)", cli=False)

    def as_dict(self) -> dict:
        """The dict result.json and checkpoints record (keys absent there when unset are left out)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for key in RECORDED_WHEN_SET:
            if out[key] is None:
                del out[key]
        out["data_options"] = dict(out["data_options"])
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Settings:
        """A settings object from a recorded dict; keys it lacks (an older run) take BASE values."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


# Recorded only when set (a run without them has no such key).
RECORDED_WHEN_SET = ("preset_source", "world_size")
# The run's identity and record: neither a setting a preset sets nor a flag.
IDENTITY = ("method", "dataset", "preset_source", "world_size")

# The declared data options (type, declaration): entries of ``data_options``; ``datasets``
# accept them.
DATA_SETTINGS: dict[str, tuple[Any, Spec]] = {
    "num_image_per_class": (
        int | None,
        Spec(
            "images per class to generate/load",
            flag="--images-per-class",
            datasets=_accepting("num_image_per_class"),
            min=1,
        ),
    ),
    "image_size": (
        int | None,
        Spec(
            "generate/load NxN images (e.g. 224 for LITE) instead of the published size; a "
            "recorded deviation",
            datasets=_accepting("image_size"),
            min=1,
        ),
    ),
    "omniglot_split": (
        str | None,
        Spec(
            "the Vinyals class lists (ProtoNets) or cbfinn's character split (MAML)",
            choices=OMNIGLOT_SPLITS,
            datasets=_accepting("omniglot_split"),
        ),
    ),
    "split_ratios": (
        Any,
        Spec(
            "TRAIN,VAL,TEST fractions of the classes of a flat DIR/<class>/ folder (default "
            "0.64,0.16,0.2)",
            datasets=_accepting("split_ratios"),
        ),
    ),
    "split_seed": (
        int | None,
        Spec(
            "seed of the class shuffle before --split-ratios (default 0)",
            datasets=_accepting("split_seed"),
            min=0,
        ),
    ),
    "sources": (
        str | None,
        Spec(
            "metadataset: comma-separated sources of every split (default: MD-v2's, LITE's "
            "lists per split)",
            flag="--md-sources",
            datasets=_accepting("sources"),
        ),
    ),
    "md_version": (
        str | None,
        Spec("metadataset: v2 (LITE's) or v1 (the paper's) splits", cli=False),
    ),
    "md_read": (
        str | None,
        Spec(
            "metadataset: stream (read each image from the records when an episode draws it; "
            "any split on any machine) or memory (decode the whole split once, cached: faster "
            "episodes where it fits); the same episodes either way",
            kind=EXECUTION,
            choices=("stream", "memory"),
            datasets=_accepting("md_read"),
        ),
    ),
    "resize": (
        int | None,
        Spec(
            "resize every image to NxN at load (bilinear, antialias); a recorded deviation",
            datasets=_accepting("resize"),
            min=1,
        ),
    ),
    # where the data is and how it is shown: never a deviation (set by --dataset-dir etc.)
    "path": (Any, Spec("the dataset's folder", kind=EXECUTION, cli=False)),
    "source": (Any, Spec("the folder's format (hdf5, png)", kind=EXECUTION, cli=False)),
    "omniglot_dir": (Any, Spec("the Omniglot folder", kind=EXECUTION, cli=False)),
    "download": (Any, Spec("download if missing", kind=EXECUTION, cli=False)),
    "progress": (Any, Spec("show loading progress", kind=EXECUTION, cli=False)),
}


def _specs() -> dict[str, tuple[Any, Spec, Any]]:
    """name -> (type, spec, default) of every field of Settings, in declaration order."""
    hints = typing.get_type_hints(Settings)
    out = {}
    for f in dataclasses.fields(Settings):
        factory = f.default_factory
        default = f.default if f.default is not dataclasses.MISSING else factory()  # type: ignore[operator]
        out[f.name] = (hints[f.name], f.metadata["spec"], default)
    return out


SPECS = _specs()
# Every setting a run can carry, with the value used when no preset sets it.
BASE: dict[str, Any] = {k: d for k, (_, _, d) in SPECS.items() if k not in IDENTITY}
# Settings that change how a run executes, not what it computes: never a deviation, never a
# reason to refuse a resume or to split a table row.
EXECUTION_KEYS = tuple(k for k, (_, s, _) in SPECS.items() if s.kind == EXECUTION)
# Data options that only change how data is shown or found, not what it is.
EXECUTION_DATA_OPTIONS = tuple(k for k, (_, s) in DATA_SETTINGS.items() if s.kind == EXECUTION)
# Allowed values of the settings that take a choice.
CHOICES = {k: s.choices for k, (_, s, _) in SPECS.items() if s.choices}


def flag(name: str) -> str:
    """The command-line flag of a setting or data option (``lite_h`` -> ``--lite-h``)."""
    s = (
        SPECS[name][1]
        if name in SPECS
        else DATA_SETTINGS[name][1]
        if name in DATA_SETTINGS
        else None
    )
    if s is not None and s.flag:
        return s.flag
    return "--" + name.replace("_", "-")


def base_type(tp: Any) -> Any:
    """int for ``int | None``; list for ``list[int] | None``."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) is not None and args and typing.get_origin(tp) is not list:
        tp = args[0]
    return typing.get_origin(tp) or tp


def range_text(s: Spec) -> str:
    parts = []
    if s.min is not None:
        parts.append(f"{'>' if s.min_open else '>='} {s.min:g}")
    if s.max is not None:
        parts.append(f"{'<' if s.max_open else '<='} {s.max:g}")
    return " and ".join(parts)


def check_value(name: str, value: Any, tp: Any, s: Spec, *, from_flag: bool = False) -> None:
    """One setting's own rule: its type, its choices, its range; SettingError naming it.

    ``from_flag``: the value was typed on the command line, where ``off`` is not allowed."""
    if s.off is not None and value == s.off and not from_flag:
        return
    if value is None and (type(None) in typing.get_args(tp) or tp is None or tp is Any):
        return
    base = base_type(tp) if tp is not None else None
    where = "{" + name + "}"
    if s.choices is not None:
        if value not in s.choices:
            raise SettingError(
                f"{where} must be one of {', '.join(s.choices)}, got {value!r}", name
            )
        return
    if base is bool:
        if not isinstance(value, bool):
            raise SettingError(f"{where} must be true or false, got {value!r}", name)
        return
    if base in (int, float):
        ok = not isinstance(value, bool) and isinstance(value, int if base is int else int | float)
        low = s.min is None or (value > s.min if s.min_open else value >= s.min) if ok else False
        high = s.max is None or (value < s.max if s.max_open else value <= s.max) if ok else False
        if not (ok and low and high):
            what = "an integer" if base is int else "a number"
            rng = range_text(s)
            raise SettingError(
                f"{where} must be {what}{' ' + rng if rng else ''}, got {value!r}", name
            )
        return
    if base is list:  # widths: four positive integers, one per ResNet-12 block
        if (
            not isinstance(value, list | tuple)
            or len(value) != 4
            or not all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in value)
        ):
            raise SettingError(
                f"{where} must be four positive integers (one per block), got {value!r}", name
            )
        return
    if base is str and not isinstance(value, str):
        raise SettingError(f"{where} must be a string, got {value!r}", name)
    if base is dict and not isinstance(value, dict):
        raise SettingError(f"{where} must be a mapping, got {value!r}", name)


def data_options_for(dataset: str, values: Mapping[str, Any]) -> dict:
    """The data options given for ``dataset`` (None: not given), each checked against its
    declaration: it must apply to the dataset and hold an allowed value."""
    out = {}
    for key, value in values.items():
        if value is None:
            continue
        tp, s = DATA_SETTINGS[key]
        if s.datasets is not None and dataset not in s.datasets:
            raise SettingError(
                f"{{{key}}} applies to {', '.join(s.datasets)} only, not {dataset}", key
            )
        check_value(key, value, tp, s)
        out[key] = value
    return out


def check_declared(settings: Mapping[str, Any], given: Mapping[str, Any]) -> None:
    """Every declared setting's own rule, and the method-only settings refused elsewhere."""
    method = settings["method"]
    for name, (tp, s, _) in SPECS.items():
        if name in IDENTITY:
            continue
        elsewhere = name in given and given[name] != s.off and method not in (s.methods or ())
        if s.refuse_elsewhere and elsewhere:
            raise SettingError(
                f"{{{name}}} applies to {' and '.join(s.methods or ())}, not {method}", name
            )
        check_value(name, settings.get(name), tp, s)


def check_combinations(settings: Mapping[str, Any]) -> None:
    """The rules that tie several settings together (each with its one message)."""
    method = settings["method"]
    if method in MAML_METHODS:
        if settings["train_way"] != settings["way"]:
            raise SettingError(
                "{train_way} must equal {way} for MAML (the head has one output per class)",
                "train_way",
                "way",
            )
        if settings["norm"] != "batch":
            raise SettingError(
                "{norm} must be batch for MAML (its inner loop normalises with the statistics of "
                "the current batch, as the MAML reference code); running is for protonet",
                "norm",
            )
        if settings.get("val_way") not in (None, settings["way"]):
            raise SettingError("MAML validates with its own {way} (one output per class)", "way")
        if settings["precision"] == "fp16":
            raise SettingError(
                "{precision} fp16 is refused for MAML: its inner-loop gradients would need their "
                "own loss scaling; use bf16 or fp32",
                "precision",
            )
    lite = int(settings["lite_h"])
    support = settings["train_way"] * settings["train_shot"]
    if lite and lite > support and not settings["md_episodes"]:  # MD: the support size varies
        raise SettingError(
            f"{{lite_h}} {lite} is larger than the training support set "
            f"({settings['train_way']} x {settings['train_shot']} = {support} images)",
            "lite_h",
        )
    if lite and settings["norm"] == "batch":
        raise SettingError(
            "{lite_h} needs each image normalised on its own: pass {norm} group or {norm} running "
            "(batch statistics make an embedding depend on the rest of its batch)",
            "lite_h",
            "norm",
        )
    if method == "mtl" and not settings.get("pretrained"):
        raise SettingError(
            "mtl needs {pretrained} DIR: the folder of a finished fsbench pretrain run of this "
            "dataset (fsbench pretrain DATASET --out DIR)",
            "pretrained",
        )
    if settings["select"] == "best-val" and int(settings["eval_every"]) <= 0:
        raise SettingError(
            "{select} best-val needs validation: set {eval_every} N (N >= 1)",
            "select",
            "eval_every",
        )
    if settings["train_split"] == "trainval" and settings["select"] == "best-val":
        raise SettingError(
            "{train_split} trainval trains on the validation classes, so the model cannot be "
            "selected on them: pass {select} last (and {eval_every} 0)",
            "train_split",
            "select",
            "eval_every",
        )


def validate(settings: Mapping[str, Any], given: Mapping[str, Any] | None = None) -> None:
    """Check complete settings: each setting's declaration, then the rules tying them together.

    ``given``: the values the user set (a setting only some methods read is refused elsewhere).
    """
    check_declared(settings, given or {})
    check_combinations(settings)


def complete(settings: Mapping[str, Any]) -> dict:
    """A settings dict with the declared default of every setting it lacks (a run recorded before
    the setting existed: every setting was added with a default that keeps the old behaviour)."""
    return {**BASE, **settings}


def check_meta_batch_split(meta_batch: int, world: int) -> None:
    """Data-parallel MAML and MTL give each of ``world`` processes meta_batch / world tasks."""
    if meta_batch % world:
        raise SettingError(
            f"{{meta_batch}} {meta_batch} cannot be split over {world} processes; use a "
            f"multiple of {world} (each process adapts meta_batch / {world} tasks)",
            "meta_batch",
        )


def semantic(settings: Mapping[str, Any]) -> dict:
    """The settings that decide what a run computes: without execution-only keys and options.

    A setting missing from an older run's record (added to fsbench later) takes its BASE value:
    every setting was added with a default that keeps the earlier behaviour.
    """
    out = {k: v for k, v in complete(settings).items() if k not in EXECUTION_KEYS}
    out["data_options"] = {
        k: v
        for k, v in (settings.get("data_options") or {}).items()
        if k not in EXECUTION_DATA_OPTIONS
    }
    return out


def differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, tuple]:
    """Keys whose semantic values differ between two settings dicts: {key: (a value, b value)}."""
    sa, sb = semantic(a), semantic(b)
    out: dict[str, tuple] = {}
    for k in sorted(set(sa) | set(sb)):
        if k == "data_options":
            da, db = sa.get(k) or {}, sb.get(k) or {}
            for dk in sorted(set(da) | set(db)):
                if da.get(dk) != db.get(dk):
                    out[f"data_options.{dk}"] = (da.get(dk), db.get(dk))
        elif _as_number(sa.get(k)) != _as_number(sb.get(k)):
            out[k] = (sa.get(k), sb.get(k))
    return out


def _as_number(value: Any) -> Any:
    """Numbers compare by value (1e-3 == 0.001; a JSON round trip keeps ints and floats apart)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    return float(value)


def applies_to(name: str) -> str:
    """'every method', 'protonet', 'magnet, repmet' or the datasets of a data option."""
    if name in DATA_SETTINGS:
        s = DATA_SETTINGS[name][1]
        return ", ".join(s.datasets) if s.datasets else "every dataset"
    s = SPECS[name][1]
    return ", ".join(s.methods) if s.methods else "every method"


def describe() -> list[str]:
    """One line per setting for ``fsbench list``: flag, default, allowed values, where, help."""
    lines = []
    entries = [(k, tp, s, d) for k, (tp, s, d) in SPECS.items() if s.cli]
    entries += [(k, tp, s, None) for k, (tp, s) in DATA_SETTINGS.items() if s.cli]
    for name, _, s, default in entries:
        allowed = "|".join(s.choices) if s.choices else range_text(s)
        parts = [f"default {default!r}"] if name in SPECS else ["data option"]
        if allowed:
            parts.append(allowed)
        parts.append(applies_to(name))
        if s.kind == EXECUTION:
            parts.append("execution only")
        lines.append(f"{flag(name)} ({'; '.join(parts)}): {s.help}")
    return lines
