"""Where the accumulator keeps its float64 sums: on the device where it has float64, on the CPU otherwise (Apple
MPS has no float64); the fallback's logic runs here on the CPU and gives the same state."""

from __future__ import annotations

import torch

from mistudio.extraction.accumulator import Accumulator, StatePlacement, state_placement


def test_float64_state_stays_on_devices_that_have_it():
    assert state_placement("cpu") == StatePlacement(torch.device("cpu"), torch.float64)
    assert state_placement("cuda:1") == StatePlacement(torch.device("cuda:1"), torch.float64)
    assert state_placement(torch.device("mps")) == StatePlacement(torch.device("cpu"), torch.float32)


def test_accumulator_places_its_sums_by_the_placement():
    acc = Accumulator(8, 2, 4, torch.device("cpu"), placement=StatePlacement(torch.device("cpu"), torch.float32))
    assert acc.sum.dtype == acc.sumsq.dtype == torch.float64  # the running sums stay float64
    assert acc.sum.device.type == "cpu"


def test_the_no_float64_path_gives_the_same_state():
    g = torch.Generator().manual_seed(0)
    d_sae, ctx = 24, 6
    native = Accumulator(d_sae, 3, ctx, torch.device("cpu"), reservoir=4)
    fallback = Accumulator(d_sae, 3, ctx, torch.device("cpu"), reservoir=4,
                           placement=StatePlacement(torch.device("cpu"), torch.float32))
    for batch in range(5):
        acts = torch.relu(torch.randn(7, ctx, d_sae, generator=g)) * torch.rand(d_sae, generator=g) * 10
        valid = torch.rand(7, ctx, generator=g) > 0.1
        ids = torch.arange(batch * 7, batch * 7 + 7)
        for start in (0, 12):
            native.update(acts[..., start:start + 12].clone(), start, ids, valid)
            fallback.update(acts[..., start:start + 12].clone(), start, ids, valid)
        native.count_tokens(valid)
        fallback.count_tokens(valid)
    a, b = native.state_dict(), fallback.state_dict()
    for key in a:
        if key in ("sum", "sumsq"):
            torch.testing.assert_close(a[key], b[key], rtol=1e-6, atol=1e-6)
        elif key == "hist":  # a value within float32 rounding of a fine edge may fall in the neighbouring bin
            assert (a[key] - b[key]).abs().sum() <= 4 and a[key].sum() == b[key].sum()
        else:
            assert torch.equal(a[key], b[key]), key
