"""Classify new images with a trained run (``fsbench predict``): one episode made of two folders.

The support folder (``DIR/<class>/<image>``) gives the classes and their labelled images (any
number per class); every image of the query folder (flat, or class folders whose names then give
the true class) is scored against them by the run's method, exactly as in a test episode
(``Method.predict``). Images are made the run's input ``[C, S, S]`` by the folder dataset's rule
(``data/folder.py``): C = 1 converts to grayscale, C = 3 to RGB; the shorter side is resized to S
and the centre cropped, so an image already S x S in the run's mode keeps its pixels. A run
trained with ``--resize`` first gets its images at the size the data had, then the same resize.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from fsbench.catalog import CLASSIFIER_METHODS, MAML_METHODS
from fsbench.data.folder import (
    GRAY_MODES,
    ClassFolder,
    decode_files,
    image_files,
    is_image_name,
    probe,
    scan_classes,
    warn_skipped,
)
from fsbench.data.registry import resized
from fsbench.data.store import ArrayStore
from fsbench.engine.device import resolve_device
from fsbench.engine.evaluate import trained_settings
from fsbench.engine.run import load_tested
from fsbench.errors import FsbenchError
from fsbench.methods import build_method
from fsbench.results import RESULT, read_json

log = logging.getLogger("fsbench")
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
class InputSpec:
    """How the run's images were made: channels, side, and the side before a --resize."""

    channels: int
    size: int
    decoded_size: int  # == size unless the run resized its data at load


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


def input_spec(run_dir: Path) -> InputSpec:
    """The run's input shape from its result.json; FsbenchError for non-image runs."""
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
    decoded = shape[1]
    match = re.search(r"from (\d+)x(\d+)", str(facts.get("resized") or ""))
    if match and match.group(1) == match.group(2):
        decoded = int(match.group(1))
    return InputSpec(shape[0], shape[1], decoded)


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


def load_images(files: list[Path], spec: InputSpec) -> torch.Tensor:
    """Images as float [N, C, S, S] in [0, 1], made as the run's training data were.

    With a run that resized its data at load, an image already S x S is taken as it is; the
    others are brought to the data's own size first, then resized as the run's data were.
    """
    mode = "L" if spec.channels == 1 else "RGB"
    probed = [probe(f) for f in files]
    if spec.channels == 1:
        colour = next(
            (f for f, (m, _) in zip(files, probed, strict=True) if m not in GRAY_MODES), None
        )
        if colour is not None:
            log.warning("the model is grayscale: colour images such as %s are converted", colour)
    final = (spec.size, spec.size)
    direct = [
        i for i, (_, size) in enumerate(probed) if spec.decoded_size == spec.size or size == final
    ]
    other = sorted(set(range(len(files))) - set(direct))
    images = torch.empty((len(files), spec.channels, spec.size, spec.size), dtype=torch.uint8)
    if direct:
        chosen = [files[i] for i in direct]
        images[direct] = torch.from_numpy(decode_files(chosen, spec.size, mode, None))
    if other:
        chosen = [files[i] for i in other]
        big = torch.from_numpy(decode_files(chosen, spec.decoded_size, mode, None))
        store = ArrayStore(big, torch.zeros(len(big), dtype=torch.int64))
        images[other] = resized(store, spec.size).data
    return images.float().div_(255.0)


def build_trained(run_dir: Path, settings: dict, spec: InputSpec, device: torch.device):
    """The run's method with its tested weights and its extra state (e.g. Magnet's variance)."""
    facts = read_json(run_dir / RESULT)["data"]["train"]
    shape = (spec.channels, spec.size, spec.size)
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
    spec = input_spec(run_dir)
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
    xs = load_images(support_files, spec).to(dev)
    xq = load_images(files, spec).to(dev)
    method = build_trained(run_dir, settings, spec, dev)
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
        row = {"image": str(path), "predicted_class": guess}
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
