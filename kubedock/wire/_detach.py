"""Docker's detach keys: the key sequence on a terminal's stdin that ends an attach or exec
session while the process runs on.

A spec is comma-separated keys, each a single character or `ctrl-<c>` for `c` in `@`, `a`-`z`,
`[`, `\\`, `]`, `^`, `_` (the control codes 0 to 31), or `DEL`. Docker's default is
`ctrl-p,ctrl-q`.
"""

from ._errors import WireFormatError

DEFAULT_DETACH_KEYS = b"\x10\x11"
_CONTROL_NAMES = "@abcdefghijklmnopqrstuvwxyz[\\]^_"


def parse_detach_keys(spec: str) -> bytes:
    """The bytes a detach key spec stands for; an empty spec means Docker's default."""
    if not spec:
        return DEFAULT_DETACH_KEYS
    keys = bytearray()
    for key in spec.split(","):
        name = key.removeprefix("ctrl-")
        if len(key) == 1 and key.isascii():
            keys.append(ord(key))
        elif key == "DEL":
            keys.append(0x7F)
        elif name != key and len(name) == 1 and name in _CONTROL_NAMES:
            keys.append(_CONTROL_NAMES.index(name))
        else:
            raise WireFormatError(f"Unknown character: '{key}'")
    return bytes(keys)


class DetachScanner:
    """Finds the detach keys in stdin fed in arbitrary pieces.

    Bytes that could be the start of the sequence are held back until the next piece says
    whether they are; the sequence itself never reaches the process.
    """

    def __init__(self, keys: bytes) -> None:
        if not keys:
            raise ValueError("a detach key sequence has at least one key")
        self._keys = keys
        self._held = bytearray()
        self.detached = False
        """The whole sequence was seen: whatever follows it is not for the process."""

    def feed(self, data: bytes) -> bytes:
        """The part of `data` (and of what was held back) to pass on to the process."""
        if self.detached:
            return b""
        passed = bytearray()
        for byte in data:
            self._held.append(byte)
            while not self._keys.startswith(self._held):
                passed.append(self._held.pop(0))
            if self._held == self._keys:
                self.detached = True
                break
        return bytes(passed)

    def flush(self) -> bytes:
        """At the end of stdin: what was held back was not the sequence after all."""
        held, self._held = bytes(self._held), bytearray()
        return held
