"""Names from the config that stay in their folder, deletes that cannot leave theirs, numbers
that read back from a path as the value the config gave."""

import os
import re

import pytest
import torch

from sgdsmooth import archive, config, paths


@pytest.mark.parametrize("name", ["..", ".", ".hidden", "a/b", "../x", "/tmp", "", "a\\b", 3])
def test_a_folder_name_that_could_leave_its_folder_is_refused_naming_the_key(name):
    with pytest.raises(paths.UnsafePathError, match=r"^experiment: must be a plain name"):
        config.check_path_names({"experiment": name})


@pytest.mark.parametrize("name", ["default", "fashion_smoke", "paper-2", "v1.2", "_x"])
def test_plain_folder_names_pass(name):
    config.check_path_names({"experiment": name})


def test_a_delete_aimed_outside_its_folder_is_refused_and_deletes_nothing(tmp_path):
    inside = tmp_path / "archive"
    (inside / "default").mkdir(parents=True)
    (tmp_path / "code.py").write_text("keep me")
    for target in (inside / "..", inside / ".", inside, tmp_path / "elsewhere", tmp_path):
        with pytest.raises(paths.UnsafePathError, match="not strictly inside"):
            paths.safe_rmtree(target, inside)
    # A link inside the folder that leads out of it is judged by where it leads.
    (inside / "link").symlink_to(tmp_path)
    with pytest.raises(paths.UnsafePathError):
        paths.safe_rmtree(inside / "link", inside)
    assert (tmp_path / "code.py").read_text() == "keep me" and (inside / "default").is_dir()
    paths.safe_rmtree(inside / "default", inside)  # what it is meant for
    assert not (inside / "default").exists()
    paths.safe_rmtree(inside / "default", inside)  # gone already: nothing to do


def test_archiving_to_a_folder_outside_archive_deletes_nothing(tmp_path):
    # What `experiment: ..` did before the config check: archive/.. is the checkout.
    (tmp_path / "archive").mkdir()
    (tmp_path / "Snakefile").write_text("the checkout")
    with pytest.raises(paths.UnsafePathError):
        archive.write_archive(
            tmp_path / "archive" / "..",
            tmp_path / "results",
            [],
            [],
            None,
            [],
            tmp_path / "results" / "run.parquet",
            [],
            {"experiment": ".."},
            tmp_path,
            inside=tmp_path / "archive",
        )
    assert (tmp_path / "Snakefile").read_text() == "the checkout"


@pytest.mark.parametrize(
    "x, text",
    [
        (0.1, "0.1"),
        (512, "512"),
        (0.0, "0"),
        (0.9, "0.9"),
        (1e20, "1e+20"),
        (1e-05, "1e-05"),
        (0.1234567, "0.1234567"),  # '%g' would say 0.123457
        (1234567.0, "1234567"),  # '%g' would say 1.23457e+06
        (0.1000001, "0.1000001"),
    ],
)
def test_a_number_in_a_path_reads_back_as_the_same_value(x, text):
    assert paths.path_number(x) == text and float(text) == float(x)


def test_a_write_that_fails_names_the_path(tmp_path):
    (tmp_path / "file").write_text("")
    target = tmp_path / "file" / "checkpoint.pt"  # its folder is a file: the write must fail
    with pytest.raises(OSError, match=f"cannot write {target}"):
        with paths.naming(target):
            torch.save({"x": 1}, target)


@pytest.mark.parametrize(
    "key, grid, message",
    [
        ("sharpness.lrs", [0.1, 0.1], "sharpness.lrs: 0.1 and 0.1 are one value"),
        ("sharpness.lrs", [1, 1.0], "sharpness.lrs: 1 and 1.0 are one value (written 1"),
        ("noise.epochs", [2, 4, 2], "noise.epochs: 2 and 2 are one value"),
        ("accuracy.full_grad_epochs", [3, 3], "accuracy.full_grad_epochs: 3 and 3"),
        ("batch_sizes", [128, 128], "batch_sizes: 128 and 128"),
    ],
)
def test_a_value_listed_twice_in_a_grid_is_refused_naming_the_key(key, grid, message):
    cfg = {"batch_sizes": [64], "sharpness": {"lrs": [0.1]}, "noise": {}, "accuracy": {}}
    outer, _, inner = key.rpartition(".")
    (cfg[outer] if outer else cfg)[inner] = grid
    with pytest.raises(config.ConfigError, match=re.escape(message)):
        config.check_grids(cfg)


def test_values_that_differ_only_beyond_six_digits_are_two_cells():
    # '%g' wrote both as 0.1 (one folder, one cell); exact paths keep them apart.
    config.check_grids({"sharpness": {"lrs": [0.1, 0.1000001]}, "batch_sizes": [16, 32]})


def test_a_table_or_figure_that_cannot_be_written_names_its_path(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from sgdsmooth import tables

    (tmp_path / "results").write_text("")  # a file where the folder belongs: no write can succeed
    target = tmp_path / "results" / "tables" / "k2.parquet"
    empty = pd.DataFrame({n: [] for n in tables.SCHEMAS["k2"].names})
    with pytest.raises(OSError, match=re.escape(str(tmp_path / "results"))):
        tables.write_table(empty, target, "k2")
    fig = plt.figure()
    with pytest.raises(OSError, match=re.escape(str(tmp_path / "results"))):
        fig.savefig(tmp_path / "results" / "fig4.pdf")
    plt.close(fig)


def test_the_paper_build_does_not_empty_a_folder_its_build_dir_links_to(tmp_path):
    from sgdsmooth import paper

    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "keep.txt").write_text("keep")
    (tmp_path / "paper").mkdir()
    (tmp_path / "paper" / "build").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(paths.UnsafePathError, match="not strictly inside"):
        paper.build_pdf(tmp_path, tmp_path, tmp_path / "paper" / "paper.pdf")
    assert (tmp_path / "elsewhere" / "keep.txt").read_text() == "keep"


def test_a_training_file_that_cannot_be_written_names_its_path(tmp_path):
    from sgdsmooth.training.run import atomic_save

    folder = tmp_path / "run"
    folder.mkdir()
    folder.chmod(0o500)  # read and enter, no write
    try:
        if os.access(folder, os.W_OK):  # root ignores the bits: make the target a folder
            folder.chmod(0o700)
            (folder / ".final.pt.tmp").mkdir()
        with pytest.raises(OSError, match=r"cannot write .*\.final\.pt\.tmp"):
            atomic_save({"x": 1}, folder / "final.pt")
    finally:
        folder.chmod(0o700)
