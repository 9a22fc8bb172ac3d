"""The conda environment the rules name carries exactly pyproject.toml's pins."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_conda_env_matches_pyproject_pins():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((ROOT / "envs" / "sgdsmooth.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    pinned = {line for line in pip if "==" in line}
    assert pinned == set(deps)
    assert all("==" in d for d in deps)


def test_every_rule_names_the_environment():
    for smk in (ROOT / "workflow" / "rules").glob("*.smk"):
        text = smk.read_text()
        rules = len(
            re.findall(r"^\s*rule \w+:", text, re.MULTILINE)
        )  # also rules defined under an if
        assert text.count("conda:") == rules, smk.name
