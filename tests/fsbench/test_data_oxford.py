"""Flowers-102 and Oxford-IIIT Pets from tiny copies of their public releases' exact layouts.

Every fixture image is one flat colour that encodes its own number, so a loaded image says which
file it came from: labels, split membership and order are checked against the files themselves.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from cli_errors import assert_one_line_error
from click.testing import CliRunner
from fsbench.cli import main
from fsbench.data import describe_split, images, load_split, transform
from fsbench.data import oxford as ox
from fsbench.errors import FsbenchError
from PIL import Image

SIZE = 16  # image_size of most tests: small, so decoding is instant


def colour(number: int) -> tuple[int, int, int]:
    """The flat colour of fixture image ``number`` (distinct for 1..60, far apart in red)."""
    return (number * 4 % 256, 200 - number * 3 % 200, 60)


def number_of(image: torch.Tensor) -> int:
    """Which fixture image a loaded [3, S, S] uint8 image is (by its red level)."""
    red = float(image[0].float().mean())
    return round(red / 4)


def write_jpeg(path: Path, number: int, size: tuple[int, int]) -> None:
    Image.new("RGB", size, colour(number)).save(path, quality=95)


# ---------------------------------------------------------------------------- Flowers-102 fixture

FLOWER_CLASSES = 4
FLOWER_IMAGES = (
    24  # image k (1-based) has class (k - 1) % 4 + 1: classes interleave as in the release
)
FLOWER_SPLITS = {  # 1-based image numbers, unsorted like the release's setid.mat
    "trnid": [6, 1, 3, 8],
    "valid": [5, 2, 11, 4],
    "tstid": [9, 10, 7, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24],
}


def flower_label(k: int) -> int:
    return (k - 1) % FLOWER_CLASSES + 1


def write_flowers(folder: Path) -> Path:
    """jpg/image_NNNNN.jpg, imagelabels.mat (labels uint8 [1, N]), setid.mat (uint16 [1, n])."""
    (folder / "jpg").mkdir(parents=True)
    for k in range(1, FLOWER_IMAGES + 1):  # landscape and portrait, as the release mixes them
        write_jpeg(folder / "jpg" / f"image_{k:05d}.jpg", k, (40, 30) if k % 2 else (30, 44))
    labels = np.array([[flower_label(k) for k in range(1, FLOWER_IMAGES + 1)]], dtype=np.uint8)
    scipy.io.savemat(folder / "imagelabels.mat", {"labels": labels})
    setid = {key: np.array([ids], dtype=np.uint16) for key, ids in FLOWER_SPLITS.items()}
    scipy.io.savemat(folder / "setid.mat", setid)
    return folder


def test_flowers_official_splits_labels_and_order(tmp_path):
    folder = write_flowers(tmp_path / "flowers")
    stores = {
        s: load_split(
            "flowers", s, path=folder, data_root=tmp_path, image_size=SIZE, progress=False
        )
        for s in ("train", "val", "test", "trainval")
    }
    assert {s: len(v) for s, v in stores.items()} == {
        "train": 4,
        "val": 4,
        "test": 16,
        "trainval": 8,
    }
    for split, key in (("train", "trnid"), ("val", "valid"), ("test", "tstid")):
        store = stores[split]
        assert store.num_classes == FLOWER_CLASSES and store.class_names == ["1", "2", "3", "4"]
        assert store.example_shape == (3, SIZE, SIZE) and store.data.dtype == torch.uint8
        numbers = [number_of(x) for x in store.data]
        assert sorted(numbers) == sorted(FLOWER_SPLITS[key])  # exactly the setid's images
        # each image's label is imagelabels.mat's, and the split is grouped by class
        assert store.labels.tolist() == [flower_label(k) - 1 for k in numbers]
        assert store.labels.tolist() == sorted(store.labels.tolist())
    trainval = stores["trainval"]  # same classes: val's labels are not shifted
    assert trainval.num_classes == FLOWER_CLASSES
    facts = describe_split("oxford-flowers", "test", stores["test"])
    assert facts["same_classes"] is True and facts["label"] == "Oxford Flowers-102"
    assert facts["source"] == str(folder) and "tstid (16)" in facts["split_rule"]
    assert "comparable" not in facts


def test_flowers_from_the_packed_archive_equals_the_folder(tmp_path):
    folder = write_flowers(tmp_path / "flowers")
    unpacked = load_split("flowers102", "test", path=folder, data_root=tmp_path, image_size=SIZE)
    with tarfile.open(folder / "102flowers.tgz", "w:gz") as tar:
        tar.add(folder / "jpg", arcname="jpg")  # the release's member names: jpg/image_00001.jpg
    for f in (folder / "jpg").iterdir():
        f.unlink()
    (folder / "jpg").rmdir()
    packed = load_split("flowers102", "test", path=folder, data_root=tmp_path, image_size=SIZE)
    assert torch.equal(packed.data, unpacked.data) and torch.equal(packed.labels, unpacked.labels)


def test_flowers_is_decoded_once_then_read_from_the_cache(tmp_path, monkeypatch):
    folder = write_flowers(tmp_path / "data" / "flowers102")  # the data root's own folder
    first = load_split("flowers", "val", data_root=tmp_path / "data", image_size=SIZE)
    assert list((tmp_path / "data" / "flowers102" / "cache").glob(f"val-{SIZE}px-*.npz"))

    def no_decoding(*args):
        raise AssertionError("decoded again")

    monkeypatch.setattr(images, "decode_image", no_decoding)
    again = load_split("flowers", "val", data_root=tmp_path / "data", image_size=SIZE)
    assert torch.equal(again.data, first.data)
    with pytest.raises(AssertionError, match="decoded again"):  # another size: another cache
        load_split("flowers", "val", data_root=tmp_path / "data", image_size=SIZE + 1)
    write_jpeg(folder / "jpg" / "image_00005.jpg", 30, (40, 30))  # a changed source file
    with pytest.raises(AssertionError, match="decoded again"):
        load_split("flowers", "val", data_root=tmp_path / "data", image_size=SIZE)


def test_flowers_split_without_a_class_is_refused(tmp_path):
    folder = write_flowers(tmp_path / "flowers")
    setid = {key: np.array([ids], dtype=np.uint16) for key, ids in FLOWER_SPLITS.items()}
    setid["valid"] = np.array([[5, 9]], dtype=np.uint16)  # classes 1 only
    setid["tstid"] = np.array([[2, 11, 4, 10, 7, 12]], dtype=np.uint16)
    scipy.io.savemat(folder / "setid.mat", setid)
    with pytest.raises(FsbenchError, match="val split .* has no image of class 2 .*every split"):
        load_split("flowers", "val", path=folder, data_root=tmp_path, image_size=SIZE)


# ---------------------------------------------------------------------------- Pets fixture

PET_BREEDS = {  # CLASS-ID: (breed as the file names spell it, SPECIES, BREED-ID)
    1: ("Abyssinian", 1, 1),
    2: ("american_bulldog", 2, 1),
    3: ("american_pit_bull_terrier", 2, 2),
    4: ("basset_hound", 2, 3),
}
PET_TRAINVAL = 10  # per class: ranks 5 and 10 go to val
PET_TEST = 3
LIST_HEADER = (
    "#Image CLASS-ID SPECIES BREED ID\n"
    "#ID: 1:37 Class ids\n"
    "#SPECIES: 1:Cat 2:Dog\n"
    "#BREED ID: 1-25:Cat 1:12:Dog\n"
    "#All images with 1st letter as captial are cat images\n"
    "#images with small first letter are dog images\n"
)


def pet_number(class_id: int, n: int) -> int:
    """The global number (colour) of image ``<breed>_<n>``."""
    return (class_id - 1) * (PET_TRAINVAL + PET_TEST) + n


def write_pets(folder: Path, *, header: bool = False) -> Path:
    """images/<Breed>_<n>.jpg and annotations/{trainval,test,list}.txt.

    The release's trainval.txt and test.txt start with their first image, and list.txt with
    the '#' header; ``header=True`` puts the header on trainval.txt and test.txt too.
    """
    (folder / "images").mkdir(parents=True)
    (folder / "annotations").mkdir()
    lines: dict[str, list[str]] = {"trainval": [], "test": []}
    for n in range(1, PET_TRAINVAL + PET_TEST + 1):  # classes interleave in file order
        for class_id, (breed, species, breed_id) in PET_BREEDS.items():
            write_jpeg(folder / "images" / f"{breed}_{n}.jpg", pet_number(class_id, n), (24, 20))
            split = "trainval" if n <= PET_TRAINVAL else "test"
            lines[split].append(f"{breed}_{n} {class_id} {species} {breed_id}\n")
    top = LIST_HEADER if header else ""
    for split, rows in lines.items():
        (folder / "annotations" / f"{split}.txt").write_text(top + "".join(rows))
    (folder / "annotations" / "list.txt").write_text(
        LIST_HEADER + "".join(lines["trainval"] + lines["test"])
    )
    return folder


@pytest.mark.parametrize("header", [False, True])
def test_pets_splits_val_rule_and_breed_names(tmp_path, header):
    folder = write_pets(tmp_path / "pets", header=header)
    stores = {
        s: load_split("pets", s, path=folder, data_root=tmp_path, image_size=SIZE, progress=False)
        for s in ("train", "val", "test", "trainval")
    }
    per_class = {"train": 8, "val": 2, "test": PET_TEST, "trainval": PET_TRAINVAL}
    names = [b for b, _, _ in PET_BREEDS.values()]
    for split, store in stores.items():
        assert store.class_names == names and store.class_counts.tolist() == [per_class[split]] * 4
    expected_n = {"train": [1, 2, 3, 4, 6, 7, 8, 9], "val": [5, 10], "test": [11, 12, 13]}
    for split, ns in expected_n.items():
        store = stores[split]
        got = [number_of(x) for x in store.data]
        want = [pet_number(c, n) for c in PET_BREEDS for n in ns]  # by class, file order within
        assert got == want
        assert store.labels.tolist() == [c - 1 for c in PET_BREEDS for _ in ns]
    facts = describe_split("oxford-iiit-pets", "val", stores["val"])
    assert facts["same_classes"] is True and facts["label"] == "Oxford-IIIT Pets"
    assert "every 5th image" in facts["split_rule"] and "val (8)" in facts["split_rule"]
    assert int(stores["trainval"].labels.max()) == 3  # val keeps its labels


def test_pets_val_mask_counts_within_each_class():
    labels = np.array([0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1, 1, 1])
    mask = ox.pets_val_mask(labels)
    # class 0 at positions 0, 2, 3, 5, 6, 7, ...: its 5th is position 6, its 10th does not exist
    assert np.flatnonzero(mask).tolist() == [6, 12]


def test_pets_odd_images_become_rgb(tmp_path):
    folder = write_pets(tmp_path / "pets")
    images = folder / "images"
    Image.new("L", (30, 20), 90).save(images / "Abyssinian_11.jpg")  # grayscale JPEG
    Image.new("RGBA", (20, 30), (40, 80, 120, 7)).save(images / "Abyssinian_12.jpg", "PNG")
    Image.new("CMYK", (20, 20), (0, 255, 255, 0)).save(images / "Abyssinian_13.jpg")
    test = load_split("pets", "test", path=folder, data_root=tmp_path, image_size=SIZE)
    gray, rgba, cmyk = (test.data[i].reshape(3, -1).float().mean(1) for i in range(3))
    assert torch.allclose(gray, torch.tensor([90.0] * 3), atol=2)
    assert torch.allclose(rgba, torch.tensor([40.0, 80.0, 120.0]), atol=1)  # alpha dropped
    assert cmyk[0] > 200 and cmyk[1] < 40 and cmyk[2] < 40  # CMYK red
    assert test.example_shape == (3, SIZE, SIZE)


def test_pets_from_the_packed_archives(tmp_path):
    folder = write_pets(tmp_path / "pets")
    unpacked = load_split("pets", "val", path=folder, data_root=tmp_path, image_size=SIZE)
    for name in ("images", "annotations"):
        with tarfile.open(folder / f"{name}.tar.gz", "w:gz") as tar:
            tar.add(folder / name, arcname=name)
        for f in (folder / name).iterdir():
            f.unlink()
        (folder / name).rmdir()
    packed = load_split("pets", "val", path=folder, data_root=tmp_path, image_size=SIZE)
    assert torch.equal(packed.data, unpacked.data) and packed.class_names == unpacked.class_names


def test_a_corrupt_image_is_one_error_naming_it(tmp_path):
    folder = write_pets(tmp_path / "pets")
    (folder / "images" / "basset_hound_7.jpg").write_bytes(b"\xff\xd8 not a whole JPEG")
    with pytest.raises(FsbenchError, match=r"cannot decode image .*basset_hound_7\.jpg") as err:
        load_split("pets", "train", path=folder, data_root=tmp_path, image_size=SIZE)
    assert "\n" not in str(err.value)
    (folder / "images" / "basset_hound_7.jpg").unlink()
    with pytest.raises(FsbenchError, match="1 listed images are missing .*basset_hound_7.jpg"):
        load_split("pets", "train", path=folder, data_root=tmp_path, image_size=SIZE)


def test_bad_annotation_lines_and_mixed_breeds_are_clear(tmp_path):
    folder = write_pets(tmp_path / "pets")
    test_txt = folder / "annotations" / "test.txt"
    test_txt.write_text(test_txt.read_text() + "Abyssinian_99 cat 1 1\n")
    with pytest.raises(FsbenchError, match="annotations/test.txt line 13: expected 'Image CLASS"):
        load_split("pets", "test", path=folder, data_root=tmp_path)
    test_txt.write_text("Bengal_1 1 1 2\n")
    with pytest.raises(FsbenchError, match="CLASS-ID 1 names both Abyssinian and Bengal"):
        load_split("pets", "test", path=folder, data_root=tmp_path)


@pytest.mark.parametrize(
    ("name", "needles"),
    [
        ("flowers", ("imagelabels.mat", "setid.mat", ox.FLOWERS_URL, "flowers102")),
        ("pets", ("trainval.txt", "images/", ox.PETS_URL, "oxford-pets")),
    ],
)
def test_a_missing_dataset_says_what_to_put_where(tmp_path, name, needles):
    with pytest.raises(FsbenchError) as err:
        load_split(name, "train", data_root=tmp_path)
    message = str(err.value)
    assert "\n" not in message and all(n in message for n in needles), message
    (tmp_path / "empty").mkdir()
    with pytest.raises(FsbenchError, match="not found in .*empty"):
        load_split(name, "test", path=tmp_path / "empty", data_root=tmp_path)


def test_image_size_option_is_checked(tmp_path):
    write_flowers(tmp_path / "flowers")
    with pytest.raises(FsbenchError, match="image_size must be an integer >= 1"):
        load_split("flowers", "train", path=tmp_path / "flowers", data_root=tmp_path, image_size=0)
    store = load_split(
        "flowers", "train", path=tmp_path / "flowers", data_root=tmp_path, image_size=8, resize=4
    )
    assert store.example_shape == (3, 4, 4) and "resized" in store.meta


def test_fit_square_keeps_the_centre():
    left_right = np.zeros((10, 30, 3), dtype=np.uint8)
    left_right[:, 10:20] = 255  # a white centre third between black sides
    square = np.asarray(transform.fit_square(Image.fromarray(left_right), 5))
    assert square.shape == (5, 5, 3) and square[:, 1:4].min() == 255
    assert square.min() > 200  # only the filter's edge taps reach the black sides
    tall = np.asarray(transform.fit_square(Image.fromarray(left_right.transpose(1, 0, 2)), 5))
    assert np.array_equal(tall, square.transpose(1, 0, 2))


@pytest.mark.parametrize("dataset", ["flowers", "pets"])
def test_fsbench_run_on_them_fails_in_one_line(tmp_path, dataset):
    # a 4-class fixture cannot hold 5- or 10-way episodes; without a preset the run stops earlier
    folder = (write_flowers if dataset == "flowers" else write_pets)(tmp_path / dataset)
    out = tmp_path / "o"
    args = ["run", "protonet", dataset, "--out", str(out), "--quiet"]
    r = CliRunner().invoke(main, [*args, "--dataset-dir", str(folder)])
    assert_one_line_error(r, "Error: ")
    (tmp_path / "empty").mkdir()
    r = CliRunner().invoke(main, [*args, "--data-root", str(tmp_path / "empty")])
    assert_one_line_error(r, "Error: ")
    assert not out.exists()
