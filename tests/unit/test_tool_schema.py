"""Unit tests for the ``@tool`` decorator: schema generation, validation, invocation."""

import asyncio
import enum
import functools
import inspect
import threading
from collections.abc import Callable
from typing import Annotated, Any, Literal, Optional

import pydantic
import pytest
from pydantic import BaseModel, Field

from stella_sdk.docstring import parse_docstring
from stella_sdk.tool import (
    ArgumentIssue,
    Tool,
    ToolArgumentsError,
    ToolDefinitionError,
    tool,
)

# --------------------------------------------------------------------------------------
# The two tools of the public guide, verbatim.
# --------------------------------------------------------------------------------------


@tool
async def search_database(query: str, limit: int = 5) -> dict:  # type: ignore[type-arg]
    """Search the database for relevant information.

    Args:
        query: The search query
        limit: Maximum number of results

    Returns:
        Search results
    """
    return {"query": query, "limit": limit}


@tool
async def create_task(title: str, description: str) -> dict:  # type: ignore[type-arg]
    """Create a new task in the task management system.

    Args:
        title: Task title
        description: Task description

    Returns:
        Created task details
    """
    return {"title": title, "description": description}


def test_search_database_definition() -> None:
    assert search_database.definition() == {
        "type": "function",
        "function": {
            "name": "search_database",
            "description": "Search the database for relevant information.",
            "parameters": {
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "The search query"},
                    "limit": {
                        "type": "integer",
                        "description": "Maximum number of results",
                        "default": 5,
                    },
                },
                "required": ["query"],
                "additionalProperties": False,
            },
        },
    }
    assert search_database.name == "search_database"
    assert search_database.timeout is None
    assert search_database.is_async is True


def test_create_task_definition() -> None:
    # ``title`` is both a parameter name and the JSON-schema keyword we strip.
    assert create_task.definition() == {
        "type": "function",
        "function": {
            "name": "create_task",
            "description": "Create a new task in the task management system.",
            "parameters": {
                "type": "object",
                "properties": {
                    "title": {"type": "string", "description": "Task title"},
                    "description": {"type": "string", "description": "Task description"},
                },
                "required": ["title", "description"],
                "additionalProperties": False,
            },
        },
    }


def test_parameters_and_definition_are_copies() -> None:
    search_database.parameters["properties"].clear()
    search_database.definition()["function"]["parameters"]["required"].append("x")
    assert search_database.parameters["required"] == ["query"]
    assert set(search_database.parameters["properties"]) == {"query", "limit"}


# --------------------------------------------------------------------------------------
# Decorator forms and the wrapped callable
# --------------------------------------------------------------------------------------


def test_decorator_with_options() -> None:
    @tool(name="lookup-v2", description="Custom description.", timeout=5)
    def lookup(key: str) -> str:
        """Docstring summary is not used.

        Args:
            key: The key
        """
        return key.upper()

    assert isinstance(lookup, Tool)
    assert lookup.name == "lookup-v2"
    assert lookup.description == "Custom description."
    assert lookup.timeout == 5.0
    assert isinstance(lookup.timeout, float)
    assert lookup.is_async is False
    # The docstring still describes the parameters.
    assert lookup.parameters["properties"] == {"key": {"type": "string", "description": "The key"}}


def test_decorator_with_empty_parentheses() -> None:
    @tool()
    def ping() -> str:
        """Ping."""
        return "pong"

    assert ping.name == "ping"
    assert ping.description == "Ping."
    assert ping.parameters == {"type": "object", "properties": {}, "additionalProperties": False}


def test_sync_tool_is_callable_like_the_original() -> None:
    def add(a: int, b: int = 2) -> int:
        """Add two numbers."""
        return a + b

    wrapped = tool(add)
    assert wrapped(1) == 3
    assert wrapped(1, b=10) == 11
    assert wrapped.fn is add
    assert wrapped.__wrapped__ is add  # type: ignore[attr-defined]
    assert wrapped.__name__ == "add"  # type: ignore[attr-defined]
    assert wrapped.__doc__ == "Add two numbers."
    assert wrapped.__qualname__ == add.__qualname__  # type: ignore[attr-defined]
    assert wrapped.__module__ == __name__
    assert inspect.signature(wrapped) == inspect.signature(add)
    assert not asyncio.iscoroutinefunction(wrapped)


async def test_async_tool_is_awaitable_like_the_original() -> None:
    result = search_database("cats", limit=2)
    assert inspect.iscoroutine(result)
    assert await result == {"query": "cats", "limit": 2}
    assert asyncio.iscoroutinefunction(search_database)
    assert search_database.__name__ == "search_database"  # type: ignore[attr-defined]


def test_no_docstring_gives_empty_description() -> None:
    @tool
    def bare(x: int) -> int:
        return x

    assert bare.description == ""
    assert bare.parameters["properties"] == {"x": {"type": "integer"}}


def test_repr() -> None:
    assert repr(search_database) == "<Tool 'search_database'>"


# --------------------------------------------------------------------------------------
# Docstring parsing
# --------------------------------------------------------------------------------------


def test_docstring_multiline_typed_entries_and_ignored_sections() -> None:
    @tool
    def book(city: str, nights: int, guests: int = 1) -> str:
        """Book a hotel room
        in the given city.

        Longer explanation that is not part of the summary.

        Args:
            city (str): Name of the city,
                e.g. "Paris".
            nights (int, optional): How many
                nights to stay.

                Must be positive.
            guests: Number of guests

        Returns:
            guests: not a parameter description

        Raises:
            ValueError: if nights is zero
        """
        return city

    assert book.description == "Book a hotel room in the given city."
    assert book.parameters["properties"] == {
        "city": {"type": "string", "description": 'Name of the city, e.g. "Paris".'},
        "nights": {
            "type": "integer",
            "description": "How many nights to stay.\n\nMust be positive.",
        },
        "guests": {"type": "integer", "description": "Number of guests", "default": 1},
    }


def test_parse_docstring_sections() -> None:
    parsed = parse_docstring(
        """Summary line.

        Arguments:
            a: first
            *rest: the rest
            b (list[int]):
                described on the next line
        Raises:
            KeyError: never
        """
    )
    assert parsed.summary == "Summary line."
    assert {name: arg.description for name, arg in parsed.args.items()} == {
        "a": "first",
        "rest": "the rest",
        "b": "described on the next line",
    }
    assert parsed.args["b"].type == "list[int]"
    assert parsed.args["a"].type is None


def test_parse_docstring_empty_and_section_only() -> None:
    assert parse_docstring(None).summary == ""
    assert parse_docstring("   ").args == {}
    only_args = parse_docstring("Args:\n    x: the x\n")
    assert only_args.summary == ""
    assert only_args.args["x"].description == "the x"


def test_parse_docstring_header_on_first_line() -> None:
    parsed = parse_docstring("Args:\n    x: the x\n    y: the y\nReturns:\n    z: not an arg\n")
    assert parsed.summary == ""
    assert {n: a.description for n, a in parsed.args.items()} == {"x": "the x", "y": "the y"}


# --------------------------------------------------------------------------------------
# Types
# --------------------------------------------------------------------------------------


class Color(enum.Enum):
    """A paint colour."""

    RED = "red"
    GREEN = "green"


class Priority(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Address(BaseModel):
    """A postal address."""

    street: str
    zip_code: int = Field(description="Postal code")


class Person(BaseModel):
    name: str
    address: Address
    tags: list[str] = []


class TreeNode(BaseModel):
    value: int
    children: list["TreeNode"] = []


def _props(t: Tool[..., Any]) -> dict[str, Any]:
    return dict(t.parameters["properties"])


def test_scalar_types() -> None:
    @tool
    def f(flag: bool, count: int, ratio: float, label: str) -> None:
        """Scalars."""

    assert f.parameters == {
        "type": "object",
        "properties": {
            "flag": {"type": "boolean"},
            "count": {"type": "integer"},
            "ratio": {"type": "number"},
            "label": {"type": "string"},
        },
        "required": ["flag", "count", "ratio", "label"],
        "additionalProperties": False,
    }


def test_defaults_are_included_and_make_parameters_optional() -> None:
    @tool
    def f(
        a: str,
        b: bool = False,
        c: float = 0.5,
        d: list[int] = [1, 2],  # noqa: B006 - default is only read
        e: Optional[str] = None,  # noqa: UP045 - Optional is what is being tested
    ) -> None:
        """Defaults."""

    assert f.parameters["required"] == ["a"]
    props = _props(f)
    assert props["b"] == {"type": "boolean", "default": False}
    assert props["c"] == {"type": "number", "default": 0.5}
    assert props["d"] == {"type": "array", "items": {"type": "integer"}, "default": [1, 2]}
    assert props["e"] == {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}


def test_non_json_serialisable_default_is_left_out() -> None:
    sentinel = object()

    @tool
    def f(x: Any = sentinel) -> None:
        """Opaque default."""

    assert f.parameters == {
        "type": "object",
        "properties": {"x": {}},
        "additionalProperties": False,
    }


def test_optional_forms() -> None:
    @tool
    def f(a: Optional[int], b: int | None, c: int | None = None) -> None:  # noqa: UP045
        """Optionals."""

    nullable_int = {"anyOf": [{"type": "integer"}, {"type": "null"}]}
    assert _props(f) == {
        "a": nullable_int,
        "b": nullable_int,
        "c": {**nullable_int, "default": None},
    }
    # Optional without a default is still required (it may be null, not absent).
    assert f.parameters["required"] == ["a", "b"]


def test_containers() -> None:
    @tool
    def f(
        names: list[str],
        scores: dict[str, float],
        pair: tuple[int, str],
        many: tuple[int, ...],
        matrix: list[list[int]],
    ) -> None:
        """Containers."""

    assert _props(f) == {
        "names": {"type": "array", "items": {"type": "string"}},
        "scores": {"type": "object", "additionalProperties": {"type": "number"}},
        "pair": {
            "type": "array",
            "prefixItems": [{"type": "integer"}, {"type": "string"}],
            "minItems": 2,
            "maxItems": 2,
        },
        "many": {"type": "array", "items": {"type": "integer"}},
        "matrix": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}},
    }


def test_literal_becomes_enum() -> None:
    @tool
    def f(mode: Literal["fast", "slow"], level: Literal[1, 2, 3] = 2) -> None:
        """Literals.

        Args:
            mode: Speed mode
        """

    assert _props(f) == {
        "mode": {"type": "string", "enum": ["fast", "slow"], "description": "Speed mode"},
        "level": {"type": "integer", "enum": [1, 2, 3], "default": 2},
    }


def test_enum_becomes_enum_of_values_inlined() -> None:
    @tool
    def f(color: Color, priority: Priority = Priority.LOW) -> None:
        """Enums.

        Args:
            color: Colour to paint with
        """

    params = f.parameters
    assert "$defs" not in params
    assert params["properties"] == {
        "color": {
            "type": "string",
            "enum": ["red", "green"],
            "description": "Colour to paint with",
        },
        "priority": {"type": "integer", "enum": [1, 2], "default": 1},
    }


def test_pydantic_model_is_inlined_without_titles() -> None:
    @tool
    def f(person: Person, shipping: Address | None = None) -> None:
        """Models.

        Args:
            person: Who
        """

    address = {
        "type": "object",
        "description": "A postal address.",
        "properties": {
            "street": {"type": "string"},
            "zip_code": {"type": "integer", "description": "Postal code"},
        },
        "required": ["street", "zip_code"],
    }
    assert f.parameters == {
        "type": "object",
        "properties": {
            "person": {
                "type": "object",
                # The parameter's own description wins over the model's docstring.
                "description": "Who",
                "properties": {
                    "name": {"type": "string"},
                    "address": address,
                    "tags": {"type": "array", "items": {"type": "string"}, "default": []},
                },
                "required": ["name", "address"],
            },
            "shipping": {"anyOf": [address, {"type": "null"}], "default": None},
        },
        "required": ["person"],
        "additionalProperties": False,
    }


def test_recursive_model_keeps_defs() -> None:
    @tool
    def f(tree: TreeNode) -> None:
        """Recursive."""

    assert f.parameters == {
        "type": "object",
        "properties": {"tree": {"$ref": "#/$defs/TreeNode"}},
        "required": ["tree"],
        "additionalProperties": False,
        "$defs": {
            "TreeNode": {
                "type": "object",
                "properties": {
                    "value": {"type": "integer"},
                    "children": {
                        "type": "array",
                        "items": {"$ref": "#/$defs/TreeNode"},
                        "default": [],
                    },
                },
                "required": ["value"],
            }
        },
    }


def test_model_default_data_is_not_rewritten() -> None:
    # A default value containing a "title" key is data, not schema: keep it.
    class Doc(BaseModel):
        title: str

    @tool
    def f(doc: Doc = Doc(title="untitled")) -> None:
        """Default model."""

    assert _props(f)["doc"]["default"] == {"title": "untitled"}


def test_annotated_descriptions_and_constraints() -> None:
    @tool
    def f(
        a: Annotated[int, "An annotated int"],
        b: Annotated[str, Field(description="From Field", min_length=2)],
        c: Annotated[int, Field(ge=0, le=10)] = 3,
        d: int = Field(7, description="Field as default", gt=0),
    ) -> None:
        """Annotated.

        Args:
            a: docstring loses to Annotated
            b: docstring loses to Field
            c: docstring used when Field has no description
        """

    assert _props(f) == {
        "a": {"type": "integer", "description": "An annotated int"},
        "b": {"type": "string", "description": "From Field", "minLength": 2},
        "c": {
            "type": "integer",
            "description": "docstring used when Field has no description",
            "minimum": 0,
            "maximum": 10,
            "default": 3,
        },
        "d": {
            "type": "integer",
            "description": "Field as default",
            "exclusiveMinimum": 0,
            "default": 7,
        },
    }
    assert f.parameters["required"] == ["a", "b"]


def test_parameter_names_that_clash_with_pydantic() -> None:
    @tool
    def f(model_config: str, schema: int, _private: bool = True) -> None:
        """Odd names."""

    assert _props(f) == {
        "model_config": {"type": "string"},
        "schema": {"type": "integer"},
        "_private": {"type": "boolean", "default": True},
    }
    assert f.validate_arguments({"model_config": "x", "schema": "3"}) == {
        "model_config": "x",
        "schema": 3,
        "_private": True,
    }


# --------------------------------------------------------------------------------------
# Methods
# --------------------------------------------------------------------------------------


class Greeter:
    def __init__(self, greeting: str) -> None:
        self.greeting = greeting

    @tool
    def greet(self, name: str) -> str:
        """Greet someone.

        Args:
            name: Who to greet
        """
        return f"{self.greeting}, {name}"

    @tool
    def kind(cls, loud: bool = False) -> str:
        """Class name."""
        name: str = cls.__name__  # type: ignore[attr-defined]  # cls is the class here
        return name.upper() if loud else name


async def test_method_tools_skip_self_and_bind() -> None:
    expected = {
        "type": "object",
        "properties": {"name": {"type": "string", "description": "Who to greet"}},
        "required": ["name"],
        "additionalProperties": False,
    }
    assert Greeter.greet.parameters == expected
    bound = Greeter("Hello").greet
    assert isinstance(bound, Tool)
    assert bound.parameters == expected
    assert bound("Ada") == "Hello, Ada"
    assert await bound.invoke({"name": "Bob"}) == "Hello, Bob"
    # Unbound, there is no instance to call it on.
    with pytest.raises(TypeError, match="greet"):
        await Greeter.greet.invoke({"name": "Bob"})


async def test_cls_parameter_is_skipped_and_bound_to_the_class() -> None:
    assert Greeter.kind.parameters["properties"] == {"loud": {"type": "boolean", "default": False}}
    assert await Greeter.kind.invoke({"loud": True}) == "GREETER"
    assert await Greeter("hi").kind.invoke({}) == "Greeter"


def test_plain_tool_as_class_attribute_is_not_bound() -> None:
    class Holder:
        search = search_database

    assert Holder().search is search_database


# --------------------------------------------------------------------------------------
# Decoration-time errors
# --------------------------------------------------------------------------------------


def test_var_positional_is_rejected() -> None:
    with pytest.raises(ToolDefinitionError, match=r"uses_args.*\*items"):

        @tool
        def uses_args(*items: int) -> None:
            """Nope."""


def test_var_keyword_is_rejected() -> None:
    with pytest.raises(ToolDefinitionError, match=r"uses_kwargs.*\*\*options"):

        @tool
        def uses_kwargs(a: int, **options: int) -> None:
            """Nope."""


def test_missing_annotation_is_rejected() -> None:
    with pytest.raises(ToolDefinitionError, match=r"untyped.*'b'.*no type annotation"):

        @tool
        def untyped(a: int, b) -> None:  # type: ignore[no-untyped-def]
            """Nope."""


def test_arbitrary_class_is_rejected() -> None:
    class Opaque:
        pass

    with pytest.raises(ToolDefinitionError, match=r"takes_opaque.*'thing'.*Opaque"):

        @tool
        def takes_opaque(thing: Opaque) -> None:
            """Nope."""


def test_callable_is_rejected() -> None:
    with pytest.raises(ToolDefinitionError, match=r"takes_callback.*'callback'.*JSON schema"):

        @tool
        def takes_callback(x: int, callback: Callable[[int], int]) -> None:
            """Nope."""


def test_docstring_naming_unknown_parameter_is_rejected() -> None:
    with pytest.raises(ToolDefinitionError, match=r"documented.*'colour'.*no such parameter"):

        @tool
        def documented(color: str) -> None:
            """Paint.

            Args:
                colour: misspelt
            """


@pytest.mark.parametrize("bad", ["has space", "", "x" * 65, "ünï"])
def test_invalid_name_is_rejected(bad: str) -> None:
    with pytest.raises(ToolDefinitionError, match="invalid tool name"):
        tool(name=bad)(lambda: None)


def test_lambda_needs_a_name() -> None:
    with pytest.raises(ToolDefinitionError, match="<lambda>"):
        tool(lambda: None)
    assert tool(name="noop")(lambda: None).name == "noop"


@pytest.mark.parametrize("bad", [0, -1.0, True, "5", float("nan")])
def test_invalid_timeout_is_rejected(bad: Any) -> None:
    with pytest.raises(ToolDefinitionError, match="timeout"):

        @tool(timeout=bad)
        def f() -> None:
            """F."""


def test_unresolvable_annotation_is_rejected() -> None:
    with pytest.raises(ToolDefinitionError, match="cannot read the signature"):

        @tool
        def f(x: "DoesNotExist") -> None:  # type: ignore[name-defined]  # noqa: F821
            """F."""


def test_definition_errors_are_type_errors() -> None:
    assert issubclass(ToolDefinitionError, TypeError)
    assert issubclass(ToolArgumentsError, ValueError)


# --------------------------------------------------------------------------------------
# Argument validation
# --------------------------------------------------------------------------------------


@tool
def order(
    person: Person,
    color: Color,
    priority: Priority = Priority.LOW,
    quantity: int = 1,
    notes: list[str] | None = None,
) -> str:
    """Place an order."""
    return f"{person.name}:{color.value}:{priority.name}:{quantity}:{notes}"


def test_validate_coerces_to_annotated_types() -> None:
    kwargs = order.validate_arguments(
        {
            "person": {"name": "Ada", "address": {"street": "Main", "zip_code": "12345"}},
            "color": "green",
            "priority": 2,
            "quantity": "3",
        }
    )
    assert kwargs == {
        "person": Person(name="Ada", address=Address(street="Main", zip_code=12345)),
        "color": Color.GREEN,
        "priority": Priority.HIGH,
        "quantity": 3,
        "notes": None,
    }
    assert type(kwargs["person"]) is Person
    assert type(kwargs["person"].address) is Address
    assert kwargs["color"] is Color.GREEN
    assert kwargs["priority"] is Priority.HIGH


def _issues(t: Tool[..., Any], args: Any) -> list[ArgumentIssue]:
    with pytest.raises(ToolArgumentsError) as info:
        t.validate_arguments(args)
    assert info.value.tool_name == t.name
    return info.value.issues


def test_validate_missing_argument() -> None:
    issues = _issues(search_database, {"limit": 3})
    assert issues == [ArgumentIssue("query", "missing", "missing required argument")]


def test_validate_wrong_type() -> None:
    issues = _issues(search_database, {"query": "x", "limit": "lots"})
    assert len(issues) == 1
    assert issues[0].field == "limit"
    assert issues[0].kind == "int_parsing"
    assert issues[0].message.startswith("Input should be a valid integer")
    assert issues[0].message.endswith("(got 'lots')")


def test_validate_unexpected_argument() -> None:
    issues = _issues(search_database, {"query": "x", "max": 3})
    assert issues == [ArgumentIssue("max", "unexpected", "unexpected argument")]


def test_validate_nested_and_multiple_errors_in_message() -> None:
    with pytest.raises(ToolArgumentsError) as info:
        order.validate_arguments(
            {
                "person": {"name": "Ada", "address": {"street": "Main"}},
                "color": "blue",
                "notes": ["ok", 5],
                "extra": True,
            }
        )
    assert [(i.field, i.kind) for i in info.value.issues] == [
        ("person.address.zip_code", "missing"),
        ("color", "enum"),
        ("notes[1]", "string_type"),
        ("extra", "unexpected"),
    ]
    assert str(info.value) == (
        "Invalid arguments for tool 'order':\n"
        "  - person.address.zip_code: missing required argument\n"
        "  - color: Input should be 'red' or 'green' (got 'blue')\n"
        "  - notes[1]: Input should be a valid string (got 5)\n"
        "  - extra: unexpected argument"
    )
    assert isinstance(info.value.__cause__, pydantic.ValidationError)


@pytest.mark.parametrize("bad", [["query"], "query=x", 42])
def test_validate_rejects_non_objects(bad: Any) -> None:
    issues = _issues(search_database, bad)
    assert issues == [
        ArgumentIssue("", "type", f"expected a JSON object, got {type(bad).__name__}")
    ]


def test_validate_fills_defaults() -> None:
    assert search_database.validate_arguments({"query": "q"}) == {"query": "q", "limit": 5}


# --------------------------------------------------------------------------------------
# Invocation
# --------------------------------------------------------------------------------------


async def test_invoke_async_tool() -> None:
    assert await search_database.invoke({"query": "dogs", "limit": "2"}) == {
        "query": "dogs",
        "limit": 2,
    }
    assert await create_task.invoke({"title": "T", "description": "D"}) == {
        "title": "T",
        "description": "D",
    }


async def test_invoke_sync_tool_runs_in_a_worker_thread() -> None:
    seen: list[str] = []

    @tool
    def where(tag: str) -> str:
        """Report the thread."""
        seen.append(threading.current_thread().name)
        return tag * 2

    assert await where.invoke({"tag": "ab"}) == "abab"
    assert seen and seen[0] != threading.main_thread().name


async def test_invoke_passes_coerced_models() -> None:
    result = await order.invoke(
        {
            "person": {"name": "Ada", "address": {"street": "Main", "zip_code": 1}},
            "color": "red",
            "notes": ["a"],
        }
    )
    assert result == "Ada:red:LOW:1:['a']"


async def test_invoke_with_invalid_arguments_does_not_call() -> None:
    calls: list[int] = []

    @tool
    async def count(n: int) -> int:
        """Count."""
        calls.append(n)
        return n

    with pytest.raises(ToolArgumentsError, match="'count'"):
        await count.invoke({"n": "many"})
    assert calls == []


async def test_invoke_none_means_no_arguments() -> None:
    @tool
    def now() -> str:
        """Constant clock."""
        return "12:00"

    assert await now.invoke(None) == "12:00"
    assert await now.invoke() == "12:00"


async def test_invoke_positional_only_and_keyword_only() -> None:
    @tool
    def mixed(a: int, /, b: int, *, c: int = 0) -> list[int]:
        """Mixed kinds."""
        return [a, b, c]

    assert await mixed.invoke({"a": 1, "b": 2, "c": 3}) == [1, 2, 3]


async def test_invoke_enforces_timeout() -> None:
    @tool(timeout=0.05)
    async def slow() -> str:
        """Too slow."""
        await asyncio.sleep(5)
        return "done"

    with pytest.raises(TimeoutError):
        await slow.invoke({})


async def test_invoke_callable_object_with_async_call() -> None:
    class Echo:
        async def __call__(self, text: str) -> str:
            """Echo text."""
            return text

    echo = tool(name="echo")(Echo())
    assert echo.is_async is True
    assert await echo.invoke({"text": "hi"}) == "hi"


async def test_invoke_sync_function_returning_awaitable() -> None:
    async def _inner(x: int) -> int:
        return x + 1

    @tool
    def wrapper(x: int) -> Any:
        """Returns a coroutine."""
        return _inner(x)

    assert await wrapper.invoke({"x": 1}) == 2


def test_partial_keeps_is_async() -> None:
    async def base(a: int, b: int) -> int:
        return a + b

    t = tool(name="add_ten")(functools.partial(base, b=10))
    assert t.is_async is True
    assert t.parameters["properties"]["a"] == {"type": "integer"}
