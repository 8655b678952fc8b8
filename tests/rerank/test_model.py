"""The cross-encoder: predict on empty and odd input, both heads, save/load, int8 agreement."""

import numpy as np
import pytest
import torch

from recsys.errors import ConfigError
from recsys.fusion import feature_names
from recsys.rerank.model import Reranker, RerankerConfig
from recsys.rerank.train import pair_loss

FEATURES = feature_names(["two_tower", "als", "repeat", "popular"])

PAIRS = [("bought: red running shoes; viewed: socks", "trail running shoes"),
         ("rated: Toy Story", "Toy Story 2 | 1999 | Animation"),
         ("", "an item with no context"),
         ("viewed: coffee", "")]


@pytest.fixture(scope="module")
def reranker(tiny_bert):
    torch.manual_seed(0)
    r = Reranker.from_pretrained(str(tiny_bert), RerankerConfig(features=FEATURES, max_length=32))
    with torch.no_grad():  # heads away from zero so that the outputs differ per pair
        for p in r.model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return r


def test_predict_shapes_and_empty_input(reranker):
    assert reranker.predict([]).shape == (0,) and reranker.predict([], heads=True).shape == (0, 2)
    scores = reranker.predict(PAIRS)
    heads = reranker.predict(PAIRS, heads=True)
    assert scores.shape == (4,) and heads.shape == (4, 2) and ((heads > 0) & (heads < 1)).all()
    assert np.allclose(scores, 0.3 * heads[:, 0] + 0.7 * heads[:, 1])  # purchase-heavy by default
    # batching does not change the answer
    assert np.allclose(reranker.predict(PAIRS, batch_size=1), scores, atol=1e-5)
    order, ranked = reranker.rank(PAIRS[0][0], [p[1] for p in PAIRS])
    assert sorted(order.tolist()) == [0, 1, 2, 3] and np.all(np.diff(ranked) <= 0)


def test_odd_input_is_a_clear_error(reranker):
    with pytest.raises(ConfigError, match=r"pairs\[1\]: 'oops' is not a \(context, candidate\) pair of two texts"):
        reranker.predict([("a", "b"), "oops"])
    with pytest.raises(ConfigError, match=f"features: 3 columns, this reranker reads {len(FEATURES)}"):
        reranker.predict([("a", "b")], features=np.zeros((1, 3)))


def test_features_change_the_score(reranker):
    f = np.zeros((2, len(FEATURES)), np.float32)
    f[1, FEATURES.index("two_tower_inv_rank")] = 1.0
    s = reranker.predict([PAIRS[0], PAIRS[0]], features=f)
    assert s[0] != pytest.approx(s[1], abs=1e-6)


def test_save_load_roundtrip(reranker, tmp_path):
    reranker.save(tmp_path / "rr")
    back = Reranker.load(tmp_path / "rr", quantize=False)
    assert back.cfg == reranker.cfg
    assert np.allclose(back.predict(PAIRS, heads=True), reranker.predict(PAIRS, heads=True), atol=1e-6)
    served = Reranker.load(tmp_path / "rr")  # on a CPU the config asks for int8
    assert isinstance(served.model.encoder.bert.encoder.layer[0].attention.self.query, torch.ao.nn.quantized.dynamic.Linear)
    assert isinstance(served.model.click, torch.nn.Linear)  # the heads stay fp32
    assert np.abs(served.predict(PAIRS) - reranker.predict(PAIRS)).max() < 0.02


def test_int8_agrees_with_fp32(reranker):
    q = reranker.quantized()
    a, b = reranker.predict(PAIRS), q.predict(PAIRS)
    assert np.abs(a - b).max() < 0.02, (a, b)


def test_both_heads_learn():
    z = torch.zeros(4, requires_grad=True)
    y = torch.zeros(4, requires_grad=True)
    click, buy, group = torch.tensor([1.0, 0, 1, 0]), torch.tensor([1.0, 0, 0, 0]), torch.tensor([0, 0, 1, 1])
    for kind in ("pointwise", "listwise"):
        z.grad = y.grad = None
        pair_loss(z, y, click, buy, group, kind).backward()
        assert z.grad.abs().sum() > 0 and y.grad.abs().sum() > 0, kind
    # listwise: group 1 has no purchase, so the purchase head's gradient there is zero
    assert torch.equal(y.grad[2:], torch.zeros(2))
    with pytest.raises(ConfigError, match="reranker loss 'pairwise': use one of pointwise, listwise"):
        from recsys.rerank.config import RerankTrainConfig

        RerankTrainConfig(loss="pairwise")


def test_split_attention_context_matches_bert_and_candidates_see_only_their_context(reranker):
    r = reranker
    r.model.eval()
    tokens = r.tokenize([PAIRS[0], PAIRS[1], PAIRS[0]])
    assert tokens["ctx_ids"].shape[0] == 2 and tokens["ctx_index"].tolist() == [0, 1, 0]  # contexts encoded once
    with torch.inference_mode():
        ctx = r.model.encoder.context(tokens["ctx_ids"], tokens["ctx_mask"])
        ref = r.model.bert(input_ids=tokens["ctx_ids"], attention_mask=tokens["ctx_mask"]).last_hidden_state
        m = tokens["ctx_mask"].bool()
        assert torch.allclose(ctx["hidden"][m], ref[m], atol=1e-5)  # the same layers as BERT's own forward
        # a candidate's output depends on its own context only, not on the other pairs in the batch
        both = r.model.encoder.candidates(tokens["cand_ids"], tokens["cand_mask"], ctx, tokens["ctx_index"])
        alone = r.tokenize([PAIRS[0]])
        one_ctx = r.model.encoder.context(alone["ctx_ids"], alone["ctx_mask"])
        one = r.model.encoder.candidates(alone["cand_ids"], alone["cand_mask"], one_ctx, alone["ctx_index"])
        width = int(alone["cand_mask"].sum())
        assert torch.allclose(both[0, :width], one[0, :width], atol=1e-5)


def test_length_buckets_keep_each_pair_its_own_score(reranker):
    pairs = PAIRS + [("rated: Heat", "a much longer candidate title " * 3), ("rated: Heat", "short")]
    one_by_one = np.concatenate([reranker.predict([p]) for p in pairs])
    assert np.allclose(reranker.predict(pairs, batch_size=2), one_by_one, atol=1e-5)


def test_one_users_candidates_score_as_each_pair_alone(reranker, monkeypatch):
    """Serving path: one context, encoded once for every batch, its keys/values shared in place,
    and candidate token ids cached; each pair scores as it does alone (the general path)."""
    ctx = PAIRS[0][0]
    pairs = [(ctx, c) for c in ["trail running shoes", "socks", "", "a much longer candidate title " * 3, "socks"]]
    alone = np.concatenate([reranker.predict([p], heads=True) for p in pairs])
    together = reranker.predict(pairs, heads=True, batch_size=2)
    assert np.allclose(together, alone, atol=1e-5)
    assert reranker.candidate_ids(["socks"])[0] is reranker.candidate_ids(["socks"])[0]  # tokenized once, kept
    monkeypatch.setattr(type(reranker), "GROUP_MIN", 100)  # contexts mixed in batches: the same answer
    assert np.allclose(reranker.predict(pairs, heads=True, batch_size=2), together, atol=1e-5)


def test_a_reranker_of_another_shape_is_a_clear_error(reranker, tmp_path):
    from safetensors.torch import load_file, save_file

    from recsys.errors import ArtifactError

    reranker.save(tmp_path / "rr")
    state = load_file(str(tmp_path / "rr" / "weights.safetensors"))
    n = len(FEATURES)
    for head in ("click", "purchase"):  # as saved before the heads read the features themselves
        state[f"{head}.weight"] = state[f"{head}.weight"][:, :-n].contiguous()
    save_file(state, str(tmp_path / "rr" / "weights.safetensors"))
    with pytest.raises(ArtifactError) as e:
        Reranker.load(tmp_path / "rr")
    assert str(e.value) == (f"{tmp_path / 'rr'}: this reranker was saved by an older recsys (its heads have another "
                            "shape); train it again with `recsys train-reranker --artifacts ARTIFACT_DIR`")


def test_a_reranker_with_fewer_features_reads_its_own_columns(tiny_bert):
    torch.manual_seed(0)
    older = FEATURES[:-2]  # as saved before the co-occurrence features existed
    r = Reranker.from_pretrained(str(tiny_bert), RerankerConfig(max_length=32, features=older))
    with torch.no_grad():
        for p in r.model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    full = np.random.default_rng(0).random((len(PAIRS), len(FEATURES))).astype(np.float32)
    assert np.allclose(r.predict(PAIRS, full, feature_names=FEATURES), r.predict(PAIRS, full[:, :len(older)]), atol=1e-6)


def test_a_reranker_that_reads_no_text_scores_as_the_whole_model_without_its_encoder(tiny_bert, monkeypatch):
    torch.manual_seed(0)
    r = Reranker.from_pretrained(str(tiny_bert), RerankerConfig(features=FEATURES, max_length=32))
    with torch.no_grad():
        for p in r.model.parameters():
            p.add_(0.1 * torch.randn_like(p))
        t = r.model.text_dim
        for head in (r.model.click, r.model.purchase):  # kept at its feature phase: the text columns are zero
            head.weight[:, :t] = 0.0
    f = np.random.default_rng(0).normal(size=(len(PAIRS), len(FEATURES))).astype(np.float32)
    assert not r.model.reads_text
    with monkeypatch.context() as m:  # the whole model: BERT runs, its output multiplied by zeros
        m.setattr(type(r.model), "reads_text", property(lambda self: True))
        whole = r.predict(PAIRS, f, heads=True)

    def no_encoder(*args, **kwargs):
        raise AssertionError("the encoder ran")

    monkeypatch.setattr(r.model.encoder, "candidates", no_encoder)
    assert np.allclose(r.predict(PAIRS, f, heads=True), whole, atol=1e-6)
    with torch.no_grad():
        r.model.click.weight[0, 0] = 0.5  # one text column speaks: the encoder must run
    assert r.model.reads_text
    with pytest.raises(AssertionError, match="the encoder ran"):
        r.predict(PAIRS, f)
