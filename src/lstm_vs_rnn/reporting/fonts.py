"""Fonts for the figures: any column name a user has must render, or be reported once.

Matplotlib (3.6 and later) falls back glyph by glyph through the list of families in
`font.family`. The list below starts with matplotlib's own DejaVu Sans (Latin, Greek,
Cyrillic, Arabic, Hebrew) and goes on to the Noto families that cover the other scripts, each
used when installed. A character no installed family has is drawn as a box: instead of
matplotlib's warning per glyph and per draw, the first figure that has such text logs one line
naming the scripts and how to install a font that covers them.
"""

import logging
import unicodedata
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import matplotlib
from matplotlib import font_manager
from matplotlib.figure import Figure
from matplotlib.ft2font import FT2Font
from matplotlib.text import Text

# Tried in this order for every glyph; families that are not installed are left out.
FALLBACK_FAMILIES = (
    "DejaVu Sans",
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "Noto Sans CJK KR",
    "Noto Sans CJK TC",
    "WenQuanYi Zen Hei",
    "Noto Sans",
    "Noto Sans Devanagari",
    "Noto Sans Arabic",
    "Noto Sans Hebrew",
    "Noto Sans Thai",
    "Noto Sans Bengali",
    "Noto Sans Tamil",
)

# How to get fonts for every script: Debian/Ubuntu packages, then other systems.
INSTALL_HINT = (
    "install fonts that cover them (Debian/Ubuntu: apt-get install fonts-noto-cjk for Chinese, "
    "Japanese and Korean, fonts-noto-core for the other scripts; macOS and Windows: the Noto "
    "Sans fonts from fonts.google.com/noto), then delete matplotlib's font cache "
    "(~/.cache/matplotlib/fontlist-*.json) so it finds them"
)

_reported: set[str] = set()


@cache
def installed_families() -> tuple[str, ...]:
    """The families of FALLBACK_FAMILIES that matplotlib finds on this machine, in order."""
    known = {entry.name for entry in font_manager.fontManager.ttflist}
    return tuple(family for family in FALLBACK_FAMILIES if family in known)


def use_fallback_fonts() -> None:
    """Make every text of later figures fall back through the installed families."""
    # Named one by one: a generic family ("sans-serif") stands for its first installed entry
    # only, and glyph fallback runs over the families listed here.
    matplotlib.rcParams["font.family"] = list(installed_families())


@cache
def _covered(family: str) -> frozenset[int]:
    path = font_manager.findfont(
        font_manager.FontProperties(family=family), fallback_to_default=False
    )
    return frozenset(FT2Font(path).get_charmap())


def missing_characters(text: str) -> list[str]:
    """The characters of `text` that no installed fallback family has a glyph for."""
    families = installed_families()
    return [
        char
        for char in dict.fromkeys(text)
        if not char.isspace()
        and unicodedata.category(char)[0] != "C"
        and not any(ord(char) in _covered(family) for family in families)
    ]


def script_of(char: str) -> str:
    """The script's name as Unicode spells it: 'CJK' for 年, 'DEVANAGARI' for क."""
    return unicodedata.name(char, "UNKNOWN").split()[0]


@contextmanager
def glyphs_reported_once(figure: Figure) -> Iterator[None]:
    """Draw `figure` inside the block without matplotlib's per-glyph warnings; log one line,
    the first time in this process for each script, when some text has no glyph in any
    installed font."""
    missing = missing_characters("".join(text.get_text() for text in figure.findobj(Text)))
    scripts = {script_of(char): [] for char in missing}
    for char in missing:
        scripts[script_of(char)].append(char)
    new = {name: chars for name, chars in scripts.items() if name not in _reported}
    if new:
        _reported.update(new)
        listed = ", ".join(f"{name} ({''.join(chars[:8])})" for name, chars in new.items())
        logging.getLogger(__name__).warning(
            "figures: no installed font has the glyphs of %s text, drawn as boxes; "
            "fonts tried: %s; %s",
            listed,
            ", ".join(installed_families()),
            INSTALL_HINT,
        )
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"Glyph \d+ .* missing from", category=UserWarning
        )
        yield
