"""The archive's stamp without a pipeline: the git state it records, and its README.
(Archiving a real run and rebuilding the paper from it: tests/test_workflow.py.)"""

import subprocess

import pandas as pd

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
