"""Which Unicode blocks each supported language is written in: one table for the corpus builder
(a "translation" with none of these characters is an untranslated English fall-back) and for the
pair reader (which column of a user's file holds the foreign text, and is it swapped)."""

from __future__ import annotations

import unicodedata

# Main block + extension block of each script.
SCRIPT_RANGES: dict[str, list[tuple[int, int]]] = {
    "km": [(0x1780, 0x17FF), (0x19E0, 0x19FF)],  # Khmer, Khmer Symbols
    "lo": [(0x0E80, 0x0EFF)],  # Lao
    "my": [(0x1000, 0x109F), (0xAA60, 0xAA7F), (0xA9E0, 0xA9FF)],  # Myanmar + Ext-A/B
    "si": [(0x0D80, 0x0DFF), (0x111E0, 0x111FF)],  # Sinhala + Archaic Numbers
    "bo": [(0x0F00, 0x0FFF)],  # Tibetan
    "am": [(0x1200, 0x137F), (0x1380, 0x139F), (0x2D80, 0x2DDF), (0xAB00, 0xAB2F)],  # Ethiopic
    "dz": [(0x0F00, 0x0FFF)],  # Dzongkha, Tibetan script
    "hi": [(0x0900, 0x097F), (0xA8E0, 0xA8FF)],  # Devanagari + Extended
    "ka": [(0x10A0, 0x10FF), (0x1C90, 0x1CBF), (0x2D00, 0x2D2F)],  # Georgian, Mtavruli, Nuskhuri
    "ta": [(0x0B80, 0x0BFF), (0x11FC0, 0x11FFF)],  # Tamil + Supplement
    "th": [(0x0E00, 0x0E7F)],  # Thai
}

LANGUAGE_NAMES = {"km": "Khmer", "lo": "Lao", "my": "Burmese", "si": "Sinhala", "bo": "Tibetan",
                  "am": "Amharic", "dz": "Dzongkha", "hi": "Hindi", "ka": "Georgian", "ta": "Tamil", "th": "Thai"}


def language_name(code: str) -> str:
    """'Khmer' for 'km'; a code without a name stays the code."""
    return LANGUAGE_NAMES.get(code, code)


def in_script(text: str, lang: str) -> bool:
    """Whether `text` has at least one character of `lang`'s script."""
    ranges = SCRIPT_RANGES[lang]
    return any(lo <= ord(ch) <= hi for ch in text for lo, hi in ranges)


def letter_counts(texts) -> tuple[int, int]:
    """(Latin letters, other letters) over `texts`; marks, digits and punctuation not counted."""
    latin = other = 0
    for text in texts:
        for ch in text:
            if ch.isalpha():
                if ch.isascii() or unicodedata.name(ch, "").startswith("LATIN"):
                    latin += 1
                else:
                    other += 1
    return latin, other


def guess_language(texts) -> str | None:
    """The known language whose script holds most of the letters of `texts`, if any."""
    texts = list(texts)
    counts = {lang: sum(ch.isalpha() and any(lo <= ord(ch) <= hi for lo, hi in ranges)
                        for text in texts for ch in text)
              for lang, ranges in SCRIPT_RANGES.items()}
    best = max(counts, key=counts.get)
    return best if counts[best] else None
