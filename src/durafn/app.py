"""The app: a registry of orchestrators, activities and entities, addressed by name."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar, overload

from durafn.core.entities import normalize_entity_name
from durafn.core.errors import FunctionNotFound

F = TypeVar("F", bound=Callable[..., Any])


class AuthLevel(StrEnum):
    """Who may call an HTTP function (the Azure Functions levels).

    ``anonymous``: anyone; ``function``: a function key or the master key; ``admin``: the
    master key. On a loopback address the host requires no key at all.
    """

    ANONYMOUS = "anonymous"
    FUNCTION = "function"
    ADMIN = "admin"


@dataclass(frozen=True)
class HttpRoute:
    """An HTTP function: served at ``/api/<route>`` for ``methods``."""

    route: str
    methods: tuple[str, ...]
    func: Callable[..., Any]
    auth_level: AuthLevel
    name: str


@dataclass(frozen=True)
class RegisteredFunction:
    """A user function and the name it is registered under."""

    name: str
    func: Callable[..., Any]

    @functools.cached_property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.func)


@dataclass(frozen=True)
class RegisteredEntity:
    """An entity: a function taking an ``EntityContext``, or a class whose public methods are
    its operations. ``name`` is lowercase (entity names are case-insensitive)."""

    name: str
    target: Callable[..., Any]

    @property
    def is_class(self) -> bool:
        return inspect.isclass(self.target)


class App:
    """Holds the functions of one durafn application.

    ::

        app = df.App()

        @app.orchestrator
        def hello(ctx): ...

        @app.activity(name="greet")
        def say_hello(city: str) -> str: ...

    The decorators return the function unchanged, so it can still be called (and tested) directly
    and passed to ``ctx.call_activity`` in place of its name.
    """

    def __init__(self) -> None:
        self._orchestrators: dict[str, RegisteredFunction] = {}
        self._activities: dict[str, RegisteredFunction] = {}
        self._entities: dict[str, RegisteredEntity] = {}
        self._names: dict[int, str] = {}
        self._routes: list[HttpRoute] = []

    @overload
    def orchestrator(self, func: F, /) -> F: ...
    @overload
    def orchestrator(
        self, func: None = None, /, *, name: str | None = None
    ) -> Callable[[F], F]: ...
    def orchestrator(
        self, func: Callable[..., Any] | None = None, /, *, name: str | None = None
    ) -> Any:
        """Register an orchestrator: a generator (``yield``) or ``async def`` (``await``)."""
        return self._decorate(self._orchestrators, "orchestrator", func, name)

    @overload
    def activity(self, func: F, /) -> F: ...
    @overload
    def activity(self, func: None = None, /, *, name: str | None = None) -> Callable[[F], F]: ...
    def activity(
        self, func: Callable[..., Any] | None = None, /, *, name: str | None = None
    ) -> Any:
        """Register an activity: a plain function, sync or ``async``, taking at most one input."""
        return self._decorate(self._activities, "activity", func, name)

    @overload
    def entity(self, func: F, /) -> F: ...
    @overload
    def entity(self, func: None = None, /, *, name: str | None = None) -> Callable[[F], F]: ...
    def entity(self, func: Callable[..., Any] | None = None, /, *, name: str | None = None) -> Any:
        """Register an entity: a function ``f(ctx: df.EntityContext)`` that handles every
        operation, or a class whose public methods are the operations and whose attributes
        (JSON-encodable) are the state; its ``__init__`` takes no argument and sets the initial
        state. Entity names are case-insensitive."""

        def register(f: F) -> F:
            if not callable(f):
                raise TypeError(f"@app.entity decorates a function or a class, got {f!r}")
            if inspect.isclass(f):
                _check_no_argument_init(f)
            _check_not_async(f)
            registered_name = normalize_entity_name(name if name is not None else f.__name__)
            taken = self._entities.get(registered_name)
            if taken is not None and taken.target is not f:
                raise ValueError(f"entity {registered_name!r} is already registered")
            self._entities[registered_name] = RegisteredEntity(registered_name, f)
            self._names[id(f)] = registered_name
            return f

        return register if func is None else register(func)

    def _decorate(
        self,
        table: dict[str, RegisteredFunction],
        kind: str,
        func: Callable[..., Any] | None,
        name: str | None,
    ) -> Any:
        def register(f: F) -> F:
            if not callable(f):
                raise TypeError(f"@app.{kind} decorates a function, got {f!r}")
            registered_name = name if name is not None else f.__name__
            _check_name(kind, registered_name)
            if registered_name in table and table[registered_name].func is not f:
                raise ValueError(f"{kind} {registered_name!r} is already registered")
            table[registered_name] = RegisteredFunction(registered_name, f)
            self._names[id(f)] = registered_name
            return f

        return register if func is None else register(func)

    def route(
        self,
        route: str,
        methods: Sequence[str] | None = None,
        *,
        auth_level: AuthLevel | str = AuthLevel.FUNCTION,
        name: str | None = None,
    ) -> Callable[[F], F]:
        """Register an HTTP function served by ``durafn start`` at ``/api/<route>``.

        ``route`` may hold parameters (``orchestrators/{function_name}``), read from
        ``req.route_params``. The function takes a ``df.HttpRequest`` and, when it has a parameter
        annotated ``df.AsyncClient`` (or ``df.Client`` for a plain ``def``), a client. It returns
        a ``df.HttpResponse``, a Starlette response, or a JSON-able value.
        """
        path = route.strip("/")
        if not path or not path.isprintable() or " " in path:
            raise ValueError(f"route must be a non-empty URL path: {route!r}")
        verbs = tuple(m.upper() for m in (methods or ("GET", "POST")))
        level = AuthLevel(auth_level)

        def register(f: F) -> F:
            taken = [r for r in self._routes if r.route == path and set(r.methods) & set(verbs)]
            if taken:
                raise ValueError(f"route {path!r} is already registered for {taken[0].methods}")
            self._routes.append(HttpRoute(path, verbs, f, level, name or f.__name__))
            return f

        return register

    @property
    def routes(self) -> list[HttpRoute]:
        """The HTTP functions, in registration order."""
        return list(self._routes)

    def replaced(self, activities: Mapping[str, Callable[..., Any]]) -> App:
        """A copy of this app whose named activities are replaced (mocks in tests).

        Raises ``FunctionNotFound`` for a name the app does not register, so a typo in a test
        cannot silently leave the real activity in place.
        """
        copy = App()
        copy._orchestrators = dict(self._orchestrators)
        copy._activities = dict(self._activities)
        copy._entities = dict(self._entities)
        copy._names = dict(self._names)
        copy._routes = list(self._routes)
        for name, func in activities.items():
            self.get_activity(name)
            copy._activities[name] = RegisteredFunction(name, func)
        return copy

    def get_orchestrator(self, name: str) -> RegisteredFunction:
        """The orchestrator registered as ``name``; :class:`FunctionNotFound` lists the others."""
        try:
            return self._orchestrators[name]
        except KeyError:
            raise FunctionNotFound("orchestrator", name, list(self._orchestrators)) from None

    def get_activity(self, name: str) -> RegisteredFunction:
        """The activity registered as ``name``; :class:`FunctionNotFound` lists the others."""
        try:
            return self._activities[name]
        except KeyError:
            raise FunctionNotFound("activity", name, list(self._activities)) from None

    def get_entity(self, name: str) -> RegisteredEntity:
        """The entity registered as ``name`` (any case); :class:`FunctionNotFound` lists the
        others."""
        try:
            return self._entities[name.lower()]
        except KeyError:
            raise FunctionNotFound("entity", name, list(self._entities)) from None

    def has_entity(self, name: str) -> bool:
        return name.lower() in self._entities

    @property
    def entity_names(self) -> list[str]:
        return sorted(self._entities)

    def has_orchestrator(self, name: str) -> bool:
        return name in self._orchestrators

    def has_activity(self, name: str) -> bool:
        return name in self._activities

    @property
    def orchestrator_names(self) -> list[str]:
        return sorted(self._orchestrators)

    @property
    def activity_names(self) -> list[str]:
        return sorted(self._activities)

    def name_of(self, name_or_func: str | Callable[..., Any], kind: str) -> str:
        """Resolve a name or a registered function object to its registered name."""
        if isinstance(name_or_func, str):
            return name_or_func
        registered = self._names.get(id(name_or_func))
        if registered is None:
            label = getattr(name_or_func, "__name__", repr(name_or_func))
            raise FunctionNotFound(
                kind, label, self.activity_names if kind == "activity" else self.orchestrator_names
            )
        return registered


def _check_no_argument_init(cls: type) -> None:
    """A class entity's initial state is ``cls()``: its ``__init__`` must take no argument."""
    try:
        inspect.signature(cls).bind()
    except TypeError:
        raise TypeError(
            f"class entity {cls.__name__} must be constructible without arguments: its "
            "__init__ sets the initial state"
        ) from None
    except ValueError:  # no signature to inspect (a builtin): let the first operation tell
        return


def _check_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or not name or len(name) > 256 or not name.isprintable():
        raise ValueError(f"{kind} name must be a printable string of 1 to 256 characters: {name!r}")


def _check_not_async(entity: Callable[..., Any]) -> None:
    """Entity operations run to completion one after another: ``async def`` is refused."""
    members = (
        [(n, m) for n, m in inspect.getmembers(entity, inspect.isfunction) if not n.startswith("_")]
        if inspect.isclass(entity)
        else [(entity.__name__, entity)]
    )
    for name, member in members:
        if inspect.iscoroutinefunction(member) or inspect.isasyncgenfunction(member):
            raise TypeError(
                f"entity operation {name!r} is async: entity operations must be plain functions "
                "(an entity applies its operations one at a time, to completion; call async "
                "work from an activity instead)"
            )
