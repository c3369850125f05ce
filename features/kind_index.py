"""The kind grammar of a store reader: which kinds a store holds, how a name (`mlsp_narrow`,
`<backbone>/<kind>`, `a+b`) resolves to arrays, blocks and extraction records (`features.groups`)."""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from features import groups as fg
from features.store_schema import EXTRACTION_KEYS, GROUPS, StoreError


class KindIndex:
    """Mixed into `features.store.FeatureStore`: needs its `attrs`, `path` and `features(kind)`."""

    @property
    def kinds(self) -> List[str]:
        """Feature kinds the store holds: the first group's by name (sorted), then each further backbone's as
        `<backbone>/<kind>` (`features.groups`; any two can be concatenated with `+`)."""
        return sorted(self.attrs.get("kinds", {})) + [f"{b}/{k}" for b, g in self.groups.items()
                                                       for k in sorted(g.get("kinds", {}))]

    @property
    def groups(self) -> Dict[str, dict]:
        """Backbones added to the store after its first one: {backbone: extraction record and settings}."""
        return dict(self.attrs.get(GROUPS, {}))

    def _part(self, part: str) -> Tuple[Optional[str], str]:
        """(group backbone or None for the first group, kind) of one part of a kind name; refuses unknown ones."""
        backbone, _, kind = part.rpartition("/")
        if backbone == self.attrs.get("backbone"):
            backbone = ""
        known = (self.attrs.get("kinds", {}) if not backbone else self.groups.get(backbone, {}).get("kinds", {}))
        if kind not in known:
            from features.core.registry import did_you_mean

            raise StoreError(f"store {self.path} has no feature kind {part!r}.{did_you_mean(part, self.kinds)} "
                             f"It has {', '.join(self.kinds) or 'none'}")
        return backbone or None, kind

    def kind_shape(self, kind: str) -> Tuple[int, ...]:
        """Per-view shape of a kind, e.g. `(1472,)` or `(5, 5, 1472)` (a concatenation: channels summed)."""
        return tuple(int(d) for d in self.features(kind).shape[2:])

    def blocks_of(self, kind: str) -> List[Tuple[str, int, int]]:
        """`(name, start, stop)` of each MLSP block inside a kind's channels (`blocks` for the first group's
        kinds; a concatenation's parts shifted, `features.groups.concatenated_blocks`)."""
        if fg.is_plain(kind):
            return self.blocks
        members = []
        for part in fg.parts(kind):
            backbone, base = self._part(part)
            record = self.extraction() if backbone is None else self.groups[backbone]
            blocks = [(b["name"], int(b["offset"]), int(b["offset"]) + int(b["channels"]))
                      for b in record.get("blocks", [])] if base.startswith("mlsp") else []
            members.append((part, int(self.features(part).shape[-1]), blocks))
        return members[0][2] if len(members) == 1 else fg.concatenated_blocks(members)

    @property
    def blocks(self) -> List[Tuple[str, int, int]]:
        """`(name, start, stop)` channel range of each MLSP block inside the concatenated features."""
        return [(b["name"], int(b["offset"]), int(b["offset"]) + int(b["channels"]))
                for b in self.attrs.get("blocks", [])]

    def _keys(self, kind: str) -> List[str]:
        """Array paths of a kind's parts (`features/<kind>`, `features/<backbone>/<kind>`)."""
        keys = []
        for part in fg.parts(kind):
            backbone, base = self._part(part)
            keys.append(f"features/{base}" if backbone is None else f"features/{backbone}/{base}")
        return keys

    def extraction(self, kind: Optional[str] = None) -> dict:
        """What a run records to rebuild this store's extraction for new photos (`pipeline.scoring`):
        backbone, weights identity, blocks, kinds with shapes, views, preprocessing, max side, settings.

        Of the first group, or of the group of `kind`; a concatenation's is `{"parts": {part: record}}`.
        """
        first = {key: self.attrs[key] for key in EXTRACTION_KEYS if key in self.attrs}
        if kind is None or fg.is_plain(kind):
            return first
        records = {}
        for part in fg.parts(kind):
            backbone, _ = self._part(part)
            records[part] = first if backbone is None else dict(self.groups[backbone])
        return next(iter(records.values())) if len(records) == 1 else {"parts": records}
