"""Segment maps → binary edge masks, the one place where edges are made.

Every mask source ends here: SAM masks and COCO instances are painted into a
segment map (:func:`paint_masks`), the weight-free segmenter gives one directly,
and :func:`segment_edges` turns a segment map into the binary mask ``e`` of the
SA-ICM loss.

Two edge methods:

* ``boundary`` (default): a pixel is an edge when its label differs from its
  right or lower neighbour; a 1-pixel line on every label change, exact and
  monotone (a coarser partition's edges are a subset of a finer one's).
* ``canny``: the paper's literal reading, Canny on the segment map
  (scikit-image, σ = 1, low thresholds): lines of 1–2 pixels (2 on a straight
  step), none on the image's border, and in dense maps some label changes
  dropped by the smoothing (16 % of ``boundary``'s pixels at α = 0.48 on the
  astronaut have no Canny pixel on them or up, down, left or right of them;
  11 % none among their 8 neighbours).

``width`` > 1 dilates the line with a ``width``×``width`` square.
"""

from __future__ import annotations

import numpy as np

EDGE_METHODS = ("boundary", "canny")


def paint_masks(masks: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Paint boolean masks into one label map (0 = unlabelled), larger masks first.

    Smaller masks are painted last, so they stay visible on top of the larger
    ones that contain them (parts on top of wholes), as in SAM's own demos.
    """
    labels = np.zeros(shape, np.int32)
    for k, i in enumerate(paint_order([int(m.sum()) for m in masks]), start=1):
        m = masks[i]
        if m.shape != tuple(shape):
            raise ValueError(f"mask {i} has shape {m.shape}, expected {tuple(shape)}")
        labels[m.astype(bool)] = k
    return labels


def paint_order(areas: list[int]) -> list[int]:
    """The order :func:`paint_masks` paints masks of these areas in: larger first, ties as listed."""
    return sorted(range(len(areas)), key=lambda i: -int(areas[i]))


def label_boundaries(labels: np.ndarray) -> np.ndarray:
    """1-pixel boundaries: True where a pixel's label differs from its right or lower neighbour."""
    e = np.zeros(labels.shape, bool)
    e[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    e[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return e


def dilate(mask: np.ndarray, width: int) -> np.ndarray:
    if width <= 1:
        return mask.astype(bool)
    import cv2

    kernel = np.ones((width, width), np.uint8)
    return cv2.dilate(mask.astype(np.uint8), kernel) > 0


def segment_edges(labels: np.ndarray, method: str = "boundary", width: int = 1) -> np.ndarray:
    """Binary edge mask of a segment map."""
    if method == "boundary":
        e = label_boundaries(labels)
    elif method == "canny":
        from skimage.feature import canny

        # Labels are arbitrary integers: compare rank-normalised values so any change is a step ≥ 1.
        _, inv = np.unique(labels, return_inverse=True)
        e = canny(inv.reshape(labels.shape).astype(np.float64), sigma=1.0,
                  low_threshold=0.05, high_threshold=0.1)
    else:
        raise ValueError(f"unknown edge method {method!r} (known: {', '.join(EDGE_METHODS)})")
    return dilate(e, width)


def overlay(rgb: np.ndarray, mask: np.ndarray, color=(255, 32, 32)) -> np.ndarray:
    """Preview: the image dimmed to 50 %, mask pixels drawn in ``color``."""
    out = (rgb.astype(np.float32) * 0.5).astype(np.uint8)
    out[mask.astype(bool)] = color
    return out
