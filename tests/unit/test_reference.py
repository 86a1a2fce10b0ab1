from pathlib import Path

from kubedock._reference import reference, replace_section

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_configuration_reference_is_current() -> None:
    document = README.read_text()
    assert replace_section(document) == document, (
        "README.md's configuration reference is stale: run `python -m kubedock._reference "
        "README.md`"
    )


def test_reference_names_flags_environment_and_labels() -> None:
    text = reference()
    assert "| `-n`, `--namespace` | `NAMESPACE` |" in text
    assert "`com.joyrex2001.kubedock.request-cpu`" in text
