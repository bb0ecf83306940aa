"""The content policy: terms an operator refuses, checked before a task is queued.

The prompt failing the check is code 1002; any other text of the request (negative prompt,
reference image links) carrying a refused term is code 1001, as the hosted service words it.

Terms and text are compared after the same normalisation, so that what reads as a refused term
is one: Unicode format characters (category Cf: zero-width spaces and joiners, soft hyphens,
bidirectional marks) are removed, then NFKC folds compatibility forms (fullwidth and
mathematical letters, ligatures, superscripts) and casefold ignores case, and a small table maps
the Cyrillic and Greek letters that look like Latin ones (а, е, о, р, с, ο, ρ, ...) to those.
Not covered: look-alikes outside that table (Armenian, Cherokee, symbols, digits for letters as
in "k1ll"), combining marks stacked on letters, letters spaced or punctuated apart ("k i l l",
"k.i.l.l"), and terms split across two fields; a blocklist is a filter, not a classifier.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

# Lowercase (after casefold) Cyrillic and Greek letters that look like a Latin letter, upper or
# lower case: Cyrillic "Н" casefolds to "н" and reads as "H", so "н" maps to "h".
_HOMOGLYPHS = str.maketrans(
    {
        # Cyrillic
        "а": "a",
        "в": "b",
        "с": "c",
        "ԁ": "d",
        "е": "e",
        "ё": "e",
        "һ": "h",
        "н": "h",
        "і": "i",
        "ї": "i",
        "ј": "j",
        "к": "k",
        "ӏ": "l",
        "м": "m",
        "о": "o",
        "р": "p",
        "ԛ": "q",
        "ѕ": "s",
        "т": "t",
        "у": "y",
        "ԝ": "w",
        "х": "x",
        # Greek
        "α": "a",
        "β": "b",
        "ε": "e",
        "η": "h",
        "ι": "i",
        "κ": "k",
        "μ": "m",
        "ν": "v",
        "ο": "o",
        "ρ": "p",
        "τ": "t",
        "υ": "u",
        "χ": "x",
        "ζ": "z",
        # Latin look-alikes that casefold leaves as they are
        "ı": "i",
        "ȷ": "j",
    }
)


def normalize(text: str) -> str:
    """The form a text is checked in (see the module's docstring)."""
    text = "".join(c for c in text if unicodedata.category(c) != "Cf")
    text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return text.translate(_HOMOGLYPHS)


class ContentPolicy:
    def __init__(self, blocked_terms: Iterable[str] = ()) -> None:
        terms = sorted({normalize(t).strip() for t in blocked_terms if normalize(t).strip()})
        self._pattern = (
            re.compile(r"\b(?:" + "|".join(map(re.escape, terms)) + r")\b") if terms else None
        )

    def flags(self, text: str) -> bool:
        return bool(self._pattern and self._pattern.search(normalize(text)))
