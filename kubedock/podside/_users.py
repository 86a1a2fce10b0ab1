"""Docker's `--user` specs resolved against an image's /etc/passwd and /etc/group.

`user`, `uid`, `user:group`, `uid:gid` (and the mixed forms) mean what they mean to Docker's
runtime: a numeric uid absent from passwd is taken as is (group 0, home /), a name must be
there; an explicit group replaces the user's groups, an implicit one keeps the supplementary
groups that list the user by name. As with Docker, the supplementary groups start with the
primary one. Errors carry Docker's words.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

_MAX_ID = 2**31 - 1


class UserError(Exception):
    """The spec names a user or group the image does not have (Docker's message)."""


class ExecUser(NamedTuple):
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str


class _Passwd(NamedTuple):
    name: str
    uid: int
    gid: int
    home: str


class _Group(NamedTuple):
    name: str
    gid: int
    members: tuple[str, ...]


def _rows(text: str, fields: int) -> Iterator[list[str]]:
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        yield parts + [""] * (fields - len(parts))


def _number(text: str) -> int | None:
    return int(text) if text.isdecimal() else None


def parse_passwd(text: str) -> list[_Passwd]:
    return [_Passwd(row[0], uid, _number(row[3]) or 0, row[5])
            for row in _rows(text, 7) if (uid := _number(row[2])) is not None]


def parse_group(text: str) -> list[_Group]:
    return [_Group(row[0], gid, tuple(filter(None, row[3].split(","))))
            for row in _rows(text, 4) if (gid := _number(row[2])) is not None]


def _checked(number: int) -> int:
    if number > _MAX_ID:
        raise UserError(f"uids and gids must be in range 0-{_MAX_ID}")
    return number


def resolve_user(spec: str, passwd: str | None, group: str | None) -> ExecUser:
    """The ids a process started as `spec` runs with (None: the file does not exist)."""
    user_arg, _, group_arg = spec.partition(":")
    uid_arg = _number(user_arg)
    users = parse_passwd(passwd or "")
    matched = next((user for user in users
                    if (user.uid == uid_arg if uid_arg is not None else user.name == user_arg)),
                   None)
    if matched is not None:
        uid, gid, home, name = matched.uid, matched.gid, matched.home or "/", matched.name
    elif uid_arg is not None or user_arg == "":
        uid, gid, home, name = _checked(uid_arg or 0), 0, "/", ""
    else:
        raise UserError(f"unable to find user {user_arg}: no matching entries in passwd file")
    groups = parse_group(group or "")
    if group_arg:
        gid_arg = _number(group_arg)
        found = next((entry.gid for entry in groups
                      if (entry.gid == gid_arg if gid_arg is not None
                          else entry.name == group_arg)), None)
        if found is None and gid_arg is None:
            raise UserError(
                f"unable to find group {group_arg}: no matching entries in group file")
        gid = _checked(found if found is not None else gid_arg or 0)
        return ExecUser(uid, gid, (gid,), home)
    listed = (entry.gid for entry in groups if name and name in entry.members)
    return ExecUser(uid, gid, tuple(dict.fromkeys((gid, *listed))), home)


def user_names(passwd: str | None) -> dict[int, str]:
    """uid → the first name passwd gives it (what `ps` shows)."""
    names: dict[int, str] = {}
    for user in parse_passwd(passwd or ""):
        names.setdefault(user.uid, user.name)
    return names
