"""Shared fixtures for fsbench tests: an isolated data root, tiny generated datasets, Omniglot zips.

Every test here runs with ``$FSBENCH_DATA`` pointing at a per-session temporary folder, so no test
ever reads or writes the user's ``~/.cache/fsbench``.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_OMNIGLOT = REPO_ROOT.parent / "shared" / "data" / "omniglot"
TINY_PER_CLASS = 25


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``cuda`` marker: tests that need a CUDA GPU (``pytest -m cuda``)."""
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU (skipped cleanly without one)")


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> Iterator[None]:
    """Tiny models: one torch thread each avoids OpenMP oversubscription on 2-core machines
    (pytest runs two workers there)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def fsbench_data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data root for the whole session (caches shared between tests, never the user's)."""
    return tmp_path_factory.mktemp("fsbench-data")


@pytest.fixture(autouse=True)
def _isolated_data_root(fsbench_data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point $FSBENCH_DATA at the session's temporary data root for every test."""
    monkeypatch.setenv("FSBENCH_DATA", str(fsbench_data_root))


@dataclass
class TinyDataset:
    """A small generated dataset and how to load it: ``load_split(name, split, **tiny.kwargs)``."""

    name: str
    data_root: Path
    path: Path
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def kwargs(self) -> dict[str, Any]:
        return {"data_root": self.data_root, **self.options}

    def load(self, split: str, **extra: Any):  # -> ArrayStore
        """Load one split of this tiny dataset through the public registry."""
        from fsbench.data import load_split

        return load_split(self.name, split, **{**self.kwargs, **extra})


def _tiny_mdmnist(tmp_path_factory: pytest.TempPathFactory, num_digit: int) -> TinyDataset:
    mdmnist = pytest.importorskip("mdmnist")
    if not hasattr(mdmnist, "generate"):
        pytest.skip("mdmnist.generate is not available yet")
    from fsbench.data.mdmnist_source import folder_name

    root = tmp_path_factory.mktemp(f"tiny-mdmnist-{num_digit}")
    folder = root / folder_name(num_digit, None, TINY_PER_CLASS)
    mdmnist.generate(
        num_digit=num_digit,
        num_image_per_class=TINY_PER_CLASS,
        seed=123,
        output=folder,
        formats=("hdf5", "png"),
        workers=1,
        progress=False,
    )
    name = "doublemnist" if num_digit == 2 else "triplemnist"
    return TinyDataset(name, root, folder, {"num_image_per_class": TINY_PER_CLASS})


@pytest.fixture(scope="session")
def tiny_doublemnist(tmp_path_factory: pytest.TempPathFactory) -> TinyDataset:
    """DoubleMNIST with 25 images per class (HDF5 and PNG tree), generated once per session."""
    return _tiny_mdmnist(tmp_path_factory, 2)


def _drawing(char_id: int, drawing: int, size: int = 105) -> bytes:
    """A 105x105 1-bit PNG like Omniglot's: black strokes on white; the stroke encodes its ids."""
    img = np.ones((size, size), dtype=bool)
    r = 5 + (char_id * 7) % 60
    c = 5 + (drawing * 3) % 60
    img[r : r + 30, c : c + 8] = False  # a tall bar, off-centre, so rotations are distinguishable
    img[r : r + 8, c : c + 30] = False
    buf = io.BytesIO()
    Image.fromarray(img).convert("1").save(buf, format="PNG")
    return buf.getvalue()


def write_omniglot_zip(
    path: Path, set_name: str, alphabets: dict[str, int], drawings: int = 20, first_id: int = 0
) -> int:
    """Write a zip in Omniglot's real layout ``<set>/<Alphabet>/characterNN/<id>_NN.png``."""
    char_id = first_id
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{set_name}/", "")
        for alphabet, n_chars in alphabets.items():
            zf.writestr(f"{set_name}/{alphabet}/", "")
            for k in range(1, n_chars + 1):
                folder = f"{set_name}/{alphabet}/character{k:02d}/"
                zf.writestr(folder, "")
                for d in range(1, drawings + 1):
                    zf.writestr(f"{folder}{char_id + 1:04d}_{d:02d}.png", _drawing(char_id, d))
                char_id += 1
    return char_id


@pytest.fixture(scope="session")
def omniglot_zip_writer():
    """``write_omniglot_zip(path, set_name, {alphabet: n_characters}, drawings=20, first_id=0)``."""
    return write_omniglot_zip


@pytest.fixture(scope="session")
def omniglot_fixture_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with tiny ``images_background.zip`` / ``images_evaluation.zip`` (15 characters)."""
    folder = tmp_path_factory.mktemp("omniglot-fixture")
    n = write_omniglot_zip(
        folder / "images_background.zip", "images_background", {"Alpha": 4, "Beta_(x)": 5}
    )
    write_omniglot_zip(
        folder / "images_evaluation.zip", "images_evaluation", {"Gamma": 6}, first_id=n
    )
    return folder


@pytest.fixture(scope="session")
def omniglot_full_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Official-layout zips holding all 1,623 characters of the real Omniglot, 2 drawings each.

    Alphabet and character names are those of the Vinyals lists that fsbench ships, so the
    loader must recognise the full set; the drawings are synthetic (small and fast).
    """
    from fsbench.data.omniglot import vinyals_classes

    counts: dict[str, int] = {}
    for split in ("train", "val", "test"):
        for line in vinyals_classes(split):
            alphabet, character, _ = line.split("/")
            counts[alphabet] = max(counts.get(alphabet, 0), int(character[len("character") :]))
    evaluation = {a for a in counts if a in EVALUATION_ALPHABETS}
    folder = tmp_path_factory.mktemp("omniglot-full")
    n = write_omniglot_zip(
        folder / "images_background.zip",
        "images_background",
        {a: c for a, c in counts.items() if a not in evaluation},
        drawings=2,
    )
    write_omniglot_zip(
        folder / "images_evaluation.zip",
        "images_evaluation",
        {a: c for a, c in counts.items() if a in evaluation},
        drawings=2,
        first_id=n,
    )
    return folder


# The 20 alphabets of Omniglot's images_evaluation.zip (the other 30 are in images_background).
EVALUATION_ALPHABETS = {
    "Angelic",
    "Atemayar_Qelisayer",
    "Atlantean",
    "Aurek-Besk",
    "Avesta",
    "Ge_ez",
    "Glagolitic",
    "Gurmukhi",
    "Kannada",
    "Keble",
    "Malayalam",
    "Manipuri",
    "Mongolian",
    "Old_Church_Slavonic_(Cyrillic)",
    "Oriya",
    "Sylheti",
    "Syriac_(Serto)",
    "Tengwar",
    "Tibetan",
    "ULOG",
}


@pytest.fixture(scope="session")
def small_omniglot_dir() -> Path:
    """The real small Omniglot background sets beside the checkout; skip when absent."""
    if not (SHARED_OMNIGLOT / "images_background_small1.zip").is_file():
        pytest.skip(f"real Omniglot small sets not found at {SHARED_OMNIGLOT}")
    return SHARED_OMNIGLOT
