"""K LIFT fine-tuning runs trained at once (ltlib.bench.batched) equal the same runs trained one by one."""

from __future__ import annotations

import pytest
import torch

from ltlib.bench import batched
from ltlib.errors import ConfigError
from ltlib.losses import build_loss
from ltlib.recipes import TrainConfig

NUM_CLASSES, BATCH, STEPS, SEEDS = 40, 16, 4, (0, 1, 2)
CFG = TrainConfig(batch_size=BATCH, epochs=2, adapter="adaptformer")  # steps 0-1 in epoch 0, 2-3 in epoch 1
EPS = torch.finfo(torch.float32).eps
# Batched and one-by-one training run the same float32 arithmetic except the order of the additions inside
# matmuls (bmm over K models vs mm per model; the math vs the flash attention kernel). Reassociating a
# float32 sum changes it by a few ulps of its magnitude per reduction; through the two blocks' forward and
# backward a gradient collects such errors, which the update turns into a parameter difference far below
# one ulp of the parameter scale per step (lr 0.01 times momentum's gain 1 / (1 - 0.9) = 10 is 0.1 of
# the gradient). 256 ulps of the parameter scale per step leaves room for that chain and for the
# divergence a difference can grow into over a few steps; a wrong update (a swapped model, a missed
# weight decay or momentum, the wrong epoch's learning rate) moves parameters by ~1e-3 per step, four
# orders of magnitude above the bound.
ULPS_PER_STEP = 256


@pytest.fixture(scope="module")
def setup():
    backbone, _ = batched.mini_world_backbone("default", seed=0)
    loss_fn = build_loss("LA", torch.linspace(300, 3, NUM_CLASSES).round())
    g = torch.Generator().manual_seed(0)
    images = torch.randn(STEPS, len(SEEDS), BATCH, 3, 32, 32, generator=g)
    targets = torch.randint(0, NUM_CLASSES, (STEPS, len(SEEDS), BATCH), generator=g)
    return backbone, loss_fn, images, targets


def _sequential(setup):
    backbone, loss_fn, images, targets = setup
    models = batched.lift_models(backbone, NUM_CLASSES, SEEDS, CFG)
    for k, model in enumerate(models):
        optimizer = torch.optim.SGD(model.trainable_parameters(), lr=CFG.lr, momentum=CFG.momentum,
                                    weight_decay=CFG.weight_decay)
        for t in range(STEPS):
            batched.sequential_train_step(model, optimizer, loss_fn, images[t, k], targets[t, k], CFG, t // 2)
    return models


def _batched(setup):
    backbone, loss_fn, images, targets = setup
    models = batched.lift_models(backbone, NUM_CLASSES, SEEDS, CFG)
    state = batched.stack_trainable(models)
    for t in range(STEPS):
        losses = batched.batched_train_step(models[0], state, loss_fn, images[t], targets[t], CFG, t // 2)
        assert losses.shape == (len(SEEDS),) and torch.isfinite(losses).all()
    return models, state


def test_batched_training_equals_one_by_one_training(setup):
    reference = _sequential(setup)
    models, state = _batched(setup)
    initial = batched.lift_models(setup[0], NUM_CLASSES, SEEDS, CFG)
    worst, moved = 0.0, 0.0
    for k in range(len(SEEDS)):
        own, start = dict(reference[k].named_parameters()), dict(initial[k].named_parameters())
        for name, value in state.params.items():
            scale = max(float(own[name].detach().abs().max()), 1.0)
            worst = max(worst, float((value[k] - own[name].detach()).abs().max()) / (scale * EPS * STEPS))
            moved = max(moved, float((own[name] - start[name]).detach().abs().max()))
    assert worst <= ULPS_PER_STEP, f"{worst:.1f} ulps per step"
    assert moved > 1e-3  # the runs trained: equality is not that of untouched parameters
    batched.unstack_into(state, models)
    assert torch.equal(models[2].head.weight, state.params["head.weight"][2])


def test_models_differ_by_seed_so_a_swap_would_show(setup):
    reference = _sequential(setup)
    a, b = (dict(m.named_parameters())["adapters.0.down_proj.weight"] for m in reference[:2])
    assert float((a - b).detach().abs().max()) > 1e-2


def test_sgd_step_is_torch_sgd():
    g = torch.Generator().manual_seed(1)
    params, grads = torch.randn(3, 5, 4, generator=g), [torch.randn(3, 5, 4, generator=g) for _ in range(3)]
    state = batched.StackedState({"w": params.clone()})
    reference = torch.nn.Parameter(params.clone())
    optimizer = torch.optim.SGD([reference], lr=0.1, momentum=0.9, weight_decay=5e-4)
    for grad in grads:
        batched.sgd_step(state, {"w": grad}, 0.1, 0.9, 5e-4)
        reference.grad = grad.clone()
        optimizer.step()
    assert torch.equal(state.params["w"], reference.detach())  # the same elementwise float32 operations


def test_models_on_different_backbones_are_refused(setup):
    other, _ = batched.mini_world_backbone("default", seed=1)
    models = batched.lift_models(setup[0], NUM_CLASSES, (0,), CFG) + batched.lift_models(other, NUM_CLASSES, (0,), CFG)
    with pytest.raises(ConfigError, match="same backbone"):
        batched.stack_trainable(models)


def test_benchmarks_of_other_modules_come_in_as_runners(tmp_path):
    from ltlib.bench.rates import RUNNERS
    from ltlib.bench.suite import BenchOptions, row, run_benchmarks

    assert set(RUNNERS) == {"rates", "batched"}
    fake = {"batched": lambda options: [row("batched", "K=1", "speedup_batched_vs_sequential", 2.0, "x")]}
    table = run_benchmarks(tmp_path, BenchOptions(only=("batched", "rates")), fake).set_index("benchmark")
    assert table.loc["batched", "value"] == 2.0
    assert table.loc["rates", "metric"] == "not_run" and table.loc["rates", "value"] != table.loc["rates", "value"]
    assert (tmp_path / "bench.csv").is_file()


class _FlippedImages:
    """A BatchDataset with seeded augmentation (a horizontal flip per sample, from ltlib.seeding)."""

    def __init__(self, num_samples: int) -> None:
        g = torch.Generator().manual_seed(3)
        self.images = torch.randn(num_samples, 3, 32, 32, generator=g)
        self.targets = torch.randint(0, NUM_CLASSES, (num_samples,), generator=g)

    def __len__(self) -> int:
        return len(self.targets)

    def get_batch(self, indices, key):
        from ltlib.seeding import sample_uniforms

        images = self.images[torch.as_tensor(indices)]
        if key is not None:
            flip = torch.as_tensor(sample_uniforms(key, indices, 1)[:, 0] < 0.5)
            images = torch.where(flip[:, None, None, None], images.flip(-1), images)
        return images, self.targets[torch.as_tensor(indices)]


def test_batched_training_equals_the_engine_runs_it_replaces(setup, tmp_path):
    from ltlib.engine import train

    backbone, loss_fn = setup[:2]
    dataset = _FlippedImages(2 * BATCH - 3)  # two steps per epoch, the second one short (drop_last=False)
    cfg = TrainConfig(batch_size=BATCH, micro_batch_size=BATCH, epochs=2, adapter="adaptformer",
                      num_workers=0, checkpoint_every=0)
    reference = batched.lift_models(backbone, NUM_CLASSES, SEEDS, cfg)
    for seed, model in zip(SEEDS, reference):
        train(model, dataset, loss_fn, TrainConfig(**{**cfg.__dict__, "seed": seed}), tmp_path / f"run{seed}",
              progress=False)
    models = batched.lift_models(backbone, NUM_CLASSES, SEEDS, cfg)
    batched.train_batched(models, dataset, loss_fn, cfg, SEEDS)
    for model, ref in zip(models, reference):
        for (name, p), q in zip(model.named_parameters(), ref.parameters()):
            scale = max(float(q.detach().abs().max()), 1.0)
            bound = ULPS_PER_STEP * STEPS * scale * EPS  # 4 steps, as above
            assert float((p - q).detach().abs().max()) <= bound, name
