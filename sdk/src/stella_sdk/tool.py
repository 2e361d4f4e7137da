"""The ``@tool`` decorator: turn a typed, documented function into an LLM tool.

The JSON schema of a tool's arguments is derived from the function signature and its
Google-style docstring, using a pydantic model built from the parameters. The same
model later validates and coerces the arguments an LLM sends, so the schema the model
sees and the validation applied to its calls can never drift apart.

Example::

    @tool
    async def search_database(query: str, limit: int = 5) -> dict:
        \"\"\"Search the database for relevant information.

        Args:
            query: The search query
            limit: Maximum number of results
        \"\"\"

    search_database.definition()   # OpenAI chat-completions ``tools`` entry
    await search_database.invoke({"query": "x"})
"""

from __future__ import annotations

import asyncio
import copy
import functools
import inspect
import re
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Generic, ParamSpec, TypeVar, cast, get_origin, overload

import pydantic
from pydantic.fields import FieldInfo
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaWarningKind

from stella_sdk.docstring import parse_docstring

__all__ = [
    "ArgumentIssue",
    "Tool",
    "ToolArgumentsError",
    "ToolDefinitionError",
    "tool",
]

P = ParamSpec("P")
R = TypeVar("R")

# OpenAI's constraint on function names; other providers accept a superset.
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_METHOD_PARAMS = ("self", "cls")


class ToolDefinitionError(TypeError):
    """A function cannot be turned into a tool (raised at decoration time)."""


@dataclass(frozen=True, slots=True)
class ArgumentIssue:
    """One problem with the arguments of a tool call.

    Attributes:
        field: Dotted path of the offending argument (``"address.zip"``, ``"tags[0]"``);
            empty when the arguments as a whole are wrong (e.g. not an object).
        kind: ``"missing"``, ``"unexpected"`` or pydantic's error type
            (``"int_parsing"``, ``"enum"`` ...).
        message: Human (and LLM) readable explanation.
    """

    field: str
    kind: str
    message: str


class ToolArgumentsError(ValueError):
    """The arguments of a tool call do not match the tool's parameters."""

    def __init__(self, tool_name: str, issues: list[ArgumentIssue]) -> None:
        self.tool_name = tool_name
        self.issues = issues
        lines = [f"Invalid arguments for tool {tool_name!r}:"]
        lines += [f"  - {i.field or '<arguments>'}: {i.message}" for i in issues]
        super().__init__("\n".join(lines))


class _SchemaGenerator(GenerateJsonSchema):
    # Non-JSON-serialisable defaults are simply left out of the schema; the function
    # still applies them, so warning the tool author about it would only be noise.
    ignored_warning_kinds: set[JsonSchemaWarningKind] = {
        "skipped-choice",
        "non-serializable-default",
    }


@dataclass(frozen=True, slots=True)
class _Param:
    name: str  # parameter name == JSON property name
    field: str  # field name inside the pydantic model
    positional_only: bool


class Tool(Generic[P, R]):
    """A function exposed to an LLM as a callable tool.

    Calling the ``Tool`` calls the wrapped function unchanged (so an async tool returns
    an awaitable). ``definition()`` describes it for the LLM, ``validate_arguments()``
    checks an LLM's arguments and ``invoke()`` validates then runs it.
    """

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
        idempotent: bool = False,
    ) -> None:
        if not callable(fn):
            raise ToolDefinitionError(f"@tool expects a function, got {fn!r}")
        if isinstance(fn, Tool):
            raise ToolDefinitionError(f"{fn.name!r} is already a tool")
        tool_name = name if name is not None else getattr(fn, "__name__", None)
        if not isinstance(tool_name, str) or not _NAME_RE.match(tool_name):
            raise ToolDefinitionError(
                f"@tool {_qualname(fn)}: invalid tool name {tool_name!r}; pass "
                "name=... made of 1-64 letters, digits, '_' or '-'"
            )
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0
        ):
            raise ToolDefinitionError(
                f"@tool {tool_name}: timeout must be a positive number of seconds or None, "
                f"got {timeout!r}"
            )

        spec = _build_spec(fn, tool_name)
        self._fn: Callable[P, R] = fn
        self._name = tool_name
        self._description = description if description is not None else spec.summary
        self._timeout = float(timeout) if timeout is not None else None
        self._idempotent = bool(idempotent)
        self._is_async = _is_async_callable(fn)
        self._model = spec.model
        self._params = spec.params
        self._parameters = spec.schema
        # Name of a leading ``self``/``cls`` parameter still waiting to be bound.
        self._unbound_param = spec.method_param

        functools.update_wrapper(self, fn)
        if self._is_async:
            _mark_coroutine_function(self)

    # -- descriptive attributes (read-only) ---------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def description(self) -> str:
        return self._description

    @property
    def parameters(self) -> dict[str, Any]:
        """JSON schema of the arguments object (a fresh copy each time)."""
        return copy.deepcopy(self._parameters)

    @property
    def timeout(self) -> float | None:
        return self._timeout

    @property
    def idempotent(self) -> bool:
        """Safe to run twice: a call whose executor died mid-call is retried on another."""
        return self._idempotent

    @property
    def fn(self) -> Callable[P, R]:
        return self._fn

    @property
    def is_async(self) -> bool:
        return self._is_async

    def definition(self) -> dict[str, Any]:
        """The OpenAI chat-completions ``tools`` entry describing this tool."""
        return {
            "type": "function",
            "function": {
                "name": self._name,
                "description": self._description,
                "parameters": self.parameters,
            },
        }

    # -- calling ------------------------------------------------------------------

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self._fn(*args, **kwargs)

    def __get__(self, obj: object | None, objtype: type | None = None) -> Tool[..., R]:
        # Behave like a method when defined in a class body: bind ``self``/``cls`` and
        # keep the (already self-less) schema. Tools without such a parameter are not
        # bound, so a plain tool stored as a class attribute keeps working.
        if self._unbound_param is None:
            return self
        if self._unbound_param == "self":
            if obj is None:
                return self
            target: object = obj
        else:
            target = objtype if objtype is not None else type(obj)
        bound = copy.copy(self)
        bound._fn = cast(Callable[P, R], types.MethodType(self._fn, target))
        bound._unbound_param = None
        bound.__wrapped__ = bound._fn  # type: ignore[attr-defined]
        return bound

    def validate_arguments(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and coerce an LLM's arguments into keyword arguments.

        Args:
            args: The decoded JSON arguments object.

        Returns:
            Every parameter by name (defaults filled in), coerced to its annotated type:
            a pydantic model parameter arrives as a model instance, an ``Enum`` as a
            member, ``"5"`` for an ``int`` as ``5``.

        Raises:
            ToolArgumentsError: listing each missing, invalid or unexpected argument.
        """
        if not isinstance(args, Mapping):
            raise ToolArgumentsError(
                self._name,
                [ArgumentIssue("", "type", f"expected a JSON object, got {type(args).__name__}")],
            )
        try:
            validated = self._model.model_validate(dict(args))
        except pydantic.ValidationError as exc:
            issues = [_issue_from_pydantic(e) for e in exc.errors(include_url=False)]
            raise ToolArgumentsError(self._name, issues) from exc
        return {p.name: getattr(validated, p.field) for p in self._params}

    async def invoke(self, args: Mapping[str, Any] | None = None) -> Any:
        """Validate *args* and run the tool, within ``timeout`` if one is set.

        Sync functions run in a worker thread (``asyncio.to_thread``) so they cannot
        block the event loop. ``None`` means no arguments (some models send an empty
        string, which callers decode to None).

        Raises:
            ToolArgumentsError: the arguments are invalid; the function was not called.
            TimeoutError: the tool ran longer than ``timeout`` seconds. A sync tool's
                thread cannot be interrupted and finishes in the background.
        """
        if self._unbound_param is not None:
            raise TypeError(
                f"tool {self._name!r} takes {self._unbound_param!r}; invoke it through an "
                "instance (or class) so it is bound"
            )
        kwargs = self.validate_arguments({} if args is None else args)
        positional = [kwargs.pop(p.name) for p in self._params if p.positional_only]
        call = cast(Callable[..., Any], self._fn)
        async with asyncio.timeout(self._timeout):
            if self._is_async:
                return await call(*positional, **kwargs)
            result = await asyncio.to_thread(call, *positional, **kwargs)
            # A sync callable may still hand back an awaitable (e.g. a wrapper that
            # returns a coroutine); finish it on the loop.
            if inspect.isawaitable(result):
                return await result
            return result

    def __repr__(self) -> str:
        return f"<Tool {self._name!r}>"


# -- decorator -------------------------------------------------------------------------


@overload
def tool(fn: Callable[P, R], /) -> Tool[P, R]: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    idempotent: bool = False,
) -> Callable[[Callable[P, R]], Tool[P, R]]: ...


def tool(
    fn: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    idempotent: bool = False,
) -> Tool[P, R] | Callable[[Callable[P, R]], Tool[P, R]]:
    """Turn a function into a :class:`Tool`; usable as ``@tool`` or ``@tool(...)``.

    Args:
        fn: The function (when used bare).
        name: Tool name shown to the LLM; defaults to the function name.
        description: Tool description; defaults to the docstring's first paragraph.
        timeout: Seconds ``Tool.invoke`` lets the tool run; None for no limit.
        idempotent: Safe to run twice. When the tool-executor running a call dies, an
            idempotent call is retried on another executor; any other call returns an
            ``unavailable`` error (it may or may not have taken effect).

    Returns:
        The tool, or a decorator producing it when called with options only.

    Raises:
        ToolDefinitionError: the function cannot be described as a tool: ``*args`` or
            ``**kwargs``, a parameter without annotation or with a type that has no
            JSON schema, a docstring ``Args:`` entry naming no parameter, an invalid
            name or timeout.
    """
    if fn is not None:
        return Tool(fn, name=name, description=description, timeout=timeout, idempotent=idempotent)

    def decorate(f: Callable[P, R]) -> Tool[P, R]:
        return Tool(f, name=name, description=description, timeout=timeout, idempotent=idempotent)

    return decorate


# -- schema construction ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Spec:
    summary: str
    model: type[pydantic.BaseModel]
    params: tuple[_Param, ...]
    schema: dict[str, Any]
    method_param: str | None


def _build_spec(fn: Callable[..., Any], tool_name: str) -> _Spec:
    """Build the argument model and JSON schema of *fn*.

    Raises ToolDefinitionError for ``*args``/``**kwargs``, unannotated parameters,
    types without a JSON schema, and docstring ``Args:`` entries naming no parameter.
    """
    where = f"@tool {_qualname(fn)}"
    try:
        # eval_str resolves string annotations (``from __future__ import annotations``).
        sig = inspect.signature(fn, eval_str=True)
    except (NameError, SyntaxError, TypeError, ValueError) as exc:
        raise ToolDefinitionError(f"{where}: cannot read the signature: {exc}") from exc
    doc = parse_docstring(inspect.getdoc(fn))

    params = list(sig.parameters.values())
    method_param: str | None = None
    if (
        params
        and params[0].name in _METHOD_PARAMS
        and params[0].kind in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD)
    ):
        method_param = params.pop(0).name

    known = {p.name for p in sig.parameters.values()}
    unknown = sorted(set(doc.args) - known)
    if unknown:
        raise ToolDefinitionError(
            f"{where}: docstring Args: documents {', '.join(map(repr, unknown))} "
            "but the function has no such parameter"
        )

    fields: dict[str, Any] = {}
    specs: list[_Param] = []
    annotations: dict[str, Any] = {}
    for index, param in enumerate(params):
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            stars = "*" if param.kind is param.VAR_POSITIONAL else "**"
            raise ToolDefinitionError(
                f"{where}: parameter {stars}{param.name} is not supported; a tool takes a "
                "fixed set of named parameters"
            )
        if param.annotation is inspect.Parameter.empty:
            raise ToolDefinitionError(
                f"{where}: parameter {param.name!r} has no type annotation; tools need "
                "one on every parameter to describe it to the LLM"
            )
        annotation = param.annotation
        default: Any = param.default
        if isinstance(default, FieldInfo):
            # ``x: int = Field(5, ...)``: move it into the annotation so its default
            # and constraints merge with the alias/description we add below.
            annotation = Annotated[annotation, default]
            default = inspect.Parameter.empty

        field_kwargs: dict[str, Any] = {"alias": param.name}
        if default is not inspect.Parameter.empty:
            field_kwargs["default"] = default
        if not _has_field_description(annotation):
            desc = _annotated_description(annotation)
            if desc is None and param.name in doc.args:
                desc = doc.args[param.name].description or None
            if desc is not None:
                field_kwargs["description"] = desc

        # Model field names are synthetic and the real name is the alias: parameter
        # names such as ``model_config``, ``schema`` or ``_x`` would otherwise clash
        # with pydantic's own namespace.
        field_name = f"p{index}"
        fields[field_name] = (annotation, pydantic.Field(**field_kwargs))
        annotations[param.name] = annotation
        specs.append(_Param(param.name, field_name, param.kind is param.POSITIONAL_ONLY))

    try:
        model: type[pydantic.BaseModel] = pydantic.create_model(
            tool_name,
            __config__=pydantic.ConfigDict(extra="forbid"),
            **fields,
        )
        raw_schema = model.model_json_schema(schema_generator=_SchemaGenerator)
    except Exception as exc:
        _raise_for_culprit(where, annotations)
        raise ToolDefinitionError(
            f"{where}: cannot build a JSON schema for the parameters: {_first_line(exc)}"
        ) from exc

    return _Spec(
        summary=doc.summary,
        model=model,
        params=tuple(specs),
        schema=_finalise_schema(raw_schema),
        method_param=method_param,
    )


def _raise_for_culprit(where: str, annotations: Mapping[str, Any]) -> None:
    """Re-check each parameter alone so the error names the one that failed."""
    for name, annotation in annotations.items():
        try:
            pydantic.TypeAdapter(annotation).json_schema(schema_generator=_SchemaGenerator)
        except Exception as exc:
            raise ToolDefinitionError(
                f"{where}: parameter {name!r} has type {_type_name(annotation)}, which "
                f"cannot be described as JSON schema: {_first_line(exc)}"
            ) from exc


def _annotated_metadata(annotation: Any) -> tuple[Any, ...]:
    if get_origin(annotation) is Annotated:
        return tuple(annotation.__metadata__)
    return ()


def _annotated_description(annotation: Any) -> str | None:
    """``Annotated[x, "description"]``: the first plain string in the metadata."""
    for item in _annotated_metadata(annotation):
        if isinstance(item, str):
            return item
    return None


def _has_field_description(annotation: Any) -> bool:
    """``Annotated[x, Field(description=...)]`` already describes the parameter."""
    return any(
        isinstance(item, FieldInfo) and item.description is not None
        for item in _annotated_metadata(annotation)
    )


# JSON-schema keywords whose values are sub-schemas; everything else (``default``,
# ``enum``, ``const``, ``examples`` ...) is data and must not be rewritten, and the
# keys of ``properties`` are parameter names (a parameter may be called ``title``).
_SUBSCHEMA = frozenset(
    {
        "items",
        "additionalItems",
        "additionalProperties",
        "unevaluatedItems",
        "unevaluatedProperties",
        "contains",
        "propertyNames",
        "not",
        "if",
        "then",
        "else",
    }
)
_SUBSCHEMA_LIST = frozenset({"anyOf", "oneOf", "allOf", "prefixItems", "items"})
_SUBSCHEMA_MAP = frozenset({"properties", "patternProperties", "dependentSchemas", "$defs"})
_DEFS_PREFIX = "#/$defs/"


def _walk(node: Any, visit: Callable[[dict[str, Any]], dict[str, Any]]) -> Any:
    """Rebuild a schema bottom-up, applying *visit* to every (sub)schema object."""
    if not isinstance(node, dict):
        return node  # boolean schema
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _SUBSCHEMA_LIST and isinstance(value, list):
            out[key] = [_walk(v, visit) for v in value]
        elif key in _SUBSCHEMA:
            out[key] = _walk(value, visit)
        elif key in _SUBSCHEMA_MAP and isinstance(value, dict):
            out[key] = {k: _walk(v, visit) for k, v in value.items()}
        else:
            out[key] = value
    return visit(out)


def _refs(node: Any) -> set[str]:
    found: set[str] = set()

    def visit(schema: dict[str, Any]) -> dict[str, Any]:
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith(_DEFS_PREFIX):
            found.add(ref.removeprefix(_DEFS_PREFIX))
        return schema

    _walk(node, visit)
    return found


def _finalise_schema(raw: dict[str, Any]) -> dict[str, Any]:
    """Inline ``$defs`` where possible, drop ``title`` noise, normalise the top level.

    Many LLM providers handle ``$ref`` poorly, so definitions are inlined; only
    recursive ones (which cannot be inlined) stay in ``$defs``.
    """
    defs: dict[str, Any] = raw.pop("$defs", {})
    edges = {name: _refs(schema) for name, schema in defs.items()}

    def reaches(start: str, target: str) -> bool:
        seen: set[str] = set()
        stack = list(edges.get(start, ()))
        while stack:
            current = stack.pop()
            if current == target:
                return True
            if current not in seen:
                seen.add(current)
                stack.extend(edges.get(current, ()))
        return False

    recursive = {name for name in defs if reaches(name, name)}
    resolved: dict[str, dict[str, Any]] = {}

    def inline(schema: dict[str, Any]) -> dict[str, Any]:
        ref = schema.get("$ref")
        if not (isinstance(ref, str) and ref.startswith(_DEFS_PREFIX)):
            return schema
        target = ref.removeprefix(_DEFS_PREFIX)
        if target in recursive or target not in defs:
            return schema
        if target not in resolved:
            resolved[target] = _walk(defs[target], inline)
        # Keywords next to the $ref (the parameter's description, default) win over
        # the referenced definition's own.
        siblings = {k: v for k, v in schema.items() if k != "$ref"}
        return {**copy.deepcopy(resolved[target]), **siblings}

    def clean(schema: dict[str, Any]) -> dict[str, Any]:
        # ``title`` only repeats names; ``discriminator`` is an OpenAPI keyword whose
        # mapping would point at inlined (removed) definitions.
        return {k: v for k, v in schema.items() if k not in ("title", "discriminator")}

    body = _walk(_walk(raw, inline), clean)
    kept_defs = {name: _walk(_walk(defs[name], inline), clean) for name in sorted(recursive)}

    schema: dict[str, Any] = {"type": "object", "properties": body.get("properties", {})}
    if body.get("required"):
        schema["required"] = body["required"]
    schema["additionalProperties"] = False
    if kept_defs:
        schema["$defs"] = kept_defs
    return schema


# -- helpers ---------------------------------------------------------------------------


def _issue_from_pydantic(error: Any) -> ArgumentIssue:
    field = ""
    for part in error.get("loc", ()):
        if isinstance(part, int):
            field += f"[{part}]"
        else:
            field += f".{part}" if field else str(part)
    kind = str(error.get("type", "invalid"))
    if kind == "missing":
        return ArgumentIssue(field, "missing", "missing required argument")
    if kind == "extra_forbidden":
        return ArgumentIssue(field, "unexpected", "unexpected argument")
    got = repr(error.get("input"))
    if len(got) > 80:
        got = got[:77] + "..."
    return ArgumentIssue(field, kind, f"{error.get('msg', 'invalid value')} (got {got})")


def _is_async_callable(fn: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    # Callable objects with ``async def __call__``.
    return not inspect.isroutine(fn) and inspect.iscoroutinefunction(type(fn).__call__)


def _mark_coroutine_function(obj: object) -> None:
    """Make ``inspect``/``asyncio.iscoroutinefunction`` recognise an async tool."""
    mark = getattr(inspect, "markcoroutinefunction", None)  # Python >= 3.12
    if mark is not None:
        mark(obj)
    marker = getattr(asyncio.coroutines, "_is_coroutine", None)  # asyncio on 3.11
    if marker is not None:
        obj._is_coroutine = marker  # type: ignore[attr-defined]


def _qualname(fn: object) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    return str(name) if name else repr(fn)


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__qualname__
    return repr(annotation)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
