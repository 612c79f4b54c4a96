"""BFCL's own prompting form, for asking a model that was never taught fcsft's protocol.

A base model asked only in the tagged protocol fcsft trains could score zero for not knowing
the tags; asked the way BFCL asks models without function calling, it shows what it can do
on its own. Two forms, each a protocol of the agent loop (`fcsft.agent`) registered here:

    bfcl          the system prompt BFCL's prompting handlers give (their default format,
                  `ret_fmt=python&tool_call_tag=False&func_doc_fmt=json&prompt_fmt=plaintext&
                  style=classic`, its text read from the installed bfcl-eval): what to do, the
                  call format `[func_name1(params_name1=params_value1, ...), func_name2(params)]`
                  and the functions as indented JSON, put before the item's own system prompt
                  as BFCL puts it. A BFCL item shows its functions as BFCL wrote them (dotted
                  names, BFCL's type names, its Python 3 note: the item's `bfcl_functions`);
                  any other item shows its tools' function objects.
    bfcl-fewshot  the same, with worked examples in the system prompt before the function list
                  (each its own functions, question and answer): one call, one pair of
                  parallel calls and one decline, drawn once from BFCL's live categories by a
                  fixed keyed hash. Those categories are never evaluated in this form, and a
                  candidate whose question equals or nearly equals a question of any scored
                  non-live category is passed over.

The reply is read by `parse_calls`, leniently: the first of a Python list of calls anywhere in
the text (`[get_weather(city='Paris')]`), JSON calls anywhere (`{"name": ..., "arguments":
...}`, BFCL's own `{"function": ..., "parameters": ...}`, or a list of either), or bare Python
calls to an offered function (`get_weather(city="Paris")`), in that order. Names are read with
"." as "_" (as fcsft shows them), positional arguments take the offered function's parameter
names in order, and a value that is not a literal is kept as its source text. A reply with
none of these calls nothing; one that writes an offered name and "(" but no readable call is a
parse failure.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fcsft.agent import Protocol, register_protocol, reply_text
from fcsft.benchmarks import bfcl
from fcsft.errors import UserError
from fcsft.formats import FormatError
from fcsft.models.base import ChatRequest
from fcsft.records import call_id
from fcsft.text.near import NearTexts

SHOT_SOURCES = {"live_simple": 1, "live_parallel": 2, "live_irrelevance": 0}
"""Where the few-shot examples come from (one each, making this many calls); never evaluated
with bfcl-fewshot."""
SHOT_SEED = "fcsft-bfcl-shots-1"
DECLINE = "None of the functions can be used for this question."
"""The answer of the few-shot decline example (BFCL asks the model to point it out)."""
FORMAT = {
    "ret_fmt": "python",
    "tool_call_tag": "False",
    "func_doc_fmt": "json",
    "prompt_fmt": "plaintext",
    "style": "classic",
}
"""The only BFCL prompt format rendered here: the default of the bfcl-eval it was written for."""
_CALL_START = re.compile(r"([A-Za-z_][\w.]*)\s*\(")


def _prompt_constants() -> Any:
    try:
        from bfcl_eval.constants import default_prompts
    except ImportError as exc:
        raise UserError(
            f"the bfcl prompt form needs the bfcl-eval package: {bfcl.INSTALL}"
        ) from exc
    installed = dict(
        p.split("=", 1) for p in default_prompts.DEFAULT_SYSTEM_PROMPT_FORMAT.split("&")
    )
    if installed != FORMAT:
        raise UserError(
            f"bfcl-eval's default prompt format is now {default_prompts.DEFAULT_SYSTEM_PROMPT_FORMAT}; "
            f"fcsft renders {'&'.join(f'{k}={v}' for k, v in FORMAT.items())} only: "
            "install the bfcl-eval fcsft names or update fcsft"
        )
    return default_prompts


def system_prompt(functions: list[dict[str, Any]], examples: str = "") -> str:
    """BFCL's default system prompt for these functions, with `examples` before the list."""
    prompts = _prompt_constants()
    style = prompts.PROMPT_STYLE_TEMPLATES[FORMAT["style"]]
    call_format = style["tool_call_no_tag"].format(
        output_format=prompts.OUTPUT_FORMAT_MAPPING[FORMAT["ret_fmt"]],
        param_types=prompts.PARAM_TYPE_MAPPING[FORMAT["ret_fmt"]],
    )
    if examples:
        call_format += "\n\n" + examples
    return prompts.PROMPT_TEMPLATE_MAPPING[FORMAT["prompt_fmt"]].format(
        persona=style["persona"],
        task=style["task"],
        tool_call_format=call_format,
        multiturn_behavior=style["multiturn_behavior"],
        available_tools=style["available_tools"].format(
            format=FORMAT["func_doc_fmt"], functions=json.dumps(functions, indent=4)
        ),
    )


def python_calls(calls: Iterable[dict[str, Any]]) -> str:
    """Calls written the way BFCL asks for them: `[f(a=1, b='x'), g()]`."""
    written = [
        f"{call['name']}({', '.join(f'{k}={v!r}' for k, v in call['arguments'].items())})"
        for call in calls
    ]
    return f"[{', '.join(written)}]"


def _key(ident: str) -> str:
    return hashlib.sha256(f"{SHOT_SEED}:{ident}".encode()).hexdigest()


@functools.cache
def shots(folder: Path) -> tuple[dict[str, Any], ...]:
    """The few-shot examples: `{"id", "functions", "question", "answer"}`, one per source."""
    scored = NearTexts(0.7)
    for category in bfcl.SCORED:
        if not category.startswith("live_"):
            for ref in bfcl.bfcl_references([category], folder=folder):
                for k, question in enumerate(ref["questions"]):
                    scored.add(f"{ref['id']}:{k}", question)
    chosen = []
    for category, wanted in SHOT_SOURCES.items():
        items = bfcl.load_bfcl(category, folder=folder)
        for item in sorted(items, key=lambda item: _key(item["id"])):
            question = item["messages"][0]["content"] if len(item["messages"]) == 1 else ""
            calls = item["gold"][0] if item["gold"] else []
            if not (
                question.isascii()
                and 20 <= len(question) <= 160
                and item["bfcl_functions"]
                and len(json.dumps(item["bfcl_functions"])) <= 900
                and len(calls) == wanted
                and scored.match(question) is None
            ):
                continue
            names = {bfcl.tool_name(f["name"]): f["name"] for f in item["bfcl_functions"]}
            dotted = [{"name": names[c["name"]], "arguments": c["arguments"]} for c in calls]
            chosen.append(
                {
                    "id": item["id"],
                    "functions": item["bfcl_functions"],
                    "question": question,
                    "answer": python_calls(dotted) if calls else DECLINE,
                }
            )
            break
    return tuple(chosen)


def examples_text(examples: Iterable[dict[str, Any]]) -> str:
    blocks = [
        f"Functions: {json.dumps(shot['functions'])}\nQuestion: {shot['question']}\n"
        f"Answer: {shot['answer']}"
        for shot in examples
    ]
    return "Examples, each with the functions it was given:\n\n" + "\n\n".join(blocks)


def check_shots_apart(categories: Iterable[str]) -> None:
    """Few-shot examples never come from a category being evaluated."""
    overlap = sorted(set(categories) & set(SHOT_SOURCES))
    if overlap:
        raise UserError(
            f"--protocol bfcl-fewshot draws its examples from {', '.join(SHOT_SOURCES)}; "
            f"evaluate {', '.join(overlap)} with --protocol bfcl instead"
        )


def _text_history(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A replayed conversation as plain text: calls written as BFCL asks for them, tool
    results as a user message the way BFCL's prompting handlers pass them back."""
    names: dict[str, str] = {}
    out = []
    for message in messages:
        if message.get("role") == "assistant" and message.get("tool_calls"):
            calls = []
            for call in message["tool_calls"]:
                function = call.get("function", call)
                arguments = function.get("arguments") or {}
                if isinstance(arguments, str):
                    arguments = json.loads(arguments or "{}")
                names[call.get("id", "")] = function["name"]
                calls.append({"name": function["name"], "arguments": arguments})
            out.append({"role": "assistant", "content": python_calls(calls)})
        elif message.get("role") == "tool":
            result = {
                "role": "tool",
                "name": names.get(message.get("tool_call_id", ""), ""),
                "content": message.get("content", ""),
            }
            out.append({"role": "user", "content": repr([result])})
        else:
            out.append({"role": message["role"], "content": message.get("content") or ""})
    return out


def bfcl_messages(
    messages: list[dict[str, Any]], functions: list[dict[str, Any]], fewshot: bool = False
) -> list[dict[str, Any]]:
    """The messages of one request in BFCL's prompting form (see the module docstring)."""
    examples = examples_text(shots(bfcl.data_dir())) if fewshot else ""
    prompt = system_prompt(functions, examples)
    history = _text_history(messages)
    if history and history[0]["role"] == "system":
        return [{"role": "system", "content": f"{prompt}\n\n{history[0]['content']}"}, *history[1:]]
    return [{"role": "system", "content": prompt}, *history]


def function_docs(
    tools: list[dict[str, Any]], bfcl_functions: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """What the prompt lists: BFCL's own docs of a BFCL item, else the tools' functions."""
    if bfcl_functions:
        return bfcl_functions
    return [tool.get("function", tool) for tool in tools]


@dataclass(frozen=True)
class BfclProtocol(Protocol):
    """The agent loop's protocol for one form: plain messages in BFCL's prompting form, no
    native tools, calls read from the reply text by `parse_calls`."""

    fewshot: bool
    functions: list[dict[str, Any]] | None = None
    """A BFCL item's own function docs, shown instead of its tools' function objects."""

    def request(self, settings, messages, tools):
        docs = function_docs(tools, self.functions)
        return ChatRequest(
            model=settings.model_name,
            messages=bfcl_messages(messages, docs, fewshot=self.fewshot),
            temperature=settings.temperature,
            max_tokens=settings.max_tokens,
            sample=settings.sample,
        )

    def read(self, response, tools, calls_made):
        text = reply_text(response)
        calls, error = parse_calls(text, tools)
        if error:
            raise FormatError(error)
        message: dict[str, Any] = {"role": "assistant", "content": None if calls else text}
        if calls:
            message["tool_calls"] = [
                {
                    "id": call_id(calls_made + k),
                    "type": "function",
                    "function": {"name": call["name"], "arguments": call["arguments"]},
                }
                for k, call in enumerate(calls)
            ]
        return message


register_protocol("bfcl")(lambda functions: BfclProtocol(fewshot=False, functions=functions))
register_protocol("bfcl-fewshot")(lambda functions: BfclProtocol(fewshot=True, functions=functions))


def _parameters(tools: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Each offered function's parameter names in order, by name as fcsft shows it."""
    out = {}
    for tool in tools:
        function = tool.get("function", tool)
        properties = (function.get("parameters") or {}).get("properties") or {}
        out[bfcl.tool_name(function["name"])] = list(properties)
    return out


def _value(node: ast.expr) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return node.id if isinstance(node, ast.Name) else ast.unparse(node)


def _call(node: ast.Call, offered: dict[str, list[str]]) -> dict[str, Any]:
    name = bfcl.tool_name(ast.unparse(node.func))
    arguments = {}
    order = offered.get(name, [])
    for k, arg in enumerate(node.args):
        if k >= len(order):
            raise ValueError(f"{name}: positional argument {k + 1} has no parameter to go to")
        arguments[order[k]] = _value(arg)
    for keyword in node.keywords:
        if keyword.arg is None:
            raise ValueError(f"{name}: **arguments cannot be read")
        arguments[keyword.arg] = _value(keyword.value)
    return {"name": name, "arguments": arguments}


def _is_call(node: ast.expr) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name | ast.Attribute)


def _python_list(text: str, offered: dict[str, list[str]]) -> list[dict[str, Any]] | None:
    """The first `[call, ...]` in the text."""
    closes = [j for j, ch in enumerate(text) if ch == "]"]
    for start in (i for i, ch in enumerate(text) if ch == "["):
        for end in (j for j in closes if j > start):
            try:
                node = ast.parse(text[start : end + 1], mode="eval").body
            except (SyntaxError, ValueError):
                continue
            if isinstance(node, ast.List) and node.elts and all(map(_is_call, node.elts)):
                return [_call(element, offered) for element in node.elts]
    return None


def _json_call(obj: Any) -> dict[str, Any] | None:
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("function"), dict):  # OpenAI's {"function": {"name", "arguments"}}
        obj = obj["function"]
    name = obj.get("name", obj.get("function"))
    arguments = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            return None
    if not isinstance(name, str) or not isinstance(arguments, dict):
        return None
    return {"name": bfcl.tool_name(name), "arguments": arguments}


def _json_calls(text: str) -> list[dict[str, Any]] | None:
    """Every JSON call in the text, or None when there is none."""
    decoder = json.JSONDecoder()
    calls: list[dict[str, Any]] = []
    position = 0
    while position < len(text):
        starts = [i for i in (text.find("{", position), text.find("[", position)) if i >= 0]
        if not starts:
            break
        start = min(starts)
        try:
            obj, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            position = start + 1
            continue
        found = [_json_call(o) for o in (obj if isinstance(obj, list) else [obj])]
        if found and all(found):
            calls.extend(c for c in found if c)
        position = end
    return calls or None


def _bare_calls(text: str, offered: dict[str, list[str]]) -> list[dict[str, Any]] | None:
    """Python calls to offered functions anywhere in the text."""
    calls = []
    position = 0
    for match in _CALL_START.finditer(text):
        if match.start() < position or bfcl.tool_name(match.group(1)) not in offered:
            continue
        for end in (j for j, ch in enumerate(text) if ch == ")" and j > match.start()):
            try:
                node = ast.parse(text[match.start() : end + 1], mode="eval").body
            except (SyntaxError, ValueError):
                continue
            if _is_call(node):
                calls.append(_call(node, offered))
                position = end + 1
                break
    return calls or None


def parse_calls(text: str, tools: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str | None]:
    """(calls, parse error) of a reply in BFCL's form, read leniently (see the module
    docstring); ([], None) when it calls nothing."""
    offered = _parameters(tools)
    try:
        for reader in (
            lambda: _python_list(text, offered),
            lambda: _json_calls(text),
            lambda: _bare_calls(text, offered),
        ):
            calls = reader()
            if calls:
                return calls, None
    except ValueError as exc:
        return [], str(exc)
    for match in _CALL_START.finditer(text):
        if bfcl.tool_name(match.group(1)) in offered:
            return [], f"a call to {match.group(1)} that cannot be read"
    return [], None
