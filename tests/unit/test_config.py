import argparse
import inspect
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest

from kubedock import kube
from kubedock._cli import build_parser, config_from_args
from kubedock._config import Config, parse_duration, parse_key_values, settings, split_host_port
from kubedock._server import pod_settings
from kubedock.engine import Engine, ReaperSettings


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


# Every option of `kubedock server` and its environment variable, as released: renaming one
# breaks deployments.
OPTIONS_AND_VARIABLES = {
    "--listen-addr": "SERVER_LISTEN_ADDR", "--unix-socket": "", "--namespace": "NAMESPACE",
    "--kubeconfig": "KUBECONFIG", "--timeout": "TIME_OUT", "--fail-fast-after": "FAIL_FAST_AFTER",
    "--pull-policy": "PULL_POLICY", "--service-account": "SERVICE_ACCOUNT",
    "--image-pull-secrets": "IMAGE_PULL_SECRETS", "--request-cpu": "K8S_REQUEST_CPU",
    "--request-memory": "K8S_REQUEST_MEMORY",
    "--request-ephemeral-storage": "K8S_REQUEST_EPHEMERAL_STORAGE",
    "--node-selector": "K8S_NODE_SELECTOR", "--runas-user": "K8S_RUNAS_USER",
    "--active-deadline-seconds": "K8S_ACTIVE_DEADLINE_SECONDS", "--pod-template": "POD_TEMPLATE",
    "--pod-name-prefix": "POD_NAME_PREFIX", "--kube-api-qps": "K8S_QPS",
    "--kube-api-burst": "K8S_BURST", "--network-names": "NETWORK_NAMES",
    "--dns-image": "DNS_IMAGE", "--cluster-domain": "CLUSTER_DOMAIN", "--verbosity": "VERBOSITY",
    "--log-format": "LOG_FORMAT", "--metrics-addr": "METRICS_ADDR",
    "--shutdown-timeout": "SHUTDOWN_TIMEOUT", "--reapmax": "REAPER_REAPMAX",
    "--reaper-interval": "REAPER_INTERVAL", "--heartbeat": "HEARTBEAT",
    "--instance-id": "KUBEDOCK_INSTANCE_ID",
    "--initimage": "INIT_IMAGE", "--dindimage": "DIND_IMAGE", "--kubedock-url": "KUBEDOCK_URL",
    "--tls-cert-file": "SERVER_TLS_CERT_FILE", "--tls-key-file": "SERVER_TLS_KEY_FILE",
    "--tls-ca-file": "SERVER_TLS_CA_FILE", "--lock-timeout": "LOCK_TIMEOUT",
    "--port-forward": "", "--reverse-proxy": "", "--prune-start": "", "--prune-start-all": "",
    "--disable-services": "", "--disable-dind": "DISABLE_DIND", "--pre-pull": "PRE_PULL",
    "--ignore-container-memory": "",
    "--poll-rate": "POLL_RATE", "--poll-burst": "POLL_BURST", "--pre-archive": "",
    "--inspector": "", "--tls-enable": "SERVER_TLS_ENABLE", "--lock": "",
    "--bind-root": "BIND_ROOTS", "--label": "K8S_LABEL_<KEY>",
    "--annotation": "K8S_ANNOTATION_<KEY>",
    "--volume-storage-class": "VOLUME_STORAGE_CLASS", "--volume-access-mode": "VOLUME_ACCESS_MODE",
    "--volume-size": "VOLUME_SIZE", "--registry-mirror": "REGISTRY_MIRRORS",
    "--registry-timeout": "REGISTRY_TIMEOUT", "--build-cache-size": "BUILD_CACHE_SIZE",
}


def test_every_option_keeps_its_flag_and_variable() -> None:
    declared = {setting.flags[-1]: setting.env for _field, setting in settings()}
    assert {flag: declared.get(flag) for flag in OPTIONS_AND_VARIABLES} == OPTIONS_AND_VARIABLES


def test_help_names_each_options_variable() -> None:
    server = next(action for action in build_parser()._actions
                  if isinstance(action, argparse._SubParsersAction)).choices["server"]
    text = " ".join(server.format_help().split())
    for flag, env in OPTIONS_AND_VARIABLES.items():
        assert flag in text
        if env:
            assert f"[{env}]" in text


def test_every_setting_a_component_takes_is_one_of_its_settings() -> None:
    accepted = {
        "pods": {field.name for field in attrs.fields(kube.PodSettings)},
        "engine": set(inspect.signature(Engine).parameters),
        "reaper": {field.name for field in attrs.fields(ReaperSettings)},
    }
    for field, setting in settings():
        for target in setting.to:
            component, _, name = target.partition(".")
            assert (name or field.name) in accepted[component], (field.name, target)


def test_components_get_the_configured_values() -> None:
    configured = config(["--timeout", "2m", "--network-names", "services", "--reapmax", "5m",
                         "--heartbeat", "7s", "--request-cpu", "1", "--label", "a=b",
                         "--reverse-proxy"])
    assert configured.settings_for("engine") == {
        "start_timeout": 120, "fail_fast_after": 30, "names": "services",
        "keep_exited_files": "always", "pod_network": "auto"}
    assert configured.settings_for("reaper") == {"interval": 60, "reapmax": 300, "grace": 7}
    pods = pod_settings(configured, "ns", "i")
    assert (pods.namespace, pods.instance_id, pods.request_cpu, pods.labels) == (
        "ns", "i", "1", {"a": "b"})
    assert pods.dind_image == pods.init_image == configured.init_image
    assert configured.expose == "reverse-proxy"
    assert config([]).settings_for("reaper") == {"interval": 60, "reapmax": 3600, "grace": 30}


def test_repeated_options_replace_or_merge_with_the_environment() -> None:
    merged = config(["--annotation", "b=flag"], {"K8S_ANNOTATION_A": "1", "K8S_ANNOTATION_B": "2"})
    assert merged.annotations == {"a": "1", "b": "flag"}
    assert config(["--node-selector", "a=b"], {"K8S_NODE_SELECTOR": "c=d"}).node_selector == {
        "a": "b"}
    assert config([], {"K8S_ACTIVE_DEADLINE_SECONDS": "30"}).active_deadline_seconds == 30


def test_an_instance_id_is_a_label_value() -> None:
    assert config([], {"KUBEDOCK_INSTANCE_ID": "ci-42"}).instance_id == "ci-42"
    assert config([]).instance_id is None
    with pytest.raises(SystemExit):
        config(["--instance-id", "CI_42"])
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


def test_build_cache_size_in_bytes() -> None:
    assert config([]).build_cache_size == 4 * 2**30
    assert config(["--build-cache-size", "500Mi"]).build_cache_size == 500 * 2**20
    assert config([], {"BUILD_CACHE_SIZE": "2G"}).build_cache_size == 2 * 10**9
    assert config(["--build-cache-size", "1024"]).build_cache_size == 1024
    for bad in ("1GB", "-1", "1.5Gi"):
        with pytest.raises(SystemExit):
            config(["--build-cache-size", bad])
