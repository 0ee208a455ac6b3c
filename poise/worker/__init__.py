"""The live analysis worker: session events and raw frames in; live scores, trial and session
summaries and alerts out (InfluxDB and MQTT). docs/worker.md describes it."""
