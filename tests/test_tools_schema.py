"""Schemas derived from typed functions and their docstrings."""

import enum
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel

from fcsft.errors import UserError
from fcsft.tools.docstrings import parse_docstring
from fcsft.tools.schema import function_spec, type_schema


class Unit(enum.Enum):
    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"


def forecast(
    city: str,
    days: int = 3,
    unit: Literal["c", "f"] = "c",
    hourly: bool = False,
    tags: list[str] | None = None,
    weights: dict[str, float] | None = None,
    scale: Unit = Unit.CELSIUS,
    threshold: float = 0.5,
) -> dict:
    """Forecast the weather for a city.

    Uses the national service when it can,
    and a model otherwise.

    Args:
        city (str): The city name, e.g. "Lyon".
        days: How many days,
            counted from today.
        unit: Temperature unit.

    Returns:
        The forecast.
    """
    return {}


def test_types_defaults_and_required():
    spec = function_spec(forecast)
    props = spec.parameters["properties"]
    assert spec.name == "forecast"
    assert spec.required == ["city"]
    assert props["city"] == {"type": "string", "description": 'The city name, e.g. "Lyon".'}
    assert props["days"]["type"] == "integer" and props["days"]["default"] == 3
    assert props["hourly"] == {"type": "boolean", "default": False}
    assert props["threshold"] == {"type": "number", "default": 0.5}
    assert props["tags"]["anyOf"] == [
        {"type": "array", "items": {"type": "string"}},
        {"type": "null"},
    ]
    assert props["weights"]["anyOf"][0] == {
        "type": "object",
        "additionalProperties": {"type": "number"},
    }
    assert spec.parameters["additionalProperties"] is False


def test_literal_and_enum_become_enums_with_a_type():
    props = function_spec(forecast).parameters["properties"]
    assert props["unit"]["enum"] == ["c", "f"] and props["unit"]["type"] == "string"
    assert props["scale"] == {
        "type": "string",
        "enum": ["celsius", "fahrenheit"],
        "default": "celsius",
    }
    assert type_schema(Literal[1, 2]) == {"type": "integer", "enum": [1, 2]}
    assert type_schema(Literal["a", 1]) == {"enum": ["a", 1]}


def test_docstring_gives_description_and_parameter_texts():
    spec = function_spec(forecast)
    assert spec.description == (
        "Forecast the weather for a city.\n\n"
        "Uses the national service when it can, and a model otherwise."
    )
    props = spec.parameters["properties"]
    assert props["days"]["description"] == "How many days, counted from today."
    assert props["unit"]["description"] == "Temperature unit."
    assert "description" not in props["hourly"]


def test_rest_docstring():
    def lookup(order_id: str, verbose: bool = False) -> str:
        """Find an order.

        :param order_id: The order number,
            as printed on the invoice.
        :param bool verbose: Include line items.
        :returns: the order
        """
        return ""

    spec = function_spec(lookup)
    assert spec.description == "Find an order."
    assert spec.parameters["properties"]["order_id"]["description"] == (
        "The order number, as printed on the invoice."
    )
    assert spec.parameters["properties"]["verbose"]["description"] == "Include line items."


def test_numpy_docstring():
    def convert(amount: float, to: str = "EUR") -> float:
        """Convert an amount between currencies.

        Uses the day's reference rate.

        Parameters
        ----------
        amount : float
            How much to convert,
            in the source currency.
        to : str, optional
            Target currency code.

        Returns
        -------
        float
            The converted amount.
        """
        return amount

    spec = function_spec(convert)
    assert spec.description == (
        "Convert an amount between currencies.\n\nUses the day's reference rate."
    )
    props = spec.parameters["properties"]
    assert props["amount"]["description"] == "How much to convert, in the source currency."
    assert props["to"]["description"] == "Target currency code."


def test_docstring_parser_ignores_other_sections():
    doc = parse_docstring(
        """Summary.

        Args:
            a: First.
            b (int, optional): Second
                and more.

        Raises:
            ValueError: when bad.
        """
    )
    assert doc.params == {"a": "First.", "b": "Second and more."}
    assert doc.description == "Summary."


def test_nested_and_composite_types():
    assert type_schema(list[dict[str, int]]) == {
        "type": "array",
        "items": {"type": "object", "additionalProperties": {"type": "integer"}},
    }
    assert type_schema(tuple[int, str]) == {
        "type": "array",
        "prefixItems": [{"type": "integer"}, {"type": "string"}],
        "minItems": 2,
        "maxItems": 2,
    }
    assert type_schema(set[str]) == {
        "type": "array",
        "items": {"type": "string"},
        "uniqueItems": True,
    }
    assert type_schema(int | str) == {"type": ["integer", "string"]}
    assert type_schema(str | None) == {"type": ["string", "null"]}
    assert type_schema(Any) == {}
    assert type_schema(Annotated[str, "An ISO date."]) == {
        "type": "string",
        "description": "An ISO date.",
    }


class Address(BaseModel):
    street: str
    zip_code: str | None = None


def test_pydantic_model_parameters_are_described_with_definitions():
    def ship(to: Address, items: list[Address]) -> str:
        return ""

    address = {
        "type": "object",
        "properties": {
            "street": {"type": "string"},
            "zip_code": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
        },
        "required": ["street"],
    }
    params = function_spec(ship).parameters
    assert params["properties"]["to"] == address
    assert params["properties"]["items"] == {"type": "array", "items": address}


def test_nested_models_keep_their_definitions_at_the_top():
    class Order(BaseModel):
        lines: list[Address]
        title: str  # a field named like the keyword pydantic adds, and must stay

    def place(order: Order) -> str:
        return ""

    params = function_spec(place).parameters
    assert params["properties"]["order"]["properties"]["lines"]["items"] == {
        "$ref": "#/$defs/Address"
    }
    assert params["properties"]["order"]["properties"]["title"] == {"type": "string"}
    assert params["$defs"]["Address"]["required"] == ["street"]


def test_kwargs_open_the_schema_and_args_are_refused():
    def open_ended(query: str, **filters: Any) -> str:
        return ""

    assert function_spec(open_ended).parameters["additionalProperties"] is True

    def positional(*values: int) -> int:
        return 0

    with pytest.raises(UserError, match=r"\*values"):
        function_spec(positional)


def test_string_annotations_resolve():
    namespace: dict[str, Any] = {}
    exec(
        "from __future__ import annotations\n"
        "def f(x: list[int], y: 'str | None' = None) -> int:\n    return 0\n",
        namespace,
    )
    props = function_spec(namespace["f"]).parameters["properties"]
    assert props["x"] == {"type": "array", "items": {"type": "integer"}}
    assert props["y"]["type"] == ["string", "null"]


def test_a_type_with_no_json_form_is_a_user_error():
    def bad(callback: type) -> None:
        return None

    with pytest.raises(UserError, match="callback"):
        function_spec(bad)
