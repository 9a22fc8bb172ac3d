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
