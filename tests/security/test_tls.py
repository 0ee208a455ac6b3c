"""TLS on the local stack with the CA it generates: every client verifies the server, a
client without the CA or without TLS gets nothing, and the data path works end to end."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from paho.mqtt.enums import CallbackAPIVersion

from poise.core.influx import Auth, InfluxError, InfluxV1
from poise.ingest import Ingest
from poise.stack import LocalStack
from tests.conftest import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def tls_stack(tmp_path: Path):
    s = LocalStack(tmp_path / "stack", sites=["t"], tls=True)
    s.start()
    try:
        yield s
    finally:
        s.stop()


def _connack(stack: LocalStack, client: mqtt.Client) -> object:
    box: dict[str, object] = {}
    done = threading.Event()

    def on_connect(c, u, f, rc, p):
        box["rc"] = rc
        done.set()

    client.on_connect = on_connect
    client.connect(stack.info().mqtt_host, stack.info().mqtt_port)
    client.loop_start()
    done.wait(5)
    client.disconnect()
    client.loop_stop()
    return box.get("rc")


def test_the_stack_ca_signs_a_server_certificate_for_loopback(tls_stack):
    ca = x509.load_pem_x509_certificate(tls_stack.tls.ca.read_bytes())
    cert = x509.load_pem_x509_certificate(tls_stack.tls.cert.read_bytes())
    assert cert.issuer == ca.subject
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert oct(tls_stack.tls.key.stat().st_mode & 0o777) == "0o600"
    assert tls_stack.info().influx_url.startswith("https://")
    assert tls_stack.env["POISE_MQTT_CA"] == str(tls_stack.tls.ca)


def test_clients_without_the_ca_or_without_tls_are_refused(tls_stack):
    plain = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    plain.username_pw_set(*tls_stack.mqtt_login("admin"))
    rc = _connack(tls_stack, plain)
    assert rc is None or getattr(rc, "is_failure", True), "a plain MQTT client was served"
    # a client that trusts the system CAs only cannot verify the broker: no handshake
    addr = (tls_stack.info().mqtt_host, tls_stack.info().mqtt_port)
    with (
        socket.create_connection(addr, timeout=5) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1")
    trusting = tls_stack.mqtt_client("admin")
    assert str(_connack(tls_stack, trusting)) == "Success"
    url = tls_stack.info().influx_url
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/ping")  # system CAs: not trusted
    # plain HTTP gets Go's "client sent an HTTP request to an HTTPS server", nothing else
    assert httpx.get(url.replace("https://", "http://") + "/ping").status_code == 400
    auth = tls_stack.influx_auth("admin")
    no_ca = Auth(username=auth.username, password=auth.password)
    with InfluxV1(url, "poise", no_ca) as c, pytest.raises(InfluxError, match="unreachable"):
        c.query("SHOW DATABASES")


def test_simulate_and_ingest_over_tls_store_every_sample(tls_stack, tmp_path):
    info = tls_stack.info()
    with tls_stack.influx_client("admin") as influx, tls_stack.influx_client("ingest") as writer:
        ing = Ingest(
            info.mqtt_host,
            info.mqtt_port,
            writer,
            client_id="tls-ingest",
            **tls_stack.mqtt_kwargs("ingest"),
        )
        ing.start()
        try:
            assert ing.subscribed.wait(10)
            sim = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "poise.cli",
                    "simulate",
                    "--mqtt",
                    f"{info.mqtt_host}:{info.mqtt_port}",
                    "--site",
                    "t",
                    "--patients",
                    "1",
                    "--duration",
                    "3",
                    "--speed",
                    "0",
                    "--spool",
                    str(tmp_path / "spool.db"),
                ],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
                env={**os.environ, **tls_stack.env, "POISE_GATEWAY_MQTT_USER": "t"},
            )
            assert sim.returncode == 0, sim.stderr
            wait_until(lambda: influx.count_samples() == 900 and ing.idle(), 30, "900 samples")
        finally:
            ing.stop()
