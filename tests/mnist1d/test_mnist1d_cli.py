"""The ``mnist1d`` command: make in every format, every bad input, plot and info."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from mnist1d import storage
from mnist1d.cli import main
from mnist1d.data import get_dataset_args, make_dataset
from mnist1d.storage import load_dataset

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SMALL = ["--num-samples", "300"]


def run(*args: str):
    """Invoke the CLI in-process."""
    return CliRunner().invoke(main, list(args))


def expected_small() -> dict:
    """make_dataset with the SMALL options."""
    args = get_dataset_args()
    args.num_samples = 300
    return make_dataset(args)


def assert_usage_error(result, option: str) -> None:
    """Non-zero exit, one 'Error:' line naming the option, no traceback."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and option in errors[0], result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("name", ["data.npz", "data.h5", "data.hdf5", "data.pkl"])
def test_make_writes_each_format(tmp_path: Path, name: str) -> None:
    out = tmp_path / name
    result = run("make", *SMALL, "--output", str(out))
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(tmp_path)) == [name]  # no temporary files left behind
    data, args = load_dataset(out, allow_pickle=True)
    expected = expected_small()
    for key in ("x", "x_test", "y", "y_test", "t"):
        np.testing.assert_array_equal(data[key], expected[key])
        assert data[key].dtype == expected[key].dtype
    for key in ("x", "t", "y"):
        np.testing.assert_array_equal(data["templates"][key], expected["templates"][key])
    if name.endswith(".pkl"):
        assert args is None
    else:
        assert args["num_samples"] == 300 and args["padding"] == [36, 60]


def test_make_passes_every_option(tmp_path: Path) -> None:
    out = tmp_path / "custom.npz"
    options = {
        "num_samples": 120,
        "train_split": 0.6,
        "template_len": 9,
        "padding": [3, 7],
        "scale_coeff": 0.2,
        "max_translation": 11,
        "corr_noise_scale": 0.5,
        "iid_noise_scale": 0.03,
        "shear_scale": 1.5,
        "shuffle_seq": True,
        "final_seq_length": 25,
        "seed": 5,
    }
    argv = ["make", "--output", str(out), "--shuffle-seq"]
    for key, value in options.items():
        if key == "padding":
            argv += ["--padding", *map(str, value)]
        elif key != "shuffle_seq":
            argv += ["--" + key.replace("_", "-"), str(value)]
    result = run(*argv)
    assert result.exit_code == 0, result.output
    data, stored = load_dataset(out)
    assert stored == options
    expected = make_dataset(dict(options))
    np.testing.assert_array_equal(data["x"], expected["x"])
    np.testing.assert_array_equal(data["y_test"], expected["y_test"])


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["--num-samples", "0"], "--num-samples"),
        (["--num-samples", "-5"], "--num-samples"),
        (["--num-samples", "9"], "--num-samples"),
        (["--template-len", "-59"], "--template-len"),
        (["--template-len", "1.5"], "--template-len"),
        (["--final-seq-length", "-1"], "--final-seq-length"),
        (["--max-translation", "0"], "--max-translation"),
        (["--max-translation", str(2**63 + 1)], "--max-translation"),
        (["--padding", "3", "-3"], "--padding"),
        (["--padding", "-1", "5"], "--padding"),
        (["--train-split", "nan"], "--train-split"),
        (["--train-split", "inf"], "--train-split"),
        (["--seed", "-1"], "--seed"),
        (["--seed", str(2**32)], "--seed"),
        (["--num-samples", "many"], "--num-samples"),
    ],
)
def test_make_rejects_bad_arguments_and_writes_nothing(
    tmp_path: Path, argv: list[str], option: str
) -> None:
    result = run("make", *argv, "--output", str(tmp_path / "out.npz"))
    assert_usage_error(result, option)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "argv",
    [
        ["--train-split", "1.0"],
        ["--train-split", "0"],
        ["--scale-coeff", "-0.4"],
        ["--iid-noise-scale", "-0.1"],
        ["--corr-noise-scale", "-1"],
        ["--padding", "10", "5"],
        ["--template-len", "0", "--final-seq-length", "1"],
        ["--max-translation", str(2**40)],
    ],
)
def test_make_accepts_what_the_reference_accepts(tmp_path: Path, argv: list[str]) -> None:
    out = tmp_path / "d.npz"
    result = run("make", "--num-samples", "100", *argv, "--output", str(out))
    assert result.exit_code == 0, result.output
    data, stored = load_dataset(out)
    expected = make_dataset(dict(stored))
    for key in ("x", "x_test", "y_test"):
        np.testing.assert_array_equal(data[key], expected[key])


@pytest.mark.parametrize("name", ["out.txt", "out", "out.npy"])
def test_make_rejects_unknown_extension(tmp_path: Path, name: str) -> None:
    result = run("make", *SMALL, "--output", str(tmp_path / name))
    assert_usage_error(result, "--output")
    assert "extension" in result.output
    assert os.listdir(tmp_path) == []


def test_make_rejects_unwritable_paths(tmp_path: Path) -> None:
    result = run("make", *SMALL, "--output", str(tmp_path / "missing" / "out.npz"))
    assert_usage_error(result, "--output")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run("make", *SMALL, "--output", str(blocker / "out.npz"))
    assert_usage_error(result, "--output")
    assert sorted(os.listdir(tmp_path)) == ["file"]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write anywhere")
def test_make_rejects_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        result = run("make", *SMALL, "--output", str(folder / "out.npz"))
        assert_usage_error(result, "--output")
        assert os.listdir(folder) == []
    finally:
        folder.chmod(0o700)


def test_make_keeps_existing_output_without_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "out.npz"
    out.write_bytes(b"precious")
    result = run("make", *SMALL, "--output", str(out))
    assert_usage_error(result, "--output")
    assert "--overwrite" in result.output
    assert out.read_bytes() == b"precious"
    result = run("make", *SMALL, "--output", str(out), "--overwrite")
    assert_usage_error(result, "--output")  # not an MNIST-1D file: a user's file is never replaced
    assert "not an MNIST-1D dataset" in result.output
    assert out.read_bytes() == b"precious"
    out.unlink()
    assert run("make", "--num-samples", "100", "--output", str(out)).exit_code == 0
    result = run("make", *SMALL, "--output", str(out), "--overwrite")
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(load_dataset(out)[0]["x"], expected_small()["x"])
    assert sorted(os.listdir(tmp_path)) == ["out.npz"]


@pytest.mark.parametrize("name", ["d.npz", "d.h5", "d.pkl"])
def test_overwrite_replaces_only_mnist1d_files(tmp_path: Path, name: str) -> None:
    """A foreign file of the same format survives --overwrite; an earlier dataset is replaced."""
    out = tmp_path / name
    if name.endswith(".npz"):
        np.savez(out, weights=np.arange(3))
    elif name.endswith(".h5"):
        import h5py

        with h5py.File(out, "w") as h5:
            h5["x"] = np.arange(3)
    else:
        out.write_bytes(pickle.dumps({"x": 1, "model": "mine"}, protocol=3))
    before = out.read_bytes()
    result = run("make", *SMALL, "--output", str(out), "--overwrite")
    assert_usage_error(result, "--output")
    assert out.read_bytes() == before
    out.unlink()
    assert run("make", "--num-samples", "100", "--output", str(out)).exit_code == 0
    assert run("make", *SMALL, "--output", str(out), "--overwrite").exit_code == 0
    assert load_dataset(out, allow_pickle=True)[0]["x"].shape == (240, 40)
    assert sorted(os.listdir(tmp_path)) == [name]


def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(storage.np, "savez_compressed", broken)
    result = run("make", *SMALL, "--output", str(tmp_path / "out.npz"))
    assert result.exit_code != 0
    assert "Traceback" not in result.output and "No space left" in result.output
    assert os.listdir(tmp_path) == []


def test_plot_writes_a_png(tmp_path: Path) -> None:
    data = tmp_path / "d.npz"
    assert run("make", *SMALL, "--output", str(data)).exit_code == 0
    png = tmp_path / "d.png"
    result = run("plot", str(data), "--output", str(png))
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 10_000
    result = run("plot", str(data), "--output", str(png))
    assert_usage_error(result, "--output")
    result = run("plot", str(data), "--output", str(tmp_path / "d.gif"))
    assert_usage_error(result, "--output")
    result = run("plot", str(tmp_path / "absent.npz"), "--output", str(tmp_path / "e.png"))
    assert_usage_error(result, "FILE")
    assert sorted(os.listdir(tmp_path)) == ["d.npz", "d.png"]


def test_plot_from_reference_pickle(tmp_path: Path) -> None:
    data = tmp_path / "d.pkl"
    with open(data, "wb") as fh:
        pickle.dump(expected_small(), fh, protocol=3)
    png = tmp_path / "d.png"
    result = run("plot", str(data), "--output", str(png), "--per-class", "2")
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == PNG_MAGIC


def test_info_summarises_npz_and_pickle(tmp_path: Path) -> None:
    npz, pkl = tmp_path / "d.npz", tmp_path / "d.pkl"
    assert run("make", *SMALL, "--seed", "9", "--output", str(npz)).exit_code == 0
    assert run("make", *SMALL, "--output", str(pkl)).exit_code == 0
    result = run("info", str(npz))
    assert result.exit_code == 0, result.output
    assert "x        shape (240, 40)" in result.output
    assert "y_test class counts:" in result.output
    assert "seed = 9" in result.output and "padding = [36, 60]" in result.output
    counts = result.output.split("y class counts:")[1].splitlines()[0].split()
    assert sum(int(c.split(":")[1]) for c in counts) == 240
    result = run("info", str(pkl))
    assert result.exit_code == 0, result.output
    assert "not stored" in result.output
    result = run("info", str(tmp_path / "nothing.h5"))
    assert_usage_error(result, "FILE")
