"""Engine: LIFT schedule (book: Method, 'Optimisation'), batch plan, accumulation, resume equality, data
parallel, checkpoints."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import Dataset

from ltlib.cache import load_split, save_split
from ltlib.distributed import DistContext
from ltlib.engine import epoch_batches, evaluate, local_share, lr_at_epoch, total_steps, train
from ltlib.errors import ConfigError
from ltlib.recipes import TrainConfig, load_recipe


class NoisyBlobs(Dataset):
    """Gaussian class blobs; each item adds noise from torch's global RNG (a stand-in augmentation)."""

    def __init__(self, n: int = 70, num_classes: int = 5, dim: int = 12, seed: int = 0, noise: float = 0.3) -> None:
        g = torch.Generator().manual_seed(seed)
        self.noise = noise
        self.targets = torch.arange(n) % num_classes
        self.centres = torch.randn(num_classes, dim, generator=g) * 2
        self.x = self.centres[self.targets] + torch.randn(n, dim, generator=g)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        return self.x[i] + self.noise * torch.randn(self.x.shape[1]), self.targets[i]


def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 5))


def cfg(**kw) -> TrainConfig:
    base = dict(epochs=3, batch_size=16, micro_batch_size=16, lr=0.05, num_workers=0, tte=False,
                checkpoint_every=0, log_every=1, seed=3)
    return TrainConfig(**{**base, **kw})


def flat_params(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_lr_schedule_matches_lift_per_epoch_cosine():
    expected10 = [0.01, 0.009755, 0.009045, 0.007939, 0.006545, 0.005, 0.003455, 0.002061, 0.000955, 0.000245]
    assert [round(lr_at_epoch(e, 10, 0.01), 6) for e in range(10)] == expected10
    e20 = [lr_at_epoch(e, 20, 0.01) for e in range(20)]
    assert round(e20[1], 6) == 0.009938 and round(e20[-3], 6) == 0.000545 and f"{e20[-1]:.1e}" == "6.2e-05"


def test_lr_is_constant_within_an_epoch_and_logged(tmp_path):
    train(tiny_model(), NoisyBlobs(), nn.CrossEntropyLoss(), cfg(), tmp_path, progress=False)
    import json
    steps = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    by_epoch = {}
    for rec in steps:
        if rec["kind"] == "step":
            by_epoch.setdefault(rec["epoch"], set()).add(round(rec["lr"], 12))
    assert [len(v) for v in by_epoch.values()] == [1, 1, 1]
    assert [v.pop() for v in by_epoch.values()] == [pytest.approx(lr_at_epoch(e, 3, 0.05)) for e in range(3)]
    header = json.loads((tmp_path / "log.jsonl").read_text().splitlines()[0])
    assert header["kind"] == "start" and header["seed"] == 3 and len(header["config_hash"]) == 12
    assert "git_sha" in header and header["config"]["lr"] == 0.05


def test_epoch_batches_cover_every_sample_once_and_are_seeded():
    batches = epoch_batches(70, 16, seed=1, epoch=2)
    assert [len(b) for b in batches] == [16, 16, 16, 16, 6]
    assert sorted(np.concatenate(batches).tolist()) == list(range(70))
    assert all((a == b).all() for a, b in zip(batches, epoch_batches(70, 16, seed=1, epoch=2)))
    assert not all((a == b).all() for a, b in zip(batches, epoch_batches(70, 16, seed=1, epoch=3)))


def test_local_shares_partition_a_global_batch_with_weights_summing_to_world():
    batch = np.arange(7)
    shares = [local_share(batch, DistContext(rank=r, world_size=3)) for r in range(3)]
    assert np.concatenate([s for s, _ in shares]).tolist() == list(range(7))
    assert sum(w for _, w in shares) == pytest.approx(3.0)
    tiny = [local_share(np.arange(1), DistContext(rank=r, world_size=2)) for r in range(2)]
    assert tiny[0][1] == pytest.approx(2.0) and tiny[1][1] == 0.0 and len(tiny[1][0]) == 1


def test_total_steps_and_max_steps():
    assert total_steps(70, cfg()) == 3 * 5
    assert total_steps(70, cfg(max_steps=4)) == 4


def test_training_reduces_loss_and_is_deterministic(tmp_path):
    m1, m2 = tiny_model(), tiny_model()
    r1 = train(m1, NoisyBlobs(), nn.CrossEntropyLoss(), cfg(epochs=6), tmp_path / "a", progress=False)
    train(m2, NoisyBlobs(), nn.CrossEntropyLoss(), cfg(epochs=6), tmp_path / "b", progress=False)
    assert r1.status == "completed" and r1.global_step == 30
    assert torch.equal(flat_params(m1), flat_params(m2))
    out = evaluate(m1, NoisyBlobs(seed=0, noise=0.0), batch_size=32, progress=False)
    assert (out.logits.argmax(1) == out.targets).mean() > 0.6


def test_gradient_accumulation_equals_a_full_batch(tmp_path):
    m1, m2 = tiny_model(), tiny_model()
    train(m1, NoisyBlobs(), nn.CrossEntropyLoss(), cfg(micro_batch_size=16), tmp_path / "a", progress=False)
    train(m2, NoisyBlobs(), nn.CrossEntropyLoss(), cfg(micro_batch_size=5), tmp_path / "b", progress=False)
    assert torch.allclose(flat_params(m1), flat_params(m2), atol=1e-6)


@pytest.mark.parametrize("stop_at", [3, 5, 7])  # mid-epoch, at an epoch boundary, mid-epoch again
def test_interrupted_then_resumed_run_equals_uninterrupted(tmp_path, stop_at):
    config = cfg(checkpoint_every=2)
    full = tiny_model()
    train(full, NoisyBlobs(), nn.CrossEntropyLoss(), config, tmp_path / "full", progress=False)
    first = tiny_model()
    r = train(first, NoisyBlobs(), nn.CrossEntropyLoss(), config, tmp_path / "cut", stop_after_steps=stop_at,
              progress=False)
    assert r.status == "interrupted" and r.global_step == stop_at
    resumed = tiny_model(seed=99)  # a fresh process would start from different weights: the checkpoint wins
    r2 = train(resumed, NoisyBlobs(), nn.CrossEntropyLoss(), config, tmp_path / "cut", progress=False)
    assert r2.status == "completed" and r2.global_step == 15
    assert torch.equal(flat_params(full), flat_params(resumed))
    a = evaluate(full, NoisyBlobs(seed=1, noise=0.0), progress=False)
    b = evaluate(resumed, NoisyBlobs(seed=1, noise=0.0), progress=False)
    assert np.array_equal(a.logits, b.logits)


def test_resuming_with_another_recipe_is_refused(tmp_path):
    train(tiny_model(), NoisyBlobs(), nn.CrossEntropyLoss(), cfg(), tmp_path, stop_after_steps=2, progress=False)
    with pytest.raises(ConfigError, match="checkpoint was written for config"):
        train(tiny_model(), NoisyBlobs(), nn.CrossEntropyLoss(), cfg(lr=0.1), tmp_path, progress=False)


def test_bad_parameters_are_named():
    with pytest.raises(ConfigError, match="loss='Focal'"):
        TrainConfig(loss="Focal")
    with pytest.raises(ConfigError, match="batch_size=0"):
        TrainConfig(batch_size=0)
    with pytest.raises(ConfigError, match="unknown key"):
        load_recipe("lift", learning_rate=0.1)
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        load_recipe("nope")


def test_shipped_recipes_are_lift():
    lift, inat = load_recipe("lift"), load_recipe("lift_inat")
    assert (lift.epochs, lift.batch_size, lift.lr, lift.momentum, lift.weight_decay) == (10, 128, 0.01, 0.9, 5e-4)
    assert (lift.loss, lift.tau, lift.cosine_scale, lift.tte, lift.tte_expand) == ("LA", 1.0, 25.0, True, 24)
    assert inat.epochs == 20 and inat.lr == lift.lr


def test_logits_cache_round_trip(tmp_path):
    out = evaluate(tiny_model(), NoisyBlobs(noise=0.0), progress=False)
    save_split(tmp_path, "test", out)
    back = load_split(tmp_path, "test")
    assert np.array_equal(back.logits, out.logits) and np.array_equal(back.targets, out.targets)
    with pytest.raises(FileNotFoundError, match="split 'val'"):
        load_split(tmp_path, "val")


# ----------------------------------------------------------------------------- data parallel (gloo)
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from ltlib.distributed import init_distributed, shutdown
    ctx = init_distributed("cpu")
    model = tiny_model()
    train(model, NoisyBlobs(), nn.CrossEntropyLoss(), cfg(), out_dir, ctx, progress=False)
    out = evaluate(model, NoisyBlobs(seed=1, noise=0.0), ctx, batch_size=8, progress=False)
    if ctx.is_main:
        torch.save({"params": flat_params(model), "logits": torch.from_numpy(out.logits)}, f"{out_dir}/result.pt")
    shutdown(ctx)


def test_two_process_gloo_data_parallel_matches_single_process(tmp_path):
    single = tiny_model()
    train(single, NoisyBlobs(), nn.CrossEntropyLoss(), cfg(), tmp_path / "single", progress=False)
    ref = evaluate(single, NoisyBlobs(seed=1, noise=0.0), progress=False)
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    got = torch.load(tmp_path / "result.pt")
    assert torch.allclose(got["params"], flat_params(single), atol=1e-5)
    assert np.allclose(got["logits"].numpy(), ref.logits, atol=1e-4)


# ----------------------------------------------------------------------------- batched datasets
class BatchBlobs(NoisyBlobs):
    """NoisyBlobs building whole batches, its noise from counter-based per-sample uniforms."""

    def get_batch(self, indices, key):
        from ltlib.seeding import sample_uniforms
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        x = self.x[idx]
        if key is not None and self.noise:
            u = torch.from_numpy(sample_uniforms(key, indices, x.shape[1])).float()
            x = x + self.noise * (u - 0.5) * 3.4
        return x, self.targets[idx]


def test_sample_uniforms_depend_only_on_key_and_index():
    from ltlib.seeding import sample_uniforms
    full = sample_uniforms(7, np.arange(10), 3)
    assert full.shape == (10, 3) and (full >= 0).all() and (full < 1).all()
    assert np.array_equal(sample_uniforms(7, np.array([9, 2]), 3), full[[9, 2]])
    assert not np.array_equal(sample_uniforms(8, np.arange(10), 3), full)
    many = sample_uniforms(1, np.arange(20000), 5)
    assert abs(many.mean() - 0.5) < 0.01 and abs(np.corrcoef(many[:, 0], many[:, 1])[0, 1]) < 0.03


def test_batch_datasets_train_resume_and_evaluate_like_item_datasets(tmp_path):
    config = cfg(checkpoint_every=2)
    full, cut = tiny_model(), tiny_model()
    train(full, BatchBlobs(), nn.CrossEntropyLoss(), config, tmp_path / "full", progress=False)
    train(cut, BatchBlobs(), nn.CrossEntropyLoss(), config, tmp_path / "cut", stop_after_steps=6, progress=False)
    train(cut, BatchBlobs(), nn.CrossEntropyLoss(), config, tmp_path / "cut", progress=False)
    assert torch.equal(flat_params(full), flat_params(cut))
    by_batch = evaluate(full, BatchBlobs(seed=1, noise=0.0), batch_size=16, progress=False)
    by_item = evaluate(full, NoisyBlobs(seed=1, noise=0.0), batch_size=16, progress=False)
    assert np.allclose(by_batch.logits, by_item.logits, atol=1e-6) and np.array_equal(by_batch.targets, by_item.targets)
    assert (by_batch.logits.argmax(1) == by_batch.targets).mean() > 0.5
