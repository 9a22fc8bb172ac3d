import pandas as pd
import pytest

from sgdsmooth import tables


def cbs_frame():
    return pd.DataFrame(
        {
            "optimizer": ["sgd"],
            "lr": [0.1],
            "beta": [0.0],
            "epsilon": [0.5],
            "batch_size": [8],
            "seed": [0],
            "steps": [10],
            "sfo": [80],
            "reached": [True],
            "status": ["reached"],
            "train_loss": [0.3],
            "armed_epoch": [1.0],
            "gate_bound": [False],
        }
    )


def test_roundtrip_with_provenance(tmp_path):
    path = tmp_path / "t.parquet"
    tables.write_table(cbs_frame(), path, "cbs_runs", {"config_hash": "abc"})
    pd.testing.assert_frame_equal(tables.read_table(path, "cbs_runs"), cbs_frame())
    meta = tables.read_metadata(path)
    assert meta["config_hash"] == "abc" and meta["table"] == "cbs_runs"
    assert meta["torch_version"] and meta["code_version"].startswith("0.")


def test_schema_is_checked_on_write(tmp_path):
    with pytest.raises(tables.SchemaError, match="missing columns"):
        tables.write_table(cbs_frame().drop(columns="sfo"), tmp_path / "t.parquet", "cbs_runs")
    bad = cbs_frame().assign(steps=["ten"])
    with pytest.raises(tables.SchemaError):
        tables.write_table(bad, tmp_path / "t.parquet", "cbs_runs")
    assert not list(tmp_path.iterdir())  # nothing half-written left behind


def test_schema_is_checked_on_read(tmp_path):
    path = tmp_path / "t.parquet"
    tables.write_table(cbs_frame(), path, "cbs_runs")
    with pytest.raises(tables.SchemaError):
        tables.read_table(path, "accuracy")


def test_config_hash_ignores_key_order():
    assert tables.config_hash({"a": 1, "b": 2}) == tables.config_hash({"b": 2, "a": 1})
    assert tables.config_hash({"a": 1}) != tables.config_hash({"a": 2})


# -- damaged and misplaced run files (#17) -----------------------------------------------
def cbs_run_file(root, seed, b=64):
    """A CBS run's metrics.parquet where the workflow puts it, with the metadata it writes."""
    config = {
        "protocol": "cbs",
        "optimizer": "shb",
        "lr": 0.1,
        "beta": 0.9,
        "batch_size": b,
        "seed": seed,
        "epsilon": 0.5,
    }
    summary = {"status": "reached", "steps": 10 + seed, "sfo": (10 + seed) * b, "reached": True}
    path = root / "runs/cbs/eps0.5/shb/lr0.1/beta0.9" / f"b{b}/seed{seed}/metrics.parquet"
    empty = pd.DataFrame({f: [] for f in tables.SCHEMAS["cbs_epochs"].names})
    tables.write_table(empty, path, "cbs_epochs", {"config": config, "summary": summary})
    return path


def test_a_truncated_run_file_is_named_with_what_to_do(tmp_path):
    from sgdsmooth import collect

    paths = [cbs_run_file(tmp_path, s) for s in (0, 1)]
    assert list(collect.cbs_runs(paths).seed) == [0, 1]
    paths[1].write_bytes(paths[1].read_bytes()[:100])
    for read in (
        lambda: collect.cbs_runs(paths),
        lambda: tables.read_table(paths[1], "cbs_epochs"),
    ):
        with pytest.raises(tables.CorruptTableError) as err:
            read()
        assert str(paths[1]) in str(err.value) and "delete it and rerun" in str(err.value)


def test_a_run_file_copied_over_another_seeds_is_refused(tmp_path):
    """#17: seed 0's file copied over seed 1's gave cbs_runs seed 0 twice and no seed 1."""
    from sgdsmooth import collect

    paths = [cbs_run_file(tmp_path, s, b) for b in (64, 128) for s in (0, 1)]
    paths[1].write_bytes(paths[0].read_bytes())
    with pytest.raises(collect.RunFileError) as err:
        collect.cbs_runs(paths)
    message = str(err.value)
    assert f"{paths[1]}: its path names seed 1, but it holds seed 0 (the run" in message
    assert f"{paths[0]} and {paths[1]} both hold the run" in message
    assert str(paths[2]) not in message and "Delete each wrong file and rerun" in message
    # Another cell's file in its place (b = 128's at b = 64), and a run given twice: refused.
    paths[1].write_bytes(paths[3].read_bytes())
    with pytest.raises(
        collect.RunFileError, match="its path names batch_size 64, but it holds batch_size 128"
    ):
        collect.cbs_runs(paths)
    cbs_run_file(tmp_path, 1)
    with pytest.raises(collect.RunFileError, match="both hold"):
        collect.cbs_runs(paths + paths[:1])


def epoch_run_file(root, kind, seed, table):
    """A fixed-epoch run's noise.parquet, or its network's sharpness.parquet (``table``
    sharpness_run), where the workflow puts it, with the run's config in its metadata as
    train.py and sharpness.py write it; one row holding ``seed``."""
    config = {"protocol": "epochs", "optimizer": "sgd", "lr": 0.1, "beta": 0.0, "batch_size": 64}
    name = "noise" if table == "noise" else "sharpness"
    path = root / f"runs/{kind}/sgd/lr0.1/beta0/b64/seed{seed}/{name}.parquet"
    schema = tables.SCHEMAS[table]
    given = {"optimizer": "sgd", "seed": seed, "p": "inf", "bn_mode": "train", "augmented": False}
    given["protocol"] = "epochs"
    frame = pd.DataFrame({f: [given.get(f, 0)] for f in schema.names}).astype(
        {f: t.to_pandas_dtype() for f, t in zip(schema.names, schema.types)}
    )
    tables.write_table(frame, path, table, {"config": config | {"seed": seed}})
    return path


@pytest.mark.parametrize("kind, table", [("epochs", "noise"), ("sharpness", "sharpness_run")])
def test_noise_and_sharpness_files_are_checked_against_their_paths(tmp_path, kind, table):
    """#17: the noise and sharpness tables read per-run files too; seed 0's copied over seed
    1's would count seed 0 twice."""
    from sgdsmooth import collect

    paths = [epoch_run_file(tmp_path, kind, s, table) for s in (0, 1)]
    assert list(collect.checked_tables(paths, table).seed) == [0, 1]
    paths[1].write_bytes(paths[0].read_bytes())
    with pytest.raises(collect.RunFileError) as err:
        collect.checked_tables(paths, table)
    assert f"{paths[1]}: its path names seed 1, but it holds seed 0" in str(err.value)
