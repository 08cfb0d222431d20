"""The reference-compatible Python API: args, templates, layout, validation, get_dataset, transform."""

from __future__ import annotations

import io
import os
import pickle
import urllib.request
from pathlib import Path

import mnist1d
import numpy as np
import pytest
from mnist1d import batch, generator
from mnist1d.arguments import ArgumentError
from mnist1d.batch import GaussianNoiseFilter, Resampler
from mnist1d.data import get_dataset, get_dataset_args, get_templates, make_dataset
from mnist1d.transform import interpolate, pad, translate
from mnist1d.utils import ObjectView
from scipy.interpolate import interp1d
from scipy.ndimage import gaussian_filter1d

# The reference's get_dataset_args(as_dict=True), key for key.
REFERENCE_ARGS = {
    "num_samples": 5000,
    "train_split": 0.8,
    "template_len": 12,
    "padding": [36, 60],
    "scale_coeff": 0.4,
    "max_translation": 48,
    "corr_noise_scale": 0.25,
    "iid_noise_scale": 0.02,
    "shear_scale": 0.75,
    "shuffle_seq": False,
    "final_seq_length": 40,
    "seed": 42,
    "url": "https://github.com/greydanus/mnist1d/raw/master/mnist1d_data.pkl",
}


def small_args(**overrides) -> ObjectView:
    """Default args with fewer samples (fast), updated with ``overrides``."""
    args = get_dataset_args()
    args.num_samples = 200
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


def test_dataset_args_are_the_reference_defaults() -> None:
    args = get_dataset_args()
    assert isinstance(args, ObjectView)
    assert vars(args) == REFERENCE_ARGS
    assert list(vars(args)) == list(REFERENCE_ARGS)
    as_dict = get_dataset_args(as_dict=True)
    assert as_dict == REFERENCE_ARGS and isinstance(as_dict, dict)
    as_dict["padding"].append(99)  # callers mutate their copy, never the defaults
    assert get_dataset_args().padding == [36, 60]


def test_templates_layout() -> None:
    t = get_templates()
    assert t["x"].shape == (10, 12) and t["x"].dtype == np.float64
    assert t["t"].shape == (12,)
    np.testing.assert_array_equal(t["y"], np.arange(10))
    np.testing.assert_array_equal(t["x"][:, 0], 0.0)  # every template starts at zero
    np.testing.assert_allclose(t["x"][:, -1], 0.0, atol=1e-15)  # and ends there
    np.testing.assert_allclose(t["x"].std(1), 1 / 6)  # whitened, then scaled by 1/6


def test_dataset_layout_and_split() -> None:
    data = make_dataset(small_args(num_samples=205, train_split=0.7))
    assert list(data) == ["x", "x_test", "y", "y_test", "t", "templates"]
    assert data["x"].shape == (140, 40) and data["x_test"].shape == (60, 40)
    assert data["y"].dtype == np.int64 and data["t"].shape == (40,)
    both = np.concatenate([data["x"], data["x_test"]])
    assert abs(both.mean()) < 1e-12 and abs(both.std() - 1) < 1e-12


def test_make_dataset_accepts_a_dict_and_custom_templates() -> None:
    args = small_args()
    from_view = make_dataset(args)
    from_dict = make_dataset(dict(vars(args)))
    np.testing.assert_array_equal(from_view["x"], from_dict["x"])
    templates = get_templates()
    three = {"x": templates["x"][:3], "t": templates["t"], "y": np.array([7, 8, 9])}
    data = make_dataset(small_args(num_samples=30), template=three)
    assert sorted(set(data["y"]) | set(data["y_test"])) == [7, 8, 9]
    assert data["templates"] is three


@pytest.mark.parametrize(
    ("overrides", "name"),
    [
        ({"num_samples": 0}, "num_samples"),
        ({"num_samples": -10}, "num_samples"),
        ({"num_samples": 9}, "num_samples"),
        ({"num_samples": 100.0}, "num_samples"),
        ({"train_split": float("nan")}, "train_split"),
        ({"train_split": float("inf")}, "train_split"),
        ({"train_split": "0.8"}, "train_split"),
        ({"template_len": -59}, "template_len"),
        ({"template_len": 12.0}, "template_len"),
        ({"padding": [3, -3]}, "padding"),
        ({"padding": [-1, 3]}, "padding"),
        ({"padding": [1]}, "padding"),
        ({"padding": [1.0, 3]}, "padding"),
        ({"max_translation": 0}, "max_translation"),
        ({"max_translation": 48.0}, "max_translation"),
        ({"max_translation": 2**63 + 1}, "max_translation"),
        ({"final_seq_length": -1}, "final_seq_length"),
        ({"scale_coeff": "big"}, "scale_coeff"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**32}, "seed"),
        ({"seed": 3.0}, "seed"),
        ({"shuffle_seq": np.array([True, False])}, "shuffle_seq"),
    ],
)
def test_bad_args_raise_value_error_naming_the_argument(overrides: dict, name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name} ") as info:
        make_dataset(small_args(**overrides))
    assert isinstance(info.value, ArgumentError) and info.value.name == name
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "overrides",
    [
        {"train_split": 1.0},
        {"train_split": 0.0},
        {"train_split": -0.2},
        {"train_split": 7},
        {"scale_coeff": -0.4, "iid_noise_scale": -0.1, "corr_noise_scale": -1, "shear_scale": -2},
        {"scale_coeff": float("nan")},
        {"template_len": 0},
        {"template_len": -50},
        {"padding": [10, 5]},
        {"padding": [3, -2]},
        {"final_seq_length": 1},
        {"final_seq_length": 0},
        {"max_translation": 2**40 + 3},
        {"max_translation": 2**63},
        {"max_translation": True, "seed": True},
        {"shuffle_seq": "yes"},
        {"shuffle_seq": None},
    ],
)
def test_values_the_reference_accepts_are_accepted(overrides: dict) -> None:
    """A drop-in takes every value the reference turns into a dataset (the oracle checks the numbers)."""
    data = make_dataset(small_args(**overrides))
    total = len(data["y"]) + len(data["y_test"])
    assert total == 200 and data["x"].shape[1] == data["t"].shape[0]


def test_reversed_padding_draws_like_the_reference() -> None:
    """With low > high the reference's int() truncation pads from high + 2 up to low."""
    from mnist1d.arguments import pad_range

    assert pad_range(10, 5) == (7, 10) and pad_range(5, 4) == (5, 5) and pad_range(3, -2) == (0, 3)
    np.random.seed(0)
    drawn = {len(pad(np.zeros(12), (10, 5))) - 12 for _ in range(200)}
    assert drawn == set(range(7, 11))


def test_chunking_and_table_fallback_do_not_change_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    args = small_args(num_samples=230, max_translation=5, padding=[2, 9])
    expected = make_dataset(args)
    monkeypatch.setattr(generator, "CHUNK_SIZE", 7)
    monkeypatch.setattr(batch, "TABLE_LIMIT", 0)  # build (label, padding) rows per chunk instead
    again = make_dataset(args)
    for key in ("x", "x_test", "y", "y_test", "t"):
        np.testing.assert_array_equal(again[key], expected[key])


def test_resampler_is_np_interp_bit_for_bit() -> None:
    rng = np.random.default_rng(0)
    for n, n_new in [(72, 40), (40, 72), (2, 9), (13, 13), (100, 3), (61, 31)]:
        rows = rng.normal(size=(5, n))
        rows[:, ::3] = 0.0
        expected = np.stack(
            [np.interp(np.linspace(0, 1, n_new), np.linspace(0, 1, n), r) for r in rows]
        )
        np.testing.assert_array_equal(Resampler(n, n_new)(np.ascontiguousarray(rows.T)).T, expected)


def test_noise_filter_is_scipy_gaussian_filter_bit_for_bit() -> None:
    rng = np.random.default_rng(1)
    for length in (72, 73, 9, 8, 7, 5, 2):
        noise = rng.normal(size=(6, length))
        expected = gaussian_filter1d(noise, 2, axis=-1, mode="reflect")
        filt = GaussianNoiseFilter(length)
        ext = filt.extended(len(noise))
        ext[8:-8] = noise.T
        np.testing.assert_array_equal(filt(ext).T, expected)


def test_get_dataset_without_path_generates_and_writes_nothing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mnist1d_data.pkl").write_bytes(b"not a pickle: must never be read")

    def no_network(*a, **k):
        raise AssertionError("get_dataset must not touch the network unless download=True")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    data = get_dataset(small_args(), verbose=False)
    assert data["x"].shape == (160, 40)
    assert sorted(os.listdir(tmp_path)) == ["mnist1d_data.pkl"]


def test_get_dataset_with_path_saves_then_loads(tmp_path: Path) -> None:
    path = tmp_path / "data.pkl"
    first = get_dataset(small_args(), path=path, verbose=False)
    assert path.is_file()
    with open(path, "rb") as fh:
        np.testing.assert_array_equal(pickle.load(fh)["x"], first["x"])
    loaded = get_dataset(small_args(seed=1), path=path, verbose=False)  # existing file wins
    np.testing.assert_array_equal(loaded["x"], first["x"])
    regenerated = get_dataset(small_args(seed=1), path=path, verbose=False, regenerate=True)
    assert not np.array_equal(regenerated["x"], first["x"])
    npz = tmp_path / "data.npz"
    get_dataset(small_args(), path=npz, verbose=False)
    np.testing.assert_array_equal(get_dataset(None, path=npz, verbose=False)["x"], first["x"])


def test_get_dataset_download_only_when_asked(tmp_path: Path, monkeypatch) -> None:
    served = make_dataset(small_args())
    payload = pickle.dumps(served, protocol=3)
    calls = []

    def fake_urlopen(url, timeout=None):
        calls.append(url)
        return io.BytesIO(payload)

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    path = tmp_path / "mnist1d_data.pkl"
    data = get_dataset(get_dataset_args(), path=path, download=True, verbose=False)
    assert calls == [REFERENCE_ARGS["url"]]
    np.testing.assert_array_equal(data["x"], served["x"])
    with pytest.raises(ValueError, match="download and regenerate"):
        get_dataset(get_dataset_args(), path=path, download=True, regenerate=True)


def test_per_sample_transform_functions() -> None:
    np.random.seed(0)
    x = np.arange(1.0, 6.0)
    padded = pad(x, (2, 2))
    np.testing.assert_array_equal(padded, [1, 2, 3, 4, 5, 0, 0])
    np.random.seed(0)
    k = np.random.choice(4)
    np.random.seed(0)
    np.testing.assert_array_equal(translate(x, 4), np.roll(x, k))
    grid = np.linspace(0, 1, 7)
    values = np.stack([grid, 2 * grid], axis=1)
    expected = interp1d(grid, values, axis=0)(np.linspace(0, 1, 4))
    np.testing.assert_allclose(interpolate(values, 4), expected, rtol=0, atol=1e-15)


def test_top_level_names_of_the_reference() -> None:
    for name in ("get_dataset", "get_dataset_args", "get_templates", "to_pickle", "from_pickle"):
        assert callable(getattr(mnist1d, name))
    for name in ("ObjectView", "set_seed", "plot_signals", "transform", "make_dataset"):
        assert hasattr(mnist1d, name)
