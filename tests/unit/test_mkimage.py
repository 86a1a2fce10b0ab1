"""build/images/mkimage.py: archives are `docker save`-shaped, self-consistent, reproducible."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import pytest

from kubedock.registry import host_platform_of_this_machine

MKIMAGE_PATH = Path(__file__).resolve().parents[2] / "build" / "images" / "mkimage.py"


def _load_mkimage() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mkimage", MKIMAGE_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["mkimage"] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


mkimage = _load_mkimage()

CONFIG = mkimage.ImageConfig(
    entrypoint=["/entry"],
    cmd=["serve", "--port", "80"],
    env=[mkimage.DEFAULT_PATH, "GREETING=hi"],
    working_dir="/srv",
    user="1000",
    exposed_ports=["80/tcp", "53/udp"],
    volumes=["/data"],
    labels={"b": "2", "a": "1"},
    stop_signal="SIGQUIT",
)


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "tool").write_bytes(b"#!/bin/sh\necho tool\n")
    (root / "bin" / "tool").chmod(0o755)
    (root / "bin" / "alias").symlink_to("tool")
    (root / "tmp").mkdir()
    (root / "tmp").chmod(0o1777)
    (root / "srv" / "data").mkdir(parents=True)
    (root / "srv" / "data" / "secret").write_text("s3cret")
    (root / "srv" / "data" / "secret").chmod(0o600)
    (root / "srv" / "readme").write_text("hello")
    (root / "Zeta").write_text("upper case sorts first")
    return root


def _members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {
            member.name: (tar.extractfile(member) or io.BytesIO()).read()
            for member in tar.getmembers()
            if member.isfile()
        }


def _write(tmp_path: Path, rootfs: Path, name: str = "image.tar") -> Path:
    out = tmp_path / name
    mkimage.write_image(out, rootfs, ["example.com/app:1"], CONFIG)
    return out


def test_archive_has_docker_save_layout(tmp_path: Path, rootfs: Path) -> None:
    out = tmp_path / "image.tar"
    written = mkimage.write_image(out, rootfs, ["example.com/app:1", "app:latest"], CONFIG)
    with tarfile.open(out) as tar:
        names = tar.getnames()
        assert all(member.mtime == 0 and member.uid == 0 for member in tar.getmembers())
    layer_dir = written.diff_id.removeprefix("sha256:")
    config_name = written.image_id.removeprefix("sha256:") + ".json"
    assert names == [
        "manifest.json",
        "repositories",
        config_name,
        layer_dir,
        f"{layer_dir}/VERSION",
        f"{layer_dir}/layer.tar",
    ]
    files = _members(out)
    assert json.loads(files["manifest.json"]) == [
        {
            "Config": config_name,
            "RepoTags": ["example.com/app:1", "app:latest"],
            "Layers": [f"{layer_dir}/layer.tar"],
        }
    ]
    assert json.loads(files["repositories"]) == {
        "example.com/app": {"1": layer_dir},
        "app": {"latest": layer_dir},
    }
    assert files[f"{layer_dir}/VERSION"] == b"1.0"


def test_digests_match_content(tmp_path: Path, rootfs: Path) -> None:
    out = tmp_path / "image.tar"
    written = mkimage.write_image(out, rootfs, ["app:1"], CONFIG)
    files = _members(out)
    config_name = written.image_id.removeprefix("sha256:") + ".json"
    config_blob = files[config_name]
    assert "sha256:" + hashlib.sha256(config_blob).hexdigest() == written.image_id
    layer = files[written.diff_id.removeprefix("sha256:") + "/layer.tar"]
    assert "sha256:" + hashlib.sha256(layer).hexdigest() == written.diff_id
    assert json.loads(config_blob)["rootfs"] == {"type": "layers", "diff_ids": [written.diff_id]}


def test_config_carries_runtime_settings(tmp_path: Path, rootfs: Path) -> None:
    written = mkimage.write_image(tmp_path / "image.tar", rootfs, ["app:1"], CONFIG)
    files = _members(tmp_path / "image.tar")
    document = json.loads(files[written.image_id.removeprefix("sha256:") + ".json"])
    # The host's programs go into images: the host's architecture, in Go's name for it.
    machine = host_platform_of_this_machine()
    assert (document["architecture"], document["os"]) == (machine.architecture, "linux")
    assert document["config"] == {
        "Entrypoint": ["/entry"],
        "Cmd": ["serve", "--port", "80"],
        "Env": [mkimage.DEFAULT_PATH, "GREETING=hi"],
        "WorkingDir": "/srv",
        "User": "1000",
        "ExposedPorts": {"53/udp": {}, "80/tcp": {}},
        "Volumes": {"/data": {}},
        "Labels": {"a": "1", "b": "2"},
        "StopSignal": "SIGQUIT",
    }


def test_unset_settings_stay_null_or_absent() -> None:
    config = mkimage.ImageConfig().to_json()
    assert config["Entrypoint"] is None and config["Cmd"] is None and config["Labels"] is None
    assert not {"ExposedPorts", "Volumes", "StopSignal"} & config.keys()


def test_layer_is_sorted_timeless_and_owned_by_root(tmp_path: Path, rootfs: Path) -> None:
    written = mkimage.write_image(tmp_path / "image.tar", rootfs, ["app:1"], CONFIG)
    layer = _members(tmp_path / "image.tar")[written.diff_id.removeprefix("sha256:") + "/layer.tar"]
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        members = {member.name: member for member in tar.getmembers()}
        names = list(members)
        assert tar.extractfile("srv/data/secret").read() == b"s3cret"  # type: ignore[union-attr]
    assert names == [
        "Zeta",
        "bin",
        "bin/alias",
        "bin/tool",
        "srv",
        "srv/data",
        "srv/data/secret",
        "srv/readme",
        "tmp",
    ]
    assert all(m.mtime == 0 and (m.uid, m.gid) == (0, 0) for m in members.values())
    assert members["bin/alias"].issym() and members["bin/alias"].linkname == "tool"
    assert members["bin/tool"].mode == 0o755
    assert members["srv/data/secret"].mode == 0o600
    assert members["tmp"].isdir() and members["tmp"].mode == 0o1777


def test_owners_apply_to_a_subtree(tmp_path: Path, rootfs: Path) -> None:
    written = mkimage.write_image(
        tmp_path / "image.tar", rootfs, ["app:1"], CONFIG, {"/srv/data": (999, 998), "srv": (5, 5)}
    )
    layer = _members(tmp_path / "image.tar")[written.diff_id.removeprefix("sha256:") + "/layer.tar"]
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        owners = {m.name: (m.uid, m.gid) for m in tar.getmembers()}
    assert owners["srv"] == owners["srv/readme"] == (5, 5)
    assert owners["srv/data"] == owners["srv/data/secret"] == (999, 998)
    assert owners["bin/tool"] == (0, 0)


def test_output_is_reproducible(tmp_path: Path, rootfs: Path) -> None:
    first = _write(tmp_path, rootfs, "first.tar").read_bytes()
    for path in rootfs.rglob("*"):
        os.utime(path, (1_700_000_000, 1_700_000_000), follow_symlinks=False)
    second = _write(tmp_path, rootfs, "second.tar").read_bytes()
    assert first == second


def test_content_changes_change_the_digests(tmp_path: Path, rootfs: Path) -> None:
    before = mkimage.write_image(tmp_path / "a.tar", rootfs, ["app:1"], CONFIG)
    (rootfs / "srv" / "readme").write_text("hello again")
    after = mkimage.write_image(tmp_path / "b.tar", rootfs, ["app:1"], CONFIG)
    assert before.diff_id != after.diff_id and before.image_id != after.image_id


def test_no_partial_file_is_left_behind(tmp_path: Path, rootfs: Path) -> None:
    _write(tmp_path, rootfs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image.tar", "rootfs"]


@pytest.mark.parametrize("tags", [[], ["no-tag"], ["localhost:5000/app"]])
def test_tags_must_be_name_colon_tag(tmp_path: Path, rootfs: Path, tags: list[str]) -> None:
    with pytest.raises(ValueError):
        mkimage.write_image(tmp_path / "image.tar", rootfs, tags, CONFIG)


def test_special_files_are_refused(tmp_path: Path, rootfs: Path) -> None:
    os.mkfifo(rootfs / "pipe")
    with pytest.raises(ValueError, match="pipe"):
        _write(tmp_path, rootfs)


def test_command_line(tmp_path: Path, rootfs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.tar"
    mkimage.main(
        [
            str(out),
            str(rootfs),
            "--tag=app:1",
            "--tag=app:latest",
            '--entrypoint=["/entry"]',
            "--env=A=1",
            "--expose=80/tcp",
            "--label=k=v=w",
            "--owner=srv=7",
            "--stop-signal=SIGTERM",
        ]
    )
    image_id = capsys.readouterr().out.strip()
    files = _members(out)
    assert json.loads(files["manifest.json"])[0]["RepoTags"] == ["app:1", "app:latest"]
    document = json.loads(files[image_id.removeprefix("sha256:") + ".json"])
    assert document["config"]["Env"] == [mkimage.DEFAULT_PATH, "A=1"]
    assert document["config"]["Labels"] == {"k": "v=w"}
    assert document["config"]["Entrypoint"] == ["/entry"]
    assert document["config"]["Cmd"] is None
