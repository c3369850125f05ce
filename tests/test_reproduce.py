"""Every command of the five reproduction pages (`docs/reproduce/*.md`) runs, end to end, on synthetic stand-ins.

The pages' ```bash blocks are read as they are; each `iaa` command runs in-process in a scratch folder that
holds small synthetic datasets where the pages expect the real ones (`data/ava` with the release's side files,
`data/aadb` in the official layout with raters, `data/flickr`),
after the substitutions below, which every page lists under "How this page is tested":

- backbones other than VGG16 become `vgg16_hed` (5 blocks: a small graph for Multi-3FC), and `--weights imagenet`
  becomes `random:0` (no downloads, no ImageNet weights in CI; VGG16 stays VGG16 for `fc7`);
- `--resize short-side:500` / `warp:256` become 64 px (the photos are 48 × 64);
- `--seeds N` becomes 1; `train`/`ablate` get one stage of one epoch (`--max-epochs 1 --lr-stages
  1e-3`); `extract` runs its worker in-process;
- a `for X in A B ... Z; do ...; done` loop runs for its first value.

Then each page's runs are checked for the paper's metrics in their reports.
"""
import re
import shlex
from pathlib import Path

import numpy as np

from tests.conftest import random_photo, write_image

PAGES = Path(__file__).resolve().parents[1] / "docs" / "reproduce"
STAND_INS = ((r"--backbone (?!vgg16\b)\S+", "--backbone vgg16_hed"), (r"--weights imagenet", "--weights random:0"),
             (r"short-side:500", "short-side:64"), (r"warp:256", "warp:64"), (r"--seeds \d+", "--seeds 1"))
ONE_EPOCH = ["--max-epochs", "1", "--lr-stages", "1e-3"]
EXTRA = {"extract": ["--scheduler", "inprocess"], "train": ONE_EPOCH, "ablate": ONE_EPOCH}
LOOP = re.compile(r"for (\w+) in ([^;]+); do (.+); done")


def page_commands(name: str) -> list:
    """The `iaa` command lines of a page's bash blocks (continuations joined, comments dropped, loops run for
    their first value)."""
    text = (PAGES / f"{name}.md").read_text()
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" # ")[0].strip()
            loop = LOOP.fullmatch(line)
            if loop:
                first = loop.group(2).split()[0]
                lines.append(re.sub(rf"\${{?{loop.group(1)}}}?", first, loop.group(3)))
            elif line.startswith("iaa "):
                lines.append(line)
    return lines


def stand_in(line: str) -> list:
    for pattern, replacement in STAND_INS:
        line = re.sub(pattern, replacement, line)
    argv = shlex.split(line)[1:]
    return argv + EXTRA.get(argv[0], [])


def _votes(mos):
    return np.exp(-0.5 * (np.arange(1, 11)[None, :] - np.asarray(mos)[:, None]) ** 2) * 50


def _ava(root, n=64):
    """AVA's layout: AVA.txt (votes, tags, challenge), the official test list, tags, challenges, style lists."""
    rng = np.random.default_rng(0)
    mos = rng.uniform(3, 8, n)
    lines = []
    for i in range(n):
        image = random_photo(48, 64, seed=i)
        write_image(root / "images" / f"{1000 + i}.jpg", np.clip(image * (0.3 + mos[i] / 8), 0, 255).astype(np.uint8))
        votes = " ".join(str(int(v)) for v in _votes(mos[i:i + 1])[0])
        lines.append(f"{i + 1} {1000 + i} {votes} {14 if i % 2 else 0} {18 if i % 3 else 0} {1396 + i % 4}")
    (root / "AVA.txt").write_text("\n".join(lines) + "\n")
    (root / "aesthetics_image_lists").mkdir()
    (root / "aesthetics_image_lists" / "generic_test.jpgl").write_text("".join(f"{1000 + i}\n" for i in range(0, n, 5)))
    (root / "tags.txt").write_text("14 Landscape\n18 Nature\n")
    (root / "challenges.txt").write_text("".join(f"{1396 + k} Challenge_{k}\n" for k in range(4)))
    styles = root / "style_image_lists"
    styles.mkdir()
    (styles / "styles.txt").write_text("1 Complementary_Colors\n2 Duotones\n3 HDR\n")
    (styles / "train.jpgl").write_text("".join(f"{1000 + i}\n" for i in range(1, n, 5)))
    (styles / "train.lab").write_text("".join(f"{1 + i % 3}\n" for i in range(1, n, 5)))
    (styles / "test.jpgl").write_text(f"{1000}\n")
    (styles / "test.multilab").write_text("1 0 1\n")


def _aadb(root, n=60):
    """AADB's official layout (score and 11 attributes per split) and a raw rater export."""
    from pipeline.datasets.aadb import ATTRIBUTES, LIST_DIR

    rng = np.random.default_rng(1)
    names = [f"farm1_{100 + i}_p{i}_b.jpg" for i in range(n)]
    score = rng.uniform(0.1, 0.9, n)
    lists = root / LIST_DIR
    lists.mkdir(parents=True)
    for tag, part in (("Train", slice(0, 40)), ("Validation", slice(40, 48)), ("TestNew", slice(48, n))):
        (lists / f"imgList{tag}Regression_score.txt").write_text(
            "".join(f"{f} {s:.3f}\n" for f, s in zip(names[part], score[part])))
        for a, attribute in enumerate(ATTRIBUTES):
            (lists / f"imgList{tag}Regression_{attribute}.txt").write_text(
                "".join(f"{f} {np.tanh(s * 3 - 1.5 + a / 20):.2f}\n" for f, s in zip(names[part], score[part])))
    for i, f in enumerate(names):
        write_image(root / "datasetImages_originalSize" / f, np.clip(random_photo(48, 64, seed=i) * (0.3 + score[i]),
                                                                     0, 255).astype(np.uint8))
    url = "http://farm1.staticflickr.com/{s}/{p}_b.jpg"
    header = "HITId,WorkerId," + ",".join(f"Input.image_url{k},Answer.overallScore{k}" for k in (1, 2, 3))
    rows = [f"h{w}_{j},W{w}," + ",".join(f"{url.format(s=100 + i, p=f'p{i}')},{1 + int(4 * score[i] + w % 2)}"
                                         for i in (j, (j + 7) % n, (j + 13) % n))
            for w in range(4) for j in range(0, n, 2)]
    (root / "AADB_AllinAll.csv").write_text("\n".join([header] + rows) + "\n")


def _flickr(root, n=60):
    rng = np.random.default_rng(2)
    rows = []
    for i in range(n):
        quality = rng.uniform(0.2, 1.0)
        write_image(root / "images" / f"p{i:02d}.jpg", np.clip(random_photo(48, 64, seed=i) * quality, 0, 255)
                    .astype(np.uint8))
        views = int(50 + 2000 * quality * rng.uniform(0.5, 1.5))
        rows.append(f"p{i:02d}.jpg,{views},{int(views ** (0.3 + 0.5 * quality))},{30 + i},o{i % 8}")
    (root / "flickr.csv").write_text("\n".join(["file,views,favs,days,owner"] + rows) + "\n")


DATASETS = {"ava": _ava, "aadb": _aadb, "flickr": _flickr}


def run_page(name: str, tmp_path, monkeypatch, datasets) -> list:
    from pipeline.cli import main

    monkeypatch.chdir(tmp_path)
    for dataset in datasets:
        DATASETS[dataset](tmp_path / "data" / dataset)
    commands = page_commands(name)
    assert commands, f"docs/reproduce/{name}.md has no iaa commands"
    for line in commands:
        argv = stand_in(line)
        assert main(argv) == 0, f"docs/reproduce/{name}.md: {line}\n  ran as: iaa {' '.join(argv)}"
    return commands


def _report(path) -> str:
    return (Path(path) / "report.md").read_text()


def test_commands_are_read_from_the_pages_with_their_stand_ins():
    assert stand_in("iaa extract --backbone irnv2 --weights imagenet --resize warp:256")[:5] == [
        "extract", "--backbone", "vgg16_hed", "--weights", "random:0"]
    assert stand_in("iaa extract --backbone vgg16 --weights imagenet")[2] == "vgg16"
    assert set(p.stem for p in PAGES.glob("*.md")) == {"mlsp", "apm", "kong", "photo_critic", "schwarz"}


def test_mlsp_tables_2_and_3(tmp_path, monkeypatch):
    run_page("mlsp", tmp_path, monkeypatch, ["ava"])
    for run in ("mlsp_t2_single1fc5", "mlsp_t3_pool3fc", "mlsp_t3_single3fc_noaug", "mlsp_fig7_single3fc_last1"):
        text = _report(tmp_path / "runs" / run)
        assert "SRCC" in text and "PLCC" in text and "accuracy" in text, run
    assert (tmp_path / "runs" / "mlsp_t3_pool3fc" / "failure_cases.png").is_file()
    assert "SRCC(pixels, MOS)" in (tmp_path / "runs" / "mlsp_resolution" / "resolution.md").read_text()


def test_apm_table_1(tmp_path, monkeypatch):
    run_page("apm", tmp_path, monkeypatch, ["ava"])
    fused = _report(tmp_path / "runs" / "apm_fused")
    assert "kl" in fused and "cd_loss" in fused and "late fusion" in fused


def test_kong_tables_2_and_3(tmp_path, monkeypatch):
    run_page("kong", tmp_path, monkeypatch, ["aadb", "ava"])
    assert "| attribute (test) |" in _report(tmp_path / "runs" / "kong_aadb" / "reg_rank_att_cont_seed0")
    assert "Table 6" in _report(tmp_path / "runs" / "kong_aadb_within_rater")  # per-rater agreement (K10)
    assert "the cut that is best on validation" in _report(tmp_path / "runs" / "kong_ava_reg_rank_att")


def test_photo_critic_table_1(tmp_path, monkeypatch):
    run_page("photo_critic", tmp_path, monkeypatch, ["flickr"])
    text = _report(tmp_path / "runs" / "critic_svm")
    assert "weighted P / R / F1" in text and "ROC area" in text


def test_schwarz_score_and_applications(tmp_path, monkeypatch):
    run_page("schwarz", tmp_path, monkeypatch, ["flickr"])
    assert "SRCC" in _report(tmp_path / "runs" / "schwarz_triplet")
    assert (tmp_path / "ranked" / "embeddings.npz").is_file()
