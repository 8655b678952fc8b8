"""The training loop on a sequence with a known answer: item i is always followed by item i + 1."""

import numpy as np
import pytest
import torch

from recsys.errors import ConfigError
from recsys.retrieval.model import TwoTower
from recsys.retrieval.sequences import Sequences
from recsys.retrieval.towers import TowerConfig
from recsys.retrieval.train import TrainConfig, train

N_ITEMS, N_USERS, LENGTH = 30, 60, 12


def cycles() -> Sequences:
    """Each user walks the cycle 0 → 1 → … → 29 → 0 from a random start."""
    rng = np.random.default_rng(0)
    items = np.concatenate([(rng.integers(N_ITEMS) + np.arange(LENGTH)) % N_ITEMS for _ in range(N_USERS)])
    ones = np.ones(items.size, dtype=np.int64)
    return Sequences(items.astype(np.int64), ones, ones, np.ones(items.size, np.float32),
                     np.arange(0, items.size + 1, LENGTH, dtype=np.int64))


@pytest.mark.parametrize("cfg", [
    TrainConfig(epochs=40, pretrain_epochs=0, batch_size=8, lr=2e-2, mask_seen=False),  # full softmax
    # sampled softmax whose in-batch pool (6 positions) is smaller than a batch's ~88 positions
    TrainConfig(epochs=40, pretrain_epochs=0, batch_size=8, lr=2e-2, full_softmax_below=0, n_negatives=6,
                n_batch_negatives=6),
], ids=["full", "sampled-small-pool"])
def test_learns_what_follows(cfg):
    torch.manual_seed(0)
    seq = cycles()
    model = TwoTower(TowerConfig(dim=16, max_len=LENGTH, n_layers=1, dropout=0.0), torch.randn(N_ITEMS, 8))
    fit = train(model, seq, cfg)
    assert fit["full_softmax"] is (cfg.full_softmax_below > 0)
    users = np.arange(N_USERS)
    top = np.argmax(model.user_vectors(seq, users) @ model.item_vectors().T, axis=1)
    last = seq.items[seq.offsets[1:] - 1]
    assert np.mean(top == (last + 1) % N_ITEMS) >= 0.9


def test_without_validation_the_falling_loss_keeps_training_going():
    # the score is then -loss, which is negative: it must still count as an improvement
    torch.manual_seed(0)
    model = TwoTower(TowerConfig(dim=16, max_len=LENGTH, n_layers=1, dropout=0.0), torch.randn(N_ITEMS, 8))
    fit = train(model, cycles(), TrainConfig(epochs=8, patience=2, pretrain_epochs=0, batch_size=8, lr=2e-2))
    assert len(fit["history"]) == 8
    assert fit["best_epoch"] == 8


def test_the_latest_epoch_within_one_standard_error_of_the_best_is_kept():
    scores, weights = iter([0.30, 0.20, 0.29, 0.21]), []

    def validate(m):
        weights.append(m.items.ids.weight.detach().clone())
        return next(scores)

    torch.manual_seed(0)
    model = TwoTower(TowerConfig(dim=16, max_len=LENGTH, n_layers=1, dropout=0.0), torch.randn(N_ITEMS, 8))
    fit = train(model, cycles(), TrainConfig(epochs=4, pretrain_epochs=0, batch_size=8, lr=2e-2), validate,
                valid_users=400)
    # one standard error at the best: sqrt(0.3 · 0.7 / 400) = 0.0229; 0.29 is within it, 0.21 is not
    assert (fit["best_epoch"], fit["best_valid"], fit["kept_valid"]) == (3, 0.30, 0.29)
    assert torch.equal(model.items.ids.weight, weights[2])


def _window_batch(seq: Sequences, users: np.ndarray):
    from recsys.retrieval.model import to_tensors
    from recsys.retrieval.sequences import left_pad

    w = left_pad(seq, users, LENGTH + 1, seq.offsets[users + 1])
    inp = to_tensors({k: v[:, :-1] for k, v in w.items()}, "cpu")
    mask = torch.as_tensor(w["valid"][:, 1:] & w["valid"][:, :-1])
    return inp, torch.as_tensor(w["items"][:, 1:])[mask], mask, torch.as_tensor(w["weights"][:, 1:])[mask]


def test_the_full_softmax_leaves_out_untrained_items_and_the_windows_earlier_items():
    from recsys.retrieval.train import NextItemStep

    torch.manual_seed(0)
    seq = cycles()  # items 0..29 are trained; the catalogue's items 30 and 31 never appear
    model = TwoTower(TowerConfig(dim=16, max_len=LENGTH, n_layers=1, dropout=0.0, id_dropout=0.0),
                     torch.randn(N_ITEMS + 2, 8)).train()
    cfg = TrainConfig(mask_seen=True, temperature=0.5)
    inp, pos, mask, weight = _window_batch(seq, np.arange(4))
    loss = NextItemStep(model, seq, cfg)(inp, pos, mask, weight)
    # by hand: each position's softmax runs over the trained items not earlier in its window (its target kept)
    with torch.no_grad():
        h, items = model.encode_history(inp, all_positions=True)[mask], model.items.all_items()
        rows = [(b, i) for b in range(mask.shape[0]) for i in range(mask.shape[1]) if mask[b, i]]
        ce = []
        for r, (b, i) in enumerate(rows):
            earlier = {int(x) for x, v in zip(inp["items"][b, :i + 1], inp["valid"][b, :i + 1]) if v} - {int(pos[r])}
            allowed = [j for j in range(N_ITEMS) if j not in earlier]
            logits = h[r] @ items[allowed].T / 0.5
            ce.append(torch.logsumexp(logits, 0) - h[r] @ items[pos[r]] / 0.5)
        expected = (torch.stack(ce) * weight).sum() / weight.sum()
    assert torch.allclose(loss, expected, atol=1e-5)


@pytest.mark.parametrize("full", [True, False], ids=["full", "sampled"])
def test_a_step_under_bf16_autocast_mixes_dtypes_as_a_gpu_does(full):
    # on CUDA the step runs under bf16 autocast (recsys.device.autocast); the CPU's autocast mixes the same dtypes
    from recsys.retrieval.train import NextItemStep

    torch.manual_seed(0)
    seq = cycles()  # one catalogue item (30) untrained: the full softmax's bias is then mixed in too
    model = TwoTower(TowerConfig(dim=16, max_len=LENGTH, n_layers=1, dropout=0.2), torch.randn(N_ITEMS + 1, 8)).train()
    cfg = TrainConfig(mask_seen=True, full_softmax_below=10**6 if full else 0, n_negatives=6, n_batch_negatives=6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = NextItemStep(model, seq, cfg)(*_window_batch(seq, np.arange(8)))
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_epochs_within_the_noise_of_the_best_are_no_strike():
    # best 0.30 on 400 users (noise 0.0229); 0.29 and 0.28 are within it, 0.20 and 0.21 are clearly worse
    scores = iter([0.30, 0.29, 0.28, 0.20, 0.29, 0.21, 0.29, 0.29])
    torch.manual_seed(0)
    model = TwoTower(TowerConfig(dim=16, max_len=LENGTH, n_layers=1, dropout=0.0), torch.randn(N_ITEMS, 8))
    fit = train(model, cycles(), TrainConfig(epochs=8, patience=2, pretrain_epochs=0, batch_size=8), lambda m: next(scores),
                valid_users=400)
    assert len(fit["history"]) == 6  # the second clear drop (epoch 6) ends it
    assert fit["best_epoch"] == 5


@pytest.mark.parametrize("kwargs, message", [
    ({"epochs": 0}, "[train] epochs = 0: give an integer of at least 1 (--epochs, or epochs in a config file's [train])"),
    ({"lr": float("nan")}, "[train] lr = nan: give a number above 0 (lr in a config file's [train])"),
    ({"window_stride": 0}, "[train] window_stride = 0: give an integer of at least 1, or nothing (chosen from the data) "
                           "(--window-stride, or window_stride in a config file's [train])"),
])
def test_a_training_setting_out_of_range_is_one_line(kwargs, message):
    with pytest.raises(ConfigError) as e:
        TrainConfig(**kwargs)
    assert str(e.value) == message
    assert TrainConfig(window_stride=None, max_train_seconds=None).epochs == 40  # "nothing" stays allowed
