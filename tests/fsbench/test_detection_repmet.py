"""RepMet's detection head: scores and embedding loss by hand; representatives replaced by the
support boxes' embeddings at test; a tiny detector run end to end (result.json, resume)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

pytest.importorskip("torchvision")
pytest.importorskip("pycocotools")

from fsbench.detection.detector import dml_scores, embedding_loss  # noqa: E402

# class 0: (0.6, 0.8), (-1, 0); class 1: (0, 1), (0, -1)  (class-major, K = 2)
REPS = torch.tensor([[0.6, 0.8], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
Z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])


def test_dml_scores_by_hand():
    scores, d2 = dml_scores(Z, REPS, modes=2, sigma=0.5)
    # squared distances of z1 = (1, 0): 0.8, 4 | 2, 2; of z2 = (0, 1): 0.4, 2 | 0, 4
    assert d2[0].flatten().tolist() == pytest.approx([0.8, 4.0, 2.0, 2.0], abs=1e-6)
    assert d2[1].flatten().tolist() == pytest.approx([0.4, 2.0, 0.0, 4.0], abs=1e-6)
    # p = exp(-d2 / (2 * 0.25)), class score = max over its modes, background = 1 - max
    p0, p1 = math.exp(-1.6), math.exp(-4.0)
    assert scores[0].tolist() == pytest.approx([1 - p0, p0, p1], abs=1e-6)
    assert scores[1].tolist() == pytest.approx([0.0, math.exp(-0.8), 1.0], abs=1e-6)


def test_embedding_loss_by_hand():
    _, d2 = dml_scores(Z, REPS, modes=2, sigma=0.5)
    labels = torch.tensor([2, 2, 0])  # roi 1 and 2: class 1 (label 2); roi 3: background
    # roi 1: own class min 2, other class min 0.8 -> |2 - 0.8 + 0.5|_+ = 1.7
    # roi 2: own 0, other 0.4 -> 0.1; background rois count in the mean only: (1.7 + 0.1) / 3
    assert float(embedding_loss(d2, labels, margin=0.5)) == pytest.approx(0.6, abs=1e-6)
    assert float(embedding_loss(d2, torch.tensor([1, 0, 0]), margin=0.5)) == pytest.approx(0.0)
    assert float(embedding_loss(d2, torch.zeros(3, dtype=torch.long))) == 0.0


SMALL = dict(
    scene_size=64,
    train_scenes=24,
    val_scenes=2,
    test_scenes=30,
    iterations=3,
    episodes=2,
    query=2,
    batch_size=2,
    checkpoint_every=0,
    representation=32,
)
OWN = {"repmet-det": {"embedding_dim": 16}, "finetune-det": {"finetune_steps": 3}}


def _tiny(method: str, tmp_path, data_root):
    from fsbench.detection.method import DetectionStore, build_detection_method
    from fsbench.detection.run import load_split, settings_for

    settings = settings_for(method, "mnist-detect", **SMALL, **OWN[method])
    train = load_split(settings, "train", data_root)
    test = load_split(settings, "test", data_root)
    torch.manual_seed(0)
    m = build_detection_method(settings, (1, 64, 64), len(train.classes))
    return m, DetectionStore(test, torch.device("cpu")), settings


def test_representatives_are_replaced_by_support_embeddings_at_test(tmp_path, fsbench_data_root):
    from fsbench.detection.episodes import sample_episode

    method, store, _ = _tiny("repmet-det", tmp_path, fsbench_data_root)
    method.model.eval()
    head = method.predictor
    ep = sample_episode(store.data, np.random.default_rng(0), 3, 2, 1)
    with torch.no_grad():
        expected = head.embedding(method.support_features(store, ep))
    seen = []
    hook = head.register_forward_hook(lambda mod, inp, out: seen.append(mod.current()))
    with torch.no_grad():
        method.episode_detections(store, ep, seed=0)
    hook.remove()
    assert seen, "the head ran on the queries"
    reps, modes = seen[0]
    assert modes == 2 and reps.shape == (6, 16)
    assert torch.allclose(reps, expected, atol=1e-6)
    # each support embedding is its own box's: class-major, shot per class
    with torch.no_grad():
        first = head.embedding(
            method.support_features(store, type(ep)(ep.classes, 1, ep.support[:1], [], []))
        )
    assert torch.allclose(reps[0], first[0], atol=1e-5)
    # afterwards the trained representatives are back
    trained, k = head.current()
    assert k == 5 and trained.shape[0] == 5 * 64


@pytest.mark.parametrize("method", ["repmet-det", "finetune-det"])
def test_tiny_run_writes_result_and_resumes(method, tmp_path, fsbench_data_root):
    from fsbench.detection.run import run_detection, settings_for
    from fsbench.errors import FsbenchError

    settings = settings_for(method, "mnist-detect", **SMALL, **OWN[method])
    out = tmp_path / "run"
    result = run_detection(settings, out, data_root=fsbench_data_root, quiet=True)
    saved = json.loads((out / "result.json").read_text())
    assert saved["metric"] == "mAP@0.5" and saved["episodes"] == 2 and saved["iterations"] == 3
    assert 0.0 <= saved["map50"] <= 1.0 and saved["map50"] == result["map50"]
    assert 0.0 <= saved["random_boxes_map50"] < 0.2
    assert len((out / "episodes.csv").read_text().splitlines()) == 3
    with pytest.raises(FsbenchError, match="already holds a run"):
        run_detection(settings, out, data_root=fsbench_data_root, quiet=True)
    longer = dataclasses.replace(settings, iterations=4)
    again = run_detection(longer, out, data_root=fsbench_data_root, resume=True, quiet=True)
    assert again["iterations"] == 4
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["iteration"] for x in lines] == [1, 2, 3, 4]
