"""Streaming container checks for uploads: MPEG-TS packet sync and fragmented-MP4 box structure, chunk by chunk.

Both checkers see each byte once, keep O(1) state (at most one box header, 16 bytes), and raise
ContainerError naming the byte offset, what was expected and what was found. They check structure
only — enough to refuse what is not a streamable segment of the declared container before it is
stored; decoding is not ingest's job (the hash and signature vouch for the bytes, not their pixels).
"""

from __future__ import annotations

import struct
from typing import Protocol

from vigil_kit.errors import InvalidArgument
from vigil_kit.segment_header import Container  # shared with the archive (stored-object metadata)

TS_PACKET = 188
TS_SYNC = 0x47


class ContainerError(InvalidArgument):
    """The bytes are not a well-formed segment of the declared container (INVALID_ARGUMENT)."""

    def __init__(
        self,
        container: Container,
        offset: int,
        problem: str,
        *,
        expected: str = "",
        found: str = "",
        field: str = "chunk",
    ) -> None:
        detail = f"; expected {expected}, found {found}" if expected or found else ""
        super().__init__(
            f"not a valid {container.label} segment: at byte {offset}, {problem}{detail}", field=field
        )
        self.container = container
        self.offset = offset
        self.expected = expected
        self.found = found


class ContainerChecker(Protocol):
    container: Container

    @property
    def offset(self) -> int: ...

    def feed(self, chunk: bytes | bytearray | memoryview) -> None: ...

    def finish(self) -> None: ...


def sniff(head: bytes | bytearray | memoryview) -> Container | None:
    """The container the first bytes look like (8 bytes suffice for MP4; TS is surer with 189), or None.

    MPEG-TS: 0x47 at offset 0 and, when that many bytes are given, at 188. MP4: a box whose type at
    offset 4 is `ftyp` (ISO/IEC 14496-12 requires it first).
    """
    head = bytes(head[: TS_PACKET + 1])
    if len(head) >= 8 and head[4:8] == b"ftyp":
        return Container.FMP4
    if head[:1] == bytes([TS_SYNC]) and (len(head) <= TS_PACKET or head[TS_PACKET] == TS_SYNC):
        return Container.MPEG_TS
    return None


def checker_for(container: Container | str) -> ContainerChecker:
    container = Container(container)
    return TsChecker() if container is Container.MPEG_TS else Mp4Checker()


class TsChecker:
    """MPEG-TS (ISO/IEC 13818-1): the sync byte 0x47 at every 188-byte packet boundary; whole packets only.

    192-byte M2TS packets and 204-byte packets with Reed-Solomon parity are refused: segments are
    plain 188-byte transport streams, which is what every encoder and muxer writes for HLS.
    """

    container = Container.MPEG_TS

    def __init__(self) -> None:
        self._offset = 0

    @property
    def offset(self) -> int:
        return self._offset

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        chunk = memoryview(chunk).cast("B")
        # The first packet boundary inside this chunk, counted from the chunk's own start.
        first = -self._offset % TS_PACKET
        syncs = bytes(chunk[first::TS_PACKET])
        if syncs.count(TS_SYNC) != len(syncs):
            bad = next(i for i, b in enumerate(syncs) if b != TS_SYNC)
            at = self._offset + first + bad * TS_PACKET
            raise ContainerError(
                self.container,
                at,
                f"packet {at // TS_PACKET} does not start with the sync byte",
                expected="0x47",
                found=f"0x{syncs[bad]:02x}",
            )
        self._offset += len(chunk)

    def finish(self) -> None:
        if self._offset == 0:
            raise ContainerError(
                self.container, 0, "the segment is empty", expected="at least one packet", found="0 bytes"
            )
        tail = self._offset % TS_PACKET
        if tail:
            raise ContainerError(
                self.container,
                self._offset - tail,
                "the last packet is truncated",
                expected=f"{TS_PACKET} bytes",
                found=f"{tail} bytes (size {self._offset} is not a multiple of {TS_PACKET})",
            )


# Top-level boxes that may appear at most once (ISO/IEC 14496-12 §8.1.1, §8.2.1).
_ONCE = frozenset({b"ftyp", b"moov"})


class Mp4Checker:
    """Fragmented MP4 (ISO/IEC 14496-12, as `movflags=frag_keyframe+empty_moov+default_base_moof` writes it).

    Walks the top-level boxes — 32-bit size and 4-character type, a 64-bit `largesize` when the size
    is 1 — skipping each payload without buffering it. The segment must be self-contained: `ftyp`
    first, then `moov` (the init segment, once, before any fragment), then at least one `moof`
    each followed by an `mdat` before the next `moof`. Other boxes (`free`, `sidx`, `styp`, `mfra`,
    ...) may appear between them. A box that runs past the end of the upload is truncated; a size of
    0 ("to the end of the file") is refused, since a segment's boxes are all sized by the muxer.
    """

    container = Container.FMP4

    def __init__(self) -> None:
        self._offset = 0  # bytes consumed so far
        self._header = bytearray()  # the current box header, while incomplete
        self._box_start = 0
        self._remaining = 0  # payload bytes of the current box still to skip
        self._seen: set[bytes] = set()
        self._fragment_open = False  # a moof without its mdat yet
        self._fragments = 0

    @property
    def offset(self) -> int:
        return self._offset

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        view = memoryview(chunk).cast("B")
        pos = 0
        while pos < len(view):
            if self._remaining:
                take = min(self._remaining, len(view) - pos)
                self._remaining -= take
                pos += take
                self._offset += take
                continue
            if not self._header:
                self._box_start = self._offset
            need = self._header_length() - len(self._header)
            take = min(need, len(view) - pos)
            self._header += view[pos : pos + take]
            pos += take
            self._offset += take
            if len(self._header) == self._header_length():
                self._open_box()

    def _header_length(self) -> int:
        # 8 bytes (size, type); 16 when the 32-bit size is 1 and a 64-bit largesize follows.
        if len(self._header) >= 4 and struct.unpack_from(">I", self._header)[0] == 1:
            return 16
        return 8

    def _open_box(self) -> None:
        header = bytes(self._header)
        self._header.clear()
        size = struct.unpack_from(">I", header)[0]
        kind = header[4:8]
        at = self._box_start
        if not all(0x20 <= b <= 0x7E for b in kind):
            raise ContainerError(
                self.container,
                at + 4,
                "a box type is not four printable characters",
                expected="a box type such as 'moof'",
                found=kind.hex(),
            )
        name = kind.decode("ascii")
        if size == 1:
            size = struct.unpack_from(">Q", header, 8)[0]
        if size == 0:
            raise ContainerError(
                self.container,
                at,
                f"box '{name}' has size 0 (extends to the end of the file)",
                expected="an explicit box size",
                found="0",
            )
        if size < len(header):
            raise ContainerError(
                self.container,
                at,
                f"box '{name}' is smaller than its own header",
                expected=f"size >= {len(header)}",
                found=str(size),
            )
        self._check_order(kind, name, at)
        self._remaining = size - len(header)

    def _check_order(self, kind: bytes, name: str, at: int) -> None:
        if not self._seen and kind != b"ftyp":
            raise ContainerError(
                self.container, at, "the first box must be 'ftyp'", expected="'ftyp'", found=f"'{name}'"
            )
        if kind in _ONCE and kind in self._seen:
            raise ContainerError(
                self.container, at, f"a second '{name}' box", expected=f"one '{name}'", found="two"
            )
        if kind == b"moof":
            if b"moov" not in self._seen:
                raise ContainerError(
                    self.container,
                    at,
                    "a fragment before the init segment",
                    expected="'moov' before 'moof'",
                    found="'moof'",
                )
            if self._fragment_open:
                raise ContainerError(
                    self.container,
                    at,
                    "a fragment without media data",
                    expected="'mdat' after 'moof'",
                    found="'moof'",
                )
            self._fragment_open = True
        elif kind == b"mdat":
            if self._fragment_open:
                self._fragment_open = False
                self._fragments += 1
        self._seen.add(kind)

    def finish(self) -> None:
        if self._header or self._remaining:
            box_size = "" if self._header else f" of {self._offset - self._box_start + self._remaining} bytes"
            raise ContainerError(
                self.container,
                self._box_start,
                f"the last box{box_size} is truncated",
                expected=f"{self._remaining} more bytes"
                if self._remaining
                else f"{self._header_length()}-byte box header",
                found=f"end of data at byte {self._offset}",
            )
        if b"ftyp" not in self._seen:
            raise ContainerError(
                self.container, self._offset, "the segment is empty", expected="'ftyp'", found="0 bytes"
            )
        if b"moov" not in self._seen:
            raise ContainerError(
                self.container,
                self._offset,
                "no init segment (it is not self-contained)",
                expected="'moov'",
                found="none",
            )
        if self._fragment_open:
            raise ContainerError(
                self.container,
                self._offset,
                "the last fragment has no media data",
                expected="'mdat' after 'moof'",
                found="end of data",
            )
        if not self._fragments:
            raise ContainerError(
                self.container, self._offset, "no media fragments", expected="'moof' + 'mdat'", found="none"
            )
