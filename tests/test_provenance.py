"""Every output says where it came from. A clean git clone rebuilds the figures and the paper
from the committed archive/default/ (no training), and its PDF, its HTML report and each
figure caption name that clone's commit, the config hash, and the commit that measured."""

import json
import re
import shutil
import subprocess

import pytest
from test_workflow import ROOT, SNAKEMAKE, copy_workflow

pytestmark = pytest.mark.skipif(
    not shutil.which("pdftotext") or not shutil.which("latexmk"), reason="needs TeX and poppler"
)
ARCHIVE = ROOT / "archive" / "default"
REBUILD = ["--cores", "2", "--configfile", "archive/default/config.yaml"]


def run(cwd, *args, check=True):
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=900)
    assert not check or proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def smk(cwd, *args):
    return run(cwd, *SNAKEMAKE, *REBUILD, *args, "--config", "source=archive")


def words(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    d = copy_workflow(tmp_path_factory.mktemp("clone"))
    shutil.copytree(ARCHIVE, d / "archive" / "default")
    (d / ".gitignore").write_text("results/\n.snakemake/\n__pycache__/\nreport.html\n")
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.org"]
    run(d, *git, "init", "-q")
    run(d, *git, "add", ".")
    run(d, *git, "commit", "-q", "-m", "clone")
    commit = run(d, "git", "rev-parse", "HEAD").stdout.strip()
    smk(d)
    return d, commit


def pdf_text(clone_dir, first_page=False) -> str:
    pdf = clone_dir / "results" / "default" / "paper" / "paper.pdf"
    pages = ["-l", "1"] if first_page else []
    return words(run(clone_dir, "pdftotext", *pages, str(pdf), "-").stdout)


def test_the_pdf_title_page_names_commit_config_device_and_archive(clone):
    d, commit = clone
    stamp = json.loads((ARCHIVE / "stamp.json").read_text())
    title = pdf_text(d, first_page=True)
    assert f"from commit {commit[:12]}; config hash {stamp['config_hash']}; trained on cpu" in title
    assert f"measurements archived from commit {stamp['commit'][:12]}." in title
    assert "uncommitted" not in title


def test_each_caption_names_its_rule_script_module_and_commit(clone):
    d, commit = clone
    captions = sorted((d / "results" / "default" / "figures").glob("*.caption.rst"))
    assert len(captions) == 7
    body = pdf_text(d)
    for cap in captions:
        name = cap.name.removesuffix(".caption.rst")
        rule = name.split("_")[0]
        text = cap.read_text()
        assert text.startswith((ROOT / "workflow" / "report" / f"{name}.rst").read_text().strip())
        line = (
            f"Drawn by rule ``{rule}``: ``workflow/scripts/figure.py`` with "
            f"``workflow/sgdsmooth/figures/{name}.py``, at commit {commit[:12]}."
        )
        assert text.rstrip().endswith(line)
        # The PDF shows the same words (pdflatex may hyphenate nothing in these paths).
        assert words(line.replace("``", "")) in body, name


def test_the_html_report_opens_on_the_provenance_and_captions_carry_it(clone):
    d, commit = clone
    run(d, *SNAKEMAKE, *REBUILD, "--config", "source=archive", "--report", "report.html")
    html = (d / "report.html").read_text(errors="replace")
    stamp = json.loads((ARCHIVE / "stamp.json").read_text())
    assert f"from commit {commit[:12]}" in html and stamp["config_hash"] in html
    assert f"archived from commit {stamp['commit'][:12]}" in html
    drawn = re.findall(r"Drawn by rule <tt[^>]*>(fig\d)</tt>", html.replace('\\"', '"'))
    assert sorted(drawn) == [f"fig{i}" for i in range(3, 10)]


def test_a_tree_with_uncommitted_changes_says_so_on_the_title_page(clone):
    d, commit = clone
    with open(d / "paper" / "paper.tex", "a") as fh:
        fh.write("% an edit not yet committed\n")
    proc = smk(d)
    assert "rule paper:" in proc.stdout + proc.stderr
    assert "rule paper_generated" not in proc.stdout + proc.stderr  # only the PDF is rebuilt
    assert f"from commit {commit[:12]} with uncommitted changes;" in pdf_text(d, first_page=True)


def test_a_config_allowed_to_differ_from_the_archives_is_listed_on_the_title_page(clone):
    d, _ = clone
    refused = run(
        d,
        *SNAKEMAKE,
        *REBUILD,
        "--config",
        "source=archive",
        "k2_statistic=mean",
        check=False,
    )
    assert refused.returncode != 0 and "k2_statistic: sup → mean" in refused.stderr + refused.stdout
    allowed = ["k2_statistic=mean", "allow_config_change=True"]
    run(d, *SNAKEMAKE, *REBUILD, "--config", "source=archive", *allowed)
    title = pdf_text(d, first_page=True)
    assert "config differs from the archive’s: k2_statistic: sup → mean." in title
