"""Find phone numbers in text, disguised or not, and scrub them out of what leaves the restricted zone.

Parser errors (DuckDB's CSV reader, for one) quote the offending line, which may hold a phone number;
such messages go to Dagster's event log, so they are redacted first. The same rule decides whether a
value of an analytics or compliance table "looks like a phone number" (the no-numbers gates) and
what the leak scans of the tests look for: one rule, `number_like_spans`.

Text is normalised before matching (`normalize_for_matching`), because a number can be written so
that a plain digit pattern misses it while a person, a dialer or phonenumbers still reads it:
fullwidth or Arabic-Indic digits, zero-width spaces, joiners, soft hyphens, BOMs or word joiners
between the digits, and keypad letters (`+1-415-JKL-0122`, `1-800-FLOWERS`).

Then the rule errs on the side of redacting: any run of 7+ characters of digits and the separators
people (and phonenumbers) write numbers with. ISO dates (2026-11-01) are the one exception, so that
file names stay readable. Keypad letters count where they fit phonenumbers' own reading of a vanity
number (`_vanity_fits`); ordinary words are left alone.
"""

from __future__ import annotations

import re
import unicodedata

import phonenumbers

# Separators phonenumbers accepts between digits: ASCII and Unicode dashes, spaces, dots, slashes.
_SEPARATORS = r"\s().\-/\u00a0\u2010-\u2015\u2212\u3000\u30fc\uff0d"
_NUMBER_LIKE = re.compile(rf"\+?[0-9][0-9{_SEPARATORS}]{{5,}}[0-9]")
# A vanity candidate: from a '+' or a digit at the start of a word, digits, letters and
# separators, at most 40 characters (longer is no phone number; the bound keeps a 100 kB value
# linear to scan).
_VANITY_CANDIDATE = re.compile(rf"(?<![A-Za-z0-9])\+?[0-9][0-9A-Za-z{_SEPARATORS}]{{2,39}}")
_SEPARATOR_CHARS = " \t().-/\u00a0\u3000"
_GROUP = re.compile(r"[0-9A-Za-z]+")
_LEADING_DIGITS = re.compile(rf"\+?[0-9{_SEPARATORS}]*")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
REDACTED = "<redacted>"

# Invisible characters that are not of a category stripped as a whole (Cf format characters,
# Mn/Me combining marks): Hangul fillers and the Khmer inherent vowels (Unicode's
# Default_Ignorable_Code_Point), and the Braille blank.
_OTHER_INVISIBLES = frozenset("\u115f\u1160\u17b4\u17b5\u3164\uffa0\u2800")
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Mn", "Me"})
# E.164's most digits, plus a national trunk prefix: more digits than this are no phone number.
_MAX_VANITY_DIGITS = 16
_MIN_DIGITS = 7


def _is_invisible(char: str) -> bool:
    return unicodedata.category(char) in _INVISIBLE_CATEGORIES or char in _OTHER_INVISIBLES


def _normalized(text: str) -> tuple[str, list[int]]:
    """`normalize_for_matching(text)`, and for each of its characters the index in `text` it
    came from (so that a match can be redacted in the original)."""
    chars: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        if _is_invisible(char):
            continue
        for folded in unicodedata.normalize("NFKC", char):
            if _is_invisible(folded):
                continue
            # NFKC folds fullwidth digits, not other scripts' digits (Arabic-Indic, Devanagari).
            value = unicodedata.decimal(folded, None)
            chars.append(folded if value is None else str(value))
            origin.append(index)
    return "".join(chars), origin


def normalize_for_matching(text: str) -> str:
    """Text as a number-matcher should see it: NFKC (fullwidth forms, NBSP), every Unicode
    decimal digit as an ASCII digit, format characters (zero-width space/joiners, BOM, soft
    hyphen, word joiner), combining marks and other invisibles removed. Keypad letters are
    mapped later, only where they fit a number (`_vanity_fits`)."""
    return _normalized(text)[0]


def _vanity_fits(candidate: str) -> bool:
    """Whether keypad letters make `candidate` a phone number, as phonenumbers reads one: it
    starts with 3+ digits (phonenumbers' VALID_PHONE_NUMBER), has 3+ letters (its
    VALID_ALPHA_PHONE_PATTERN) and its keypad form has as many digits as a phone number.
    With a '+', phonenumbers itself decides (is_possible_number); without one, only capitals
    count as keypad letters (`1-800-FLOWERS`: the way vanity numbers are written), so that
    ordinary words after a number (`2026 spring sale`) stay words."""
    head = _LEADING_DIGITS.match(candidate)
    if head is None or sum(ch.isdigit() for ch in head.group(0)) < 3:
        return False
    if _ISO_DATE.fullmatch(head.group(0).rstrip(_SEPARATOR_CHARS)):
        return False  # a date before a word (CALLS_2026-11-01.CSV) is the ISO date exception
    letters = [ch for ch in candidate if ch.isalpha()]
    if len(letters) < 3:  # phonenumbers' VALID_ALPHA_PHONE_PATTERN: an ISO time's T is no word
        return False
    converted = phonenumbers.convert_alpha_characters_in_number(candidate)
    digits = sum(ch.isdigit() for ch in converted)
    if not _MIN_DIGITS <= digits <= _MAX_VANITY_DIGITS:
        return False
    if candidate.startswith("+"):
        try:
            return phonenumbers.is_possible_number(phonenumbers.parse(converted, None))
        except phonenumbers.NumberParseException:
            return False
    return all(ch.isupper() for ch in letters)


def _normalized_spans(normalized: str) -> list[tuple[int, int]]:
    spans = [
        match.span()
        for match in _NUMBER_LIKE.finditer(normalized)
        if not _ISO_DATE.fullmatch(match.group(0))
    ]
    for match in _VANITY_CANDIDATE.finditer(normalized):
        # The longest prefix, ending at a group of letters or digits, that fits: words after
        # a vanity number ("+1-415-JKL-0122-now") are not part of it.
        ends = [group.end() for group in _GROUP.finditer(match.group(0))]
        for end in reversed(ends):
            if _vanity_fits(match.group(0)[:end]):
                spans.append((match.start(), match.start() + end))
                break
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def number_like_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) in `text` of each part that reads as a phone number once normalised."""
    normalized, origin = _normalized(text)
    return [(origin[start], origin[end - 1] + 1) for start, end in _normalized_spans(normalized)]


def contains_phone_number(text: str) -> bool:
    """Whether any part of `text` reads as a phone number (the no-numbers gates' question)."""
    return bool(_normalized_spans(normalize_for_matching(text)))


def redact(text: str) -> str:
    """`text` with every part that reads as a phone number replaced by REDACTED."""
    spans = number_like_spans(text)
    if not spans:
        return text
    parts: list[str] = []
    last = 0
    for start, end in spans:
        parts += [text[last:start], REDACTED]
        last = end
    parts.append(text[last:])
    return "".join(parts)
