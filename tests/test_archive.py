"""The archive's stamp without a pipeline: the git state it records, and its README.
(Archiving a real run and rebuilding the paper from it: tests/test_workflow.py.)"""

import hashlib
import json
import re
import subprocess

import pandas as pd
import pytest

from sgdsmooth import archive, tables


def git(repo, *args):
    cmd = [
        "git",
        "-C",
        str(repo),
        "-c",
        "user.name=test",
        "-c",
        "user.email=test@example.org",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()


def test_git_state_lists_changes_but_not_the_archive_being_written(tmp_path):
    git(tmp_path, "init", "-q")
    for name in ("a.py", "b.py", "archive/x/old.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "one")
    clean = archive.git_state(tmp_path, exclude=tmp_path / "archive" / "x")
    assert clean == {
        "commit": git(tmp_path, "rev-parse", "HEAD"),
        "dirty": False,
        "changed": [],
        "commit_source": "git",
    }

    (tmp_path / "archive" / "x" / "old.txt").unlink()  # the rule replaces its folder
    (tmp_path / "archive" / "x" / "new.txt").write_text("new")
    assert archive.git_state(tmp_path, exclude=tmp_path / "archive" / "x")["dirty"] is False

    (tmp_path / "a.py").write_text("edited")
    git(tmp_path, "mv", "b.py", "c.py")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "new.py").write_text("untracked")
    state = archive.git_state(tmp_path, exclude=tmp_path / "archive" / "x")
    assert state["dirty"] is True and state["changed"] == ["a.py", "c.py", "sub/new.py"]


def test_outside_git_the_stamp_says_so(tmp_path):
    assert archive.git_state(tmp_path, env={}) == {
        "commit": None,
        "dirty": None,
        "changed": [],
        "commit_source": None,
    }
    # A tree copied to a GPU machine has no .git: the sender names the commit, the stamp says so.
    sent = archive.git_state(tmp_path, env={"SOURCE_COMMIT": "abc123"})
    assert sent == {
        "commit": "abc123",
        "dirty": None,
        "changed": [],
        "commit_source": "SOURCE_COMMIT",
    }


def test_stamp_and_readme(tmp_path):
    run = tmp_path / "run.parquet"
    frame = pd.DataFrame(
        {
            name: pd.Series(dtype=t.to_pandas_dtype())
            for name, t in zip(tables.SCHEMAS["epochs"].names, tables.SCHEMAS["epochs"].types)
        }
    )
    tables.write_table(frame, run, "epochs", {"device": "NVIDIA H200"})
    cfg = {"experiment": "demo", "lr": 0.1}
    stamp = archive.make_stamp(cfg, {"accuracy": run}, [run, run], tmp_path)
    assert stamp["device"] == "NVIDIA H200" and stamp["runs_per_device"] == {"NVIDIA H200": 2}
    assert stamp["config_hash"] == tables.config_hash(cfg) and stamp["commit"] is None
    assert stamp["tables"]["accuracy"]["rows"] == 0
    text = archive.readme(stamp)
    assert "commit: none recorded" in text and stamp["config_hash"] in text
    assert "bin/run --configfile archive/demo/config.yaml --config source=archive" in text
    # Without run metadata naming a device, the stamp names the archiving machine.
    assert archive.make_stamp(cfg, {}, [], tmp_path)["device_source"] == "archiving machine"


def test_the_build_state_ignores_the_archive_but_not_the_code(tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "one")
    (tmp_path / "archive" / "default").mkdir(parents=True)
    (tmp_path / "archive" / "default" / "stamp.json").write_text("{}")
    state = archive.build_state(tmp_path)
    assert state["commit"] == git(tmp_path, "rev-parse", "HEAD") and state["dirty"] is False
    (tmp_path / "a.py").write_text("x = 2\n")
    assert archive.build_state(tmp_path)["changed"] == ["a.py"]


def test_commit_words_say_whether_the_tree_matched_the_commit():
    c = "0123456789abcdef0123456789abcdef01234567"
    assert archive.commit_words({"commit": c, "dirty": False}) == "commit 0123456789ab"
    assert archive.commit_words({"commit": c, "dirty": True}) == (
        "commit 0123456789ab with uncommitted changes"
    )
    assert archive.commit_words({"commit": c, "dirty": None}) == (
        "commit 0123456789ab (uncommitted changes unknown)"
    )
    assert archive.commit_words({"commit": None, "dirty": None}) == "no git commit (not a checkout)"


def test_a_figure_caption_names_its_rule_code_and_commit():
    state = {"commit": "fedcba9876543210" * 2, "dirty": False}
    text = archive.figure_caption("SFO against b.\n", "fig4", "fig4_sfo", state)
    assert text == (
        "SFO against b.\n\nDrawn by rule ``fig4``: ``workflow/scripts/figure.py`` with "
        "``workflow/sgdsmooth/figures/fig4_sfo.py``, at commit fedcba987654.\n"
    )


def stamped(folder):
    """A small archive folder whose stamp records its files' hashes."""
    for name, text in {
        "tables/critical_batch_size.parquet": "b* = 32",
        "tables/accuracy.parquet": "acc",
        "config.yaml": "experiment: demo\nlr: 0.1\naccuracy: {epochs: 2}\n",
    }.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    cfg = {"experiment": "demo", "lr": 0.1, "accuracy": {"epochs": 2}}
    stamp = {"experiment": "demo", "commit": None, "dirty": None}
    stamp["config_hash"] = tables.config_hash(cfg)
    (folder / "stamp.json").write_text(json.dumps(stamp))
    archive.restamp(folder)
    return cfg


def test_the_stamp_records_every_archived_files_sha256(tmp_path):
    stamped(tmp_path)
    files = json.loads((tmp_path / "stamp.json").read_text())["files"]
    assert sorted(files) == [
        "config.yaml",
        "tables/accuracy.parquet",
        "tables/critical_batch_size.parquet",
    ]  # all but the stamp itself
    assert (
        files["config.yaml"] == hashlib.sha256((tmp_path / "config.yaml").read_bytes()).hexdigest()
    )
    assert archive.verify_archive(tmp_path)["experiment"] == "demo"


def test_an_altered_or_missing_archived_file_is_refused_naming_each(tmp_path):
    stamped(tmp_path)
    (tmp_path / "tables" / "critical_batch_size.parquet").write_text("b* = 128")
    (tmp_path / "tables" / "accuracy.parquet").unlink()
    with pytest.raises(archive.ArchiveError) as err:
        archive.verify_archive(tmp_path)
    assert f"{tmp_path}/tables/critical_batch_size.parquet: differs from its stamped" in str(
        err.value
    )
    assert f"{tmp_path}/tables/accuracy.parquet: missing" in str(err.value)
    assert "(2 of 3 files)" in str(err.value)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda text: text[: len(text) // 2], "stamp.json: not a readable stamp (JSONDecodeError"),
        (lambda text: "", "stamp.json: not a readable stamp"),
        (lambda text: "[1, 2]", "stamp.json: not a stamp (a JSON object), but list"),
        (lambda text: json.dumps(_without(text, "config_hash")), "key 'config_hash' is missing"),
        (lambda text: json.dumps(_without(text, "files")), "key 'files' is missing (the SHA-256"),
        (lambda text: json.dumps(json.loads(text) | {"files": []}), "key 'files' holds list"),
        (
            lambda text: json.dumps(json.loads(text) | {"files": {"../../etc/passwd": "0"}}),
            "key 'files' lists '../../etc/passwd', outside",
        ),
    ],
)
def test_a_damaged_stamp_is_refused_naming_the_file_and_the_key(tmp_path, damage, message):
    stamped(tmp_path)
    path = tmp_path / "stamp.json"
    path.write_text(damage(path.read_text()))
    with pytest.raises(archive.ArchiveError, match=re.escape(message)) as err:
        archive.verify_archive(tmp_path)
    assert str(err.value).startswith(str(path))


def _without(text, key):
    stamp = json.loads(text)
    del stamp[key]
    return stamp


def test_a_config_that_differs_from_the_archives_is_refused_unless_allowed(tmp_path):
    cfg = stamped(tmp_path)
    assert archive.check_rebuild(tmp_path, cfg, allow_change=False) == []
    changed = cfg | {"lr": 0.2, "accuracy": {"epochs": 3}, "model": "x"}
    with pytest.raises(archive.ArchiveError, match="not the one .* was measured with") as err:
        archive.check_rebuild(tmp_path, changed, allow_change=False)
    assert "accuracy.epochs: 2 → 3" in str(err.value) and "lr: 0.1 → 0.2" in str(err.value)
    assert "allow_config_change=True" in str(err.value)
    assert archive.check_rebuild(tmp_path, changed, allow_change=True) == [
        "accuracy.epochs: 2 → 3",
        "lr: 0.1 → 0.2",
        "model: — → x",
    ]
    with pytest.raises(archive.ArchiveError, match="key 'experiment' is 'demo', not 'other'"):
        archive.check_rebuild(tmp_path, cfg | {"experiment": "other"}, allow_change=True)


def test_a_script_finds_its_checkout_and_the_archive_there_does_not_count(tmp_path):
    git(tmp_path, "init", "-q")
    for name in ("Snakefile", "workflow/rules/common.smk", "workflow/scripts/figure.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "one")
    # As Snakemake gives a script its folder: relative to the rules that run it.
    scriptdir = tmp_path / "workflow" / "rules" / ".." / "scripts"
    assert archive.repo_root(scriptdir) == tmp_path.resolve()
    (tmp_path / "archive" / "default").mkdir(parents=True)
    (tmp_path / "archive" / "default" / "stamp.json").write_text("{}")  # a new archive
    assert archive.build_state(archive.repo_root(scriptdir))["dirty"] is False
    (tmp_path / "Snakefile").write_text("edited")
    assert archive.build_state(archive.repo_root(scriptdir))["changed"] == ["Snakefile"]
