"""Agents end to end against the emulator: ChatWebsim as the model, WebsimImageTool as a tool.

The emulator is scripted with the replies a real model writes: first a tool call wrapped in
prose and a fenced JSON block, then a final answer once the tool result is back.  Each test
checks what reached the image endpoint, the ToolMessage the agent built from the tool's
answer, what the model was sent on its second turn, and the final answer.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langgraph.prebuilt import create_react_agent
from langgraph.warnings import LangGraphDeprecatedSinceV10

from langchain_websim import ChatWebsim, WebsimClient, WebsimImageTool
from langchain_websim.testing import WebsimEmulator, agent_responder

PROMPT = "a lighthouse at dusk, oil painting"
CALL_REPLY = (
    "Sure, I'll draw that for you.\n"
    "```json\n"
    + json.dumps(
        {
            "tool_calls": [
                {
                    "name": "websim_image_generation",
                    "arguments": {"prompt": PROMPT, "aspect_ratio": "16:9"},
                }
            ]
        }
    )
    + "\n```\nIt will take a moment."
)
FINAL = "Here is your lighthouse painting."
QUESTION = "Paint me a lighthouse at dusk, wide format."


@pytest.fixture
def client(emulator: WebsimEmulator) -> Iterator[WebsimClient]:
    with WebsimClient(emulator.base_url, max_retries=0) as websim:
        yield websim


@pytest.fixture
def llm(client: WebsimClient) -> ChatWebsim:
    return ChatWebsim(client=client)


@pytest.fixture
def image_tool(client: WebsimClient) -> WebsimImageTool:
    return WebsimImageTool(client=client)


def script_call_then_answer(emulator: WebsimEmulator) -> None:
    emulator.enqueue("chat", json={"content": CALL_REPLY})
    emulator.enqueue("chat", json={"content": FINAL})


def check_run(emulator: WebsimEmulator, messages: list[Any]) -> None:
    """The run went question → call → tool result → final answer, all on the wire."""
    human, call, result, final = messages
    assert isinstance(human, HumanMessage) and human.content == QUESTION
    # The model's turn: the prose stays the content, the fenced JSON became the call.
    assert isinstance(call, AIMessage)
    assert call.content == "Sure, I'll draw that for you.\n\nIt will take a moment."
    (tool_call,) = call.tool_calls
    assert tool_call["name"] == "websim_image_generation"
    assert tool_call["args"] == {"prompt": PROMPT, "aspect_ratio": "16:9"}
    assert tool_call["id"] is not None and tool_call["id"].startswith("call_")
    assert call.invalid_tool_calls == []
    # The image endpoint received exactly the call's arguments.
    (image_request,) = emulator.requests_for("image")
    assert image_request.violations == []
    assert image_request.body["prompt"] == PROMPT
    assert image_request.body["aspect_ratio"] == "16:9"
    # The ToolMessage carries the URL for the model and the artifact for the application.
    assert isinstance(result, ToolMessage)
    assert result.tool_call_id == tool_call["id"] and result.status == "success"
    url = result.content
    assert isinstance(url, str) and url.startswith(emulator.base_url + "/images/")
    assert result.artifact["url"] == url
    assert result.artifact["prompt"] == PROMPT
    assert result.artifact["aspect_ratio"] == "16:9"
    assert result.artifact["project_id"] == image_request.body["project_id"]
    assert isinstance(final, AIMessage) and final.content == FINAL and final.tool_calls == []
    # The second chat turn replayed the call and the result through the prompt protocol.
    first, second = emulator.requests_for("chat")
    assert all(r.violations == [] for r in (first, second))
    system = second.body["messages"][0]
    assert system["role"] == "system" and "Tool: websim_image_generation" in system["content"]
    assert first.body["messages"][1:] == [{"role": "user", "content": QUESTION}]
    _, asked, replayed, tool_turn = second.body["messages"]
    assert asked == {"role": "user", "content": QUESTION}
    assert replayed["role"] == "assistant"
    assert '"tool_calls"' in replayed["content"] and tool_call["id"] in replayed["content"]
    assert tool_turn["role"] == "user"
    assert tool_turn["content"] == (
        f"Result of the call {tool_call['id']} to tool 'websim_image_generation':\n{url}"
    )


def test_create_agent_calls_the_image_tool(
    emulator: WebsimEmulator, llm: ChatWebsim, image_tool: WebsimImageTool
) -> None:
    script_call_then_answer(emulator)
    agent = create_agent(llm, tools=[image_tool])
    result = agent.invoke({"messages": [HumanMessage(QUESTION)]})
    check_run(emulator, result["messages"])


async def test_create_agent_streaming(
    emulator: WebsimEmulator, llm: ChatWebsim, image_tool: WebsimImageTool
) -> None:
    script_call_then_answer(emulator)
    agent = create_agent(llm, tools=[image_tool])
    updates: list[str] = []
    streamed: list[Any] = []
    final_state: dict[str, Any] = {}
    async for mode, data in agent.astream(
        {"messages": [HumanMessage(QUESTION)]}, stream_mode=["updates", "messages", "values"]
    ):
        if mode == "updates":
            updates.extend(data)
        elif mode == "messages":
            streamed.append(data[0])
        else:
            final_state = data
    assert updates == ["model", "tools", "model"]
    check_run(emulator, final_state["messages"])
    # Message mode saw the model's call, the tool's result and the final answer.
    calls = [m for m in streamed if isinstance(m, (AIMessage, AIMessageChunk)) and m.tool_calls]
    assert [c["args"]["prompt"] for m in calls for c in m.tool_calls] == [PROMPT]
    assert any(isinstance(m, ToolMessage) and m.artifact["prompt"] == PROMPT for m in streamed)
    assert any(isinstance(m, (AIMessage, AIMessageChunk)) and m.text == FINAL for m in streamed)


def test_langgraph_prebuilt_agent(
    emulator: WebsimEmulator, llm: ChatWebsim, image_tool: WebsimImageTool
) -> None:
    script_call_then_answer(emulator)
    # langgraph 1.x deprecates create_react_agent in favour of create_agent; it still works.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LangGraphDeprecatedSinceV10)
        agent = create_react_agent(llm, tools=[image_tool])
    result = agent.invoke({"messages": [HumanMessage(QUESTION)]})
    check_run(emulator, result["messages"])


def test_langgraph_prebuilt_agent_streaming(
    emulator: WebsimEmulator, llm: ChatWebsim, image_tool: WebsimImageTool
) -> None:
    script_call_then_answer(emulator)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LangGraphDeprecatedSinceV10)
        agent = create_react_agent(llm, tools=[image_tool])
    states = list(agent.stream({"messages": [HumanMessage(QUESTION)]}, stream_mode="values"))
    check_run(emulator, states[-1]["messages"])


@pytest.mark.parametrize("streaming", [False, True], ids=["invoke", "stream"])
async def test_malformed_first_reply_surfaces_as_an_invalid_call(
    emulator: WebsimEmulator, llm: ChatWebsim, image_tool: WebsimImageTool, streaming: bool
) -> None:
    # A call whose arguments break the tool's schema: no prompt, an unknown argument.
    bad = {"tool_calls": [{"name": "websim_image_generation", "arguments": {"size": "big"}}]}
    emulator.enqueue("chat", json={"content": f"Drawing now:\n```json\n{json.dumps(bad)}\n```"})
    agent = create_agent(llm, tools=[image_tool])
    request = {"messages": [HumanMessage(QUESTION)]}
    if streaming:
        states = [s async for s in agent.astream(request, stream_mode="values")]
        messages = states[-1]["messages"]
    else:
        messages = (await agent.ainvoke(request))["messages"]
    # The loop ends on the model's turn: nothing valid to run, nothing sent to the tool.
    _, reply = messages
    assert isinstance(reply, AIMessage)
    assert reply.tool_calls == []
    (invalid,) = reply.invalid_tool_calls
    assert invalid["name"] == "websim_image_generation"
    assert json.loads(invalid["args"] or "") == {"size": "big"}
    assert invalid["error"] is not None
    assert "missing required property 'prompt'" in invalid["error"]
    assert reply.content == "Drawing now:"
    assert emulator.requests_for("image") == []
    assert len(emulator.requests_for("chat")) == 1


# --------------------------------------------------------------------------- the docs example

IMAGE_DOC = Path(__file__).resolve().parents[2] / "docs" / "image_tool.md"


def test_image_tool_docs_agent_runs_the_loop_in_agent_mode(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The page's own test runs it against the echoing emulator; in agent mode, which the
    # page recommends for offline runs, the example goes through the whole loop.
    text = IMAGE_DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```$", text, flags=re.DOTALL | re.MULTILINE)
    agent_blocks = [b for b in blocks if "create_agent" in b or "illustrator" in b]
    assert len(agent_blocks) == 2
    setup = next(b for b in blocks if b.startswith("from langchain_websim import WebsimImageTool"))
    namespace: dict[str, Any] = {"__name__": "image_tool_docs"}
    with WebsimEmulator(chat_responder=agent_responder) as emulator:
        monkeypatch.setenv("WEBSIM_BASE_URL", emulator.base_url)
        try:
            for number, block in enumerate([setup, *agent_blocks], 1):
                exec(compile(block, f"{IMAGE_DOC.name} agent block {number}", "exec"), namespace)
        finally:
            namespace["tool"]._websim_client().close()
    out = capsys.readouterr().out
    run = namespace["run"]["messages"]
    assert [type(m).__name__ for m in run] == [
        "HumanMessage",
        "AIMessage",
        "ToolMessage",
        "AIMessage",
    ]
    assert run[1].tool_calls[0]["args"] == {"prompt": "Draw a lighthouse at dusk"}
    assert run[2].artifact["url"] in run[3].text
    assert "Tool Calls:\n  websim_image_generation" in out  # pretty_print shows the call
    assert "model ['AIMessage']\ntools ['ToolMessage']\nmodel ['AIMessage']\n" in out
    prompts = [r.body["prompt"] for r in emulator.requests_for("image")]
    assert prompts == ["Draw a lighthouse at dusk", "Draw a harbour at dawn"]
    chats = emulator.requests_for("chat")
    assert len(chats) == 4 and all(r.violations == [] for r in chats)
    assert (
        chats[0]
        .body["messages"][0]["content"]
        .startswith(
            "You are an illustrator. Call websim_image_generation for every picture.\n\n"
            "You can call the following tools."
        )
    )
