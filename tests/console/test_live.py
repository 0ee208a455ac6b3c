"""The live view's state (LiveBoard, pure) and the MQTT bridge on a real broker: events in
the outbox reach the broker in order and only then leave it; the worker's points reach a
page's queue."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

from sqlalchemy import select

from poise.console import accounts, records
from poise.console.bridge import Bridge, Fanout
from poise.console.db import Outbox, open_db
from poise.console.live import LiveBoard
from poise.core import derived, events, topics
from tests.conftest import wait_until

TAGS = {"session": "s-1", "trial": "t-1", "exercise": "rom/knee_flexion", "joint": "knee"}


def joint(t_s: float, angle: float, reps: int) -> dict[str, object]:
    return {
        "measurement": "joint_live",
        "t_ns": int(t_s * 1e9),
        "tags": TAGS,
        "fields": {
            "angle_deg": angle,
            "rep_count": reps,
            "target_rom_deg": 60.0,
            "max_rom_deg": 110.0,
        },
    }


def test_board_folds_points_and_starts_afresh_for_a_new_trial() -> None:
    board = LiveBoard()
    up = board.apply_points("p001", [joint(100.0, 10.0, 0), joint(100.1, 20.0, 1)])
    assert up is not None
    assert up["joint"] == [[100.0, 10.0], [100.1, 20.0]]
    assert up["state"]["rep_count"] == 1
    assert up["state"]["target_rom_deg"] == 60.0
    rep = {
        "measurement": "repetition",
        "t_ns": int(100.2e9),
        "tags": TAGS,
        "fields": {"index": 2, "rom_deg": 40.0, "correct": False, "reasons": "too_small"},
    }
    board.apply_points("p001", [rep])
    snap = board.snapshot("p001")
    assert snap["state"]["rep_count"] == 2
    assert snap["state"]["reps"][0]["reasons"] == "too_small"
    assert len(snap["joint"]) == 2
    other = {**joint(101.0, 5.0, 0), "tags": {**TAGS, "trial": "t-2"}}
    board.apply_points("p001", [other])
    snap = board.snapshot("p001")
    assert snap["state"]["trial"] == "t-2"
    assert snap["state"]["rep_count"] == 0
    assert snap["joint"] == [[101.0, 5.0]]


def test_board_keeps_30_s_and_orders_alerts_active_first() -> None:
    board = LiveBoard()
    board.apply_points("p001", [joint(t / 10, 1.0, 0) for t in range(600)])  # 60 s
    snap = board.snapshot("p001")
    assert snap["joint"][0][0] >= 59.9 - 30.0
    alert = {"measurement": "alert", "tags": {"session": "s-1", "trial": "t-1"}}
    board.apply_points(
        "p001",
        [
            {
                **alert,
                "t_ns": int(10e9),
                "tags": {**alert["tags"], "kind": "battery_low"},
                "fields": {"active": False, "value": 9.0},
            },
            {
                **alert,
                "t_ns": int(5e9),
                "tags": {**alert["tags"], "kind": "rom_past_limit"},
                "fields": {"active": True, "value": 118.0, "evidence": json.dumps({"rep": 3})},
            },
            {
                **alert,
                "t_ns": int(6e9),
                "tags": {**alert["tags"], "kind": "not_a_kind"},
                "fields": {},
            },
        ],
    )
    alerts = board.snapshot("p001")["state"]["alerts"]
    assert [a["kind"] for a in alerts] == ["rom_past_limit", "battery_low"]
    assert alerts[0]["evidence"] == {"rep": 3}
    assert board.summary("p001")["alerts"][0]["kind"] == "rom_past_limit"


def test_status_of_an_unknown_sensor_is_ignored() -> None:
    board = LiveBoard(lambda s: "p001" if s == "p001-shank" else None)
    assert board.apply_status("x-1", {"online": True}, 1.0) is None
    up = board.apply_status(
        "p001-shank", {"online": True, "battery_pct": 40, "placement": "shank"}, 1.0
    )
    assert up is not None
    assert up["state"]["sensors"] == [
        {
            "sensor": "p001-shank",
            "online": True,
            "battery_pct": 40.0,
            "placement": "shank",
            "t_s": 1.0,
        }
    ]


def test_outbox_reaches_the_broker_in_order_and_pages_get_the_scores(stack, tmp_path: Path) -> None:
    info = stack.info()
    db = open_db(tmp_path)
    # a session recorded while no bridge runs: its events wait in the outbox
    with db.begin() as s:
        staff = accounts.add_user(s, "anna", "therapist", "correct horse battery")
        form = {
            "id": "p001",
            "age_band": "70-74",
            "sex": "male",
            "sensor_0": "p001-shank",
            "segment_0": "shank",
            "side_0": "right",
        }
        records.add_patient(s, "clinic", form, staff.id)
        sess = records.start_session(s, "clinic", "p001", staff.id)
        trial = records.start_trial(
            s, "clinic", sess.id, {"exercise": "rom/knee_flexion"}, staff.id
        )
        records.stop_trial(s, "clinic", sess.id, trial.id, False, staff.id)
        records.stop_session(s, "clinic", sess.id, {"pain_0_10": "1"}, staff.id)

    worker = stack.mqtt_client("worker", client_id="test-worker")
    got: list[dict[str, object]] = []
    worker.on_message = lambda _c, _u, m: got.append(json.loads(m.payload))
    subscribed = threading.Event()
    worker.on_subscribe = lambda *_a: subscribed.set()
    worker.connect(info.mqtt_host, info.mqtt_port)
    worker.loop_start()
    worker.subscribe(topics.session("clinic", "p001"), qos=1)
    assert subscribed.wait(10)

    board, fanout = LiveBoard(lambda s: "p001" if s == "p001-shank" else None), Fanout()
    user, password = stack.mqtt_login("console")
    bridge = Bridge(
        info.mqtt_host,
        info.mqtt_port,
        "clinic",
        db,
        board,
        fanout,
        username=user,
        password=password,
    )
    bridge.start()
    try:
        wait_until(lambda: len(got) == 4, 15, "the four queued events")
        assert [e["type"] for e in got] == [
            "session_start",
            "trial_start",
            "trial_stop",
            "session_stop",
        ]
        for e in got:
            events.from_json(e, "clinic", "p001")
        wait_until(lambda: bridge.pending() == 0, 5, "an empty outbox")
        with db() as s:
            assert s.scalars(select(Outbox)).all() == []

        # the worker's score reaches a page's queue
        async def one_update() -> dict[str, object]:
            q = fanout.subscribe("p001")
            worker.publish(
                topics.metrics("clinic", "p001"), derived.message([joint(1.8e9, 42.0, 3)]), qos=1
            )
            return await asyncio.wait_for(q.get(), 10)

        update = asyncio.run(one_update())
        assert update["joint"] == [[1.8e9, 42.0]]
        assert bridge.rejected == {}
        # a malformed message is counted, not fatal
        worker.publish(topics.metrics("clinic", "p001"), b"{not json", qos=1)
        wait_until(lambda: bridge.rejected.get("bad_metrics") == 1, 5, "the bad message counted")
    finally:
        bridge.stop()
        worker.disconnect()
        worker.loop_stop()
