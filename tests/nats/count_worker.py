"""A worker process whose engine counts samples per patient, for the membership tests.

The engine is deliberately trivial so the test checks the partition hand-over itself: its
state (samples seen per patient) must end equal to what was published, exactly, through
kills and joins. The real analysis worker runs on the same ``PartitionOwner``.

Run: python -m tests.nats.count_worker URL MEMBER  (credentials from POISE_WORKER_MQTT_*)
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from poise.core import wire
from poise.jetstream import layout
from poise.jetstream.partitions import OwnerParams, PartitionOwner, run_forever


class CountEngine:
    def __init__(self) -> None:
        self.samples: dict[str, int] = {}

    def handle(self, routed: layout.Routed, payload: bytes) -> None:
        if routed.kind != "raw":
            return
        patient = routed.topic.split("/")[4]
        self.samples[patient] = self.samples.get(patient, 0) + wire.decode(payload).n_samples

    def on_status(self, site: str, sensor: str, payload: bytes) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def get_state(self) -> dict[str, Any]:
        return {"samples": dict(self.samples)}

    def set_state(self, state: dict[str, Any]) -> None:
        self.samples = {str(k): int(v) for k, v in state["samples"].items()}


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    url, member = sys.argv[1], sys.argv[2]
    owner = PartitionOwner(
        url, member, lambda _k, _publish: CountEngine(),
        user=os.environ["POISE_WORKER_MQTT_USER"], password=os.environ["POISE_WORKER_MQTT_PASSWORD"],
        params=OwnerParams(checkpoint_every_s=0.5, renew_every_s=0.5),
    )
    print(run_forever(owner), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
