"""The content policy: terms an operator refuses, checked before a task is queued.

The prompt failing the check is code 1002; any other text of the request (negative prompt,
reference image links) carrying a refused term is code 1001, as the hosted service words it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable


class ContentPolicy:
    def __init__(self, blocked_terms: Iterable[str] = ()) -> None:
        terms = sorted({t.strip().lower() for t in blocked_terms if t.strip()})
        self._pattern = (
            re.compile(r"\b(?:" + "|".join(map(re.escape, terms)) + r")\b", re.IGNORECASE)
            if terms
            else None
        )

    def flags(self, text: str) -> bool:
        return bool(self._pattern and self._pattern.search(text))
