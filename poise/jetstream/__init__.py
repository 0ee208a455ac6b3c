"""Scale-out on NATS JetStream: frames and session events partitioned by patient.

``layout`` is the pure part (partition function, subjects, server configuration);
``server`` starts a local nats-server for the stack and the tests; ``ingest`` and
``partitions`` are the shells that consume the stream.
"""
