"""Several modes per class: k-means, Magnet's batches and training, RepMet's loss by hand,
representatives that move, mnist-super's ground truth, and the one-line errors."""

from __future__ import annotations

import math

import pytest
import torch
from cli_errors import assert_one_line_error
from click.testing import CliRunner
from fsbench.cli import main
from fsbench.data.store import ArrayStore
from fsbench.data.super_classes import group_classes, super_classes
from fsbench.errors import FsbenchError
from fsbench.methods import build_method
from fsbench.methods.clusters import kmeans, support_modes
from fsbench.methods.repmet import repmet_loss
from fsbench.resolve import resolve_settings
from fsbench.synthetic import synthetic_images


def blobs(centres: list[list[float]], per: int, spread: float = 0.05, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    c = torch.tensor(centres)
    return c.repeat_interleave(per, 0) + spread * torch.randn(len(c) * per, c.shape[1], generator=g)


# -- k-means ------------------------------------------------------------------------------------
def test_kmeans_finds_separated_blobs_in_every_group():
    a = blobs([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]], per=10)
    b = blobs([[10.0, 10.0], [-10.0, 3.0], [2.0, -8.0]], per=10, seed=1)
    centres, assign = kmeans(torch.stack([a, b]), 3, torch.Generator().manual_seed(0))
    for g, points in enumerate((a, b)):
        # each blob's 10 points share one cluster, and the three blobs use three clusters
        labels = assign[g].view(3, 10)
        assert (labels == labels[:, :1]).all() and len(set(labels[:, 0].tolist())) == 3
        truth = points.view(3, 10, 2).mean(1)
        got = centres[g][labels[:, 0]]
        assert torch.allclose(got, truth, atol=1e-5)


def test_kmeans_is_seeded_and_checks_k():
    x = torch.randn(1, 40, 3, generator=torch.Generator().manual_seed(3))
    one = kmeans(x, 4, torch.Generator().manual_seed(7))
    two = kmeans(x, 4, torch.Generator().manual_seed(7))
    assert torch.equal(one[0], two[0]) and torch.equal(one[1], two[1])
    centres, assign = kmeans(x[:, :4], 4, torch.Generator())  # k == n: every point its own
    assert torch.equal(centres, x[:, :4]) and assign.tolist() == [[0, 1, 2, 3]]
    with pytest.raises(ValueError, match="k <= points"):
        kmeans(x[:, :3], 4, torch.Generator())


def test_kmeans_plus_plus_survives_identical_points():
    x = torch.zeros(1, 6, 2)  # all the same: seeding must not divide by zero or repeat forever
    centres, assign = kmeans(x, 3, torch.Generator().manual_seed(0))
    assert torch.isfinite(centres).all() and assign.shape == (1, 6)


def test_support_modes_one_is_the_prototype_and_shot_is_every_image():
    z = torch.arange(12, dtype=torch.float32).view(6, 2)  # way 2, shot 3
    centres, cls = support_modes(z, 2, 3, 1, torch.Generator())
    assert torch.equal(centres, z.view(2, 3, 2).mean(1)) and cls.tolist() == [0, 1]
    centres, cls = support_modes(z, 2, 3, 3, torch.Generator())
    assert torch.equal(centres, z) and cls.tolist() == [0, 0, 0, 1, 1, 1]


# -- RepMet -------------------------------------------------------------------------------------
def test_repmet_loss_by_hand():
    # two classes, two representatives each, in 1-D; one embedding at 0 of class 0
    reps = torch.tensor([[1.0], [3.0], [-2.0], [4.0]])  # class 0: 1, 3; class 1: -2, 4
    z = torch.tensor([[0.0]])
    total, margin, logits = repmet_loss(z, torch.tensor([0]), reps, modes=2, sigma=0.5, alpha=1.0)
    # nearest of class 0 at distance 1, of class 1 at distance 2: margin |1 - 2 + 1|_+ = 0
    assert float(margin) == pytest.approx(0.0)
    # logits -d^2 / (2 sigma^2) = -1 / 0.5 = -2 and -4 / 0.5 = -8
    assert logits[0].tolist() == pytest.approx([-2.0, -8.0])
    expected = -math.log(math.exp(-2) / (math.exp(-2) + math.exp(-8)))
    assert float(total) == pytest.approx(expected, abs=1e-6)
    total, margin, _ = repmet_loss(torch.tensor([[-1.5]]), torch.tensor([0]), reps, 2, 0.5, 1.0)
    # now class 0 is 2.5 away, class 1 only 0.5: margin 2.5 - 0.5 + 1 = 3
    assert float(margin) == pytest.approx(3.0)


SMALL_MODES = dict(
    way=3,
    shot=3,
    query=2,
    hidden=8,
    modes=2,
    clusters_per_batch=4,
    images_per_cluster=3,
    eval_every=0,
    select="last",
    iterations=5,
)


def build(method: str, store: ArrayStore, **extra):
    settings = resolve_settings(method, "mnist-super", {**SMALL_MODES, **extra})
    torch.manual_seed(0)
    return build_method(settings, store.example_shape, store.num_classes)


def test_representatives_move_during_training():
    store = synthetic_images(classes=6, per_class=8, size=16)
    method = build("repmet", store, embedding_dim=8)
    before = method.model.representatives.detach().clone()
    opt, _ = method.make_optimizer()
    gen = torch.Generator().manual_seed(0)
    for it in range(5):
        loss, metrics = method.train_loss(method.sample_train(store, gen, it))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert before.shape == (6 * 2, 8)
    assert (method.model.representatives.detach() - before).norm(dim=1).min() > 0


# -- Magnet -------------------------------------------------------------------------------------
def test_magnet_batch_is_the_seed_cluster_and_its_nearest_impostors():
    store = synthetic_images(classes=6, per_class=8, size=16)
    method = build("magnet", store)
    gen = torch.Generator().manual_seed(0)
    batch = method.sample_train(store, gen, 0)
    assert method.means.shape[0] == 6 * 2  # K clusters per class
    m, d = 4, 3
    assert batch.x.shape[0] == m * d and batch.cluster.tolist() == sum(
        [[c] * d for c in range(m)], []
    )
    chosen = method.assign[batch.positions].view(m, d)
    assert (chosen == chosen[:, :1]).all()  # D images of each chosen cluster
    seed = int(chosen[0, 0])
    # the others are the seed's 3 nearest clusters of other classes
    d2 = ((method.means - method.means[seed]) ** 2).sum(1)
    d2[method.mean_class == method.mean_class[seed]] = float("inf")
    assert chosen[1:, 0].tolist() == torch.argsort(d2, stable=True)[:3].tolist()
    assert batch.cluster_class.tolist() == method.mean_class[chosen[:, 0]].tolist()
    # training records the losses that weigh the next seeds, and the batch variances
    loss, _ = method.train_loss(batch)
    assert float(loss.detach()) >= 0 and method.variance_count == 1 and method.variance() > 0
    assert not torch.equal(method.example_loss, torch.ones_like(method.example_loss))


def test_a_query_does_not_depend_on_the_other_queries():
    store = synthetic_images(classes=6, per_class=8, size=16)
    for name in ("magnet", "repmet"):
        method = build(name, store, **({"embedding_dim": 8} if name == "repmet" else {}))
        method.model.eval()
        ep = store.sample_episode(torch.Generator().manual_seed(1), 3, 3, 2)
        full = method.scores(*_scored(method, ep, ep.query_x[0]))
        alone = method.scores(*_scored(method, ep, ep.query_x[0][:1]))
        assert torch.allclose(full[:1], alone, atol=1e-5), name


def _scored(method, ep, queries):
    with torch.no_grad():
        zs = method.embed(ep.support_x[0])
        zq = method.embed(queries)
    centres, cls = support_modes(zs, ep.way, ep.shot, 2, torch.Generator().manual_seed(0))
    return zq, centres, cls, ep.way


# -- mnist-super ----------------------------------------------------------------------------------
def test_super_classes_join_classes_that_share_no_digit_position():
    names = [f"{i:02d}" for i in range(100)]
    groups = group_classes(names)
    assert all(len(g) == 3 for g in groups)
    for g in groups:
        for a in g:
            for b in g:
                assert a == b or all(x != y for x, y in zip(a, b, strict=True))
    flat = [n for g in groups for n in g]
    assert len(flat) == len(set(flat))
    # the published DoubleMNIST test classes make 6 super-classes
    test = [
        "02",
        "17",
        "25",
        "32",
        "36",
        "46",
        "47",
        "49",
        "55",
        "57",
        "66",
        "67",
        "68",
        "73",
        "78",
        "80",
        "83",
        "86",
        "92",
        "96",
    ]
    assert len(group_classes(test)) == 6


def test_super_class_store_keeps_the_parts_as_modes():
    names = ["02", "17", "25", "33", "46", "58", "99"]
    store = ArrayStore(
        torch.arange(14, dtype=torch.uint8).view(14, 1, 1, 1),
        torch.arange(7).repeat_interleave(2),
        names,
    )
    sup = super_classes(store)
    assert sup.class_names == ["02+17+25", "33+46+58"] and len(sup) == 12  # '99' left over
    assert sup.meta["modes"]["02+17+25"] == ["02", "17", "25"]
    assert sup.labels.tolist() == [0] * 6 + [1] * 6
    assert sup.data.view(-1).tolist() == list(range(12))
    with pytest.raises(FsbenchError, match="parts must be"):
        super_classes(store, parts=1)


# -- bad input ------------------------------------------------------------------------------------
def test_modes_settings_are_checked():
    with pytest.raises(FsbenchError, match="modes must be an integer >= 1"):
        resolve_settings("magnet", "mnist-super", {"modes": 0})
    with pytest.raises(FsbenchError, match="modes applies to magnet and repmet"):
        resolve_settings("protonet", "mnist-super", {"modes": 3})
    with pytest.raises(FsbenchError, match="sigma must be a number > 0"):
        resolve_settings("repmet", "fashionmnist", {"sigma": 0.0})
    with pytest.raises(FsbenchError, match="use it with one of"):
        resolve_settings("magnet", "doublemnist", {})


def test_more_modes_than_images_is_one_error_line(tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "run",
            "magnet",
            "mnist-super",
            "--images-per-class",
            "2",
            "--modes",
            "7",
            "--data-root",
            str(tmp_path),
            "--out",
            str(tmp_path / "out"),
            "--quiet",
        ],
    )
    assert_one_line_error(result, "--modes 7 is more clusters than the 6 images of class")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv", [["--modes", "0"], ["--modes", "-2"]])
def test_modes_zero_or_negative_is_one_error_line(tmp_path, argv):
    result = CliRunner().invoke(
        main, ["run", "repmet", "fashionmnist", *argv, "--out", str(tmp_path / "o")]
    )
    assert_one_line_error(result, "--modes must be an integer >= 1")


def test_missing_dataset_folder_is_one_error_line(tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "run",
            "magnet",
            "fashionmnist",
            "--dataset-dir",
            str(tmp_path / "nowhere"),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert_one_line_error(result, "--dataset-dir", "does not exist")


# -- the modes table and the command line ----------------------------------------------------------
def test_modes_table_cells_differ_in_method_and_modes_only():
    from fsbench.engine.reproduce import cell_settings
    from fsbench.settings import differences
    from fsbench.table_specs import TABLES

    spec = TABLES["modes"]
    assert len(spec.cells) == 10 and spec.rows_are == "method"
    for quick in (False, True):
        by = {(c.row, c.dataset): cell_settings(spec, c, 0, quick, {}, 1) for c in spec.cells}
        for ds in ("mnist-super", "fashionmnist"):
            for method in ("Magnet loss", "RepMet"):
                k1, k3 = by[(f"{method}, K = 1", ds)], by[(f"{method}, K = 3", ds)]
                assert differences(k1, k3) == {"modes": (1, 3)}
            proto = by[("Prototypical Networks (one mode)", ds)]
            # the same test episodes and training budget for every row
            for row in ("Magnet loss, K = 3", "RepMet, K = 3"):
                other = by[(row, ds)]
                for key in (
                    "way",
                    "shot",
                    "query",
                    "episodes",
                    "iterations",
                    "hidden",
                    "lr",
                    "lr_step",
                    "norm",
                    "eval_every",
                    "seed",
                    "data_options",
                ):
                    assert other[key] == proto[key], (row, ds, key)
        if quick:
            assert by[("RepMet, K = 3", "mnist-super")]["data_options"]["resize"] == 32
            assert "resize" not in by[("RepMet, K = 3", "fashionmnist")]["data_options"]


@pytest.fixture(scope="module")
def super_root(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


def tiny_run(method: str, root, out, *extra: str) -> list[str]:
    """`fsbench run` arguments of a seconds-long run on a tiny generated mnist-super."""
    own = ["--refresh-every", "2", "--images-per-cluster", "2"]
    if method == "repmet":
        own = ["--embedding-dim", "8"]
    return [
        "run",
        method,
        "mnist-super",
        "--images-per-class",
        "6",
        "--resize",
        "16",
        "--iterations",
        "4",
        "--hidden",
        "4",
        "--episodes",
        "3",
        "--query",
        "1",
        "--modes",
        "2",
        "--data-root",
        str(root),
        "--out",
        str(out),
        "--quiet",
        "--threads",
        "1",
        *own,
        *extra,
    ]


@pytest.mark.parametrize("method", ["magnet", "repmet"])
def test_run_on_mnist_super_end_to_end(tmp_path, super_root, method):
    out = tmp_path / method
    args = tiny_run(method, super_root, out, "--eval-every", "2", "--eval-episodes", "2")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    import json

    r = json.loads((out / "result.json").read_text())
    assert r["method"] == method and r["settings"]["modes"] == 2 and r["episodes"] == 3
    assert r["data"]["train"]["classes"] == 20 and r["data"]["test"]["classes"] == 6
    assert r["data"]["test"]["modes"]["02+17+25"] == ["02", "17", "25"]
    assert r["published_percent"] is None


def test_eval_of_a_magnet_run_uses_its_trained_variance(tmp_path, super_root):
    import json

    out = tmp_path / "m"
    args = tiny_run("magnet", super_root, out, "--eval-every", "0", "--select", "last")
    assert CliRunner().invoke(main, args).exit_code == 0
    from fsbench.engine.evaluate import evaluate_run
    from fsbench.methods.magnet import Magnet

    seen = {}
    original = Magnet.load_extra_state

    def spy(self, state):
        original(self, state)
        seen["variance"] = self.variance()

    import pytest as _pytest

    with _pytest.MonkeyPatch.context() as mp:
        mp.setattr(Magnet, "load_extra_state", spy)
        again = evaluate_run(out, tmp_path / "e", data_root=super_root, device="cpu", quiet=True)
    trained = json.loads((out / "result.json").read_text())
    # the variance the run tested with (result.json) is the one eval restores, not 1.0
    assert seen["variance"] != 1.0
    assert seen["variance"] == pytest.approx(trained["soft_vote_variance"])
    assert again["accuracy"] == trained["accuracy"]
