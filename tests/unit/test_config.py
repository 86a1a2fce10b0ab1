from collections.abc import Callable
from pathlib import Path

import pytest

from kubedock._cli import build_parser, config_from_args
from kubedock._config import Config, parse_duration, parse_key_values, split_host_port


def config(argv: list[str], environ: dict[str, str] | None = None) -> Config:
    return config_from_args(build_parser().parse_args(["server", *argv]), environ or {})


def test_defaults_listen_on_loopback_only() -> None:
    defaults = config([])
    assert defaults.listen_addr == "127.0.0.1:2475"
    assert defaults.binds == ["127.0.0.1:2475"]
    assert defaults.expose == "pod-ip"
    assert defaults.timeout == 60
    assert defaults.fail_fast_after == 30
    assert defaults.pod_name_prefix == "kubedock"


def test_flag_wins_over_environment() -> None:
    result = config(["--namespace", "flag"], {"NAMESPACE": "env", "TIME_OUT": "2m"})
    assert result.namespace == "flag"
    assert result.timeout == 120


def test_fail_fast_after_is_a_go_duration() -> None:
    assert config([], {"FAIL_FAST_AFTER": "2m"}).fail_fast_after == 120
    assert config(["--fail-fast-after", "0"], {"FAIL_FAST_AFTER": "2m"}).fail_fast_after == 0


def test_go_kubedock_environment_names() -> None:
    result = config(
        [],
        {
            "SERVER_LISTEN_ADDR": ":2476",
            "PULL_POLICY": "Never",
            "K8S_REQUEST_CPU": "10m,1",
            "K8S_NODE_SELECTOR": "a=b,c=d",
            "K8S_LABEL_TEAM": "x",
            "K8S_ANNOTATION_OWNER": "y",
            "K8S_ACTIVE_DEADLINE_SECONDS": "-1",
            "IMAGE_PULL_SECRETS": "s1, s2",
        },
    )
    assert result.binds == ["0.0.0.0:2476"]
    assert result.pull_policy == "never"
    assert result.request_cpu == "10m,1"
    assert result.node_selector == {"a": "b", "c": "d"}
    assert result.labels == {"team": "x"}
    assert result.annotations == {"owner": "y"}
    assert result.active_deadline_seconds is None
    assert result.image_pull_secrets == ("s1", "s2")


def test_label_flag_overrides_environment_label() -> None:
    result = config(["--label", "team=flag"], {"K8S_LABEL_TEAM": "env"})
    assert result.labels == {"team": "flag"}


def test_port_forward_wins_over_reverse_proxy_as_in_the_go_kubedock() -> None:
    assert config(["--port-forward"]).expose == "port-forward"
    assert config(["--reverse-proxy"]).expose == "reverse-proxy"
    both = config(["--port-forward", "--reverse-proxy"])
    assert both.expose == "port-forward"
    assert both.notes == ("--reverse-proxy is ignored: --port-forward is given too",)


def test_unix_socket_is_served_with_tcp() -> None:
    assert config(["--unix-socket", "/tmp/k.sock"]).binds == ["127.0.0.1:2475", "unix:/tmp/k.sock"]


@pytest.mark.parametrize(
    "bad",
    [
        ["--pull-policy", "sometimes"],
        ["--timeout", "soon"],
        ["--listen-addr", "nohost"],
        ["--label", "novalue"],
    ],
)
def test_invalid_flags_are_refused(bad: list[str]) -> None:
    with pytest.raises(SystemExit):
        config(bad)


def test_invalid_environment_is_refused() -> None:
    with pytest.raises(SystemExit, match="TIME_OUT"):
        config([], {"TIME_OUT": "later"})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("1m", 60), ("1h30m", 5400), ("1.5s", 1.5), ("250ms", 0.25)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1x", "m1", "1m garbage"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_host_port_split() -> None:
    assert split_host_port("[::1]:2475") == ("::1", 2475)
    assert split_host_port(":80") == ("0.0.0.0", 80)
    with pytest.raises(ValueError):
        split_host_port("host:99999")
    assert parse_key_values("a=1,,b=") == {"a": "1", "b": ""}


def own_name_is(address: str) -> Callable[[], str]:
    return lambda: address


def unresolvable() -> str:
    raise OSError("no address for this host's name")


@pytest.mark.parametrize(
    ("argv", "resolve", "url"),
    [
        ([], own_name_is("10.1.2.3"), None),  # loopback: pods cannot reach it
        (["--listen-addr", "10.244.0.1:2475"], unresolvable, "http://10.244.0.1:2475"),
        (["--listen-addr", ":2475"], own_name_is("10.1.2.3"), "http://10.1.2.3:2475"),
        (["--listen-addr", ":2475"], own_name_is("127.0.1.1"), None),
        (["--listen-addr", ":2475"], unresolvable, None),
        (["--listen-addr", "[::]:2475"], own_name_is("fd00::5"), "http://[fd00::5]:2475"),
        (["--listen-addr", "10.0.0.1:0"], unresolvable, None),  # the port is not known yet
        (["--kubedock-url", "http://kubedock.ci:2475"], unresolvable, "http://kubedock.ci:2475"),
    ],
)
def test_where_pods_reach_the_api(argv: list[str], resolve: Callable[[], str],
                                  url: str | None) -> None:
    assert config(argv).url_for_pods(resolve) == url


@pytest.mark.parametrize("url", ["ftp://host:2475", "http://host", "http://host:2475/api", ""])
def test_a_kubedock_url_is_http_with_a_port(url: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        config(["--kubedock-url", url])
    assert "--kubedock-url" in capsys.readouterr().err


# Every flag of the Go kubedock 0.22's `server` command, with a value where it takes one.
GO_KUBEDOCK_FLAGS = [
    "--listen-addr", ":2475", "--unix-socket", "/tmp/kd.sock", "--kubeconfig", "/k/config",
    "--namespace", "ci", "--kube-api-qps", "20", "--kube-api-burst", "40",
    "--poll-rate", "2", "--poll-burst", "5", "--pod-template", "/t/pod.yaml",
    "--pod-name-prefix", "tc", "--service-account", "runner", "--image-pull-secrets", "a,b",
    "--pull-policy", "ifnotpresent", "--runas-user", "1000", "--request-cpu", "10m,1",
    "--request-memory", "64Mi", "--request-ephemeral-storage", "1Gi",
    "--ignore-container-memory", "--node-selector", "a=b", "--active-deadline-seconds", "600",
    "--label", "team=x", "--annotation", "owner=y", "--inspector", "--initimage", "init:1",
    "--dindimage", "dind:1", "--disable-dind", "--port-forward", "--reverse-proxy",
    "--disable-services", "--pre-archive", "--timeout", "2m", "--reapmax", "30m",
    "--prune-start", "--lock", "--lock-timeout", "5m", "--verbosity", "2",
]


def test_the_go_kubedocks_whole_flag_set_is_accepted() -> None:
    result = config(GO_KUBEDOCK_FLAGS)
    assert result.dind_image == "dind:1" and result.init_image == "init:1"
    assert result.disable_dind and result.ignore_container_memory
    assert result.expose == "port-forward"  # the Go kubedock ignores --reverse-proxy then
    assert result.network_names == "external"
    assert result.timeout == 120 and result.reapmax == 1800
    moot = "\n".join(result.notes)
    for flag in ("--reverse-proxy", "--poll-rate", "--poll-burst", "--pre-archive",
                 "--inspector"):
        assert flag in moot


def test_the_go_kubedocks_environment_for_moot_and_dind_options() -> None:
    result = config([], {"POLL_RATE": "2", "POLL_BURST": "5", "DIND_IMAGE": "d:1",
                         "DISABLE_DIND": "true"})
    assert result.dind_image == "d:1" and result.disable_dind
    assert [note.split()[0] for note in result.notes] == ["--poll-rate", "--poll-burst"]
    assert config([]).notes == () and not config([]).disable_dind


def test_short_inspector_flag() -> None:
    assert any("--inspector" in note for note in config(["-i"]).notes)
@pytest.fixture
def pem(tmp_path: Path) -> Callable[[str], str]:
    def make(name: str) -> str:
        (tmp_path / name).write_text("-----BEGIN CERTIFICATE-----\n")
        return str(tmp_path / name)

    return make


def test_tls_flags_and_go_environment_names(pem: Callable[[str], str]) -> None:
    cert, key, ca = pem("c.pem"), pem("k.pem"), pem("ca.pem")
    assert not config([]).tls_enable
    mutual = config(["--tls-enable", "--tls-cert-file", cert, "--tls-key-file", key,
                     "--tls-ca-file", ca])
    assert (mutual.tls_cert_file, mutual.tls_key_file, mutual.tls_ca_file) == (cert, key, ca)
    from_env = config([], {"SERVER_TLS_ENABLE": "true", "SERVER_TLS_CERT_FILE": cert,
                           "SERVER_TLS_KEY_FILE": key, "SERVER_TLS_CA_FILE": ca})
    assert from_env == mutual
    assert not config([], {"SERVER_TLS_ENABLE": "false"}).tls_enable


@pytest.mark.parametrize("argv", [
    ["--tls-enable"],
    ["--tls-enable", "--tls-cert-file", "c.pem"],
    ["--tls-cert-file", "c.pem", "--tls-key-file", "k.pem"],  # TLS files, but TLS is off
    ["--tls-ca-file", "ca.pem"],
    ["--tls-enable", "--tls-cert-file", "c.pem", "--tls-key-file", "missing.pem"],
])
def test_incomplete_tls_is_refused(argv: list[str], pem: Callable[[str], str],
                                   capsys: pytest.CaptureFixture[str]) -> None:
    files = {name: pem(name) for name in ("c.pem", "k.pem", "ca.pem")}
    with pytest.raises(SystemExit) as refused:
        config([files.get(arg, arg) for arg in argv])
    # argparse prints what is wrong with a flag; Config's checks are the exit message.
    assert "tls" in f"{refused.value.code} {capsys.readouterr().err}"


def test_over_tls_pods_reach_the_api_by_https(pem: Callable[[str], str]) -> None:
    tls = ["--tls-enable", "--tls-cert-file", pem("c.pem"), "--tls-key-file", pem("k.pem")]
    assert config(["--listen-addr", "10.0.0.1:2475", *tls]).url_for_pods(lambda: "") == (
        "https://10.0.0.1:2475")
    assert config(["--kubedock-url", "http://kd:1", *tls]).url_for_pods(lambda: "") == (
        "https://kd:1")


def test_volume_claims_are_configurable() -> None:
    defaults = config([])
    assert (defaults.volume_storage_class, defaults.volume_access_mode,
            defaults.volume_size) == (None, "ReadWriteOnce", "1Gi")
    given = config(["--volume-access-mode", "ReadWriteMany", "--volume-size", "500Mi"],
                   {"VOLUME_STORAGE_CLASS": "fast", "VOLUME_SIZE": "2Gi"})
    assert (given.volume_storage_class, given.volume_access_mode, given.volume_size) == (
        "fast", "ReadWriteMany", "500Mi")
    for bad in (["--volume-access-mode", "rwo"], ["--volume-size", "1GB"]):
        with pytest.raises(SystemExit):
            config(bad)
