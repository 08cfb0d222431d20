"""Where a built-in dataset's files are (``dataset_dir``/``download``), and what your own data's
splits mean for validation: shared by ``fsbench run`` and ``fsbench.train``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fsbench.catalog import MDMNIST_BASED
from fsbench.settings import SettingError


def location_options(name: str, dataset_dir: str | Path | None, download: bool) -> dict[str, Any]:
    """Data-layer options for ``dataset_dir`` and ``download`` of dataset ``name``; an mdmnist
    folder's format (HDF5 or a PNG tree) is detected."""
    from fsbench.data.registry import OPTIONS

    options: dict[str, Any] = {}
    if download:
        if "download" not in OPTIONS[name]:
            raise SettingError(
                f"{{download}} applies to omniglot and fc100, not {name}", "download"
            )
        options["download"] = True
    if dataset_dir is None:
        return options
    folder = Path(dataset_dir)
    if name == "omniglot":
        options["omniglot_dir"] = str(folder)
    elif name in MDMNIST_BASED:
        if (folder / "train.h5").is_file():
            options.update(path=str(folder), source="hdf5")
        elif (folder / "train").is_dir():
            options.update(path=str(folder), source="png")
        else:
            raise SettingError(
                f"{{dataset_dir}} {folder} holds neither train.h5 (mdmnist HDF5) nor a train/ "
                "PNG tree",
                "dataset_dir",
            )
    elif "path" in OPTIONS[name]:
        options["path"] = str(folder)
    else:
        raise SettingError(
            f"{{dataset_dir}} does not apply to {name} (it is generated)", "dataset_dir"
        )
    return options


def user_data_validation(name: str, data_options: dict, overrides: dict) -> None:
    """Your own data (an image folder or a TFDS folder) without a val split trains without
    validation and tests the last model, unless ``eval_every``/``select`` say otherwise: sets
    them in ``overrides``. Other datasets: nothing."""
    if name == "folder":
        from fsbench.data.folder import LAYOUT_HELP, has_validation

        path = data_options.get("path")
        if path is None:
            raise SettingError(
                f"the folder dataset needs {{dataset_dir}} DIR ({LAYOUT_HELP})", "dataset_dir"
            )
        ratios, seed = data_options.get("split_ratios"), data_options.get("split_seed", 0)
        present = has_validation(Path(path), ratios, seed)
    elif name == "tfds":
        from fsbench.data.tfds_source import dataset_folder
        from fsbench.data.tfds_source import has_validation as tfds_has_validation

        path = dataset_folder(data_options.get("path"))
        present = tfds_has_validation(path)
    else:  # generated data, and metadataset (its own val sources)
        return
    if present or overrides.get("eval_every") is not None or overrides.get("select") is not None:
        return
    logging.getLogger("fsbench").info(
        "%s has no val split: no validation, the last model is tested", path
    )
    overrides["eval_every"], overrides["select"] = 0, "last"
