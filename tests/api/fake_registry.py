"""An in-memory registry speaking the distribution API, with Docker Hub's token flow, served
to the registry client through httpx's mock transport."""

from __future__ import annotations

import base64
import gzip
import json
import re

import attrs
import httpx

from kubedock.registry._manifest import OCI_INDEX, OCI_MANIFEST, digest_of, image_manifest

TOKEN = "Bearer tok"


@attrs.define
class FakeRegistry:
    blobs: dict[str, bytes] = attrs.field(factory=dict)
    manifests: dict[tuple[str, str], tuple[bytes, str]] = attrs.field(factory=dict)
    private: dict[str, str] = attrs.field(factory=dict)  # repository → "user:password"
    requests: list[str] = attrs.field(factory=list)
    deletes: bool = True  # whether tags may be deleted (Distribution's storage.delete)

    def add_image(self, repository: str, tag: str, config: dict[str, object],
                  architecture: str = "amd64", *, layers: list[bytes] | None = None,
                  gzipped: bool = False) -> str:
        """Adds an image (one made-up layer unless `layers` are given, held gzipped if asked);
        returns its manifest digest."""
        layers = layers or [f"{repository}:{tag}:{architecture}".encode()]
        config_data = json.dumps({"architecture": architecture, "os": "linux",
                                  "created": "2024-05-01T10:00:00Z",
                                  "rootfs": {"type": "layers",
                                             "diff_ids": [digest_of(layer) for layer in layers]},
                                  "config": config}).encode()
        held = [gzip.compress(layer) if gzipped else layer for layer in layers]
        for blob in (*held, config_data):
            self.blobs[digest_of(blob)] = blob
        document = json.loads(image_manifest(
            config_data, [(digest_of(blob), len(blob)) for blob in held], OCI_MANIFEST))
        if gzipped:
            for layer in document["layers"]:
                layer["mediaType"] += "+gzip"
        manifest = json.dumps(document).encode()
        self._put(repository, tag, manifest, OCI_MANIFEST)
        return digest_of(manifest)

    def add_index(self, repository: str, tag: str, platforms: dict[str, str]) -> str:
        """An index of per-architecture manifests (architecture → manifest digest)."""
        index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": digest,
             "size": len(self.manifests[(repository, digest)][0]),
             "platform": {"os": "linux", "architecture": architecture}}
            for architecture, digest in platforms.items()]}).encode()
        self._put(repository, tag, index, OCI_INDEX)
        return digest_of(index)

    def _put(self, repository: str, tag: str, data: bytes, media_type: str) -> None:
        self.manifests[(repository, tag)] = (data, media_type)
        self.manifests[(repository, digest_of(data))] = (data, media_type)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(f"{request.method} {request.url.path}")
        if request.url.path == "/token":
            return self._token(request)
        upload = re.fullmatch(r"/v2/(.+)/blobs/uploads/(\w*)", request.url.path)
        if upload is not None:
            if not request.headers.get("authorization", "").startswith(TOKEN):
                return httpx.Response(401, headers={"WWW-Authenticate": (
                    'Bearer realm="https://registry.test/token",service="registry.test"')})
            if request.method == "POST":
                return httpx.Response(202, headers={
                    "Location": f"/v2/{upload.group(1)}/blobs/uploads/u{len(self.requests)}"})
            data = await request.aread()
            if digest_of(data) != request.url.params["digest"]:
                return _error(400, "DIGEST_INVALID", "provided digest did not match")
            self.blobs[digest_of(data)] = data
            return httpx.Response(201)
        match = re.fullmatch(r"/v2/(.+)/(manifests|blobs|tags)/([^/]+)", request.url.path)
        if match is None:
            return _error(404, "NOT_FOUND", "no route")
        repository, kind, reference = match.groups()
        authorization = request.headers.get("authorization", "")
        if not authorization.startswith(TOKEN):
            return httpx.Response(401, headers={"WWW-Authenticate": (
                'Bearer realm="https://registry.test/token",service="registry.test",'
                f'scope="repository:{repository}:pull"')}, json={"errors": [
                    {"code": "UNAUTHORIZED", "message": "authentication required"}]})
        if repository in self.private and authorization != f"{TOKEN}-granted":
            return _error(401, "UNAUTHORIZED", "authentication required")
        if kind == "tags":
            tags = [tag for repo, tag in self.manifests if repo == repository
                    and not tag.startswith("sha256:")]
            if not tags:
                return _error(404, "NAME_UNKNOWN", "repository name not known to registry")
            return httpx.Response(200, json={"name": repository, "tags": tags})
        if kind == "manifests" and request.method == "DELETE":
            if not self.deletes:
                return _error(405, "UNSUPPORTED", "The operation is unsupported.")
            if self.manifests.pop((repository, reference), None) is None:
                return _error(404, "MANIFEST_UNKNOWN", "manifest unknown")
            return httpx.Response(202)
        if kind == "manifests" and request.method == "PUT":
            self._put(repository, reference, await request.aread(),
                      request.headers["content-type"])
            return httpx.Response(201)
        if kind == "blobs":
            if reference not in self.blobs:
                return _error(404, "BLOB_UNKNOWN", "blob unknown to registry")
            return httpx.Response(200, content=self.blobs[reference])
        if not any(repo == repository for repo, _ in self.manifests):
            return _error(404, "NAME_UNKNOWN", "repository name not known to registry")
        if (repository, reference) not in self.manifests:
            return _error(404, "MANIFEST_UNKNOWN", "manifest unknown")
        data, media_type = self.manifests[(repository, reference)]
        return httpx.Response(200, content=data, headers={"Content-Type": media_type})

    def _token(self, request: httpx.Request) -> httpx.Response:
        scope = request.url.params.get("scope", "")
        repository = scope.split(":")[1]
        wanted = "Basic " + base64.b64encode(self.private.get(repository, "").encode()).decode()
        if repository in self.private and request.headers.get("authorization") == wanted:
            return httpx.Response(200, json={"token": "tok-granted"})
        # As Docker Hub does, anyone gets a token; it grants only what is public.
        return httpx.Response(200, json={"access_token": "tok"})


def _error(status: int, code: str, message: str) -> httpx.Response:
    return httpx.Response(status, json={"errors": [{"code": code, "message": message}]})
