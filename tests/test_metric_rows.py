"""results.csv and metrics.csv: one row type, written and read back by one module."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.metric_rows import PANDAS_DTYPES, RESULTS_COLUMNS, STUDY_COLUMNS, MetricRow, read_rows, write_rows
from ccub.recordfile import RecordError


def test_rows_come_back_typed_with_formula_like_names_restored(tmp_path):
    rows = [MetricRow(model="+MPC", prompt="=food_1", seed=3, metric="clip_score", value=31.25, prompt_text="a dish",
                      random_weights=True),
            MetricRow(model="base", prompt="food_1", seed=None, metric="vendi", value=-0.5, random_weights=True)]
    write_rows(tmp_path / "results.csv", rows, RESULTS_COLUMNS)
    text = (tmp_path / "results.csv").read_text()
    assert "'+MPC" in text and "'=food_1" in text  # escaped for spreadsheets
    back = read_rows(tmp_path / "results.csv", ["+MPC", "=food_1"])
    assert back == rows
    assert isinstance(back[0].seed, int) and back[1].seed is None


def test_pandas_reads_seeds_as_integers_and_levels_apart(tmp_path):
    pd = pytest.importorskip("pandas")
    rows = [MetricRow(model="base", prompt="p1", seed=seed, metric="clip_score", value=30.5) for seed in (0, 7)]
    rows.append(MetricRow(model="base", prompt="p1", seed=None, metric="vendi", value=1.5))
    write_rows(tmp_path / "results.csv", rows, RESULTS_COLUMNS)
    frame = pd.read_csv(tmp_path / "results.csv", dtype=PANDAS_DTYPES)
    assert PANDAS_DTYPES == {"seed": "Int64"}  # what docs/outputs.md tells readers to pass
    assert str(frame["seed"].dtype) == "Int64"
    assert list(frame["level"]) == ["image", "image", "prompt"]
    images = frame[frame["level"] == "image"]
    assert images["seed"].tolist() == [0, 7] and all(isinstance(s, int) for s in images["seed"].tolist())
    assert frame.loc[frame["level"] == "prompt", "seed"].isna().all()
    # Image rows alone need no hint: every seed is there, so pandas reads integers.
    write_rows(tmp_path / "images.csv", rows[:2], RESULTS_COLUMNS)
    assert pd.api.types.is_integer_dtype(pd.read_csv(tmp_path / "images.csv")["seed"])


def test_a_level_that_contradicts_the_seed_is_refused(tmp_path):
    (tmp_path / "results.csv").write_text("model,prompt,level,seed,metric,value\nbase,p,image,,vendi,3\n")
    with pytest.raises(RecordError, match="line 2, field level: 'image'"):
        read_rows(tmp_path / "results.csv")


def test_study_rows_keep_their_item(tmp_path):
    rows = [MetricRow(item="i3", model="lora", prompt="p1", seed=7, metric="clip_score", value=0.25)]
    write_rows(tmp_path / "metrics.csv", rows, STUDY_COLUMNS)
    assert (tmp_path / "metrics.csv").read_text().splitlines()[0] == ",".join(STUDY_COLUMNS)
    assert read_rows(tmp_path / "metrics.csv") == rows


@pytest.mark.parametrize(("text", "where"), [
    ("model,prompt,seed,metric\nbase,p,1,clip_score\n", "no column value"),
    ("model,prompt,seed,metric,value\nbase,p,1.5,clip_score,3\n", "line 2, field seed: '1.5'"),
    ("model,prompt,seed,metric,value\nbase,p,1,clip_score,3\nbase,p,2,clip_score,high\n",
     "line 3, field value: 'high'"),
])
def test_a_broken_file_is_refused_naming_line_and_field(tmp_path, text, where):
    (tmp_path / "results.csv").write_text(text)
    with pytest.raises(RecordError, match="results.csv") as caught:
        read_rows(tmp_path / "results.csv")
    assert where in str(caught.value) and "rerun `ccub benchmark`" in str(caught.value)


names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=20)


@settings(max_examples=50, deadline=None)
@given(model=names, prompt=names, seed=st.none() | st.integers(0, 2**31),
       value=st.floats(allow_nan=False, allow_infinity=False))
def test_any_names_and_values_round_trip(tmp_path_factory, model, prompt, seed, value):
    path = tmp_path_factory.mktemp("rows") / "results.csv"
    row = MetricRow(model=model, prompt=prompt, seed=seed, metric="clip_score", value=value)
    write_rows(path, [row], RESULTS_COLUMNS)
    assert read_rows(path, [model, prompt]) == [row]
