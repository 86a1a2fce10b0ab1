"""The registry client's pure parts: challenges, credentials, manifests, image configs."""

import base64
import json

import pytest

from kubedock.registry import (
    DOCKER_HUB,
    Challenge,
    Credentials,
    ManifestError,
    Platform,
    credentials_from_config,
    decode_registry_auth,
    endpoint,
    inspect_config,
    normalise_platform,
    parse_challenge,
    parse_image_config,
    select_from_index,
    token_url,
)
from kubedock.registry._archive import parse_archive_manifest
from kubedock.registry._manifest import (
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    digest_of,
    image_manifest,
    media_type_of,
    parse_manifest,
)

HUB = ('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
       'scope="repository:library/busybox:pull"')


def test_docker_hub_challenge() -> None:
    assert parse_challenge(HUB) == Challenge("bearer", {
        "realm": "https://auth.docker.io/token", "service": "registry.docker.io",
        "scope": "repository:library/busybox:pull"})


@pytest.mark.parametrize(("header", "expected"), [
    ('Basic realm="Registry Realm"', Challenge("basic", {"realm": "Registry Realm"})),
    ("Basic", Challenge("basic", {})),
    ('Bearer realm="https://x/t?a=1", error="invalid_token"',
     Challenge("bearer", {"realm": "https://x/t?a=1", "error": "invalid_token"})),
    ('Bearer realm="a \\"quoted\\" realm"', Challenge("bearer", {"realm": 'a "quoted" realm'})),
    ("Bearer realm=plain", Challenge("bearer", {"realm": "plain"})),
])
def test_challenges(header: str, expected: Challenge) -> None:
    assert parse_challenge(header) == expected


@pytest.mark.parametrize("header", ["", "   ", 'Bearer realm="unterminated', "Bearer =x",
                                    'Bearer realm="a" junk'])
def test_unanswerable_challenges(header: str) -> None:
    assert parse_challenge(header) is None


def test_token_url_carries_service_and_scope() -> None:
    challenge = parse_challenge(HUB)
    assert challenge is not None
    assert token_url(challenge, "repository:library/redis:pull") == (
        "https://auth.docker.io/token?service=registry.docker.io"
        "&scope=repository%3Alibrary%2Fredis%3Apull")
    assert token_url(Challenge("bearer", {"realm": "https://t/x?a=1"}), "s") == \
        "https://t/x?a=1&scope=s"
    assert token_url(Challenge("bearer", {}), "s") is None


def _b64url(document: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


def test_x_registry_auth() -> None:
    header = _b64url({"username": "u", "password": "p", "serveraddress": "r.example"})
    assert decode_registry_auth(header) == Credentials("u", "p")
    assert decode_registry_auth(_b64url({"identitytoken": "t"})) == Credentials(
        identity_token="t")
    for anonymous in ("", _b64url({}), "e30=", "!!!", _b64url([1])):
        assert decode_registry_auth(anonymous) is None


def test_credentials_never_show_the_password() -> None:
    assert "secret" not in repr(Credentials("u", "secret"))
    assert Credentials("u", "p").basic() == "Basic dTpw"


def test_docker_config_entries() -> None:
    config = {"auths": {
        "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:pw:with:colons").decode()},
        "ghcr.io": {"username": "g", "password": "h"},
        "https://r.example:5000/v2/": {"auth": base64.b64encode(b"r:s").decode()},
    }}
    assert credentials_from_config(config, DOCKER_HUB) == Credentials("hub", "pw:with:colons")
    assert credentials_from_config(config, "ghcr.io") == Credentials("g", "h")
    assert credentials_from_config(config, "r.example:5000") == Credentials("r", "s")
    assert credentials_from_config(config, "quay.io") is None
    assert credentials_from_config({"auths": {"docker.io": {"auth": "bad!"}}}, DOCKER_HUB) is None
    assert credentials_from_config([], DOCKER_HUB) is None


def test_endpoints() -> None:
    assert endpoint(DOCKER_HUB, {}) == "https://registry-1.docker.io"
    assert endpoint(DOCKER_HUB, {DOCKER_HUB: "http://127.0.0.1:5000/"}) == \
        "http://127.0.0.1:5000"
    assert endpoint("localhost:5000", {}) == "http://localhost:5000"
    assert endpoint("127.0.0.1:5000", {}) == "http://127.0.0.1:5000"
    assert endpoint("[::1]:5000", {}) == "http://[::1]:5000"
    assert endpoint("ghcr.io", {}) == "https://ghcr.io"


def _entry(digest: str, os: str, architecture: str, variant: str | None = None) -> dict:
    platform = {"os": os, "architecture": architecture}
    if variant:
        platform["variant"] = variant
    return {"mediaType": OCI_MANIFEST, "digest": "sha256:" + digest * 64, "size": 1,
            "platform": platform}


INDEX = {"mediaType": OCI_INDEX, "manifests": [
    _entry("0", "unknown", "unknown"),  # an attestation
    _entry("1", "linux", "amd64"),
    _entry("2", "linux", "arm", "v6"),
    _entry("3", "linux", "arm", "v7"),
    _entry("4", "linux", "arm64", "v8"),
    _entry("5", "windows", "amd64"),
]}


@pytest.mark.parametrize(("wanted", "digest"), [
    (Platform("linux", "amd64"), "1"),
    (normalise_platform("linux", "x86_64"), "1"),
    (normalise_platform("linux", "aarch64"), "4"),
    (Platform("linux", "arm", "v7"), "3"),
    (Platform("windows", "amd64"), "5"),
])
def test_index_selection(wanted: Platform, digest: str) -> None:
    assert select_from_index(INDEX, wanted).digest == "sha256:" + digest * 64


def test_index_selection_prefers_no_variant_over_another() -> None:
    index = {"manifests": [_entry("1", "linux", "arm", "v6"), _entry("2", "linux", "arm")]}
    assert select_from_index(index, Platform("linux", "arm", "v7")).digest == "sha256:" + "2" * 64


def test_index_without_the_platform() -> None:
    with pytest.raises(ManifestError, match="no matching manifest for linux/s390x"):
        select_from_index(INDEX, Platform("linux", "s390x"))


def test_media_types() -> None:
    assert media_type_of({"mediaType": DOCKER_MANIFEST_LIST}, OCI_MANIFEST) == \
        DOCKER_MANIFEST_LIST
    assert media_type_of({"manifests": []}, "") == OCI_INDEX
    assert media_type_of({}, OCI_MANIFEST + "; charset=utf-8") == OCI_MANIFEST


def test_image_manifest_round_trip() -> None:
    config = b'{"architecture":"amd64"}'
    data = image_manifest(config, [("sha256:" + "a" * 64, 10)], OCI_MANIFEST)
    assert data == (
        b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
        b'"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"'
        + digest_of(config).encode() + b'","size":24},"layers":[{"mediaType":'
        b'"application/vnd.oci.image.layer.v1.tar","digest":"sha256:' + b"a" * 64
        + b'","size":10}]}')
    manifest = parse_manifest(json.loads(data), digest_of(data), OCI_MANIFEST)
    assert manifest.config.digest == digest_of(config)
    assert [layer.size for layer in manifest.layers] == [10]
    with pytest.raises(ManifestError):
        parse_manifest({"config": {"digest": "md5:x", "size": 1}}, "d", OCI_MANIFEST)


CONFIG = json.dumps({
    "architecture": "amd64", "os": "linux", "created": "2024-01-02T03:04:05Z",
    "config": {"Env": ["PATH=/bin", "A=1"], "Cmd": ["sh"], "WorkingDir": "/data",
               "User": "999", "ExposedPorts": {"6379/tcp": {}},
               "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 1000000000},
               "Labels": {"k": "v"}, "StopSignal": "SIGQUIT", "Volumes": {"/data": {}}},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "b" * 64]},
}).encode()


def test_image_config() -> None:
    image = parse_image_config(CONFIG, digest_of(CONFIG))
    assert (image.id, image.os, image.architecture) == (digest_of(CONFIG), "linux", "amd64")
    assert image.env == ("PATH=/bin", "A=1")
    assert (image.cmd, image.entrypoint) == (("sh",), None)
    assert (image.working_dir, image.user, image.stop_signal) == ("/data", "999", "SIGQUIT")
    assert image.exposed_ports == ("6379/tcp",)
    assert image.healthcheck == {"Test": ["CMD-SHELL", "true"], "Interval": 1000000000}
    assert image.volumes == ("/data",)
    assert image.diff_ids == ("sha256:" + "b" * 64,)


def test_inspect_config_has_docker_zero_values_and_omits_the_omitempty_ones() -> None:
    bare = parse_image_config(b'{"config": {"Cmd": ["sh"]}}', "sha256:x")
    assert inspect_config(bare) == {
        "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False,
        "AttachStdout": False, "AttachStderr": False, "Tty": False, "OpenStdin": False,
        "StdinOnce": False, "Env": None, "Cmd": ["sh"], "Image": "", "Volumes": None,
        "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": None}
    full = inspect_config(parse_image_config(CONFIG, "sha256:x"))
    assert full["StopSignal"] == "SIGQUIT" and full["ExposedPorts"] == {"6379/tcp": {}}


@pytest.mark.parametrize("data", [b"[]", b"not json", b'{"config": 1}'])
def test_odd_configs(data: bytes) -> None:
    if data == b'{"config": 1}':
        assert parse_image_config(data, "sha256:x").defaults == {}
    else:
        with pytest.raises(ManifestError):
            parse_image_config(data, "sha256:x")


def test_archive_manifest() -> None:
    data = b'[{"Config":"c.json","RepoTags":["busybox:1.36"],"Layers":["l/layer.tar"]}]'
    [image] = parse_archive_manifest(data)
    assert (image.config, image.layers, image.repo_tags) == (
        "c.json", ("l/layer.tar",), ("busybox:1.36",))
    assert parse_archive_manifest(b'[{"Config":"c","Layers":[],"RepoTags":null}]')[0] \
        .repo_tags == ()
    for bad in (b"{}", b"[1]", b"x"):
        with pytest.raises(ManifestError):
            parse_archive_manifest(bad)
