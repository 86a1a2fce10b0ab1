import pytest

from kubedock.engine import ImageStore, InvalidParameter, NoSuchImage, parse_reference


@pytest.mark.parametrize(
    ("text", "canonical", "familiar"),
    [
        ("redis", "docker.io/library/redis:latest", "redis:latest"),
        ("redis:7", "docker.io/library/redis:7", "redis:7"),
        ("library/redis:7", "docker.io/library/redis:7", "redis:7"),
        ("docker.io/library/redis:7", "docker.io/library/redis:7", "redis:7"),
        ("bitnami/redis:7", "docker.io/bitnami/redis:7", "bitnami/redis:7"),
        ("localhost:5000/foo:1", "localhost:5000/foo:1", "localhost:5000/foo:1"),
        ("ghcr.io/org/img", "ghcr.io/org/img:latest", "ghcr.io/org/img:latest"),
        (
            "busybox@sha256:" + "a" * 64,
            "docker.io/library/busybox@sha256:" + "a" * 64,
            "busybox@sha256:" + "a" * 64,
        ),
    ],
)
def test_references_normalise_like_docker(text: str, canonical: str, familiar: str) -> None:
    ref = parse_reference(text)
    assert ref.canonical == canonical
    assert ref.familiar == familiar


@pytest.mark.parametrize("text", ["", "UPPER:1", "redis:", "a//b", "redis:7 extra", ":7"])
def test_invalid_references(text: str) -> None:
    with pytest.raises(InvalidParameter, match="invalid reference format"):
        parse_reference(text)


def test_store_finds_by_any_spelling_and_by_id() -> None:
    store = ImageStore()
    image = store.add(parse_reference("redis:7"))
    assert store.get("docker.io/library/redis:7") is image
    assert store.get(image.ref.image_id[7:19]) is image
    with pytest.raises(NoSuchImage, match="No such image: redis:6"):
        store.get("redis:6")
    store.remove("redis:7")
    assert store.all() == []
