"""Sample grid per split from whichever format a generated directory holds."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import MdmnistError
from .manifest import read_manifest
from .render import png_filename
from .splits import SPLITS
from .writers.hdf5 import hdf5_filename


def _samples(
    root: Path, split: str, names: list[str], per_class: int, formats: list[str]
) -> list[np.ndarray]:
    """The first PER_CLASS images of each class in NAMES, from HDF5 if present, else PNG files."""
    import h5py

    if "hdf5" in formats:
        with h5py.File(root / hdf5_filename(split), "r") as f:
            return [f["images"][i, :per_class] for i in range(len(names))]
    if "png" in formats:
        return [
            np.stack(
                [
                    np.asarray(Image.open(root / split / n / png_filename(k, n)))
                    for k in range(per_class)
                ]
            )
            for n in names
        ]
    from .writers.torchmeta import data_filename, torchmeta_order

    with h5py.File(root / data_filename(split), "r") as f:
        out = []
        for n in names:
            stored = f["datasets"][n]
            order = torchmeta_order(len(stored), n)
            pos = {k: i for i, k in enumerate(order)}
            out.append(
                np.stack(
                    [
                        np.asarray(Image.open(io.BytesIO(bytes(stored[pos[k]]))))
                        for k in range(per_class)
                    ]
                )
            )
        return out


def preview(
    directory: str | Path,
    output: str | Path,
    classes: int = 6,
    per_class: int = 8,
    overwrite: bool = False,
) -> Path:
    """Draw CLASSES x PER_CLASS samples for each split into the PNG file OUTPUT (atomically)."""
    if Path(output).exists() and not overwrite:
        raise MdmnistError(f"output {output} already exists; pass --overwrite to replace it")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    root = Path(directory)
    manifest = read_manifest(root)
    args = manifest["args"]
    per_class = min(per_class, args["num_image_per_class"])
    fig, axes = plt.subplots(1, len(SPLITS), figsize=(4.5 * len(SPLITS), 4.5), squeeze=False)
    for ax, split in zip(axes[0], SPLITS, strict=True):
        names = manifest["splits"][split]["classes"][:classes]
        try:
            blocks = _samples(root, split, names, per_class, args["formats"])
        except (OSError, KeyError, ValueError) as exc:
            raise MdmnistError(f"cannot read samples of {split} from {root}: {exc}") from None
        height, width = blocks[0].shape[1:]
        mosaic = np.full((len(names) * (height + 2), per_class * (width + 2)), 255, dtype=np.uint8)
        for r, block in enumerate(blocks):
            for c in range(per_class):
                y, x = r * (height + 2), c * (width + 2)
                mosaic[y : y + height, x : x + width] = block[c]
        ax.imshow(mosaic, cmap="gray", vmin=0, vmax=255)
        ax.set_yticks([r * (height + 2) + height / 2 for r in range(len(names))], names)
        ax.set_xticks([])
        ax.set_title(f"{split} ({len(manifest['splits'][split]['classes'])} classes)")
    fig.suptitle(f"{root.name}: first {per_class} images of {classes} classes per split")
    fig.tight_layout()
    out = Path(output)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}.png")
    try:
        fig.savefig(tmp, dpi=100)
        tmp.replace(out)
    except OSError as exc:
        raise MdmnistError(f"cannot write preview {out}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
        if tmp.exists():
            tmp.unlink()
    return out
