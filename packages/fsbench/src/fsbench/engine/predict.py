"""Classify new images with a trained run (``fsbench predict``): one episode made of two folders.

The support folder (``DIR/<class>/<image>``) gives the classes and their labelled images (any
number per class); every image of the query folder (flat, or class folders whose names then give
the true class) is scored against them by the run's method, exactly as in a test episode
(``Method.predict``). Images become the run's input ``[C, S, S]`` through the run's own input
transform (``data/transform.py``), recorded in its result.json (``data.train.transform``): the
resize and filter, polarity, channels, any ``--resize`` and the scaling its training data went
through, so new Omniglot drawings (black on white, 105x105) are shrunk with LANCZOS and inverted
as the loader's were. Give new images in the form the dataset ships them. A result.json written
before the record existed gets the folder dataset's rule (grayscale or RGB, centred square,
bilinear, then the run's ``--resize``) and one warning line.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fsbench.catalog import CLASSIFIER_METHODS, MAML_METHODS
from fsbench.data.folder import (
    GRAY_MODES,
    ClassFolder,
    image_files,
    is_image_name,
    probe,
    scan_classes,
    warn_skipped,
)
from fsbench.data.transform import InputTransform, photo_transform
from fsbench.engine.device import resolve_device
from fsbench.engine.evaluate import trained_settings
from fsbench.engine.run import load_tested
from fsbench.errors import FsbenchError
from fsbench.methods import build_method
from fsbench.results import RESULT, atomic_write_bytes, disk_full_as_error, read_json

log = logging.getLogger("fsbench")


def check_output(out: Path, overwrite: bool) -> None:
    """Before predicting: ``--out`` must not exist (unless ``overwrite``) nor lie in a run folder
    another process holds (its lock)."""
    from fsbench.engine.run_lock import check_free

    out = Path(out)
    if out.exists() and not overwrite:
        raise FsbenchError(f"--out {out} exists; pass --overwrite to replace it")
    check_free(out.parent)


def write_predictions(out: Path, text: str) -> None:
    """Write ``text`` to the file ``out`` atomically (a full disk is one line naming ``out``),
    refused when ``out``'s folder is a run folder another process holds."""
    from fsbench.engine.run_lock import check_free

    out = Path(out)
    check_free(out.parent)
    with disk_full_as_error(out):
        out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, text.encode())


FIXED_WAY = (*MAML_METHODS, "mtl")  # one output per class: the support must have that many
SCORES = {
    "protonet": "softmax over minus the distance to each class prototype (support mean)",
    "maml": "softmax of the logits after adapting to the support set",
    "fomaml": "softmax of the logits after adapting to the support set",
    "mtl": "softmax of the logits of the classifier fitted to the support set",
    "pretrain": "softmax of the logits of a new linear head fitted to the support features",
    "magnet": "the soft vote of the nearest modes (k-means of each class's support)",
    "repmet": "softmax over classes of minus the squared distance to the nearest mode / 2 sigma^2",
}


@dataclass
class Prediction:
    """Scores of every query image against the support classes."""

    method: str
    classes: list[str]
    files: list[Path]
    truth: list[str] | None
    probabilities: torch.Tensor  # [Q, way]
    meaning: str

    @property
    def predicted(self) -> list[str]:
        return [self.classes[i] for i in self.probabilities.argmax(1).tolist()]

    @property
    def accuracy(self) -> float | None:
        """Fraction of labelled queries whose predicted class is the true one."""
        if self.truth is None:
            return None
        hits = sum(p == t for p, t in zip(self.predicted, self.truth, strict=True))
        return hits / len(self.truth)


def run_transform(run_dir: Path) -> InputTransform:
    """The input transform of the run in ``run_dir``, from its result.json; FsbenchError for
    runs that are not of square 1- or 3-channel images."""
    path = run_dir / RESULT
    if not path.is_file():
        raise FsbenchError(f"{run_dir} holds no {RESULT}: predict needs a finished fsbench run")
    facts = (read_json(path).get("data") or {}).get("train") or {}
    shape = list(facts.get("example_shape") or [])
    if len(shape) != 3 or shape[0] not in (1, 3) or shape[1] != shape[2]:
        raise FsbenchError(
            f"{run_dir} was trained on examples of shape {shape}; predict needs a model of "
            "square 1- or 3-channel images"
        )
    record = facts.get("transform")
    if record is not None:
        transform = InputTransform.from_dict(record)
    else:
        decoded = shape[1]
        match = re.search(r"from (\d+)x(\d+)", str(facts.get("resized") or ""))
        if match and match.group(1) == match.group(2):
            decoded = int(match.group(1))
        transform = photo_transform(decoded, shape[0])
        if decoded != shape[1]:
            transform = transform.with_resize(shape[1])
        log.warning(
            "%s records no input transform (written by an older fsbench); new images get the "
            "folder dataset's rule: %s",
            path,
            transform.describe(),
        )
    if [transform.channels, transform.output_size, transform.output_size] != shape:
        raise FsbenchError(
            f"{path}: the recorded input transform makes {transform.channels}x"
            f"{transform.output_size}x{transform.output_size} inputs but the run was trained on "
            f"{shape}"
        )
    return transform


def read_query(folder: Path, skipped: list[Path]) -> tuple[list[Path], list[str] | None]:
    """The query images and, for class folders, their true classes; flat folders are unlabelled."""
    if not folder.is_dir():
        raise FsbenchError(f"--query {folder} is not a folder")
    loose = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    dirs = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if dirs and any(is_image_name(p) for p in loose):
        raise FsbenchError(
            f"--query {folder} holds both images and class folders; use one layout: "
            "DIR/<image> (unlabelled) or DIR/<class>/<image> (labelled)"
        )
    if dirs:
        classes = scan_classes(folder, skipped)
        files = [f for c in classes for f in c.files]
        return files, [c.name for c in classes for _ in c.files]
    files = image_files(folder, skipped)
    if not files:
        raise FsbenchError(f"--query {folder} holds no images")
    return files, None


def load_images(files: list[Path], transform: InputTransform) -> torch.Tensor:
    """Images as float [N, C, S, S] in [0, 1], made by the run's input transform."""
    if transform.channels == 1:
        colour = next((f for f in files if probe(f)[0] not in GRAY_MODES), None)
        if colour is not None:
            log.warning("the model is grayscale: colour images such as %s are converted", colour)
    return transform.load(files)


def build_trained(run_dir: Path, settings: dict, transform: InputTransform, device: torch.device):
    """The run's method with its tested weights and its extra state (e.g. Magnet's variance)."""
    facts = read_json(run_dir / RESULT)["data"]["train"]
    side = transform.output_size
    shape = (transform.channels, side, side)
    torch.manual_seed(int(settings["seed"]))
    method = build_method(settings, shape, int(facts["classes"]))
    load_tested(method, run_dir, settings)
    return method.to(device)


def check_classes(
    method: str, settings: dict, support: list[ClassFolder], truth: list[str] | None
) -> None:
    """The support set must be usable by the method; labelled queries must be support classes."""
    way = len(support)
    if way < 2:
        raise FsbenchError(f"--support needs at least 2 class folders, found {way}")
    if method in FIXED_WAY and way != int(settings["way"]):
        raise FsbenchError(
            f"--support has {way} classes but this {method} model was trained "
            f"{settings['way']}-way (one output per class); give it {settings['way']} classes"
        )
    names = {c.name for c in support}
    unknown = sorted({t for t in truth or [] if t not in names})
    if unknown:
        raise FsbenchError(
            f"--query class folder {unknown[0]!r} is not a class of --support "
            f"({', '.join(sorted(names))})"
        )


def predict_folders(
    run_dir: Path, support_dir: Path, query_dir: Path, *, device: str = "auto"
) -> Prediction:
    """Score every query image against the support classes with the trained run in ``run_dir``."""
    run_dir = Path(run_dir)
    settings, _ = trained_settings(run_dir)
    method_name = settings["method"]
    if method_name in CLASSIFIER_METHODS:
        raise FsbenchError(
            f"{run_dir} is a {method_name} classifier of MNIST-1D signals; predict needs an "
            "episodic image model (protonet, maml, mtl, pretrain, magnet, repmet)"
        )
    transform = run_transform(run_dir)
    skipped: list[Path] = []
    support = scan_classes(Path(support_dir), skipped)
    files, truth = read_query(Path(query_dir), skipped)
    warn_skipped(skipped)
    check_classes(method_name, settings, support, truth)
    dev = resolve_device(device)
    support_files = [f for c in support for f in c.files]
    support_y = torch.arange(len(support)).repeat_interleave(
        torch.tensor([len(c.files) for c in support])
    )
    xs = load_images(support_files, transform).to(dev)
    xq = load_images(files, transform).to(dev)
    method = build_trained(run_dir, settings, transform, dev)
    try:
        probs = method.predict(xs, support_y.to(dev), xq, len(support))
    except ValueError as exc:
        raise FsbenchError(f"{run_dir}: {exc}") from None
    return Prediction(
        method_name,
        [c.name for c in support],
        files,
        truth,
        probs.cpu(),
        SCORES.get(method_name, "class probabilities"),
    )


def to_csv(pred: Prediction) -> str:
    """One row per query: image, predicted class, [true class,] one score column per class."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    truth = ["true_class"] if pred.truth is not None else []
    writer.writerow(["image", "predicted_class", *truth, *(f"score_{c}" for c in pred.classes)])
    for i, (path, guess) in enumerate(zip(pred.files, pred.predicted, strict=True)):
        row = [str(path), guess, *([pred.truth[i]] if pred.truth is not None else [])]
        writer.writerow(row + [f"{p:.6f}" for p in pred.probabilities[i].tolist()])
    return buf.getvalue()


def to_json(pred: Prediction) -> str:
    """The predictions, the classes, what the scores mean and (labelled queries) the accuracy."""
    rows = []
    for i, (path, guess) in enumerate(zip(pred.files, pred.predicted, strict=True)):
        row: dict[str, Any] = {"image": str(path), "predicted_class": guess}
        if pred.truth is not None:
            row["true_class"] = pred.truth[i]
        row["scores"] = dict(
            zip(pred.classes, (round(p, 6) for p in pred.probabilities[i].tolist()), strict=True)
        )
        rows.append(row)
    doc = {
        "method": pred.method,
        "classes": pred.classes,
        "scores": pred.meaning,
        "accuracy": pred.accuracy,
        "predictions": rows,
    }
    return json.dumps(doc, indent=2) + "\n"
