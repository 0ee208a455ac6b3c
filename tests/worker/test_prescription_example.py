"""The commented prescription example loads and says what its comments say."""

from __future__ import annotations

from pathlib import Path


def test_prescription_example_loads():
    from poise.core.prescription import load_prescription

    path = Path(__file__).resolve().parents[2] / "docs/deploy/prescription.example.toml"
    rx = load_prescription(path)
    knee = rx.find("rom/knee_flexion", "right")
    assert knee is not None
    assert (knee.target_rom_deg, knee.max_rom_deg, knee.reps, knee.sets) == (70, 100, 10, 3)
    assert rx.pain_limit == 5
    assert rx.public().progression == ""
