"""Registry credentials and the HTTP authentication challenges registries answer with (pure)."""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import attrs

# What `docker login` writes for Docker Hub, and the other spellings clients use for it.
DOCKER_HUB_AUTH_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io",
                        "registry-1.docker.io", "https://registry-1.docker.io")


@attrs.frozen(repr=False)
class Credentials:
    username: str = ""
    password: str = ""
    identity_token: str = ""  # an OAuth refresh token, from `docker login` with a token

    def __repr__(self) -> str:  # never log a secret
        return f"Credentials(username={self.username!r})"

    def basic(self) -> str:
        pair = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode()


@attrs.frozen
class Challenge:
    """One ``WWW-Authenticate`` challenge: ``Bearer realm="…",service="…",scope="…"``."""

    scheme: str  # lowercase
    params: Mapping[str, str]


_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PARAM = re.compile(rf'\s*({_TOKEN})\s*=\s*(?:"((?:[^"\\]|\\.)*)"|({_TOKEN}))\s*(?:,|$)')


def parse_challenge(header: str) -> Challenge | None:
    """The challenge of a registry's 401, or None when the header is not one we can answer."""
    match = re.match(rf"\s*({_TOKEN})(?:\s+|$)", header)
    if match is None:
        return None
    params: dict[str, str] = {}
    rest = header[match.end():]
    position = 0
    while position < len(rest):
        param = _PARAM.match(rest, position)
        if param is None or param.end() == position:
            return None
        quoted, plain = param.group(2), param.group(3)
        value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else plain
        params[param.group(1).lower()] = value
        position = param.end()
    return Challenge(match.group(1).lower(), params)


def token_url(challenge: Challenge, scope: str) -> str | None:
    """Where to fetch a bearer token for `scope` (``repository:library/redis:pull``)."""
    realm = challenge.params.get("realm")
    if not realm:
        return None
    query = {"scope": scope}
    if "service" in challenge.params:
        query = {"service": challenge.params["service"], **query}
    return realm + ("&" if "?" in realm else "?") + urlencode(query)


def token_from_response(document: Any) -> str | None:
    """The token of a token service's answer (``token``, or OAuth's ``access_token``)."""
    if not isinstance(document, dict):
        return None
    token = document.get("token") or document.get("access_token")
    return token if isinstance(token, str) and token else None


def decode_registry_auth(header: str) -> Credentials | None:
    """The ``X-Registry-Auth`` header: base64url JSON (padding optional), as clients send it.

    Clients send ``{}`` or an empty header for anonymous pulls; anything undecodable is
    anonymous too, as Docker treats it."""
    text = header.strip()
    if not text:
        return None
    try:
        document = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, binascii.Error):
        return None
    if not isinstance(document, dict):
        return None
    credentials = Credentials(
        username=_text(document.get("username")),
        password=_text(document.get("password")),
        identity_token=_text(document.get("identitytoken")),
    )
    return credentials if credentials != Credentials() else None


def registry_key(host: str) -> str:
    """How a registry is named in credential stores: Docker Hub under its historic URL."""
    return DOCKER_HUB_AUTH_KEYS[0] if host in DOCKER_HUB_AUTH_KEYS else host


def credentials_from_config(document: Any, host: str) -> Credentials | None:
    """A registry's entry of a Docker ``config.json`` (or a ``.dockerconfigjson`` secret).

    Keys may be bare hosts or URLs (``https://host/v1/``); Docker Hub's go by any of its names.
    """
    auths = document.get("auths") if isinstance(document, dict) else None
    if not isinstance(auths, dict):
        return None
    wanted = {registry_key(host)} | (set(DOCKER_HUB_AUTH_KEYS)
                                     if registry_key(host) == DOCKER_HUB_AUTH_KEYS[0] else set())
    for key, entry in auths.items():
        if _host_of(key) in {_host_of(w) for w in wanted} and isinstance(entry, dict):
            return _entry_credentials(entry)
    return None


def docker_config_json(host: str, credentials: Credentials) -> bytes:
    """A Docker config holding one registry's credentials, as `docker login` writes it (the
    form of a ``.dockerconfigjson`` Secret the kubelet reads)."""
    entry = {"username": credentials.username, "password": credentials.password,
             "auth": base64.b64encode(
                 f"{credentials.username}:{credentials.password}".encode()).decode()}
    if credentials.identity_token:
        entry["identitytoken"] = credentials.identity_token
    return json.dumps({"auths": {registry_key(host): entry}}, separators=(",", ":")).encode()


def first_credentials(*lookups: Callable[[str], Credentials | None]
                      ) -> Callable[[str], Credentials | None]:
    """A lookup answering with the first of `lookups` that knows the registry."""

    def lookup(host: str) -> Credentials | None:
        return next((found for found in (each(host) for each in lookups) if found), None)

    return lookup


def documents_lookup(documents: list[Any]) -> Callable[[str], Credentials | None]:
    """Credentials from Docker configs held in memory (the namespace's pull secrets)."""
    def lookup(host: str) -> Credentials | None:
        return next((found for found in (credentials_from_config(document, host)
                                          for document in documents) if found), None)

    return lookup


def _host_of(key: str) -> str:
    return re.sub(r"^[a-z]+://", "", key).split("/", 1)[0]


def _entry_credentials(entry: Mapping[str, Any]) -> Credentials | None:
    username, password = _text(entry.get("username")), _text(entry.get("password"))
    encoded = _text(entry.get("auth"))
    if encoded:
        try:
            username, _, password = base64.b64decode(encoded).decode().partition(":")
        except (ValueError, binascii.Error):
            return None
    credentials = Credentials(username, password, _text(entry.get("identitytoken")))
    return credentials if credentials != Credentials() else None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def docker_config_lookup(path: str) -> Callable[[str], Credentials | None]:
    """Credentials of a registry from a Docker ``config.json``, read at each lookup so that a
    `docker login` meanwhile counts; a missing or unreadable file means anonymous."""

    def lookup(host: str) -> Credentials | None:
        try:
            with open(path, "rb") as file:
                document = json.load(file)
        except (OSError, ValueError):
            return None
        return credentials_from_config(document, host)

    return lookup


def docker_config_path(environ: Mapping[str, str]) -> str:
    """Where the Docker CLI keeps its config.json: ``$DOCKER_CONFIG``, else ``~/.docker``."""
    directory = environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return os.path.join(directory, "config.json")
