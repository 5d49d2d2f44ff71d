"""The app registry: decorators, names, lookups and their errors."""

from __future__ import annotations

import pytest

import durafn as df


def test_bare_decorators_register_under_the_function_name() -> None:
    app = df.App()

    @app.orchestrator
    def hello_cities(ctx):
        yield ctx.call_activity("say_hello", "Tokyo")

    @app.activity
    def say_hello(city: str) -> str:
        return f"Hello {city}!"

    assert app.get_orchestrator("hello_cities").func is hello_cities
    assert app.get_orchestrator("hello_cities").name == "hello_cities"
    assert app.get_activity("say_hello").func is say_hello
    assert app.orchestrator_names == ["hello_cities"]
    assert app.activity_names == ["say_hello"]
    assert app.has_activity("say_hello") and not app.has_activity("hello_cities")
    assert app.has_orchestrator("hello_cities") and not app.has_orchestrator("say_hello")


def test_decorators_with_name() -> None:
    app = df.App()

    @app.activity(name="greet")
    def say_hello(city: str) -> str:
        return f"Hello {city}!"

    @app.orchestrator(name="cities")
    def hello_cities(ctx):
        return None

    assert app.activity_names == ["greet"]
    assert app.orchestrator_names == ["cities"]
    assert app.get_activity("greet").func is say_hello
    assert app.name_of(say_hello, "activity") == "greet"
    assert app.name_of(hello_cities, "orchestrator") == "cities"


def test_decorators_return_the_function_unchanged() -> None:
    app = df.App()

    def plain(x: int) -> int:
        return x + 1

    async def coroutine(x: int) -> int:
        return x

    assert app.activity(plain) is plain
    assert app.activity(name="other")(coroutine) is coroutine
    assert plain(1) == 2  # still callable (and testable) directly
    assert not app.get_activity("plain").is_async
    assert app.get_activity("other").is_async


def test_registered_names_are_listed_sorted() -> None:
    app = df.App()
    for name in ("zeta", "alpha", "mid"):
        app.activity(name=name)(lambda: None)
    assert app.activity_names == ["alpha", "mid", "zeta"]


def test_duplicate_name_is_an_error() -> None:
    app = df.App()

    @app.activity(name="charge")
    def charge_v1() -> None: ...

    def charge_v2() -> None: ...

    with pytest.raises(ValueError, match="activity 'charge' is already registered"):
        app.activity(name="charge")(charge_v2)
    assert app.get_activity("charge").func is charge_v1

    @app.orchestrator
    def flow(ctx):
        return None

    def other_flow(ctx):
        return None

    with pytest.raises(ValueError, match="orchestrator 'flow' is already registered"):
        app.orchestrator(name="flow")(other_flow)


def test_registering_the_same_function_twice_is_harmless() -> None:
    app = df.App()

    def ship() -> None: ...

    app.activity(ship)
    app.activity(ship)
    assert app.activity_names == ["ship"]


def test_activity_and_orchestrator_names_are_separate() -> None:
    app = df.App()

    @app.activity(name="process")
    def process_activity() -> None: ...

    @app.orchestrator(name="process")
    def process_orchestrator(ctx):
        return None

    assert app.get_activity("process").func is process_activity
    assert app.get_orchestrator("process").func is process_orchestrator


@pytest.mark.parametrize("bad", ["a\nb", "tab\there", "\x00", "x" * 257])
def test_bad_name_is_an_error(bad: str) -> None:
    app = df.App()
    with pytest.raises(ValueError, match="name must be a printable string of 1 to 256"):
        app.activity(name=bad)(lambda: None)
    with pytest.raises(ValueError, match="orchestrator name must be"):
        app.orchestrator(name=bad)(lambda ctx: None)
    assert app.activity_names == [] and app.orchestrator_names == []


def test_empty_name_is_an_error() -> None:
    app = df.App()

    def charge() -> None: ...

    with pytest.raises(ValueError, match="name must be a printable string"):
        app.activity(name="")(charge)


def test_longest_name_is_accepted() -> None:
    app = df.App()
    app.activity(name="x" * 256)(lambda: None)
    assert app.has_activity("x" * 256)


def test_decorating_a_non_callable_is_an_error() -> None:
    app = df.App()
    with pytest.raises(TypeError, match=r"@app\.activity decorates a function"):
        app.activity(name="x")(42)


def test_unknown_names_raise_function_not_found_listing_registered_ones() -> None:
    app = df.App()
    app.activity(name="ship")(lambda: None)
    app.activity(name="charge")(lambda: None)
    app.orchestrator(name="checkout")(lambda ctx: None)

    with pytest.raises(df.FunctionNotFound) as info:
        app.get_activity("refund")
    assert "activity 'refund' is not registered" in str(info.value)
    assert "charge, ship" in str(info.value)
    assert info.value.kind == "activity"
    assert info.value.name == "refund"
    assert isinstance(info.value, LookupError)

    with pytest.raises(df.FunctionNotFound) as info:
        app.get_orchestrator("return")
    assert "orchestrator 'return' is not registered" in str(info.value)
    assert "checkout" in str(info.value)


def test_function_not_found_in_an_empty_app_says_none() -> None:
    with pytest.raises(df.FunctionNotFound, match=r": none\)$"):
        df.App().get_orchestrator("anything")


def test_name_of() -> None:
    app = df.App()

    @app.activity
    def charge() -> None: ...

    def never_registered() -> None: ...

    assert app.name_of("any string at all", "activity") == "any string at all"
    assert app.name_of(charge, "activity") == "charge"
    with pytest.raises(df.FunctionNotFound) as info:
        app.name_of(never_registered, "activity")
    assert "'never_registered' is not registered" in str(info.value)
    assert "charge" in str(info.value)

    @app.orchestrator
    def flow(ctx):
        return None

    with pytest.raises(df.FunctionNotFound) as info:
        app.name_of(never_registered, "orchestrator")
    assert "orchestrator 'never_registered'" in str(info.value)
    assert "flow" in str(info.value)


def test_replaced_swaps_activities_in_a_copy() -> None:
    app = df.App()

    @app.activity
    def charge() -> str:
        return "real"

    def fake_charge() -> str:
        return "fake"

    copy = app.replaced({"charge": fake_charge})
    assert copy.get_activity("charge").func is fake_charge
    assert app.get_activity("charge").func is charge
    assert copy.name_of(charge, "activity") == "charge"
    with pytest.raises(df.FunctionNotFound):
        app.replaced({"chrage": fake_charge})
