"""Trajectory encoders: shapes, causality, and cached rollouts == full forward passes."""

import gin
import pytest
import torch
from test_encoders import CASES, make_tstep_encoder, sample_inputs

from amago_pl.nets.traj_encoders import (
    FFTrajEncoder,
    GRUTrajEncoder,
    IdentityTrajEncoder,
    MambaTrajEncoder,
    TformerTrajEncoder,
)
from amago_pl.nets.transformer import (
    FlashAttention,
    FlexAttention,
    KVCache,
    SlidingWindowFlexAttention,
    VanillaAttention,
)

D_IN = 12


@pytest.fixture(autouse=True)
def _clean_gin():
    gin.clear_config()
    torch.manual_seed(0)
    # These models are tiny: a second intra-op thread only adds synchronisation latency, which is
    # large on a busy 2-core machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    gin.clear_config()


ATTENTIONS = {
    "flash": (FlashAttention, {}),
    "flash_window": (FlashAttention, {"FlashAttention.window_size": (2, -1)}),
    "vanilla": (VanillaAttention, {}),
    "flex": (FlexAttention, {}),
    "sliding": (SlidingWindowFlexAttention, {"SlidingWindowFlexAttention.window_size": 3}),
}
TFORMER_SPECS = [f"tformer-{a}-{p}" for a in ATTENTIONS for p in ("fixed", "learnable", "rope")]
OTHER_SPECS = ["gru", "ff", "identity"]


def build(spec: str, tstep_dim: int, max_seq_len: int, n_layers: int = 2):
    """A small encoder of the given kind, in eval mode (no dropout, frozen sigma-reparam)."""
    if spec.startswith("tformer"):
        _, attn, pos = spec.split("-")
        attn_cls, bindings = ATTENTIONS[attn]
        for key, value in bindings.items():
            gin.bind_parameter(key, value)
        gin.bind_parameter("LearnablePosEmb.max_time_idx", 200)
        model = TformerTrajEncoder(
            tstep_dim, max_seq_len, d_model=16, n_heads=4, d_ff=32, n_layers=n_layers,
            pos_emb=pos, attention_type=attn_cls,
        )  # fmt: skip
    elif spec == "gru":
        model = GRUTrajEncoder(tstep_dim, max_seq_len, d_hidden=16, n_layers=n_layers, d_output=16)
    elif spec == "ff":
        model = FFTrajEncoder(tstep_dim, max_seq_len, d_model=16, n_layers=n_layers)
    else:
        model = IdentityTrajEncoder(tstep_dim, max_seq_len)
    return model.eval()


@pytest.mark.parametrize("spec", ["tformer-flash-fixed", "tformer-vanilla-fixed", "tformer-flex-fixed",
                                  "tformer-sliding-fixed", *OTHER_SPECS])  # fmt: skip
@pytest.mark.parametrize("case", list(CASES))
def test_encoder_stack_shapes(case, spec):
    obs_space, action_dim = CASES[case]
    tstep = make_tstep_encoder(case)
    traj = build(spec, tstep.emb_dim, max_seq_len=8).train()
    obs, rl2s = sample_inputs(obs_space, action_dim, b=2, seq_len=6)
    emb = tstep(obs, rl2s)
    out, hidden = traj(emb, torch.arange(6).expand(2, 6))
    assert out.shape == (2, 6, traj.emb_dim)
    out.square().mean().backward()  # trainable end to end
    assert all(p.grad is not None for p in tstep.parameters() if p.requires_grad)


@pytest.mark.parametrize("spec", TFORMER_SPECS + OTHER_SPECS)
def test_causal(spec):
    model = build(spec, D_IN, max_seq_len=16)
    seq = torch.randn(2, 10, D_IN)
    times = torch.arange(10).expand(2, 10) + 3
    base, _ = model(seq, times)
    poked = seq.clone()
    poked[:, 6] += 5.0
    out, _ = model(poked, times)
    assert torch.allclose(out[:, :6], base[:, :6], atol=1e-6)
    assert not torch.allclose(out[:, 6], base[:, 6])


def simulate_rollout(model, n_envs: int, T: int, reset_prob: float, seed: int):
    """Step 8 parallel envs one token at a time with resets at different steps.

    Returns the step-by-step outputs (N, T, D), the inputs, the time indices and each env's
    episode segments [(start, end), ...].
    """
    g = torch.Generator().manual_seed(seed)
    seq = torch.randn(n_envs, T, D_IN, generator=g)
    starts = torch.rand(n_envs, T, generator=g) < reset_prob
    starts[:, 0] = True
    starts[0, 1:] = False  # env 0 never resets
    starts[1, 3:6] = True  # env 1 has length-1 episodes
    time_idxs = torch.zeros(n_envs, T, dtype=torch.long)
    for t in range(1, T):
        time_idxs[:, t] = torch.where(starts[:, t], 0, time_idxs[:, t - 1] + 1)

    hidden = model.init_hidden_state(n_envs, "cpu")
    outs = []
    with torch.no_grad():
        for t in range(T):
            if t > 0 and starts[:, t].any():
                # envs whose episode ended at the previous step start fresh now
                hidden = model.reset_hidden_state(hidden, starts[:, t])
            out, hidden = model(seq[:, t : t + 1], time_idxs[:, t : t + 1], hidden)
            outs.append(out)
    segments = []
    for e in range(n_envs):
        idx = starts[e].nonzero().flatten().tolist() + [T]
        segments.append(list(zip(idx[:-1], idx[1:])))
    return torch.cat(outs, dim=1), seq, time_idxs, segments


def reference(model, seq: torch.Tensor, times: torch.Tensor, window: int | None) -> torch.Tensor:
    """Fresh full passes over one episode (L, D). With ``window``, output p comes from a pass over
    the last ``window`` tokens ending at p (the Transformer's cache length)."""
    with torch.no_grad():
        if window is None or len(seq) <= window:
            return model(seq[None], times[None])[0][0]
        first = model(seq[None, :window], times[None, :window])[0][0]
        rest = [model(seq[None, p - window + 1 : p + 1], times[None, p - window + 1 : p + 1])[0][0, -1]
                for p in range(window, len(seq))]  # fmt: skip
        return torch.cat([first, torch.stack(rest)])


@pytest.mark.parametrize("spec", TFORMER_SPECS + OTHER_SPECS)
def test_cached_steps_match_full_pass_with_parallel_resets(spec):
    T = 20
    model = build(spec, D_IN, max_seq_len=T)  # 2 layers, context never overflows
    stepped, seq, times, segments = simulate_rollout(model, n_envs=8, T=T, reset_prob=0.15, seed=1)
    for e, segs in enumerate(segments):
        for s, end in segs:
            expected = reference(model, seq[e, s:end], times[e, s:end], window=None)
            torch.testing.assert_close(stepped[e, s:end], expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("spec", TFORMER_SPECS + OTHER_SPECS)
def test_cached_steps_beyond_max_seq_len(spec):
    """Episodes longer than max_seq_len: the Transformer's cache slides over the last max_seq_len
    tokens, keeping their absolute time_idx. One layer, so cached keys are context-free and the
    result must equal a fresh pass over that window (deeper models drift, as in the original)."""
    S, T = 4, 16
    model = build(spec, D_IN, max_seq_len=S, n_layers=1)
    stepped, seq, times, segments = simulate_rollout(model, n_envs=8, T=T, reset_prob=0.08, seed=2)
    assert max(end - s for segs in segments for s, end in segs) > 2 * S
    window = S if spec.startswith("tformer") else None  # GRU carries its state through the episode
    for e, segs in enumerate(segments):
        for s, end in segs:
            expected = reference(model, seq[e, s:end], times[e, s:end], window=window)
            torch.testing.assert_close(stepped[e, s:end], expected, atol=1e-5, rtol=1e-5)


def test_kv_cache_is_a_fixed_ring_buffer():
    model = build("tformer-flash-fixed", D_IN, max_seq_len=4)
    cache = model.init_hidden_state(3, "cpu")
    assert isinstance(cache, KVCache)
    assert cache.k.shape == (2, 3, 4, 4, 4)  # (layers, B, H, S, Dh)
    ptr = cache.k.data_ptr()
    with torch.no_grad():
        for t in range(10):
            _, cache = model(torch.randn(3, 1, D_IN), torch.full((3, 1), t), cache)
    assert cache.k.data_ptr() == ptr  # written in place, never reallocated or shifted
    assert cache.count.tolist() == [10, 10, 10] and cache.lengths.tolist() == [4, 4, 4]
    cache = model.reset_hidden_state(cache, torch.tensor([False, True, False]))
    assert cache.count.tolist() == [10, 0, 10]


@pytest.mark.parametrize("attn", ["sliding", "flash_window"])
def test_windowed_attention_cache_keeps_only_the_window(attn):
    """Sliding-window kernels need window + 1 cached tokens, so a step's cost does not grow with
    max_seq_len. Because every layer only looks window steps back, stepping any depth through an
    episode far longer than max_seq_len equals one full pass over the whole episode."""
    window = 3 if attn == "sliding" else 2
    model = build(f"tformer-{attn}-fixed", D_IN, max_seq_len=8, n_layers=2)
    cache = model.init_hidden_state(8, "cpu")
    assert cache.k.shape[3] == window + 1  # (layers, B, H, S, Dh)
    stepped, seq, times, segments = simulate_rollout(model, n_envs=8, T=24, reset_prob=0.05, seed=3)
    assert max(end - s for segs in segments for s, end in segs) > 2 * 8
    for e, segs in enumerate(segments):
        for s, end in segs:
            expected = reference(model, seq[e, s:end], times[e, s:end], window=None)
            torch.testing.assert_close(stepped[e, s:end], expected, atol=1e-5, rtol=1e-5)


def test_full_attention_cache_keeps_max_seq_len():
    model = build("tformer-vanilla-fixed", D_IN, max_seq_len=8)
    assert model.init_hidden_state(2, "cpu").k.shape[3] == 8


def test_gru_reset_zeroes_only_done_rows():
    model = build("gru", D_IN, max_seq_len=8)
    h = torch.randn(2, 3, 16)
    reset = model.reset_hidden_state(h, torch.tensor([True, False, True]))
    assert torch.equal(reset[:, 1], h[:, 1])
    assert reset[:, [0, 2]].abs().sum() == 0
    assert torch.equal(model.init_hidden_state(4, "cpu"), torch.zeros(2, 4, 16))


def test_tformer_defaults():
    model = TformerTrajEncoder(32, 64)
    tf = model.transformer
    assert model.emb_dim == 256 and len(tf.layers) == 3
    layer = tf.layers[0]
    assert layer.n_heads == 8 and layer.ff1.out_features == 1024
    assert isinstance(layer.attention, FlashAttention) and layer.attention.window_size == (-1, -1)
    assert layer.head_scale is not None and type(layer.qkv).__name__ == "SigmaReparam"


def test_configure_doc_tformer_config_binds():
    """configure.txt: a 512-wide, 16-head Transformer with sliding-window attention."""
    config = {
        "TformerTrajEncoder.n_heads": 16,
        "TformerTrajEncoder.d_model": 512,
        "TformerTrajEncoder.d_ff": 2048,
        "TformerTrajEncoder.attention_type": SlidingWindowFlexAttention,
        "SlidingWindowFlexAttention.window_size": 128,
    }
    for key, value in config.items():
        gin.bind_parameter(key, value)
    model = TformerTrajEncoder(16, 32)
    layer = model.transformer.layers[0]
    assert model.emb_dim == 512 and layer.n_heads == 16 and layer.head_dim == 32
    assert layer.qkv.weight.shape == (3 * 512, 512) and layer.ff1.weight.shape == (2048, 512)
    assert isinstance(layer.attention, SlidingWindowFlexAttention) and layer.attention.window_size == 128


def test_full_path_gin_bindings():
    gin.parse_config(
        """
        amago_pl.nets.traj_encoders.TformerTrajEncoder.n_heads = 2
        amago_pl.nets.traj_encoders.TformerTrajEncoder.d_model = 8
        TformerTrajEncoder.attention_type = @SlidingWindowFlexAttention
        amago_pl.nets.transformer.SlidingWindowFlexAttention.window_size = 7
        """
    )
    model = TformerTrajEncoder(4, 16)
    assert model.emb_dim == 8 and model.transformer.layers[0].n_heads == 2
    assert model.transformer.layers[0].attention.window_size == 7


def test_missing_window_size_names_the_binding():
    gin.bind_parameter("TformerTrajEncoder.attention_type", SlidingWindowFlexAttention)
    with pytest.raises(Exception, match=r"SlidingWindowFlexAttention[\s\S]*window_size"):
        TformerTrajEncoder(4, 16, d_model=8, n_heads=2)


def test_learnable_pos_emb_requires_max_time_idx():
    with pytest.raises(Exception, match=r"LearnablePosEmb[\s\S]*max_time_idx"):
        TformerTrajEncoder(4, 16, d_model=8, n_heads=2, pos_emb="learnable")


def test_mamba_missing_dependency_message():
    try:
        import mamba_ssm  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"pip install amago_pl\[mamba\]"):
            MambaTrajEncoder(8, 16)
    else:  # pragma: no cover - only on CUDA machines with mamba installed
        pytest.skip("mamba_ssm installed; covered by the shape tests on GPU")


def test_flex_score_mod_same_in_training_and_cached_paths():
    """A relative-position score_mod (ALiBi-like) must see the same q/kv indices in both paths."""

    class AlibiFlex(FlexAttention):
        def __init__(self, causal: bool = True, dropout: float = 0.0):
            super().__init__(
                score_mod=lambda s, b, h, q, kv: s - 0.3 * (q - kv), causal=causal, dropout=dropout
            )

    model = TformerTrajEncoder(
        D_IN, 6, d_model=16, n_heads=4, d_ff=32, n_layers=1, attention_type=AlibiFlex
    ).eval()
    stepped, seq, times, segments = simulate_rollout(model, n_envs=4, T=14, reset_prob=0.1, seed=3)
    for e, segs in enumerate(segments):
        for s, end in segs:
            expected = reference(model, seq[e, s:end], times[e, s:end], window=6)
            torch.testing.assert_close(stepped[e, s:end], expected, atol=1e-5, rtol=1e-5)


def test_multi_token_input_with_cache_and_numpy_dones():
    import numpy as np

    model = build("tformer-vanilla-rope", D_IN, max_seq_len=16)
    seq, times = torch.randn(3, 7, D_IN), torch.arange(7).expand(3, 7)
    with torch.no_grad():
        full, _ = model(seq, times)
        hidden = model.init_hidden_state(3, "cpu")
        first, hidden = model(seq[:, :4], times[:, :4], hidden)  # a 4-token "prompt"
        rest, hidden = model(seq[:, 4:], times[:, 4:], hidden)
    torch.testing.assert_close(torch.cat([first, rest], 1), full, atol=1e-5, rtol=1e-5)
    hidden = model.reset_hidden_state(hidden, np.array([True, False, False]))
    assert hidden.count.tolist() == [0, 7, 7]


def test_sigma_reparam_inference_cache_follows_weight_updates():
    model = build("tformer-flash-fixed", D_IN, max_seq_len=8)
    seq, times = torch.randn(2, 5, D_IN), torch.arange(5).expand(2, 5)
    with torch.no_grad():
        model(seq, times)  # fills the sigma cache
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        cached, _ = model(seq, times)
    fresh, _ = model(seq, times)  # grad enabled: bypasses the cache
    torch.testing.assert_close(cached, fresh.detach(), atol=1e-6, rtol=1e-6)
