"""Your own backbone in every method (issue 21 item 2): a torchvision ResNet-18 in ProtoNets
through the engine, MAML on a custom net against a hand-written inner loop, and each method's
one-line refusals."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from fsbench.engine.trainer import train
from fsbench.methods import FOMAML, MAML, MTL, Magnet, ProtoNet, RepMet, SimpleCNAPs, build_method
from fsbench.methods.simple_cnaps import FiLMHook
from fsbench.models import Conv4
from fsbench.resolve import resolve_settings
from fsbench.settings import SettingError
from fsbench.synthetic import synthetic_images
from torch import nn

torchvision = pytest.importorskip("torchvision")


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def store():
    return synthetic_images(classes=6, per_class=6, size=32)


def resnet18_one_channel() -> nn.Module:
    """torchvision's ResNet-18 as an embedding of 1-channel images: a 1->3 adapter, no fc."""
    net = torchvision.models.resnet18(weights=None)
    net.fc = nn.Identity()
    return nn.Sequential(nn.Conv2d(1, 3, 1), net)


def small_net(out: int = 16) -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.MaxPool2d(4), nn.Flatten(), nn.Linear(4 * 8 * 8, out))  # fmt: skip


EPISODE = dict(way=3, train_way=3, shot=2, train_shot=2, query=2, train_query=2)


def test_resnet18_protonet_trains_through_the_engine(store, tmp_path):
    settings = resolve_settings("protonet", "folder", {**EPISODE, "iterations": 3})
    settings["checkpoint_every"] = 0
    backbone = resnet18_one_channel()
    torch.manual_seed(0)
    method = build_method(settings, store.example_shape, store.num_classes, backbone=backbone)
    assert method.backbone is backbone
    assert not method.batch_dependent and method.running_statistics  # torch BatchNorm2d
    before = backbone[1].conv1.weight.detach().clone()
    train(method, store, settings, tmp_path, device=torch.device("cpu"), quiet=True)
    assert not torch.equal(before, backbone[1].conv1.weight)  # the user's module was trained
    ep = store.sample_episode(torch.Generator().manual_seed(3), 3, 2, 4, 1)
    method.model.eval()
    with torch.no_grad():
        scores = method.task_scores(ep.support_x[0], ep.support_y[0], ep.query_x[0], 3)
    assert scores.shape == (12, 3) and torch.isfinite(scores).all()
    res = method.evaluate(store, torch.Generator().manual_seed(4), 2)
    assert res.episodes == 2


def maml_net() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 3))


def hand_written_meta_grads(net: nn.Module, ep, lr: float, steps: int, second_order: bool):
    """MAML with torch.autograd.grad on the two layers' weights, written out by hand."""
    params = list(net.parameters())

    def forward(p, x):
        h = F.relu(F.linear(x.flatten(1), p[0], p[1]))
        return F.linear(h, p[2], p[3])

    total = 0.0
    for b in range(ep.support_x.shape[0]):
        fast = params
        for _ in range(steps):
            loss = F.cross_entropy(forward(fast, ep.support_x[b]), ep.support_y[b])
            grads = torch.autograd.grad(loss, fast, create_graph=second_order)
            fast = [p - lr * g for p, g in zip(fast, grads, strict=True)]
        total = total + F.cross_entropy(forward(fast, ep.query_x[b]), ep.query_y[b])
    return torch.autograd.grad(total / ep.support_x.shape[0], params)


@pytest.mark.parametrize("cls", [MAML, FOMAML])
def test_maml_on_a_custom_net_equals_a_hand_written_inner_loop(cls):
    data = synthetic_images(classes=6, per_class=6, size=8)
    torch.manual_seed(0)
    net = maml_net()
    method = cls(net, inner_lr=0.3, inner_steps=2, inner_loss="mean", way=3, shot=2,
                 train_query=2, meta_batch=2, maml_exec="loop")  # fmt: skip
    method.to(torch.device("cpu"))
    ep = method.sample_train(data, torch.Generator().manual_seed(1), 0)
    loss, _ = method.meta_batch_loss(ep)
    ours = torch.autograd.grad(loss, list(net.parameters()))
    ref = hand_written_meta_grads(net, ep, 0.3, 2, second_order=cls is MAML)
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    # the two orders differ, so the comparison above tells them apart
    other = hand_written_meta_grads(net, ep, 0.3, 2, second_order=cls is not MAML)
    assert any(not torch.allclose(a, b, atol=1e-6) for a, b in zip(ours, other, strict=True))


def test_maml_refuses_running_statistics_in_one_line():
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.BatchNorm1d(8), nn.Linear(8, 5))
    with pytest.raises(ValueError, match="track_running_stats=False") as err:
        MAML(net)
    assert "\n" not in str(err.value)


def one_step(method, data) -> float:
    opt, _ = method.make_optimizer()
    batch = method.sample_train(data, torch.Generator().manual_seed(0), 0)
    loss, _ = method.train_loss(batch)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(loss.detach())


def test_magnet_and_repmet_train_a_step_on_a_custom_backbone(store):
    net = small_net()
    magnet = Magnet(net, modes=2, clusters_per_batch=3, images_per_cluster=2)
    magnet = magnet.for_data("folder", store.example_shape, store.num_classes)
    assert magnet.backbone is net and magnet.given["modes"] == 2
    before = net[0].weight.detach().clone()
    assert torch.isfinite(torch.tensor(one_step(magnet, store)))
    assert not torch.equal(before, net[0].weight)

    repmet = RepMet(small_net(), modes=2, embedding_dim=8, clusters_per_batch=3)
    with pytest.raises(TypeError, match="num_classes="):
        repmet.make_optimizer()  # built by for_data, which gives the training classes
    repmet = repmet.for_data("folder", store.example_shape, store.num_classes)
    assert repmet.net.representatives.shape == (store.num_classes * 2, 8)
    assert torch.isfinite(torch.tensor(one_step(repmet, store)))
    scores = repmet.task_scores(store.to_float(store.data[:6]), torch.arange(3).repeat(2) % 3,
                                store.to_float(store.data[6:10]), 3)  # fmt: skip
    assert scores.shape == (4, 3)


def test_repmet_without_backbone_names_num_classes():
    with pytest.raises(TypeError, match="num_classes="):
        RepMet(example_shape=(1, 32, 32))


def test_simple_cnaps_films_a_user_backbone_through_hooks(store):
    net = small_net()
    method = SimpleCNAPs(net, **EPISODE)
    with pytest.raises(TypeError, match="example_shape="):
        method.task_scores(store.data[:2], torch.arange(2), store.data[:2], 2)
    method = method.for_data("folder", store.example_shape, store.num_classes)
    films = method.cnaps.films
    assert len(films) == 1 and isinstance(films[0], FiLMHook) and films[0].channels == 4
    assert isinstance(net[1], nn.BatchNorm2d)  # the user's layers stay in place
    # FiLM changes the features: a task's adaptation reaches the backbone through the hook
    x = store.to_float(store.data[:4])
    plain = method.cnaps(x)
    method.cnaps.adapt(torch.ones(method.cnaps.set_encoder.dim))
    films[0].params = (torch.full((4,), 2.0), torch.ones(4))
    filmed = method.cnaps(x)
    method.cnaps.clear()
    assert not torch.allclose(plain, filmed)
    torch.testing.assert_close(method.cnaps(x), plain)
    assert torch.isfinite(torch.tensor(one_step(method, store)))


def test_simple_cnaps_refuses_a_backbone_without_norms(store):
    net = nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 8))
    with pytest.raises(ValueError, match="BatchNorm, InstanceNorm or GroupNorm"):
        SimpleCNAPs(net, example_shape=store.example_shape)


def test_mtl_accepts_conv4_and_refuses_anything_else(tmp_path):
    with pytest.raises(TypeError, match="fsbench's Conv4 or ResNet12") as err:
        MTL(nn.Sequential(nn.Conv2d(1, 4, 3)), pretrained=str(tmp_path))
    assert "\n" not in str(err.value)
    conv4 = Conv4((1, 32, 32), hidden=8)
    method = MTL(conv4, pretrained=str(tmp_path), way=3)
    assert method.net is not conv4 and method.net.feature_dim == conv4.feature_dim
    assert method.meta_params and all(p.requires_grad for p in method.meta_params)
    assert not any(type(m).__name__ == "SSConv2d" for m in conv4.modules())  # yours unchanged


def test_settings_and_shape_errors():
    with pytest.raises(SettingError) as err:
        ProtoNet(nn.Identity(), lite_h=-1)
    assert "lite_h" in str(err.value)
    with pytest.raises(TypeError, match="example_shape="):
        ProtoNet()
    with pytest.raises(ValueError, match="lite_h"):  # batch statistics and LITE
        ProtoNet(nn.BatchNorm1d(4, track_running_stats=False), lite_h=2, norm="running")


def test_for_data_keeps_the_backbone_and_keyword_settings():
    net = small_net()
    method = ProtoNet(net, distance="euclidean", train_shot=2)
    built = method.for_data("omniglot", (1, 28, 28), 10)
    assert built.backbone is net and isinstance(built, ProtoNet)
    assert built.settings.distance == "euclidean" and built.settings.train_shot == 2
    assert built.settings.dataset == "omniglot" and built.example_shape == (1, 28, 28)


def test_pretrain_and_classifier_take_a_user_model(store):
    from fsbench.methods import Classifier, Pretrain
    from fsbench.synthetic import synthetic_signals

    with pytest.raises(TypeError, match="embed"):
        Pretrain(nn.Linear(4, 2))
    model = Conv4((1, 32, 32), hidden=4, num_classes=store.num_classes)
    method = Pretrain(model, batch_size=8, epochs=1)
    method.iterations(store)
    assert torch.isfinite(torch.tensor(one_step(method, store)))
    ep = store.sample_episode(torch.Generator().manual_seed(0), 3, 2, 2, 1)
    with torch.no_grad():
        scores = method.task_scores(ep.support_x[0], ep.support_y[0], ep.query_x[0], 3)
    assert scores.shape == (6, 3)

    signals = synthetic_signals()
    classes = signals.num_classes
    linear = nn.Linear(signals.example_shape[0], classes)
    clf = Classifier(linear, batch_size=16)
    before = linear.weight.detach().clone()
    assert torch.isfinite(torch.tensor(one_step(clf, signals)))
    assert not torch.equal(before, linear.weight)
    assert 0.0 <= clf.evaluate(signals, torch.Generator(), 0).accuracy <= 1.0


def test_simple_cnaps_takes_lites_efficientnet_b0_with_your_weights(store, tmp_path):
    """LITE's backbone: torchvision's EfficientNet-B0 with weights from a file of your own (no
    pre-trained weights exist offline: here a state dict saved by the test stands in for them);
    Simple CNAPs puts FiLM after each of its 49 batch norms."""
    saved = torchvision.models.efficientnet_b0(weights=None)
    with torch.no_grad():
        saved.features[0][0].weight.mul_(0.5)  # weights that differ from a fresh init
    torch.save(saved.state_dict(), tmp_path / "efficientnet_b0.pt")

    net = torchvision.models.efficientnet_b0(weights=None)
    net.load_state_dict(torch.load(tmp_path / "efficientnet_b0.pt", weights_only=True))
    net.classifier = nn.Identity()  # the 1,280 pooled features are the embedding
    backbone = nn.Sequential(nn.Conv2d(1, 3, 1), net)  # 1-channel images
    method = SimpleCNAPs(backbone, example_shape=store.example_shape, **EPISODE)
    torch.testing.assert_close(net.features[0][0].weight, saved.features[0][0].weight)
    films = method.cnaps.films
    assert len(films) == sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == 49
    scores = method.task_scores(
        store.to_float(store.data[:6]), torch.arange(3).repeat_interleave(2),
        store.to_float(store.data[6:10]), 3,
    )  # fmt: skip
    assert scores.shape == (4, 3) and torch.isfinite(scores).all()
    assert torch.isfinite(torch.tensor(one_step(method, store)))
