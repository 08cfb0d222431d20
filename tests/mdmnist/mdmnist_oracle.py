"""Test oracle: a literal, slow, per-image re-implementation of the reference generator.

It follows DESIGN.md step by step with the numpy legacy *global* RNG, Python lists and one
paste per digit, exactly like the reference script, so the fast package can be compared to it.
"""

from __future__ import annotations

import os

import numpy as np


def reference_split(num_digit, ratios, seed):
    """Steps 2: classes list, RandomState(seed).shuffle, int(ratio / sum * 10**n) counts."""
    rs = np.random.RandomState(seed)
    num_class = 10**num_digit
    classes = list(np.array(range(num_class)))
    rs.shuffle(classes)
    num_train, num_val, _ = [int(float(r) / np.sum(ratios) * num_class) for r in ratios]
    return [
        classes[:num_train],
        classes[num_train : num_train + num_val],
        classes[num_train + num_val :],
    ]


def _coordinates(high, size):
    """randint(high, size) when high > 0, else zeros without a draw."""
    if high > 0:
        return np.random.randint(high, size=size)
    return np.zeros(size).astype(int)


def reference_generate(
    images,
    labels,
    num_digit,
    image_size,
    num_image_per_class,
    ratios,
    seed,
    out_dir=None,
    split_index_lists=None,
):
    """Every image as {split: {class: array (K, H, W)}}; with OUT_DIR also PNGs via imageio.

    SPLIT_INDEX_LISTS optionally overrides the per-digit index lists per split (disjoint mode).
    """
    from imageio import imwrite

    h, w = 28, 28
    height, width = image_size
    split_classes = reference_split(num_digit, ratios, seed)
    indexes = [list(np.where(labels == c)[0]) for c in range(10)]
    np.random.seed(seed)
    result = {}
    for i, split_name in enumerate(["train", "val", "test"]):
        lists = indexes if split_index_lists is None else split_index_lists[split_name]
        result[split_name] = {}
        for current_class in split_classes[i]:
            class_str = str(current_class)
            class_str = "0" * (num_digit - len(class_str)) + class_str
            if out_dir is not None:
                os.makedirs(os.path.join(out_dir, split_name, class_str), exist_ok=True)
            stack = []
            for k in range(num_image_per_class):
                digits = [int(class_str[p]) for p in range(num_digit)]
                imgs = [np.squeeze(images[np.random.choice(lists[d])]) for d in digits]
                background = np.zeros(image_size).astype(np.uint8)
                ys = _coordinates(height - h, num_digit)
                xs = _coordinates(width // num_digit - w, size=num_digit)
                xs = [p * width // num_digit + xs[p] for p in range(num_digit)]
                for q in range(num_digit):
                    background[ys[q] : ys[q] + h, xs[q] : xs[q] + w] = imgs[q]
                if out_dir is not None:
                    imwrite(
                        os.path.join(out_dir, split_name, class_str, f"{k}_{class_str}.png"),
                        background,
                    )
                stack.append(background)
            result[split_name][class_str] = np.stack(stack)
    return result
