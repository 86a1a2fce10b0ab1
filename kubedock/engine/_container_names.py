"""Container names: the form Docker accepts, and the one it gives a container created
without one."""

from __future__ import annotations

import re

from ._errors import InvalidParameter

_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


def checked_name(name: str) -> str:
    """`name` as a container's name (without Docker's leading ``/``), if Docker accepts it."""
    if not _NAME.match(name):
        raise InvalidParameter(
            f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )
    return name.removeprefix("/")


_ADJECTIVES = ("brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lucid",
               "merry", "nifty", "proud", "quirky", "sharp", "tender", "vivid", "witty", "zen")
_NOUNS = ("albatross", "badger", "cheetah", "dolphin", "falcon", "gecko", "heron", "ibis",
          "jaguar", "koala", "lemur", "marmot", "narwhal", "otter", "panda", "quokka", "raven")


def generated_name(container_id: str) -> str:
    """A readable, deterministic name for containers created without one, as Docker gives."""
    number = int(container_id[:8], 16)
    return (f"{_ADJECTIVES[number % len(_ADJECTIVES)]}_"
            f"{_NOUNS[(number // len(_ADJECTIVES)) % len(_NOUNS)]}_{container_id[:4]}")
