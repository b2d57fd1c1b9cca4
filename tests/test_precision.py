"""trainer.precision=auto: bf16-mixed on a GPU and on a CPU with native bf16, fp32 on other CPUs and in
deterministic mode; the record says which and why. Fused AdamW with gradient clipping under bf16-mixed."""

from __future__ import annotations

import pytorch_lightning as pl
import pytest
import torch
from omegaconf import OmegaConf

from attnbench.models import rnn
from attnbench.tasks.optim import configure_optimizer
from attnbench.training import precision


def _cfg(requested="auto", deterministic=False):
    return OmegaConf.create({"trainer": {"precision": requested, "deterministic": deterministic}})


def test_cpu_bf16_flag_reads_the_cpuinfo_flags(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_tile\nbugs\t\t: none\n")
    assert precision.cpu_bf16_flag(info) == "avx512_bf16"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f amx_bf16 amx_tile avx512_bf16\n")
    assert precision.cpu_bf16_flag(info) == "amx_bf16"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\n")
    assert precision.cpu_bf16_flag(info) is None
    assert precision.cpu_bf16_flag(tmp_path / "missing") is None  # not Linux: no cpuinfo, no guess


@pytest.mark.parametrize(("flag", "deterministic", "gpu", "expected"), [
    ("avx512_bf16", False, False, "bf16-mixed"),
    ("amx_bf16", False, False, "bf16-mixed"),
    (None, False, False, "32-true"),
    ("avx512_bf16", True, False, "32-true"),
    (None, False, True, "bf16-mixed"),
])
def test_auto_precision_follows_the_machine(monkeypatch, flag, deterministic, gpu, expected):
    monkeypatch.setattr(precision, "cpu_bf16_flag", lambda: flag)
    chosen, reason = precision.choose_precision(_cfg(deterministic=deterministic), gpu)
    assert chosen == expected and reason.startswith("auto: ")
    if not gpu and not deterministic:
        assert (flag in reason) if flag else "no native bf16" in reason
    if deterministic:
        assert "deterministic" in reason


def test_an_explicit_precision_is_kept(monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_flag", lambda: "avx512_bf16")
    assert precision.choose_precision(_cfg("32-true"), False) == ("32-true", "trainer.precision as set")
    assert precision.choose_precision(_cfg("16-mixed"), True)[0] == "16-mixed"


def test_cpu_bf16_lstm_probe_matches_what_the_cpu_can_run():
    """The probe agrees with the machine: native bf16 (AVX-512 BF16/AMX) runs oneDNN's bf16 LSTM."""
    if precision.cpu_bf16_flag():
        assert rnn.cpu_bf16_lstm()
    x = torch.randn(2, 3, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = rnn.run_rnn(torch.nn.LSTM(4, 4, batch_first=True), x)  # runs on every CPU
    assert out.dtype == (torch.bfloat16 if rnn.cpu_bf16_lstm() else torch.float32)


@pytest.mark.parametrize("native", [False, True])
def test_an_lstm_without_onednn_bf16_runs_in_fp32_under_bf16_mixed(monkeypatch, native):
    """bf16-mixed on a CPU without oneDNN's bf16 LSTM (AVX2 only): the LSTM layers run in fp32, so the encoder's
    output equals the fp32 one exactly (nothing else in it is a bf16 op), and the record's reason says so."""
    monkeypatch.setattr(rnn, "cpu_bf16_lstm", lambda: native)
    monkeypatch.setattr(precision, "cpu_bf16_lstm", lambda: native)
    if native and not precision.cpu_bf16_flag():
        pytest.skip("this CPU has no oneDNN bf16 LSTM to run natively")  # the False case runs everywhere
    torch.manual_seed(0)
    encoder = rnn.RNNEncoder(50, embed_dim=8, hidden_dim=6, num_layers=2).eval()
    ids = torch.randint(1, 50, (3, 7))
    mask = torch.arange(7)[None, :] < torch.tensor([[7], [4], [1]])
    with torch.no_grad():
        reference, _ = encoder(ids, mask)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed, _ = encoder(ids, mask)
    if native:
        assert mixed.dtype == torch.bfloat16 and not torch.equal(mixed.float(), reference)
    else:
        assert mixed.dtype == torch.float32 and torch.equal(mixed, reference)
    cfg = OmegaConf.create({"trainer": {"precision": "bf16-mixed", "deterministic": False},
                            "model": {"name": "rnn", "cell": "lstm"}})
    reason = precision.choose_precision(cfg, gpu=False)[1]
    assert ("LSTM layers in fp32" in reason) != native
    assert "LSTM" not in precision.choose_precision(cfg, gpu=True)[1]
    cfg.model.cell = "gru"
    assert "LSTM" not in precision.choose_precision(cfg, gpu=False)[1]


def test_adamw_is_fused_on_cpu_parameters_and_not_for_a_gradient_scaler():
    params = [torch.nn.Parameter(torch.randn(4, 3)), torch.nn.Parameter(torch.randn(3))]
    optim = {"lr": 1e-3, "weight_decay": 0.0, "scheduler": "constant", "warmup_ratio": 0.0}
    assert configure_optimizer(params, optim, 10)["optimizer"].defaults["fused"] is True
    assert not configure_optimizer(params, optim, 10, fused=False)["optimizer"].defaults["fused"]


def test_bf16_mixed_clips_gradients_with_the_fused_optimizer():
    """Lightning's mixed-precision plugin refuses to clip for a fused optimizer; the task clips by norm itself when
    no gradient scaler is in play, exactly as Lightning would."""
    from attnbench.tasks.base import TaskModule

    task = TaskModule(torch.nn.Linear(3, 2), optim={"lr": 1e-3, "weight_decay": 0.0, "scheduler": "constant",
                                                    "warmup_ratio": 0.0})
    task.trainer = pl.Trainer(accelerator="cpu", precision="bf16-mixed", logger=False, enable_checkpointing=False,
                              enable_progress_bar=False, enable_model_summary=False)
    for p in task.parameters():
        p.grad = torch.full_like(p, 10.0)
    optimizer = torch.optim.AdamW(task.parameters(), fused=True)
    task.configure_gradient_clipping(optimizer, gradient_clip_val=0.5)
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in task.parameters()]))
    assert norm == pytest.approx(0.5, rel=1e-4)
