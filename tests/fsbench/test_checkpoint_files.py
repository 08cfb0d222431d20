"""checkpoint.pt and checkpoint.prev.pt: the previous one is kept until the next is in; a
truncated, corrupt or foreign checkpoint (or best.pt) is one line: which file, what is wrong, and
the two ways on (--overwrite, or delete it to fall back)."""

from __future__ import annotations

import os

import pytest
import torch
from fsbench.engine import run_setting
from fsbench.engine.evaluate import evaluate_run
from fsbench.errors import FsbenchError
from fsbench.resolve import resolve_settings
from fsbench.synthetic import synthetic_loader
from robust_helpers import checkpoint_iteration

SMALL = dict(way=3, shot=1, query=2, train_way=4, hidden=4, episodes=6, checkpoint_every=2)
LOAD = synthetic_loader(size=16, classes=10, per_class=6)


def settings(iterations: int, **extra):
    return resolve_settings("protonet", "omniglot", {**SMALL, "iterations": iterations, **extra})


def test_the_previous_checkpoint_is_kept(tmp_path):
    run_setting(settings(6), tmp_path, loader=LOAD, quiet=True)
    assert checkpoint_iteration(tmp_path / "checkpoint.pt") == 6
    assert checkpoint_iteration(tmp_path / "checkpoint.prev.pt") == 4


@pytest.mark.parametrize(
    ("damage", "what"),
    [
        (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "is truncated"),
        (lambda p: p.write_bytes(b""), "is empty"),
        (lambda p: p.write_text("hello"), "is not a PyTorch checkpoint"),
        (lambda p: torch.save({"weights": 1}, p), "is not an fsbench checkpoint"),
    ],
    ids=["truncated", "empty", "text", "foreign"],
)
def test_a_damaged_checkpoint_names_the_file_and_the_two_ways_on(tmp_path, damage, what):
    straight = run_setting(settings(10), tmp_path / "straight", loader=LOAD, quiet=True)
    out = tmp_path / "run"
    run_setting(settings(6), out, loader=LOAD, quiet=True)
    damage(out / "checkpoint.pt")
    with pytest.raises(FsbenchError) as err:
        run_setting(settings(10), out, loader=LOAD, quiet=True, resume=True)
    msg = err.value.for_cli()  # the engine names the parameter (resume), the CLI the flag
    assert msg.startswith(f"--resume: {out / 'checkpoint.pt'} {what}"), msg
    assert "--overwrite" in msg and f"delete {out / 'checkpoint.pt'}" in msg
    assert "checkpoint.prev.pt" in msg
    # the second way on: delete it, and the previous checkpoint (iteration 4) continues exactly
    (out / "checkpoint.pt").unlink()
    resumed = run_setting(settings(10), out, loader=LOAD, quiet=True, resume=True)
    assert resumed["resumed_from"] == 4 and resumed["accuracy"] == straight["accuracy"]


class _RunsCode:
    """Unpickling this creates a folder: what a checkpoint from a stranger could do instead."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_a_checkpoint_that_would_run_code_is_refused_unread(tmp_path):
    out, marker = tmp_path / "run", tmp_path / "code-ran"
    run_setting(settings(6), out, loader=LOAD, quiet=True)
    for name in ("checkpoint.pt", "checkpoint.prev.pt"):  # resume and eval read different files
        state = torch.load(out / name, weights_only=True)
        torch.save({**state, "note": _RunsCode(marker)}, out / name)
    with pytest.raises(FsbenchError) as err:
        run_setting(settings(10), out, loader=LOAD, quiet=True, resume=True)
    msg = err.value.for_cli()
    assert msg.startswith(f"--resume: {out / 'checkpoint.pt'} holds Python objects other than"), msg
    assert "--overwrite" in msg and "\n" not in msg
    with pytest.raises(FsbenchError, match="holds Python objects other than tensors"):
        evaluate_run(out, tmp_path / "e", way=3, loader=LOAD)
    assert not marker.exists()  # refused before anything in the file was rebuilt
    torch.load(out / "checkpoint.pt", weights_only=False)  # the same file, trusted: the code runs
    assert marker.is_dir()


def test_without_a_previous_checkpoint_only_overwrite_is_offered(tmp_path):
    run_setting(settings(2), tmp_path, loader=LOAD, quiet=True)
    assert not (tmp_path / "checkpoint.prev.pt").exists()
    (tmp_path / "checkpoint.pt").write_bytes(b"PK\x03\x04 cut")
    with pytest.raises(FsbenchError, match="truncated.*--overwrite.*no checkpoint.prev.pt"):
        run_setting(settings(4), tmp_path, loader=LOAD, quiet=True, resume=True)
    again = run_setting(settings(4), tmp_path, loader=LOAD, quiet=True, overwrite=True)
    assert again["iterations"] == 4


def test_a_damaged_best_pt_in_eval_is_one_line(tmp_path):
    extra = dict(eval_every=2, eval_episodes=2, select="best-val")
    run_setting(settings(4, **extra), tmp_path, loader=LOAD, quiet=True)
    best = tmp_path / "best.pt"
    best.write_bytes(best.read_bytes()[:100])
    with pytest.raises(FsbenchError) as err:
        evaluate_run(tmp_path, tmp_path / "e", way=3, loader=LOAD)
    assert str(err.value).startswith(f"{best} is truncated (the end of the file is missing); "), (
        err.value
    )
    assert "start the run again (fsbench run ... --overwrite)" in str(err.value)
    assert f"delete {best} to test the last checkpoint" in str(err.value)
    assert not (tmp_path / "e").exists()
    ckpt = tmp_path / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    with pytest.raises(FsbenchError, match=f"{ckpt} is truncated.*delete {ckpt} to resume from"):
        evaluate_run(tmp_path, tmp_path / "e", way=3, loader=LOAD)
