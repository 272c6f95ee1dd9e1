"""Every training architecture against SAELens, the oracle of the recipe.

* SAELens's own `SAETrainer` (its TrainingSAE, Adam, clipping, lr scheduler, coefficient warm-up, dead-feature
  counters), started from the same weights and fed the same batches, ends where our `SAETrainer` ends;
* one training forward pass with a forced dead mask (so the AuxK and pre-activation terms run) gives SAELens's
  `training_forward_pass` loss and gradients;
* the saved folder loads in `sae_lens.SAE.load_from_disk` and encodes / decodes / forwards as our inference SAE
  (transcoders included), with the stream's normalisation factor folded in.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from mistudio.saes.formats import read_sae
from mistudio.training.architectures.base import LossInput
from mistudio.training.config import ARCHITECTURES, SAESpec, Schedule
from mistudio.training.save import save_trained
from mistudio.training.trainer import SAETrainer

D_IN, D_SAE, BATCH = 16, 64, 32
HOOK = "blocks.1.hook_resid_post"


def _spec(arch: str, **kw: Any) -> SAESpec:
    defaults: dict[str, Any] = {"standard": {"l1_coefficient": 2.0}, "jumprelu": {"l0_coefficient": 0.5},
                                "topk": {"k": 6}, "batchtopk": {"k": 6},
                                "matryoshka_batchtopk": {"k": 6, "matryoshka_widths": [8, 24, D_SAE]}}[arch]
    return SAESpec(arch, HOOK, D_IN, D_SAE, seed=3, **{**defaults, **kw})


def _lens_training_sae(spec: SAESpec) -> Any:
    """SAELens's TrainingSAE with the same hyper-parameters as `spec`."""
    from sae_lens.saes.batchtopk_sae import BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig
    from sae_lens.saes.jumprelu_sae import JumpReLUTrainingSAE, JumpReLUTrainingSAEConfig
    from sae_lens.saes.matryoshka_batchtopk_sae import (
        MatryoshkaBatchTopKTrainingSAE,
        MatryoshkaBatchTopKTrainingSAEConfig,
    )
    from sae_lens.saes.standard_sae import StandardTrainingSAE, StandardTrainingSAEConfig
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig

    base = {"d_in": spec.d_in, "d_sae": spec.d_sae}
    topk = {**base, "k": spec.k, "aux_loss_coefficient": spec.aux_loss_coefficient,
            "rescale_acts_by_decoder_norm": spec.rescale_acts_by_decoder_norm}
    if spec.architecture == "standard":
        return StandardTrainingSAE(StandardTrainingSAEConfig(**base, l1_coefficient=spec.l1_coefficient,
                                                             l1_warm_up_steps=3))
    if spec.architecture == "jumprelu":
        return JumpReLUTrainingSAE(JumpReLUTrainingSAEConfig(
            **base, l0_coefficient=spec.l0_coefficient, l0_warm_up_steps=3,
            jumprelu_bandwidth=spec.jumprelu_bandwidth, jumprelu_init_threshold=spec.jumprelu_init_threshold,
            pre_act_loss_coefficient=spec.pre_act_loss_coefficient))
    if spec.architecture == "topk":
        return TopKTrainingSAE(TopKTrainingSAEConfig(**topk))
    if spec.architecture == "batchtopk":
        return BatchTopKTrainingSAE(BatchTopKTrainingSAEConfig(**topk, topk_threshold_lr=spec.topk_threshold_lr))
    return MatryoshkaBatchTopKTrainingSAE(MatryoshkaBatchTopKTrainingSAEConfig(
        **topk, topk_threshold_lr=spec.topk_threshold_lr, matryoshka_widths=list(spec.matryoshka_widths or [])))


def _schedule(steps: int) -> Schedule:
    return Schedule(lr=3e-3, total_steps=steps, batch_tokens=BATCH, warm_up_steps=2, decay_steps=2,
                    sparsity_warm_up_steps=3, dead_feature_window=2)


def _batches(n: int, seed: int = 0, width: int = D_IN) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(BATCH, width, generator=g) * 2 + 0.5 for _ in range(n)]


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_steps_equal_saelens_trainer(arch: str) -> None:
    """Eight steps of SAELens's SAETrainer and of ours, from the same weights on the same batches."""
    from sae_lens.config import SAETrainerConfig
    from sae_lens.training.sae_trainer import SAETrainer as LensTrainer

    steps = 8
    spec = _spec(arch)
    ours = SAETrainer(spec, _schedule(steps))
    lens_sae = _lens_training_sae(ours.spec)
    lens_sae.load_state_dict(ours.module.state_dict())
    lens_cfg = SAETrainerConfig(total_training_samples=steps * BATCH, train_batch_size_samples=BATCH, lr=3e-3,
                                lr_end=3e-3, lr_warm_up_steps=2, lr_decay_steps=2, dead_feature_window=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lens = LensTrainer(lens_cfg, lens_sae, data_provider=iter(()))
    for batch in _batches(steps):
        lens_lr = lens.optimizer.param_groups[0]["lr"]
        metrics = ours.step(batch)
        lens_out = lens.step(batch)
        lens.n_training_steps += 1
        assert metrics.loss == pytest.approx(lens_out.loss.item(), rel=1e-4, abs=1e-5)
        assert metrics.lr == pytest.approx(lens_lr, abs=1e-12)
    lens_state = lens_sae.state_dict()
    for name, tensor in ours.module.state_dict().items():
        torch.testing.assert_close(tensor.float(), lens_state[name].float(), atol=2e-5, rtol=1e-4, msg=name)
    torch.testing.assert_close(ours.steps_since_fired, lens.n_forward_passes_since_fired)
    torch.testing.assert_close(ours.feature_density(), lens.feature_sparsity)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_forward_with_dead_latents_equals_saelens(arch: str) -> None:
    """Loss terms and gradients of one training forward pass with half the latents dead (AuxK / pre-act run)."""
    from sae_lens.saes.sae import TrainStepInput

    extra = {"pre_act_loss_coefficient": 0.1} if arch == "jumprelu" else {}
    ours = SAETrainer(_spec(arch, **extra), _schedule(4))
    ours.step(_batches(1, seed=5)[0])  # move off the initialisation (thresholds, biases)
    lens_sae = _lens_training_sae(ours.spec)
    lens_sae.load_state_dict(ours.module.state_dict())
    x = _batches(1, seed=9)[0]
    dead = torch.arange(D_SAE) % 2 == 0
    coefficient = 0.7
    out = ours.module.training_forward(LossInput(x, x, coefficient, dead))
    out.loss.backward()
    name = {"standard": "l1", "jumprelu": "l0"}.get(arch, "unused")
    lens_out = lens_sae.training_forward_pass(TrainStepInput(sae_in=x, coefficients={name: coefficient},
                                                             dead_neuron_mask=dead, n_training_steps=1,
                                                             is_logging_step=False))
    lens_out.loss.backward()
    assert set(out.losses) == set(lens_out.losses)
    for key, value in out.losses.items():
        assert value.item() == pytest.approx(lens_out.losses[key].item(), rel=1e-5, abs=1e-6), key
    if arch in ("topk", "batchtopk", "matryoshka_batchtopk"):
        assert out.losses["auxiliary_reconstruction_loss"].item() > 0
    lens_params = dict(lens_sae.named_parameters())
    for pname, param in ours.module.named_parameters():
        assert param.grad is not None
        torch.testing.assert_close(param.grad, lens_params[pname].grad, atol=1e-5, rtol=1e-4, msg=pname)


def _lens_load(folder: Path) -> Any:
    from sae_lens import SAE as LensSAE

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LensSAE.load_from_disk(str(folder), device="cpu")


TRANSCODER_CASES = [("standard", False), ("jumprelu", True), ("batchtopk", False)]


@pytest.mark.parametrize(("arch", "transcoder", "skip"),
                         [(a, False, False) for a in ARCHITECTURES] + [(a, True, s) for a, s in TRANSCODER_CASES])
def test_saved_sae_loads_in_saelens_and_encodes_identically(arch: str, transcoder: bool, skip: bool,
                                                             tmp_path: Path) -> None:
    d_out = 12 if transcoder else None
    spec = _spec(arch, hook_name_out="blocks.1.hook_mlp_out" if transcoder else None, d_out=d_out,
                 skip_connection=skip)
    trainer = SAETrainer(spec, _schedule(6))
    scale = 0.37
    raw_x = _batches(6, seed=1)
    raw_y = _batches(6, seed=2, width=12) if transcoder else [None] * 6
    for x, y in zip(raw_x, raw_y, strict=True):
        trainer.step(x * scale, None if y is None else y * 0.8)
    sae = trainer.inference_sae(norm_factor=scale, norm_factor_out=0.8 if transcoder else None,
                                model_name="tiny-llama", context_size=32)
    folder = save_trained(sae, tmp_path / "sae", training_info={"spec": spec.to_dict()},
                          sparsity=trainer.log_feature_density())
    assert {p.name for p in folder.iterdir()} == {"cfg.json", "sae_weights.safetensors", "sparsity.safetensors",
                                                  "runner_cfg.json"}
    lens = _lens_load(folder)
    x = _batches(1, seed=7)[0]
    ours_acts = sae.encode(x)
    with torch.no_grad():
        torch.testing.assert_close(lens.encode(x), ours_acts, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(lens.decode(ours_acts), sae.decode(ours_acts), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(lens(x), sae(x), atol=1e-5, rtol=1e-5)
        # the folded SAE on raw inputs predicts what the training module predicts on normalised ones
        module = trainer.module
        train_acts, hidden = module.encode_with_hidden_pre(x * scale)
        if arch in ("batchtopk", "matryoshka_batchtopk"):  # at inference: JumpReLU at the learned threshold
            train_acts = hidden.relu() * (hidden > float(module.get_buffer("topk_threshold")))
        expected = module.predict(x * scale, train_acts) / (0.8 if transcoder else scale)
        torch.testing.assert_close(sae(x), expected, atol=1e-5, rtol=1e-4)
    if not transcoder:
        assert lens.cfg.architecture() == ("topk" if arch == "topk" else arch if arch == "standard" else "jumprelu")
    assert read_sae(folder).cfg.architecture == ("batchtopk" if arch in ("batchtopk", "matryoshka_batchtopk")
                                                 and not transcoder else sae.cfg.architecture)


def test_resumed_trainer_equals_uninterrupted(tmp_path: Path) -> None:
    """state_dict through a safetensors file half-way: the same weights, optimizer state and counters, bit for bit."""
    spec = _spec("batchtopk")
    batches = _batches(8, seed=4)
    straight = SAETrainer(spec, _schedule(8))
    for batch in batches:
        straight.step(batch)
    first = SAETrainer(spec, _schedule(8))
    for batch in batches[:3]:
        first.step(batch)
    save_file(first.state_dict(), str(tmp_path / "state.safetensors"))
    resumed = SAETrainer(spec, _schedule(8))
    resumed.load_state_dict(load_file(str(tmp_path / "state.safetensors")))
    for batch in batches[3:]:
        resumed.step(batch)
    a, b = straight.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert (resumed.steps, resumed.tokens_seen) == (8, 8 * BATCH)


def test_schedule_equals_saelens_scheduler() -> None:
    from sae_lens.training.optim import CoefficientScheduler, get_lr_scheduler

    schedule = Schedule(lr=1e-3, total_steps=40, batch_tokens=1, warm_up_steps=7, decay_steps=9,
                        sparsity_warm_up_steps=5)
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([param], lr=1e-3)
    lr_sched = get_lr_scheduler("constant", opt, training_steps=40, lr=1e-3, warm_up_steps=7, decay_steps=9,
                                lr_end=1e-3, num_cycles=1)
    coefficient = CoefficientScheduler(warm_up_steps=5, final_value=1.0)
    for step in range(40):
        assert schedule.lr_at(step) == pytest.approx(opt.param_groups[0]["lr"], abs=1e-12), step
        assert schedule.sparsity_scale_at(step) == pytest.approx(coefficient.value), step
        opt.step()
        lr_sched.step()
        coefficient.step()


def test_bad_specs_and_batches_get_clear_errors() -> None:
    from mistudio.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="unknown training architecture"):
        SAESpec("gated", HOOK, D_IN, D_SAE)
    with pytest.raises(InvalidInputError, match="topk transcoder"):
        SAESpec("topk", HOOK, D_IN, D_SAE, k=4, hook_name_out="blocks.1.hook_mlp_out", d_out=8)
    with pytest.raises(InvalidInputError, match="strictly increasing"):
        SAESpec("matryoshka_batchtopk", HOOK, D_IN, D_SAE, k=4, matryoshka_widths=[32, 16])
    with pytest.raises(InvalidInputError, match="unknown SAE training field"):
        SAESpec.from_dict({**_spec("topk").to_dict(), "l2_coefficient": 1.0})
    assert SAESpec.from_dict(_spec("matryoshka_batchtopk").to_dict()) == _spec("matryoshka_batchtopk")
    transcoder = SAETrainer(_spec("standard", hook_name_out="blocks.1.hook_mlp_out", d_out=8), _schedule(4))
    with pytest.raises(InvalidInputError, match="target"):
        transcoder.step(torch.randn(4, D_IN))
    with pytest.raises(InvalidInputError, match=r"expected \[batch, 16\]"):
        SAETrainer(_spec("topk"), _schedule(4)).step(torch.randn(4, D_IN + 1))
    with pytest.raises(InvalidInputError, match="does not match"):
        SAETrainer(_spec("topk"), _schedule(4)).load_state_dict(SAETrainer(_spec("jumprelu"), _schedule(4)).state_dict())
