"""`ccub study`: bundles from benchmark outputs, response files, and the analysis against planted truths.

The benchmark outputs here are written by hand (images of known colours, metrics of known
values), so the tests run in seconds and know the truth; the real benchmark -> study path is
in tests/test_finetune.py (the README and docs/study.md sequence).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from helpers import config, undocumented_columns
from PIL import Image, PngImagePlugin
from typer.testing import CliRunner

from benchmark.record import BENCHMARK_FILE, BenchmarkRecord
from benchmark.study import stats
from benchmark.study.analyze import analyze, read_metrics, score_arrays
from benchmark.study.bundle import MakeOptions, StudyError, make_study, read_study
from benchmark.study.outputs import write_outputs
from benchmark.study.responses import read_responses
from benchmark.study.simulate import simulate, write_responses
from ccub.cli import app

SETTINGS = {"scheduler": "dpm-solver", "steps": 4, "guidance": 4.5, "resolution": 32, "lora_scale": 1.0,
            "dtype": "auto", "batch_size": 8}
CLIP = "ViT-B-32:openai"


def colour(model: str, prompt: int, seed: int) -> tuple[int, int, int]:
    """A distinct colour per image, so a survey image can be traced back to its source (other run names, in
    tests that trace nothing, share one)."""
    index = {"base": 0, "korea-M": 1, "korea-MPC": 2, "korea-lora": 3, "india-M": 4}.get(model, 3)
    return (40 + 60 * index, 30 + 40 * prompt, 20 + 50 * seed)


def write_benchmark(run: Path, models: list[str], prompts: int = 3, seeds: int = 2, metrics=None,
                    settings: dict | None = None, clip: str = CLIP, random_weights: bool = False,
                    culture: str = "korea", clip_random_weights: bool = False) -> None:
    """What `ccub benchmark` leaves in runs/<name>/benchmark/: benchmark.json, results.csv and the images."""
    out = run / "benchmark"
    out.mkdir(parents=True, exist_ok=True)
    cache = run.parent / "cache"
    prompt_records = [{"id": f"{culture}-p{p}", "culture": culture, "category": "FOOD",
                       "text": f"A table of food number {p}, in South Korea", "generic": f"A table of food {p}",
                       "held_out": False, "source": "test"} for p in range(prompts)]
    images, rows = [], []
    for model in models:
        for p, prompt in enumerate(prompt_records):
            for seed in range(seeds):
                path = cache / model / f"{p}-{seed}.png"
                if not path.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    info = PngImagePlugin.PngInfo()
                    info.add_text("model", model)  # must never reach the survey
                    Image.new("RGB", (64, 64), colour(model, p, seed)).save(path, pnginfo=info)
                images.append({"model": model, "prompt": prompt["id"], "seed": seed, "path": str(path)})
                for metric, value in (metrics(model, prompt["id"], seed) if metrics else {}).items():
                    rows.append({"model": model, "prompt": prompt["id"], "prompt_text": prompt["text"],
                                 "seed": seed, "metric": metric, "value": value, "random_weights": random_weights})
    BenchmarkRecord(culture=culture, clip=clip, clip_random_weights=clip_random_weights,
                    smoke_run=random_weights or clip_random_weights, suite="test",
                    settings=settings or SETTINGS, seeds=list(range(seeds)),
                    models=[{"name": m, "key": f"key-{m}", "base": "sd", "lora": None if m == "base" else
                             str(run.parent / m / "pytorch_lora_weights.safetensors"),
                             "random_weights": random_weights} for m in models],
                    prompts=prompt_records, images=images).write(out / BENCHMARK_FILE)
    with (out / "results.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["model", "prompt", "prompt_text", "seed", "metric", "value",
                                         "random_weights"])
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture
def runs(tmp_path) -> dict[str, Path]:
    m, mpc = tmp_path / "runs" / "korea-M", tmp_path / "runs" / "korea-MPC"
    write_benchmark(m, ["base", "korea-M", "korea-MPC"], metrics=lambda model, p, s: {"clip_score": len(model) + s})
    return {"M": m, "MPC": mpc, "root": tmp_path}


def make(runs: list[Path], out: Path, cfg=None, **kw):
    return make_study(MakeOptions(runs=runs, out=out, **kw), cfg or config())


def decode(src: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))


def survey_data(html: str) -> dict:
    """The study data the survey page embeds (the page reads it with JSON.parse)."""
    blob = re.search(r'<script type="application/json" id="study-data">(.*?)</script>', html, re.S).group(1)
    return json.loads(blob)


# --------------------------------------------------------------------------- bundle


def test_bundle_items_slots_and_key_trace_back_to_the_right_images(runs, tmp_path):
    made = make([runs["M"], runs["MPC"]], tmp_path / "study")
    study = read_study(made.out)
    assert made.models == ["base", "korea-M", "korea-MPC"] and made.items == 3 * 2
    assert {(i["prompt_id"], i["seed"]) for i in study.items} == {(f"korea-p{p}", s) for p in range(3)
                                                                       for s in range(2)}
    for item in study.items:
        assert sorted(item["slots"]) == ["A", "B", "C"]
        assert sorted(item["slots"].values()) == ["base", "korea-M", "korea-MPC"]
    # The slots are shuffled: not every item shows the models in the same order.
    assert len({tuple(i["slots"].values()) for i in study.items}) > 1
    data = survey_data((made.out / "survey.html").read_text())
    by_id = {i["id"]: i for i in study.items}
    for item in data["items"]:
        key = by_id[item["id"]]
        p = int(key["prompt_id"][-1])
        for image in item["images"]:
            pixels = np.asarray(decode(image["src"]).convert("RGB"), dtype=float).reshape(-1, 3).mean(0)
            assert np.allclose(pixels, colour(key["slots"][image["slot"]], p, key["seed"]), atol=3), image["slot"]
    crowd = list(csv.DictReader((made.out / "crowd" / "items.csv").open()))
    assert [r["item_id"] for r in crowd] == [i["id"] for i in study.items]
    assert all(r["study_id"] == made.study_id for r in crowd)
    first = Image.open(made.out / "crowd" / crowd[0]["image_B"])
    assert np.allclose(np.asarray(first, dtype=float).reshape(-1, 3).mean(0),
                       colour(study.items[0]["slots"]["B"], 0, 0), atol=3)


def test_bundle_hides_model_identities(runs, tmp_path):
    made = make([runs["M"], runs["MPC"]], tmp_path / "study")
    study = read_study(made.out)
    secrets = ["korea-M", "korea-MPC", "key-base", "key-korea-M", "safetensors", str(runs["root"]), "cache/"]
    shown = [made.out / "survey.html", *(made.out / "crowd").rglob("*")]
    for path in shown:
        if path.is_file():
            text = path.read_bytes().decode("latin-1")
            assert not [s for s in secrets if s in text], path
    for path in (made.out / "crowd" / "images").iterdir():
        with Image.open(path) as im:
            assert im.format == "JPEG" and "model" not in im.info and not im.getexif()
    # The key is in study.json, which stays with the organisers.
    assert "korea-MPC" in (made.out / "study.json").read_text() and study.models[0]["name"] == "base"


def test_bundle_is_reproducible_and_the_seed_changes_it(runs, tmp_path):
    a = make([runs["M"], runs["MPC"]], tmp_path / "a")
    b = make([runs["M"], runs["MPC"]], tmp_path / "b")
    assert a.study_id == b.study_id
    assert read_study(a.out).items[0]["slots"] == read_study(b.out).items[0]["slots"]
    assert (a.out / "metrics.csv").read_bytes() == (b.out / "metrics.csv").read_bytes()
    cfg = config()
    cfg.study.seed = 7
    c = make([runs["M"], runs["MPC"]], tmp_path / "c", cfg)
    assert c.study_id != a.study_id
    assert [i["slots"] for i in read_study(c.out).items] != [i["slots"] for i in read_study(a.out).items]


def test_bundle_sampling_metrics_and_separate_benchmarks(runs, tmp_path):
    cfg = config()
    cfg.study.items = 4
    made = make([runs["M"], runs["MPC"]], tmp_path / "study", cfg)
    study = read_study(made.out)
    assert made.items == 4 and len({(i["prompt_id"], i["seed"]) for i in study.items}) == 4
    metrics = read_metrics(made.out / "metrics.csv")
    for item in study.items:
        for model in item["slots"].values():
            assert metrics[(item["id"], model)]["clip_score"] == len(model) + item["seed"]
    # Each run benchmarked on its own: base from either, each LoRA from its own benchmark.
    x, y = tmp_path / "sep" / "korea-M", tmp_path / "sep" / "korea-lora"
    write_benchmark(x, ["base", "korea-M"])
    write_benchmark(y, ["base", "korea-lora"])
    both = make([x, y], tmp_path / "sep-study")
    assert both.models == ["base", "korea-M", "korea-lora"]
    without_base = make([x, y], tmp_path / "nobase", base=False)
    assert without_base.models == ["korea-M", "korea-lora"]


def test_bundle_refuses_what_it_cannot_pair(runs, tmp_path):
    with pytest.raises(StudyError, match="ccub benchmark --model"):
        make([tmp_path / "runs" / "never-benchmarked"], tmp_path / "s1")
    other = tmp_path / "other" / "korea-lora"
    write_benchmark(other, ["base", "korea-lora"], settings={**SETTINGS, "steps": 50})
    with pytest.raises(StudyError, match="generation settings"):
        make([runs["M"], other], tmp_path / "s2")
    clip = tmp_path / "clip" / "korea-lora"
    write_benchmark(clip, ["base", "korea-lora"], clip="ViT-L-14:openai")
    with pytest.raises(StudyError, match="CLIP scorer"):
        make([runs["M"], clip], tmp_path / "s3")
    with pytest.raises(StudyError, match="--culture india"):
        make([runs["M"]], tmp_path / "s4", culture="india")
    lonely = tmp_path / "sep2" / "korea-lora"
    write_benchmark(lonely, ["base"])  # a benchmark without the run's own images
    with pytest.raises(StudyError, match="no benchmark images of korea-lora"):
        make([runs["M"], lonely], tmp_path / "s5")


def test_an_existing_study_is_never_replaced_silently(runs, tmp_path):
    out = tmp_path / "study"
    first = make([runs["M"], runs["MPC"]], out)
    again = make([runs["M"], runs["MPC"]], out)  # same study: rebuilt in place
    assert again.study_id == first.study_id
    cfg = config()
    cfg.study.seed = 3
    with pytest.raises(StudyError, match="holds another study"):
        make([runs["M"], runs["MPC"]], out, cfg)
    assert read_study(out).study_id == first.study_id
    replaced = make([runs["M"], runs["MPC"]], out, cfg, force=True)
    assert read_study(out).study_id == replaced.study_id != first.study_id
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")], "no partial or old bundle left"


def test_an_unreadable_image_fails_cleanly(runs, tmp_path):
    manifest = json.loads((runs["M"] / "benchmark" / "benchmark.json").read_text())
    Path(manifest["images"][0]["path"]).write_bytes(b"not a png")
    with pytest.raises(StudyError, match="cannot read this benchmark image"):
        make([runs["M"], runs["MPC"]], tmp_path / "study")
    assert not (tmp_path / "study").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".study")]


# --------------------------------------------------------------------------- responses


@pytest.fixture
def study(runs, tmp_path) -> dict:
    made = make([runs["M"], runs["MPC"]], tmp_path / "study")
    return read_study(made.out)


def response(study: dict, participant: str = "p-1", order=("C", "A", "B"), **changes) -> dict:
    doc = {"format": "ccub-study-response", "version": 1, "study_id": study.study_id, "participant": participant,
           "consent": True, "affiliation": {"identifies": "yes", "description": "Korean, Seoul"},
           "started": "2026-11-29T10:00:00+00:00", "finished": "2026-11-29T10:20:00+00:00",
           "items_shown": [i["id"] for i in study.items],
           "answers": [{"item": i["id"], "question": q, "ranking": list(order)} for i in study.items
                       for q in study.questions]}
    return {**doc, **changes}


def write(folder: Path, name: str, content) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def test_survey_json_slots_become_models(study, tmp_path):
    write(tmp_path / "r", "a.json", response(study))
    found, rejected = read_responses(tmp_path / "r", [study])
    got = found[study.study_id]
    assert rejected == [] and set(got.participants) == {"p-1"} and got.participants["p-1"].identifies == "yes"
    assert len(got.rankings) == len(study.items) * 4
    for r in got.rankings:
        slots = next(i["slots"] for i in study.items if i["id"] == r.item)
        assert r.models == (slots["C"], slots["A"], slots["B"])


@pytest.mark.parametrize(("change", "message"), [
    ({"study_id": "000000000000"}, "not the id of the study analysed"),
    ({"consent": False}, "did not consent"),
    ({"format": "something"}, "not a file saved by survey.html"),
    ({"answers": []}, "ranked nothing"),
])
def test_bad_response_files_are_rejected_by_name(study, tmp_path, change, message):
    path = write(tmp_path / "r", "bad.json", response(study, **change))
    write(tmp_path / "r", "good.json", response(study, "p-2"))
    found, rejected = read_responses(tmp_path / "r", [study])
    assert len(rejected) == 1 and str(path) in rejected[0] and message in rejected[0]
    assert set(found[study.study_id].participants) == {"p-2"}


def test_incomplete_or_repeated_rankings_are_rejected(study, tmp_path):
    doc = response(study)
    doc["answers"][4]["ranking"] = ["A", "A", "B"]
    write(tmp_path / "r1", "x.json", doc)
    _, rejected = read_responses(tmp_path / "r1", [study])
    assert "answers[5]" in rejected[0] and "exactly once" in rejected[0]
    doc = response(study)
    doc["answers"] = doc["answers"][:-4]  # the last item shown is not ranked
    write(tmp_path / "r2", "x.json", doc)
    _, rejected = read_responses(tmp_path / "r2", [study])
    assert "not ranked" in rejected[0] and study.items[-1]["id"] in rejected[0]
    write(tmp_path / "r3", "x.json", "{not json")
    _, rejected = read_responses(tmp_path / "r3", [study])
    assert "not valid JSON" in rejected[0]


def test_survey_csv_and_crowd_results(study, tmp_path):
    items = study.items
    lines = ["study_id,participant,item,question,ranking,identifies,affiliation,consent,started,finished"]
    lines += [f'{study.study_id},p-9,{i["id"]},{q},B>C>A,no,"Busan, ""Korea""",true,2026-11-29T10:00:00Z,'
              f'2026-11-29T10:20:00Z'
              for i in items for q in study.questions]
    write(tmp_path / "r", "survey.csv", "\n".join(lines) + "\n")
    crowd = ["WorkerId,Input.item_id,Input.study_id,Answer.alignment,Answer.representation,Answer.identifies"]
    crowd += [f"W1,{i['id']},{study.study_id},A>B>C,C>B>A,yes" for i in items[:3]]
    write(tmp_path / "r", "batch1.csv", "\n".join(crowd) + "\n")
    crowd2 = [crowd[0], *(f"W1,{i['id']},{study.study_id},A>B>C,C>B>A,yes" for i in items[3:])]
    write(tmp_path / "r", "batch2.csv", "\n".join(crowd2) + "\n")
    found, rejected = read_responses(tmp_path / "r", [study])
    got = found[study.study_id]
    assert rejected == []
    assert got.participants["p-9"].identifies == "no"
    crowd_rankings = [r for r in got.rankings if r.participant == "W1"]
    assert len(crowd_rankings) == 2 * len(items), "two crowd batches of one worker add up"
    assert {r.question for r in crowd_rankings} == {"alignment", "representation"}
    first = next(r for r in crowd_rankings if r.item == items[0]["id"] and r.question == "representation")
    assert first.models == tuple(items[0]["slots"][s] for s in "CBA")


@pytest.mark.parametrize(("policy", "counted"), [("latest", "CBA"), ("first", "ABC"), ("drop", None)])
def test_a_resubmission_is_settled_by_the_policy(study, tmp_path, policy, counted):
    # The later file is named first and written in another time zone: times are compared, not names or text.
    write(tmp_path / "r", "b-early.json", response(study, order=("A", "B", "C"), finished="2026-11-29T12:00:00+02:00"))
    write(tmp_path / "r", "a-late.json", response(study, order=("C", "B", "A"), finished="2026-11-29T11:00:00+00:00"))
    write(tmp_path / "r", "c-same.json", response(study, "p-2"))
    write(tmp_path / "r", "d-same-again.json", response(study, "p-2"))  # the same file twice: no conflict
    found, rejected = read_responses(tmp_path / "r", [study], resubmission=policy)
    got = found[study.study_id]
    item = study.items[0]
    mine = {r.models for r in got.rankings if r.item == item["id"] and r.participant == "p-1"}
    assert rejected == [] and got.resubmission == policy
    assert mine == ({tuple(item["slots"][s] for s in counted)} if counted else set())
    assert len([r for r in got.rankings if r.participant == "p-2"]) == len(study.items) * 4
    [conflict] = got.conflicts
    kept = {Path(p.source).name for p in conflict.kept}
    assert conflict.participant == "p-1" and conflict.policy == policy
    assert kept == {"latest": {"a-late.json"}, "first": {"b-early.json"}, "drop": set()}[policy]
    assert {Path(p.source).name for p in conflict.kept + conflict.set_aside} == {"a-late.json", "b-early.json"}


# --------------------------------------------------------------------------- analysis


def test_hand_computed_counts_ranks_and_agreement(study, tmp_path):
    """Two participants, every item: one ranks C>A>B, the other A>C>B (slots)."""
    write(tmp_path / "r", "1.json", response(study, "p-1", ("C", "A", "B")))
    write(tmp_path / "r", "2.json", response(study, "p-2", ("A", "C", "B")))
    found, _ = read_responses(tmp_path / "r", [study])
    s = config().study
    s.bootstrap = 200
    result = analyze(study, found[study.study_id], {}, s)
    n = len(study.items)
    item = study.items[0]
    models = [m["name"] for m in study.models]
    items, scores, rated = score_arrays([r for r in found[study.study_id].rankings if r.question == "alignment"],
                                        models)
    people = (scores * rated[:, :, None]).sum(0) / rated.sum(0)[:, None]
    # C and A: first once (1) and second once (0.5) in a ranking of three; B always last (0).
    expected = {item["slots"]["C"]: 0.75, item["slots"]["A"]: 0.75, item["slots"]["B"]: 0.0}
    assert dict(zip(models, people[items.index(item["id"])], strict=True)) == expected
    # Per item, C>A>B and A>C>B give: C over A once, A over C once, C and A over B twice each.
    expected: dict[tuple[str, str], int] = {}
    for i in study.items:
        a, b, c = (i["slots"][x] for x in "ABC")
        for pair, count in (((c, a), 1), ((a, c), 1), ((c, b), 2), ((a, b), 2)):
            expected[pair] = expected.get(pair, 0) + count
    wins = {(w.model, w.opponent): w.wins for w in result.wins if w.question == "alignment"}
    assert {k: v for k, v in wins.items() if v} == expected
    assert sum(w.comparisons for w in result.wins if w.question == "alignment") == 2 * (2 * 3 * n)
    mean_rank = {st.model: st.mean_rank for st in result.strengths if st.question == "alignment"}
    assert sum(mean_rank.values()) == pytest.approx(6.0)  # ranks 1 + 2 + 3, whatever the slots hid
    # Kendall's W of one item: rank sums of C, A, B are 3, 3, 6 -> S = 6, W = 12 * 6 / (4 * 24) = 0.75.
    agreement = next(g for g in result.agreement if g.question == "alignment")
    assert agreement.kendall_w == pytest.approx(0.75) and agreement.chance == pytest.approx(0.5)
    assert agreement.items == n and agreement.mean_raters == 2


def test_planted_ranking_is_recovered_within_the_intervals(study, tmp_path):
    planted = {"base": -0.8, "korea-M": 0.1, "korea-MPC": 0.7}
    docs = simulate(study, participants=60, strengths=planted, seed=11)
    write_responses(docs, tmp_path / "r")
    found, rejected = read_responses(tmp_path / "r", [study])
    assert rejected == []
    s = config().study
    s.bootstrap = 400
    result = analyze(study, found[study.study_id], {}, s)
    assert result.simulated and result.participants == 60
    centred = {m: v - np.mean(list(planted.values())) for m, v in planted.items()}
    for strength in result.strengths:
        truth = centred[strength.model]
        assert strength.low <= truth <= strength.high, strength
        if strength.model != "base":
            p_true = 1 / (1 + math.exp(planted["base"] - planted[strength.model]))
            assert strength.p_low <= p_true <= strength.p_high, strength
    for q in study.questions:
        order = [s.model for s in sorted((s for s in result.strengths if s.question == q), key=lambda s: s.rank)]
        assert order == ["korea-MPC", "korea-M", "base"], q
    agreement = result.agreement[0]
    assert agreement.kendall_w > agreement.chance


def test_planted_proxy_correlations_are_recovered(tmp_path):
    """People rank by utility = item effect (Plackett-Luce); the proxies are planted: clip_score follows the
    utility with noise, framing_margin (lower is better) equals the utility, so it prefers what people reject,
    relevance_margin is noise. The true within-item tau of clip_score is computed from the utilities."""
    rng = np.random.default_rng(5)
    models = ["base", "korea-M", "korea-MPC"]
    n_prompts, n_seeds = 12, 4
    utility = {(m, f"korea-p{p}", s): rng.normal(0, 2.0) for m in models for p in range(n_prompts)
               for s in range(n_seeds)}
    noise = {k: rng.normal(0, 1.5) for k in utility}
    rubbish = {k: rng.normal() for k in utility}

    def metrics(model, prompt, seed):
        k = (model, prompt, seed)
        return {"clip_score": utility[k] + noise[k], "framing_margin": utility[k], "relevance_margin": rubbish[k]}

    run = tmp_path / "runs" / "korea-M"
    write_benchmark(run, models, prompts=n_prompts, seeds=n_seeds, metrics=metrics)
    made = make([run, tmp_path / "runs" / "korea-MPC"], tmp_path / "study")
    study = read_study(made.out)
    effects = {(i["id"], m): utility[(m, i["prompt_id"], i["seed"])] for i in study.items for m in models}
    write_responses(simulate(study, participants=40, item_effects=effects, seed=2), tmp_path / "r")
    found, _ = read_responses(tmp_path / "r", [study])
    s = config().study
    s.bootstrap = 500
    result = analyze(study, found[study.study_id], read_metrics(made.out / "metrics.csv"), s)
    tau = {c.metric: c for c in result.correlations if c.question == "representation"}
    # The truth: tau between the proxy and the utilities people rank by, on a large fresh sample.
    big = np.random.default_rng(9)
    true_tau = np.mean([stats.kendall_tau_b(u + big.normal(0, 1.5, 3), u)
                        for u in big.normal(0, 2.0, (20000, 3))])
    good = tau["clip_score"]
    assert good.low <= true_tau <= good.high and good.items == n_prompts * n_seeds and good.prompts == n_prompts
    assert tau["framing_margin"].high < -0.6
    assert tau["relevance_margin"].low <= 0 <= tau["relevance_margin"].high


# --------------------------------------------------------------------------- outputs and CLI


def test_a_random_clip_scorer_alone_makes_a_test_study(tmp_path):
    run = tmp_path / "runs" / "korea-M"
    write_benchmark(run, ["base", "korea-M"], clip_random_weights=True)
    assert read_study(make([run], tmp_path / "study").out).smoke_run is True
    write_benchmark(tmp_path / "runs" / "korea-MP", ["base", "korea-MP"])
    assert read_study(make([tmp_path / "runs" / "korea-MP"], tmp_path / "study2").out).smoke_run is False


def test_outputs_label_simulated_and_smoke_studies(tmp_path):
    run = tmp_path / "runs" / "korea-M"
    write_benchmark(run, ["base", "korea-M"], random_weights=True,
                    metrics=lambda model, p, s: {"clip_score": float(len(model) + s)})
    made = make([run], tmp_path / "study")
    study = read_study(made.out)
    assert study.smoke_run is True
    write_responses(simulate(study, 5, {"korea-M": 1.0}), tmp_path / "r")
    found, _ = read_responses(tmp_path / "r", [study])
    s = config().study
    s.bootstrap = 100
    result = analyze(study, found[study.study_id], read_metrics(made.out / "metrics.csv"), s)
    files = write_outputs([result], tmp_path / "analysis")
    assert [f.name for f in files] == ["rankings.csv", "win_rates.csv", "agreement.csv", "proxies.csv",
                                       "conflicts.csv", "analysis.md", "report.html"]
    md = (tmp_path / "analysis" / "analysis.md").read_text()
    html = (tmp_path / "analysis" / "report.html").read_text()
    for text in (md, html):
        assert "TEST STUDY" in text and "SIMULATED RESPONSES" in text
    assert html.count("data:image/png;base64") == 2, "strengths and proxy plots"
    rankings = list(csv.DictReader((tmp_path / "analysis" / "rankings.csv").open()))
    assert len(rankings) == 2 * 4 and all(r["simulated"] == "True" and r["smoke_run"] == "True" for r in rankings)
    assert {r["culture"] for r in rankings} == {"korea"}


def test_an_edited_or_newer_key_is_refused_naming_the_file_and_the_rebuild(runs, tmp_path):
    made = make([runs["M"], runs["MPC"]], tmp_path / "study")
    path = made.out / "study.json"
    original = json.loads(path.read_text())
    assert (original["format"], original["version"]) == ("ccub-study", 1), "the format bundles in use keep"
    for change, message in (
            (lambda d: d["items"][0]["slots"].update(A=d["items"][0]["slots"]["B"]), "does not show every model once"),
            (lambda d: d.update(version=2), "ccub-study version 2, but this ccub reads version 1"),
            (lambda d: d.update(seed="7"), "seed = '7' (str); expected an integer")):
        edited = json.loads(json.dumps(original))
        change(edited)
        path.write_text(json.dumps(edited))
        with pytest.raises(StudyError, match=re.escape(str(path))) as caught:
            read_study(made.out)
        text = str(caught.value)
        assert message in text and "rebuild it with the same `ccub study make` command" in text


def test_cli_make_simulate_analyze(runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("ccub.toml").write_text("[study]\nbootstrap = 200\n")  # read from the working folder, as users do
    cli = CliRunner()
    made = cli.invoke(app, ["study", "make", str(runs["M"]), str(runs["MPC"]), "--out", "study", "--items", "5",
                            "--per-participant", "3"])
    assert made.exit_code == 0, made.output
    assert "survey.html" in made.output and "private" in made.output
    study = read_study(Path("study"))
    assert len(study.items) == 5 and study.per_participant == 3
    assert survey_data(Path("study/survey.html").read_text())["per_participant"] == 3
    simulated = cli.invoke(app, ["study", "simulate", "study", "--out", "responses", "--participants", "8",
                                 "--strength", "korea-MPC=2"])
    assert simulated.exit_code == 0 and "SIMULATED" in simulated.output, simulated.output
    analysed = cli.invoke(app, ["study", "analyze", "study", "responses"])
    assert analysed.exit_code == 0, analysed.output
    assert "SIMULATED" in analysed.output and "korea-MPC" in analysed.output
    assert Path("study/analysis/report.html").is_file()
    written = sorted(p.relative_to("study").as_posix() for p in Path("study").rglob("*.csv"))
    assert written == ["analysis/agreement.csv", "analysis/conflicts.csv", "analysis/proxies.csv",
                       "analysis/rankings.csv", "analysis/win_rates.csv", "crowd/items.csv", "metrics.csv"]
    assert undocumented_columns(Path("study")) == {}, "docs/outputs.md lacks these columns"
    write(Path("responses"), "other.json", response(study, study_id="ffffffffffff"))
    partly = cli.invoke(app, ["study", "analyze", "study", "responses", "--out", "a2"])
    assert partly.exit_code == 1 and "other.json" in partly.output and Path("a2/rankings.csv").is_file()
    assert "8 response file(s) read, 1 rejected" in partly.output
    empty = cli.invoke(app, ["study", "analyze", "study", str(tmp_path / "nothing")])
    assert empty.exit_code == 2
    Path("empty").mkdir()
    none = cli.invoke(app, ["study", "analyze", "study", "empty"])
    assert none.exit_code == 2 and "no usable rankings" in none.output
    bad = cli.invoke(app, ["study", "simulate", "study", "--out", "r2", "--strength", "nobody=1"])
    assert bad.exit_code == 2 and "not in the study" in bad.output


def test_cli_analyzes_one_study_per_culture_together(runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("ccub.toml").write_text("[study]\nbootstrap = 100\n")
    india = tmp_path / "runs-india" / "india-M"
    write_benchmark(india, ["base", "india-M"], culture="india")
    cli = CliRunner()
    for run, out in (([runs["M"], runs["MPC"]], "study/korea"), ([india], "study/india")):
        made = cli.invoke(app, ["study", "make", *map(str, run), "--out", out])
        assert made.exit_code == 0, made.output
    keys = [read_study(Path("study") / c) for c in ("korea", "india")]
    for key in keys:
        write_responses(simulate(key, 4, seed=len(key.models)), Path("responses"))
    # A crowd file without a study id cannot say which of the two studies it answers.
    write(Path("responses"), "crowd.csv", "WorkerId,Input.item_id,Answer.alignment\nW1,i001,A>B\n")
    analysed = cli.invoke(app, ["study", "analyze", "study", "responses"])
    assert analysed.exit_code == 1, analysed.output
    assert "crowd.csv" in analysed.output and "not the id of the study" in analysed.output
    rankings = list(csv.DictReader(io.StringIO(Path("study/analysis/rankings.csv").read_text())))
    assert {(r["culture"], r["model"]) for r in rankings} == {
        ("korea", "base"), ("korea", "korea-M"), ("korea", "korea-MPC"), ("india", "base"), ("india", "india-M")}
    html = Path("study/analysis/report.html").read_text()
    assert html.count("<section>") == 2 and "South Korea" in html and "India" in html


def test_hostile_response_files_are_rejected_without_breaking_the_console(study, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("ccub.toml").write_text("[study]\nbootstrap = 50\n")
    write(Path("r"), "deep.json", "[" * 100_000 + "]" * 100_000)
    doc = response(study)
    doc["answers"][0]["item"] = "[/][bold]x[/bold]"  # rich markup in a message must be printed as text
    write(Path("r"), "markup.json", doc)
    write(Path("r"), "good.json", response(study, "p-2"))
    result = CliRunner().invoke(app, ["study", "analyze", str(tmp_path / "study"), "r"])
    assert result.exit_code == 1, result.output
    assert "deeper than limits.max_json_depth" in result.output
    assert "'[/][bold]x[/bold]' is not in this study" in result.output
    assert "1 participants" in result.output and "understate the uncertainty" in result.output


def test_translation_crowd_urls_and_affiliated_participants(runs, tmp_path):
    texts = tmp_path / "ko.toml"
    texts.write_text('title = "문화 연구: {culture}"\n[questions.alignment]\ntitle = "설명과 얼마나 맞습니까?"\n',
                     encoding="utf-8")
    made = make([runs["M"], runs["MPC"]], tmp_path / "study", texts=texts, crowd_url="https://example.org/s1/")
    data = survey_data((made.out / "survey.html").read_text(encoding="utf-8"))
    assert data["title"] == "문화 연구: South Korea"
    assert data["texts"]["questions"]["alignment"]["title"] == "설명과 얼마나 맞습니까?"
    crowd = list(csv.DictReader(io.StringIO((made.out / "crowd" / "items.csv").read_text())))
    assert crowd[0]["image_A"] == f"https://example.org/s1/images/{crowd[0]['item_id']}-A.jpg"
    # People who identify with the culture prefer the fine-tuned model; the others prefer the base model.
    study = read_study(made.out)
    members = simulate(study, 12, {"korea-MPC": 2.0}, seed=1, identifies="yes")
    others = simulate(study, 12, {"base": 2.0}, seed=2, identifies="no")
    for n, doc in enumerate(others):
        doc["participant"] = f"other-{n}"
    write_responses(members + others, tmp_path / "r")
    found, _ = read_responses(tmp_path / "r", [study])
    s = config().study
    s.bootstrap = 100
    best = {}
    for group in ("all", "affiliated"):
        result = analyze(study, found[study.study_id], {}, s, group)
        best[group] = next(x.model for x in result.strengths if x.question == "representation" and x.rank == 1)
        assert result.participants == (24 if group == "all" else 12)
    assert best["affiliated"] == "korea-MPC"
    assert result.identifies == {"yes": 12, "no": 0, "unsaid": 0}
