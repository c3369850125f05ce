import json

import numpy as np
import pytest

from features.backbones import get_backbone, list_backbones
from features.core.registry import UnknownNameError


def test_registry_lists_all_backbones():
    assert set(list_backbones()) >= {"irnv2", "iv3", "vgg16", "vgg16_hed", "resnet50", "resnet101",
                                    "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"}


def test_typo_suggests_the_closest_name():
    with pytest.raises(UnknownNameError, match="Did you mean 'irnv2'"):
        get_backbone("irnv3")


def test_irnv2_blocks_and_total():
    spec = get_backbone("irnv2")
    assert len(spec.blocks) == 43
    assert spec.total_channels == 16928
    assert spec.blocks[0] == "mixed_5b" and spec.blocks[11] == "mixed_6a" and spec.blocks[32] == "mixed_7a"
    assert spec.blocks[-1] == "block8_10_mixed"
    offsets = spec.block_offsets()
    assert offsets["mixed_5b"] == (0, 320) and offsets["block8_10_mixed"] == (16928 - 448, 16928)


def test_iv3_blocks_and_total():
    spec = get_backbone("iv3")
    assert spec.blocks == tuple(f"mixed{i}" for i in range(11))
    assert "mixed9_0" not in spec.blocks and "mixed9_1" not in spec.blocks
    assert spec.total_channels == 10048


@pytest.mark.parametrize("name", ["irnv2", "iv3", "resnet50", "vgg16", "vgg16_hed", "efficientnet_lite0", "convnext_tiny",
                                  "efficientnet_lite2"])
def test_built_model_has_the_declared_blocks(name):
    """The spec's block names and channels match the real keras graph (random weights)."""
    from features.weights import build_model, parse_weights

    spec = get_backbone(name)
    model = build_model(spec, parse_weights("random:0", spec))
    for block, channels in zip(spec.blocks, spec.channels):
        assert model.get_layer(block).output.shape[-1] == channels, block
    assert model.get_layer(spec.last_block).output.shape[-1] == spec.last_channels


def test_irnv2_min_side_is_exact():
    from features.extractor import Extractor

    ex = Extractor.from_names("irnv2", "random:0", "mlsp_narrow")
    side = ex.spec.min_side
    out = ex(np.zeros((1, side, side, 3), np.uint8))
    assert out["mlsp_narrow"].shape == (1, 16928)
    with pytest.raises(Exception):
        ex(np.zeros((1, side - 1, side - 1, 3), np.uint8))


def test_describe_json(capsys):
    from pipeline.cli import main

    assert main(["describe", "irnv2", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["total_channels"] == 16928 and len(info["blocks"]) == 43
    assert info["preprocessing"] == "tf" and sum(info["channels"]) == 16928


def test_describe_unknown_backbone_is_a_clear_error(capsys):
    from pipeline.cli import main

    assert main(["describe", "vgg61"]) == 2
    assert "Did you mean 'vgg16'" in capsys.readouterr().err


@pytest.mark.parametrize("name, n_taps, total", [("efficientnetv2_s", 41, 7824), ("convnext_tiny", 18, 6624)])
def test_modern_keras_backbones_extract_every_block(name, n_taps, total):
    """EfficientNetV2-S and ConvNeXt-Tiny (ImageNet weights where the network allows): one forward pass over
    random weights gives every block's tap, in order, with the declared widths."""
    from features.extractor import Extractor

    spec = get_backbone(name)
    assert len(spec.blocks) == n_taps and spec.total_channels == total
    ex = Extractor.from_names(name, "random:0", "mlsp_narrow,gmp")
    model, layers = ex.block_model
    assert [int(o.shape[-1]) for o in model.outputs][:n_taps] == list(spec.channels)
    out = ex(np.random.default_rng(0).integers(0, 256, (1, 64, 96, 3), dtype=np.uint8))
    assert out["mlsp_narrow"].shape == (1, total) and out["gmp"].shape == (1, spec.last_channels)
    assert np.all(np.isfinite(out["mlsp_narrow"].astype(np.float32)))


def test_gap_is_the_last_blocks_share_of_the_narrow_vector():
    """`gap` (ResNet's pool5, Schwarz et al.'s features) is the global average of the last block: the last
    block's channels of `mlsp_narrow`, where `gmp` is their maximum."""
    from features.extractor import Extractor

    spec = get_backbone("resnet50")
    ex = Extractor.from_names("resnet50", "random:0", "mlsp_narrow,gap,gmp")
    out = ex(np.random.default_rng(1).integers(0, 256, (1, 64, 80, 3), dtype=np.uint8))
    last = out["mlsp_narrow"][0, -spec.last_channels:].astype(np.float32)
    np.testing.assert_allclose(out["gap"][0].astype(np.float32), last, rtol=1e-3, atol=1e-3)
    assert np.all(out["gmp"][0].astype(np.float32) >= out["gap"][0].astype(np.float32) - 1e-3)
