"""The loss oracle interface: queries are validated, counted per purpose, and missing ids named."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataselect_cli.errors import InputError
from dataselect_cli.oracle import TableOracle


@pytest.fixture
def losses(tmp_path):
    path = tmp_path / "losses.parquet"
    pq.write_table(pa.table({"id": pa.array([10, 11, 12, 13], pa.int64()), "loss": [0.5, 1.5, 2.0, 0.0]}), path)
    return str(path)


def test_table_oracle_answers_in_the_order_asked_and_counts(losses):
    o = TableOracle(losses)
    assert o.query(pa.array([12, 10], pa.int64()), "centers").tolist() == [2.0, 0.5]
    assert o.query(pa.array([], pa.int64()), "probes").tolist() == []
    assert o.query(pa.array([13], pa.int64()), "probes").tolist() == [0.0]
    assert o.queries == 3
    assert o.summary() == {"queries": 3, "by_purpose": [{"purpose": "centers", "ids": 2}, {"purpose": "probes", "ids": 1}]}
    assert o.has(pa.array([11, 99], pa.int64())).tolist() == [True, False]


def test_table_oracle_names_the_file_and_the_missing_ids(losses):
    o = TableOracle(losses)
    with pytest.raises(InputError) as e:
        o.query(pa.array([10, 98, 99], pa.int64()), "centers")
    msg = str(e.value)
    assert "losses.parquet" in msg and "2 centers row ids have no row here: 98, 99" in msg
    assert o.queries == 0  # a failed query is not counted


def test_table_oracle_refuses_another_id_type(losses):
    with pytest.raises(InputError, match="same id type"):
        TableOracle(losses).query(pa.array(["a"]), "centers")
    with pytest.raises(InputError, match="same id type"):
        TableOracle(losses).has(pa.array(["a"]))
