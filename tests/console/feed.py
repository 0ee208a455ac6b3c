"""Live points in the worker's MQTT message format (``poise.core.derived``), published by a
test itself. Used only where the test says so: a stand-in for ``poise worker`` while a test
needs exact, known values (the counter must read exactly what was sent)."""

from __future__ import annotations

import json
import math
import threading
import time
from typing import Any

from poise.core import derived, topics


class Feeder:
    """Publishes a knee-flexion trial at 20 Hz (angle, repetitions with verdicts) or a
    balance trial at 10 Hz (sway trace, 1 Hz sway RMS), with device status and an alert."""

    def __init__(self, stack: Any, site: str, patient: str) -> None:
        self.site, self.patient = site, patient
        info = stack.info()
        # logged in as the worker (reads session events, publishes metrics and alerts) and,
        # for device status, as the site's gateway: the broker's ACL allows nothing else
        self.client = stack.mqtt_client("worker", client_id=f"test-feed-{patient}")
        self.client.connect(info.mqtt_host, info.mqtt_port)
        self.client.loop_start()
        self.gateway = stack.mqtt_client("gateway", site, client_id=f"test-gw-{patient}")
        self.gateway.connect(info.mqtt_host, info.mqtt_port)
        self.gateway.loop_start()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.published = 0
        self.events: list[dict[str, Any]] = []
        self.client.on_message = lambda _c, _u, m: self.events.append(json.loads(m.payload))
        self.client.subscribe(topics.session(site, patient), qos=1)

    def status(self, sensor: str, placement: str, battery_pct: float) -> None:
        doc = {
            "kind": "sensor",
            "online": True,
            "placement": placement,
            "battery_pct": battery_pct,
            "rate_hz": 100.0,
        }
        self.gateway.publish(
            topics.status(self.site, sensor), json.dumps(doc), qos=1, retain=True
        ).wait_for_publish(5)

    def points(self, points: list[dict[str, Any]], alerts: bool = False) -> None:
        topic = (topics.alerts if alerts else topics.metrics)(self.site, self.patient)
        self.client.publish(topic, derived.message(points), qos=1)
        self.published += len(points)

    def trial(self, kind: str, session: str, trial: str, exercise: str) -> None:
        self.stop()
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(kind, session, trial, exercise), daemon=True
        )
        self._thread.start()

    def _run(self, kind: str, session: str, trial: str, exercise: str) -> None:
        tags = {
            "session": session,
            "trial": trial,
            "exercise": exercise,
            "condition": "none",
            "side": "right",
            "algorithm_version": "test",
        }
        t0 = time.time()
        i = 0
        reps = 0
        while not self._stop.is_set():
            t = time.time()
            t_ns = int(t * 1e9)
            el = t - t0
            if kind == "rom":
                # one repetition every 2.5 s, the third too small
                phase = (el % 2.5) / 2.5
                peak = 40.0 if (reps % 3) == 2 else 75.0
                angle = peak * 0.5 * (1 - math.cos(2 * math.pi * phase))
                new_reps = int(el // 2.5)
                pts: list[dict[str, Any]] = [
                    {
                        "measurement": "joint_live",
                        "t_ns": t_ns,
                        "tags": {**tags, "joint": "knee"},
                        "fields": {
                            "angle_deg": angle,
                            "rep_count": new_reps,
                            "target_rom_deg": 60.0,
                            "max_rom_deg": 110.0,
                            "axis_confidence": 0.9,
                        },
                    }
                ]
                if new_reps > reps:
                    small = (reps % 3) == 2
                    pts.append(
                        {
                            "measurement": "repetition",
                            "t_ns": t_ns,
                            "tags": {**tags, "joint": "knee"},
                            "fields": {
                                "index": new_reps,
                                "rom_deg": 40.0 if small else 75.0,
                                "peak_deg": 40.0 if small else 75.0,
                                "correct": not small,
                                "reasons": "too_small" if small else "",
                            },
                        }
                    )
                    reps = new_reps
                self.points(pts)
                time.sleep(0.05)
            else:
                ap = 0.08 * math.sin(2 * math.pi * 0.4 * el) + 0.02 * math.sin(
                    2 * math.pi * 1.3 * el
                )
                ml = 0.05 * math.sin(2 * math.pi * 0.3 * el + 1.0)
                pts = [
                    {
                        "measurement": "sway_trace",
                        "t_ns": t_ns,
                        "tags": tags,
                        "fields": {"ap_m_s2": ap, "ml_m_s2": ml},
                    }
                ]
                if i % 10 == 0:
                    pts.append(
                        {
                            "measurement": "sway_live",
                            "t_ns": t_ns,
                            "tags": tags,
                            "fields": {
                                "rms_m_s2": 0.061,
                                "rms_ap_m_s2": 0.05,
                                "rms_ml_m_s2": 0.035,
                                "window_s": 10.0,
                                "baseline_rms_m_s2": 0.07,
                                "mdc_rms_m_s2": 0.02,
                            },
                        }
                    )
                if i % 50 == 0:
                    pts.append(
                        {
                            "measurement": "intensity_live",
                            "t_ns": t_ns,
                            "tags": {
                                "session": session,
                                "placement": "lower_back",
                                "algorithm_version": "test",
                            },
                            "fields": {
                                "enmo_mg": 35.0,
                                "mad_mg": 40.0,
                                "zone": "light",
                                "zone_index": 1,
                            },
                        }
                    )
                self.points(pts)
                time.sleep(0.1)
            i += 1

    def alert(
        self, session: str, trial: str, kind: str, value: float, threshold: float, unit: str
    ) -> None:
        self.points(
            [
                {
                    "measurement": "alert",
                    "t_ns": time.time_ns(),
                    "tags": {
                        "session": session,
                        "trial": trial,
                        "kind": kind,
                        "algorithm_version": "test",
                    },
                    "fields": {
                        "active": True,
                        "value": value,
                        "threshold": threshold,
                        "unit": unit,
                        "evidence": json.dumps({"rep": 4, "peak_deg": value}),
                    },
                }
            ],
            alerts=True,
        )

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
            self._thread = None

    def close(self) -> None:
        self.stop()
        for c in (self.client, self.gateway):
            c.disconnect()
            c.loop_stop()
