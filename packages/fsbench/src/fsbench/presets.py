"""Presets: the published protocols' settings per (method, dataset), and the tables they fill.

Every preset follows its paper and the official code behind the published number; where fsbench
differs (or the code is unknown), the preset says so in ``notes``, and result.json carries them.
A CLI flag overrides one value; result.json's ``deviations`` lists every value that differs from
the preset.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fsbench.errors import FsbenchError
from fsbench.methods.maml import INNER_LOSSES
from fsbench.methods.protonet import DISTANCES
from fsbench.models.conv4 import AFFINES as NORM_AFFINES
from fsbench.models.conv4 import INITS, NORMS

EPISODIC_METHODS = ("maml", "fomaml", "protonet", "mtl")
PRETRAIN_METHODS = ("pretrain",)
MAML_METHODS = ("maml", "fomaml")
CLASSIFIER_METHODS = ("logreg", "mlp", "cnn", "gru")
MDMNIST_DATASETS = ("doublemnist", "triplemnist")
MNIST1D_DATASETS = ("mnist1d", "mnist1d-shuffled")
NATURAL_DATASETS = ("miniimagenet", "fc100")  # the user's files (MTL's benchmarks)
MODES_DATASETS = ("fashionmnist",)  # classes with several modes; splits share their classes
IMAGE_DATASETS = (*MDMNIST_DATASETS, "omniglot", *NATURAL_DATASETS, *MODES_DATASETS)

# Where the published numbers and protocols come from, named so that a user can look them up.
SOURCES: dict[str, str] = {
    "multidigit": "MultiDigitMNIST benchmark (shaohua0116/MultiDigitMNIST README, Sun 2019)",
    "finn": "Finn et al. 2017, MAML (cbfinn/maml)",
    "snell": "Snell et al. 2017, Prototypical Networks (jakesnell/prototypical-networks)",
    "faulkner": "HaydenFaulkner/pytorch.repmet README (Prototypical Networks on Omniglot)",
    "greydanus": "Greydanus 2020, MNIST-1D (greydanus/mnist1d)",
    "sun": "Sun et al. 2019, Meta-Transfer Learning (yaoyao-liu/meta-transfer-learning)",
    "lite": "Bronskill et al. 2021, LITE (cambridge-mlg/LITE)",
}

# Values of the named protocol settings beside those the models and methods define.
SELECTIONS = ("last", "best-val")
BATCH_ORDERS = ("sequential", "random")
TRAIN_SPLITS = ("train", "trainval")
MTL_MODES = ("ss", "ft")

# Every setting a run can carry, with the value used when no preset sets it.
BASE: dict = {
    "way": 5,
    "shot": 1,
    "query": 15,  # queries per class at evaluation
    "train_way": None,  # None: same as way
    "train_shot": None,  # None: same as shot
    "train_query": None,  # None: same as query
    "iterations": 1000,
    "meta_batch": 1,
    "episodes": 600,  # test episodes (ignored by the classifiers: full test split)
    "seed": 0,
    "lr": 1e-3,
    "lr_step": 0,  # halve the learning rate every lr_step iterations (0: constant)
    "lr_gamma": 0.5,
    "inner_lr": 0.4,
    "inner_steps": 1,
    "test_inner_steps": 1,
    "inner_loss": "mean",  # MAML: mean cross-entropy, or cbfinn's sum / shot (= way x mean)
    "hidden": 64,
    "pool": "max",
    "readout": "flatten",
    "norm": "batch",  # batch: batch statistics at train and test; running: running stats + eval()
    "norm_affine": "scale+shift",
    "init": "torch",
    "distance": "sqeuclidean",  # ProtoNets
    "batch_size": 100,
    "batch_order": "random",  # classifiers: random minibatches or the reference's fixed slices
    "train_split": "train",
    "eval_every": 0,
    "eval_episodes": 50,
    "val_way": None,  # classes per validation episode; None: the test way
    "val_shot": None,  # support examples per class in validation; None: the training shot
    "select": "last",  # which model is tested: the last one, or the best on validation
    "checkpoint_every": 1000,
    "maml_exec": "auto",
    "precision": "fp32",  # fp32 (TF32 on CUDA) unless asked: bf16 / fp16 autocast, CUDA only
    "data_options": {},
    "threads": None,  # torch CPU threads; None: torch's default
    # pre-training and Meta-Transfer Learning
    "backbone": "conv4",
    "widths": None,  # ResNet-12 block widths; None: 64-128-256-512
    "dropout": 0.0,
    "epochs": 0,  # pre-training length (iterations = epochs x batches per epoch)
    "momentum": 0.0,  # SGD (pre-training)
    "weight_decay": 0.0,
    "pretrained": None,  # MTL: the folder of an fsbench pretrain run
    "mtl_mode": "ss",  # ss: scaling/shifting; ft: meta-train every backbone weight
    "hard_tasks": False,
    "ss_lr": 1e-4,  # MTL: Adam lr of SS (or of the backbone with mtl_mode ft)
    "lite_h": 0,  # LITE: support images back-propagated per training task (0: all, no LITE)
}

# Settings that change how a run executes, not what it computes: never a deviation, never a
# reason to refuse a resume or to split a table row.
EXECUTION_KEYS = ("threads", "checkpoint_every", "maml_exec", "preset_source")
# Data options that only change how data is shown or found, not what it is.
EXECUTION_DATA_OPTIONS = ("progress", "path", "source", "omniglot_dir", "download")


@dataclass(frozen=True)
class Preset:
    """Defaults for one (method, dataset) pair, where they come from, and how they differ.

    ``variants`` are applied when a setting has a given value (e.g. the 20-way settings of MAML
    on Omniglot), unless a flag set the value; ``tied`` makes a setting follow another unless a
    flag set it (e.g. MAML on Omniglot: queries per class = shot, as cbfinn/maml).
    """

    method: str
    dataset: str
    settings: dict
    source: str
    notes: tuple[str, ...] = ()
    variants: dict = field(default_factory=dict)
    tied: dict = field(default_factory=dict)


def _maml_mdmnist(method: str, dataset: str) -> Preset:
    return Preset(
        method,
        dataset,
        {
            "way": 5,
            "shot": 1,
            "query": 15,
            "meta_batch": 12,
            "iterations": 100_000,
            "lr": 1e-3,
            "inner_lr": 0.4,
            "inner_steps": 1,
            "test_inner_steps": 1,
            "inner_loss": "mean",
            "hidden": 64,
            "pool": "stride",
            "readout": "mean",
            "norm": "batch",
            "norm_affine": "none",
            "init": "xavier",
            "episodes": 600,
        },
        f"{SOURCES['multidigit']}: slow lr 1e-3, fast lr 0.4, 1 gradient step, meta-batch 12, "
        "4 conv layers, 100k iterations",
        notes=(
            "The code behind the published numbers is not public. Hyper-parameters are the "
            "README's; the rest follows shaohua0116/MMAML-Classification, whose TensorBoard tags "
            "the README's training plot shows: stride-2 convolutions, the spatial mean of the last "
            "feature map into a linear head, batch norm without affine terms on batch statistics "
            "(also at test), Xavier-uniform weights with zero biases, the mean cross-entropy in the "
            "inner loop (inner_loss mean: with cbfinn's sum/shot the fast lr 0.4 would act as 2.0 at "
            "5-way and 8.0 at 20-way), 15 queries per class, test-time steps = training steps.",
            "64 filters in every layer (the README says 4 conv layers; MMAML's default grows "
            "32-64-128-256).",
            "No element-wise clamp of the inner gradient (MMAML clamps at +-20; inactive at these "
            "losses).",
            "The README does not say how many test episodes or which checkpoint it reports; "
            "600 episodes, last checkpoint here.",
        ),
    )


def _maml_omniglot(method: str) -> Preset:
    return Preset(
        method,
        "omniglot",
        {
            "way": 5,
            "shot": 1,
            "meta_batch": 32,
            "iterations": 60_000,
            "lr": 1e-3,
            "inner_lr": 0.4,
            "inner_steps": 1,
            "test_inner_steps": 10,
            "inner_loss": "cbfinn",
            "hidden": 64,
            "pool": "stride",
            "readout": "mean",
            "norm": "batch",
            "norm_affine": "shift",
            "init": "cbfinn",
            "episodes": 600,
            "data_options": {"omniglot_split": "cbfinn"},
        },
        f"{SOURCES['finn']}: Omniglot 5-way meta-batch 32, fast lr 0.4, 1 step; 20-way meta-batch "
        "16, fast lr 0.1, 5 steps; 60,000 iterations; 10 steps at test; K queries per class",
        notes=(
            "Split as cbfinn/maml: the 1,623 characters shuffled with Python random.seed(1); "
            "1,100 meta-train, 100 meta-val, 423 meta-test. cbfinn lists folders in os.listdir "
            "order (file-system dependent); here they are sorted first, so the characters differ "
            "from any one cbfinn checkout but the rule is the same.",
            "Each class of a task is rotated by a random multiple of 90 degrees (training and "
            "test), as cbfinn/maml; rotations are not extra classes.",
            "Queries per class = shot in training and at test (cbfinn draws 2K images per class).",
            "Inner loss as cbfinn: cross-entropy summed over the support set and divided by K "
            "(inner_loss cbfinn). The outer loss is the mean over queries and tasks; cbfinn's is "
            "way x that, which Adam's scale invariance makes equivalent up to its epsilon.",
            "cbfinn prints the accuracy after every test step 0..10; the one after the last "
            "(test_inner_steps) is reported here.",
            "cbfinn gives no 5-shot Omniglot command: the 1-shot settings are used with shot 5.",
            "Initialisation as cbfinn: Xavier-uniform conv weights, zero biases, the head's "
            "weights N(0, 1); batch norm learns a shift only (tf batch_norm, scale=False).",
        ),
        variants={("way", 20): {"meta_batch": 16, "inner_lr": 0.1, "inner_steps": 5}},
        tied={"query": "shot", "train_query": "shot"},
    )


def _protonet(dataset: str) -> Preset:
    omniglot = dataset == "omniglot"
    settings = {
        "way": 5,
        "shot": 1,
        "query": 15,
        "train_way": 60 if omniglot else 20,
        "train_query": 5 if omniglot else 15,
        "iterations": 10_000,
        "lr": 1e-3,
        "lr_step": 2000,
        "lr_gamma": 0.5,
        "hidden": 64,
        "norm": "running",
        "distance": "sqeuclidean",
        "eval_every": 100,
        "eval_episodes": 100,
        "val_way": 5,
        "select": "best-val",
        "episodes": 1000 if omniglot else 600,
    }
    notes = [
        "Batch norm with running statistics, model.eval() at test: a query's prediction does not "
        "depend on the other queries (Snell et al.'s nn.BatchNorm2d).",
        "Validation every 100 episodes (one of Snell's epochs) on 100 episodes of 5-way, "
        "training-shot, 15-query tasks, as Snell et al.; the model with the best validation "
        "accuracy is tested. Snell et al. stop early "
        "on the validation loss (patience 200 epochs) and then retrain on train+val for the best "
        "epoch + 200 epochs (--train-split trainval runs that last stage at a fixed length); "
        "HaydenFaulkner/pytorch.repmet trains 100 epochs of 100 episodes and tests the best "
        "model, reaching 98.81 / 99.56 / 94.81 / 98.51.",
        "The learning rate halves after every 2,000 episodes (Snell's scheduler steps at the "
        "start of an epoch, so its first halving comes 100 episodes earlier).",
    ]
    if omniglot:
        settings["data_options"] = {"omniglot_split": "vinyals"}
        notes.append(
            "Split: Vinyals et al.'s lists as shipped in jakesnell/prototypical-networks "
            "(4,112 / 688 / 1,692 classes; each rotation a class) when the full Omniglot is "
            "present; training shot = test shot, as the paper's models."
        )
    elif dataset in MODES_DATASETS:
        settings["train_way"] = 10
        notes.append(
            "No published number: every split holds all 10 classes, so training uses 10-way "
            "15-query episodes and test episodes draw new images of the same classes."
        )
    else:
        notes.append(
            "No published number: a miniImageNet-style protocol (20-way 15-query training) on "
            "Multi-digit MNIST."
        )
    return Preset(
        "protonet",
        dataset,
        settings,
        f"{SOURCES['snell']} + {SOURCES['faulkner']}: Conv-4, Adam 1e-3 halved every 2,000 "
        "episodes, "
        + (
            "60-way 5-query training, 10,000 episodes"
            if omniglot
            else f"{settings['train_way']}-way 15-query training"
        ),
        notes=tuple(notes),
    )


def _classifier(method: str, dataset: str) -> Preset:
    return Preset(
        method,
        dataset,
        {
            "lr": 1e-2,
            "batch_size": 100,
            "batch_order": "sequential",
            "iterations": 6001,
            "way": 10,
            "checkpoint_every": 1000,
            # tiny models: one thread; two threads were up to 5x slower on a busy 2-core box
            # (OpenMP spin-waits under oversubscription), never faster (see README)
            "threads": 1,
        },
        f"{SOURCES['greydanus']}: notebooks/train.py with total_steps 6000, Adam 1e-2, batch 100, "
        "one run per model (seed 42)",
        notes=(
            "As the reference loop: for step in range(total_steps + 1), i.e. 6,001 updates, on "
            "the fixed slices x[(step * 100) % 4000 :][:100] of the (already shuffled) training "
            "set, for every model including the GRU; the test accuracy after the last step.",
            "The published table rounds single runs (seed 42); the reference's own saved runs "
            "land within about 4 points of it (e.g. MLP 64.6, CNN 92.5 in 2020), so seeds are "
            "averaged here and their spread is shown.",
            "The shuffled dataset is mnist1d's make_dataset(shuffle_seq=True), as the 2020 "
            "notebook (one permutation of the 40 positions, train and test alike).",
        ),
    )


RESNET12 = {
    "backbone": "resnet12",
    "widths": [64, 128, 256, 512],
    "norm": "batch",
    "norm_affine": "none",
}
MTL_VERSIONS_NOTE = (
    "The official code exists in two versions that differ in nearly every setting; the "
    "author points to the TensorFlow one for the paper. Backbone (ResNet-12 64-128-256-512, "
    "three 3x3 conv + batch norm + LeakyReLU(0.1) per block, 1x1 shortcut, max-pool, "
    "global average pool; batch norm on batch statistics without affine terms) and SS (every "
    "3x3 conv, a scale per kernel slice [out, in, 1, 1], a shift per output channel; shortcuts "
    "frozen) follow the TensorFlow code; the pre-training optimiser and the meta-learning loop "
    "follow the PyTorch code (the TF code's inner loop is second order)."
)


def _pretrain(dataset: str) -> Preset:
    return Preset(
        "pretrain",
        dataset,
        {
            **RESNET12,
            "way": 5,
            "shot": 1,
            "query": 15,
            "batch_size": 128,
            "lr": 0.1,
            "momentum": 0.9,
            "weight_decay": 5e-4,
            "lr_step": 30,
            "lr_gamma": 0.2,
            "epochs": 110,
            "eval_every": 1,
            "eval_episodes": 600,
            "val_way": 5,
            "val_shot": 1,
            "select": "best-val",
            "inner_lr": 0.01,
            "test_inner_steps": 100,
            "episodes": 600,
        },
        f"{SOURCES['sun']}: pre-training, PyTorch code (trainer/pre.py, run_pre.py): SGD lr 0.1, "
        "Nesterov momentum 0.9, weight decay 5e-4, batch 128, lr x0.2 every 30 epochs, 110 epochs, "
        "best validation (5-way, 600 episodes) kept",
        notes=(
            MTL_VERSIONS_NOTE,
            "Training classes only (the dataset's train split); every epoch a new permutation, "
            "the last batch of an epoch may be smaller; validation every epoch (eval_every counts "
            "epochs here).",
            "Validation and test fit a new linear head to each task's support features: 100 SGD "
            "steps at 0.01, as the PyTorch code's pre-training validation, but from zeros (the "
            "PyTorch code starts from one fixed random initialisation).",
            "A single linear head over the training classes (the PyTorch code puts a "
            "640-1000-64 MLP on its 25-layer ResNet; the TF code a linear layer).",
            "No data augmentation: the PyTorch code's random resized crops and horizontal flips "
            "are for natural images; flipping digits changes them.",
        ),
    )


def _mtl(dataset: str) -> Preset:
    return Preset(
        "mtl",
        dataset,
        {
            **RESNET12,
            "way": 5,
            "shot": 1,
            "query": 15,
            "meta_batch": 1,
            "iterations": 10_000,
            "lr": 1e-3,
            "ss_lr": 1e-4,
            "lr_step": 1000,
            "lr_gamma": 0.5,
            "inner_lr": 0.01,
            "inner_steps": 100,
            "test_inner_steps": 100,
            "mtl_mode": "ss",
            "eval_every": 100,
            "eval_episodes": 600,
            "select": "best-val",
            "episodes": 600,
        },
        f"{SOURCES['sun']}: meta-training, PyTorch code (models/mtl.py, trainer/meta.py, "
        "run_meta.py): FC-only first-order inner loop of 100 steps at 0.01, Adam 1e-4 (SS) and "
        "1e-3 (FC), lr x0.5 every 10 epochs, 100 epochs x 100 tasks, meta-batch 1, 15 queries, "
        "best of 600 validation episodes per epoch, 600 test episodes",
        notes=(
            MTL_VERSIONS_NOTE,
            "The backbone, its SS and the classifier's initialisation come from the pre-trained "
            "run (--pretrained); its frozen weights never change (tested).",
            "Hard-task meta-batch: no official code exists (the README lists it as not "
            "included); built from the paper's description, see --hard-tasks in the README.",
            "Batch norm on batch statistics: support and query are embedded separately, as both "
            "official versions do.",
        ),
    )


def preset_for(method: str, dataset: str) -> Preset:
    """The preset of a canonical (method, dataset) pair; FsbenchError when they do not go together."""
    if method in CLASSIFIER_METHODS:
        if dataset not in MNIST1D_DATASETS:
            raise FsbenchError(
                f"method {method!r} is an MNIST-1D classifier; use it with one of {', '.join(MNIST1D_DATASETS)}"
            )
        return _classifier(method, dataset)
    known = EPISODIC_METHODS + PRETRAIN_METHODS + CLASSIFIER_METHODS
    if method not in known:
        raise FsbenchError(f"unknown method {method!r}; choose from {', '.join(known)}")
    if dataset in MNIST1D_DATASETS:
        raise FsbenchError(
            f"method {method!r} needs an image dataset ({', '.join(IMAGE_DATASETS)}); "
            f"MNIST-1D goes with {', '.join(CLASSIFIER_METHODS)}"
        )
    if dataset in NATURAL_DATASETS and method not in ("pretrain", "mtl"):
        raise FsbenchError(
            f"no preset for {method} on {dataset} yet: its presets are pretrain and mtl "
            "(Meta-Transfer Learning's benchmarks)"
        )
    if dataset in MODES_DATASETS and method != "protonet":
        raise FsbenchError(f"no preset for {method} on {dataset} yet: its preset is protonet")
    if method == "protonet":
        return _protonet(dataset)
    if method == "pretrain":
        return _pretrain(dataset)
    if method == "mtl":
        return _mtl(dataset)
    if dataset == "omniglot":
        return _maml_omniglot(method)
    return _maml_mdmnist(method, dataset)


CHOICES: dict[str, tuple[str, ...]] = {
    "norm": NORMS,
    "norm_affine": NORM_AFFINES,
    "distance": DISTANCES,
    "inner_loss": INNER_LOSSES,
    "init": INITS,
    "select": SELECTIONS,
    "batch_order": BATCH_ORDERS,
    "train_split": TRAIN_SPLITS,
    "backbone": ("conv4", "resnet12"),
    "mtl_mode": MTL_MODES,
}


def _check_choices(settings: dict) -> None:
    for key, allowed in CHOICES.items():
        if settings.get(key) not in allowed:
            flag = "--" + key.replace("_", "-")
            raise FsbenchError(
                f"{flag} must be one of {', '.join(allowed)}, got {settings.get(key)!r}"
            )


def resolve_settings(method: str, dataset: str, overrides: dict | None = None) -> dict:
    """BASE, the preset, its variants and ties, then the non-None overrides, checked."""
    preset = preset_for(method, dataset)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    settings = {**BASE, **preset.settings, "method": method, "dataset": dataset}
    settings["data_options"] = dict(settings.get("data_options") or {})
    for key, value in given.items():
        if key == "data_options":
            settings["data_options"].update(value)
        else:
            settings[key] = value
    for (key, value), extra in preset.variants.items():
        if settings.get(key) == value:
            settings.update({k: v for k, v in extra.items() if k not in given})
    for key, follows in preset.tied.items():
        if key not in given:
            settings[key] = settings[follows]
    for key in ("way", "shot", "query"):
        if settings.get(f"train_{key}") is None:
            settings[f"train_{key}"] = settings[key]
    _check_choices(settings)
    if method in MAML_METHODS:
        if settings["train_way"] != settings["way"]:
            raise FsbenchError(
                "--train-way must equal --way for MAML (the head has one output per class)"
            )
        if settings["norm"] != "batch":
            raise FsbenchError(
                "--norm must be batch for MAML (its inner loop normalises with the statistics of "
                "the current batch, as the MAML reference code); running is for protonet"
            )
        if settings.get("val_way") not in (None, settings["way"]):
            raise FsbenchError("MAML validates with its own --way (one output per class)")
        if settings["precision"] == "fp16":
            raise FsbenchError(
                "--precision fp16 is refused for MAML: its inner-loop gradients would need their "
                "own loss scaling; use bf16 or fp32"
            )
    lite = int(settings.get("lite_h") or 0)
    if lite and method != "protonet":
        raise FsbenchError(
            f"--lite-h applies to protonet (it embeds a whole support set at once), not {method}"
        )
    if lite < 0:
        raise FsbenchError(f"--lite-h must be >= 1, got {lite}")
    if lite and lite > settings["train_way"] * settings["train_shot"]:
        raise FsbenchError(
            f"--lite-h {lite} is larger than the training support set "
            f"({settings['train_way']} x {settings['train_shot']} = "
            f"{settings['train_way'] * settings['train_shot']} images)"
        )
    if lite and settings["norm"] == "batch":
        raise FsbenchError(
            "--lite-h needs each image normalised on its own: pass --norm group or --norm running "
            "(batch statistics make an embedding depend on the rest of its batch)"
        )
    if method == "mtl" and not settings.get("pretrained"):
        raise FsbenchError(
            "mtl needs --pretrained DIR: the folder of a finished fsbench pretrain run of this "
            "dataset (fsbench pretrain DATASET --out DIR)"
        )
    if settings["select"] == "best-val" and int(settings.get("eval_every") or 0) <= 0:
        raise FsbenchError("--select best-val needs validation: set --eval-every N (N >= 1)")
    if settings["train_split"] == "trainval" and settings["select"] == "best-val":
        raise FsbenchError(
            "--train-split trainval trains on the validation classes, so the model cannot be "
            "selected on them: pass --select last (and --eval-every 0)"
        )
    settings["preset_source"] = preset.source
    return settings


def preset_defaults(method: str, dataset: str, settings: dict) -> dict:
    """What the preset alone gives for the way/shot of ``settings`` (its variants and ties too)."""
    return resolve_settings(
        method,
        dataset,
        {k: settings.get(k) for k in ("way", "shot", "pretrained")},
    )


def semantic(settings: dict) -> dict:
    """The settings that decide what a run computes: without execution-only keys and options.

    A setting missing from an older run's record (added to fsbench later) takes its BASE value:
    every setting was added with a default that keeps the earlier behaviour.
    """
    out = {k: v for k, v in {**BASE, **settings}.items() if k not in EXECUTION_KEYS}
    out["data_options"] = {
        k: v
        for k, v in (settings.get("data_options") or {}).items()
        if k not in EXECUTION_DATA_OPTIONS
    }
    return out


def differences(a: dict, b: dict) -> dict[str, tuple]:
    """Keys whose semantic values differ between two settings dicts: {key: (a value, b value)}."""
    sa, sb = semantic(a), semantic(b)
    keys = sorted(set(sa) | set(sb))
    out: dict[str, tuple] = {}
    for k in keys:
        if k == "data_options":
            da, db = sa.get(k) or {}, sb.get(k) or {}
            for dk in sorted(set(da) | set(db)):
                if da.get(dk) != db.get(dk):
                    out[f"data_options.{dk}"] = (da.get(dk), db.get(dk))
        elif _norm(sa.get(k)) != _norm(sb.get(k)):
            out[k] = (sa.get(k), sb.get(k))
    return out


def _norm(value):
    """Numbers compare by value (1e-3 == 0.001; a JSON round trip keeps ints and floats apart)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    return float(value)


# Settings a method never reads: they can differ without changing what it computes.
UNUSED: dict[str, tuple[str, ...]] = {
    "pretrain": ("train_way", "train_shot", "train_query"),  # plain classification
}


def deviations(settings: dict) -> list[dict]:
    """Every semantic setting that differs from the preset, as {setting, value, preset} records."""
    base = preset_defaults(settings["method"], settings["dataset"], settings)
    diff = differences(settings, base)
    for key in ("seed", *UNUSED.get(settings["method"], ())):
        diff.pop(key, None)
    return [{"setting": k, "value": v[0], "preset": v[1]} for k, v in diff.items()]


# ---- published numbers and the source tables ------------------------------------------------

PUBLISHED: dict[tuple, float] = {
    # MultiDigitMNIST README: MAML on Multi-digit MNIST (the 5-shot cells are "in progress")
    ("maml", "doublemnist", 5, 1): 97.046,
    ("maml", "doublemnist", 20, 1): 85.461,
    ("maml", "triplemnist", 5, 1): 98.813,
    ("maml", "triplemnist", 20, 1): 96.251,
    # Finn et al. 2017 (the Omniglot row of the MultiDigitMNIST README's table too)
    ("maml", "omniglot", 5, 1): 98.7,
    ("maml", "omniglot", 5, 5): 99.9,
    ("maml", "omniglot", 20, 1): 95.8,
    ("maml", "omniglot", 20, 5): 98.9,
    # Sun et al. 2019: Meta-Transfer Learning (5-way 1-shot / 5-shot)
    ("mtl", "miniimagenet", 5, 1): 60.2,
    ("mtl", "miniimagenet", 5, 5): 74.3,
    ("mtl", "fc100", 5, 1): 43.6,
    ("mtl", "fc100", 5, 5): 55.4,
    # Snell et al. 2017: ProtoNets on Omniglot
    ("protonet", "omniglot", 5, 1): 98.8,
    ("protonet", "omniglot", 5, 5): 99.7,
    ("protonet", "omniglot", 20, 1): 96.0,
    ("protonet", "omniglot", 20, 5): 98.9,
    # Greydanus 2020: the MNIST-1D table
    ("logreg", "mnist1d", None, None): 32.0,
    ("mlp", "mnist1d", None, None): 68.0,
    ("cnn", "mnist1d", None, None): 94.0,
    ("gru", "mnist1d", None, None): 91.0,
    ("logreg", "mnist1d-shuffled", None, None): 32.0,
    ("mlp", "mnist1d-shuffled", None, None): 68.0,
    ("cnn", "mnist1d-shuffled", None, None): 56.0,
    ("gru", "mnist1d-shuffled", None, None): 57.0,
}
PUBLISHED_SOURCE: dict[str, str] = {
    "miniimagenet": SOURCES["sun"],
    "fc100": SOURCES["sun"],
    "doublemnist": SOURCES["multidigit"],
    "triplemnist": SOURCES["multidigit"],
    "mnist1d": SOURCES["greydanus"],
    "mnist1d-shuffled": SOURCES["greydanus"],
}


def published(method: str, dataset: str, way: int | None, shot: int | None) -> float | None:
    """The published accuracy (percent) for a setting, if a source table has one."""
    if method in CLASSIFIER_METHODS:
        return PUBLISHED.get((method, dataset, None, None))
    return PUBLISHED.get((method, dataset, way, shot))


def published_source(method: str, dataset: str) -> str | None:
    """Who published the number that ``published`` returns for this method and dataset."""
    if dataset == "omniglot":
        return SOURCES["snell"] if method == "protonet" else SOURCES["finn"]
    return PUBLISHED_SOURCE.get(dataset)


# A cell's "pretrained" override naming this is the table's pre-training of the same dataset.
PRETRAINED_IN_TABLE = "<the table's pretrain run of this dataset>"


@dataclass(frozen=True)
class Cell:
    """One cell of a source table: a run setting and where it sits in the table.

    ``tag`` tells apart cells of one method that differ in other settings (its folder name).
    """

    method: str
    dataset: str
    row: str
    column: str
    overrides: dict = field(default_factory=dict)
    tag: str = ""

    @property
    def name(self) -> str:
        extra = "-".join(
            f"{k}{v}" for k, v in sorted(self.overrides.items()) if k in ("way", "shot")
        )
        return "-".join(x for x in (self.method + self.tag, self.dataset, extra) if x)


@dataclass(frozen=True)
class TableSpec:
    """A source table: its cells, seeds, and the short-CPU (--quick) version of its settings."""

    name: str
    source: str
    cells: tuple[Cell, ...]
    seeds: tuple[int, ...]
    quick_seeds: tuple[int, ...]
    quick_overrides: dict
    quick_note: str
    rows_are: str = "dataset"  # what the rows of the source layout name
    quick_by_method: dict = field(default_factory=dict)  # --quick values of one method only


def _ws(way: int, shot: int) -> dict:
    return {"way": way, "shot": shot}


WAY_SHOTS = ((5, 1), (5, 5), (20, 1), (20, 5))
MTL_SS = {"mtl_mode": "ss", "pretrained": PRETRAINED_IN_TABLE}


def _no_val(method: str, dataset: str, way: int) -> dict:
    """DoubleMNIST's 16 validation classes cannot make 20-way tasks: MTL tests its last model."""
    if method == "mtl" and dataset == "doublemnist" and way > 16:
        return {"eval_every": 0, "select": "last"}
    return {}


MTL_FT = {"mtl_mode": "ft", "pretrained": PRETRAINED_IN_TABLE}
# LITE's table: 224x224 DoubleMNIST (digits too small to downscale), 110 images per class so a
# 100-shot task has 10 queries; group norm for both rows so that only LITE differs.
LITE_DATA = {
    "norm": "group",
    "query": 10,
    "train_query": 10,
    "eval_every": 0,
    "select": "last",
    "data_options": {"image_size": 224, "num_image_per_class": 110},
}

TABLES: dict[str, TableSpec] = {
    "multidigit-maml": TableSpec(
        "multidigit-maml",
        f"{SOURCES['multidigit']}: MAML on Double/Triple MNIST and Omniglot "
        "(the 5-shot Multi-digit cells were never published: 'in progress')",
        tuple(
            Cell("maml", ds, label, f"{w}-way {s}-shot", _ws(w, s))
            for ds, label in (
                ("doublemnist", "Double MNIST"),
                ("triplemnist", "Triple MNIST"),
                ("omniglot", "Omniglot"),
            )
            for w, s in WAY_SHOTS
        ),
        seeds=(0,),
        quick_seeds=(0,),
        quick_overrides={
            "iterations": 200,
            "meta_batch": 4,
            "hidden": 16,
            "train_query": 2,
            "episodes": 100,
            "data_options": {"num_image_per_class": 50},
        },
        quick_note="quick: 200 meta-iterations, meta-batch 4, 16 filters, 2 training queries per "
        "class, 100 test episodes, 50 images per Multi-digit class (published: 100k / 60k "
        "iterations, meta-batch 12 / 32 / 16, 64 filters)",
    ),
    "protonet-omniglot": TableSpec(
        "protonet-omniglot",
        f"{SOURCES['snell']}: Prototypical Networks on Omniglot",
        tuple(
            Cell("protonet", "omniglot", "Omniglot", f"{w}-way {s}-shot", _ws(w, s))
            for w, s in WAY_SHOTS
        ),
        seeds=(0,),
        quick_seeds=(0,),
        quick_overrides={
            "iterations": 200,
            "train_way": 20,
            "hidden": 32,
            "episodes": 100,
            "eval_every": 50,
            "eval_episodes": 20,
        },
        quick_note="quick: 200 training episodes of 20-way, 32 filters, validation every 50 "
        "episodes, 100 test episodes (published: 10,000 episodes of 60-way, 64 filters, 1,000 "
        "test episodes)",
    ),
    "mtl-ablation": TableSpec(
        "mtl-ablation",
        f"{SOURCES['sun']}: the ablation of Meta-Transfer Learning (pre-training, fine-tuning "
        "everything, scaling/shifting, hard tasks; MAML from scratch), on Multi-digit MNIST",
        tuple(
            Cell(
                method,
                ds,
                row,
                f"{label} {w}w{s}s",
                {**extra, **_ws(w, s), **_no_val(method, ds, w)},
                tag,
            )
            for method, tag, row, extra in (
                ("pretrain", "", "(a) pre-trained + new linear head", {}),
                ("mtl", "-ft", "(b) fine-tune everything (FT)", MTL_FT),
                ("mtl", "-ss", "(c) scaling/shifting (SS)", MTL_SS),
                ("mtl", "-ssht", "(d) SS + hard tasks (HT)", {**MTL_SS, "hard_tasks": True}),
                ("maml", "", "(e) MAML from scratch (Conv-4)", {}),
            )
            for ds, label in (("doublemnist", "Double"), ("triplemnist", "Triple"))
            for w, s in WAY_SHOTS
        ),
        seeds=(0,),
        quick_seeds=(0,),
        quick_overrides={
            "query": 10,
            "train_query": 5,
            "episodes": 100,
            "eval_episodes": 20,
            "data_options": {"num_image_per_class": 20, "resize": 32},
        },
        quick_note="quick: images resized to 32x32, 20 per class; ResNet-12 of widths "
        "8-16-32-64 pre-trained 3 epochs; 100 MTL iterations (the preset's 100 inner steps); "
        "50 MAML iterations (meta-batch 2, 16 filters); 5 training and 10 test queries per "
        "class, 100 test episodes",
        rows_are="method",
        quick_by_method={
            "pretrain": {"widths": [8, 16, 32, 64], "epochs": 3, "batch_size": 64},
            "mtl": {
                "widths": [8, 16, 32, 64],
                "iterations": 100,
                "eval_every": 50,
                "lr_step": 0,
            },
            "maml": {"iterations": 50, "meta_batch": 2, "hidden": 16},
        },
    ),
    "lite": TableSpec(
        "lite",
        f"{SOURCES['lite']}: LITE against full back-propagation, ProtoNets on 224x224 "
        "DoubleMNIST with up to 100 support images per class (no published numbers: the "
        "paper's tables are on ORBIT and VTAB+MD with an EfficientNet)",
        tuple(
            Cell(
                "protonet",
                "doublemnist",
                row,
                f"5-way {shot}-shot",
                {**LITE_DATA, **_ws(5, shot), "train_way": 5, "lite_h": h},
                tag,
            )
            for row, tag, h in (
                ("full back-propagation", "-full", 0),
                ("LITE, H = 8", "-lite8", 8),
            )
            for shot in (10, 100)
        ),
        seeds=(0,),
        quick_seeds=(0,),
        quick_overrides={"iterations": 10, "hidden": 8, "episodes": 10},
        quick_note="quick: a smoke run of the 224x224 paths, not a result: 10 training "
        "episodes, 8 filters, 10 test episodes (full: the DoubleMNIST ProtoNets preset's "
        "10,000 episodes, 64 filters, 600 test episodes; a GPU's work)",
        rows_are="method",
    ),
    "mnist1d": TableSpec(
        "mnist1d",
        f"{SOURCES['greydanus']}: the table 'Comparing MNIST and MNIST-1D'",
        tuple(
            Cell(m, ds, label, col)
            for ds, label in (("mnist1d", "MNIST-1D"), ("mnist1d-shuffled", "MNIST-1D (shuffle)"))
            for m, col in (
                ("logreg", "Logistic regression"),
                ("mlp", "MLP"),
                ("cnn", "CNN"),
                ("gru", "GRU"),
            )
        ),
        seeds=(42, 43, 44),
        quick_seeds=(42,),
        quick_overrides={},
        quick_note="quick: seed 42 only (the reference notebook's seed), full training settings "
        "(published: a single run; full reproduce: seeds 42, 43, 44)",
    ),
}
