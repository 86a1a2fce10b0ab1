"""A client's plain tar passed on to the pod without re-writing it (sans-I/O).

`podside.relocate` re-reads and re-writes every byte with tarfile, in a worker thread; for
the usual archive (plain ustar or GNU headers, nothing compressed) that is most of a put's
CPU. `TarRelay` reads only the headers: it checks each name as `relocate` does, passes a
header on as it came when its name is already clean (else re-encodes it), and hands member
data on as slices of what the client sent. Whatever it does not read itself (compression,
PAX and GNU long-name records, a malformed first header) it hands over, unread, to
`relocate`, which gives the same result and the same errors it always gave.
"""

from __future__ import annotations

import enum
import tarfile

from .. import podside

_BLOCK = tarfile.BLOCKSIZE
_FILES = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)
_KEPT = (*_FILES, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE)
_DEVICES = (tarfile.CHRTYPE, tarfile.BLKTYPE)  # need privileges the pod does not have
_END = bytes(2 * _BLOCK)
_PREFIX_FIELD = slice(345, 500)  # ustar's name prefix, or GNU's times


class State(enum.Enum):
    READING = "reading"
    DONE = "done"  # the end-of-archive marker went out; the rest of the input is ignored
    HANDED_OVER = "handed over"  # `rest` and what follows are for `relocate`


class TarRelay:
    """What to send on for each piece of the client's archive, in order."""

    def __init__(self) -> None:
        self.state = State.READING
        self.rest = b""
        self._header = bytearray()
        self._offset = 0  # of the next header in the input
        self._data_left = 0  # of the current member
        self._padding_left = 0
        self._sending = False  # the current member's data goes on
        self._member = ""

    def feed(self, data: bytes) -> list[bytes | memoryview]:
        """The pieces to send for `data`; see `state` for what to do next."""
        out: list[bytes | memoryview] = []
        view, position = memoryview(data), 0
        while position < len(view) and self.state is State.READING:
            if self._data_left or self._padding_left:
                position = self._pass_data(view, position, out)
                continue
            taken = view[position:position + _BLOCK - len(self._header)]
            self._header += taken
            position += len(taken)
            if len(self._header) == _BLOCK:
                block, self._header = bytes(self._header), bytearray()
                if self._take_header(block, out) is State.HANDED_OVER:
                    self.rest = block + bytes(view[position:])
        return out

    def finish(self) -> list[bytes | memoryview]:
        """The last pieces, at the end of the input; raises `podside.ArchiveError` for an
        archive cut inside a member's data."""
        if self.state is not State.READING:
            return []
        if self._data_left:
            raise podside.ArchiveError(
                f"truncated tar archive at {self._member!r}: unexpected end of data")
        if self._offset == 0:
            # Not even one whole header: tarfile says what it is (or that it is empty).
            self.state, self.rest = State.HANDED_OVER, bytes(self._header)
            return []
        self.state = State.DONE
        return [_END]

    def _pass_data(self, view: memoryview, position: int, out: list[bytes | memoryview]) -> int:
        size = min(self._data_left + self._padding_left, len(view) - position)
        if self._sending:
            out.append(view[position:position + size])
        from_data = min(size, self._data_left)
        self._data_left -= from_data
        self._padding_left -= size - from_data
        return position + size

    def _take_header(self, block: bytes, out: list[bytes | memoryview]) -> State:
        self.state = self._header_state(block, out)
        return self.state

    def _header_state(self, block: bytes, out: list[bytes | memoryview]) -> State:
        try:
            member = tarfile.TarInfo.frombuf(block, tarfile.ENCODING, "surrogateescape")
        except tarfile.HeaderError:
            if self._offset == 0:
                return State.HANDED_OVER  # compressed, or not a tar: tarfile's call
            # tarfile ends an archive at the first header it cannot read.
            out.append(_END)
            return State.DONE
        if member.type not in _KEPT and member.type not in _DEVICES:
            return State.HANDED_OVER
        self._offset += _BLOCK
        data = member.size if member.type in _FILES else 0
        self._data_left, self._padding_left = data, -data % _BLOCK
        self._offset += data + self._padding_left
        name = self._member = podside.safe_name(member.name)
        self._sending = bool(name) and member.type not in _DEVICES
        if not self._sending:
            return State.READING
        clean = name == member.name and not any(block[_PREFIX_FIELD])
        if member.type == tarfile.LNKTYPE:
            linked = podside.safe_name(member.linkname)
            if not linked:
                raise podside.ArchiveError(
                    f"hard link {member.name!r} points at the target itself")
            clean = clean and linked == member.linkname
            member.linkname = linked
        if clean:
            out.append(block)
        else:
            member.name = name
            out.append(member.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape"))
        return State.READING
