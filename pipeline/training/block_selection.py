"""`iaa train --blocks`: train on a subset of the MLSP blocks of a stored kind (Hosu et al. 2019's ablations).

Table 2's Single-1FC (5) learns from "only the last 5 blocks" of Inception-v3 (`--blocks last:5`, multiGAP's
setting); figure 7 adds blocks "from the last to the first" (`--blocks last:1` … `last:11`). A selection is
`last:N`, `first:N`, or block names joined by commas (`mixed5,mixed9`), in store order. The run reads only the
selected channels (the loader's `channels`), its heads see the selected blocks re-numbered from 0, and the
saved model takes the whole stored kind and selects its channels itself (a Keras `ChannelGather` layer, a
scikit-learn column selection), so scoring, ensembles and `evaluate-on` need nothing else.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from features.core.errors import UsageError

Block = Tuple[str, int, int]


@dataclass(frozen=True)
class BlockSelection:
    """Selected blocks of a kind: their stored `(name, start, stop)`, the channel indices, and the blocks
    re-numbered inside the selected channels."""

    text: str
    blocks: Tuple[Block, ...]

    @property
    def channels(self) -> np.ndarray:
        return np.concatenate([np.arange(start, stop) for _, start, stop in self.blocks])

    @property
    def renumbered(self) -> List[Block]:
        out, at = [], 0
        for name, start, stop in self.blocks:
            out.append((name, at, at + stop - start))
            at += stop - start
        return out

    def record(self) -> dict:
        """What a run's config says about its selection."""
        return {"selection": self.text, "names": [b[0] for b in self.blocks], "channels": int(len(self.channels))}


def select_blocks(text: Optional[str], blocks: Sequence[Block], kind: str) -> Optional[BlockSelection]:
    """The blocks of `kind` that `text` selects (None: no selection).

    Raises:
        UsageError: a kind without blocks, an unknown block name (with the closest), or a count out of range.
    """
    if not text:
        return None
    if not blocks:
        raise UsageError(f"--blocks selects MLSP blocks; kind {kind} has none (use mlsp_narrow or mlsp_wide). "
                         f"Received: --blocks {text}")
    where, _, count = text.partition(":")
    if where in ("last", "first") and count:
        n = int(count) if count.isdigit() else 0
        if not 1 <= n <= len(blocks):
            raise UsageError(f"--blocks {text}: N must be 1..{len(blocks)} (the kind's blocks)")
        return BlockSelection(text, tuple(blocks[-n:] if where == "last" else blocks[:n]))
    names = [b[0] for b in blocks]
    wanted = [w.strip() for w in text.split(",") if w.strip()]
    for name in wanted:
        if name not in names:
            from features.core.registry import did_you_mean

            raise UsageError(f"--blocks: kind {kind} has no block {name!r}.{did_you_mean(name, names)} Expected "
                             f"last:N, first:N or names among {', '.join(names)}")
    return BlockSelection(text, tuple(b for b in blocks if b[0] in wanted))


def keras_taking_the_whole_kind(model, selection: BlockSelection, stored_shape: Sequence[int]):
    """`model` (trained on the selected channels) behind a layer that selects them from the whole kind."""
    import keras

    from heads.layers import ChannelGather

    inp = keras.Input(tuple(stored_shape), name="features")
    return keras.Model(inp, model(ChannelGather(selection.channels.tolist(), name="block_selection")(inp)),
                       name=model.name)


def sklearn_taking_the_whole_kind(model, selection: BlockSelection, stored_shape: Sequence[int]):
    """`model` (fitted on the selected channels, flattened) behind a column selection of the flattened kind."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline

    width = int(np.prod(stored_shape))
    flat = np.arange(width).reshape(tuple(stored_shape))[..., selection.channels].ravel()
    columns = ColumnTransformer([("blocks", "passthrough", flat.tolist())]).fit(np.zeros((1, width), np.float32))
    return make_pipeline(columns, model)
