"""`iaa best-shot`: near-duplicates grouped by capture time and perceptual hash, the best of each picked."""
import csv

import numpy as np
from PIL import Image

from conftest import random_photo
from pipeline.cli import main
from pipeline.scoring.best_shot import Shot, capture_time, group_shots, picks


class _Hash:
    """Stands in for an imagehash.ImageHash: subtraction gives the Hamming distance."""

    def __init__(self, bits):
        self.bits = np.asarray(bits, bool)

    def __sub__(self, other):
        return int((self.bits != other.bits).sum())


def _save_with_time(path, array, when):
    exif = Image.Exif()
    exif.get_ifd(0x8769)[36867] = when
    Image.fromarray(array).save(path, exif=exif, quality=92)


def test_groups_follow_time_order_hash_distance_and_time_gap():
    a, b = np.zeros(64, bool), np.ones(64, bool)
    near = a.copy()
    near[:3] = True
    shots = [Shot("z.jpg", 1.0, 100.0, _Hash(a)), Shot("y.jpg", 3.0, 101.0, _Hash(near)),
             Shot("x.jpg", 2.0, 102.0, _Hash(b)),  # looks different: new group
             Shot("w.jpg", 5.0, 200.0, _Hash(b)),  # alike but 98 s later: new group
             Shot("v.jpg", 4.0, None, _Hash(b))]  # no capture time: after the timed ones, linked by looks
    ordered = group_shots(shots, max_distance=5, time_gap=10)
    assert [s.path for s in ordered] == ["z.jpg", "y.jpg", "x.jpg", "w.jpg", "v.jpg"]
    assert [s.group for s in ordered] == [0, 0, 1, 2, 2]
    assert [s.distance for s in ordered] == [None, 3, 61, 0, 0]
    assert picks(ordered) == {0: 1, 1: 2, 2: 3}


def test_capture_time_reads_exif_with_subseconds(tmp_path):
    path = tmp_path / "t.jpg"
    exif = Image.Exif()
    ifd = exif.get_ifd(0x8769)
    ifd[36867], ifd[37521] = "2024:05:01 10:00:05", "25"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(path, exif=exif)
    plain = tmp_path / "plain.jpg"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(plain)
    assert capture_time(str(path)) % 60 == 5.25
    assert capture_time(str(plain)) is None and capture_time(str(tmp_path / "none.jpg")) is None


def test_best_shot_command_groups_bursts_and_marks_the_best(scored, tmp_path, capsys):
    folder = tmp_path / "shots"
    folder.mkdir()
    for k in range(3):  # a burst of one scene, brightening
        _save_with_time(folder / f"a{k}.jpg", np.clip(random_photo(64, 80, seed=1) * (0.8 + 0.1 * k), 0, 255)
                        .astype(np.uint8), f"2024:05:01 10:00:0{k}")
    for k in range(2):  # another scene, a minute later
        _save_with_time(folder / f"b{k}.jpg", np.clip(random_photo(64, 80, seed=7)[:, ::-1] * (0.9 + 0.1 * k),
                                                      0, 255).astype(np.uint8), f"2024:05:01 10:01:0{k}")
    (folder / "broken.jpg").write_bytes(b"nope")
    out = tmp_path / "out"
    assert main(["best-shot", str(scored["runs"]["ridge"]), str(folder), "--out", str(out)]) == 1
    assert "5 photos scored, 1 failed; 2 groups, 2 of two or more shots" in capsys.readouterr().out
    with open(out / "groups.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["path"].rsplit("/", 1)[-1] for r in rows] == ["a0.jpg", "a1.jpg", "a2.jpg", "b0.jpg", "b1.jpg"]
    assert [r["group"] for r in rows] == ["0", "0", "0", "1", "1"]
    for g in ("0", "1"):
        members = [r for r in rows if r["group"] == g]
        best = max(members, key=lambda r: float(r["score"]))
        assert [r["pick"] for r in members].count("1") == 1 and best["pick"] == "1"
    assert rows[0]["capture_time"].startswith("2024-05-01T10:00:00")
    page = (out / "best_shot.html").read_text()
    assert page.count('class="photo pick"') == 2 and page.count('class="photo"') == 3


def test_photos_beyond_pillows_bomb_limit_are_hashed_from_their_decoding(tmp_path, monkeypatch):
    from pipeline.scoring.best_shot import perceptual_hash

    path = tmp_path / "huge.jpg"
    _save_with_time(path, random_photo(96, 128), "2024:05:01 10:00:00")
    normal = perceptual_hash(str(path))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # the photo is now a "bomb" to Pillow's open
    assert capture_time(str(path)) is None
    assert perceptual_hash(str(path)) - normal <= 4
