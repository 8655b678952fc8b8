"""The cross-encoder: BERT over (user context, candidate text), joined with retrieval features,
feeding two heads, P(click) and P(purchase).

The pair is read as one sequence [context | candidate] in which context tokens do not attend to
candidate tokens (:mod:`.split_attention`): each user's context is encoded once per call and
its keys and values read in place by every candidate; the candidate tokens' mean output is the
pair's vector. Each head reads that vector, a small MLP of the normalised retrieval features, and the
normalised features themselves (a linear, "wide" part: training starts from the fused order).

``score = click_weight · P(click) + purchase_weight · P(purchase)`` (purchase-heavy by default).
The API follows sentence-transformers' CrossEncoder: :meth:`Reranker.predict` takes pairs,
batches them under ``torch.inference_mode()`` and handles empty input; :meth:`Reranker.rank`
orders one user's candidates.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from recsys import layout
from recsys.device import autocast
from recsys.errors import ArtifactError, ConfigError
from recsys.pretrained import load_pretrained, model_location

from .features import context_text
from .split_attention import SplitBert

log = logging.getLogger(__name__)
HEADS = ("click", "purchase")


@dataclass(frozen=True)
class RerankerConfig:
    """Saved with the reranker. ``n_layers`` keeps the first N encoder layers (0: all);
    ``int8_on_cpu``: loaded on a CPU, its encoder's linear layers are quantised to int8 (see
    ``benchmarks/rerank_speed.py`` for what that costs in NDCG and gains in time)."""

    max_length: int = 48  # context tokens ([CLS] ... [SEP]); fewer rerank faster (benchmarks/rerank_speed.py)
    candidate_length: int = 24  # candidate tokens (... [SEP])
    context_items: int = 8
    n_layers: int = 3  # of all-MiniLM-L6-v2's 6: half the time per pair (benchmarks/rerank_speed.py)
    click_weight: float = 0.3
    purchase_weight: float = 0.7
    int8_on_cpu: bool = True
    feature_dim: int = 32
    features: tuple[str, ...] = ()  # the retrieval features it reads, by name (the engine's, at training time)
    heads: tuple[str, ...] = HEADS  # the heads that learnt from labels (no purchase in the data: click only)

    def to_dict(self) -> dict:
        return {**asdict(self), "features": list(self.features), "heads": list(self.heads)}

    def click_only(self) -> RerankerConfig:
        """The same reranker when the data holds no purchase to learn P(purchase) from: it ranks by P(click)."""
        return replace(self, heads=("click",), click_weight=1.0, purchase_weight=0.0)


class CrossEncoder(nn.Module):
    def __init__(self, bert: nn.Module, cfg: RerankerConfig):
        super().__init__()
        self.encoder, self.cfg = SplitBert(bert), cfg
        hidden = bert.config.hidden_size
        n = len(cfg.features)
        self.features = nn.Sequential(nn.Linear(n, cfg.feature_dim), nn.GELU())
        # each head reads [text | feature MLP | the normalised features themselves] (wide and deep)
        self.click = nn.Linear(hidden + cfg.feature_dim + n, 1)
        self.purchase = nn.Linear(hidden + cfg.feature_dim + n, 1)
        self.register_buffer("feat_mean", torch.zeros(len(cfg.features)))
        self.register_buffer("feat_std", torch.ones(len(cfg.features)))

    @property
    def bert(self) -> nn.Module:
        return self.encoder.bert

    def forward(self, tokens: dict[str, torch.Tensor], features: torch.Tensor,
                ctx: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of P(click) and P(purchase), each (batch,); ``tokens`` from :meth:`Reranker.tokenize`;
        ``ctx``: the contexts already encoded (``encoder.context``), else from ``tokens``."""
        if ctx is None:
            ctx = self.encoder.context(tokens["ctx_ids"], tokens["ctx_mask"])
        h = self.encoder.candidates(tokens["cand_ids"], tokens["cand_mask"], ctx, tokens["ctx_index"])
        m = tokens["cand_mask"].unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
        z = torch.cat([pooled, self.feature_part(features).to(pooled.dtype)], dim=-1)
        return self.click(z).squeeze(-1), self.purchase(z).squeeze(-1)

    def feature_part(self, features: torch.Tensor) -> torch.Tensor:
        """The heads' non-text inputs: the feature MLP's output and the normalised features."""
        x = (features - self.feat_mean) / self.feat_std
        return torch.cat([self.features(x), x], dim=-1)

    def feature_logits(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both heads' logits from the non-text inputs alone: the text columns are skipped, as if
        the pair's vector were zero (the reranker's first training phase, and what it serves when
        those columns stayed silent)."""
        f, t = self.feature_part(features), self.text_dim
        click, buy = (nn.functional.linear(f, h.weight[:, t:], h.bias).squeeze(-1) for h in (self.click, self.purchase))
        return click, buy

    def feature_probs(self, features: torch.Tensor) -> torch.Tensor:
        """P(click), P(purchase) from the non-text inputs alone (:meth:`feature_logits`): (..., 2)."""
        return torch.sigmoid(torch.stack(self.feature_logits(features), -1).float())

    @property
    def reads_text(self) -> bool:
        """Whether a head reads the text at all: a reranker kept at its feature phase has every text
        column at zero, so no text can change its scores and the encoder need not run."""
        t = self.text_dim
        return bool(self.click.weight[:, :t].any() or self.purchase.weight[:, :t].any())

    @property
    def text_dim(self) -> int:
        return self.click.in_features - self.features[0].out_features - self.features[0].in_features


def truncate_layers(bert: nn.Module, n_layers: int) -> nn.Module:
    """Keep the first ``n_layers`` of a BERT encoder (0: all); fewer layers rerank faster."""
    layers = bert.encoder.layer
    if n_layers and n_layers < len(layers):
        bert.encoder.layer = nn.ModuleList(list(layers)[:n_layers])
        bert.config.num_hidden_layers = n_layers
    return bert


class Reranker:
    """A loaded cross-encoder with its tokenizer (see the module doc)."""

    CACHE_SIZE = 200_000  # candidate texts whose token ids are kept
    GROUP_MIN = 8  # pairs per context (on average) from which each context's pairs are scored together

    def __init__(self, model: CrossEncoder, tokenizer, device: str = "cpu"):
        self.model, self.tokenizer, self.device = model.to(device).eval(), tokenizer, device
        self.cfg = model.cfg
        self._cand_cache: dict[str, list[int]] = {}

    @classmethod
    def from_pretrained(cls, name_or_path=None, cfg: RerankerConfig | None = None, device: str = "cpu") -> Reranker:
        """A new reranker from a BERT-family model (default all-MiniLM-L6-v2, offline): heads untrained."""
        cfg = cfg or RerankerConfig()
        if not cfg.features:
            raise ConfigError("RerankerConfig.features: name the retrieval features the reranker reads (the engine's "
                              "Recommender.feature_names())")
        tok, bert = load_pretrained(model_location(name_or_path), f"--reranker-model {name_or_path}")
        return cls(CrossEncoder(truncate_layers(bert, cfg.n_layers), cfg), tok, device)

    def candidate_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Each candidate text's token ids (cut to ``candidate_length``, ending in [SEP]); item texts
        recur across queries, so they are tokenized once and kept (up to ``CACHE_SIZE`` texts)."""
        cache = self._cand_cache
        new = list(dict.fromkeys(t or "" for t in texts if (t or "") not in cache))
        if new:
            if len(cache) + len(new) > self.CACHE_SIZE:
                cache.clear()
            ids = self.tokenizer(new, add_special_tokens=False, truncation=True,
                                 max_length=self.cfg.candidate_length - 1)["input_ids"]
            cache.update({t: x + [self.tokenizer.sep_token_id] for t, x in zip(new, ids)})
        return [cache[t or ""] for t in texts]

    def tokenize(self, pairs: Sequence[tuple[str, str]], cand_ids: list[list[int]] | None = None,
                 contexts: dict[str, int] | None = None) -> dict[str, torch.Tensor]:
        """Contexts (de-duplicated: each is encoded once) and candidates, tokenized apart. With
        ``contexts`` (text → row of contexts encoded beforehand) only the candidates are tokenized."""
        unique: dict[str, int] = {} if contexts is None else contexts
        index = [unique.setdefault(p[0] or "", len(unique)) for p in pairs]
        tok = self.tokenizer
        ctx = {} if contexts is not None else tok(list(unique), padding=True, truncation=True,
                                                  max_length=self.cfg.max_length, return_tensors="pt")
        ids = cand_ids if cand_ids is not None else self.candidate_ids([p[1] for p in pairs])
        width = max(len(x) for x in ids)
        cand = torch.full((len(ids), width), tok.pad_token_id or 0, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for r, row in enumerate(ids):
            cand[r, :len(row)] = torch.tensor(row)
            mask[r, :len(row)] = 1
        out = {"cand_ids": cand, "cand_mask": mask, "ctx_index": torch.tensor(index, dtype=torch.long)}
        if ctx:
            out.update(ctx_ids=ctx["input_ids"], ctx_mask=ctx["attention_mask"])
        return {k: v.to(self.device) for k, v in out.items()}

    @staticmethod
    def _batches(lengths: Sequence[int], batch_size: int, min_batch: int = 16, growth: float = 1.5) -> list[np.ndarray]:
        """Positions grouped by candidate length, so that each batch pads little: a batch closes at
        ``batch_size`` pairs, or once it holds ``min_batch`` and the next is ``growth`` times longer
        than its first.

        >>> [b.tolist() for b in Reranker._batches([3, 9, 3, 4, 10], batch_size=4, min_batch=2)]
        [[0, 2, 3], [1, 4]]
        """
        order = np.argsort(np.asarray(lengths), kind="stable")
        out, cur = [], []
        for i in order:
            if cur and (len(cur) == batch_size or (len(cur) >= min_batch and lengths[i] > growth * lengths[cur[0]])):
                out.append(np.array(cur))
                cur = []
            cur.append(int(i))
        if cur:
            out.append(np.array(cur))
        return out

    @property
    def context_items(self) -> int:
        """How many of the user's latest events the context text reads."""
        return self.cfg.context_items

    def _features(self, features: np.ndarray | None, n: int, names: Sequence[str] | None = None) -> torch.Tensor:
        """Its own feature columns: ``features`` (n, len(names)) read by name (a column it reads that
        ``names`` lacks is zero, e.g. a source this artifact has not), or already in its own order."""
        if features is None:
            features = np.zeros((n, len(self.cfg.features)), dtype=np.float32)
        features = np.asarray(features, dtype=np.float32).reshape(n, -1)
        if names is not None and tuple(names) != tuple(self.cfg.features):
            if features.shape[1] != len(names):
                raise ConfigError(f"features: {features.shape[1]} columns for {len(names)} names")
            pos = {f: i for i, f in enumerate(names)}
            own = np.zeros((n, len(self.cfg.features)), dtype=np.float32)
            for j, f in enumerate(self.cfg.features):
                if f in pos:
                    own[:, j] = features[:, pos[f]]
            features = own
        if features.shape[1] != len(self.cfg.features):
            raise ConfigError(f"features: {features.shape[1]} columns, this reranker reads {len(self.cfg.features)} "
                              f"({', '.join(self.cfg.features)})")
        return torch.as_tensor(features, device=self.device)

    def predict(self, pairs: Sequence[tuple[str, str]], features: np.ndarray | None = None, batch_size: int = 128,
                heads: bool = False, feature_names: Sequence[str] | None = None) -> np.ndarray:
        """Scores of (context, candidate) pairs, shape (n,); with ``heads`` (n, 2): P(click), P(purchase).
        ``features``: the pairs' retrieval features, in this reranker's order or named by ``feature_names``."""
        pairs = list(pairs)
        n = len(pairs)
        if n == 0:
            return np.zeros((0, 2) if heads else (0,), dtype=np.float32)
        for i, p in enumerate(pairs):
            if not isinstance(p, (tuple, list)) or len(p) != 2:
                raise ConfigError(f"pairs[{i}]: {p!r} is not a (context, candidate) pair of two texts")
        feats = self._features(features, n, feature_names)
        w = np.array([self.cfg.click_weight, self.cfg.purchase_weight], dtype=np.float32)
        self.model.eval()
        if not self.model.reads_text:  # the same scores as the whole model's, without running the encoder
            with torch.inference_mode():
                out = self.model.feature_probs(feats).cpu().numpy()
            return out if heads else out @ w
        out = np.zeros((n, 2), dtype=np.float32)
        ids = self.candidate_ids([p[1] for p in pairs])
        groups: dict[str, list[int]] = {}
        for i, p in enumerate(pairs):
            groups.setdefault(p[0] or "", []).append(i)
        if n < self.GROUP_MIN * len(groups):  # few candidates per context: mix contexts in length-sorted batches
            groups = {"": list(range(n))}
            shared = False
        else:  # e.g. each user's ~100 candidates: the user's context encoded once, read in place by every batch
            shared = True
        with torch.inference_mode(), autocast(self.device):  # bf16 on a GPU
            for context, rows in groups.items():
                enc = None
                if shared:
                    t = self.tokenize([(context, "")])
                    enc = self.model.encoder.context(t["ctx_ids"], t["ctx_mask"])
                for b in self._batches([len(ids[i]) for i in rows], batch_size):  # by length: little padding
                    b = np.asarray(rows)[b]
                    tokens = self.tokenize([pairs[i] for i in b], [ids[i] for i in b], {context: 0} if shared else None)
                    click, buy = self.model(tokens, feats[torch.as_tensor(b, device=feats.device)], enc)
                    out[b, 0] = torch.sigmoid(click.float()).cpu().numpy()
                    out[b, 1] = torch.sigmoid(buy.float()).cpu().numpy()
        return out if heads else out @ w

    def rank(self, context: str, candidates: Sequence[str], features: np.ndarray | None = None,
             batch_size: int = 128) -> tuple[np.ndarray, np.ndarray]:
        """One user's candidates, best first: (positions into ``candidates``, scores)."""
        scores = self.predict([(context, c) for c in candidates], features, batch_size)
        order = np.argsort(-scores, kind="stable")
        return order, scores[order]

    def rank_lists(self, histories: Sequence[tuple[Sequence[str], Sequence[str]]], candidates: Sequence[Sequence[str]],
                   features: Sequence[np.ndarray], feature_names: Sequence[str], batch_size: int = 128) -> list[dict]:
        """Rerank many users' candidates at once: row r's user has the history ``histories[r]``
        ((titles, event types), oldest first), candidate texts ``candidates[r]`` and their features
        ``features[r]`` (columns named by ``feature_names``). Returns per row ``{"order", "scores",
        "click", "purchase"}``: positions into ``candidates[r]``, best first, and their scores and heads."""
        pairs, rows, feats = [], [], []
        for r, ((titles, events), cands) in enumerate(zip(histories, candidates)):
            text = context_text(titles, events, self.cfg.context_items)
            pairs += [(text, c) for c in cands]
            rows += [r] * len(cands)
            if len(cands):
                feats.append(np.asarray(features[r], dtype=np.float32))
        f = np.concatenate(feats) if feats else None
        heads = self.predict(pairs, f, batch_size=batch_size, heads=True, feature_names=feature_names)
        w = np.array([self.cfg.click_weight, self.cfg.purchase_weight], dtype=np.float32)
        scores = heads @ w if len(heads) else np.zeros(0, np.float32)
        rows = np.asarray(rows, dtype=np.int64)
        out = []
        for r in range(len(candidates)):
            sel = np.flatnonzero(rows == r)
            order = np.lexsort((np.arange(sel.size), -scores[sel]))  # best first, ties in the given order
            buy = heads[sel, 1][order] if "purchase" in self.cfg.heads else np.full(sel.size, np.nan, np.float32)
            out.append({"order": order, "scores": scores[sel][order], "click": heads[sel, 0][order], "purchase": buy})
        return out

    def quantized(self) -> Reranker:
        """An int8 copy (dynamic quantisation of the encoder's linear layers; CPU only)."""
        import copy
        import warnings

        with warnings.catch_warnings():  # torch.ao's dynamic quantisation is deprecated in favour of torchao
            warnings.simplefilter("ignore")
            from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

            q = copy.deepcopy(self.model).cpu()
            # one scale per output channel: closer to fp32 than one per matrix; the small heads stay fp32
            q.encoder = quantize_dynamic(q.encoder, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)
        return Reranker(q, self.tokenizer, "cpu")

    def save(self, folder: Path) -> None:
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        save_file(state, str(folder / layout.WEIGHTS))
        (folder / layout.CONFIG).write_text(json.dumps(self.cfg.to_dict(), indent=2) + "\n")
        self.model.bert.config.save_pretrained(str(folder / layout.RERANKER_BERT))
        self.tokenizer.save_pretrained(str(folder / layout.RERANKER_TOKENIZER))

    @classmethod
    def load(cls, folder: Path, device: str = "cpu", quantize: bool | None = None) -> Reranker:
        """A saved reranker; ``quantize`` None: int8 when on a CPU and its config says ``int8_on_cpu``."""
        from safetensors.torch import load_file
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        raw = json.loads((folder / layout.CONFIG).read_text())
        cfg = RerankerConfig(**{**raw, "features": tuple(raw["features"]), "heads": tuple(raw.get("heads", HEADS))})
        bert = AutoModel.from_config(AutoConfig.from_pretrained(str(folder / layout.RERANKER_BERT)))
        model = CrossEncoder(bert, cfg)
        state = load_file(str(folder / layout.WEIGHTS))
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        if {k: tuple(v.shape) for k, v in state.items()} != expected:
            raise ArtifactError(f"{folder}: this reranker was saved by an older recsys (its heads have another "
                                "shape); train it again with `recsys train-reranker --artifacts ARTIFACT_DIR`")
        model.load_state_dict(state, strict=True)
        r = cls(model, AutoTokenizer.from_pretrained(str(folder / layout.RERANKER_TOKENIZER)), device)
        if quantize is None:
            quantize = cfg.int8_on_cpu and str(device) == "cpu"
        return r.quantized() if quantize else r
