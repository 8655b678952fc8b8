"""The two-tower model: item tower + user tower, scored by cosine similarity over a temperature."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recsys import layout
from recsys.sources import FitInfo

from .sequences import Sequences, build_sequences, left_pad
from .towers import ItemTower, TowerConfig, UserTower


class TwoTower(nn.Module):
    def __init__(self, cfg: TowerConfig, text_vectors: torch.Tensor):
        super().__init__()
        self.cfg = cfg
        self.items = ItemTower(cfg, text_vectors)
        self.users = UserTower(cfg)
        self.fit_info = FitInfo()  # what it learnt from (saved beside the weights)

    @property
    def device(self) -> torch.device:
        return self.items.ids.weight.device

    def encode_history(self, batch: dict[str, torch.Tensor], all_positions: bool = False) -> torch.Tensor:
        """L2-normalised user vectors from a left-padded batch (see :func:`left_pad`)."""
        vecs = self.items(batch["items"])
        out = self.users(vecs, batch["events"], batch["gaps"], batch["valid"], all_positions=all_positions)
        return F.normalize(out, dim=-1)

    @torch.inference_mode()
    def user_vectors(self, seq: Sequences, users: np.ndarray, end: np.ndarray | None = None,
                     batch_size: int = 512) -> np.ndarray:
        """User vectors (len(users), dim) from each user's last ``max_len`` events (before ``end``)."""
        self.eval()
        out = []
        for s in range(0, len(users), batch_size):
            part = left_pad(seq, users[s:s + batch_size], self.cfg.max_len, None if end is None else end[s:s + batch_size])
            batch = to_tensors(part, self.device)
            out.append(self.encode_history(batch).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.cfg.dim), np.float32)

    @torch.inference_mode()
    def item_vectors(self) -> np.ndarray:
        self.eval()
        return self.items.all_items().float().cpu().numpy()

    def scorer(self, history, n_users: int, weights):
        """``users -> scores`` over the whole catalogue from ``history`` (events with indices), for
        :func:`recsys.eval.protocols.rank`."""
        seq = build_sequences(history, n_users, weights, self.cfg.n_gap_buckets)
        items = self.item_vectors()
        return lambda users: self.user_vectors(seq, users) @ items.T

    def save(self, folder: Path, state: dict | None = None, fit_info: FitInfo | None = None) -> None:
        """Weights (or ``state``), config and what it learnt from, into ``folder``."""
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in (state or self.state_dict()).items()}
        save_file(state, str(folder / layout.WEIGHTS))
        (folder / layout.CONFIG).write_text(json.dumps(self.cfg.to_dict(), indent=2, sort_keys=True) + "\n")
        (fit_info or self.fit_info).write(folder / layout.FIT)

    @classmethod
    def load(cls, folder: Path, text_vectors: torch.Tensor, device: str = "cpu") -> TwoTower:
        from safetensors.torch import load_file

        cfg = TowerConfig(**json.loads((folder / layout.CONFIG).read_text()))
        model = cls(cfg, text_vectors)
        model.load_state_dict(load_file(str(folder / layout.WEIGHTS)), strict=True)
        model.fit_info = FitInfo.read(folder / layout.FIT)
        return model.to(device).eval()


def to_tensors(batch: dict[str, np.ndarray], device) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(v, device=device) for k, v in batch.items()}
