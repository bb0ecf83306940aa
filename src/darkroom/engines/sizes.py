"""Output sizes per aspect ratio.

The reference table is Google Imagen 3's (a 1024-pixel model); 21:9 and 9:21, which Imagen 3
lacks, use the 2.4:1 bucket of the same area. Models of another native size keep the same
ratios scaled to their area, each side rounded to a multiple of 64.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

REFERENCE_SIDE = 1024
REFERENCE_SIZES: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024),
    "4:3": (1280, 896),
    "3:4": (896, 1280),
    "16:9": (1408, 768),
    "9:16": (768, 1408),
    "21:9": (1536, 640),
    "9:21": (640, 1536),
}
RATIOS: tuple[str, ...] = ("1:1", "16:9", "9:16", "4:3", "3:4", "21:9", "9:21")
DEFAULT_RATIO = "1:1"


def size_for(ratio: str, native_side: int = REFERENCE_SIDE) -> tuple[int, int]:
    width, height = REFERENCE_SIZES[ratio]
    if native_side == REFERENCE_SIDE:
        return width, height
    scale = native_side / REFERENCE_SIDE
    return _multiple_of_64(width * scale), _multiple_of_64(height * scale)


def _multiple_of_64(side: float) -> int:
    return max(64, round(side / 64) * 64)


def ratio_value(ratio: str) -> float:
    width, height = ratio.split(":")
    return int(width) / int(height)


def nearest_ratio(width: int, height: int, ratios: Iterable[str]) -> str:
    """The ratio among `ratios` closest to width:height (compared on a log scale, so 2:1 and
    1:2 are equally far from 1:1)."""
    wanted = math.log(width / height)
    return min(ratios, key=lambda r: abs(math.log(ratio_value(r)) - wanted))
