"""The contract every part of poise shares: wire format, topics and ids, CSV files, the
InfluxDB v1 client. Imports nothing else of poise."""
