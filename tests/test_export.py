"""`iaa export`: the run as one image-to-score model that scores as `iaa score` does, checked on export."""
import numpy as np
import pytest

from features.images import decode_image
from pipeline.cli import main
from pipeline.scoring import export as ex
from pipeline.scoring import export_layers
from pipeline.scoring.predictor import Predictor


def _photos(scored, n=3):
    return [str(scored["folder"] / "images" / f"p{i:02d}.jpg") for i in range(n)]


@pytest.mark.parametrize("head, fmt", [("single1fc", "onnx"), ("pool3fc_dist", "saved_model"),
                                       ("pool3fc_dist", "keras")])
def test_exported_models_score_photos_as_iaa_score_does(scored, tmp_path, head, fmt):
    predictor = Predictor.from_run(scored["runs"][head])
    out = tmp_path / {"onnx": "model.onnx", "keras": "model.keras"}.get(fmt, "model")
    report = ex.export_run(predictor, fmt, out)
    assert report["difference"] <= report["tolerance"]
    expected = predictor.score_paths(_photos(scored))
    for i, photo in enumerate(_photos(scored)):
        score, dist = ex.run_exported(out, fmt, decode_image(photo))
        assert score == pytest.approx(expected.score[i], abs=1e-3)
        if head.endswith("_dist"):
            np.testing.assert_allclose(dist, expected.dist[i], atol=1e-4)


def test_views_cropped_in_the_graph_are_the_extraction_views():
    from features.augment import get_views, make_views

    image = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    views = get_views("crop_flip")
    np.testing.assert_array_equal(export_layers.crop_views(image, views).numpy(), make_views(image, views))


def test_an_export_that_disagrees_is_refused_and_removed(scored, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(ex, "run_exported", lambda path, fmt, image: (123.0, None))
    out = tmp_path / "model"
    with pytest.raises(ex.ExportError, match="not written"):
        ex.export_run(Predictor.from_run(scored["runs"]["single1fc"]), "saved_model", out)
    assert not out.exists()
    assert main(["export", str(scored["runs"]["ridge"]), "--out", str(tmp_path / "r")]) == 2
    assert "scikit-learn head: there is no graph to export" in capsys.readouterr().err


def test_onnx_is_refused_for_kinds_it_would_approximate(scored, tmp_path):
    with pytest.raises(ex.ExportError, match="export --format saved_model"):
        ex.export_run(Predictor.from_run(scored["runs"]["pool3fc_dist"]), "onnx", tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
