"""Paging: page sizes are bounded and page tokens round-trip; anything else is refused naming the field."""

from __future__ import annotations

import pytest

from vigil_kit.errors import InvalidArgument
from vigil_kit.paging import decode_token, encode_token, page_size


def test_page_size_defaults_caps_and_refuses_negative():
    assert page_size(0) == 100
    assert page_size(5000) == 1000
    assert page_size(7) == 7
    with pytest.raises(InvalidArgument) as err:
        page_size(-1)
    assert err.value.field == "page_size"


def test_a_page_token_round_trips_and_a_foreign_one_is_refused():
    assert decode_token(encode_token("32020501501320000001")) == "32020501501320000001"
    assert decode_token("") == ""
    with pytest.raises(InvalidArgument) as err:
        decode_token("%%%not-a-token")
    assert err.value.field == "page_token"
