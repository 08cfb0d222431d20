"""Property tests over many argument sets: shapes, dtypes, label balance, determinism, and agreement
with a slow one-sample-at-a-time generator built from mnist1d.transform."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mnist1d.data import get_dataset_args, get_templates, make_dataset
from mnist1d.transform import transform
from mnist1d.utils import ObjectView, set_seed

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def dataset_args(draw: st.DrawFn, max_samples: int = 300) -> ObjectView:
    """Arguments the reference accepts (reversed padding and negative scales included), small
    enough to generate in milliseconds."""
    args = get_dataset_args()
    low = draw(st.integers(0, 30))
    high = draw(st.integers(max(-2, low - 12), low + 40))  # low > high pads from high + 2 to low
    args.padding = [low, high]
    args.template_len = draw(st.integers(2 - high, 30))
    args.num_samples = draw(st.integers(10, max_samples))
    args.train_split = draw(st.floats(-1.2, 1.2))
    args.scale_coeff = draw(st.floats(-2, 2))
    args.max_translation = draw(st.integers(1, 120) | st.integers(2**32 - 2, 2**63))
    args.corr_noise_scale = draw(st.floats(-1, 1))
    args.iid_noise_scale = draw(st.floats(-1, 1))
    args.shear_scale = draw(st.floats(-3, 3))
    args.shuffle_seq = draw(st.booleans())
    args.final_seq_length = draw(st.integers(1, 90))
    args.seed = draw(st.integers(0, 2**32 - 1))
    return args


def per_sample_dataset(args: ObjectView) -> dict[str, np.ndarray]:
    """The documented algorithm, one sample at a time on the global generator (slow, obviously right)."""
    templates = get_templates()
    set_seed(args.seed)
    xs, ys = [], []
    per_class = args.num_samples // 10
    for label in range(10):
        for _ in range(per_class):
            x, t = transform(templates["x"][label], templates["t"], args)
            xs.append(x)
            ys.append(templates["y"][label])
    order = np.random.permutation(len(ys))
    xs, ys = np.stack(xs)[order], np.stack(ys)[order]
    if args.shuffle_seq:
        xs = xs[..., np.random.permutation(args.final_seq_length)]
    t = t / xs.std()
    xs = (xs - xs.mean()) / xs.std()
    split = int(len(ys) * args.train_split)
    return {"x": xs[:split], "x_test": xs[split:], "y": ys[:split], "y_test": ys[split:], "t": t}


@SETTINGS
@given(dataset_args())
def test_shapes_dtypes_and_balance(args: ObjectView) -> None:
    data = make_dataset(args)
    total = 10 * (args.num_samples // 10)
    split = len(range(total)[: int(total * args.train_split)])  # negative splits count from the end
    length = args.final_seq_length
    assert data["x"].shape == (split, length) and data["x_test"].shape == (total - split, length)
    assert data["y"].shape == (split,) and data["y_test"].shape == (total - split,)
    assert data["x"].dtype == np.float64 and data["y"].dtype == np.int64
    assert data["t"].shape == (length,)
    labels = np.concatenate([data["y"], data["y_test"]])
    np.testing.assert_array_equal(np.bincount(labels, minlength=10), np.full(10, total // 10))
    xs = np.concatenate([data["x"], data["x_test"]])
    if (
        abs(args.iid_noise_scale) > 0.01 and length > 1
    ):  # without noise the signals can be constant: std 0 and nan, as in the reference
        assert np.isfinite(xs).all()
        assert abs(xs.mean()) < 1e-9 and abs(xs.std() - 1) < 1e-9


@settings(max_examples=15, deadline=None)
@given(dataset_args(max_samples=120))
def test_deterministic(args: ObjectView) -> None:
    first, second = make_dataset(args), make_dataset(args)
    for key in ("x", "x_test", "y", "y_test", "t"):
        assert first[key].tobytes() == second[key].tobytes()


@settings(max_examples=20, deadline=None)
@given(dataset_args(max_samples=150))
def test_vectorised_equals_per_sample(args: ObjectView) -> None:
    fast = make_dataset(args)
    slow = per_sample_dataset(args)
    for key in ("y", "y_test"):
        np.testing.assert_array_equal(fast[key], slow[key])
    for key in ("x", "x_test", "t"):
        assert fast[key].shape == slow[key].shape
        # NaN in the same places (no noise at all: std 0), values within 1e-9 elsewhere
        np.testing.assert_allclose(fast[key], slow[key], rtol=0, atol=1e-9)


@settings(max_examples=10, deadline=None)
@given(dataset_args(max_samples=100), st.integers(0, 2**32 - 1))
def test_seed_changes_the_numbers(args: ObjectView, other: int) -> None:
    args.iid_noise_scale = max(abs(args.iid_noise_scale), 0.01)  # some randomness in every value
    first = make_dataset(args)
    args.seed = other if other != args.seed else (other + 1) % 2**32
    second = make_dataset(args)
    assert not np.array_equal(
        np.concatenate([first["x"], first["x_test"]]),
        np.concatenate([second["x"], second["x_test"]]),
    )
