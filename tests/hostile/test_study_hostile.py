"""Hostile study inputs and outputs: response files of any shape, resubmissions, contributor text
written into Markdown and CSV, and untrusted image bytes in the benchmark's cache.

Every test is named for the attack or fault it plays; the property-based test at the end
replaces any part of a valid response file with arbitrary JSON.
"""

from __future__ import annotations

import copy
import csv
import io
import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from test_study import config, make, response, write, write_benchmark
from typer.testing import CliRunner

from benchmark.study import outputs
from benchmark.study.analyze import analyze
from benchmark.study.bundle import StudyError, read_study
from benchmark.study.responses import read_responses
from ccub.cli import app
from ccub.config import Limits
from ccub.escape import csv_text

SCRIPT = "<img src=x onerror=alert(1)>"
FORMULA = '=HYPERLINK("http://evil.example","click")'
LATE, EARLY = "2026-11-29T11:00:00Z", "2026-11-29T10:00:00Z"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> tuple[Path, dict]:
    """A study of three models and two items (six answers per participant): built once, never written to."""
    root = tmp_path_factory.mktemp("bundle")
    run = root / "runs" / "korea-M"
    write_benchmark(run, ["base", "korea-M", "korea-MPC"], metrics=lambda model, p, s: {"clip_score": len(model) + s})
    cfg = config()
    cfg.study.items = 2
    made = make([run, root / "runs" / "korea-MPC"], root / "study", cfg)
    return made.out, read_study(made.out)


def analyze_cli(tmp_path: Path, study: Path, responses: Path, *flags: str, toml: str = ""):
    """`ccub study analyze` with few bootstrap resamples, writing outside the (watched) bundle."""
    cfg = tmp_path / "ccub.toml"
    cfg.write_text("[study]\nbootstrap = 50\n" + toml)
    result = CliRunner().invoke(app, ["study", "analyze", str(study), str(responses), "--out",
                                      str(tmp_path / "analysis"), "--config", str(cfg), *flags])
    assert not isinstance(result.exception, Exception), result.output  # exits, never crashes
    return result


def responses_folder(folder: Path, bad: dict[str, Any], study: dict, guard) -> Path:
    """Two valid files (p-1, p-2) and the bad ones, watched once written."""
    write(folder, "good-1.json", response(study, "p-1"))
    write(folder, "good-2.json", response(study, "p-2"))
    for name, content in bad.items():
        write(folder, name, content)
    return guard.watch(folder)


def rejected_once(folder: Path, study: dict, name: str, limits: Limits | None = None) -> str:
    """The one rejection message, which names `name`; the valid files are still counted."""
    found, rejected = read_responses(folder, [study], limits)
    assert len(rejected) == 1 and rejected[0].startswith(f"{folder / name}: "), rejected
    assert set(found[study.study_id].participants) == {"p-1", "p-2"}
    return rejected[0]


DELETE = object()


def set_at(doc: Any, path: tuple, value: Any) -> Any:
    """A copy of `doc` with the value at `path` (keys and list indices) replaced; DELETE removes it."""
    if not path:
        return value
    doc = copy.deepcopy(doc)
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    if value is DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


def unescaped_markup(markdown: str) -> list[str]:
    """HTML tags (`<`) and links (`](`) not escaped by a backslash, outside YAML front matter and fenced
    code blocks, where Markdown renders them."""
    body = re.sub(r"\A---\n.*?\n---\n", "", markdown, flags=re.S)
    body = re.sub(r"^```.*?^```", "", body, flags=re.S | re.M)
    return re.findall(r"(?<!\\)(?:<|\]\()[^\n]{0,20}", body)


# --------------------------------------------------------------------------- response files of the wrong shape


def test_affiliation_string_rejects_only_that_file(bundle, tmp_path, guard):
    study_dir, study = bundle
    guard.watch(study_dir)
    folder = responses_folder(tmp_path / "r", {"bad.json": response(study, "p-3", affiliation="yes")}, study, guard)
    result = analyze_cli(tmp_path, study_dir, folder)
    assert result.exit_code == 1, result.output
    assert "bad.json: field affiliation is a text ('yes'); it must be an object" in result.output
    assert "2 participants" in result.output and (tmp_path / "analysis" / "rankings.csv").is_file()


@pytest.mark.parametrize(("path", "value", "field"), [
    (("items_shown",), 7, "items_shown"),
    (("answers", 0, "ranking"), 7, "answers[1].ranking"),
    (("answers", 2), "i001>A", "answers[3]"),
    (("answers",), {"item": "i001"}, "answers"),
    (("participant",), 12, "participant"),
    (("consent",), "true", "consent"),
    (("version",), True, "version"),
    (("study_id",), ["x"], "study_id"),
    (("affiliation", "identifies"), ["yes"], "affiliation.identifies"),
    (("finished",), 1764410400, "finished"),
    (("items_shown", 0), None, "items_shown[1]"),
], ids=["items_shown-integer", "ranking-integer", "answer-string", "answers-object", "participant-number",
        "consent-string", "version-true", "study_id-list", "identifies-list", "finished-number", "item-shown-null"])
def test_wrong_json_type_rejects_only_that_file_by_field(bundle, tmp_path, guard, path, value, field):
    _, study = bundle
    bad = set_at(response(study, "p-3"), path, value)
    folder = responses_folder(tmp_path / "r", {"bad.json": bad}, study, guard)
    message = rejected_once(folder, study, "bad.json")
    assert f"field {field} is" in message and "it must be" in message and "unedited" in message


def test_integer_of_5000_digits_rejects_only_that_file(bundle, tmp_path, guard):
    _, study = bundle
    text = json.dumps(response(study, "p-3")).replace('"version": 1', '"version": 1' + "0" * 5000)
    folder = responses_folder(tmp_path / "r", {"big.json": text}, study, guard)
    assert "not valid JSON" in rejected_once(folder, study, "big.json")


def test_cell_over_size_limit_rejected_by_name(bundle, tmp_path, guard):
    _, study = bundle
    long = "x" * (Limits().max_field_chars + 1)
    json_doc = response(study, "p-3", affiliation={"identifies": "yes", "description": long})
    rows = [["study_id", "participant", "item", "question", "ranking", "affiliation"]]
    rows += [[study.study_id, "p-4", i["id"], q, "A>B>C", long] for i in study.items for q in study.questions]
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    folder = responses_folder(tmp_path / "r", {"long.json": json_doc, "long.csv": buffer.getvalue()}, study, guard)
    found, rejected = read_responses(folder, [study])
    assert set(found[study.study_id].participants) == {"p-1", "p-2"}
    by_file = {Path(m.split(": ", 1)[0]).name: m for m in rejected}
    assert "a text of 65,537 characters at affiliation.description" in by_file["long.json"]
    assert "line 2 has a cell of 65,537 characters in column 'affiliation'" in by_file["long.csv"]
    assert all("limits.max_field_chars" in m for m in rejected)


def test_deep_json_in_an_unknown_field_rejected_by_depth_limit(bundle, tmp_path, guard):
    _, study = bundle
    deep: Any = "bottom"
    for _ in range(40):  # far below Python's recursion limit: only the configured bound refuses it
        deep = [deep]
    folder = responses_folder(tmp_path / "r", {"deep.json": response(study, "p-3", extra=deep)}, study, guard)
    assert "limits.max_json_depth" in rejected_once(folder, study, "deep.json")


def test_unpaired_surrogate_participant_rejected(bundle, tmp_path, guard):
    _, study = bundle
    folder = responses_folder(tmp_path / "r", {"s.json": response(study, "\ud800")}, study, guard)
    assert "unpaired surrogate" in rejected_once(folder, study, "s.json")


def test_response_file_over_metadata_limit_rejected(bundle, tmp_path, guard):
    _, study = bundle
    padded = response(study, "p-3", padding="x" * 20_000)
    folder = responses_folder(tmp_path / "r", {"huge.json": padded}, study, guard)
    message = rejected_once(folder, study, "huge.json", Limits(max_metadata_mb=0.01))
    assert "limits.max_metadata_mb" in message


def test_csv_row_wider_than_its_header_rejected(bundle, tmp_path, guard):
    _, study = bundle
    item = study.items[0]["id"]
    text = f"study_id,participant,item,question,ranking\n{study.study_id},p-4,{item},alignment,A>B>C,Busan, Korea\n"
    folder = responses_folder(tmp_path / "r", {"wide.csv": text}, study, guard)
    assert "line 2 has 7 cells but the header has 5" in rejected_once(folder, study, "wide.csv")


# --------------------------------------------------------------------------- resubmissions


def test_later_resubmission_conflict_reported_and_policy_applied(bundle, tmp_path, guard):
    study_dir, study = bundle
    guard.watch(study_dir)
    folder = responses_folder(tmp_path / "r", {
        "p-3-early.json": response(study, "p-3", ("A", "B", "C"), finished=EARLY),
        "p-3-late.json": response(study, "p-3", ("C", "B", "A"), finished=LATE)}, study, guard)
    latest = analyze_cli(tmp_path, study_dir, folder)
    assert latest.exit_code == 0, latest.output
    assert "conflict: participant 'p-3'" in latest.output and "counted: " in latest.output
    rows = list(csv.DictReader((tmp_path / "analysis" / "conflicts.csv").open(encoding="utf-8")))
    assert {(Path(r["file"]).name, r["counted"], r["resubmission"]) for r in rows} == {
        ("p-3-late.json", "yes", "latest"), ("p-3-early.json", "no", "latest")}
    md = (tmp_path / "analysis" / "analysis.md").read_text(encoding="utf-8")
    assert "## Resubmissions" in md and "resubmission = latest" in md and "p-3-early.json" in md
    assert "3 participants" in latest.output
    dropped = analyze_cli(tmp_path, study_dir, folder, "--resubmission", "drop")
    assert dropped.exit_code == 0 and "2 participants" in dropped.output, dropped.output
    assert "resubmission = drop" in (tmp_path / "analysis" / "analysis.md").read_text(encoding="utf-8")
    assert "resubmissions: drop" in (tmp_path / "analysis" / "report.html").read_text(encoding="utf-8")


def test_identical_resubmission_is_not_a_conflict(bundle, tmp_path, guard):
    _, study = bundle
    same = response(study, "p-3", finished=EARLY)
    folder = responses_folder(tmp_path / "r", {"once.json": same, "twice.json": same}, study, guard)
    found, rejected = read_responses(folder, [study], resubmission="drop")
    got = found[study.study_id]
    assert rejected == [] and got.conflicts == []
    assert len([r for r in got.rankings if r.participant == "p-3"]) == len(study.items) * len(study.questions)


def test_unknown_resubmission_policy_names_the_key(bundle, tmp_path, guard):
    study_dir, study = bundle
    folder = responses_folder(tmp_path / "r", {}, study, guard)
    setting = analyze_cli(tmp_path, study_dir, folder, toml='resubmission = "newest"\n')
    assert setting.exit_code == 2 and "[study] settings: resubmission = 'newest'" in setting.output
    flag = analyze_cli(tmp_path, study_dir, folder, "--resubmission", "newest")
    assert flag.exit_code == 2 and "--resubmission newest: use one of latest, first, drop" in flag.output


# --------------------------------------------------------------------------- contributor text in outputs


def test_script_participant_id_escaped_in_analysis_md(bundle, tmp_path, guard):
    study_dir, study = bundle
    guard.watch(study_dir)
    folder = responses_folder(tmp_path / "r", {
        "x-early.json": response(study, SCRIPT, ("A", "B", "C"), finished=EARLY),
        "x-late.json": response(study, SCRIPT, ("C", "B", "A"), finished=LATE)}, study, guard)
    assert analyze_cli(tmp_path, study_dir, folder).exit_code == 0
    md = (tmp_path / "analysis" / "analysis.md").read_text(encoding="utf-8")
    assert "\\<img src=x onerror=alert(1)\\>" in md and unescaped_markup(md) == []
    assert SCRIPT not in (tmp_path / "analysis" / "report.html").read_text(encoding="utf-8")


def test_formula_cells_escaped_in_study_csvs(tmp_path, guard):
    """A prompt, a run name and a participant id that spreadsheets would run; metrics stay numbers."""
    run = tmp_path / "runs" / "+korea"
    write_benchmark(run, ["base", "+korea"], metrics=lambda model, p, s: {"clip_score": -1.5 - len(model) + s})
    manifest_path = run / "benchmark" / "benchmark.json"
    manifest = json.loads(manifest_path.read_text())
    for n, prompt in enumerate(manifest["prompts"]):
        prompt["text"] = f"{FORMULA} {n}"
    manifest_path.write_text(json.dumps(manifest))
    made = make([run], tmp_path / "study")
    guard.watch(made.out)
    study = read_study(made.out)
    crowd = list(csv.DictReader((made.out / "crowd" / "items.csv").open(encoding="utf-8")))
    assert crowd and all(row["prompt"].startswith("'=HYPERLINK") for row in crowd)
    metrics = list(csv.DictReader((made.out / "metrics.csv").open(encoding="utf-8")))
    assert {r["model"] for r in metrics} == {"base", "'+korea"} and all(float(r["value"]) < 0 for r in metrics)
    attacker = "=cmd|' /C calc'!A0"
    folder = tmp_path / "r"
    write(folder, "a.json", preferring(study, "base", attacker, finished=EARLY))
    write(folder, "b.json", preferring(study, "+korea", attacker, finished=LATE))
    write(folder, "c.json", preferring(study, "+korea", "p-2"))
    guard.watch(folder)
    assert analyze_cli(tmp_path, made.out, folder).exit_code == 0
    table = {name: list(csv.DictReader((tmp_path / "analysis" / name).open(encoding="utf-8")))
             for name in ("rankings.csv", "proxies.csv", "conflicts.csv")}
    assert {r["model"] for r in table["rankings.csv"]} == {"base", "'+korea"}
    assert {r["model"] for r in table["rankings.csv"] if r["theta"].startswith("-") and float(r["theta"]) < 0} == {
        "base"}, "negative numbers stay numbers"
    assert table["proxies.csv"], "the escaped run name is read back: its metrics meet people's rankings"
    assert {r["participant"] for r in table["conflicts.csv"]} == {"'" + attacker}


def preferring(study: dict, model: str, participant: str, **changes) -> dict:
    """A response ranking `model` first on every item, whichever slot it is in."""
    doc = response(study, participant, **changes)
    slots = {i["id"]: i["slots"] for i in study.items}
    for answer in doc["answers"]:
        answer["ranking"] = sorted(slots[answer["item"]], key=lambda slot: slots[answer["item"]][slot] != model)
    return doc


@pytest.fixture
def benchmark_outputs(tmp_path, guard) -> Path:
    """The benchmark's writer fed a run named like an HTML tag, a prompt like a formula, a note with a
    link, and a cached image that is a TIFF under a .png name."""
    from benchmark.evaluate import Scores
    from benchmark.generate import Model, Settings
    from benchmark.metric_rows import MetricRow
    from benchmark.prompts import Prompt
    from benchmark.report import write_outputs
    from benchmark.stats import Comparison

    cache = tmp_path / "cache"
    cache.mkdir()
    Image.new("RGB", (64, 64), "red").save(cache / "base.png")
    Image.new("RGB", (64, 64), "blue").save(cache / "tuned.png", format="TIFF")
    guard.watch(cache)
    models = [Model("base", "tiny", "tiny", random_weights=True), Model(SCRIPT, "tiny", "tiny", random_weights=True)]
    prompt = Prompt(id="=p1", culture="korea", category="FOOD", text=FORMULA, generic="A table of food")
    comparison = Comparison(metric="clip_score", model=SCRIPT, baseline="base", n_prompts=1, n_pairs=1, base_mean=1.0,
                            model_mean=-2.0, difference=-3.0, ci_low=-3.5, ci_high=-2.5, confidence=0.95, win_rate=0.0,
                            p_value=0.5, p_adjusted=0.5, higher_is_better=True)
    scores = Scores(rows=[MetricRow(model=m.name, prompt="=p1", seed=0, metric="clip_score", value=v)
                          for m, v in zip(models, (1.0, -2.0), strict=True)],
                    sets={"cmmd": {"base": 1.0, SCRIPT: 2.0}}, notes=[f"{SCRIPT} [click](javascript:alert(1))"])
    cfg = config()
    context = {"culture": "korea", "runs": [], "models": models, "prompts": [prompt], "seeds": [0],
               "settings": Settings(), "clip": "tiny", "clip_random_weights": True, "suite": f"suites/{SCRIPT}.toml",
               "reference": "none",
               "training": 0, "smoke_run": True, "seconds": 0.0, "config": cfg.benchmark, "classes": ["korea"],
               "images": {("base", "=p1", 0): cache / "base.png", (SCRIPT, "=p1", 0): cache / "tuned.png"},
               "max_pixels": int(cfg.limits.max_megapixels * 1e6)}
    write_outputs(tmp_path / "out", scores, [comparison], context)
    return tmp_path / "out"


def test_formula_prompt_escaped_in_benchmark_results_csv(benchmark_outputs):
    results = list(csv.DictReader((benchmark_outputs / "results.csv").open(encoding="utf-8")))
    assert {r["prompt_text"] for r in results} == {"'" + FORMULA} and {r["prompt"] for r in results} == {"'=p1"}
    assert sorted(float(r["value"]) for r in results) == [-2.0, 1.0]
    summary = list(csv.DictReader((benchmark_outputs / "summary.csv").open(encoding="utf-8")))
    assert {r["difference"] for r in summary if r["level"] != "set"} == {"-3.0"}


def test_html_in_run_names_and_notes_escaped_in_summary_md(benchmark_outputs):
    md = (benchmark_outputs / "summary.md").read_text(encoding="utf-8")
    assert "\\<img src=x onerror=alert(1)\\>" in md and unescaped_markup(md) == []


def test_tiff_in_image_cache_not_decoded_by_benchmark_report(benchmark_outputs):
    html = (benchmark_outputs / "report.html").read_text(encoding="utf-8")
    assert html.count("data:image/jpeg;base64") == 1 and "not shown: not a JPEG, PNG or WebP" in html


def test_tiff_benchmark_image_refused_by_study_bundle(tmp_path):
    run = tmp_path / "runs" / "korea-M"
    write_benchmark(run, ["base", "korea-M"])
    manifest = json.loads((run / "benchmark" / "benchmark.json").read_text())
    tiff = Path(manifest["images"][0]["path"])
    Image.new("RGB", (64, 64)).save(tiff, format="TIFF")  # under its .png name
    with pytest.raises(StudyError, match=f"{re.escape(str(tiff))}: cannot read this benchmark image"):
        make([run], tmp_path / "study")


def test_markup_in_paths_escaped_in_lora_model_card():
    from finetune.outputs import render_card
    from finetune.run_record import RunRecord

    facts = RunRecord(
        config={"rank": 4, "lora_alpha": 4, "perceptual_interval": 2, "train_batch_size": 1,
                "gradient_accumulation_steps": 1, "seed": 0},
        smoke_run=False, base_model=f"x`{SCRIPT}`", base_path="x", culture=f"ko`{SCRIPT}`", variant="M",
        loss_weights={"mse": 1.0}, backbones={"perceptual": f"lpips: /w/`{SCRIPT}`"}, output=f"runs/`{SCRIPT}`",
        dataset=f"data/`{SCRIPT}` [x](javascript:alert(1))", images=4, data_card=f"cards/{SCRIPT}.md", steps=2,
        resumed_from=0, skipped_steps=0, seconds=1.0,
        hardware={"device": "cpu", "processes": 1, "mixed_precision": "no"}, versions={"ccub": "0"})
    card = render_card(facts)
    assert unescaped_markup(card) == []
    # Not a hub id, so not in the header; the culture is, as a JSON string (valid YAML).
    assert card.startswith("---\nlicense: other\n")
    import yaml

    header = yaml.safe_load(card.split("---\n")[1])
    assert f"culture-ko`{SCRIPT}`" in header["tags"] and "base_model" not in header


# --------------------------------------------------------------------------- any shape at all

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6)


def paths_of(value: Any, path: tuple = ()) -> list[tuple]:
    """Every place in a JSON document, the document itself included."""
    found = [path]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += paths_of(inner, (*path, key))
    elif isinstance(value, list):
        for n, inner in enumerate(value):
            found += paths_of(inner, (*path, n))
    return found


@pytest.fixture(scope="module")
def valid(bundle) -> dict:
    return response(bundle[1], "p-3")


EXAMPLES = itertools.count()


@pytest.mark.parametrize("field", [None, "format", "version", "study_id", "participant", "consent", "affiliation",
                                   "started", "finished", "items_shown", "answers"])
@settings(max_examples=8, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_sub_value_replaced_with_any_json_never_crashes_the_analysis(bundle, valid, tmp_path, guard, field, data):
    """Each field of the survey's format (None: the whole file) gets its own examples, so the fields
    read last are reached as often as the first; the place replaced is the field itself half the time,
    else anything in it, and a place may also be deleted."""
    study_dir, study = bundle
    guard.watch(study_dir)
    places = [p for p in paths_of(valid) if p[:1] == ((field,) if field else ())]
    path = data.draw(st.sampled_from(places[:1]) | st.sampled_from(places), label="path")
    replacement = data.draw(JSON | st.just(DELETE) if path else JSON, label="value")
    mutated = set_at(valid, path, replacement)
    folder = responses_folder(tmp_path / f"example-{next(EXAMPLES)}", {"mutated.json": mutated}, study, guard)
    found, rejected = read_responses(folder, [study])
    got = found[study.study_id]
    assert rejected == [] or (len(rejected) == 1 and rejected[0].startswith(f"{folder / 'mutated.json'}: "))
    assert {"p-1", "p-2"} <= set(got.participants)
    assert got.files == 3 - len(rejected)
    s = config().study
    s.bootstrap = 20
    result = analyze(study, got, {}, s)
    assert result.strengths
    outputs.markdown(result).encode("utf-8")  # every accepted text can be written
    for rows in outputs.table_rows(result).values():
        csv_text(rows, list(rows[0]) if rows else []).encode("utf-8")
