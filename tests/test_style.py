"""Style is checked by the test command, so CI fails on it: ruff (lint and format) on the
Python, snakefmt on the rules, and Snakemake's own linter on the workflow."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PYTHON_DIRS = ["workflow", "bench", "tests"]
SNAKEFILES = ["Snakefile", "workflow/rules"]


def run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)


@pytest.mark.parametrize(
    "cmd",
    [
        ["ruff", "check", "--no-cache", *PYTHON_DIRS],
        ["ruff", "format", "--check", "--no-cache", *PYTHON_DIRS],
        ["snakefmt", "--check", *SNAKEFILES],
    ],
    ids=["ruff-check", "ruff-format", "snakefmt"],
)
def test_code_is_clean(cmd):
    out = run(str(BIN / cmd[0]), *cmd[1:])
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("source", ["results", "archive"])
def test_snakemake_lint_finds_nothing(source):
    # Both branches of the workflow: rules differ under `source: archive` (archive.smk).
    out = run(str(BIN / "snakemake"), "--lint", "--config", f"source={source}")
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_linters_do_fail_on_a_bad_file(tmp_path):
    # The checks above would pass vacuously if the tools ignored their arguments.
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nx=[1,2]\n")
    assert run(str(BIN / "ruff"), "check", "--no-cache", str(bad)).returncode == 1
    assert run(str(BIN / "ruff"), "format", "--check", "--no-cache", str(bad)).returncode == 1
    smk = tmp_path / "bad.smk"
    smk.write_text('rule a:\n    output: "x"\n    shell: "touch {output}"\n')
    assert run(str(BIN / "snakefmt"), "--check", str(smk)).returncode == 1
