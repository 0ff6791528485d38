"""AIP-158 paging: page_size bounds and opaque page tokens that carry a keyset position."""

from __future__ import annotations

import base64
import binascii

from vigil_kit.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def page_size(n: int, *, default: int = DEFAULT_PAGE_SIZE, maximum: int = MAX_PAGE_SIZE) -> int:
    """0 means the default; larger than the maximum is capped (AIP-158); negative is refused."""
    if n < 0:
        raise InvalidArgument("page_size must not be negative", field="page_size")
    return min(n or default, maximum)


def encode_token(key: str) -> str:
    """The opaque page token for the last key a page returned."""
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def decode_token(token: str) -> str:
    """The key a page token carries ("" for the first page); a token this service did not issue is refused."""
    if not token:
        return ""
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidArgument("page_token is not a token this service issued", field="page_token") from None
