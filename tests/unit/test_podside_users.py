"""Docker's --user specs resolved against an image's passwd and group files (libcontainer's
rules, checked against the reference engine with busybox)."""

from __future__ import annotations

import pytest

from kubedock.podside import ExecUser, UserError, resolve_user

PASSWD = """root:x:0:0:root:/root:/bin/sh
# a comment, then a blank line

nobody:x:65534:65534:nobody:/nonexistent:/bin/false
user:x:1000:1000:user:/home/user:/bin/sh
app:x:1001:1001::/srv/app:/bin/false
broken:x:notanumber:0::/:/bin/false
"""
GROUP = """root:x:0:
nobody:x:65534:
user:x:1000:
app:x:1001:
audio:x:29:app,user
video:x:44:app
"""


@pytest.mark.parametrize(("spec", "expected"), [
    ("root", ExecUser(0, 0, (0,), "/root")),
    ("0", ExecUser(0, 0, (0,), "/root")),
    ("nobody", ExecUser(65534, 65534, (65534,), "/nonexistent")),
    ("1000:1000", ExecUser(1000, 1000, (1000,), "/home/user")),
    # A name keeps the groups that list it; an explicit group replaces them.
    ("app", ExecUser(1001, 1001, (1001, 29, 44), "/srv/app")),
    ("1001", ExecUser(1001, 1001, (1001, 29, 44), "/srv/app")),
    ("app:video", ExecUser(1001, 44, (44,), "/srv/app")),
    ("app:4242", ExecUser(1001, 4242, (4242,), "/srv/app")),
    # A uid the image does not know runs with group 0 and / as home.
    ("4242", ExecUser(4242, 0, (0,), "/")),
    ("4242:audio", ExecUser(4242, 29, (29,), "/")),
])
def test_resolves_like_docker(spec: str, expected: ExecUser) -> None:
    assert resolve_user(spec, PASSWD, GROUP) == expected


@pytest.mark.parametrize(("spec", "message"), [
    ("nosuch", "unable to find user nosuch: no matching entries in passwd file"),
    ("broken", "unable to find user broken: no matching entries in passwd file"),
    ("0:nosuch", "unable to find group nosuch: no matching entries in group file"),
    ("4294967296", "uids and gids must be in range 0-2147483647"),
])
def test_refuses_like_docker(spec: str, message: str) -> None:
    with pytest.raises(UserError, match=f"^{message}$"):
        resolve_user(spec, PASSWD, GROUP)


def test_an_image_without_passwd_takes_numbers_only() -> None:
    assert resolve_user("1000:1000", None, None) == ExecUser(1000, 1000, (1000,), "/")
    with pytest.raises(UserError, match="unable to find user root"):
        resolve_user("root", None, None)
