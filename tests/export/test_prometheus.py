"""A real Prometheus (Debian's ``prometheus``) scrapes ``pptptop --headless -r FILE --metrics`` on 127.0.0.1;
its HTTP API then says what the --json document says: failures by code and tunnels by phase."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_server import Prometheus, assert_agrees, every_tunnel, json_doc
from test_metrics import Served

DATA = Path(__file__).resolve().parent.parent / "data"
#: a failed login and a tunnel whose GRE never came through: failures of two causes
CAPTURES = ["s2-mschapv2-wrong-password-both.pcapng", "s3-gre-blocked-both.pcapng"]

pytestmark = pytest.mark.skipif(shutil.which("prometheus") is None,
                                reason="prometheus is not installed (apt-get install prometheus)")


@pytest.fixture
def prom_and_pptptop(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Prometheus, Served]]:
    s = Served(DATA / request.param)
    p = Prometheus(tmp_path, s.url.split("/", 1)[0])
    try:
        yield p, s
    finally:
        p.stop()
        if s.proc.poll() is None:
            s.stop()


@pytest.mark.parametrize("prom_and_pptptop", CAPTURES, indirect=True)
def test_prometheus_sees_what_the_json_document_says(prom_and_pptptop: tuple[Prometheus, Served]) -> None:
    prom, served = prom_and_pptptop
    prom.wait_for('up{job="pptptop"} == 1')
    tunnels = every_tunnel(json_doc(Path(served.proc.args[4])))  # type: ignore[index]
    assert assert_agrees(prom, tunnels)  # each capture fails
    assert served.stop() == 0
