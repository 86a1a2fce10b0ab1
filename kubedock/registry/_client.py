"""A client of the OCI distribution API (registry v2) on httpx, with Docker's auth flows."""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from typing import Any

import attrs
import httpx

from ._auth import Challenge, Credentials, parse_challenge, token_from_response, token_url
from ._image import ImageConfig, parse_image_config
from ._manifest import (
    ACCEPTED,
    INDEXES,
    Manifest,
    ManifestError,
    Platform,
    digest_of,
    media_type_of,
    parse_json,
    parse_manifest,
    select_from_index,
)

DOCKER_HUB = "docker.io"
# Streamed blobs are handed on in pieces of about this size: each piece costs a few hops
# between tasks and threads downstream, whatever its size.
_CHUNK = 256 * 1024
_DOCKER_HUB_API = "https://registry-1.docker.io"


class RegistryError(Exception):
    """A registry's refusal or failure, with the registry's own code and text when it sent one."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code.lower().replace('_', ' ')}: {message}" if code else message)
        self.status = status
        self.code = code
        self.message = message


class Unreachable(Exception):
    """The registry could not be reached (connection refused, name unknown, connect timeout)."""


class Silent(Exception):
    """The registry took the connection, then sent (or took) nothing for too long."""


@attrs.frozen
class Repository:
    registry: str  # as references name it: docker.io, localhost:5000, ghcr.io
    path: str  # library/busybox

    @property
    def familiar(self) -> str:
        if self.registry == DOCKER_HUB:
            return self.path.removeprefix("library/")
        return f"{self.registry}/{self.path}"


@attrs.frozen
class ResolvedImage:
    repository: Repository
    digest: str  # what the reference names: an index's digest for a multi-platform image
    manifest: Manifest
    config: ImageConfig


def is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0].strip("[]") if not host.endswith("]") else host.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def endpoint(registry: str, mirrors: Mapping[str, str]) -> str:
    """The base URL of a registry: its mirror, Docker Hub's API host, else https (plain http on
    loopback, which Docker treats as an insecure registry)."""
    if registry in mirrors:
        return mirrors[registry].rstrip("/")
    if registry == DOCKER_HUB:
        return _DOCKER_HUB_API
    return ("http://" if is_loopback(registry) else "https://") + registry


CredentialLookup = Callable[[str], Credentials | None]


class RegistryClient:
    """One client for every registry: bearer tokens are cached per endpoint and scope."""

    def __init__(self, http: httpx.AsyncClient, *, mirrors: Mapping[str, str] | None = None,
                 credentials: CredentialLookup = lambda registry: None) -> None:
        self._http = http
        self.mirrors = dict(mirrors or {})
        self._credentials = credentials
        self._tokens: dict[tuple[str, str], str] = {}

    async def resolve(self, repository: Repository, reference: str, platform: Platform, *,
                      credentials: Credentials | None = None,
                      known: ResolvedImage | None = None) -> ResolvedImage:
        """The image `reference` (a tag or digest) names for `platform`: manifest and config.
        When it still names the `known` image, that is the answer (digests never change)."""
        data, content_type = await self._manifest(repository, reference, credentials)
        named = digest = digest_of(data)
        if known is not None and known.repository == repository and known.digest == named:
            return known
        if reference.startswith("sha256:") and digest != reference:
            raise ManifestError(f"manifest {reference} arrived with digest {digest}")
        document = parse_json(data, f"manifest {reference}")
        media_type = media_type_of(document, content_type)
        if media_type in INDEXES:
            chosen = select_from_index(document, platform)
            data, content_type = await self._manifest(repository, chosen.digest, credentials)
            digest = digest_of(data)
            if digest != chosen.digest:
                raise ManifestError(f"manifest {chosen.digest} arrived with digest {digest}")
            document = parse_json(data, f"manifest {chosen.digest}")
            media_type = media_type_of(document, content_type)
        manifest = parse_manifest(document, digest, media_type)
        config_data = await self.blob(repository, manifest.config.digest, credentials=credentials)
        return ResolvedImage(repository, named, manifest,
                             parse_image_config(config_data, manifest.config.digest))

    async def blob(self, repository: Repository, digest: str, *,
                   credentials: Credentials | None = None) -> bytes:
        response = await self._request("GET", repository, f"blobs/{digest}", "pull", credentials)
        if digest_of(response.content) != digest:
            raise ManifestError(f"blob {digest} arrived with another digest")
        return response.content

    @contextlib.asynccontextmanager
    async def blob_stream(self, repository: Repository, digest: str, *,
                          credentials: Credentials | None = None
                          ) -> AsyncIterator[AsyncIterator[bytes]]:
        """A blob's bytes as they arrive; its last piece is followed by a `ManifestError`
        when the whole has another digest."""
        response = await self._request("GET", repository, f"blobs/{digest}", "pull",
                                       credentials, stream=True)
        try:
            yield _checked(response.aiter_bytes(), digest)
        finally:
            await response.aclose()

    async def has_blob(self, repository: Repository, digest: str, *,
                       credentials: Credentials | None = None) -> bool:
        try:
            await self._request("HEAD", repository, f"blobs/{digest}", "pull,push", credentials)
        except RegistryError as error:
            if error.status == 404:
                return False
            raise
        return True

    async def push_blob(self, repository: Repository, digest: str, size: int,
                        content: AsyncIterable[bytes], *,
                        credentials: Credentials | None = None) -> None:
        """Uploads a blob in one PUT of a streamed body (the registry checks the digest)."""
        started = await self._request("POST", repository, "blobs/uploads/", "pull,push",
                                      credentials)
        location = started.headers.get("location", "")
        if not location:
            raise RegistryError(started.status_code, "", "blob upload started without a Location")
        url = httpx.URL(self._url(repository, "")).join(location)
        url = url.copy_merge_params({"digest": digest})
        await self._request("PUT", repository, "", "pull,push", credentials, url=url,
                            content=content, headers={"Content-Length": str(size),
                                                      "Content-Type": "application/octet-stream"})

    async def push_manifest(self, repository: Repository, reference: str, data: bytes,
                            media_type: str, *, credentials: Credentials | None = None) -> str:
        await self._request("PUT", repository, f"manifests/{reference}", "pull,push",
                            credentials, content=data, headers={"Content-Type": media_type})
        return digest_of(data)

    async def delete_tag(self, repository: Repository, tag: str, *,
                         credentials: Credentials | None = None) -> None:
        """Deletes a tag alone (a DELETE of the manifest by tag, as Distribution 3 takes it);
        the manifest and other tags stay."""
        await self._request("DELETE", repository, f"manifests/{tag}", "delete", credentials)

    async def manifest_digest(self, repository: Repository, reference: str, *,
                              credentials: Credentials | None = None) -> str | None:
        """The digest a tag names now, from a HEAD; None when the registry does not know it."""
        try:
            response = await self._request("HEAD", repository, f"manifests/{reference}", "pull",
                                           credentials, headers={"Accept": ACCEPTED})
        except RegistryError as error:
            if error.status == 404:
                return None
            raise
        digest: str | None = response.headers.get("docker-content-digest")
        return digest

    async def has_repository(self, repository: Repository, *,
                             credentials: Credentials | None = None) -> bool:
        """Whether the registry knows the repository (its tag list answers)."""
        try:
            await self._request("GET", repository, "tags/list?n=1", "pull", credentials)
        except RegistryError as error:
            if error.status in (401, 403, 404):
                return False
            raise
        return True

    async def manifest(self, repository: Repository, digest: str, *,
                       credentials: Credentials | None = None) -> tuple[bytes, str]:
        """A manifest's bytes as the registry holds them, and its media type."""
        data, content_type = await self._manifest(repository, digest, credentials)
        if digest_of(data) != digest:
            raise ManifestError(f"manifest {digest} arrived with another digest")
        return data, media_type_of(parse_json(data, f"manifest {digest}"), content_type)

    async def copy_blob(self, source: Repository, target: Repository, digest: str, size: int,
                        *, source_credentials: Credentials | None = None,
                        credentials: Credentials | None = None) -> bool:
        """Puts a blob of `source` into `target`, streamed through (memory stays bounded);
        says whether anything was copied (False: the target had it)."""
        if await self.has_blob(target, digest, credentials=credentials):
            return False
        response = await self._request("GET", source, f"blobs/{digest}", "pull",
                                       source_credentials, stream=True)
        try:
            await self.push_blob(target, digest, size, response.aiter_bytes(),
                                 credentials=credentials)
        finally:
            await response.aclose()
        return True

    async def _manifest(self, repository: Repository, reference: str,
                        credentials: Credentials | None) -> tuple[bytes, str]:
        response = await self._request("GET", repository, f"manifests/{reference}", "pull",
                                       credentials, headers={"Accept": ACCEPTED})
        return response.content, response.headers.get("content-type", "")

    def _url(self, repository: Repository, tail: str) -> str:
        return f"{endpoint(repository.registry, self.mirrors)}/v2/{repository.path}/{tail}"

    async def _request(self, method: str, repository: Repository, tail: str, actions: str,
                       credentials: Credentials | None, *, url: httpx.URL | None = None,
                       content: bytes | AsyncIterable[bytes] | None = None,
                       headers: Mapping[str, str] | None = None,
                       stream: bool = False) -> httpx.Response:
        """One request with the registry's auth flow. With `stream`, a successful response's
        body is left unread: the caller reads and closes it."""
        target = url or httpx.URL(self._url(repository, tail))
        base = endpoint(repository.registry, self.mirrors)
        scope = f"repository:{repository.path}:{actions}"
        credentials = credentials or self._credentials(repository.registry)
        request_headers = dict(headers or {})
        token = self._tokens.get((base, scope))
        if token:
            request_headers["Authorization"] = token
        response = await self._send(method, target, content, request_headers, stream)
        if response.status_code == 401:
            await response.aread()
            challenge = parse_challenge(response.headers.get("www-authenticate", ""))
            authorization = await self._authorize(challenge, scope, credentials)
            if authorization and authorization != token:
                # A streamed body cannot be sent twice: the first try of a push is a POST or a
                # HEAD, which carry none, so tokens are in place before any body goes out.
                self._tokens[(base, scope)] = authorization
                request_headers["Authorization"] = authorization
                response = await self._send(method, target, content, request_headers, stream)
        if response.is_success:
            return response
        try:
            await response.aread()
        finally:
            await response.aclose()
        raise _registry_error(response)

    async def _send(self, method: str, url: httpx.URL, content: bytes | AsyncIterable[bytes] |
                    None, headers: Mapping[str, str], stream: bool) -> httpx.Response:
        try:
            request = self._http.build_request(method, url, content=content, headers=headers)
            return await self._http.send(request, stream=stream)
        except (httpx.ReadTimeout, httpx.WriteTimeout) as error:
            raise Silent(f"{url.scheme}://{url.netloc.decode()}: no answer "
                         f"({type(error).__name__})") from None
        except httpx.TransportError as error:
            reason = str(error) or type(error).__name__
            raise Unreachable(f"{url.scheme}://{url.netloc.decode()}: {reason}") from None

    async def _authorize(self, challenge: Challenge | None, scope: str,
                         credentials: Credentials | None) -> str | None:
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            return credentials.basic() if credentials else None
        if challenge.scheme != "bearer":
            return None
        url = token_url(challenge, scope)
        if url is None:
            return None
        headers = {"Authorization": credentials.basic()} if credentials and credentials.username \
            else {}
        try:
            response = await self._http.get(url, headers=headers)
        except httpx.TransportError as error:
            raise Unreachable(f"token service {url}: {error or type(error).__name__}") from None
        if not response.is_success:
            raise _registry_error(response)
        try:
            token = token_from_response(response.json())
        except ValueError:
            token = None
        return f"Bearer {token}" if token else None


async def _checked(chunks: AsyncIterator[bytes], digest: str) -> AsyncIterator[bytes]:
    """`chunks` joined into pieces of about `_CHUNK`, hashed on the way."""
    hashed = hashlib.sha256()
    pending: list[bytes] = []
    size = 0
    async for chunk in chunks:
        hashed.update(chunk)
        pending.append(chunk)
        size += len(chunk)
        if size >= _CHUNK:
            yield b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)
    if f"sha256:{hashed.hexdigest()}" != digest:
        raise ManifestError(f"blob {digest} arrived with another digest")


def _registry_error(response: httpx.Response) -> RegistryError:
    """The first error of a registry's error body (``{"errors": [{code, message}]}``)."""
    try:
        document: Any = json.loads(response.content) if response.content else {}
    except ValueError:
        document = {}
    errors = document.get("errors") if isinstance(document, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        return RegistryError(response.status_code, str(first.get("code", "")),
                             str(first.get("message", "")))
    return RegistryError(response.status_code, "", response.reason_phrase or
                         f"status {response.status_code}")
