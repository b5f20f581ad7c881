"""The tiny transformer: shapes, switching attention per layer, and that training moves it."""

import pytest
import torch

from fastattn_lib import attention, tasks
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


def test_use_attention_switches_every_layer_with_its_own_hashes():
    model = small_model(n_layers=2, causal=True, beta=5.0)
    x = torch.randint(7, (2, 12))
    soft = model(x)
    model.use_attention("anna", n_tables=[6, 2], n_hashes=1, seed=3)
    params = [block.attention.attention_params for block in model.blocks]
    assert [p["n_tables"] for p in params] == [6, 2] and [p["seed"] for p in params] == [3, 1003]
    assert not torch.allclose(model(x), soft)
    model.use_attention("softmax")
    assert torch.allclose(model(x), soft)  # the weights were never touched
    with pytest.raises(ValueError, match="one ℓ per layer"):
        model.use_attention("anna", n_tables=[4], n_hashes=1)


def test_collision_kernel_takes_one_table_count_per_layer():
    model = small_model(n_layers=2, causal=True)
    x = torch.randint(7, (2, 12))
    model.use_attention("collision_kernel", n_hashes=2)
    limit = model(x)
    model.use_attention("collision_kernel", n_hashes=2, n_tables=[3, 1])
    assert [b.attention.attention_params["n_tables"] for b in model.blocks] == [3, 1]
    assert not torch.allclose(model(x), limit)  # few tables: rows that may find nothing shrink
    with pytest.raises(ValueError, match="one ℓ per layer"):
        model.use_attention("collision_kernel", n_hashes=2, n_tables=[3, 1, 2])
    with pytest.raises(ValueError, match="n_tables"):
        model.use_attention("collision_kernel", n_hashes=2, n_tables=0)


def test_anna_model_matches_a_manual_forward():
    model = small_model().use_attention("anna", n_tables=3, n_hashes=1, seed=2)
    x = torch.randint(7, (2, 12))
    h = model.token_embedding(x) + model.position_embedding(torch.arange(12))
    layer = model.blocks[0].attention
    q, k, v = layer.qkv(h).view(2, 12, 3, 1, 16).permute(2, 0, 3, 1, 4)
    mixed = attention.anna_attention(q[:, 0], k[:, 0], v[:, 0], 3, 1, seed=2)
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
