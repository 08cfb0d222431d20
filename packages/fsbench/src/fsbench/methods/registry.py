"""Your own methods beside the built-in ones: registered by a call or by an entry point.

A user method is a ``fsbench.methods.base.Method`` subclass (see its docstring for what to
implement). Two ways in:

- ``fsbench.register_method("mymethod", MyMethod, description="...", preset="protonet")`` in the
  process that runs it (a script, a notebook, a test);
- an entry point in the ``fsbench.methods`` group of an installed distribution, so that the
  command line finds it (``fsbench run mymethod doubled``)::

      [project.entry-points."fsbench.methods"]
      mymethod = "mypackage.methods:MyMethod"

  The class may set ``description`` (default: the first line of its docstring) and ``preset``
  (default "protonet"). Entry points are loaded lazily: the first time a method name is not a
  built-in one, only the entry points of that name; ``fsbench list`` loads them all.

``preset``: the built-in method whose presets give the user method's defaults per dataset (its
way, shot, iterations, learning rate, data options...), or a dict of settings used on every
image dataset. A user method runs through the same engine, episodes and result.json as the
built-in ones; result.json records it under ``user_method`` (its class, module, distribution
and version), and every table marks it.
"""

from __future__ import annotations

import importlib.metadata as md
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fsbench.catalog import BUILTIN_METHODS
from fsbench.errors import FsbenchError
from fsbench.methods.base import Method

if TYPE_CHECKING:
    from fsbench.presets import Preset

GROUP = "fsbench.methods"
NAME = re.compile(r"^[a-z][a-z0-9_.-]*$")


@dataclass(frozen=True)
class UserMethod:
    """A registered method: its class, what it is, where its defaults and its code come from."""

    name: str
    cls: type[Method]
    description: str
    preset: str | Mapping[str, Any] = "protonet"
    origin: str = "register_method"  # or "entry point NAME = module:Class"
    distribution: str | None = None
    version: str | None = None
    settings: dict = field(default_factory=dict)  # a dict preset, copied

    def record(self) -> dict:
        """What result.json keeps under ``user_method``."""
        return {
            "name": self.name,
            "class": f"{self.cls.__module__}:{self.cls.__qualname__}",
            "origin": self.origin,
            "distribution": self.distribution,
            "version": self.version,
            "preset": self.preset if isinstance(self.preset, str) else "settings given",
        }


_REGISTERED: dict[str, UserMethod] = {}
_TRIED: set[str] = set()  # names whose entry points were looked for


def _check_preset(name: str, preset: str | Mapping[str, Any]) -> dict:
    """A dict preset's settings checked as the settings table declares them; {} for a name."""
    from fsbench.settings import BASE, IDENTITY, SPECS, check_value

    if isinstance(preset, str):
        if preset not in BUILTIN_METHODS:
            raise FsbenchError(
                f"preset {preset!r} of method {name!r} is not a built-in method; choose from "
                f"{', '.join(BUILTIN_METHODS)} or give a dict of settings"
            )
        from fsbench.catalog import CLASSIFIER_METHODS, PRETRAIN_METHODS

        if preset in CLASSIFIER_METHODS + PRETRAIN_METHODS:
            raise FsbenchError(
                f"preset {preset!r}: a user method is episodic; take the presets of an "
                "episodic method (e.g. protonet)"
            )
        return {}
    if not isinstance(preset, Mapping):
        raise FsbenchError(f"preset of method {name!r} must be a method name or a dict")
    for key, value in preset.items():
        if key not in BASE or key in IDENTITY:
            raise FsbenchError(f"preset of method {name!r}: {key!r} is not a setting")
        tp, spec, _ = SPECS[key]
        try:
            check_value(key, value, tp, spec)
        except FsbenchError as exc:
            raise FsbenchError(f"preset of method {name!r}: {exc}") from None
    return dict(preset)


def _distribution_of(cls: type) -> tuple[str | None, str | None]:
    """The installed distribution (and version) whose code holds ``cls``, if any."""
    top = cls.__module__.split(".")[0]
    names = md.packages_distributions().get(top) or []
    for dist in names:
        try:
            return dist, md.version(dist)
        except md.PackageNotFoundError:
            continue
    return None, None


def register_method(
    name: str,
    cls: type[Method],
    *,
    description: str,
    preset: str | Mapping[str, Any] = "protonet",
    replace: bool = False,
) -> UserMethod:
    """Make ``cls`` (a ``Method`` subclass) runnable as method ``name``, with the defaults of
    ``preset`` (a built-in method's presets per dataset, or a dict of settings).

    A name that is a built-in method or already registered is refused unless ``replace=True``
    (a user method then runs under the built-in name with that name's presets, ``preset`` is
    not used; tables still mark it and show no published number beside it).
    """
    return _register(name, cls, description, preset, replace, "register_method", None)


def _register(
    name: str,
    cls: Any,
    description: str,
    preset: Any,
    replace: bool,
    origin: str,
    dist: tuple[str | None, str | None] | None,
) -> UserMethod:
    if not isinstance(name, str) or not NAME.match(name):
        raise FsbenchError(
            f"method name {name!r} must be lower case: a letter, then letters, digits, _ . -"
        )
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise FsbenchError(
            f"method {name!r}: {cls!r} is not a subclass of fsbench.methods.base.Method"
        )
    if not isinstance(description, str) or not description.strip():
        raise FsbenchError(f"method {name!r} needs a description (one line for fsbench list)")
    if not replace and (name in BUILTIN_METHODS or name in _REGISTERED):
        what = "a built-in method" if name in BUILTIN_METHODS else "already registered"
        raise FsbenchError(
            f"method name {name!r} is {what}; choose another name or pass replace=True"
        )
    settings = _check_preset(name, preset)
    if cls.name == Method.name:  # the base class's placeholder: keyword construction needs it
        cls.name = name
    distribution, version = dist if dist is not None else _distribution_of(cls)
    entry = UserMethod(
        name,
        cls,
        description.strip().splitlines()[0],
        preset if isinstance(preset, str) else dict(preset),
        origin,
        distribution,
        version,
        settings,
    )
    _REGISTERED[name] = entry
    return entry


def unregister_method(name: str) -> None:
    """Forget a registered method (tests; a later lookup may load its entry point again)."""
    _REGISTERED.pop(name, None)
    _TRIED.discard(name)


def _entry_points(name: str | None = None) -> list[md.EntryPoint]:
    eps = md.entry_points(group=GROUP)
    return [ep for ep in eps if name is None or ep.name == name]


def _load_entry_point(ep: md.EntryPoint) -> UserMethod:
    """Load one entry point into the registry; a one-line FsbenchError naming it otherwise."""
    dist = getattr(ep, "dist", None)
    dist_name = getattr(dist, "name", None) if dist is not None else None
    dist_version = getattr(dist, "version", None) if dist is not None else None
    where = f"entry point {ep.name} = {ep.value} (group {GROUP}"
    where += f", distribution {dist_name} {dist_version})" if dist_name else ")"
    try:
        cls = ep.load()
    except Exception as exc:  # anything the user's module raises on import
        text = str(exc).splitlines()[0] if str(exc) else ""
        raise FsbenchError(
            f"{where} cannot be loaded: {type(exc).__name__}: {text}".rstrip(": ")
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise FsbenchError(f"{where} names {cls!r}, not a subclass of fsbench Method")
    description = getattr(cls, "description", None) or (cls.__doc__ or "").strip() or ep.name
    preset = getattr(cls, "preset", "protonet")
    try:
        return _register(
            ep.name,
            cls,
            description,
            preset,
            False,  # a built-in name is refused; a name registered by a call is never looked up
            f"entry point {ep.name} = {ep.value}",
            (dist_name, dist_version),
        )
    except FsbenchError as exc:
        raise FsbenchError(f"{where}: {exc}") from None


def find_user_method(name: str) -> UserMethod | None:
    """The user method ``name``: registered by a call, or (first time) its entry point."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name in BUILTIN_METHODS or name in _TRIED:
        return None
    _TRIED.add(name)
    for ep in _entry_points(name):
        return _load_entry_point(ep)
    return None


def is_user_method(name: str) -> bool:
    """Whether ``name`` runs a user's method (a registered name, or an entry point's)."""
    return find_user_method(name) is not None


def user_method(name: str) -> UserMethod:
    """The user method ``name``, or a one-line FsbenchError listing the methods there are."""
    found = find_user_method(name)
    if found is None:
        mine = sorted(_REGISTERED)
        known = ", ".join([*BUILTIN_METHODS, *mine])
        raise FsbenchError(
            f"unknown method {name!r}; choose from {known} (or register your own: "
            "fsbench.register_method or the fsbench.methods entry point)"
        )
    return found


def user_methods() -> tuple[dict[str, UserMethod], list[str]]:
    """Every user method (every entry point loaded) and one line per broken entry point."""
    broken = []
    for ep in _entry_points():
        if ep.name in _REGISTERED:
            continue
        try:
            _load_entry_point(ep)
        except FsbenchError as exc:
            broken.append(str(exc))
        _TRIED.add(ep.name)
    return dict(_REGISTERED), broken


def method_class(name: str) -> type[Method]:
    """The class that runs method ``name``: a user method's, else the built-in one."""
    found = find_user_method(name) if name in _REGISTERED or name not in BUILTIN_METHODS else None
    if found is not None:
        return found.cls
    from fsbench.methods import METHODS

    if name in METHODS:
        return METHODS[name]
    return user_method(name).cls


def user_preset(name: str, dataset: str) -> Preset:
    """The preset of user method ``name`` on ``dataset``: its preset method's, renamed, or the
    dict of settings it was registered with."""
    from fsbench.catalog import IMAGE_DATASETS
    from fsbench.presets import Preset, preset_for

    entry = user_method(name)
    note = (
        f"A user method ({entry.record()['class']}, {entry.origin}"
        + (f", {entry.distribution} {entry.version}" if entry.distribution else "")
        + "): no published number."
    )
    if isinstance(entry.preset, str):
        base = preset_for(entry.preset, dataset)
        source = f"the {entry.preset} preset ({base.source}) for user method {name}"
        return Preset(
            name,
            dataset,
            dict(base.settings),
            source,
            (note, *base.notes),
            dict(base.variants),
            dict(base.tied),
        )
    if dataset not in IMAGE_DATASETS:
        raise FsbenchError(
            f"user method {name!r} is episodic; use it with an image dataset "
            f"({', '.join(IMAGE_DATASETS)})"
        )
    return Preset(
        name, dataset, dict(entry.settings), f"the settings given for user method {name}", (note,)
    )


def record(name: str) -> dict:
    """``{"user_method": ...}`` for result.json when ``name`` is a user method, else {}."""
    if name in BUILTIN_METHODS and name not in _REGISTERED:
        return {}
    found = find_user_method(name)
    return {"user_method": found.record()} if found is not None else {}
