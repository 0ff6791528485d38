"""Unified social credit codes (GB 32100): check character and character set."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil_kit.identifiers import ALPHABET, is_valid_uscc, uscc_check_char, validate_uscc

# Published codes of real registered units.
REAL_CODES = ["91350100M000100Y43", "91110108551385082Q"]

first17 = st.builds(
    lambda head, division, tail: head + division + tail,
    st.text(alphabet=ALPHABET, min_size=2, max_size=2),
    st.text(alphabet="0123456789", min_size=6, max_size=6),
    st.text(alphabet=ALPHABET, min_size=9, max_size=9),
)


@pytest.mark.parametrize("code", REAL_CODES)
def test_validate_uscc_accepts_published_codes(code: str) -> None:
    assert validate_uscc(code) == code


def test_check_char_of_a_published_code_is_its_eighteenth_character() -> None:
    assert uscc_check_char("91350100M000100Y4") == "3"


def test_validate_uscc_refuses_a_wrong_check_character_naming_position_18() -> None:
    with pytest.raises(ValueError, match="position 18"):
        validate_uscc("91350100M000100Y44")


def test_validate_uscc_refuses_a_character_outside_the_alphabet_naming_its_position() -> None:
    # "I" is excluded from the code's character set; it stands at position 9 here.
    with pytest.raises(ValueError, match="position 9"):
        validate_uscc("91350100I000100Y43")


def test_validate_uscc_refuses_a_letter_in_the_division_code_naming_its_position() -> None:
    with pytest.raises(ValueError, match="position 4"):
        validate_uscc("913A0100M000100Y43")


def test_validate_uscc_refuses_lowercase_letters() -> None:
    with pytest.raises(ValueError, match="position 9"):
        validate_uscc("91350100m000100Y43")


@pytest.mark.parametrize("code", ["", "91350100M000100Y4", "91350100M000100Y433"])
def test_validate_uscc_refuses_a_code_that_is_not_18_characters(code: str) -> None:
    with pytest.raises(ValueError, match="expected 18"):
        validate_uscc(code)


@given(first17)
def test_a_code_completed_with_its_check_character_is_valid(head: str) -> None:
    assert is_valid_uscc(head + uscc_check_char(head))


@given(first17, st.integers(min_value=0, max_value=16), st.sampled_from(ALPHABET))
def test_changing_any_one_of_the_first_17_characters_is_detected(head: str, position: int, char: str) -> None:
    code = head + uscc_check_char(head)
    changed = code[:position] + char + code[position + 1 :]
    if changed != code and (position not in range(2, 8) or char.isdigit()):
        assert not is_valid_uscc(changed)
