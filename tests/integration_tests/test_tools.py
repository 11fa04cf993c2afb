"""WebsimImageTool against the local emulator: the exact wire request, results with and
without a ToolCall, every failure as an agent-readable message, and LangGraph's ToolNode
running two parallel calls."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, ToolCall, ToolMessage
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode

from langchain_websim import WebsimImageTool
from langchain_websim.testing import WebsimEmulator
from tests.png import read_png

IMAGE_ID = re.compile(r"^[a-z0-9]{7}_[a-z0-9]{12}$")
CHALLENGE = (
    "<!DOCTYPE html><html><head><title>Just a moment...</title></head>"
    "<body><script src='/cdn-cgi/challenge-platform/h/b/orchestrate/chl_page'></script>"
    "</body></html>"
)

ToolFactory = Callable[..., WebsimImageTool]


@pytest.fixture
def make_tool(emulator: WebsimEmulator) -> Iterator[ToolFactory]:
    """Tools aimed at this test's emulator; the clients they resolve are closed after."""
    made: list[WebsimImageTool] = []

    def factory(**kwargs: Any) -> WebsimImageTool:
        kwargs.setdefault("base_url", emulator.base_url)
        kwargs.setdefault("retry_base_delay", 0.0)
        tool = WebsimImageTool(**kwargs)
        made.append(tool)
        return tool

    yield factory
    for tool in made:
        if tool._shared_client is not None:
            tool._shared_client.close()


def tool_call(args: dict[str, Any], call_id: str = "call_1") -> ToolCall:
    return ToolCall(name="websim_image_generation", args=args, id=call_id, type="tool_call")


# --------------------------------------------------------------------------- the wire


def test_the_wire_request_is_exactly_the_contract(
    make_tool: ToolFactory, emulator: WebsimEmulator
) -> None:
    url = make_tool().invoke({"prompt": "  a lighthouse at dusk \n", "aspect_ratio": "16:9"})
    (request,) = emulator.requests_for("image")
    assert request.violations == []
    assert request.method == "POST"
    assert request.path == "/api/v1/inference/run_image_generation"
    assert request.headers["content-type"] == "text/plain;charset=UTF-8"
    assert request.headers["referer"] == (
        emulator.base_url + "/@ISWEARIAMNOTADDICTEDTOPILLOW/ai-image-prompt-generator"
    )
    body = json.loads(request.raw)
    assert list(body) == ["project_id", "prompt", "aspect_ratio"]
    assert IMAGE_ID.match(body["project_id"])
    assert body["prompt"] == "a lighthouse at dusk"
    assert body["aspect_ratio"] == "16:9"
    assert url.startswith(emulator.base_url + "/images/") and url.endswith(".png")


def test_defaults_and_a_fixed_project_id_reach_the_wire(
    make_tool: ToolFactory, emulator: WebsimEmulator
) -> None:
    make_tool().invoke({"prompt": "a square"})
    make_tool(default_aspect_ratio="9:16", project_id="poster1_abcdefghijkl").invoke(
        {"prompt": "a poster"}
    )
    first, second = (r.body for r in emulator.requests_for("image"))
    assert first["aspect_ratio"] == "1:1" and IMAGE_ID.match(first["project_id"])
    assert second == {
        "project_id": "poster1_abcdefghijkl",
        "prompt": "a poster",
        "aspect_ratio": "9:16",
    }


# --------------------------------------------------------------------------- results


def test_plain_args_return_the_url_and_a_tool_call_returns_a_message(
    make_tool: ToolFactory, emulator: WebsimEmulator
) -> None:
    tool = make_tool()
    url = tool.invoke({"prompt": "a red fox in snow"})
    message = tool.invoke(tool_call({"prompt": "a red fox in snow", "aspect_ratio": "9:16"}))
    assert isinstance(url, str) and url.startswith(emulator.base_url + "/images/")
    assert isinstance(message, ToolMessage)
    assert (message.status, message.tool_call_id, message.name) == (
        "success",
        "call_1",
        "websim_image_generation",
    )
    sent = emulator.requests_for("image")[1].body
    assert message.content == message.artifact["url"]
    assert message.artifact == {
        "url": message.content,
        "prompt": "a red fox in snow",
        "aspect_ratio": "9:16",
        "model": "flux",
        "project_id": sent["project_id"],
    }


async def test_async_plain_args_and_tool_call(
    make_tool: ToolFactory, emulator: WebsimEmulator
) -> None:
    tool = make_tool()
    url = await tool.ainvoke({"prompt": "a red fox in snow"})
    message = await tool.ainvoke(tool_call({"prompt": "a blue fox"}))
    assert url.startswith(emulator.base_url + "/images/")
    assert message.artifact["prompt"] == "a blue fox"
    assert message.artifact["project_id"] == emulator.requests_for("image")[1].body["project_id"]
    assert message.content != url  # a different prompt is a different image


# --------------------------------------------------------------------------- failures

# (script for every image request, tool settings, expected message, requests expected)
FAILURES: dict[str, tuple[dict[str, Any], dict[str, Any], str, int]] = {
    "rate-limited": (
        {"status": 429, "json": {"error": "slow down"}, "headers": {"Retry-After": "12"}},
        {"retry_max_delay": 1.0},
        "Image generation failed: rate limited; retry after 12 s.",
        1,
    ),
    "blocked": (
        {"status": 403, "body": CHALLENGE, "content_type": "text/html; charset=UTF-8"},
        {},
        "Image generation failed: blocked by a challenge page (HTTP 403)",
        1,
    ),
    "timed-out": (
        {"delay": 30.0},
        {"timeout": 0.3, "max_retries": 2},
        "Image generation failed: timed out after 3 attempts of 0.3 s each; try again later.",
        3,
    ),
    "dropped": (
        {"drop": True},
        {"max_retries": 1},
        "Image generation failed: could not reach the image service after 2 attempts",
        2,
    ),
    "relative-url": (
        {"json": {"url": "/relative.png"}},
        {},
        "the image service sent an unusable answer ('url' is not an absolute http(s) URL",
        1,
    ),
    "server-error": (
        {"status": 500, "json": {"error": "boom"}},
        {"max_retries": 1},
        "Image generation failed: the image service failed with HTTP 500 after 2 attempts",
        2,
    ),
}


@pytest.mark.parametrize("case", FAILURES)
async def test_failures_reach_the_agent_as_error_messages(
    case: str, make_tool: ToolFactory, emulator: WebsimEmulator
) -> None:
    script, settings, expected, attempts = FAILURES[case]
    emulator.enqueue("image", times=None, **script)
    message = await make_tool(**settings).ainvoke(tool_call({"prompt": "a fox"}))
    assert isinstance(message, ToolMessage)
    assert message.status == "error"
    assert expected in message.content
    assert len(emulator.requests_for("image")) == attempts


def test_a_retried_failure_still_returns_the_image(
    make_tool: ToolFactory, emulator: WebsimEmulator
) -> None:
    emulator.enqueue("image", status=503, json={"error": "busy"})
    message = make_tool(max_retries=1).invoke(tool_call({"prompt": "a fox"}))
    assert message.status == "success"
    assert message.content.startswith(emulator.base_url + "/images/")
    assert [r.status for r in emulator.requests_for("image")] == [503, 200]


# --------------------------------------------------------------------------- LangGraph


def tool_graph(tool: WebsimImageTool) -> CompiledStateGraph[Any, Any, Any, Any]:
    """The tool step of an agent: a ToolNode answering the last AIMessage's tool calls."""
    graph = StateGraph(MessagesState)
    graph.add_node("tools", ToolNode([tool]))
    graph.add_edge(START, "tools")
    graph.add_edge("tools", END)
    return graph.compile()


def _two_calls() -> AIMessage:
    return AIMessage(
        content="",
        tool_calls=[
            tool_call({"prompt": "a lighthouse at dusk"}, "call_a"),
            tool_call({"prompt": "a harbour at dawn", "aspect_ratio": "16:9"}, "call_b"),
        ],
    )


def _check_two_results(result: dict[str, Any], emulator: WebsimEmulator) -> None:
    ai, *messages = result["messages"]
    assert isinstance(ai, AIMessage)
    assert [m.tool_call_id for m in messages] == ["call_a", "call_b"]
    for message in messages:
        assert isinstance(message, ToolMessage) and message.status == "success"
        assert message.content.startswith(emulator.base_url + "/images/")
        assert message.artifact["url"] == message.content
    assert messages[0].content != messages[1].content
    assert [m.artifact["aspect_ratio"] for m in messages] == ["1:1", "16:9"]
    requests = emulator.requests_for("image")
    assert len(requests) == 2
    assert {r.body["prompt"] for r in requests} == {"a lighthouse at dusk", "a harbour at dawn"}
    assert {m.artifact["project_id"] for m in messages} == {r.body["project_id"] for r in requests}


def test_tool_node_runs_two_parallel_calls(
    make_tool: ToolFactory, emulator: WebsimEmulator
) -> None:
    graph = tool_graph(make_tool())
    _check_two_results(graph.invoke({"messages": [_two_calls()]}), emulator)


async def test_tool_node_runs_two_parallel_calls_async(
    make_tool: ToolFactory, emulator: WebsimEmulator
) -> None:
    graph = tool_graph(make_tool())
    _check_two_results(await graph.ainvoke({"messages": [_two_calls()]}), emulator)


def test_tool_node_reports_one_bad_call_and_runs_the_other(
    make_tool: ToolFactory, emulator: WebsimEmulator
) -> None:
    ai = AIMessage(
        content="",
        tool_calls=[
            tool_call({"prompt": "a fox", "aspect_ratio": "wide"}, "bad"),
            tool_call({"prompt": "a fox"}, "good"),
        ],
    )
    _, bad, good = tool_graph(make_tool()).invoke({"messages": [ai]})["messages"]
    assert bad.status == "error"
    assert bad.content.startswith("Invalid arguments: aspect_ratio must look like 'W:H'")
    assert good.status == "success" and good.artifact["prompt"] == "a fox"
    assert len(emulator.requests_for("image")) == 1


# --------------------------------------------------------------------------- the docs page

DOC = Path(__file__).resolve().parents[2] / "docs" / "image_tool.md"


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", markdown, flags=re.DOTALL | re.MULTILINE)


def test_docs_page_runs_against_the_emulator(
    emulator: WebsimEmulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    text = DOC.read_text(encoding="utf-8")
    for section in ("Overview", "Setup", "Instantiation", "Invocation", "API reference"):
        assert f"\n## {section}\n" in text
    assert "\n## Use within an agent\n" in text
    blocks = python_blocks(text)
    assert len(blocks) >= 8
    monkeypatch.setenv("WEBSIM_BASE_URL", emulator.base_url)
    monkeypatch.chdir(tmp_path)  # the page saves images in the current directory
    namespace: dict[str, Any] = {"__name__": "image_tool_docs"}
    try:
        for number, block in enumerate(blocks, 1):
            exec(compile(block, f"{DOC.name} python block {number}", "exec"), namespace)
    finally:
        for value in namespace.values():
            if isinstance(value, WebsimImageTool) and value._shared_client is not None:
                value._shared_client.close()
    out = capsys.readouterr().out
    requests = emulator.requests_for("image")
    # direct, ToolCall, async, return_image, the two with options, the client's save, strict,
    # and the agent's two calls; the bad call sends nothing
    assert len(requests) == 10
    assert "['text', 'image'] " + emulator.base_url + "/images/" in out
    assert all(r.status == 200 and r.violations == [] for r in requests)
    sticker, winter, again = (r.body for r in requests[4:7])
    assert (sticker["seed"], sticker["width"], sticker["transparent"]) == (42, 512, True)
    assert winter["image_inputs"] == [{"url": namespace["sticker"].artifact["url"]}]
    assert "width" not in again and again["seed"] == 42
    assert "'seed': 42, 'width': 512, 'height': 512, 'transparent': True}" in out
    fox = read_png((tmp_path / "fox.png").read_bytes())
    assert (fox.width, fox.height, fox.channels) == (512, 512, 4)
    assert read_png((tmp_path / "fox-again.png").read_bytes()).channels == 4
    assert "Invalid arguments: prompt is empty" in out
    assert "call_a success " + emulator.base_url + "/images/" in out
    assert "Here are your pictures: " + emulator.base_url + "/images/" in out
    assert out.count(emulator.base_url + "/images/") >= 8
