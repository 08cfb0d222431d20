"""torchvision's Faster R-CNN (FPN) with RepMet's DML box classifier, or a linear one.

The DML subnet follows the official RepMet code (jshtok/RepMet, MXNet,
``fpn/symbols/resnet_v1_101_fpn_dcn_rcnn_oneshot_v3.py`` and its ``..._ohem_8.yaml``), since the
paper does not give the detection head's numbers:

- the box head's ROI feature (two fully connected layers with ReLU, as torchvision's TwoMLPHead)
  -> one linear layer -> L2-normalised embedding E; K representatives per class, L2-normalised,
  the weights of a layer whose input is the constant 1;
- p_ij = exp(-||E - R_ij||^2 / (2 sigma^2)); the class score max_j p_ij (paper eq. 1-2);
  the background score 1 - max_ij p_ij (eq. 3); the classification loss a softmax
  cross-entropy over ``SOFTMAX_MUL`` x [background, class scores] (SOFTMAX_ENABLED, x15);
- the embedding loss |min_j d^2_{i*j} - min_{i != i*, j} d^2_ij + margin|_+ on the squared
  distances, margin 0.5, summed over the foreground ROIs and divided by all sampled ROIs
  (``embed_loss``'s bbox-weight mask and 1 / BATCH_ROIS);
- box regression class-agnostic (CLASS_AGNOSTIC: true), plus the usual RPN losses.

At test the representatives are replaced by the embeddings of an episode's support boxes
(``DMLHead.set_episode``): K = shot, one class per episode class.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SIGMA = 0.5
MARGIN = 0.5
SOFTMAX_MUL = 15.0


def dml_scores(
    z: torch.Tensor, representatives: torch.Tensor, modes: int, sigma: float = SIGMA
) -> tuple[torch.Tensor, torch.Tensor]:
    """([R, C+1] scores: background 1 - max p, then each class's max_j p_ij; [R, C, K] squared
    distances). z: [R, E] unit embeddings; representatives: [C*K, E] class-major."""
    # ||z||^2 + ||r||^2 - 2 z.r as the official code (cos_sim_2_dist), never an [R, C*K, E] tensor
    d2 = z.pow(2).sum(1, keepdim=True) + representatives.pow(2).sum(1) - 2 * z @ representatives.T
    d2 = d2.clamp_min(0).view(z.shape[0], -1, modes)
    p = torch.exp(-d2 / (2 * sigma**2)).amax(2)  # [R, C]
    background = 1.0 - p.amax(1, keepdim=True)
    return torch.cat([background, p], dim=1), d2


def embedding_loss(d2: torch.Tensor, labels: torch.Tensor, margin: float = MARGIN) -> torch.Tensor:
    """Official RepMet's embedding loss: mean over all ROIs of, for foreground ROIs (label
    1..C; 0 is background), |min_j d2[own] - min_{other class, j} d2 + margin|_+."""
    nearest = d2.amin(2)  # [R, C]
    fg = labels > 0
    if not bool(fg.any()):
        return d2.sum() * 0.0
    own_class = (labels[fg] - 1)[:, None]
    own = nearest[fg].gather(1, own_class)[:, 0]
    others = nearest[fg].scatter(1, own_class, float("inf")).amin(1)
    return torch.relu(own - others + margin).sum() / labels.numel()


class DMLHead(nn.Module):
    """RepMet's DML box classifier (see the module docstring) with class-agnostic box deltas."""

    def __init__(
        self,
        in_dim: int,
        num_classes: int,
        modes: int,
        embedding_dim: int,
        sigma: float = SIGMA,
        softmax_mul: float = SOFTMAX_MUL,
    ) -> None:
        super().__init__()
        self.embed = nn.Linear(in_dim, embedding_dim)
        self.representatives = nn.Parameter(
            F.normalize(torch.randn(num_classes * modes, embedding_dim), dim=1)
        )
        self.bbox_pred = nn.Linear(in_dim, 4)
        self.modes, self.sigma, self.softmax_mul = modes, sigma, softmax_mul
        self.episode: tuple[torch.Tensor, int] | None = None  # (support embeddings, shot)
        self.last_d2: torch.Tensor | None = None
        self.last_logits: torch.Tensor | None = None

    def embedding(self, x: torch.Tensor) -> torch.Tensor:
        """Unit-length embeddings [R, E] of ROI features [R, in_dim]."""
        return F.normalize(self.embed(x.flatten(1)), dim=1)

    def set_episode(self, support: torch.Tensor | None, shot: int = 1) -> None:
        """Replace the representatives by support embeddings [way*shot, E] (class-major), or
        restore the trained ones (None)."""
        self.episode = None if support is None else (F.normalize(support, dim=1), shot)

    def current(self) -> tuple[torch.Tensor, int]:
        """The representatives in use and the modes per class."""
        if self.episode is not None:
            return self.episode
        return F.normalize(self.representatives, dim=1), self.modes

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.flatten(1)
        reps, modes = self.current()
        scores, self.last_d2 = dml_scores(self.embedding(x), reps, modes, self.sigma)
        deltas = self.bbox_pred(x).repeat(1, scores.shape[1])
        logits = self.softmax_mul * scores
        self.last_logits = logits.detach()
        return logits, deltas


class LinearHead(nn.Module):
    """The baseline: a linear classifier over background + classes, class-agnostic box deltas."""

    def __init__(self, in_dim: int, num_classes: int) -> None:
        super().__init__()
        self.cls_score = nn.Linear(in_dim, num_classes + 1)
        self.bbox_pred = nn.Linear(in_dim, 4)
        self.last_logits: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.flatten(1)
        logits = self.cls_score(x)
        self.last_logits = logits.detach()
        return logits, self.bbox_pred(x).repeat(1, logits.shape[1])


def _roi_heads_class():
    from torchvision.models.detection.roi_heads import RoIHeads

    class TrackedRoIHeads(RoIHeads):
        """torchvision's RoIHeads that keeps the sampled ROIs' labels and adds the DML head's
        embedding loss to the losses in training."""

        sampled_labels: torch.Tensor | None = None

        def select_training_samples(self, proposals, targets):
            out = super().select_training_samples(proposals, targets)
            self.sampled_labels = torch.cat(out[2])
            return out

        def forward(self, features, proposals, image_shapes, targets=None):
            result, losses = super().forward(features, proposals, image_shapes, targets)
            head = self.box_predictor
            if self.training and isinstance(head, DMLHead) and head.last_d2 is not None:
                losses["loss_embedding"] = embedding_loss(head.last_d2, self.sampled_labels)
            return result, losses

    return TrackedRoIHeads


class SmallBackbone(nn.Module):
    """Four conv stages (strides 2, 4, 8, 16; one conv in the first, two in the others), small
    enough to train on two CPU cores in minutes; the FPN reads stages 2-4."""

    widths = (16, 32, 64, 96)

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        chans = (in_channels, *self.widths)
        for i in range(len(self.widths)):
            convs: list[nn.Module] = [
                nn.Conv2d(chans[i], chans[i + 1], 3, stride=2, padding=1, bias=False)
            ]
            if i > 0:
                convs += [
                    nn.BatchNorm2d(chans[i + 1]),
                    nn.ReLU(inplace=True),
                    nn.Conv2d(chans[i + 1], chans[i + 1], 3, padding=1, bias=False),
                ]
            convs += [nn.BatchNorm2d(chans[i + 1]), nn.ReLU(inplace=True)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*convs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - FPN calls layers
        for layer in self.children():
            x = layer(x)
        return x


BACKBONES = ("small", "resnet18", "resnet50")


# (mean, std) per channel: MNIST's for grayscale scenes, ImageNet's for colour photographs
IMAGE_STATS = {
    1: ((0.13,), (0.31,)),
    3: ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


def build_detector(
    head: str,
    num_classes: int,
    *,
    in_channels: int = 1,
    image_size: int = 128,
    backbone: str = "small",
    fpn_channels: int = 32,
    representation: int = 256,
    modes: int = 5,
    embedding_dim: int = 256,
    sigma: float = SIGMA,
    rois_per_image: int = 64,
    max_size: int | None = None,
):
    """A torchvision FasterRCNN with an FPN over ``backbone`` and the ``head`` ('dml' or
    'linear') box classifier. Images are resized to a shorter side of ``image_size`` and a
    longer side of at most ``max_size`` (default ``image_size``: square scenes of that side
    stay as they are); normalised with MNIST's statistics (one channel) or ImageNet's (three)."""
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import BackboneWithFPN, resnet_fpn_backbone
    from torchvision.models.detection.faster_rcnn import TwoMLPHead
    from torchvision.ops import MultiScaleRoIAlign

    if backbone == "small":
        body = SmallBackbone(in_channels)
        fpn = BackboneWithFPN(
            body,
            {"layer2": "0", "layer3": "1", "layer4": "2"},
            list(SmallBackbone.widths[1:]),
            fpn_channels,
        )
        sizes = tuple((s,) for s in (image_size // 8, image_size // 4, image_size // 2, image_size))
    else:
        fpn = resnet_fpn_backbone(backbone_name=backbone, weights=None, trainable_layers=5)
        if in_channels != 3:
            fpn.body.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        sizes = tuple((s,) for s in (32, 64, 128, 256, 512))
    anchors = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))
    names = [k for k in ("0", "1", "2", "3") if backbone != "small" or k != "3"]
    pool = MultiScaleRoIAlign(names, 7, 2)
    box_head = TwoMLPHead(fpn.out_channels * 49, representation)
    if head == "dml":
        predictor: nn.Module = DMLHead(representation, num_classes, modes, embedding_dim, sigma)
    elif head == "linear":
        predictor = LinearHead(representation, num_classes)
    else:
        raise ValueError(f"head '{head}' unknown; choose dml or linear")
    model = FasterRCNN(
        fpn,
        min_size=image_size,
        max_size=max_size or image_size,
        image_mean=list(IMAGE_STATS[in_channels][0]),
        image_std=list(IMAGE_STATS[in_channels][1]),
        rpn_anchor_generator=anchors,
        box_roi_pool=pool,
        box_head=box_head,
        box_predictor=predictor,
        box_batch_size_per_image=rois_per_image,
        rpn_pre_nms_top_n_train=600,
        rpn_post_nms_top_n_train=300,
        rpn_pre_nms_top_n_test=300,
        rpn_post_nms_top_n_test=150,
        box_detections_per_img=50,
    )
    old = model.roi_heads
    tracked = _roi_heads_class()(
        old.box_roi_pool,
        old.box_head,
        old.box_predictor,
        0.5,
        0.5,
        rois_per_image,
        0.25,
        None,
        old.score_thresh,
        old.nms_thresh,
        old.detections_per_img,
    )
    model.roi_heads = tracked
    return model


def roi_embeddings(model, images: list[torch.Tensor], boxes: list[torch.Tensor]) -> torch.Tensor:
    """Box-head features [sum(boxes), representation] of given boxes in given images (eval mode:
    the same transform, backbone and ROI pooling as detection)."""
    image_list, targets = model.transform(images, [{"boxes": b} for b in boxes])
    features = model.backbone(image_list.tensors)
    pooled = model.roi_heads.box_roi_pool(
        features, [t["boxes"] for t in targets], image_list.image_sizes
    )
    return model.roi_heads.box_head(pooled)
