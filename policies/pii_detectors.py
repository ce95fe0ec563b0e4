"""Pure PII detectors: emails, phones, payment cards, IBANs, IPs, US SSNs and French NIRs.

Each detector proposes candidates with a precompiled regex and keeps only those that pass a
structural check (Luhn, IBAN mod-97, NIR key, SSN ranges, `ipaddress`). Regexes run only in
short windows: around each '@' for emails, each hex-flanked ':' for IPv6, and around clusters
of digits with enough digits for the kind (7 for a phone, 13 for a card ...), so prose costs
one scan for digits. Overlapping candidates resolve by the order of `ALL_KINDS`, strongest
check first.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Final, Literal

PiiKind = Literal["email", "iban", "card", "nir", "ssn", "ipv6", "ipv4", "phone"]
# Priority on overlap: a checksum-validated value wins over a looser phone match.
ALL_KINDS: Final[tuple[PiiKind, ...]] = (
    "email", "iban", "card", "nir", "ssn", "ipv6", "ipv4", "phone")


@dataclass(frozen=True, slots=True)
class Match:
    """One PII value found in a text: its kind and its [start, end) span."""

    kind: PiiKind
    start: int
    end: int


Span = tuple[int, int]


def _scan(regex: re.Pattern[str], text: str, spans: list[Span]) -> Iterator[re.Match[str]]:
    """Matches of regex within each span (look-arounds still see the whole text)."""
    for lo, hi in spans:
        yield from regex.finditer(text, lo, hi)


# --- email -----------------------------------------------------------------------------------
_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9_%+-](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_%+-])?"
    r"@((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z]{2,24}))(?![\w-]|\.\w)")
# "logo@2x.png" is a retina asset name, not an address.
_FILE_SUFFIXES: Final = frozenset({"png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "bmp",
                                   "tif", "tiff", "avif", "pdf"})


def _emails(text: str, spans: list[Span]) -> Iterator[Span]:
    for m in _scan(_EMAIL, text, spans):
        if m.group(2).lower() not in _FILE_SUFFIXES:
            yield m.span()


# --- IBAN ------------------------------------------------------------------------------------
# Lengths from the SWIFT IBAN registry (territories using their parent's format included).
IBAN_LENGTHS: Final[dict[str, int]] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22,
    "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24,
    "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
    "AX": 18, "GG": 22, "IM": 22, "JE": 22, "BL": 27, "GF": 27, "GP": 27, "MF": 27, "MQ": 27,
    "NC": 27, "PF": 27, "PM": 27, "RE": 27, "TF": 27, "WF": 27, "YT": 27,
}
_IBAN_HEAD = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]{2})(\d{2})(?=[ -]?[A-Za-z0-9])")


def iban_valid(iban: str) -> bool:
    """ISO 13616 check: known country, registry length, and mod-97 of the rearranged value."""
    iban = iban.replace(" ", "").replace("-", "").upper()
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban.isalnum() or not iban.isascii():
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def _ibans(text: str, spans: list[Span]) -> Iterator[Span]:
    for m in _scan(_IBAN_HEAD, text, spans):
        country = m.group(1).upper()
        length = IBAN_LENGTHS.get(country)
        if length is None:
            continue
        end, chars = _take_alnum(text, m.end(), length - 4)
        if chars is not None and iban_valid(country + m.group(2) + chars):
            yield m.start(), end


def _take_alnum(text: str, i: int, need: int) -> tuple[int, str | None]:
    """Collect `need` ASCII alphanumerics from i, allowing single space/dash separators."""
    out: list[str] = []
    n = len(text)
    while len(out) < need and i < n:
        ch = text[i]
        if ch.isascii() and ch.isalnum():
            out.append(ch)
            i += 1
        elif ch in " -" and i + 1 < n and text[i + 1].isascii() and text[i + 1].isalnum():
            i += 1
        else:
            break
    if len(out) != need or (i < n and text[i].isascii() and text[i].isalnum()):
        return i, None
    return i, "".join(out)


# --- payment card ----------------------------------------------------------------------------
_CARD = re.compile(r"(?<![\w.-])(?<!\d[ .-])\d(?:[ -]?\d){12,18}(?![\w]|[.-]\d|[ -]\d{3})")
_CARD_GROUPINGS: Final = frozenset({(4, 6, 5), (4, 6, 4)})


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check used by payment card numbers."""
    total = 0
    for index, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if index % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def known_iin(digits: str) -> bool:
    """Whether the number starts with a major network's IIN range at a length it issues."""
    n, p2, p4 = len(digits), int(digits[:2]), int(digits[:4])
    return (
        (digits[0] == "4" and n in (13, 16, 19))                      # Visa
        or ((51 <= p2 <= 55 or 2221 <= p4 <= 2720) and n == 16)       # Mastercard
        or (p2 in (34, 37) and n == 15)                               # American Express
        or ((digits.startswith("6011") or 644 <= int(digits[:3]) <= 649 or p2 == 65)
            and 16 <= n <= 19)                                        # Discover
        or (3528 <= p4 <= 3589 and 16 <= n <= 19)                     # JCB
        or ((p2 in (36, 38, 39) or 300 <= int(digits[:3]) <= 305) and 14 <= n <= 19)  # Diners
        or (p2 == 62 and 16 <= n <= 19)                               # UnionPay
        or ((p2 == 50 or 56 <= p2 <= 69) and 12 <= n <= 19)           # Maestro
    )


def _card_grouping_ok(raw: str) -> bool:
    if raw.isdigit():
        return True
    seps = {ch for ch in raw if not ch.isdigit()}
    if len(seps) != 1:
        return False
    groups = tuple(len(g) for g in raw.split(seps.pop()))
    return groups in _CARD_GROUPINGS or (all(g == 4 for g in groups[:-1]) and groups[-1] <= 4)


_IBAN_TAIL = re.compile(r"[A-Za-z]{2}\d{2}[ -]?$")
# Luhn also guards IMEIs and some order numbers: a label right before the digits says so.
_NOT_A_CARD_BEFORE = re.compile(
    r"(?i)\b(?:imei|order|invoice|tracking|ref|reference|serial|commande|bestellung|pedido|"
    r"ordine)\b\W{0,3}(?:n[o°º]\.?|nr\.?|number|#|num[eé]ro)?\W{0,3}$")


def _cards(text: str, spans: list[Span], strict_iin: bool) -> Iterator[Span]:
    for m in _scan(_CARD, text, spans):
        raw = m.group()
        if (_IBAN_TAIL.search(text, max(0, m.start() - 5), m.start())
                or _NOT_A_CARD_BEFORE.search(text, max(0, m.start() - 24), m.start())):
            continue  # IBAN-shaped digits that failed their own check, or a labelled id
        digits = raw.replace(" ", "").replace("-", "")
        if (_card_grouping_ok(raw) and len(set(digits)) > 1 and luhn_valid(digits)
                and (not strict_iin or known_iin(digits))):
            yield m.span()


# --- French NIR ------------------------------------------------------------------------------
_NIR = re.compile(
    r"(?<![\w.-])[12][ .-]?\d\d[ .-]?\d\d[ .-]?(?:\d\d|2[ABab])[ .-]?\d[ .-]?\d\d"
    r"[ .-]?\d{3}[ .-]?\d\d(?![\w]|[ .-]?\d)")


def nir_valid(nir: str) -> bool:
    """Sex 1/2, a plausible month, and key = 97 - (first 13 mod 97), Corsica 2A/2B as 19/18."""
    compact = "".join(ch for ch in nir.upper() if ch.isalnum())
    if len(compact) != 15 or compact[0] not in "12":
        return False
    month = int(compact[3:5])
    if not (1 <= month <= 12 or 20 <= month <= 42 or 50 <= month <= 99):
        return False
    body = compact[:13]
    if body[5:7] in ("2A", "2B"):
        body = body[:5] + ("19" if body[6] == "A" else "18") + body[7:]
    if not body.isdigit() or not compact[13:].isdigit():
        return False
    return 97 - int(body) % 97 == int(compact[13:])


def _nirs(text: str, spans: list[Span]) -> Iterator[Span]:
    for m in _scan(_NIR, text, spans):
        if nir_valid(m.group()):
            yield m.span()


# --- US SSN ----------------------------------------------------------------------------------
_SSN = re.compile(r"(?<![\w.-])(?<!\d[ .-])(\d{3})([ -])(\d{2})\2(\d{4})(?![\w]|[.-]\d)")
_SSN_PLAIN = re.compile(
    r"(?i:\b(?:ssn\b|ss#|social security(?: number| no\.?| #)?))\W{0,4}(\d{9})(?!\w)")


def ssn_valid(area: str, group: str, serial: str) -> bool:
    """Issuable SSN: area not 000, 666 or 900-999; group not 00; serial not 0000."""
    a = int(area)
    return 0 < a < 900 and a != 666 and group != "00" and serial != "0000"


def _ssns(text: str, spans: list[Span]) -> Iterator[Span]:
    for m in _scan(_SSN, text, spans):
        if ssn_valid(m.group(1), m.group(3), m.group(4)):
            yield m.span()
    for m in _scan(_SSN_PLAIN, text, spans):
        d = m.group(1)
        if ssn_valid(d[:3], d[3:5], d[5:]):
            yield m.span(1)


# --- IP addresses ----------------------------------------------------------------------------
_IPV4 = re.compile(r"(?<![\w.-])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
_VERSION_BEFORE = re.compile(
    r"(?i)(?:\bv|\bversion|\bver\.?|\brelease|\bbuild|\bsection|§|\bfig(?:ure)?\.?|\bchapter|"
    r"\bchapitre|\bkapitel|\bstep|\btable|\btableau|\babbildung|\bart(?:icle)?\.?)\s*$")
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?"
    r"(?![\w:]|\.\d)")


def _ipv4s(text: str, spans: list[Span]) -> Iterator[Span]:
    for m in _scan(_IPV4, text, spans):
        try:
            address = ipaddress.IPv4Address(m.group())
        except ValueError:
            continue
        if (address.is_unspecified or address.is_loopback or m.group().startswith("255.")
                or _VERSION_BEFORE.search(text, max(0, m.start() - 10), m.start())):
            continue
        yield m.span()


def _ipv6s(text: str, spans: list[Span]) -> Iterator[Span]:
    for m in _scan(_IPV6, text, spans):
        candidate = m.group()
        groups = [part for part in candidate.split(":") if part]
        if len(groups) < 2 or sum(len(part) for part in groups) < 4:
            continue
        try:
            address = ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        if not (address.is_unspecified or address.is_loopback):
            yield m.span()


# --- phone -----------------------------------------------------------------------------------
_PHONE_INTL = re.compile(
    r"(?<![\w+])(?<!\d[ .-])(?:\+|\b00)[1-9]\d{0,2}(?:[ .-]?\(?\d{1,4}\)?){2,6}(?![\w]|[.-]\d)")
_PHONE_NANP = re.compile(
    r"(?<![\w.+-])(?<!\d[ .-])(?:1[ .-])?(?:\([2-9]\d\d\)[ ]?|[2-9]\d\d([ .-]))[2-9]\d\d([ .-])"
    r"\d{4}"
    r"(?![\w]|[.-]\d)")
_PHONE_TRUNK = re.compile(
    r"(?<![\w.+-])(?<!\d[ .-])0[1-9]\d{0,3}([ ./-])\d{2,4}(?:\1\d{2,4}){0,3}(?![\w]|[./-]\d)")
_PHONE_CONTEXT = re.compile(
    r"(?i:\b(?:t[ée]l|t[ée]l[ée]phone|phone|telephone|mobile?|cell|portable|handy|telefon|"
    r"tel[ée]fono|m[óo]vil|cellulare|telem[óo]vel|whats ?app|fax|(?:call|reach|text) me(?: at| on"
    r")?)\b)[^\w\n]{0,4}(?:\w+\W+){0,3}?"
    r"(\+?\(?\d[\d .()/-]{5,18}\d)(?![\w]|[.-]\d)")


def _phones(text: str, spans: list[Span]) -> Iterator[Span]:
    for m in _scan(_PHONE_INTL, text, spans):
        digits = sum(ch.isdigit() for ch in m.group())
        if (11 if m.group().startswith("00") else 8) <= digits <= 17:
            yield m.span()
    for m in _scan(_PHONE_NANP, text, spans):
        yield m.span()
    for m in _scan(_PHONE_TRUNK, text, spans):
        if 9 <= sum(ch.isdigit() for ch in m.group()) <= 12:
            yield m.span()
    for m in _scan(_PHONE_CONTEXT, text, spans):
        if 7 <= sum(ch.isdigit() for ch in m.group(1)) <= 15:
            yield m.span(1)


# --- where to look ----------------------------------------------------------------------------
# A numeric value is one cluster of digits joined by short separators (and the A/B of a Corsican
# NIR); each kind is looked for only around clusters with enough digits for it.
_CLUSTER = re.compile(r"\d(?:[ .()/+:-]{0,2}(?:\d|[AB](?=[ .-]?\d)))*")
_NO_DIGITS = str.maketrans("", "", "0123456789")
_MIN_DIGITS: Final[dict[str, int]] = {"phone": 7, "ssn": 9, "card": 13, "nir": 14}
_BEFORE: Final[dict[str, int]] = {"phone": 56, "ssn": 32, "card": 4, "nir": 2}
_HEX_OR_COLON: Final = frozenset("0123456789abcdefABCDEF:")


def _merge(spans: list[Span], limit: int) -> list[Span]:
    merged: list[Span] = []
    for lo, hi in sorted(spans):
        lo, hi = max(0, lo), min(limit, hi)
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


def _positions(text: str, needle: str) -> Iterator[int]:
    at = text.find(needle)
    while at >= 0:
        yield at
        at = text.find(needle, at + 1)


def _windows(text: str) -> dict[str, list[Span]]:
    """Per kind, the spans of text worth scanning (instead of the whole text)."""
    out: dict[str, list[Span]] = {kind: [] for kind in ALL_KINDS}
    if "@" in text:
        out["email"] = [(at - 65, at + 256) for at in _positions(text, "@")]
    if text.count(":") >= 2:
        out["ipv6"] = [(at - 40, at + 42) for at in _positions(text, ":")
                       if at + 1 < len(text) and text[at + 1] in _HEX_OR_COLON]
    for m in _CLUSTER.finditer(text):
        lo, hi = m.span()
        if lo >= 2 and text[lo - 2:lo].isascii() and text[lo - 2:lo].isalpha():
            out["iban"].append((lo - 2, lo + 46))
        if hi - lo < 4:
            continue
        value = m.group()
        digits = len(value) - len(value.translate(_NO_DIGITS))
        if digits >= 4 and value.count(".") >= 3:
            out["ipv4"].append((lo - 2, hi + 2))
        if digits >= 7:
            for kind, least in _MIN_DIGITS.items():
                if digits >= least:
                    out[kind].append((lo - _BEFORE[kind], hi + 2))
    return {kind: _merge(spans, len(text)) for kind, spans in out.items()}


_DETECTORS: Final[dict[str, Callable[[str, list[Span]], Iterable[Span]]]] = {
    "email": _emails, "iban": _ibans, "nir": _nirs, "ssn": _ssns,
    "ipv6": _ipv6s, "ipv4": _ipv4s, "phone": _phones,
}


def find_pii(text: str, types: Iterable[PiiKind] = ALL_KINDS, *,
             strict_card_iin: bool = False, whole_text: bool = False) -> list[Match]:
    """Every PII value of the given kinds in text, non-overlapping, in text order.

    `whole_text` scans everything instead of the spans around digits, '@' and ':' (the same
    answer, slower; for tests).
    """
    wanted = set(types)
    windows = {kind: [(0, len(text))] for kind in ALL_KINDS} if whole_text else _windows(text)
    taken: list[Match] = []
    for kind in ALL_KINDS:
        spans = windows[kind]
        if kind not in wanted or not spans:
            continue
        found = (_cards(text, spans, strict_card_iin) if kind == "card"
                 else _DETECTORS[kind](text, spans))
        for start, end in found:
            if all(end <= t.start or start >= t.end for t in taken):
                taken.append(Match(kind, start, end))
    taken.sort(key=lambda match: match.start)
    return taken


def redact(text: str, matches: list[Match]) -> str:
    """Text with each match replaced by a [REDACTED:KIND] placeholder."""
    parts: list[str] = []
    last = 0
    for match in matches:
        parts.append(text[last:match.start])
        parts.append(f"[REDACTED:{match.kind.upper()}]")
        last = match.end
    parts.append(text[last:])
    return "".join(parts)
