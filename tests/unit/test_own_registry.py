import pytest

from kubedock._cli import build_parser, config_from_args
from kubedock.engine import OwnRegistry, parse_own_registry, parse_reference, stored_reference

OWN = OwnRegistry("127.0.0.1:5000", "kd")


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:5000", OwnRegistry("127.0.0.1:5000", "")),
    ("127.0.0.1:5000/kd/", OwnRegistry("127.0.0.1:5000", "kd")),
    ("registry.example.com/ci/kubedock", OwnRegistry("registry.example.com", "ci/kubedock")),
    ("localhost/x", OwnRegistry("localhost", "x")),
    ("http://registry.kube-system.svc:5000/kd",
     OwnRegistry("registry.kube-system.svc:5000", "kd", "http://registry.kube-system.svc:5000")),
    ("https://registry.example.com", OwnRegistry("registry.example.com", "",
                                                 "https://registry.example.com")),
])
def test_the_registry_is_a_host_and_a_prefix(text: str, expected: OwnRegistry) -> None:
    assert parse_own_registry(text) == expected


@pytest.mark.parametrize("text", [
    "registry",  # no dot, port or localhost: the nodes would read it as a Docker Hub user
    "myregistry/kd", "127.0.0.1:5000/KD", "ftp://127.0.0.1:5000", "127.0.0.1:5000/a:1", "",
])
def test_what_is_not_a_registry_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_own_registry(text)


@pytest.mark.parametrize(("name", "stored"), [
    ("myapp", "127.0.0.1:5000/kd/docker.io/library/myapp:latest"),
    ("team/app:2", "127.0.0.1:5000/kd/docker.io/team/app:2"),
    ("localhost/tc/built:1", "127.0.0.1:5000/kd/localhost/tc/built:1"),
    ("localhost:5000/x:2", "127.0.0.1:5000/kd/localhost_5000/x:2"),
    ("Registry.Example.com/a/b:3", "127.0.0.1:5000/kd/registry.example.com/a/b:3"),
    ("127.0.0.1:5000/kd/app:1", "127.0.0.1:5000/kd/127.0.0.1_5000/kd/app:1"),
])
def test_an_image_is_kept_under_its_registry_and_path(name: str, stored: str) -> None:
    ref = stored_reference(parse_reference(name), OWN)
    assert ref.canonical == stored
    assert parse_reference(ref.canonical) == ref  # a name the nodes read the same way


def test_without_a_prefix_the_names_start_at_the_root() -> None:
    ref = stored_reference(parse_reference("myapp:1"), OwnRegistry("localhost", ""))
    assert ref.canonical == "localhost/docker.io/library/myapp:1"


def test_the_flag_and_its_variable() -> None:
    def parsed(argv: list[str], environ: dict[str, str]) -> OwnRegistry | None:
        return config_from_args(build_parser().parse_args(["server", *argv]),
                                environ).own_registry

    assert parsed([], {}) is None
    assert parsed([], {"REGISTRY": "127.0.0.1:5000/env"}) == OwnRegistry("127.0.0.1:5000", "env")
    assert parsed(["--registry", "127.0.0.1:5000/flag"], {"REGISTRY": "127.0.0.1:5000/env"}) \
        == OwnRegistry("127.0.0.1:5000", "flag")
    with pytest.raises(SystemExit):
        parsed(["--registry", "nohost"], {})
