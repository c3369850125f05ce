"""`iaa explain`: gradient maps through the run's own graph, and occlusion maps for any head."""
import numpy as np
import pytest

from features.core.errors import UsageError
from pipeline.cli import main
from pipeline.extraction.worker import get_extractor, prepare_image
from pipeline.scoring.explain import _score_tensor, explain, view_gradients
from pipeline.scoring.predictor import Predictor


def _photo(scored, i=1):
    return str(scored["folder"] / "images" / f"p{i:02d}.jpg")


def test_the_gradient_is_the_derivative_of_the_runs_score(scored):
    import tensorflow as tf

    predictor = Predictor.from_run(scored["runs"]["single1fc"])
    views, _ = prepare_image(_photo(scored), predictor.job)
    grads = view_gradients(predictor, views)
    extractor = get_extractor(predictor.job)

    def score(x):
        feats = extractor.pooled(tf.constant(x, tf.float32))[predictor.kind]
        return float(tf.reduce_mean(_score_tensor(predictor, predictor.model(feats, training=False))))

    rng = np.random.default_rng(0)
    direction = rng.normal(size=views.shape[:1] + (4, 4, 3))
    direction = np.stack([np.kron(d, np.ones((views.shape[1] // 4 + 1, views.shape[2] // 4 + 1, 1)))
                          [: views.shape[1], : views.shape[2]] for d in direction])
    x, eps = views.astype(np.float64), 0.01  # ReLU kinks: the difference quotient converges as eps shrinks
    numeric = (score(x + eps * direction) - score(x - eps * direction)) / (2 * eps)
    analytic = float((grads * direction).sum())
    assert analytic == pytest.approx(numeric, rel=0.1, abs=1e-6)


def test_occlusion_explains_any_head_and_auto_picks_the_gradient_for_keras(scored):
    ridge = explain(Predictor.from_run(scored["runs"]["ridge"]), _photo(scored), "auto", grid=3)
    assert ridge.method == "occlusion" and ridge.heat.shape == (56, 72)
    assert len(np.unique(ridge.heat)) > 1  # cells differ
    keras = explain(Predictor.from_run(scored["runs"]["single1fc"]), _photo(scored), "auto")
    assert keras.method == "gradient" and keras.heat.shape == (56, 72)
    stored = Predictor.from_run(scored["runs"]["single1fc"]).score_paths([_photo(scored)]).score[0]
    assert keras.score == pytest.approx(stored)
    # TensorFlow has no gradient for area resizing (wide kinds): auto falls back, gradient refuses
    wide = Predictor.from_run(scored["runs"]["pool3fc_dist"])
    assert wide.notes == []  # trained on a store pooled as today
    assert explain(wide, _photo(scored), "auto", grid=2).method == "occlusion"
    with pytest.raises(UsageError, match="not differentiable"):
        explain(wide, _photo(scored), "gradient")


def test_explain_command_saves_overlays_and_refuses_a_gradient_without_one(scored, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["explain", str(scored["runs"]["single1fc"]), _photo(scored, 2), _photo(scored, 3),
                 "--out", str(out)]) == 0
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 2 and all(p.stat().st_size > 10_000 for p in pngs)
    assert "(gradient)" in capsys.readouterr().out
    assert main(["explain", str(scored["runs"]["ridge"]), _photo(scored), "--method", "gradient"]) == 2
    assert "scikit-learn head: no gradient" in capsys.readouterr().err
    assert main(["explain", str(scored["runs"]["ridge"]), str(tmp_path / "missing.jpg"), "--grid", "2",
                 "--out", str(out)]) == 1
    assert "failed" in capsys.readouterr().out
