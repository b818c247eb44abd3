"""A virtual list on Textual's line API: sticky header lines, a cursor, and only visible lines drawn.

toolong's approach: a :class:`~textual.scroll_view.ScrollView` whose
:meth:`render_line` asks the subclass for one row at a time, so 5,000 tunnels
or 10,000 log lines cost what the terminal shows, not what the list holds.
Subclasses implement :meth:`row_count` and :meth:`render_row` (and optionally
:meth:`render_header`); this class does scrolling, the cursor, keys and mouse.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import ClassVar

from rich.console import Console
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

STRIP_CACHE = 4096  # rendered lines kept (a few screens' worth, for every list)


class LineList(ScrollView, can_focus=True):
    """Rows drawn on demand under ``header_height`` sticky lines, with an optional cursor."""

    DEFAULT_CSS = """
    LineList {
        scrollbar-size-vertical: 1;
        scrollbar-size-horizontal: 1;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down,j", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home,g", "jump(0)", "First", show=False),
        Binding("end,G", "jump(-1)", "Last", show=False),
        Binding("enter", "activate", "Open", show=False),
    ]

    #: component classes every subclass may use (themes style them)
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "line-list--header",
        "line-list--cursor",
        "line-list--cursor-blur",
    }

    header_height = 0
    has_cursor = True
    follow_tail = False  # log-like lists stick to the end while the cursor is there

    class Activated(Message):
        """Enter or a double click on a row."""

        def __init__(self, sender: LineList, index: int) -> None:
            super().__init__()
            self.list = sender
            self.index = index

        @property
        def control(self) -> LineList:
            return self.list

    class Highlighted(Message):
        """The cursor moved to another row."""

        def __init__(self, sender: LineList, index: int) -> None:
            super().__init__()
            self.list = sender
            self.index = index

        @property
        def control(self) -> LineList:
            return self.list

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.cursor = 0
        self.following = self.follow_tail
        self._styles: dict[str, Style] = {}
        self._strips: dict[Hashable, Strip] = {}
        self._base: Style | None = None
        self._line_console = Console(width=400, color_system="truecolor", legacy_windows=False)

    # ---------------------------------------------------------------- to implement
    def row_count(self) -> int:
        return 0

    def render_row(self, index: int, width: int, selected: bool) -> Text:
        return Text("")

    def render_header(self, line: int, width: int) -> Text:
        return Text("")

    def row_key(self, index: int, width: int, selected: bool) -> Hashable | None:
        """A key that changes whenever row ``index`` would draw differently (None: never cache it)."""
        return None

    def header_click(self, x: int, line: int) -> None:
        """A click on sticky header line ``line`` at column ``x`` (content coordinates)."""

    # ---------------------------------------------------------------- styles
    def style_of(self, name: str) -> Style:
        """The rich style of component class ``<prefix>--name`` (cached until the CSS changes)."""
        st = self._styles.get(name)
        if st is None:
            full = name if "--" in name else f"{self.component_prefix}--{name}"
            try:
                st = self.get_component_rich_style(full, partial=True)
            except KeyError:
                st = Style()
            self._styles[name] = st
        return st

    @property
    def component_prefix(self) -> str:
        return "line-list"

    def notify_style_update(self) -> None:
        self._styles.clear()
        self._strips.clear()
        self._base = None
        super().notify_style_update()

    # ---------------------------------------------------------------- geometry
    @property
    def visible_rows(self) -> int:
        return max(1, self.scrollable_content_region.height - self.header_height)

    def update_virtual_size(self) -> None:
        width = self.scrollable_content_region.width or self.size.width
        self.virtual_size = Size(width, self.row_count() + self.header_height)

    def on_resize(self, event: events.Resize) -> None:
        self._styles.clear()
        self._strips.clear()
        self._base = None
        self.update_virtual_size()
        self.refresh()

    def rows_changed(self) -> None:
        """Call after the rows changed: fixes the cursor and the scroll range, redraws."""
        n = self.row_count()
        at_end = self.following and n > 0
        if at_end:
            self.cursor = n - 1
        self.cursor = min(self.cursor, max(0, n - 1))
        self.update_virtual_size()
        if at_end:
            self.scroll_to(y=max(0, n - self.visible_rows), animate=False, immediate=True)
        self.refresh()

    # ---------------------------------------------------------------- drawing
    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width or self.size.width
        key: Hashable | None = None
        base = self._base
        if base is None:
            base = self._base = self.rich_style
        if y < self.header_height:
            text = self.render_header(y, width)
            text.stylize_before(self.style_of("line-list--header"))
        else:
            index = int(self.scroll_offset.y) + y - self.header_height
            if index >= self.row_count():
                return Strip.blank(width, base)
            selected = self.has_cursor and index == self.cursor
            key = self.row_key(index, width, selected)
            if key is not None:
                cached = self._strips.get((key, self.has_focus))
                if cached is not None:
                    return cached
            text = self.render_row(index, width, selected)
            if selected:
                cur = "line-list--cursor" if self.has_focus else "line-list--cursor-blur"
                text.stylize_before(self.style_of(cur))
        text.stylize_before(base)
        text.end = ""
        strip = Strip(text.render(self._line_console), text.cell_len).crop_extend(0, width, base)
        if y >= self.header_height and key is not None:
            if len(self._strips) > STRIP_CACHE:
                self._strips.clear()
            self._strips[(key, self.has_focus)] = strip
        return strip

    # ---------------------------------------------------------------- cursor
    def move_cursor(self, index: int, *, notify: bool = True) -> None:
        n = self.row_count()
        if n == 0:
            self.cursor = 0
            return
        index = max(0, min(n - 1, index))
        if self.follow_tail:
            self.following = index >= n - 1
        changed = index != self.cursor
        self.cursor = index
        self.scroll_to_cursor()
        self.refresh()
        if changed and notify:
            self.post_message(self.Highlighted(self, index))

    def scroll_to_cursor(self) -> None:
        top = int(self.scroll_offset.y)
        rows = self.visible_rows
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + rows:
            self.scroll_to(y=self.cursor - rows + 1, animate=False, immediate=True)

    def action_cursor(self, delta: int) -> None:
        if not self.has_cursor:
            self.scroll_to(y=self.scroll_offset.y + delta, animate=False)
            return
        self.move_cursor(self.cursor + delta)

    def action_page(self, direction: int) -> None:
        if not self.has_cursor:
            self.scroll_to(y=self.scroll_offset.y + direction * self.visible_rows, animate=False)
            return
        self.move_cursor(self.cursor + direction * self.visible_rows)

    def action_jump(self, where: int) -> None:
        n = self.row_count()
        target = 0 if where == 0 else max(0, n - 1)
        if not self.has_cursor:
            self.scroll_to(y=target, animate=False)
            return
        self.move_cursor(target)

    def action_activate(self) -> None:
        if self.has_cursor and self.row_count():
            self.post_message(self.Activated(self, self.cursor))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        if offset.y < self.header_height:
            self.header_click(offset.x + int(self.scroll_offset.x), offset.y)
            return
        index = int(self.scroll_offset.y) + offset.y - self.header_height
        if 0 <= index < self.row_count() and self.has_cursor:
            self.move_cursor(index)
            if event.chain >= 2:
                self.post_message(self.Activated(self, index))

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()
