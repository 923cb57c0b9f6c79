"""The documentation's examples stay true: configurations load, commands exist."""

import re
from pathlib import Path

import pytest

from noahtibet import config
from noahtibet.cli import build_parser

ROOT = Path(__file__).parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "mpi" / "README.md"]


def _subcommands() -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return set(sub.choices)


def _code(text: str) -> str:
    """The fenced blocks and inline code spans of a Markdown text."""
    blocks = re.findall(r"```.*?\n(.*?)```", text, re.S)
    spans = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    return "\n".join(blocks + spans)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_noahtibet_command_in_the_docs_exists(doc):
    known = _subcommands()
    used = set(re.findall(r"(?<![\w.-])noahtibet ([a-z][a-z-]+)", _code(doc.read_text())))
    if doc.name == "README.md" and doc.parent == ROOT:
        assert {"run", "point", "report", "export-point"} <= used     # the pattern finds them
    unknown = sorted(used - known)
    assert not unknown, f"{doc.name} names commands that do not exist: {unknown}"


def test_real_data_configuration_example_loads(tmp_path):
    """docs/real_data.md's plateau configuration is valid (input files stand in as empty
    placeholders: loading checks keys, types and that files exist, not their contents)."""
    text = (ROOT / "docs" / "real_data.md").read_text()
    block = re.search(r"```toml\n(.*?)```", text, re.S).group(1)

    def placeholder(m):
        p = tmp_path / m.group(1).lstrip("/")
        if p.suffix:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.touch()
        else:
            p.mkdir(parents=True, exist_ok=True)
        return f'"{p}"'

    (tmp_path / "qtp.toml").write_text(re.sub(r'"(/(?:data|scratch)/[^"]*)"', placeholder, block))
    cfg = config.load(tmp_path / "qtp.toml")
    assert cfg.domain.kind == "cmfd" and cfg.spinup.cycles == 100
    assert cfg.static.tbot_source == "forcing"


def test_config_template_has_every_key_and_loads(tmp_path):
    """`noahtibet config-template` is a complete configuration: every key of the run and of
    the calibration / ensemble settings, and it loads as both."""
    from dataclasses import fields

    from noahtibet.calibration import settings
    from noahtibet.calibration.settings import CalibrationSettings, EnsembleSettings

    text = config.template()
    path = tmp_path / "template.toml"
    path.write_text(text)
    config.load(path)                      # the run ignores [calibration] / [ensemble]
    _, cal, ens = settings.load(path)
    assert (cal.trials, cal.protocol) == (CalibrationSettings().trials, CalibrationSettings().protocol)
    assert (ens.members, ens.protocol) == (EnsembleSettings().members, EnsembleSettings().protocol)
    for section, cls in (("calibration", CalibrationSettings), ("ensemble", EnsembleSettings)):
        block = text.split(f"[{section}]\n")[1].split("\n[")[0]
        keys = {line.split(" = ")[0] for line in block.splitlines() if " = " in line
                and not line.startswith("#")}
        assert keys == {f.name for f in fields(cls)}, section
    assert "# full | shortened | continued" in text        # the settings' own notes
