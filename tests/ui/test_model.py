"""The UI's pure parts: snapshots and the changed flag, filters, columns, formatting, save, themes."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from ui_helpers import DATA

from pptptop import sources
from pptptop.pipeline import Pipeline
from pptptop.record.export import gather
from pptptop.track.model import Phase
from pptptop.track.tracker import Tracker
from pptptop.ui.columns import COLUMNS, fit_columns, render_row
from pptptop.ui.format import age, bits_rate, sparkline
from pptptop.ui.themes import BUILTIN, ThemeError, load_theme, next_theme, themes_dir
from pptptop.ui.tunnel_text import bar_chart
from pptptop.view.filtering import FilterError, parse_filter
from pptptop.view.snapshot import TunnelStore


def run(name: str) -> Pipeline:
    p = Pipeline(sources.open_file(str(DATA / name)), Tracker())
    p.run()
    return p


class TestDetail:
    def test_the_detail_decodes_the_stored_frames_after_the_lock_is_let_go(self, monkeypatch: pytest.MonkeyPatch
                                                                           ) -> None:
        """A tunnel stores its PPP frames undecoded: the tunnel screen's copy decodes them, the tunnel's and
        its NAT peer's, once the capture may go on (the tracker's lock let go)."""
        from pptptop.track import nat
        from pptptop.track.model import PacketKind
        from pptptop.view import snapshot

        tracker = Tracker()
        nat.attach(tracker)
        p = Pipeline(sources.open_file(str(DATA / "s1-mschapv2-mppe128-both.pcapng")), tracker)
        p.run()
        t = next(t for t in p.tracker.tunnels.values() if t.nat is not None and t.nat.peer is not None)
        expected = t.all_packets()
        held_while_decoding: list[bool] = []
        real = snapshot.decoded

        def watched(packets: object, alg: int | None) -> object:
            # an RLock held by this thread would let us in again: ask another thread whether it is free
            free: list[bool] = []
            def probe() -> None:
                got = p.lock.acquire(timeout=1)
                if got:
                    p.lock.release()
                free.append(got)

            th = threading.Thread(target=probe)
            th.start()
            th.join()
            held_while_decoding.append(not free[0])
            return real(packets, alg)  # type: ignore[arg-type]

        monkeypatch.setattr(snapshot, "decoded", watched)
        d = snapshot.detail_of(p, t.id)
        assert d is not None and held_while_decoding == [False, False]
        assert [(x.number, x.message, x.summary) for x in d.packets] == [(x.number, x.message, x.summary)
                                                                       for x in expected]
        ppp = [x for x in d.packets if x.kind is PacketKind.PPP]
        assert ppp and all(x.message is not None and x.summary for x in ppp)
        assert d.peer_packets and any(x.kind is PacketKind.PPP and x.message is not None for x in d.peer_packets)


class TestStore:
    def test_copies_changed_tunnels_and_clears_the_flag(self) -> None:
        p = run("s5-two-clients-same-nat-both.pcapng")
        store = TunnelStore()
        assert store.refresh(p)
        assert sorted(store.rows) == sorted(p.tracker.tunnels)
        assert not any(t.changed for t in p.tracker.tunnels.values())
        versions = dict(store.versions)
        assert not store.refresh(p)  # nothing changed: nothing copied
        assert store.versions == versions
        t = p.tracker.tunnels[3]
        t.changed = True
        assert store.refresh(p) and store.versions[3] == versions[3] + 1
        assert store.versions[1] == versions[1]

    def test_row_fields_from_the_tunnel(self) -> None:
        p = run("s2-mschapv2-wrong-password-inside.pcap")
        store = TunnelStore()
        store.refresh(p)
        r = store.rows[1]
        assert (r.client_ip, r.server_ip, r.user, r.phase, r.failed_in) == (
            "10.0.0.2", "198.51.100.2", "bob", Phase.FAILED, Phase.AUTH)
        assert r.auth_result == "failure" and r.encryption == ""
        assert store.capture.done and store.capture.failed == 1

    def test_budget_rotates_so_no_tunnel_starves(self) -> None:
        p = run("s5-two-clients-same-nat-both.pcapng")
        store = TunnelStore(max_rebuild=1)
        store.refresh(p)  # first sight of every tunnel is always copied
        for t in p.tracker.tunnels.values():
            t.changed = True
        before = dict(store.versions)
        for _ in range(4):
            store.refresh(p)
        assert all(store.versions[i] == before[i] + 1 for i in before)

    def test_evicted_tunnels_leave_the_table(self) -> None:
        p = run("s1-mschapv2-mppe128-both.pcapng")
        store = TunnelStore()
        store.refresh(p)
        with p.lock:
            del p.tracker.tunnels[1]
        assert store.refresh(p) and 1 not in store.rows and 1 not in store.versions

    def test_refresh_while_the_capture_thread_feeds(self) -> None:
        p = Pipeline(sources.open_file(str(DATA / "s5-two-clients-same-nat-both.pcapng")), Tracker(), speed=50.0)
        store = TunnelStore()
        th = threading.Thread(target=p.run)
        th.start()
        while not p.done.is_set():
            store.refresh(p)
        th.join()
        store.refresh(p)
        assert len(store.rows) == 4 and store.capture.frames == p.frames


class TestFilter:
    def rows(self) -> list[object]:
        p = run("s5-two-clients-same-nat-both.pcapng")
        store = TunnelStore()
        store.refresh(p)
        return list(store.rows.values())

    def test_terms(self) -> None:
        rows = self.rows()

        def ids(text: str) -> list[int]:
            f = parse_filter(text)
            return sorted(r.id for r in rows if f(r))  # type: ignore[attr-defined]

        assert ids("") == [1, 2, 3, 4]
        assert len(ids("user=ali")) == 2 and ids("user=ali") == ids("alice")
        assert ids("ip=10.0.0.3") == ids("10.0.0.3") and len(ids("ip=10.0.0.3")) == 1
        assert len(ids("ip=198.51.100.0/24")) == 4
        assert ids("phase=closed") == [1, 2, 3, 4] and ids("failed") == [] and ids("!failed") == [1, 2, 3, 4]
        assert len(ids("iface=lan0 user=bob")) == 1
        assert ids("id=2") == [2]

    @pytest.mark.parametrize("bad", ["phase=up-ish", "ip=10.0.0.0/99", "colour=red", "user=", "id=x"])
    def test_errors_are_one_sentence(self, bad: str) -> None:
        with pytest.raises(FilterError) as e:
            parse_filter(bad)
        assert str(e.value) and "\n" not in str(e.value)


class TestColumns:
    def test_every_width_shows_the_essentials(self) -> None:
        for width in range(60, 200, 7):
            keys = [c.key for c in fit_columns(width)]
            assert {"id", "client", "server", "phase"} <= set(keys)
            assert keys == [c.key for c in COLUMNS if c.key in keys]  # table order kept

    def test_cells_are_padded_to_their_width(self) -> None:
        p = run("s1-mschapv2-mppe128-inside.pcap")
        store = TunnelStore()
        store.refresh(p)
        cols = fit_columns(200)
        line = render_row(store.rows[1], store.now(), cols, lambda name: __import__("rich.style").style.Style())
        assert line.cell_len == sum(c.width for c in cols) + len(cols) - 1


class TestFormat:
    def test_rates_ages_sparklines(self) -> None:
        assert bits_rate(0) == "0" and bits_rate(100) == "800b" and bits_rate(1500) == "12.0k"
        assert bits_rate(125_000_000) == "1.00G"
        assert (age(5), age(65), age(3700), age(90000)) == ("5s", "1m05s", "1h01m", "1d01h")
        assert sparkline([0, 0, 0], 3) == "   "
        assert sparkline([1, 2, 4, 8], 4)[-1] == "█" and sparkline([1, 2, 4, 8], 4)[0] != " "
        assert len(sparkline(list(range(60)), 10)) == 10

    def test_bar_chart(self) -> None:
        rows = bar_chart([0, 4, 8], 3, 2)
        assert rows == ["  █", " ██"]


class TestSave:
    def test_frames_once_each_in_order(self) -> None:
        p = run("s1-mschapv2-mppe128-inside.pcap")
        t = p.tracker.tunnels[1]
        export = gather([t], p.tracker)
        numbers = [x.number for x in export.packets]
        assert numbers == sorted(set(numbers))
        assert set(numbers) == {x.number for x in t.all_packets()} | {e[0] for e in t.data_ring}
        assert all(x.linktype == 1 for x in export.packets)
        assert export.comment.startswith("pptptop tunnel export\ntunnel 1 ")


class TestThemes:
    def test_builtins_ship_in_the_package_and_the_top_level_dir(self) -> None:
        top = Path(__file__).parents[2] / "themes"
        for name in BUILTIN:
            packaged = themes_dir() / f"{name}.tcss"
            assert packaged.read_text() == (top / f"{name}.tcss").read_text()
            assert load_theme(name).css == packaged.read_text()

    def test_every_builtin_styles_every_component_class(self) -> None:
        from pptptop.ui.widgets.capture_header import CaptureHeader
        from pptptop.ui.widgets.event_log import EventLog
        from pptptop.ui.widgets.hex_view import HexView
        from pptptop.ui.widgets.ladder import LadderView
        from pptptop.ui.widgets.packet_list import PacketList
        from pptptop.ui.widgets.tunnel_table import TunnelTable

        needed = set()
        for w in (TunnelTable, CaptureHeader, LadderView, HexView, EventLog, PacketList):
            needed |= w.COMPONENT_CLASSES
        for name in BUILTIN:
            css = load_theme(name).css
            missing = sorted(c for c in needed if f".{c} " not in css)
            assert not missing, (name, missing)

    def test_unknown_theme_and_cycle(self, tmp_path: Path) -> None:
        with pytest.raises(ThemeError):
            load_theme("neon")
        with pytest.raises(ThemeError):
            load_theme(str(tmp_path / "absent.tcss"))
        assert next_theme("dark") == "light" and next_theme("contrast") == "dark"
        mine = tmp_path / "m.tcss"
        mine.write_text("Screen { }")
        spec = load_theme(str(mine))
        assert next_theme("contrast", spec) == str(mine) and next_theme(str(mine), spec) == "dark"


def test_the_view_models_never_import_textual() -> None:
    """``pptptop.view`` is what the CLI and the tests use headless: Textual stays in ``pptptop.ui``."""
    import subprocess
    import sys

    code = ("import sys, pptptop.view.snapshot, pptptop.view.filtering, pptptop.view.ladder_model, "
            "pptptop.view.eventfeed, pptptop.view.tshark, pptptop.record.export; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'textual' or m.startswith('pptptop.ui')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
