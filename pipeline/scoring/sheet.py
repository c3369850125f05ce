"""Self-contained HTML pages of scored photos: thumbnails inlined as base64 JPEG, histograms as inline
SVG, no script or network access (the page opens anywhere, also from an e-mail attachment)."""
from __future__ import annotations

import base64
import html
from typing import List, Optional, Sequence

import numpy as np

THUMB_SIDE = 240
CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;background:#fafafa;color:#222}
h1{font-size:1.3em;margin:0 0 .3em} .card{color:#555;margin-bottom:1em;font-size:.9em}
.grid{display:flex;flex-wrap:wrap;gap:12px} .photo{background:#fff;border:1px solid #ddd;border-radius:6px;
padding:6px;width:250px;font-size:.8em} .photo img{width:240px;height:240px;object-fit:contain;background:#eee}
.score{font-size:1.25em;font-weight:600} .rank{color:#888;float:right} .path{color:#666;word-break:break-all}
.pick{border:3px solid #2a7;} .gap{width:100%;color:#888;padding:.5em 0}
.failed{color:#a33} table{border-collapse:collapse} td{padding:2px 8px;border-bottom:1px solid #eee}
"""


def thumbnail_uri(path: str, side: int = THUMB_SIDE) -> Optional[str]:
    """A photo as a small JPEG data URI (decoded as scoring decodes it), or None when it cannot be read."""
    import cv2

    from features.images import ImageError, decode_image

    try:
        image = decode_image(path, side)
    except ImageError:
        return None
    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(image[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 80])
    return "data:image/jpeg;base64," + base64.b64encode(data.tobytes()).decode() if ok else None


def histogram_svg(dist: Sequence[float], width: int = 240, height: int = 40) -> str:
    """K bars of a score distribution (bins 1..K from left to right)."""
    d = np.asarray(dist, np.float64)
    top = max(float(d.max()), 1e-12)
    w = width / len(d)
    bars = "".join(f'<rect x="{i * w + 1:.1f}" y="{height - v / top * height:.1f}" width="{w - 2:.1f}" '
                   f'height="{v / top * height:.1f}" fill="#4a7"><title>bin {i + 1}: {v:.1%}</title></rect>'
                   for i, v in enumerate(d))
    return f'<svg width="{width}" height="{height}" role="img" aria-label="score histogram">{bars}</svg>'


def photo_card(path: str, score: float, rank: int, spread: Optional[float] = None, dist=None, pick: bool = False,
               note: str = "") -> str:
    """One photo of a sheet: thumbnail, score, rank, spread over views, histogram."""
    uri = thumbnail_uri(path)
    img = f'<img src="{uri}" alt="">' if uri else '<div class="failed">no thumbnail</div>'
    hist = histogram_svg(dist) if dist is not None else ""
    line = " · ".join(x for x in (f"± {spread:.3f} over views" if spread is not None else "", note) if x)
    return (f'<div class="photo{" pick" if pick else ""}">{img}<div><span class="score">{score:.3f}</span>'
            f'<span class="rank">#{rank}</span></div><div>{line}</div>{hist}'
            f'<div class="path">{html.escape(path)}</div></div>')


def page(title: str, card: str, body: str) -> str:
    """A self-contained HTML page: title, a card of facts and the body (the contact sheets' frame)."""
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1><div class="card">{card}</div>'
            f'{body}</body></html>')


def model_card(config: dict, metrics: Optional[dict]) -> str:
    """One line about the run: head, backbone, weights, views, training set, test SRCC/PLCC."""
    store = config.get("store") or {}
    test = (metrics or {}).get("test") or {}
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    return html.escape(
        f"head {config['head']['name']} on {config['kind']} · backbone {store.get('backbone')} "
        f"[{(store.get('weights') or {}).get('spec')}] · views {store.get('view_set')} · trained on "
        f"{store.get('dataset')} ({(config.get('splits') or {}).get('train')} images) · test SRCC "
        f"{fmt(test.get('srcc'))}, PLCC {fmt(test.get('plcc'))}")


def contact_sheet(title: str, card: str, rows: List[dict], failures: List[dict], limit: int) -> str:
    """Scored photos best first (the best and worst `limit // 2` when there are more), then failures.

    Args:
        rows: {"path", "score", "rank", "spread", "dist"} sorted by rank.
        failures: {"path", "reason"}.
    """
    shown = rows if len(rows) <= limit else rows[: limit // 2] + [None] + rows[len(rows) - limit // 2:]
    cards = [f'<div class="gap">… {len(rows) - 2 * (limit // 2)} photos in between are in scores.csv …</div>'
             if r is None else photo_card(r["path"], r["score"], r["rank"], r["spread"], r.get("dist"))
             for r in shown]
    body = f'<div class="grid">{"".join(cards)}</div>'
    if failures:
        items = "".join(f"<tr><td>{html.escape(f['path'])}</td><td>{html.escape(f['reason'])}</td></tr>"
                        for f in failures)
        body += f'<h2 class="failed">{len(failures)} not scored</h2><table>{items}</table>'
    return page(title, card, body)
