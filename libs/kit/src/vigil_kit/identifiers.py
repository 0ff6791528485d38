"""Unified social credit codes (GB 32100-2015): the 18-character identifier of every unit."""

from __future__ import annotations

# GB 32100 §4.2: the code's character set — digits and capital letters without I, O, Z, S, V.
ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_VALUE = {char: value for value, char in enumerate(ALPHABET)}

# GB 32100 §4.3: the weight of each of positions 1–17 (3^(i-1) mod 31).
WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)

USCC_LENGTH = 18

# Positions 3–8 carry the administrative division code (GB/T 2260): digits only.
_DIVISION_POSITIONS = range(3, 9)


def _check_characters(code: str) -> None:
    for position, char in enumerate(code, start=1):
        if char not in _VALUE:
            raise ValueError(
                f"unified social credit code {code!r}: character {char!r} at position {position} "
                f"is not one of {ALPHABET}"
            )
        if position in _DIVISION_POSITIONS and not char.isdigit():
            raise ValueError(
                f"unified social credit code {code!r}: character {char!r} at position {position} "
                "must be a digit (positions 3–8 are the administrative division code)"
            )


def uscc_check_char(first17: str) -> str:
    """The check character (position 18) for the first 17 characters of a code."""
    if len(first17) != USCC_LENGTH - 1:
        raise ValueError(
            f"expected the first 17 characters of a unified social credit code, got {len(first17)}"
        )
    _check_characters(first17)
    total = sum(_VALUE[char] * weight for char, weight in zip(first17, WEIGHTS, strict=True))
    return ALPHABET[(31 - total % 31) % 31]


def validate_uscc(code: str) -> str:
    """Return `code` if it is a well-formed unified social credit code; else raise ValueError naming
    the position at fault."""
    if len(code) != USCC_LENGTH:
        raise ValueError(f"unified social credit code {code!r} has {len(code)} characters, expected 18")
    _check_characters(code)
    expected = uscc_check_char(code[:17])
    if code[17] != expected:
        raise ValueError(
            f"unified social credit code {code!r}: check character at position 18 is {code[17]!r}, "
            f"expected {expected!r}"
        )
    return code


def is_valid_uscc(code: str) -> bool:
    try:
        validate_uscc(code)
    except ValueError:
        return False
    return True
