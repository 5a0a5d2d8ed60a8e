"""Phone numbers as every registry file stores them."""

from __future__ import annotations

import phonenumbers


def normalise_phone(raw: str) -> str | None:
    """E.164 for a valid number; numbers without ``+`` are read as Chinese numbers."""
    try:
        number = phonenumbers.parse(raw, "CN")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
