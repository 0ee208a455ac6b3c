"""End to end against a real InfluxDB: `poise simulate --history` seeds weeks of
summaries, `poise report` renders HTML and PDF (pages rasterised with poppler's pdftoppm and
checked), `poise export` writes csv, parquet and FHIR (validated with fhir.resources' R4B
models and searched for anything identifying beyond the pseudonymous id)."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from poise.cli import main
from poise.core.csvio import read_imu_csv
from poise.core.influx import RAW_RP, InfluxV1, point_line
from poise.stack import LocalStack

pytestmark = pytest.mark.integration

FIGURES = 6  # sway x 2 conditions, knee ROM, STEADI, intensity and adherence, pain and fatigue


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, object]]]:
    """One secured stack for the module (auth on, a login per role; the commands log in as
    their roles from the environment: simulate --history as worker, report/export as
    reader), seeded once."""
    stack = LocalStack(tmp_path_factory.mktemp("stack"))
    stack.start()
    try:
        with pytest.MonkeyPatch.context() as mp:
            for key, value in stack.env.items():
                mp.setenv(key, value)
            url = stack.info().influx_url
            code, out, err = run(
                "simulate",
                "--history",
                "12w",
                "--patients",
                "3",
                "--seed",
                "0",
                "--influx",
                url,
                "--database",
                "poise",
            )
            assert code == 0, err
            ADMIN["auth"] = stack.influx_auth("admin")
            yield url, json.loads(out)
    finally:
        stack.stop()


ADMIN: dict[str, object] = {}  # the stack's admin login, for tests that write directly


def admin(url: str) -> InfluxV1:
    return InfluxV1(url, "poise", ADMIN["auth"])  # type: ignore[arg-type]


def test_history_truth_and_idempotent_writes(seeded) -> None:
    from poise import history

    url, truth = seeded
    assert [t["course"] for t in truth["patients"].values()] == ["improving", "stable", "worsening"]
    q = 'SELECT count("duration_s") FROM "derived"."session_summary"'
    with admin(url) as db:
        assert db.scalar(q) == sum(t["sessions"] for t in truth["patients"].values())
        points, _ = history.generate(history.HistoryConfig(patients=1, prefix="idem"))
        n = history.write(db, points)
        history.write(db, points)  # written twice: keyed by tags and time, stored once
        q1 = q + " WHERE patient = 'idem001'"
        assert db.scalar(q1) == sum(p["measurement"] == "session_summary" for p in points)
        assert n == len(points)
        # the CLI with --until: a rerun overwrites
        argv = (
            "simulate",
            "--history",
            "2w",
            "--patients",
            "1",
            "--seed",
            "3",
            "--site",
            "rerun",
            "--influx",
            url,
            "--until",
            "2026-11-30",
        )
        for _ in range(2):
            code, out, err = run(*argv)
            assert code == 0, err
        n_sessions = json.loads(out)["patients"]["h001"]["sessions"]
        assert db.scalar(q + " WHERE site = 'rerun'") == n_sessions


def _dark_share(png: Path) -> float:
    import matplotlib.image

    img = np.asarray(matplotlib.image.imread(png))
    grey = img[..., :3].mean(axis=-1) if img.ndim == 3 else img
    return float((grey < 0.5).mean())


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils not installed")
def test_report_pdf_and_html(seeded, tmp_path: Path) -> None:
    url, truth = seeded
    worsening = next(p for p, t in truth["patients"].items() if t["course"] == "worsening")
    pdf = tmp_path / "r.pdf"
    code, out, err = run(
        "report",
        "--patient",
        worsening,
        "--influx",
        url,
        "-o",
        str(pdf),
        "--age-band",
        "75-79",
        "--sex",
        "female",
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["flagged"] is True
    assert summary["figures"] == FIGURES
    assert pdf.read_bytes().startswith(b"%PDF")
    assert pdf.stat().st_mode & 0o077 == 0  # health data: owner only
    subprocess.run(["pdftoppm", "-r", "30", "-png", str(pdf), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 2
    for page in pages:
        assert _dark_share(page) > 0.002, f"{page.name} looks empty"
    text = subprocess.run(
        ["pdftotext", str(pdf), "-"], check=True, capture_output=True, text=True
    ).stdout
    captions = set(re.findall(r"Figure (\d+)\.", text))
    assert captions == {str(i) for i in range(1, FIGURES + 1)}
    assert "Fall-risk review: needed" in text
    assert "probability" in text  # only in the sentence saying none is given
    assert not re.search(r"\d+ ?% (chance|probability|risk of falling)", text)

    html = tmp_path / "r.html"
    code, _out, err = run("report", "--patient", worsening, "--influx", url, "-o", str(html))
    assert code == 0, err
    doc = html.read_text()
    assert doc.count('<figure class="plot"') == FIGURES
    assert doc.count("data:image/svg+xml;base64,") == FIGURES
    assert "tandem stance held" in doc
    assert "not compared with its norm" in doc  # no age band and sex given this time


def test_stable_patient_report_has_no_flag(seeded, tmp_path: Path) -> None:
    url, truth = seeded
    stable = next(p for p, t in truth["patients"].items() if t["course"] == "stable")
    code, out, err = run(
        "report", "--patient", stable, "--influx", url, "-o", str(tmp_path / "s.html")
    )
    assert code == 0, err
    assert json.loads(out)["flagged"] is False
    assert "no reason found in this period" in (tmp_path / "s.html").read_text()


FORBIDDEN_KEYS = {"name", "birthDate", "address", "telecom", "identifier", "contact", "photo"}


def _walk(x: object) -> Iterator[tuple[str, object]]:
    if isinstance(x, dict):
        for k, v in x.items():
            yield k, v
            yield from _walk(v)
    elif isinstance(x, list):
        for v in x:
            yield from _walk(v)


def test_fhir_export_validates_and_names_no_one(seeded, tmp_path: Path) -> None:
    from fhir.resources.R4B.bundle import Bundle
    from fhir.resources.R4B.observation import Observation

    url, truth = seeded
    patient = next(iter(truth["patients"]))
    path = tmp_path / "b.json"
    code, _out, err = run(
        "export", "--patient", patient, "--format", "fhir", "--influx", url, "-o", str(path)
    )
    assert code == 0, err
    bundle = json.loads(path.read_text())
    Bundle.model_validate(bundle)
    statuses = set()
    loinc = set()
    for e in bundle["entry"]:
        obs = Observation.model_validate(e["resource"])
        statuses.add(obs.status)
        assert e["resource"]["subject"] == {"reference": f"Patient/{patient}"}
        for c in e["resource"].get("component", []):
            if "valueQuantity" in c:
                assert c["valueQuantity"]["system"] == "http://unitsofmeasure.org"
        for coding in e["resource"]["code"].get("coding", []):
            if coding["system"] == "http://loinc.org":
                loinc.add(coding["code"])
    assert statuses == {"final"}
    assert loinc == {"89423-8", "66247-8", "72514-3"}
    keys = {k for k, _v in _walk(bundle)}
    assert not keys & FORBIDDEN_KEYS
    references = {v for k, v in _walk(bundle) if k == "reference"}
    assert references == {f"Patient/{patient}"}


def test_csv_and_parquet_exports_with_raw_samples(seeded, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    url, truth = seeded
    patient = "h002"  # h001 also has the rerun history of another site (see above)
    with admin(url) as db:
        series = db.query(
            f'SELECT last("duration_s") FROM "derived"."session_summary" '
            f"WHERE patient = '{patient}'"
        )
        t0 = series[0]["values"][0][0]
        lines = [
            point_line(
                "imu",
                {"site": "demo", "patient": patient, "sensor": "back"},
                {
                    "acc_x": 0.1 * i,
                    "acc_y": 0.0,
                    "acc_z": 9.81,
                    "gyr_x": 0.0,
                    "gyr_y": 0.0,
                    "gyr_z": 0.01,
                },
                t0 + i * 10_000_000,
            )
            for i in range(100)
        ]
        db.ensure_schema()
        db.write(lines, rp=RAW_RP)
    code, out, err = run(
        "export",
        "--patient",
        patient,
        "--format",
        "csv",
        "--raw",
        "--influx",
        url,
        "-o",
        str(tmp_path / "csv"),
    )
    assert code == 0, err
    files = {Path(f).name for f in json.loads(out)["files"]}
    assert files == {f"{patient}-trials.csv", f"{patient}-sessions.csv", f"{patient}-raw-back.csv"}
    rec = read_imu_csv(tmp_path / "csv" / f"{patient}-raw-back.csv")
    assert rec.time_s.shape == (100,)
    assert np.allclose(np.diff(rec.time_s), 0.01, atol=1e-6)  # epoch seconds in float64
    n_sessions = truth["patients"][patient]["sessions"]
    assert (tmp_path / "csv" / f"{patient}-sessions.csv").read_text().count("\n") == n_sessions + 1

    code, out, err = run(
        "export",
        "--patient",
        patient,
        "--format",
        "parquet",
        "--influx",
        url,
        "-o",
        str(tmp_path / "pq"),
    )
    assert code == 0, err
    assert all(p.stat().st_mode & 0o077 == 0 for p in (tmp_path / "csv").iterdir())
    table = pq.read_table(tmp_path / "pq" / f"{patient}-sessions.parquet")
    assert table.num_rows == n_sessions
    assert str(table.schema.field("pain_0_10").type) == "double"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["report", "--patient", "Jane Doe", "-o", "x.pdf"], "pseudonymous"),
        (["report", "--patient", "nobody", "-o", "x.pdf"], "no trial or session summaries"),
        (["report", "--patient", "h001", "-o", "x.docx"], ".html or .pdf"),
        (["report", "--patient", "h001", "-o", "x.pdf", "--since", "12y"], "--since"),
        (["report", "--patient", "h001", "-o", "x.pdf", "--until", "tomorrow"], "--until"),
        (["report", "--patient", "h001", "-o", "x.pdf", "--age-band", "old"], "age band"),
        (["export", "--patient", "h001", "--format", "fhir", "--raw"], "--raw"),
    ],
)
def test_bad_input_is_exit_2_with_a_message(seeded, tmp_path: Path, argv, message) -> None:
    url, _truth = seeded
    argv = [a if not a.startswith("x.") else str(tmp_path / a) for a in argv]
    code, _out, err = run(*argv, "--influx", url)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_rules_file_errors_are_exit_2(seeded, tmp_path: Path) -> None:
    url, _truth = seeded
    bad = tmp_path / "rules.toml"
    bad.write_text('version = 1\n[[rule]]\nid = "x"\nscope = "knee"\n')
    code, _out, err = run(
        "report",
        "--patient",
        "h001",
        "--influx",
        url,
        "-o",
        str(tmp_path / "r.html"),
        "--rules",
        str(bad),
    )
    assert code == 2
    assert "rules.toml: field 'rule[0].scope'" in err


def test_the_demo_ends_with_a_report(seeded, tmp_path: Path) -> None:
    from poise.report.demo import demo_report

    url, _truth = seeded
    with admin(url) as db:
        path = demo_report(db, tmp_path, patients=3)
    assert path.name == "report-p003.pdf"
    assert path.read_bytes().startswith(b"%PDF")
