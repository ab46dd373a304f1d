"""A plug-in catalogue, the one mechanism behind node types (`nodes/registry.py`) and
operators (`nodes/operators/registry.py`): built-ins register with a class decorator,
installed packages through an entry-point group, and both are loaded on first use."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
import logging
import threading
from typing import Any

from jsonschema import Draft202012Validator

logger = logging.getLogger(__name__)


class Catalogue:
    """Classes with a `config_schema`, by name. `check` refuses a class before it is added;
    `load_builtins` imports the modules whose decorators register the built-in ones."""

    def __init__(
        self,
        *,
        noun: str,
        group: str,
        name_of: Callable[[type], str],
        check: Callable[[type], None],
        load_builtins: Callable[[], None],
        unknown: type[KeyError],
    ):
        self.noun = noun
        self.group = group
        self.items: dict[str, Any] = {}
        self._name_of = name_of
        self._check = check
        self._load_builtins = load_builtins
        self._unknown = unknown
        self._loaded = False
        self._lock = threading.RLock()

    def register(self, item: type) -> type:
        """Class decorator: add a class (its schema is checked here, once)."""
        self._check(item)
        Draft202012Validator.check_schema(item.config_schema)
        name = self._name_of(item)
        existing = self.items.get(name)
        if existing is not None and existing is not item:
            raise ValueError(f"{self.noun} {name!r} is registered twice ({existing.__name__}, {item.__name__})")
        self.items[name] = item
        return item

    def load_entry_points(self) -> None:
        """Register the classes that installed packages declare in the entry-point group."""
        for entry_point in entry_points(group=self.group):
            try:
                self.register(entry_point.load())
            except Exception:
                # A broken plug-in must not take the product down; it is left out and logged.
                logger.exception("could not load %s plug-in %s", self.noun, entry_point.name)

    def get(self, name: str) -> Any:
        self._load()
        try:
            return self.items[name]
        except KeyError:
            raise self._unknown(name) from None

    def all(self, order: Callable[[Any], Any]) -> list[Any]:
        self._load()
        return sorted(self.items.values(), key=order)

    def _load(self) -> None:
        # Under a lock, and marked loaded only once loaded: the first use may come from two
        # threads at once (a thread-pool worker), and neither may see a half-filled catalogue.
        if self._loaded:
            return
        with self._lock:
            if not self._loaded:
                self._load_builtins()
                self.load_entry_points()
                self._loaded = True
