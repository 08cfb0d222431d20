"""How an image file becomes a model input, as data: one ``InputTransform`` per image dataset.

The loaders decode their images with it and record it (``store.meta["transform"]``, so it lands
in result.json's ``data.train.transform`` and in the checkpoint); ``fsbench predict`` reads it
back and puts new images through exactly the same steps, so a drawing classified by predict
becomes the same tensor as the loader's own copy of it. The steps, in order:

1. decode with Pillow (JPEGs optionally at a reduced scale first: ``jpeg_draft``);
2. ``channels``: 1 is Pillow's 8-bit luma ("L"), 3 is RGB (alpha dropped, palette and CMYK
   converted);
3. resize to ``size`` x ``size`` with Pillow's ``filter``: ``fit="crop"`` takes the centred
   square of side min(width, height), ``fit="stretch"`` the whole image (an image already
   ``size`` x ``size`` keeps its pixels either way);
4. ``invert``: v -> 255 - v (Omniglot's black strokes on white become 255 on 0);
5. ``resize``: a run's ``--resize``, torch bilinear with antialiasing on the uint8 images;
6. ``scale``: uint8 to float32 in [0, 1] (x / 255), as episodes see them.
"""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from fsbench.errors import FsbenchError

FITS = ("crop", "stretch")
FILTERS = {"bilinear": Image.Resampling.BILINEAR, "lanczos": Image.Resampling.LANCZOS}
SCALES = ("x/255",)
# A file path, or in-memory bytes (with a name for messages where a tuple is given).
ImageSource = Path | str | bytes | tuple[str, bytes]
DECODE_ERRORS = (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError)


def to_rgb(im: Image.Image) -> Image.Image:
    """Any PIL image as RGB: grayscale and CMYK converted, transparency dropped."""
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")  # so the palette's transparency does not warn
    return im if im.mode == "RGB" else im.convert("RGB")


def to_mode(im: Image.Image, mode: str) -> Image.Image:
    """Any PIL image as ``mode``: "RGB" (``to_rgb``) or "L" (8-bit grayscale, PIL's luma)."""
    if mode == "RGB":
        return to_rgb(im)
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    return im if im.mode == "L" else im.convert("L")


def fit_square(
    im: Image.Image, size: int, resample: Image.Resampling = Image.Resampling.BILINEAR
) -> Image.Image:
    """The centred square of side min(w, h), resized to size x size (antialiased).

    The same as resizing the shorter side to ``size`` and then cropping the centre.
    """
    width, height = im.size
    side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    box = (left, top, left + side, top + side)
    return im.resize((size, size), resample, box=box)


def resize_uint8(data: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 images [N, C, H, W] resized to size x size: torch bilinear with antialiasing, rounded."""
    out = torch.empty((len(data), data.shape[1], size, size), dtype=torch.uint8)
    for lo in range(0, len(data), 4096):
        chunk = data[lo : lo + 4096].float()
        small = torch.nn.functional.interpolate(
            chunk, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
        out[lo : lo + 4096] = small.round_().clamp_(0, 255).to(torch.uint8).cpu()
    return out


@dataclass(frozen=True)
class InputTransform:
    """The steps from an image file to a model input (module docstring), as JSON-able data."""

    channels: int  # 1 (PIL "L") or 3 (RGB)
    size: int  # side after Pillow's resize
    fit: str = "crop"  # "crop": centred square of the shorter side; "stretch": the whole image
    filter: str = "bilinear"  # Pillow's filter: bilinear or lanczos
    invert: bool = False  # v -> 255 - v after the resize
    jpeg_draft: bool = False  # JPEGs decoded by Pillow's draft at >= 2 * size first
    resize: int | None = None  # then torch bilinear antialias to resize x resize (--resize)
    scale: str = "x/255"  # uint8 to float32 in [0, 1]

    def __post_init__(self) -> None:
        def bad(field: str, allowed: str) -> FsbenchError:
            value = getattr(self, field)
            return FsbenchError(f"input transform: {field} must be {allowed}, got {value!r}")

        if self.channels not in (1, 3) or isinstance(self.channels, bool):
            raise bad("channels", "1 or 3")
        for field in ("size", "resize"):
            value = getattr(self, field)
            if field == "resize" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise bad(field, "an integer >= 1")
        if self.fit not in FITS:
            raise bad("fit", " or ".join(FITS))
        if self.filter not in FILTERS:
            raise bad("filter", " or ".join(FILTERS))
        if self.scale not in SCALES:
            raise bad("scale", " or ".join(SCALES))
        for field in ("invert", "jpeg_draft"):
            if not isinstance(getattr(self, field), bool):
                raise bad(field, "true or false")

    @property
    def mode(self) -> str:
        """Pillow's mode of the decoded image: "L" or "RGB"."""
        return "L" if self.channels == 1 else "RGB"

    @property
    def output_size(self) -> int:
        """The side of the model's input: ``resize`` when set, else ``size``."""
        return self.resize or self.size

    def to_dict(self) -> dict[str, Any]:
        """The transform as a JSON-able dict (every field, so a record never depends on defaults)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> InputTransform:
        """The transform of a ``to_dict`` record; FsbenchError for an unknown or missing field."""
        if not isinstance(record, dict):
            raise FsbenchError(f"input transform: expected a mapping, got {record!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(record) - known)
        if unknown:
            raise FsbenchError(
                f"input transform: unknown field {unknown[0]!r} (written by a newer fsbench?)"
            )
        if "channels" not in record or "size" not in record:
            raise FsbenchError("input transform: channels and size are required")
        return cls(**record)

    def with_resize(self, size: int) -> InputTransform:
        """This transform followed by a torch resize to size x size (a run's ``--resize``)."""
        return dataclasses.replace(self, resize=size)

    def describe(self) -> str:
        """The steps in one line, for people."""
        how = "centred square of the shorter side" if self.fit == "crop" else "whole image"
        parts = [
            f"{'grayscale (PIL luma)' if self.channels == 1 else 'RGB'}",
            f"{how} to {self.size}x{self.size} (PIL {self.filter})",
        ]
        if self.invert:
            parts.append("inverted (255 - v)")
        if self.resize:
            parts.append(f"then {self.resize}x{self.resize} (torch bilinear, antialias)")
        parts.append("float in [0, 1] (x / 255)")
        return ", ".join(parts)

    # ------------------------------------------------------------------------ the steps

    def pixels(self, im: Image.Image) -> np.ndarray:
        """Steps 1-4 on an opened image: uint8 [size, size] ("L") or [size, size, 3] ("RGB")."""
        if self.jpeg_draft:  # only a JPEG not yet loaded is affected
            im.draft("RGB" if self.channels == 3 else None, (2 * self.size, 2 * self.size))
        im = to_mode(im, self.mode)
        target = (self.size, self.size)
        if self.fit == "crop":
            im = fit_square(im, self.size, FILTERS[self.filter])
        elif im.size != target:
            im = im.resize(target, resample=FILTERS[self.filter])
        out = np.array(im, dtype=np.uint8)  # a writable copy
        return 255 - out if self.invert else out

    def decode(self, source: ImageSource, name: str | None = None) -> np.ndarray:
        """Steps 1-4 on one file or bytes: uint8 [C, size, size]; FsbenchError naming it."""
        if isinstance(source, tuple):
            name, source = name or source[0], source[1]
        name = name or (str(source) if not isinstance(source, bytes) else "<bytes>")
        try:
            data = io.BytesIO(source) if isinstance(source, bytes) else source
            with Image.open(data) as im:
                arr = self.pixels(im)
        except DECODE_ERRORS as e:
            raise FsbenchError(f"cannot decode image {name}: {e}") from None
        return arr.transpose(2, 0, 1) if arr.ndim == 3 else arr[None]

    def finish(self, images: torch.Tensor) -> torch.Tensor:
        """Steps 5-6 on uint8 [N, C, size, size]: float32 [N, C, S, S] in [0, 1]."""
        if self.resize is not None and self.resize != images.shape[-1]:
            images = resize_uint8(images, self.resize)
        return images.to(torch.float32).div_(255.0)

    def apply(self, im: Image.Image) -> torch.Tensor:
        """Every step on one opened image: the model's input, float32 [C, S, S] in [0, 1]."""
        arr = self.pixels(im)
        chw = arr.transpose(2, 0, 1) if arr.ndim == 3 else arr[None]
        return self.finish(torch.from_numpy(np.ascontiguousarray(chw))[None])[0]

    def load(self, files: list[Path]) -> torch.Tensor:
        """Every step on image files: float32 [N, C, S, S] in [0, 1] (predict's inputs)."""
        out = np.empty((len(files), self.channels, self.size, self.size), dtype=np.uint8)
        for i, f in enumerate(files):
            out[i] = self.decode(f)
        return self.finish(torch.from_numpy(out))


def photo_transform(size: int, channels: int) -> InputTransform:
    """The rule of the photo datasets (folder, Flowers, Pets): centred square, bilinear, drafted JPEGs."""
    return InputTransform(channels, size, fit="crop", filter="bilinear", jpeg_draft=True)


def array_transform(size: int, channels: int) -> InputTransform:
    """For datasets stored as arrays of one size (MNIST-like, CIFAR, TFDS): new images of another
    size are brought to it by the centred square, bilinear; an image of the data's size and mode
    keeps its pixels."""
    return InputTransform(channels, size, fit="crop", filter="bilinear")
