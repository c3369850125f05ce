"""`iaa video`: frames sampled from a video OpenCV writes here, scored, smoothed, cut into shots, key frames."""
import csv

import numpy as np

from conftest import random_photo
from pipeline.cli import main
from pipeline.scoring.video import pick_key_frames, smooth


def _two_shot_video(path, fps=10, frames_per_shot=20, size=(64, 48)):
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert writer.isOpened()
    for shot, tint in enumerate(((1.0, 0.3, 0.2), (0.2, 0.4, 1.0))):  # a red scene, then a blue one
        base = random_photo(size[1], size[0], seed=shot) * np.array(tint)
        for k in range(frames_per_shot):
            frame = np.clip(base * (0.7 + 0.3 * k / frames_per_shot), 0, 255).astype(np.uint8)
            writer.write(np.ascontiguousarray(frame[..., ::-1]))
    writer.release()
    return path


def test_smoothing_never_crosses_a_cut_and_picks_are_a_shot_and_a_gap_apart():
    np.testing.assert_allclose(smooth(np.array([1, 2, 3, 9, 9.0]), 3, np.array([0, 0, 0, 1, 1])),
                               [1.5, 2, 2.5, 9, 9])
    values = np.array([5, 6, 7, 6, 1, 2, 3, 2.0])
    times = np.arange(8) * 0.5
    shots = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    assert pick_key_frames(values, times, shots, top=3, min_gap=0.0) == [2, 6]  # one per shot
    assert pick_key_frames(values, times, np.arange(8), top=3, min_gap=1.0) == [2, 0, 6]  # 1 s apart


def test_video_command_scores_frames_and_saves_key_frames(scored, tmp_path, capsys):
    import cv2

    video = _two_shot_video(tmp_path / "clip.mp4")
    out = tmp_path / "out"
    assert main(["video", str(scored["runs"]["single1fc"]), str(video), "--every", "2", "--top", "3",
                 "--min-gap", "0.5", "--smooth", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "scored 20 frames (10.00 fps video, 2 shots)" in printed
    with open(out / "frames.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["frame"]) for r in rows] == list(range(0, 40, 2))
    assert {int(r["shot"]) for r in rows[:10]} == {0} and {int(r["shot"]) for r in rows[10:]} == {1}
    picks = [r for r in rows if r["key_rank"]]
    assert len(picks) == 2 and {r["shot"] for r in picks} == {"0", "1"}  # at most one per shot
    assert all(np.isfinite(float(r["score"])) for r in rows)
    keyframes = sorted((out / "keyframes").glob("*.jpg"))
    assert len(keyframes) == 2 and cv2.imread(str(keyframes[0])).shape == (48, 64, 3)
    assert (out / "curve.png").stat().st_size > 5000


def test_a_file_that_is_not_a_video_is_one_line(scored, tmp_path, capsys):
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    assert main(["video", str(scored["runs"]["ridge"]), str(fake), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("iaa video: error:") and "cannot be decoded as a video" in err
    assert main(["video", str(scored["runs"]["ridge"]), str(tmp_path / "none.mp4")]) == 2
    assert "no such video file" in capsys.readouterr().err
