"""A few-shot detection run end to end, in the engine's run folder: train with the engine's loop
(checkpoint.pt, exact --resume, metrics.jsonl), test on episodes, write result.json (mAP@0.5 as
``map50`` and, for ``fsbench table``, ``accuracy``), episodes.csv and the training curve.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import time
from pathlib import Path
from typing import Any

import torch

from fsbench.data.listing import folder_listings
from fsbench.detection.chance import random_boxes_map
from fsbench.detection.dataset import DetectionSet
from fsbench.detection.method import (
    DetectionMethod,
    DetectionStore,
    build_detection_method,
)
from fsbench.detection.scenes import SceneSpec, load_scenes
from fsbench.engine.device import configure_backend, resolve_device, seed_everything
from fsbench.engine.run import check_resume, prepare_out_dir, write_run_files
from fsbench.engine.stop import StopRequest
from fsbench.engine.trainer import TEST_STREAM, load_checkpoint, make_generator, train
from fsbench.errors import FsbenchError
from fsbench.results import CHECKPOINT, git_commit, machine, versions
from fsbench.settings import BASE, DETECTION_METHODS, SettingError, Settings, validate

log = logging.getLogger("fsbench")

# the detectors and their datasets, as `fsbench list` shows them
DETECTOR_DESCRIPTIONS = {
    "repmet-det": "RepMet detection (Karlinsky et al. 2019): Faster R-CNN + FPN whose box "
    "classifier is the DML head; the support boxes' embeddings are the representatives",
    "finetune-det": "the paper's baseline: the same detector with a linear box classifier, a new "
    "one fine-tuned on each episode's support boxes",
}
DETECTION_DATASETS = {
    "mnist-detect": "scenes of 1-4 DoubleMNIST-class objects (64/16/20 train/val/test classes) "
    "and clutter digits, generated from a seed (--scene-* flags), grayscale",
    "voc": "Pascal VOC from --dataset-dir (a VOCdevkit): trains on VOC07+12 trainval's 15 base "
    "classes of Kang et al.'s split --voc-split, tests episodes of its 5 novel classes on "
    "VOC2007 test",
}

# The detection preset: the values of shared settings (declared in fsbench.settings) that differ
# from their defaults there; the detection-only settings (detector_backbone, fpn_channels, the
# scenes...) have their defaults in the declaration. The RepMet head's numbers are the official
# detection configuration's (jshtok/RepMet ..._ohem_8.yaml: embedding 256, 5 representatives,
# sigma 0.5, margin 0.5); the detector's size, the schedule and the scenes are fsbench's, sized
# for two CPU cores.
PRESET: dict[str, Any] = {
    "query": 10,  # query images per class, as the official benchmark (Nquery_cat=10)
    "episodes": 500,  # as the official benchmark (Nepisodes=500)
    "iterations": 3000,
    "batch_size": 4,
    "lr": 0.02,
    "modes": 5,
    "embedding_dim": 256,
    "sigma": 0.5,
    "checkpoint_every": 500,
}
# The settings each detector, and each dataset, reads (any other one given is refused, naming
# its flag).
COMMON_READS = (
    "way", "shot", "query", "iterations", "episodes", "seed", "lr", "batch_size", "threads",
    "checkpoint_every", "detector_backbone", "backbone_weights", "fpn_channels", "representation",
    "rois_per_image",
)  # fmt: skip
READS = {
    "repmet-det": (*COMMON_READS, "modes", "sigma", "embedding_dim"),
    "finetune-det": (*COMMON_READS, "finetune_steps", "finetune_lr"),
}
DATASET_READS = {
    "mnist-detect": (
        "scene_size", "train_scenes", "val_scenes", "test_scenes", "clutter", "scene_seed"
    ),
    "voc": ("voc_split", "voc_size"),
}  # fmt: skip
DEVIATIONS = [
    "no OHEM, no soft-NMS, no additional linear classification loss, no representative "
    "re-clustering (the official configuration has them)",
]
DATA_DEVIATIONS = {
    "mnist-detect": "data: generated mnist-detect scenes (DoubleMNIST classes as objects), "
    "not ImageNet-LOC/VOC",
    "voc": "data: VOC07+12 trainval with the base classes' boxes for training; RepMet's episodes "
    "(support and queries) of the novel classes drawn from VOC2007 test (Kang et al. and TFA "
    "instead take K shots from trainval and score the whole VOC2007 test set)",
}


def protocol_notes(settings: Settings) -> list[str]:
    """How a detection run differs from the paper's: its backbone, its data, the head's extras."""
    net = {"small": "a small 4-stage CNN"}.get(
        settings.detector_backbone, settings.detector_backbone
    )
    start = (
        f"starting from {settings.backbone_weights}"
        if settings.backbone_weights
        else "trained from scratch on the base classes"
    )
    backbone = (
        f"backbone: {net} + FPN {start} (the paper: ResNet-101 FPN-DCN pre-trained on ImageNet); "
        "no deformable convolutions"
    )
    return [backbone, DATA_DEVIATIONS[settings.dataset], *DEVIATIONS]


def settings_for(
    method: str, dataset: str, dataset_dir: str | Path | None = None, **overrides: Any
) -> Settings:
    """The declared defaults, the detection preset, then the given values (None: keep), checked
    as the command line checks them (a SettingError names the setting). ``dataset_dir``: where
    VOC is (a VOCdevkit or one year's folder); mnist-detect is generated."""
    if method not in DETECTION_METHODS:
        raise FsbenchError(
            f"method '{method}' is not a detector; choose {', '.join(DETECTION_METHODS)}"
        )
    if dataset not in DETECTION_DATASETS:
        raise FsbenchError(
            f"dataset '{dataset}' has no boxes; detection runs on {', '.join(DETECTION_DATASETS)}"
        )
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(k for k in given if k not in READS[method] + DATASET_READS[dataset])
    if unknown:
        of_a_dataset = any(unknown[0] in reads for reads in DATASET_READS.values())
        where = dataset if of_a_dataset else method
        raise SettingError(f"{{{unknown[0]}}} does not apply to {where}", unknown[0])
    values = {**BASE, **PRESET, **given, "method": method, "dataset": dataset}
    for key in ("way", "shot", "query"):  # detection trains on whole scenes: never read
        values[f"train_{key}"] = values[key]
    validate(values, given)  # the values first, then where the data are
    values["data_options"] = detection_data_options(dataset, dataset_dir)
    return Settings.from_dict(values)


def detection_data_options(dataset: str, dataset_dir: str | Path | None) -> dict[str, Any]:
    """``{"path": ...}`` for VOC (its layout checked now, before an output folder is made);
    nothing for the generated scenes, where a folder is refused."""
    if dataset != "voc":
        if dataset_dir is not None:
            raise SettingError(
                f"{{dataset_dir}} does not apply to {dataset} (it is generated)", "dataset_dir"
            )
        return {}
    if dataset_dir is None:
        raise SettingError(
            "voc needs {dataset_dir}: the VOCdevkit folder (VOC2007 with its test set, and "
            "VOC2012) or one year's folder",
            "dataset_dir",
        )
    from fsbench.detection.voc import check_layout

    check_layout(dataset_dir)
    return {"path": str(Path(dataset_dir).expanduser().resolve())}


def preset_deviations(settings: Settings) -> list[dict]:
    """The settings that differ from the detection preset (for the run's way and shot), as
    every run records them: {setting, value, preset}."""
    from fsbench.resolve import TRAIN_EPISODE
    from fsbench.settings import differences

    preset = settings_for(
        settings.method,
        settings.dataset,
        settings.data_options.get("path"),
        way=settings.way,
        shot=settings.shot,
    )
    diff = differences(settings.as_dict(), preset.as_dict())
    for key in ("seed", *TRAIN_EPISODE):  # detection trains on whole images, not episodes
        diff.pop(key, None)
    return [{"setting": k, "value": v[0], "preset": v[1]} for k, v in diff.items()]


def scene_spec(settings: Settings) -> SceneSpec:
    return SceneSpec(
        size=settings.scene_size,
        clutter=settings.clutter,
        train_scenes=settings.train_scenes,
        val_scenes=settings.val_scenes,
        test_scenes=settings.test_scenes,
        seed=settings.scene_seed,
    )


def load_split(settings: Settings, split: str, data_root: Path | None) -> DetectionSet:
    """A split of the run's dataset: VOC's few-shot split read from its folder, or the scenes
    (generated and cached on first use)."""
    from fsbench.data.registry import default_data_root

    if settings.dataset == "voc":
        from fsbench.detection.voc import few_shot_split

        return few_shot_split(settings.data_options["path"], split, settings.voc_split)
    root = Path(data_root).expanduser() if data_root is not None else default_data_root()
    return load_scenes(scene_spec(settings), split, root)


def load_backbone_weights(method: DetectionMethod, path: str | Path) -> None:
    """Load a user's state dict (a file of torch.save, optionally under 'model' or
    'state_dict') into the FPN backbone's body; one line when it does not fit."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FsbenchError(f"--backbone-weights {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise FsbenchError(f"--backbone-weights {path}: not a torch state dict ({exc})") from None
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    body = method.model.backbone.body
    try:
        missing, _ = body.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise FsbenchError(f"--backbone-weights {path} does not fit the backbone: {exc}") from None
    if len(missing) == len(body.state_dict()):
        raise FsbenchError(
            f"--backbone-weights {path}: no tensor matches the {method.settings.detector_backbone} "
            "backbone's names (e.g. torchvision's resnet50 keys for --detector-backbone resnet50)"
        )


def test_result(
    method: DetectionMethod, store: DetectionStore, settings: Settings, quiet: bool = True
) -> dict:
    """mAP@0.5 over the test episodes, and of random boxes on the same episodes."""
    from tqdm import tqdm

    from fsbench.engine.trainer import show_progress

    s = settings
    with tqdm(total=s.episodes, desc=f"test {s.method}", disable=not show_progress(quiet)) as bar:
        gen = make_generator(store.device, s.seed + TEST_STREAM)
        res = method.evaluate(store, gen, s.episodes, progress=bar)
    gen = make_generator(store.device, s.seed + TEST_STREAM)
    chance = random_boxes_map(store.data, gen, s.episodes, s.way, s.shot, s.query)
    return {"res": res, "chance": chance}


def run_detection(
    settings: Settings,
    out: Path,
    *,
    data_root: Path | None = None,
    device: str = "auto",
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    time_limit: float | None = None,
    started: float | None = None,
) -> dict:
    """Train ``settings.method`` on the train split, test it on episodes, write the run.

    With ``time_limit`` (minutes after ``started``, a ``time.time()``; default now) or a stop
    signal, training stops at an iteration boundary with a checkpoint and ``RunStopped`` is raised
    (no result.json; ``resume`` continues exactly), as every other method's run."""
    out = Path(out)
    stop = StopRequest.from_time_limit(time_limit, started)
    record = settings.as_dict()
    dev = resolve_device(device)
    if resume:
        check_resume(out, record)
    lock = prepare_out_dir(out, resume, overwrite)  # one writer: OUT's lock until we return
    try:
        configure_backend(dev)
        if settings.threads:
            torch.set_num_threads(settings.threads)
        seed_everything(settings.seed)
        t0 = time.perf_counter()
        train_set = load_split(settings, "train", data_root)
        test_set = load_split(settings, "test", data_root)
        train_store, test_store = DetectionStore(train_set, dev), DetectionStore(test_set, dev)
        shape = tuple(train_store.tensor(0).shape)
        method = build_detection_method(settings, shape, len(train_set.classes))
        method.check(test_store, "test")
        if settings.backbone_weights:
            load_backbone_weights(method, settings.backbone_weights)
        method.to(dev)
        load_seconds = time.perf_counter() - t0
        outcome = train(
            method,
            train_store,  # type: ignore[arg-type]  # the loop is duck-typed over the store
            record,
            out,
            device=dev,
            resume=resume,
            quiet=quiet,
            stop=stop,
        )
        t_eval = time.perf_counter()
        tested = test_result(method, test_store, settings, quiet)
        result = build_detection_result(
            settings,
            tested,
            dev=dev,
            iterations=outcome.iteration,
            timings={
                "load_seconds": round(load_seconds, 2),
                "train_seconds": round(outcome.seconds, 2),
                "eval_seconds": round(time.perf_counter() - t_eval, 2),
            },
            data={"train": describe(train_set, "train"), "test": describe(test_set, "test")},
        )
        folders = folder_listings(settings.data_options)
        if folders:  # a user's data folder (VOC): what fsbench rerun checks before it runs
            result["data"]["folders"] = folders
        result["summary"] = method.summary()
        write_run_files(out, result, tested["res"].per_episode, curve=True)
        return result
    finally:
        lock.release()


def describe(data: DetectionSet, split: str) -> dict:
    image = data.image(0)
    shape = [1, *image.shape] if image.ndim == 2 else [image.shape[2], *image.shape[:2]]
    return {
        "split": split,
        "images": len(data),
        "classes": len(data.classes),
        "boxes": int(sum(len(r.boxes) for r in data.records)),
        "example_shape": shape,
    }


def build_detection_result(
    settings: Settings, tested: dict, *, dev, iterations: int, timings: dict, data: dict
) -> dict:
    """result.json of a detection run (or of an evaluation of one)."""
    from fsbench.detection.metrics import INTERPOLATION

    res = tested["res"]
    return {
        "method": settings.method,
        "dataset": settings.dataset,
        "dataset_label": settings.dataset,
        "way": settings.way,
        "shot": settings.shot,
        "query": settings.query,
        "metric": "mAP@0.5",
        "map50": res.accuracy,
        "accuracy": res.accuracy,  # the metric, under the name fsbench table reads
        "ci95": res.ci95,
        "ci95_method": res.ci95_method,
        "ap_interpolation": INTERPOLATION,
        "random_boxes_map50": tested["chance"],
        "episodes": res.episodes,
        "iterations": iterations,
        "seed": settings.seed,
        "device": str(dev),
        **timings,
        "wall_seconds": round(sum(timings.values()), 3),
        "torch_threads": torch.get_num_threads(),
        "machine": machine(),
        "published_percent": None,
        "not_comparable": "no published number: the paper's detection results are on its own "
        "ImageNet-LOC episodes with an ImageNet-pretrained ResNet-101 (see the README)",
        "protocol_notes": protocol_notes(settings),
        "deviations": preset_deviations(settings),
        "settings": settings.as_dict(),
        "data": data,
        "versions": versions(),
        "git": git_commit(),
        "finished_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "per_episode_file": "episodes.csv",
    }


def run_checkpoint(run_dir: Path) -> dict:
    """The checkpoint of a detection run (one line when it has none)."""
    ckpt = Path(run_dir) / CHECKPOINT
    if not ckpt.is_file():
        raise FsbenchError(f"{run_dir} holds no {CHECKPOINT}; is it a detection run folder?")
    return load_checkpoint(ckpt)


def recorded_settings(run_dir: Path) -> Settings:
    """The settings a detection run recorded in its checkpoint."""
    return Settings.from_dict(run_checkpoint(run_dir)["settings"])


def trained_method(
    run_dir: Path, data_root: Path | None, device: str
) -> tuple[DetectionMethod, Settings, torch.device]:
    """The method of a detection run with its trained weights, its settings and the device
    (for ``fsbench eval`` and ``predict``; the shape and classes come from result.json)."""
    from fsbench.results import RESULT, read_json

    state = run_checkpoint(run_dir)
    settings = Settings.from_dict(state["settings"])
    dev = resolve_device(device)
    trained: dict[str, Any] = {}
    if (Path(run_dir) / RESULT).is_file():  # the training split's shape and classes
        trained = (read_json(Path(run_dir) / RESULT).get("data") or {}).get("train") or {}
    if "example_shape" in trained:
        shape, classes = tuple(trained["example_shape"]), int(trained["classes"])
    else:  # not finished yet: ask the training split itself
        train_set = load_split(settings, "train", data_root)
        shape = tuple(DetectionStore(train_set, dev).tensor(0).shape)
        classes = len(train_set.classes)
    method = build_detection_method(settings, shape, classes)
    method.model.load_state_dict(state["model"])
    method.to(dev)
    method.model.eval()
    return method, settings, dev


def evaluate_detection_run(
    run_dir: Path,
    out: Path,
    *,
    way: int | None = None,
    shot: int | None = None,
    query: int | None = None,
    episodes: int | None = None,
    seed: int | None = None,
    data_root: Path | None = None,
    device: str = "auto",
    overwrite: bool = False,
    quiet: bool = True,
) -> dict:
    """Test a trained detection run on other episodes (way, shot, ...) without retraining;
    writes result.json and episodes.csv to ``out`` (locked while this runs: one writer)."""
    from fsbench.engine import run_lock
    from fsbench.engine.run import check_out_dir, lock_existing
    from fsbench.results import RESULT

    out = Path(out)
    check_out_dir(out, resume=False, overwrite=overwrite)
    lock = lock_existing(out)
    try:
        method, settings, dev = trained_method(run_dir, data_root, device)
        asked = {"way": way, "shot": shot, "query": query, "episodes": episodes, "seed": seed}
        given: dict[str, Any] = {k: v for k, v in asked.items() if v is not None}
        settings = dataclasses.replace(settings, **given)
        if settings.threads:
            torch.set_num_threads(settings.threads)
        method.settings = settings
        test_set = load_split(settings, "test", data_root)
        store = DetectionStore(test_set, dev)
        method.check(store, "test")
        t0 = time.perf_counter()
        tested = test_result(method, store, settings, quiet)
        result = build_detection_result(
            settings,
            tested,
            dev=dev,
            iterations=int(run_checkpoint(run_dir)["iteration"]),
            timings={"eval_seconds": round(time.perf_counter() - t0, 2)},
            data={"test": describe(test_set, "test")},
        )
        result["evaluated_run"] = str(run_dir)
        out.mkdir(parents=True, exist_ok=True)
        lock = lock or run_lock.acquire(out)
        (out / RESULT).unlink(missing_ok=True)
        write_run_files(out, result, tested["res"].per_episode, curve=False)
        return result
    finally:
        if lock is not None:
            lock.release()


def is_detection_run(run_dir: Path) -> bool:
    """Whether RUN_DIR holds a detection run (its result's or checkpoint's method is a detector)."""
    from fsbench.results import RESULT, read_json

    path = Path(run_dir) / RESULT
    try:
        if path.is_file():
            return read_json(path)["method"] in DETECTION_METHODS
        if (Path(run_dir) / CHECKPOINT).is_file():
            return recorded_settings(run_dir).method in DETECTION_METHODS
    except Exception:  # unreadable or foreign: not ours, the caller says what is wrong
        return False
    return False
