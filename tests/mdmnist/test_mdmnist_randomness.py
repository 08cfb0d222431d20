"""The bulk draw replay equals the reference's per-image numpy legacy calls, draw for draw."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mdmnist.randomness import LegacyDrawStream, draw_class
from mdmnist.splits import class_digits, digit_index_lists, split_classes


def test_choice_of_a_list_is_one_randint_draw():
    """np.random.choice(list) consumes exactly what randint(0, len(list)) consumes."""
    items = list(np.arange(5923) * 7)
    a = np.random.RandomState(3)
    b = np.random.RandomState(3)
    for _ in range(200):
        assert a.choice(items) == items[b.randint(0, len(items))]
    assert a.randint(2**31) == b.randint(2**31)  # both streams are still aligned


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    highs=st.lists(st.integers(1, 70000), min_size=1, max_size=8),
    rounds=st.integers(0, 40),
)
def test_draw_rounds_matches_sequential_randint(seed, highs, rounds):
    """Any pattern of bounds (including 1, which draws nothing) replays exactly."""
    stream = LegacyDrawStream(seed)
    got = stream.draw_rounds(highs, rounds)
    rs = np.random.RandomState(seed)
    want = np.array([[rs.randint(h) for h in highs] for _ in range(rounds)]).reshape(
        rounds, len(highs)
    )
    np.testing.assert_array_equal(got, want)
    # the stream position is exact too: the next draw agrees
    np.testing.assert_array_equal(
        stream.draw_rounds([1000], 3), [[rs.randint(1000)] for _ in range(3)]
    )


@pytest.mark.parametrize(
    ("num_digit", "height", "width", "seed"),
    [
        (2, 64, 64, 123),
        (3, 84, 84, 7),
        (1, 29, 30, 0),
        (2, 28, 57, 5),
        (4, 40, 130, 11),
        (3, 90, 100, 2),
    ],
)
def test_draw_class_matches_reference_loop(pool, num_digit, height, width, seed):
    """Sources, rows and columns equal the reference's choice/randint loop for several geometries."""
    lists = digit_index_lists(pool, "train", False)
    as_lists = [list(x) for x in lists]
    names = split_classes(num_digit, (64, 16, 20), seed)["train"][:6]
    stream = LegacyDrawStream(seed)
    np.random.seed(seed)
    for name in names:
        digits = class_digits(name)
        src, ys, cols = draw_class(stream, lists, digits, 5, height, width)
        for k in range(5):
            want_src = [np.random.choice(as_lists[d]) for d in digits]
            hy, hx = height - 28, width // num_digit - 28
            want_y = np.random.randint(hy, size=num_digit) if hy > 0 else np.zeros(num_digit, int)
            want_x = np.random.randint(hx, size=num_digit) if hx > 0 else np.zeros(num_digit, int)
            assert list(src[k]) == want_src
            assert list(ys[k]) == list(want_y)
            assert list(cols[k]) == [p * width // num_digit + want_x[p] for p in range(num_digit)]


def test_stream_grows_its_buffer_when_rejections_are_unlucky():
    """A bound just above a power of two rejects ~half the outputs; the replay still agrees."""
    stream = LegacyDrawStream(42)
    got = stream.draw_rounds([2**20 + 1, 3, 2**16 + 1], 3000)
    rs = np.random.RandomState(42)
    want = [[rs.randint(2**20 + 1), rs.randint(3), rs.randint(2**16 + 1)] for _ in range(3000)]
    np.testing.assert_array_equal(got, want)
