"""CLI behaviour: generation with and without a subcommand, one-line errors, nothing half-written."""

from __future__ import annotations

import mdmnist
import pytest
from click.testing import CliRunner
from mdmnist import pipeline as generate_module
from mdmnist.cli import cli


def _run(args, cwd=None):
    """Invoke the CLI in-process."""
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_generate_without_subcommand(tmp_path):
    out = tmp_path / "t"
    result = _run(
        [
            "--num-digit",
            "3",
            "--num-image-per-class",
            "1",
            "--output",
            out,
            "--format",
            "hdf5",
            "--quiet",
        ]
    )
    assert result.exit_code == 0, result.output
    assert (out / "train.h5").is_file() and (out / "manifest.json").is_file()
    assert not (out / "train").exists()  # png not requested


def test_generate_subcommand_and_default_format_png(tmp_path):
    out = tmp_path / "g"
    result = _run(
        [
            "generate",
            "--num-digit",
            "1",
            "--num-image-per-class",
            "2",
            "--output",
            out,
            "--workers",
            "2",
            "--quiet",
        ]
    )
    assert result.exit_code == 0, result.output
    assert len(list(out.glob("*/*/*.png"))) == 10 * 2
    assert not (out / "train.h5").exists()


BAD = [
    (["--num-digit", "7"], "num-digit"),
    (["--num-digit", "0"], "num-digit"),
    (["--num-digit", "two"], "num-digit"),
    (["--image-size", "64", "50"], "image-size"),
    (["--image-size", "27", "64"], "image-size"),
    (["--num-digit", "3", "--image-size", "84", "83"], "image-size"),
    (["--train-val-test-ratio", "64", "16", "0"], "train-val-test-ratio"),
    (["--train-val-test-ratio", "64", "16"], "train-val-test-ratio"),
    (["--train-val-test-ratio", "a", "b", "c"], "train-val-test-ratio"),
    (["--num-image-per-class", "0"], "num-image-per-class"),
    (["--random-seed", "-1"], "random-seed"),
    (["--workers", "0"], "workers"),
    (["--format", "jpeg"], "format"),
    (["--num-digit", "1", "--train-val-test-ratio", "98", "1", "1"], "train-val-test-ratio"),
]


@pytest.mark.parametrize(("args", "mentions"), BAD)
def test_bad_input_gets_one_line_and_leaves_nothing(tmp_path, args, mentions):
    out = tmp_path / "out"
    result = _run([*args, "--output", out, "--quiet"])
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    assert mentions in lines[0]
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_bad_api_arguments_raise_value_error():
    with pytest.raises(ValueError, match="num-digit"):
        mdmnist.generate(num_digit=7)
    with pytest.raises(mdmnist.MdmnistError, match="ratio"):
        mdmnist.generate(ratios=(64, 16))
    with pytest.raises(mdmnist.MdmnistError, match="image-size"):
        mdmnist.generate(image_size=(64, 40))
    with pytest.raises(mdmnist.MdmnistError, match="format"):
        mdmnist.generate(formats=())


def test_existing_output_is_kept_unless_overwrite(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = _run(
        [
            "--num-digit",
            "1",
            "--num-image-per-class",
            "1",
            "--output",
            out,
            "--format",
            "hdf5",
            "--quiet",
        ]
    )
    assert result.exit_code != 0 and "--overwrite" in result.output
    assert (out / "keep.txt").read_text() == "mine"
    result = _run(
        [
            "--num-digit",
            "1",
            "--num-image-per-class",
            "1",
            "--output",
            out,
            "--format",
            "hdf5",
            "--overwrite",
            "--quiet",
        ]
    )
    assert result.exit_code != 0 and "keep.txt" in result.output  # a user's file is never deleted
    assert (out / "keep.txt").read_text() == "mine"
    (out / "keep.txt").unlink()
    result = _run(
        [
            "--num-digit",
            "1",
            "--num-image-per-class",
            "1",
            "--output",
            out,
            "--format",
            "hdf5",
            "--overwrite",
            "--quiet",
        ]
    )
    assert result.exit_code == 0, result.output
    assert (out / "train.h5").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]


def test_unwritable_output_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = _run(
        ["--num-digit", "1", "--num-image-per-class", "1", "--output", blocker / "sub", "--quiet"]
    )
    assert result.exit_code != 0
    assert len(result.output.strip().splitlines()) == 1 and "cannot write output" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
def test_interrupt_or_crash_leaves_no_partial_dataset(tmp_path, monkeypatch, workers, exc):
    """Ctrl-C (or a crash) in the middle of writing: no output and no temp dir remain."""
    real = generate_module.NativeHdf5Writer.write_class
    calls = {"n": 0}

    def failing(self, index, chunks):
        calls["n"] += 1
        if calls["n"] == 5:
            raise exc("boom")
        return real(self, index, chunks)

    monkeypatch.setattr(generate_module.NativeHdf5Writer, "write_class", failing)
    out = tmp_path / "partial"
    if exc is KeyboardInterrupt:
        result = _run(
            [
                "--num-digit",
                "2",
                "--num-image-per-class",
                "3",
                "--output",
                out,
                "--format",
                "hdf5",
                "--format",
                "png",
                "--workers",
                workers,
                "--quiet",
            ]
        )
        assert result.exit_code == 130 and "interrupted" in result.output
    else:
        with pytest.raises(RuntimeError):
            mdmnist.generate(
                num_image_per_class=3,
                output=out,
                formats=("png", "hdf5"),
                workers=workers,
                progress=False,
            )
    assert list(tmp_path.iterdir()) == []


def test_subcommand_rejects_generate_options(tmp_path):
    result = _run(["--num-digit", "3", "verify", tmp_path])
    assert result.exit_code == 2 and "--num-digit" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_verify_of_non_dataset_is_one_line(tmp_path):
    result = _run(["verify", tmp_path])
    assert result.exit_code == 1 and "manifest.json" in result.output
    assert len(result.output.strip().splitlines()) == 1
