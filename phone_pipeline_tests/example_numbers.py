"""Every example number phonenumbers ships (each supported region x each number type, plus the
non-geographic entities such as +800 and +882), in the renderings people and systems write."""

from __future__ import annotations

from functools import cache

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

RENDERINGS = {
    "e164": PhoneNumberFormat.E164,
    "international": PhoneNumberFormat.INTERNATIONAL,
    "rfc3966": PhoneNumberFormat.RFC3966,
}
_TYPES = [
    value
    for name, value in vars(PhoneNumberType).items()
    if name.isupper() and isinstance(value, int)
]


@cache
def example_numbers() -> tuple[phonenumbers.PhoneNumber, ...]:
    """Distinct example numbers (by E.164 rendering), in a stable order."""
    found: dict[str, phonenumbers.PhoneNumber] = {}
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for number_type in _TYPES:
            number = phonenumbers.example_number_for_type(region, number_type)
            if number is not None:
                found.setdefault(phonenumbers.format_number(number, PhoneNumberFormat.E164), number)
    for code in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        number = phonenumbers.example_number_for_non_geo_entity(code)
        if number is not None:
            found.setdefault(phonenumbers.format_number(number, PhoneNumberFormat.E164), number)
    return tuple(found[key] for key in sorted(found))


def example_renderings() -> list[tuple[str, str]]:
    """(rendering name, text) of every example number in every rendering."""
    return [
        (name, phonenumbers.format_number(number, number_format))
        for number in example_numbers()
        for name, number_format in RENDERINGS.items()
    ]
