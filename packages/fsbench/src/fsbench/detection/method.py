"""The two few-shot detectors as engine methods, so that the engine's training loop (seeded
batches, checkpoints, exact resume, metrics log, progress) drives them unchanged.

- ``repmet-det``: the Faster R-CNN with RepMet's DML head, trained on the base (train) classes;
  in a test episode the support boxes' embeddings replace the representatives.
- ``finetune-det``: the same detector with a linear box classifier trained on the base classes;
  in a test episode a new linear classifier (background + way classes) is trained on the ROI
  features of the support images (boxes with IoU >= 0.5 to a support box: its class; the other
  proposals: background), everything else frozen (the paper's fine-tuning baseline).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fsbench.detection.chance import episode_seed
from fsbench.detection.dataset import DetectionSet
from fsbench.detection.detector import DMLHead, LinearHead, build_detector, roi_embeddings
from fsbench.detection.episodes import DetectionEpisode, check_episodes, sample_episode
from fsbench.detection.metrics import episode_map
from fsbench.methods.base import EvalResult, Method, episode_ci
from fsbench.settings import DETECTION_METHODS, Settings

if TYPE_CHECKING:
    from torchvision.models.detection import FasterRCNN

__all__ = ["DETECTION_METHODS", "DetectionMethod", "DetectionStore", "build_detection_method"]
WARMUP = 100  # iterations of linear learning-rate warm-up (torchvision's detection reference)
# Test images per forward pass: each image is detected on its own within a batch (eval-mode batch
# norm, proposals per image), so a batch only bounds memory and saves per-call overhead.
EVAL_BATCH = 16


def image_side(settings: Settings) -> int:
    """The shorter side the detector resizes images to: mnist-detect's scene side (its square
    scenes stay as they are), or ``voc_size`` for VOC's photographs."""
    return settings.voc_size if settings.dataset == "voc" else settings.scene_size


def max_side(settings: Settings) -> int:
    """The longest side after resizing: 5/3 of the shorter one for VOC (torchvision's 800/1333),
    the scene side for mnist-detect."""
    side = image_side(settings)
    return round(side * 5 / 3) if settings.dataset == "voc" else side


def chunks(items: list, size: int = EVAL_BATCH) -> list[list]:
    """``items`` in consecutive pieces of at most ``size``."""
    return [items[k : k + size] for k in range(0, len(items), size)]


@dataclass
class DetectionStore:
    """What the engine's loop needs of a split: the data and the device batches go to."""

    data: DetectionSet
    device: torch.device
    meta: dict = field(default_factory=dict)  # as ArrayStore.meta (no recorded input transform)

    def __len__(self) -> int:
        return len(self.data)

    @property
    def num_classes(self) -> int:
        return len(self.data.classes)

    def tensor(self, i: int) -> torch.Tensor:
        """Image ``i`` as a float [C, H, W] tensor in [0, 1] on the device."""
        image = torch.from_numpy(np.array(self.data.image(i)))  # a writable copy
        image = image[None] if image.ndim == 2 else image.permute(2, 0, 1)
        return image.to(self.device, torch.float32) / 255.0


class DetectionMethod(Method):
    """A Faster R-CNN trained on whole scenes; tested on few-shot detection episodes (mAP@0.5).

    The engine's loop is duck-typed over the store: a ``DetectionStore`` stands where the
    classification methods get an ``ArrayStore`` (hence the ``override`` ignores below)."""

    eval_settings = ("way", "shot", "query", "episodes", "finetune_steps", "finetune_lr")
    head = "dml"
    model: FasterRCNN

    def __init__(
        self,
        settings: Settings | dict[str, Any],
        example_shape: tuple[int, ...],
        num_classes: int,
    ) -> None:
        super().__init__(settings=settings, example_shape=example_shape, num_classes=num_classes)
        s = self.settings
        self.model = build_detector(
            self.head,
            num_classes,
            in_channels=int(example_shape[0]),
            image_size=image_side(s),
            max_size=max_side(s),
            backbone=s.detector_backbone,
            fpn_channels=s.fpn_channels,
            representation=s.representation,
            modes=s.modes,
            embedding_dim=s.embedding_dim,
            sigma=s.sigma,
            rois_per_image=s.rois_per_image,
        )

    @property
    def predictor(self) -> nn.Module:
        return self.model.roi_heads.box_predictor

    def iterations(self, store: Any) -> int:
        return self.settings.iterations

    def eval_interval(self) -> int:
        return 0  # no validation during training (as the official detection code)

    def make_optimizer(self):
        """SGD with momentum 0.9 and weight decay 1e-4 (torchvision's detection reference), a
        linear warm-up over the first ``WARMUP`` iterations, x0.1 at 2/3 of the run."""
        s = self.settings
        opt = torch.optim.SGD(self.model.parameters(), lr=s.lr, momentum=0.9, weight_decay=1e-4)
        total = s.iterations

        def factor(it: int) -> float:
            warm = min(1.0, (it + 1) / WARMUP)
            return warm * (0.1 if it >= 2 * total // 3 else 1.0)

        return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)

    def check(self, store: DetectionStore, split: str) -> None:  # type: ignore[override]
        if split == "test":
            s = self.settings
            check_episodes(store.data, s.way, s.shot, s.query, split)

    def sample_train(  # type: ignore[override]
        self, store: DetectionStore, generator: torch.Generator, iteration: int
    ):
        """``batch_size`` scenes drawn uniformly (with their boxes, labels 1..C)."""
        n = self.settings.batch_size
        picks = torch.randint(len(store), (n,), generator=generator, device=store.device)
        images, targets = [], []
        for i in picks.tolist():
            rec = store.data.records[i]
            images.append(store.tensor(i))
            targets.append(
                {
                    "boxes": torch.as_tensor(rec.boxes, device=store.device).reshape(-1, 4),
                    "labels": torch.as_tensor(rec.labels + 1, device=store.device),
                }
            )
        return images, targets

    def train_loss(self, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        images, targets = batch
        losses = self.model(images, targets)
        loss = sum(losses.values())
        metrics = {k: v.detach() for k, v in losses.items()}
        metrics["loss"] = loss.detach()
        metrics["accuracy"] = self.roi_accuracy()
        return loss, metrics

    def roi_accuracy(self) -> torch.Tensor:
        """Accuracy of the box classifier on the ROIs just sampled (background included)."""
        heads = self.model.roi_heads
        logits = getattr(self.predictor, "last_logits", None)
        if logits is None or heads.sampled_labels is None:
            return torch.zeros(())
        return (logits.argmax(1) == heads.sampled_labels).float().mean()

    # -- test episodes ------------------------------------------------------------------------
    def support_features(self, store: DetectionStore, ep: DetectionEpisode) -> torch.Tensor:
        """Box-head features [way*shot, representation] of the support boxes, class-major."""
        images = [store.tensor(i) for i, _ in ep.support]
        boxes = [torch.as_tensor(b, device=store.device).reshape(1, 4) for _, b in ep.support]
        return roi_embeddings(self.model, images, boxes)

    def detect(self, store: DetectionStore, ep: DetectionEpisode) -> list[dict]:
        """Detections on the episode's queries with the head set for the episode (labels
        0..way-1), as numpy arrays."""
        out = []
        for part in chunks(ep.queries):
            for det in self.model([store.tensor(i) for i in part]):
                out.append(
                    {
                        "boxes": det["boxes"].cpu().numpy(),
                        "scores": det["scores"].cpu().numpy(),
                        "labels": det["labels"].cpu().numpy() - 1,
                    }
                )
        return out

    def episode_detections(
        self, store: DetectionStore, ep: DetectionEpisode, seed: int
    ) -> list[dict]:
        """Set the head for the episode, detect on its queries, restore the head."""
        raise NotImplementedError

    def evaluate(  # type: ignore[override]
        self,
        store: DetectionStore,
        generator: torch.Generator,
        episodes: int,
        progress=None,
        way: int | None = None,
        shot: int | None = None,
        query: int | None = None,
        share: tuple[int, int] = (0, 1),
        gather=None,
    ) -> EvalResult:
        """mAP@0.5 over ``episodes`` test episodes, its mean and 95% CI."""
        s = self.settings
        way, shot, query = way or s.way, shot or s.shot, query or s.query
        check_episodes(store.data, way, shot, query, "test")
        maps = []
        was_training = self.model.training
        self.model.eval()
        try:
            for _ in range(episodes):
                seed = episode_seed(generator)
                ep = sample_episode(store.data, np.random.default_rng(seed), way, shot, query)
                with torch.no_grad():
                    detections = self.episode_detections(store, ep, seed)
                maps.append(episode_map(detections, ep.targets))
                if progress is not None:
                    progress.update(1)
        finally:
            self.model.train(was_training)
        return episode_ci(maps)

    def summary(self) -> dict:
        return {"parameters": sum(p.numel() for p in self.model.parameters()), "head": self.head}


class RepMetDetector(DetectionMethod):
    """repmet-det: the support boxes' embeddings become the representatives (K = shot)."""

    name = "repmet-det"
    head = "dml"

    def episode_detections(
        self, store: DetectionStore, ep: DetectionEpisode, seed: int
    ) -> list[dict]:
        head = self.predictor
        assert isinstance(head, DMLHead)  # repmet-det builds its detector with the DML head
        support = head.embedding(self.support_features(store, ep))
        head.set_episode(support, ep.shot)
        try:
            return self.detect(store, ep)
        finally:
            head.set_episode(None)


class FinetuneDetector(DetectionMethod):
    """finetune-det: a new linear classifier trained on the episode's support ROIs."""

    name = "finetune-det"
    head = "linear"

    def support_rois(
        self, store: DetectionStore, ep: DetectionEpisode
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Box-head features and labels (0 background, 1..way) of the support images' proposals
        and support boxes (each image with its own box, ``EVAL_BATCH`` images per pass)."""
        from torchvision.ops import box_iou

        model = self.model
        features, labels = [], []
        pairs = list(zip(ep.support, ep.support_labels.tolist(), strict=True))
        for part in chunks(pairs):
            images = [store.tensor(i) for (i, _), _ in part]
            image_list, _ = model.transform(images)
            feats = model.backbone(image_list.tensors)
            proposals, _ = model.rpn(image_list, feats)
            rois = []
            for ((_, box), c), props, image, size in zip(
                part, proposals, images, image_list.image_sizes, strict=True
            ):
                scale = size[0] / image.shape[-2]
                gt = torch.as_tensor(box, device=store.device).reshape(1, 4) * scale
                rois.append(torch.cat([gt, props]))
                labels.append(torch.where(box_iou(rois[-1], gt)[:, 0] >= 0.5, c + 1, 0))
            pooled = model.roi_heads.box_roi_pool(feats, rois, image_list.image_sizes)
            features.append(model.roi_heads.box_head(pooled))
        return torch.cat(features), torch.cat(labels)

    def episode_detections(
        self, store: DetectionStore, ep: DetectionEpisode, seed: int
    ) -> list[dict]:
        s = self.settings
        trained = self.predictor
        assert isinstance(trained, LinearHead)  # finetune-det's detector has the linear head
        x, y = self.support_rois(store, ep)
        way = len(ep.classes)
        gen = torch.Generator(device="cpu").manual_seed(seed % (2**63))
        classifier = nn.Linear(x.shape[1], way + 1).to(x.device)
        with torch.no_grad():
            classifier.weight.copy_(torch.randn(classifier.weight.shape, generator=gen) * 0.01)
            classifier.bias.zero_()
        opt = torch.optim.Adam(classifier.parameters(), lr=s.finetune_lr)
        with torch.enable_grad():
            for _ in range(s.finetune_steps):
                loss = F.cross_entropy(classifier(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
        episode_head = LinearHead(x.shape[1], way).to(x.device)
        episode_head.cls_score = classifier
        episode_head.bbox_pred = trained.bbox_pred
        self.model.roi_heads.box_predictor = episode_head
        try:
            return self.detect(store, ep)
        finally:
            self.model.roi_heads.box_predictor = trained


def build_detection_method(
    settings: Settings, example_shape: tuple[int, ...], num_classes: int
) -> DetectionMethod:
    """The method object of ``settings.method``."""
    cls = RepMetDetector if settings.method == "repmet-det" else FinetuneDetector
    return cls(settings, example_shape, num_classes)
