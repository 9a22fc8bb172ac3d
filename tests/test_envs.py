"""The software the rules run with: the conda environment they name, the lock bin/setup
installs, and the library's import path inside a conda job."""

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
ENV = ROOT / "envs" / "sgdsmooth.yaml"
LOCK = ROOT / "requirements-lock.txt"
PIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.+!-]+$")


def pip_section(env_file: Path) -> list[str]:
    env = yaml.safe_load(env_file.read_text())
    return next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))


def locked_versions() -> dict[str, list[str]]:
    """Package name → the versions the lock pins (two where markers split by Python)."""
    out: dict[str, list[str]] = {}
    for line in LOCK.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", line)
        if m:
            out.setdefault(canonical(m[1]), []).append(m[2])
    return out


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_conda_env_matches_pyproject_pins():
    deps = PYPROJECT["project"]["dependencies"]
    assert set(pip_section(ENV)) == set(deps)
    assert all("==" in d for d in deps)


def test_the_env_file_means_the_same_where_snakemake_copies_it(tmp_path):
    # Snakemake creates the environment from a copy at .snakemake/conda/<hash>.yaml; a path
    # requirement (`-e ..`, `./x`, `file:`) would then resolve against that folder.
    copy = tmp_path / ".snakemake" / "conda" / "0123abcd.yaml"
    copy.parent.mkdir(parents=True)
    shutil.copy(ENV, copy)
    for req in pip_section(copy):
        assert PIN.match(req), f"{req!r} is not a name==version pin"
    conda = [d for d in yaml.safe_load(copy.read_text())["dependencies"] if isinstance(d, str)]
    assert all("/" not in d and not d.startswith(".") for d in conda)


def test_a_script_without_the_installed_library_imports_it_through_its_folder():
    # A conda job has the pinned packages but not this project. Simulate it: no site module
    # (so the editable install's .pth finder is not loaded), the packages' folder, and the
    # script's folder appended as Snakemake's script preamble does.
    site_packages = sysconfig.get_paths()["purelib"]
    code = (
        "import sys; "
        f"sys.path.extend([{site_packages!r}, {str(ROOT / 'workflow' / 'scripts')!r}]); "
        "import sgdsmooth.cbs, sgdsmooth.tables; print(sgdsmooth.__file__)"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # no other route in
    out = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, cwd="/", env=env
    )
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()).resolve() == ROOT / "workflow" / "sgdsmooth" / "__init__.py"
    # ...and without that folder on the path it would not (so the link is what does it).
    bare = code.replace(f", {str(ROOT / 'workflow' / 'scripts')!r}", "")
    out = subprocess.run(
        [sys.executable, "-S", "-c", bare], capture_output=True, text=True, env=env
    )
    assert "No module named 'sgdsmooth'" in out.stderr


def test_the_lock_pins_every_package_of_pyproject_with_hashes():
    locked = locked_versions()
    wanted = (
        PYPROJECT["project"]["dependencies"] + PYPROJECT["project"]["optional-dependencies"]["test"]
    )
    for pin in wanted:
        name, version = pin.split("==")
        assert locked.get(canonical(name)) == [version], f"{pin}: lock has {locked.get(name)}"
    entries = re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text().strip())
    assert len(entries) == sum(len(v) for v in locked.values()) > 100
    assert all("--hash=sha256:" in e for e in entries)


def test_the_installed_environment_is_the_locked_one():
    from importlib import metadata

    from packaging.markers import Marker

    for line in LOCK.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)(?: ; ([^\\]+))?", line)
        if m and (m[3] is None or Marker(m[3].strip()).evaluate()):
            assert metadata.version(m[1]) == m[2], f"{m[1]}: lock says {m[2]}"


def test_every_rule_names_the_environment():
    for smk in (ROOT / "workflow" / "rules").glob("*.smk"):
        text = smk.read_text()
        rules = len(re.findall(r"^\s*rule(?: \w+)?:", text, re.MULTILINE))  # under an if or a loop
        assert text.count("conda:") == rules, smk.name
