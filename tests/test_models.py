"""The tiny transformer: shapes, attention as a value per layer and per head, bad token ids, training."""

import pytest
import torch

from fastattn_lib import attention as A
from fastattn_lib import tasks
from fastattn_lib.attention import Anna, CollisionKernel, Softmax, StraightThroughAnna
from fastattn_lib.models import ModelConfig, TinyTransformer


def small_model(**overrides):
    torch.manual_seed(0)
    return TinyTransformer(
        ModelConfig(**{"vocab_size": 7, "seq_len": 12, "n_classes": 3, "d_model": 16, **overrides})
    )


def test_logits_shape_and_bad_input():
    model = small_model(n_layers=2)
    assert model(torch.randint(7, (4, 12))).shape == (4, 12, 3)
    with pytest.raises(ValueError, match="x"):
        model(torch.randint(7, (4, 13)))
    with pytest.raises(ValueError, match="d_model"):
        ModelConfig(7, 12, 3, d_model=0)


def test_with_attention_shares_parameters_and_leaves_the_original_unchanged():
    model = small_model(n_layers=2, causal=True, beta=5.0)
    x = torch.randint(7, (2, 12))
    soft = model(x)
    anna = model.with_attention(Anna(n_tables=6, n_hashes=1, seed=3))
    assert [a.seed for a in anna.attentions] == [3, 1003]  # layer i hashes with seed + 1000·i
    assert model.attentions == (Softmax(5.0),) * 2
    assert all(p is q for p, q in zip(model.parameters(), anna.parameters(), strict=True))
    assert not torch.allclose(anna(x), soft)
    assert torch.equal(model(x), soft)  # the original still runs softmax
    with torch.no_grad():  # one parameter tensor: a change shows in both
        model.classifier.bias += 1
    assert torch.allclose(anna.with_attention(Softmax(5.0))(x), model(x))


def test_a_list_of_attentions_is_used_as_given():
    model = small_model(n_layers=2, causal=True)
    given = [Anna(4, 1, seed=7), Anna(2, 1, seed=7)]
    assert model.with_attention(given).attentions == tuple(given)
    with pytest.raises(ValueError, match="one object per layer"):
        model.with_attention(given[:1])
    with pytest.raises(ValueError, match="attention"):
        model.with_attention("anna")


def test_use_attention_is_the_in_place_compatibility_wrapper():
    model = small_model(n_layers=2, causal=True, beta=5.0)
    x = torch.randint(7, (2, 12))
    expected = model.with_attention([Anna(6, 1, seed=3), Anna(2, 1, seed=1003)])(x)
    assert model.use_attention("anna", n_tables=[6, 2], n_hashes=1, seed=3) is model
    assert torch.equal(model(x), expected)
    kernel = model.use_attention("collision_kernel", n_hashes=2, n_tables=[3, 1]).attentions
    assert kernel == (CollisionKernel(2, n_tables=3), CollisionKernel(2, n_tables=1))
    straight = model.use_attention("anna", n_tables=4, n_hashes=1, straight_through=True, finite_kernel=True)
    assert straight.attentions[1] == StraightThroughAnna(4, 1, seed=1000, finite_kernel=True)
    with pytest.raises(ValueError, match="one ℓ per layer"):
        model.use_attention("anna", n_tables=[4], n_hashes=1)
    with pytest.raises(ValueError, match="kind"):
        model.use_attention("linear")
    with pytest.raises(ValueError, match="unexpected"):
        model.use_attention("softmax", beta=1.0, n_tables=3)


def test_heads_hash_with_their_own_functions_without_a_loop():
    model = small_model(n_heads=4, causal=True)
    x = torch.randint(7, (2, 12))
    anna = model.with_attention(Anna(3, 1, seed=2))
    h = model.embed(x)
    q, k, v = model.blocks[0].attention.split_heads(h)  # (B, 4, N, 4)
    heads = [A.anna_attention(q[:, i], k[:, i], v[:, i], 3, 1, seed=2 + i, causal=True) for i in range(4)]
    mixed = model.blocks[0].attention.merge_heads(torch.stack(heads, dim=1))
    h = h + mixed
    h = h + model.blocks[0].mlp(h)
    assert torch.allclose(anna(x), model.classifier(h), atol=1e-5)
    weights = anna.attention_weights(x)[0]  # (B, H, N, N)
    assert weights.shape == (2, 4, 12, 12) and not torch.equal(weights[:, 0], weights[:, 1])


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (torch.rand(2, 12), "integer tensor"),
        (torch.full((2, 12), 7), "0..6"),
        (torch.full((2, 12), -1), "0..6"),
        (torch.zeros(2, 13, dtype=torch.long), "N ≤ 12"),
        (torch.zeros(12, dtype=torch.long), "batch"),
    ],
)
def test_bad_token_ids_are_refused_with_the_vocabulary_size(x, message):
    with pytest.raises(ValueError, match=message):
        small_model()(x)


def test_anna_model_matches_a_manual_forward():
    model = small_model().with_attention(Anna(3, 1, seed=2))
    x = torch.randint(7, (2, 12))
    h = model.token_embedding(x) + model.position_embedding(torch.arange(12))
    layer = model.blocks[0].attention
    q, k, v = layer.qkv(h).view(2, 12, 3, 1, 16).permute(2, 0, 3, 1, 4)
    mixed = A.anna_attention(q[:, 0], k[:, 0], v[:, 0], 3, 1, seed=2)
    h = h + layer.proj(mixed)
    h = h + model.blocks[0].mlp(h)
    assert torch.allclose(model(x), model.classifier(h), atol=1e-5)


def test_a_few_adam_steps_lower_the_match2_loss():
    model = TinyTransformer(ModelConfig(37, 32, 2, d_model=32, beta=10.0))
    x, y = tasks.match2(256, seed=5)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)

    def loss():
        return torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())

    start = loss().item()
    for _ in range(30):
        optimizer.zero_grad()
        value = loss()
        value.backward()
        optimizer.step()
    assert loss().item() < 0.8 * start


# ---------------------------------------------------------------------------------------------------------
# NAtS: the role-scoring model, NAtS attention as a value, token-by-token decoding through KV caches


def nats_model(window=2):
    """A small causal model with role scorers whose (zero-initialised) weights are drawn, so the roles mix;
    its dense attention is scaled dot product. Returns (dense model, its NAtS twin), both in eval mode."""
    from fastattn_lib.models import scaled_dot_product
    from fastattn_lib.nats import NatsAttention

    torch.manual_seed(0)
    config = ModelConfig(
        vocab_size=7, seq_len=16, n_classes=7, d_model=16, n_layers=2, n_heads=2, causal=True,
        layer_norm=True, role_scorer=True,
    )  # fmt: skip
    dense = TinyTransformer(config, attention=scaled_dot_product(config)).eval()
    for block in dense.blocks:
        torch.nn.init.normal_(block.scorer.proj.weight, std=3.0)
    return dense, dense.with_attention(NatsAttention(window))


def test_decoding_through_caches_gives_the_forward_pass():
    """A full cache reproduces the dense forward pass; NAtS eviction with the same W reproduces the NAtS
    forward pass (masked attention under the scorers' roles), and holds what a later query can see."""
    from fastattn_lib import nats
    from fastattn_lib.models import scaled_dot_product

    dense, masked = nats_model(window=2)
    x = torch.randint(7, (3, 16), generator=torch.Generator().manual_seed(1))
    logits, sizes = dense.decode(x, nats.FullCache())
    assert (logits - dense(x)).abs().max() < 1e-5
    assert torch.equal(sizes, torch.arange(1, 17).expand(2, 3, 2, 16))
    forward, roles = masked.run(x)
    logits, sizes = masked.decode(x, nats.NAtSPolicy(2))
    assert (logits - forward).abs().max() < 1e-5
    role_ids = [one_hot.argmax(-1) for one_hot in roles]
    assert all(len(r.unique()) == 3 for r in role_ids)  # every role occurs: eviction is exercised
    for layer, r in enumerate(role_ids):  # after step t the cache holds the keys query t + 1 still sees
        mask = nats.nats_mask(r, 2)
        assert torch.equal(sizes[layer, ..., :-1], mask[..., 1:, :].sum(-1) - 1)
    assert dense.attentions == (scaled_dot_product(dense.config),) * 2  # with_attention left it alone


def test_generation_feeds_back_the_arg_max_through_the_same_caches():
    from fastattn_lib import nats

    _, masked = nats_model()
    prompt = torch.randint(7, (2, 10), generator=torch.Generator().manual_seed(2))
    generated, sizes = masked.generate(prompt, 4, nats.NAtSPolicy(2))
    assert torch.equal(generated[:, :10], prompt) and generated.shape == (2, 14) and sizes.shape == (2, 2, 2)
    logits, _ = masked.decode(generated, nats.NAtSPolicy(2))
    assert torch.equal(logits[:, 9:13].argmax(-1), generated[:, 10:])
    with pytest.raises(ValueError, match="n_new"):
        masked.generate(prompt, 7, nats.NAtSPolicy(2))


def test_nats_attention_weights_follow_the_roles_and_decoding_refuses_other_kinds():
    import dataclasses

    from fastattn_lib import nats
    from fastattn_lib.attention import Softmax

    dense, masked = nats_model(window=1)
    x = torch.randint(7, (2, 16), generator=torch.Generator().manual_seed(3))
    _, roles = masked.run(x)
    for weights, one_hot in zip(masked.attention_weights(x), roles, strict=True):
        assert torch.allclose(weights.sum(-1), torch.ones(2, 2, 16))
        assert not weights[~nats.nats_mask(one_hot.argmax(-1), 1)].any()
    with pytest.raises(ValueError, match="attention"):  # a cache attends with softmax(q·kᵀ/√d_h)
        dense.with_attention(Softmax(1.0)).decode(x, nats.FullCache())
    without_scorers = TinyTransformer(dataclasses.replace(dense.config, role_scorer=False))
    with pytest.raises(ValueError, match="roles"):
        without_scorers.with_attention(nats.NatsAttention(2))(x)


@pytest.mark.parametrize("chunk", [3, 4])
def test_chunked_roles_decode_as_the_masked_forward_pass(chunk):
    """Roles per chunk of C tokens (C = 3 leaves a shorter last chunk): decoding, which learns a chunk's
    role only at its last token and holds the chunk until then, reproduces the masked forward pass, and the
    cache holds what the next query sees. C = 1 is the per-token model."""
    from fastattn_lib import nats

    dense, per_token = nats_model(window=2)
    masked = dense.with_attention(nats.NatsAttention(2, chunk))
    x = torch.randint(7, (3, 16), generator=torch.Generator().manual_seed(4))
    forward, roles = masked.run(x)
    logits, sizes = masked.decode(x, nats.NAtSPolicy(2))
    assert (logits - forward).abs().max() < 1e-5
    role_ids = [one_hot.argmax(-1) for one_hot in roles]
    assert all(len(r[..., chunk:].unique()) == 3 for r in role_ids)  # every role occurs after the first chunk
    for layer, r in enumerate(role_ids):
        assert (r[..., :chunk] == nats.GLOBAL).all()
        assert torch.equal(r, r[..., torch.arange(16) // chunk * chunk])  # one role per chunk
        mask = nats.nats_mask(r, 2, chunk)
        assert torch.equal(sizes[layer, ..., :-1], mask[..., 1:, :].sum(-1) - 1)
    one = dense.with_attention(nats.NatsAttention(2, chunk=1))
    assert torch.equal(one(x), per_token(x))
    assert torch.equal(one.decode(x, nats.NAtSPolicy(2))[0], per_token.decode(x, nats.NAtSPolicy(2))[0])
