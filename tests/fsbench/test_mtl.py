"""Meta-Transfer Learning: ResNet-12, pre-training, frozen weights, SS size, hard tasks, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from cli_errors import assert_one_line_error
from click.testing import CliRunner
from fsbench.cli import main
from fsbench.data.store import ArrayStore
from fsbench.engine import run_setting
from fsbench.engine.run import load_pretrained
from fsbench.errors import FsbenchError
from fsbench.methods import build_method
from fsbench.models.resnet12 import ResNet12
from fsbench.models.scale_shift import SSConv2d, add_scale_shift
from fsbench.resolve import resolve_settings
from fsbench.synthetic import synthetic_images, synthetic_loader

TINY = {"widths": [4, 8, 8, 16]}
LOAD = synthetic_loader(size=16, classes=12, per_class=10)
EPISODE = {"way": 3, "shot": 1, "query": 3, "eval_episodes": 4, "episodes": 6}


def pretrained(tmp_path: Path, load=LOAD, **extra) -> Path:
    settings = resolve_settings(
        "pretrain",
        "doublemnist",
        # validated every epoch, the best kept: the PyTorch code's selection (the preset, as the
        # TF code, keeps the last weights)
        {**TINY, **EPISODE, "epochs": 2, "batch_size": 32, "test_inner_steps": 10,
         "eval_every": 1, "select": "best-val", **extra},
    )  # fmt: skip
    out = tmp_path / "pre"
    run_setting(settings, out, loader=load, quiet=True)
    return out


def mtl_settings(pre: Path, **extra) -> dict:
    return resolve_settings(
        "mtl",
        "doublemnist",
        {
            **EPISODE,
            "pretrained": str(pre),
            "iterations": 6,
            "eval_every": 3,
            "inner_steps": 10,
            "test_inner_steps": 10,
            **extra,
        },
    )


def test_resnet12_shape_and_blocks():
    net = ResNet12((3, 84, 84))
    assert net(torch.rand(2, 3, 84, 84)).shape == (2, 512)
    block = net.blocks[0]
    convs = [block.conv1, block.conv2, block.conv3]
    assert [c.kernel_size for c in convs] == [(3, 3)] * 3 and all(c.bias is not None for c in convs)
    assert block.shortcut.kernel_size == (1, 1) and block.shortcut.bias is None
    assert [b.conv1.out_channels for b in net.blocks] == [64, 128, 256, 512]
    with pytest.raises(ValueError, match="too small"):
        ResNet12((1, 8, 8))


def test_scale_shift_starts_as_the_identity_and_scales_kernels():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 5, 3, padding=1)
    x = torch.randn(2, 3, 6, 6)
    before = conv(x)
    ss = SSConv2d(conv)
    torch.testing.assert_close(ss(x), before)  # scale 1, shift 0
    assert ss.ss.scale.shape == (5, 3, 1, 1) and ss.ss.shift.shape == (5,)
    with torch.no_grad():
        ss.ss.scale[:, 1] = 0.0  # drop input channel 1 from every kernel
        ss.ss.shift += 1.0
    x2 = x.clone()
    x2[:, 1] = 0.0
    torch.testing.assert_close(ss(x), conv(x2) + 1.0)
    assert not any(p.requires_grad for p in conv.parameters())


def test_ss_is_a_small_reported_fraction_of_the_full_resnet12():
    net = ResNet12((3, 84, 84))
    own = sum(p.numel() for p in net.parameters())
    added = sum(p.numel() for p in add_scale_shift(net))
    assert 7_900_000 < own < 8_100_000  # 64-128-256-512, three 3x3 convs per block
    assert 0.10 < added / own < 0.12  # one scale per (out, in) kernel slice: ~1/9 of the convs
    assert all(not p.requires_grad for n, p in net.named_parameters() if ".ss." not in n)


def test_pretrain_then_mtl_keeps_the_backbone_frozen(tmp_path):
    pre = pretrained(tmp_path)
    done = json.loads((pre / "result.json").read_text())
    assert done["method"] == "pretrain" and done["iterations"] == 2 * 4  # ceil(12 x 10 / 32)
    assert done["selection"]["validations"] == 2  # once per epoch
    weights = torch.load(pre / "best.pt", weights_only=False)["model"]
    res = run_setting(mtl_settings(pre), tmp_path / "mtl", loader=LOAD, quiet=True)
    assert res["parameters"]["meta_trained"] < res["parameters"]["backbone"]
    assert res["parameters"]["meta_trained_fraction"] == pytest.approx(
        res["parameters"]["meta_trained"] / res["parameters"]["backbone"], abs=1e-4
    )
    after = torch.load(tmp_path / "mtl" / "checkpoint.pt", weights_only=False)["model"]
    for key, value in weights.items():
        if key.startswith("head."):
            continue
        name = f"backbone.{key}"
        if name not in after:
            name = "backbone." + ".conv.".join(key.rsplit(".", 1))
        assert torch.equal(after[name], value), key  # bit for bit
    scales = [v for k, v in after.items() if k.endswith("ss.scale")]
    assert scales and any(not torch.equal(s, torch.ones_like(s)) for s in scales)  # SS learned
    assert res["settings"]["widths"] == TINY["widths"]  # the backbone came from the checkpoint


def test_ft_mode_trains_the_backbone(tmp_path):
    pre = pretrained(tmp_path)
    run_setting(mtl_settings(pre, mtl_mode="ft"), tmp_path / "ft", loader=LOAD, quiet=True)
    before = torch.load(pre / "best.pt", weights_only=False)["model"]["blocks.0.conv1.weight"]
    after = torch.load(tmp_path / "ft" / "checkpoint.pt", weights_only=False)["model"]
    assert not torch.equal(after["backbone.blocks.0.conv1.weight"], before)


def test_a_zero_head_starts_mtl_at_the_pretrained_baseline(tmp_path):
    """head_init zeros: before any meta-update SS and FT score a task exactly as row (a), the
    pre-trained features with a new head; the official Xavier start does not."""
    pre = pretrained(tmp_path)
    settings, weights, _ = load_pretrained(mtl_settings(pre))
    store = LOAD("doublemnist", "test")
    ep = store.sample_episode(torch.Generator().manual_seed(0), 3, 1, 3, 1)
    task = (ep.support_x[0], ep.support_y[0], ep.query_x[0], 3)
    baseline = build_method(
        {**settings, "method": "pretrain"}, store.example_shape, store.num_classes
    )
    baseline.model.load_state_dict(weights, strict=False)
    with torch.no_grad():
        expected = baseline.task_scores(*task)
        scores = {}
        for mode in ("ss", "ft"):
            for init in ("zeros", "xavier"):
                mtl = build_method(
                    {**settings, "mtl_mode": mode, "head_init": init},
                    store.example_shape,
                    store.num_classes,
                )
                mtl.load_pretrained(weights)
                scores[mode, init] = mtl.task_scores(*task)
    torch.testing.assert_close(scores["ss", "zeros"], expected)
    torch.testing.assert_close(scores["ft", "zeros"], expected)
    assert not torch.allclose(scores["ss", "xavier"], expected)


def _easy_and_hard_classes() -> ArrayStore:
    """10 clean classes (ids 0-9) and 10 pure-noise ones (ids 10-19): the noisy ones are hard."""
    easy = synthetic_images(classes=10, per_class=12, size=16, noise=0.0, seed=1)
    hard = synthetic_images(classes=10, per_class=12, size=16, noise=3.0, seed=2)
    return ArrayStore(torch.cat([easy.data, hard.data]), torch.cat([easy.labels, hard.labels + 10]))


def test_hard_tasks_are_harder_than_random_tasks_for_the_same_model():
    store = _easy_and_hard_classes()
    s = resolve_settings(
        "mtl",
        "doublemnist",
        {**TINY, "way": 5, "shot": 1, "query": 4, "pretrained": "x", "hard_tasks": True},
    )
    s["inner_steps"] = s["test_inner_steps"] = 30
    s["inner_lr"] = 1.0  # an untrained classifier init: fit it firmly
    torch.manual_seed(0)
    method = build_method(s, store.example_shape, store.num_classes)
    gen = torch.Generator().manual_seed(0)
    random_accs, hard_accs = [], []
    with torch.no_grad():
        for it in range(150):  # no optimiser step: one and the same model throughout
            batch = method.sample_train(store, gen, it)
            method.train_loss(batch)
            accs = method.episode_accuracies(batch)
            random_accs.append(float(accs[0]))
            if method.hard_in_batch:
                hard_accs.append(float(accs[-1]))
                assert batch.classes.shape == (2, 5)
    assert len(hard_accs) >= 10
    hard, rand = sum(hard_accs) / len(hard_accs), sum(random_accs) / len(random_accs)
    assert hard < rand - 0.05, (hard, rand)
    # the failure classes are mostly the noisy ones
    assert sum(c >= 10 for c in method.hard_queue) >= len(method.hard_queue) / 2


def test_bad_input(tmp_path):
    run = ["run", "mtl", "doubled", "--quiet", "--device", "cpu"]
    assert_one_line_error(
        CliRunner().invoke(main, [*run, "--out", str(tmp_path / "a")]), "--pretrained"
    )
    (tmp_path / "empty").mkdir()
    r = CliRunner().invoke(
        main, [*run, "--pretrained", str(tmp_path / "empty"), "--out", str(tmp_path / "b")]
    )
    assert_one_line_error(r, "not a finished fsbench pretrain run")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_checkpoint_of_another_image_size(tmp_path):
    pre = pretrained(tmp_path)
    larger = synthetic_loader(size=32, classes=12, per_class=10)
    with pytest.raises(FsbenchError, match=r"shape \[1, 16, 16\].*\[1, 32, 32\]"):
        run_setting(mtl_settings(pre), tmp_path / "y", loader=larger)
    assert not (tmp_path / "y").exists()


def test_mtl_takes_the_backbone_recorded_in_the_pretrained_run(tmp_path):
    """A conv4 pretrain run is taken as it is (it used to be refused until --backbone conv4)."""
    pre = pretrained(tmp_path, backbone="conv4", hidden=6, widths=None)
    assert mtl_settings(pre)["backbone"] == "resnet12"  # the MTL preset's own
    res = run_setting(mtl_settings(pre), tmp_path / "m", loader=LOAD, quiet=True)
    assert res["settings"]["backbone"] == "conv4" and res["settings"]["hidden"] == 6
    assert {"setting": "backbone", "value": "conv4", "preset": "resnet12"} in res["deviations"]
    weights = torch.load(pre / "best.pt", weights_only=False)["model"]
    after = torch.load(tmp_path / "m" / "checkpoint.pt", weights_only=False)["model"]
    convs = [k for k in weights if not k.startswith("head.") and weights[k].dim() == 4]
    assert convs
    for key in convs:  # the conv4 weights of the pretrain run, loaded and kept frozen
        name = f"backbone.{key}"
        if name not in after:
            name = "backbone." + ".conv.".join(key.rsplit(".", 1))
        assert torch.equal(after[name], weights[key]), key


def test_pretraining_resumes_exactly_across_epochs(tmp_path):
    settings = resolve_settings(
        "pretrain", "doublemnist", {**TINY, **EPISODE, "batch_size": 32, "checkpoint_every": 3}
    )
    straight = run_setting({**settings, "epochs": 2}, tmp_path / "a", loader=LOAD, quiet=True)
    run_setting({**settings, "epochs": 1}, tmp_path / "b", loader=LOAD, quiet=True)
    resumed = run_setting(
        {**settings, "epochs": 2}, tmp_path / "b", loader=LOAD, quiet=True, resume=True
    )
    assert resumed["resumed_from"] == 4 and resumed["iterations"] == straight["iterations"] == 8
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["accuracy"] == straight["accuracy"]


def test_pretraining_counts_iterations_when_epochs_is_0(tmp_path):
    # "--epochs 0: use --iterations": the run trained 0 iterations and tested an untrained net
    settings = resolve_settings(
        "pretrain",
        "doublemnist",
        {**TINY, **EPISODE, "batch_size": 32, "epochs": 0, "iterations": 5, "lr_step": 2,
         "eval_every": 0, "select": "last"},
    )  # fmt: skip
    done = run_setting(settings, tmp_path / "it", loader=LOAD, quiet=True)
    assert done["iterations"] == 5
    lines = [json.loads(x) for x in (tmp_path / "it" / "metrics.jsonl").read_text().splitlines()]
    lrs = [x["lr"] for x in lines if "lr" in x]
    lr, g = settings["lr"], settings["lr_gamma"]
    expected = [lr, lr * g, lr * g, lr * g * g, lr * g * g]  # lr_step counts iterations
    assert lrs == pytest.approx(expected, rel=1e-12)


def test_pretraining_with_adam_and_the_optimizer_elsewhere(tmp_path):
    settings = resolve_settings(
        "pretrain",
        "doublemnist",
        {**TINY, **EPISODE, "batch_size": 32, "epochs": 1, "optimizer": "adam", "lr": 1e-3,
         "momentum": 0.0, "weight_decay": 0.0},
    )  # fmt: skip
    run_setting(settings, tmp_path / "adam", loader=LOAD, quiet=True)
    state = torch.load(tmp_path / "adam" / "checkpoint.pt", weights_only=True)["optimizer"]
    assert "exp_avg" in next(iter(state["state"].values()))  # Adam's moments, not SGD's buffer
    with pytest.raises(FsbenchError, match="optimizer applies to pretrain, not protonet"):
        resolve_settings("protonet", "doublemnist", {"optimizer": "adam"})


def test_eval_of_an_mtl_run_equals_its_test(tmp_path):
    from fsbench.engine.evaluate import evaluate_run

    pre = pretrained(tmp_path)
    own = run_setting(mtl_settings(pre), tmp_path / "mtl", loader=LOAD, quiet=True)
    again = evaluate_run(tmp_path / "mtl", tmp_path / "e", loader=LOAD, quiet=True)
    assert again["accuracy"] == own["accuracy"]


def test_missing_dataset_files_are_one_line(tmp_path):
    r = CliRunner().invoke(
        main,
        ["pretrain", "miniimagenet", "--data-root", str(tmp_path), "--out", str(tmp_path / "o")],
    )
    assert_one_line_error(r, "miniImageNet not found", "mini-imagenet-cache")
    assert not (tmp_path / "o").exists()
