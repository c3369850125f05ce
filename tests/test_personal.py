"""Personal taste: the personal head learns a taste the general score misses and keeps the general ranking
when the answers add nothing; answers files; the active choice; `iaa personalize` end to end."""
import json

import numpy as np
import pytest

from heads.personal import PersonalHead
from pipeline.cli import main
from pipeline.training.active import RANDOM_FIRST, next_pair
from pipeline.training.personal import answers_to_pairs, read_answers


def _library(n=400, d=30, seed=0):
    rng = np.random.default_rng(seed)
    feats = rng.normal(size=(n, d))
    general = feats[:, 0] + 0.5 * rng.normal(size=n)
    return feats, general


def _answers(taste, k, rng):
    pairs = []
    while len(pairs) < k:
        a, b = rng.choice(len(taste), 2, replace=False)
        pairs.append((a, b) if taste[a] > taste[b] else (b, a))
    return pairs


def _accuracy(score, taste, rng, n=3000):
    a, b = rng.integers(0, len(taste), size=(2, n))
    keep = a != b
    return np.mean((score[a] > score[b])[keep] == (taste[a] > taste[b])[keep])


def test_a_taste_the_general_score_misses_is_learnt_from_answers():
    feats, general = _library()
    taste = 0.5 * general / general.std() + feats[:, 1]  # half the general score, half a direction it ignores
    X = np.column_stack([general, feats])
    model = PersonalHead(components=16).fit(X[:300], _answers(taste[:300], 80, np.random.default_rng(1)))
    rng = np.random.default_rng(2)
    held = slice(300, None)
    personal = _accuracy(model.predict(X[held]), taste[held], rng)
    baseline = _accuracy(general[held], taste[held], np.random.default_rng(2))
    assert model.choice_ == "personal" and personal > baseline + 0.1, (personal, baseline)
    assert model.cv_accuracy_ > model.cv_accuracy_general_
    np.testing.assert_allclose(model.predict(X[:300]).mean(), general[:300].mean(), atol=1e-9)  # the general scale


def test_answers_that_add_nothing_keep_the_general_ranking():
    feats, general = _library(seed=3)
    X = np.column_stack([general, feats])
    model = PersonalHead(components=16).fit(X, _answers(general, 40, np.random.default_rng(4)))
    assert model.choice_ == "general"
    order = np.argsort(model.predict(X))
    np.testing.assert_array_equal(order, np.argsort(general))


def test_answers_files_mix_pairs_and_ratings_and_name_bad_lines(tmp_path):
    path = tmp_path / "answers.csv"
    path.write_text("better,worse\na.jpg,b.jpg\nc.jpg,4\nd.jpg,2\ne.jpg,4\n")
    index = {n: i for i, n in enumerate(["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg"])}
    pairs, n_pairs, n_ratings = answers_to_pairs(read_answers(path), index, str(path))
    assert (n_pairs, n_ratings) == (1, 3) and sorted(pairs) == [(0, 1), (2, 3), (4, 3)]
    path.write_text("a.jpg,b.jpg\nz.jpg,a.jpg\n")
    from features.core.errors import UsageError

    with pytest.raises(UsageError, match=r"answers.csv:2: 'z.jpg' is not a photo of the library"):
        answers_to_pairs(read_answers(path), index, str(path))
    path.write_text("a.jpg\n")
    with pytest.raises(UsageError, match="answers.csv:1: expected two fields"):
        read_answers(path)


def test_the_next_pair_is_random_first_then_the_most_informative_and_never_repeats():
    feats, general = _library(n=60, d=8)
    X = np.column_stack([general, feats])
    rng = np.random.default_rng(0)
    taste = feats[:, 2]
    asked, answers, model = set(), [], None
    for k in range(30):
        codes = None if model is None else model.encode(X)
        a, b = next_pair(model if k >= RANDOM_FIRST else None, codes, len(X), asked, len(answers), rng)
        assert (a, b) not in asked and (b, a) not in asked and a != b
        asked.add((a, b))
        answers.append((a, b) if taste[a] > taste[b] else (b, a))
        model = PersonalHead(components=6).fit(X, answers)
    from pipeline.training.active import SWITCH, informativeness

    codes = model.encode(X)
    for n_answers in (SWITCH - 1, SWITCH):
        same = informativeness(model, codes[[0]] - codes[[0]], n_answers)
        other = informativeness(model, codes[[0]] - codes[[1]], n_answers)
        assert same[0] >= other[0] if n_answers < SWITCH else same[0] == pytest.approx(0.0, abs=1e-12)


def test_personalize_writes_a_run_that_scores_packs_and_describes_itself(scored, tmp_path, capsys, monkeypatch):
    from pipeline.scoring.predictor import Predictor

    monkeypatch.setenv("IAA_PACK_CACHE", str(tmp_path / "cache"))
    folder, general = scored["folder"] / "images", scored["runs"]["ridge"]
    photos = sorted(p.name for p in folder.glob("*.jpg"))
    # this person prefers the photos the general run likes least: answers reverse its order
    gen = Predictor.from_run(general).score_paths([str(folder / p) for p in photos]).score
    rng = np.random.default_rng(0)
    rows = ["better,worse"]
    for _ in range(40):
        a, b = rng.choice(len(photos), 2, replace=False)
        rows.append(f"{photos[a]},{photos[b]}" if gen[a] < gen[b] else f"{photos[b]},{photos[a]}")
    (tmp_path / "answers.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "me"
    assert main(["personalize", str(general), str(folder), "--answers", str(tmp_path / "answers.csv"),
                 "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["head"]["name"] == "personal" and config["personal"]["pair_answers"] == 40
    assert (out / "linked" / "general" / "model.skops").is_file() and (out / "answers.csv").is_file()
    mine = Predictor.from_run(out).score_paths([str(folder / p) for p in photos]).score
    assert np.corrcoef(mine, gen)[0, 1] < 0  # it learnt the reversal
    capsys.readouterr()
    assert main(["describe-run", str(out)]) == 0 and "(personal)" in capsys.readouterr().out
    assert main(["pack", str(out), "--out", str(tmp_path / "me.iaa")]) == 0
    from pipeline.scoring.score import resolve_run_dir

    unpacked, _ = resolve_run_dir(str(tmp_path / "me.iaa"))
    again = Predictor.from_run(unpacked).score_paths([str(folder / p) for p in photos]).score
    np.testing.assert_allclose(again, mine, rtol=1e-6)
    (out / "linked" / "general" / "model.skops").write_bytes(b"other")
    capsys.readouterr()
    assert main(["score", str(out), str(folder)]) == 2
    assert "is not the general run" in capsys.readouterr().err
