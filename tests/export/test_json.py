"""--json strings off the wire: one character per octet (latin-1), so every name says exactly what was sent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from hostile_capture import write_hostile


def json_run(path: Path) -> tuple[str, dict[str, Any]]:
    """The --json document as printed, and parsed."""
    out = subprocess.run([sys.executable, "-m", "pptptop", "-r", str(path), "--json"], capture_output=True,
                         text=True, check=True).stdout
    return out, json.loads(out)


def test_octet_0xff_and_a_literal_backslash_stay_apart(tmp_path: Path) -> None:
    """A CHAP name holding the four characters ``\\xff`` and one holding the octet 0xff used to come out as the
    same JSON text (the octet was decoded with backslashreplace). Now the octet is the code point U+00FF,
    which JSON writes ``\\u00ff``, and the backslash is a backslash."""
    literal, doc_l = json_run(write_hostile(tmp_path / "literal.pcap", user=b"a\\xffb"))
    octet, doc_o = json_run(write_hostile(tmp_path / "octet.pcap", user=b"a\xffb\x80"))
    user_l, user_o = doc_l["tunnels"][0]["auth"]["user"], doc_o["tunnels"][0]["auth"]["user"]
    assert user_l == "a\\xffb" and user_o == "a\xffb\x80"
    assert user_l.encode("latin-1") == b"a\\xffb" and user_o.encode("latin-1") == b"a\xffb\x80"  # the octets back
    assert '"user": "a\\\\xffb"' in literal and '"user": "a\\u00ffb\\u0080"' in octet
    assert "\\u00ff" not in literal and "\\\\xff" not in octet


def test_host_names_were_latin_1_already(tmp_path: Path) -> None:
    _, doc = json_run(write_hostile(tmp_path / "h.pcap", host=b"h\xff\\xff"))
    assert doc["tunnels"][0]["control"]["host_name"]["client"] == "h\xff\\xff"
