"""The worker's state machine without services: the scripted clinic session fed frame by
frame, alerts where they are due and nowhere else, refusals, replays, state handed over."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from poise.clinic import PLACEMENT, PRESCRIPTION, PatientPlan, plan_clinic, session_events
from poise.core import wire
from poise.worker.core import Job, Output, WorkerCore
from poise.worker.trials import Placement, Samples, TrialInfo, summarize_trial, trial_sensors

SITE = "c1"
T0 = 1_800_000_000 * 10**9
PERIOD_NS = 10_000_000
FRAME = 10  # samples per frame


@pytest.fixture(scope="module")
def plans() -> list[PatientPlan]:
    return plan_clinic(2, seed=1)


def baseline(site, patient, exercise, condition, before_ns):
    # patient 2 has a low, steady quiet-stance baseline with the eyes open; patient 1 none
    if patient == "p002" and exercise == "quiet_stance" and condition == "eyes=open":
        return 0.011, 0.001
    return None


def frame(plan: PatientPlan, short: str, segment: str, lo: int) -> wire.Frame:
    tr = plan.traces[segment]
    data = np.hstack([tr.acc[lo : lo + FRAME], tr.gyr[lo : lo + FRAME]]).astype(np.float32)
    return wire.Frame(
        f"{plan.patient}-{short}", lo, T0 + lo * PERIOD_NS, PERIOD_NS, wire.IMU6, data
    )


def play(
    core: WorkerCore,
    plan: PatientPlan,
    *,
    lead_s: float = 0.0,
    gaps: dict[str, tuple[float, float]] | None = None,
    until_s: float | None = None,
    from_s: float = 0.0,
) -> Output:
    """Feed the plan's frames and events (events ``lead_s`` ahead of the data) into core."""
    out = Output()

    def take(o: Output) -> None:
        out.points += o.points
        out.alerts += o.alerts
        out.jobs += o.jobs

    evs = [(t, p) for t, p in session_events(plan, T0) if t >= from_s]
    n = len(plan.traces["lower_back"].time_s)
    ei = 0
    for lo in range(round(from_s * 100), n, FRAME):
        t_s = lo / 100
        if until_s is not None and t_s >= until_s:
            return out
        while ei < len(evs) and evs[ei][0] - lead_s <= t_s:
            take(core.on_event(SITE, plan.patient, evs[ei][1]))
            ei += 1
        for short, segment, _side in PLACEMENT:
            sid = f"{plan.patient}-{short}"
            if gaps and sid in gaps and gaps[sid][0] <= t_s < gaps[sid][1]:
                continue
            take(core.on_frame(SITE, plan.patient, frame(plan, short, segment, lo)))
    for _t, payload in evs[ei:]:
        take(core.on_event(SITE, plan.patient, payload))
    return out


@pytest.fixture(scope="module")
def ref2(plans: list[PatientPlan]) -> Output:
    """Patient 2, uninterrupted, events on time."""
    return play(WorkerCore(baseline=baseline), plans[1])


def kinds(out: Output, patient: str) -> list[str]:
    """Alert kinds of one patient, one entry per episode."""
    return sorted({(p.tags["kind"], p.t_ns) for s, pa, p in out.alerts if pa == patient})


def test_live_alerts_only_where_due(plans):
    core = WorkerCore(baseline=baseline)
    p1, p2 = plans
    out1 = play(core, p1)
    out2 = play(core, p2, gaps=p2.silent_s)  # with the thigh sensor's silence
    assert kinds(out1, "p001") == []
    assert [k for k, _t in kinds(out2, "p002")] == sorted(
        ["loss_of_balance", "pain_above_limit", "sensor_silent", "sway_above_baseline"]
    )
    # the step out of tandem stance is seen live, 6 s into the stage
    lob = next(a for _s, _p, a in out2.alerts if a.tags["kind"] == "loss_of_balance")
    tandem = next(t for t in p2.trials if t.exercise == "steadi_4stage/tandem")
    assert (lob.t_ns - T0) / 1e9 == pytest.approx(tandem.start_s + 6.0, abs=0.3)
    job = next(j for j in out2.jobs if j.payload.get("info", {}).get("trial") == tandem.id)
    assert job.payload["live_alerts"] == ["loss_of_balance"]  # not raised again at the stop
    # every episode is opened and then closed, with its end
    for _s, _p, a in out2.alerts:
        assert a.tags["algorithm_version"]
    closed = [a for _s, _p, a in out2.alerts if not a.fields["active"]]
    assert len(closed) == 4
    assert all(a.fields["end_ns"] >= a.t_ns for a in closed)
    silent = next(a for a in closed if a.tags["kind"] == "sensor_silent")
    assert silent.fields["sensor"] == "p002-thigh"
    lo, hi = p2.silent_s["p002-thigh"]
    assert (silent.t_ns - T0) / 1e9 == pytest.approx(lo, abs=0.2)  # the last sample seen
    assert (silent.fields["end_ns"] - T0) / 1e9 == pytest.approx(hi, abs=0.2)
    # live scores of every kind, each with its algorithm version
    measurements = Counter(p.measurement for _s, _p, p in out1.points)
    assert {"sway_live", "sway_trace", "joint_live", "intensity_live"} <= set(measurements)
    assert measurements["sway_trace"] == 10 * measurements["sway_live"]  # 10 Hz
    assert all(p.tags["algorithm_version"] for _s, _p, p in out1.points)
    # one trial job per trial, then the session's
    assert [j.kind for j in out1.jobs] == ["trial"] * len(p1.trials) + ["session"]
    assert core.pending_jobs  # until the service has run them
    for j in out1.jobs + out2.jobs:
        core.job_done(j)
    assert core.pending_jobs == []
    assert core.sessions == {}


def test_joint_live_follows_the_angle(plans):
    core = WorkerCore()
    out = play(core, plans[0])
    angles = [p.fields["angle_deg"] for _s, _p, p in out.points if p.measurement == "joint_live"]
    assert max(angles) == pytest.approx(70.0, abs=5.0)
    last = [p for _s, _p, p in out.points if p.measurement == "joint_live"][-1]
    # a repetition counts once the angle rises again after its trough, so the last one of
    # the set is counted by the summary, not live
    assert last.fields["rep_count"] == 5
    assert last.fields["max_rom_deg"] == 100.0


def without(d: dict, keys: tuple[str, ...]) -> dict:
    return {k: v for k, v in d.items() if k not in keys}


def test_session_job_says_how_many_intensity_samples_it_saw(ref2):
    """The session summary waits until InfluxDB holds the intensity sensor's samples the
    worker saw (a stretch a restarted ingest still owes is then waited for)."""
    (job,) = [j for j in ref2.jobs if j.kind == "session"]
    d = job.payload
    assert d["intensity_sensor"]
    expected = (d["stop_ns"] - d["start_ns"]) / 10_000_000  # 100 Hz
    assert abs(d["intensity_seen"] - expected) <= 2


@pytest.mark.parametrize("lead_s", [-3.0, 0.5, 3.0])
def test_events_ahead_of_or_behind_the_data(plans, ref2, lead_s):
    """Frames and events travel apart. Trials (hence their summaries) do not change either
    way. Events ahead of the data (the usual case: the console sends at once, frames wait
    for their 100 ms batch) change nothing else either; events behind it let a trial's live
    scores see the samples after its stop until the stop arrives."""
    got = play(WorkerCore(baseline=baseline), plans[1], lead_s=lead_s)
    drop = ("seen_samples", "intensity_seen")

    def plain(j):
        return j.payload["info"] if j.kind == "trial" else without(j.payload, drop)

    assert [plain(j) for j in got.jobs] == [plain(j) for j in ref2.jobs]
    for g, r in zip(got.jobs, ref2.jobs, strict=True):
        # samples seen before the stop: what the summary waits for; never more than stored
        for sensor, n in g.payload.get("seen_samples", {}).items():
            assert n <= r.payload["seen_samples"][sensor] + 2
        if g.kind == "session":
            assert g.payload["intensity_seen"] <= r.payload["intensity_seen"] + 2
    if lead_s > 0:
        assert [without(j.payload, drop) for j in got.jobs] == [
            without(j.payload, drop) for j in ref2.jobs
        ]
        assert [k for k, _t in kinds(got, "p002")] == [k for k, _t in kinds(ref2, "p002")]


def test_state_handed_over_mid_trial(plans, ref2):
    """Stop in the middle of the knee trial, restore a new core from JSON, go on: the same
    trial and session jobs and alert episodes as an uninterrupted run."""
    p2 = plans[1]
    ref = ref2
    rom = next(t for t in p2.trials if t.exercise == "rom/knee_flexion")
    mid = (rom.start_s + rom.stop_s) / 2
    first = WorkerCore(baseline=baseline)
    a = play(first, p2, until_s=mid)
    state = json.loads(json.dumps(first.get_state()))
    second = WorkerCore(baseline=baseline)
    second.set_state(state)
    b = play(second, p2, from_s=mid)
    assert [j.payload for j in a.jobs + b.jobs] == [j.payload for j in ref.jobs]
    both = Output(alerts=a.alerts + b.alerts)
    assert kinds(both, "p002") == kinds(ref, "p002")


def test_trial_summaries_match_the_truth(plans):
    """The jobs' computation on the plan's own samples (what InfluxDB would return)."""
    for p in plans:
        places = [Placement(p.sensor(s), seg, side) for s, seg, side in PLACEMENT]
        full = {
            pl.sensor: Samples(
                T0 / 1e9 + p.traces[pl.segment].time_s,
                p.traces[pl.segment].acc,
                p.traces[pl.segment].gyr,
            )
            for pl in places
        }
        for tr in p.trials:
            info = TrialInfo(
                p.session,
                tr.id,
                tr.exercise,
                tr.condition,
                tr.side,
                T0 + round(tr.start_s * 1e9),
                T0 + round(tr.stop_s * 1e9),
            )
            roles = trial_sensors(info, places)
            data = {
                r: full[s].between(info.start_ns / 1e9, info.stop_ns / 1e9)
                for r, s in roles.items()
            }
            summary, reps, alerts = summarize_trial(info, data, places, PRESCRIPTION)
            f = summary.fields
            assert "no_data" not in f["flags"], tr.id
            if tr.exercise.startswith("steadi_4stage/"):
                assert f["passed"] is tr.truth["passed"], tr.id
                assert f["hold_s"] == pytest.approx(tr.truth["held_s"], abs=0.3), tr.id
                lob = [a for a in alerts if a.tags["kind"] == "loss_of_balance"]
                assert len(lob) == (0 if tr.truth["passed"] else 1), tr.id
            elif tr.exercise == "chair_stand_30s":
                assert f["stands"] == tr.truth["stands"], tr.id
            elif tr.exercise == "tug":
                assert f["tug_s"] == pytest.approx(tr.truth["duration_s"], abs=0.5), tr.id
                assert f["tug_flag"] is (tr.truth["duration_s"] >= 12.0), tr.id
            elif tr.exercise == "rom/knee_flexion":
                assert f["rep_count"] == 6
                assert [r.fields["rom_deg"] for r in reps] == pytest.approx(
                    tr.truth["rom_deg"], abs=3.0
                )
                assert f["correct_count"] == 6 - tr.truth["past_limit"]
                past = [a for a in alerts if a.tags["kind"] == "rom_past_limit"]
                assert len(past) == tr.truth["past_limit"]
            else:
                assert f["rms_m_s2"] > 0
                assert alerts == []


def _event(**kw) -> bytes:
    return json.dumps({"v": 1, "t_ns": T0, **kw}).encode()


def test_bad_events_are_refused_and_counted():
    core = WorkerCore()
    start = _event(
        type="session_start",
        id="e-1",
        session="s-1",
        placement=[{"sensor": "p1-back", "segment": "lower_back"}],
    )
    cases = [
        (b"{oops", "malformed_json"),
        (_event(type="trial_stop", id="e-2", session="s-1", trial="t-1"), "unknown_session"),
        (start, None),
        (start, None),  # the same event again: a replay, ignored
        (_event(type="session_start", id="e-3", session="s-2", placement=[]), "session_open"),
        (_event(type="trial_stop", id="e-4", session="s-1", trial="t-1"), "trial_not_started"),
        (_event(type="trial_start", id="e-5", session="s-1", trial="t-1", exercise="tug"), None),
        (
            _event(type="trial_start", id="e-6", session="s-1", trial="t-2", exercise="tug"),
            "trial_open",
        ),
        (_event(type="note", id="e-7", session="s-1", text="feels dizzy"), "free_text"),
        (_event(type="note", id="bad id", session="s-1"), "bad_id"),
        (_event(type="note", id="e-8", session="s-1", pain_0_10=12), "out_of_range"),
        (_event(type="jump", id="e-9", session="s-1"), "unknown_type"),
        (json.dumps([1, 2]).encode(), "not_an_object"),
    ]
    expected: Counter[str] = Counter()
    for payload, reason in cases:
        core.on_event(SITE, "p1", payload)
        if reason:
            expected[reason] += 1
    assert core.refused == expected
    assert core.counts["event_replays"] == 1
    assert core.sessions[(SITE, "p1")].trial is not None


def test_duplicate_frames_and_status(plans):
    core = WorkerCore()
    p = plans[0]
    play(core, p, until_s=5.0)
    f = frame(p, "lowerback", "lower_back", 100)
    before = core.counts["samples"]
    core.on_frame(SITE, p.patient, f)  # seen already (sequence numbers)
    assert core.counts["samples"] == before
    assert core.counts["duplicate_frames"] == 1
    sensor = p.sensor("shank")
    core.on_frame(SITE, p.patient, frame(p, "shank", "shank", 600), arrival_s=50.0)
    # what the BLE gateways report (collector.ble.SensorStats.as_status)
    status = {
        "kind": "sensor",
        "online": True,
        "battery_pct": 9,
        "effective_rate_hz": 99.5,
        "samples": 990,
        "lost_samples": 10,
        "jitter_ms": 4.0,
        "rssi_dbm": -60,
    }
    low = core.on_status(SITE, sensor, json.dumps(status).encode(), now_s=51.5)
    assert [a.tags["kind"] for _s, _p, a in low.alerts] == ["battery_low"]
    point = low.points[0][2]
    assert point.measurement == "sensor_status"
    assert point.fields == {
        "online": True,
        "rate_hz": 99.5,
        "lost_pct": 1.0,
        "jitter_ms": 4.0,
        "battery_pct": 9.0,
        "rssi_dbm": -60.0,
        "silent_s": 1.5,
    }
    again = core.on_status(SITE, sensor, json.dumps({"kind": "sensor", "battery_pct": 8}).encode())
    assert again.alerts == []  # the same episode
    ok = core.on_status(SITE, sensor, json.dumps({"kind": "sensor", "battery_pct": 80}).encode())
    assert [a.fields["active"] for _s, _p, a in ok.alerts] == [False]
    core.on_status(SITE, sensor, b"not json")
    assert core.refused["bad_status"] == 1


def test_job_payloads_are_plain_data(ref2):
    for j in ref2.jobs:
        assert Job(**json.loads(json.dumps(j.__dict__))) == j


def test_a_whole_gateway_gone_quiet(plans):
    """No frame from any sensor: the clock of arrivals notices what data time cannot."""
    core = WorkerCore()
    p = plans[0]
    core.on_event(SITE, p.patient, session_events(p, T0)[0][1])  # session start
    for short, segment, _side in PLACEMENT:
        core.on_frame(SITE, p.patient, frame(p, short, segment, 0), arrival_s=100.0)
    assert core.tick(106.0).alerts == []  # within 5 s + 2 s of margin
    quiet = core.tick(108.0).alerts
    assert sorted(a.fields["sensor"] for _s, _p, a in quiet) == sorted(
        p.sensor(s) for s, _seg, _side in PLACEMENT
    )
    assert core.tick(109.0).alerts == []  # the same episodes
    back = core.on_frame(SITE, p.patient, frame(p, "shank", "shank", 10), arrival_s=110.0)
    assert [(a.fields["sensor"], a.fields["active"]) for _s, _p, a in back.alerts] == [
        (p.sensor("shank"), False)
    ]
