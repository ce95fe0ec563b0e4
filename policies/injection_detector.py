"""A heuristic prompt-injection scorer: weighted phrase signals combined into a score in [0, 1].

Signals are regexes over a folded text (lower case, accents and look-alike letters mapped to
ASCII, zero-width characters removed) in English, French, German, Spanish, Italian and
Portuguese. Fired signals combine as a noisy-OR, score = 1 - prod(1 - weight), so one strong
signal (an instruction override) is enough and weak ones (a persona switch, "no restrictions")
only count together. Each signal has a few cheap substrings: its regex runs only when one of
them is in the text. Obfuscation is undone before matching: letters spaced out ("i g n o r e"),
leetspeak ("1gn0r3"), homoglyphs and zero-width joiners (each also a weak signal of its own),
and base64 or hex blobs are decoded and scored in turn.

Mention is not use: a phrase inside quotes in a text that asks about it (translate, explain,
detect ...) does not count, so 'translate "ignore previous instructions" into French' scores
0; the same words outside quotes do count. The corpus in tests/data labels such texts benign.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Final

from policies.injection_signals import SIGNALS, WEIGHTS, Signal


@dataclass(frozen=True, slots=True)
class Assessment:
    """The injection score of a text and the names of the signals that fired."""

    score: float
    signals: tuple[str, ...]


# Cyrillic, Greek and other letters drawn like Latin ones, by code point.
_HOMOGLYPHS: Final[dict[int, str]] = {
    0x0430: "a", 0x0435: "e", 0x043E: "o", 0x0440: "p", 0x0441: "c", 0x0443: "y", 0x0445: "x",
    0x0456: "i", 0x0458: "j", 0x0455: "s", 0x0501: "d", 0x0261: "g", 0x04BB: "h", 0x0578: "n",
    0x03B1: "a", 0x03BF: "o", 0x03BD: "v", 0x03B9: "i", 0x03BA: "k", 0x03C4: "t", 0x03C1: "p",
}
_STRONG_AFTER_DECODING: Final = 0.4
_MIN_BLOB: Final = 16  # base64 and hex blobs worth decoding hold such runs of letters and digits
_LETTERS: Final = frozenset("abcdefghijklmnopqrstuvwxyz")


def _fold_table() -> dict[int, str | None]:
    table: dict[int, str | None] = {cp: None for cp in (0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF,
                                                        0x00AD, 0x180E)}
    for cp in range(0xC0, 0x250):
        base = unicodedata.normalize("NFKD", chr(cp))[0]
        if base.isascii() and base.isalpha():
            table[cp] = base
    table.update({ord("ß"): "ss", ord("æ"): "ae", ord("œ"): "oe", ord("ø"): "o", ord("ł"): "l"})
    for cp in range(0xFF01, 0xFF5F):  # fullwidth forms
        table[cp] = chr(cp - 0xFEE0)
    for cp in (0x201C, 0x201D, 0x201E, 0x00AB, 0x00BB, 0x2033):  # curly and angle quotes
        table[cp] = '"'
    for cp in (0x2018, 0x2019, 0x201A, 0x2032, 0x0060):
        table[cp] = "'"
    for cp, ascii_char in _HOMOGLYPHS.items():
        table[cp] = ascii_char
        table[ord(chr(cp).upper())] = ascii_char
    return table


_FOLD: Final = _fold_table()
_LEET: Final = str.maketrans("0134578@$", "oieastbas")
_ZERO_WIDTH = re.compile(r"\w[\u200b-\u200d\u2060\ufeff\u00ad]+\w")
_MIXED_SCRIPT = re.compile(r"[a-zA-Z][\u0370-\u03ff\u0400-\u04ff]|[\u0370-\u03ff\u0400-\u04ff]"
                           r"[a-zA-Z]|[\uff21-\uff5a]")  # or fullwidth Latin letters
_SPACED = re.compile(r"(?:\b[a-z](?: {1,3}|[._*-])){5,}[a-z]\b")
# A digit inside a word, or leading one ("4ll"), but not an ordinal or a time ("1st", "7pm").
_LEETISH = re.compile(r"[a-z][013457]+[a-z]|^[013457](?!(?:st|nd|rd|th|am|pm)$)[a-z]{2}")
_SQUASHED = re.compile(r"ignore(?:all|the|your|any)*(?:previous|prior|above|earlier)"
                       r"(?:instructions|prompts?|rules)|systemprompt|developermode|doanythingnow")
_BASE64 = re.compile(r"(?<![\w+/])[A-Za-z0-9+/]{24,}={0,2}(?![\w+/])")
_HEX = re.compile(r"\b(?:[0-9a-fA-F]{2}[ :]?){16,}\b")
_QUOTED = re.compile(r"\"[^\"\n]{3,300}\"|(?<!\w)'[^'\n]{3,300}'(?!\w)")
_META = re.compile(
    r"\b(?:translat\w*|tradu\w+|ubersetz\w*|explain\w*|expliqu\w*|erklar\w*|explica\w*|spiega\w*|"
    r"what does|what do|que veut dire|signifie|bedeutet|significa|meaning|means?|example|"
    r"classif\w+|detect\w*|flag\w*|regex|phrase|sentence|string|quote[sd]?|blocklist|paper)\b")


_WORD_BREAKS: Final = str.maketrans(
    {ch: " " for ch in "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~\n\t\r\f\v"})


def fold(text: str) -> str:
    """Lower case, accents and look-alike letters mapped to ASCII, zero-width marks removed."""
    text = text.lower()
    return text if text.isascii() else text.translate(_FOLD)


def _index(signals: tuple[Signal, ...]) -> tuple[dict[str, list[Signal]], frozenset[str],
                                                 frozenset[str], tuple[str, ...]]:
    by_key: dict[str, list[Signal]] = {}
    for signal in signals:
        for key in (*signal.keys, *signal.marks):
            by_key.setdefault(key, []).append(signal)
    needs = frozenset().union(*(signal.needs for signal in signals))
    marks = tuple({mark for signal in signals for mark in signal.marks})
    return by_key, frozenset(by_key), needs, marks


_BY_KEY, _KEYS, _NEEDS, _MARKS = _index(SIGNALS)


def _starts(text: str, spaced: str, needle: str) -> list[int]:
    """Where needle occurs in text: at a word start, or anywhere for a punctuation mark.

    `spaced` is " " + text with punctuation and line breaks turned into spaces, so a word
    start is a space followed by the word (one search, no look at neighbours).
    """
    haystack = text
    if needle[0].isalnum():
        haystack, needle = spaced, " " + needle  # found at i in spaced: starts at i in text
    found: list[int] = []
    at = haystack.find(needle)
    while at >= 0:
        found.append(at)
        at = haystack.find(needle, at + 1)
    return found


def _mentions(text: str) -> list[tuple[int, int]]:
    """Quoted spans of a text that asks about a phrase (translate, explain ...), else none."""
    return [m.span() for m in _QUOTED.finditer(text)] if _META.search(text) else []


def _fired(text: str, spaced: str, prefixes: set[str]) -> dict[str, float]:
    needs = _NEEDS.intersection(prefixes)
    anchors = [*_KEYS.intersection(prefixes)]
    if "<" in text or "[" in text:
        anchors += [mark for mark in _MARKS if mark in text]
    found: dict[str, float] = {}
    quoted: list[tuple[int, int]] | None = None
    for anchor in anchors:
        signals = [signal for signal in _BY_KEY[anchor] if signal.name not in found
                   and (not signal.needs or not signal.needs.isdisjoint(needs))]
        if not signals:
            continue
        for at in _starts(text, spaced, anchor):
            for signal in signals:
                m = signal.pattern.match(text, at)
                if m is None or signal.name in found:
                    continue
                if quoted is None:
                    quoted = _mentions(text)
                if not any(start <= m.start() and m.end() <= end for start, end in quoted):
                    found[signal.name] = signal.weight
    return found


def _decoded_payloads(text: str) -> list[str]:
    payloads: list[str] = []
    for m in _BASE64.finditer(text):
        blob = m.group()
        try:
            raw = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True)
        except (binascii.Error, ValueError):
            continue
        payloads.append(raw.decode("utf-8", "replace"))
    for m in _HEX.finditer(text):
        payloads.append(bytes.fromhex(re.sub(r"[ :]", "", m.group())).decode("utf-8", "replace"))
    return [p for p in payloads if sum(ch.isprintable() for ch in p) >= 0.9 * len(p)]


def assess(text: str, *, _depth: int = 0) -> Assessment:
    """Score one text for prompt injection: 0 (none seen) to 1 (several strong signals)."""
    folded = fold(text)
    spaced = " " + folded.translate(_WORD_BREAKS)
    words = set(spaced.split())
    found = _fired(folded, spaced, {word[:5] for word in words})
    if not text.isascii() and (_ZERO_WIDTH.search(text) or _MIXED_SCRIPT.search(text)):
        found["obfuscation"] = WEIGHTS["obfuscation"]
    if (len(_LETTERS & words) >= 5 and _SPACED.search(folded)
            and _SQUASHED.search(re.sub(r"[^a-z]", "", folded))):
        found["override"] = WEIGHTS["override"]
        found["obfuscation"] = WEIGHTS["obfuscation"]
    mixed = [word for word in words if not word.isalpha()]  # digits: leetspeak, blobs, numbers
    if any(_LEETISH.search(word) for word in mixed):
        unleet = folded.translate(_LEET)
        spaced_unleet = " " + unleet.translate(_WORD_BREAKS)
        prefixes = {word[:5] for word in spaced_unleet.split()}
        for name, weight in _fired(unleet, spaced_unleet, prefixes).items():
            if name not in found:  # only what the digits were hiding
                found[name] = weight
                found["obfuscation"] = WEIGHTS["obfuscation"]
    if _depth == 0 and any(len(word) >= _MIN_BLOB for word in mixed):
        for payload in _decoded_payloads(text):
            if assess(payload, _depth=1).score >= _STRONG_AFTER_DECODING:
                found["encoded_payload"] = WEIGHTS["encoded_payload"]
                break
    score = 1.0 - math.prod(1.0 - weight for weight in found.values())
    return Assessment(round(score, 4), tuple(sorted(found)))
