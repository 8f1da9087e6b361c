"""JSON <-> Lua values with Orthanc's quirks (``LuaContext.cpp`` ``PushJson``/``GetJson``).

Kept apart from ``lua.py`` and free of lupa: the runtime hands in the few Lua operations the
conversion needs, so the rules can be read (and changed) in one place.

- JSON -> Lua: objects and arrays become tables (arrays 1-based), ``null`` becomes ``nil`` (so
  the key disappears), numbers stay numbers.
- Lua -> JSON: a table whose keys are exactly 1..n is an array, so an empty table is ``[]``;
  any other table is an object. An integral number is an int. Unless ``keep_strings``, a string
  that Lua considers numeric becomes a number: the reason scripts call ``DumpJson(t, true)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any


class LuaValues:
    """Converts values for one Lua runtime.

    ``make_table`` builds a Lua table from a dict or list (lupa's ``table_from``),
    ``is_table`` tells a Lua table apart, ``tonumber`` is Lua's own ``tonumber``, and
    ``fill`` gives a table whose content is fetched on first use its content (the
    toolbox's ``_dicomd_fill``; other tables are returned as they are)."""

    def __init__(
        self,
        make_table: Callable[[Any], Any],
        is_table: Callable[[Any], bool],
        tonumber: Callable[[Any], Any],
        fill: Callable[[Any], Any] = lambda table: table,
    ) -> None:
        self._make_table = make_table
        self._is_table = is_table
        self._tonumber = tonumber
        self.fill = fill

    # -- Python (JSON) to Lua ---------------------------------------------------------------
    def to_lua(self, value: Any) -> Any:
        """A JSON-like Python value as a Lua value (text is passed as UTF-8 bytes, since
        the runtime keeps Lua strings binary-safe)."""
        if isinstance(value, str):
            return value.encode("utf-8", "surrogateescape")
        if isinstance(value, dict):
            return self._make_table(
                {str(k).encode(): self.to_lua(v) for k, v in value.items() if v is not None}
            )
        if isinstance(value, list | tuple):
            # A null inside an array leaves a hole, as Orthanc's lua_rawseti of nil does.
            return self._make_table({i: self.to_lua(v) for i, v in enumerate(value, 1)})
        return value

    # -- Lua to Python (JSON) ---------------------------------------------------------------
    def from_lua(self, value: Any, keep_strings: bool = False) -> Any:
        """A Lua value as a JSON-like Python value (Lua strings come as bytes)."""
        if self._is_table(value):
            return self._table(value, keep_strings)
        if isinstance(value, bytes):
            if not keep_strings:
                number = self._tonumber(value)
                if number is not None:
                    return self._number(number)
            return value.decode("utf-8", "surrogateescape")
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, int | float):
            return self._number(value)
        return str(value)

    @staticmethod
    def _number(value: float) -> int | float:
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
        return value

    def _table(self, table: Any, keep_strings: bool) -> Any:
        items = list(self.fill(table).items())
        keys = [k for k, _ in items]
        if all(isinstance(k, int) and not isinstance(k, bool) for k in keys) and sorted(
            keys
        ) == list(range(1, len(keys) + 1)):
            ordered = sorted(items, key=lambda kv: kv[0])
            return [self.from_lua(v, keep_strings) for _, v in ordered]
        return {self._key(k): self.from_lua(v, keep_strings) for k, v in items}

    @staticmethod
    def _key(key: Any) -> str:
        if isinstance(key, bytes):
            return key.decode("utf-8", "surrogateescape")
        if isinstance(key, float) and key.is_integer():
            return str(int(key))
        return str(key)

    def to_text(self, value: Any) -> str:
        """A Lua string argument as text (``None`` for nil)."""
        if value is None:
            return ""
        if isinstance(value, bytes):
            return value.decode("utf-8", "surrogateescape")
        return str(value)

    def to_bytes(self, value: Any) -> bytes:
        """A Lua string argument (a body) as bytes, binary-safe."""
        if value is None:
            return b""
        if isinstance(value, bytes):
            return value
        return str(value).encode()

    def headers(self, value: Any) -> dict[str, str]:
        """A Lua table of HTTP headers as a dict of text."""
        if value is None or not self._is_table(value):
            return {}
        return {self.to_text(k): self.to_text(v) for k, v in value.items()}
