"""What a fork or a citing paper reads: the licence, the citation file, the forge CI."""

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_citation_names_this_version_its_licence_and_both_articles():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    assert cff["version"] == version
    assert cff["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    arxiv = {i["value"] for ref in cff["references"] for i in ref["identifiers"]}
    assert {"arXiv:2311.08745", "arXiv:2402.02325"} <= arxiv
    for ref in cff["references"]:
        assert [a["family-names"] for a in ref["authors"]] == ["Sato", "Iiduka"]


def test_the_forge_workflow_runs_the_ci_script_on_its_platform():
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    (job,) = wf["jobs"].values()
    assert job["container"] == "debian:12"  # what .ci/slurm-up installs Slurm for
    assert job["timeout-minutes"] <= 90
    assert job["steps"][-1]["run"] == "bash .ci/run"
    assert any(s.get("uses", "").startswith("actions/checkout@") for s in job["steps"])
