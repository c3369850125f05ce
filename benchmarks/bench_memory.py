"""Peak memory of one forward pass per megapixel, per backbone (the `BackboneSpec.bytes_per_pixel` figures).

Each measurement runs in a fresh process: build the extractor (random weights, narrow + wide kinds),
warm it up on a small view, then run one view of SIDE x SIDE pixels and read the process's peak resident
size before and after. The increase per pixel is what one more pixel of view costs; the registered
figures add a margin of about 25-50 % to the largest value measured.

    python benchmarks/bench_memory.py --sides 1024,2048 [--backbones vgg16_hed,resnet50]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from bench_common import save_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import json, resource, sys
import numpy as np
from features.core.quiet import quiet_tensorflow
quiet_tensorflow()
from features.extractor import Extractor
backbone, side = sys.argv[1], int(sys.argv[2])
ex = Extractor.from_names(backbone, "random:0", "mlsp_narrow,mlsp_wide")
ex(np.zeros((1, 160, 160, 3), np.uint8))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
ex(np.random.default_rng(0).integers(0, 256, (1, side, side, 3), dtype=np.uint8))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"before": before, "after": after}))
"""


def measure(backbone: str, side: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, backbone, str(side)], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return {"backbone": backbone, "side": side, "base_gb": r["before"] / 1e9, "peak_gb": r["after"] / 1e9,
            "bytes_per_pixel": (r["after"] - r["before"]) / side ** 2}


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from features.backbones import BACKBONES

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbones", default=",".join(b.name for b in BACKBONES))
    ap.add_argument("--sides", default="1024,2048")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    rows = []
    print("| backbone | view | base GB | peak GB | measured MB per MP | registered |")
    print("|---|---|---|---|---|---|")
    for name in args.backbones.split(","):
        for side in (int(s) for s in args.sides.split(",")):
            r = measure(name, side)
            rows.append(r)
            print(f"| {name} | {side}² | {r['base_gb']:.2f} | {r['peak_gb']:.2f} | {r['bytes_per_pixel']:.0f} | "
                  f"{BACKBONES.get(name).bytes_per_pixel} |", flush=True)
    save_json(args.json, rows)


if __name__ == "__main__":
    main()
