"""The live scores registered in analysis.live follow the contract: any chunking, with the
state handed over through JSON between chunks, gives the records of one batch call."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analysis import live  # registers the rows
from analysis.contract import REGISTRY, ImuChunk, LiveScore
from poise.core.channels import G

FS = 100.0
# the worker tells each score the sample rate of the frames
OVERRIDES = {"sway": {"fs_hz": FS}, "intensity": {"period_s": 1 / FS}}


def _signal(n: int, seed: int = 0) -> ImuChunk:
    rng = np.random.default_rng(seed)
    t = 1_800_000_000.0 + np.arange(n) / FS
    sway_ap = 0.05 * np.sin(2 * np.pi * 0.4 * t) + rng.normal(0, 0.02, n)
    acc = np.column_stack([sway_ap, rng.normal(0, 0.02, n), np.full(n, G)])
    acc[:, 2] += 2.0 * (np.sin(2 * np.pi * 0.05 * t) > 0.9)  # bursts of activity
    # the lower-back sensor's face points backwards: -z forward, so gravity along +y
    acc = acc[:, [1, 2, 0]] * np.array([1.0, 1.0, -1.0])
    return ImuChunk(t, acc, rng.normal(0, 0.01, (n, 3)))


def _run(spec_name: str, data: ImuChunk, step: int | None) -> list[dict]:
    spec = REGISTRY[spec_name]
    score: LiveScore = spec.factory(OVERRIDES[spec_name])
    records = []
    n = data.n_samples
    for lo in range(0, n, step or n):
        chunk = {role: data.slice(lo, lo + (step or n)) for role in spec.roles}
        records += score.update(chunk)
        if step:
            state = json.loads(json.dumps(score.get_state()))
            score = spec.factory(OVERRIDES[spec_name])
            score.set_state(state)
    records += score.finish()
    return [r.as_dict() for r in records]


@pytest.mark.parametrize("name", [live.SWAY.name, live.INTENSITY.name])
@pytest.mark.parametrize("step", [37, 1000])
def test_streaming_equals_batch(name, step):
    data = _signal(2200)
    batch = _run(name, data, None)
    assert batch  # the signal is long enough to give records
    got = _run(name, data, step)
    assert len(got) == len(batch)
    for a, b in zip(got, batch, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            if isinstance(a[k], float):
                assert a[k] == pytest.approx(b[k], rel=1e-9, abs=1e-12), k
            else:
                assert a[k] == b[k], k


def test_registry_rows():
    assert REGISTRY["sway"].measurement == "sway_live"
    assert REGISTRY["sway"].roles == ("trunk",)
    assert REGISTRY["intensity"].measurement == "intensity_live"
    assert isinstance(REGISTRY["intensity"].factory({"placement": "wrist"}), LiveScore)
