"""docs/chat.md runs as written: every Python example, against the emulator it names.

Each example's first line says what it runs against: the plain emulator, the emulator
started with ``--agent`` (the same server with ``agent_responder``, which is all the flag
does), or an emulator the example starts itself.  The examples share one namespace, in page
order, as a reader pasting them into one session would.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from langchain_websim import ChatWebsim
from langchain_websim.testing import RecordedRequest, WebsimEmulator, agent_responder

DOC = Path(__file__).resolve().parents[2] / "docs" / "chat.md"
TEXT = DOC.read_text(encoding="utf-8")
BLOCKS = re.findall(r"^```python\n(.*?)^```$", TEXT, flags=re.DOTALL | re.MULTILINE)
PLAIN = "# Runs against the emulator."
AGENT = "# Runs against the emulator started with --agent."
OWN = "# Runs against its own emulator, scripted."


def test_the_page_has_the_langchain_integration_sections() -> None:
    sections = re.findall(r"^## (.+)$", TEXT, flags=re.MULTILINE)
    assert sections == [
        "Overview",
        "Setup",
        "Instantiation",
        "Invocation",
        "Chaining",
        "Tool calling, structured output and agents",
        "Multimodal input",
        "Image generation through chat",
        "Conversation history from any model",
        "Model profile and token counts",
        "API reference",
    ]
    for subsection in ("Integration details", "Model features", "LangSmith tracing"):
        assert f"\n### {subsection}\n" in TEXT
    assert "`strict` and `parallel_tool_calls`" in TEXT
    assert 'profile={"max_input_tokens": ...}' in TEXT


def test_every_example_says_what_it_runs_against() -> None:
    assert len(BLOCKS) >= 25
    firsts = [block.splitlines()[0] for block in BLOCKS]
    assert set(firsts) == {PLAIN, AGENT, OWN}
    # the two the plain emulator cannot run (no tool calls of its own accord)
    agent_blocks = [block for block in BLOCKS if block.startswith(AGENT)]
    assert any("llm_with_tools.invoke(" in block for block in agent_blocks)
    assert any('looked["messages"][2]' in block for block in agent_blocks)


@dataclass
class Run:
    """What running the whole page printed, and what the emulator received."""

    out: str
    images: str
    chats: list[RecordedRequest]
    image_bodies: list[dict[str, Any]]
    all_ok: bool


@pytest.fixture(scope="module")
def page() -> Iterator[Run]:
    """Every example, in page order, in one namespace, each against the emulator it names."""
    namespace: dict[str, Any] = {"__name__": "chat_docs"}
    printed = io.StringIO()
    with WebsimEmulator() as emulator, pytest.MonkeyPatch.context() as patch:
        patch.setenv("WEBSIM_BASE_URL", emulator.base_url)
        try:
            with contextlib.redirect_stdout(printed):
                for number, block in enumerate(BLOCKS, 1):
                    mode = agent_responder if block.startswith(AGENT) else None
                    emulator.set_chat_responder(mode)
                    exec(compile(block, f"{DOC.name} python block {number}", "exec"), namespace)
        finally:
            for value in namespace.values():
                if isinstance(value, ChatWebsim) and value._shared_client is not None:
                    value._shared_client.close()
        yield Run(
            out=printed.getvalue(),
            images=emulator.base_url + "/images/",
            chats=emulator.requests_for("chat"),
            image_bodies=[r.body for r in emulator.requests_for("image")],
            all_ok=all(r.status == 200 and r.violations == [] for r in emulator.requests),
        )


def test_instantiation_invocation_and_streaming(page: Run) -> None:
    out = page.out
    assert page.all_ok
    assert "gemini-2.5-flash 60.0 ['\\nUser:']" in out
    assert (
        "Echo: I love programming.\n"
        "[{'type': 'text', 'text': 'Echo: I love programming.'}]\n"
        "gemini-1.5-pro\n"
    ) in out
    assert "'Echo: Write a limerick. ' gemini-2.5-pro" in out
    assert "Echo: Tell me a joke. last" in out
    assert "20 Echo: Question 19" in out
    assert "answered" in out
    assert page.chats[0].body["messages"][0] == {
        "role": "system",
        "content": "You translate English to French.",
    }
    assert {"abc_0123456789abcde"} == {
        r.body["project_id"] for r in page.chats if "limerick" in str(r.body["messages"])
    }


def test_tool_calling_examples_in_agent_mode(page: Run) -> None:
    out = page.out
    assert "[{'name': 'GetWeather', 'args': {'city': 'What is the weather like in Paris?'}" in out
    assert "Done. The tool answered: 18 °C and sunny (a canned answer from the emulator)." in out
    assert "last [{'city': 'And in Rome?'}]" in out
    assert "{'city': 'Oslo'}\n[{'name': 'GetWeather', 'args': '{\"city\": \"Rome\", " in out
    assert "'Let me look that up.' {'city': 'Lyon'}" in out
    weather = [r for r in page.chats if "GetWeather" in str(r.body)]
    history = weather[1].body["messages"]
    assert history[0]["content"].startswith("You can call the following tools.")
    assert history[2]["role"] == "assistant" and '"call_1"' in history[2]["content"]
    assert history[3] == {
        "role": "user",
        "content": "Result of the call call_1 to tool 'GetWeather':\n18 °C and sunny",
    }


def test_structured_output_and_agents(page: Run) -> None:
    out = page.out
    assert "example setup / example punchline" in out
    assert "AIMessage setup='example setup' punchline='example punchline' None" in out
    assert f"Done: here is the result, {page.images}" in out
    assert "['model']\n['tools']\n['model']\n" in out
    # JSON mode: exactly the two structured-output requests carry the flag
    flagged = [r.body["messages"] for r in page.chats if "json" in r.body]
    assert len(flagged) == 2
    assert all("JSON schema:" in m[0]["content"] for m in flagged)
    looked = [r for r in page.chats if "kingfisher" in str(r.body)]
    assert looked[-1].body["messages"][-1]["content"][1]["type"] == "image_url"


def test_multimodal_and_image_generation(page: Run) -> None:
    out = page.out
    assert "Echo: What is in these pictures? [2 images]" in out
    assert "type 'audio' at position 1" in out
    assert out.count("['text', 'image']") == 2  # the flux answer, the looking agent's tool result
    assert "{'seed': 7, 'width': 256, 'transparent': True}" in out
    assert [(b["prompt"], b["aspect_ratio"]) for b in page.image_bodies] == [
        ("Draw a red fox in fresh snow.", "1:1"),  # the agent's tool calls
        ("Draw a heron.", "1:1"),
        ("Draw a kingfisher.", "1:1"),
        ("A lighthouse on a cliff\nat dusk, oil painting", "16:9"),
        ("a fox logo", "1:1"),
        ("a red fox in fresh snow, watercolour", "9:16"),
        ("a lighthouse at dusk", "1:1"),
    ]
    pictures = [r.body for r in page.chats if "pictures" in str(r.body)]
    assert [p["type"] for p in pictures[0]["messages"][0]["content"]] == [
        "text",
        "image_url",
        "image_url",
    ]


def test_histories_from_other_models_and_a_fallback(page: Run) -> None:
    assert "Echo: Describe the picture you drew." in page.out
    assert "Echo: More?" in page.out
    drew = [r.body["messages"] for r in page.chats if "Describe the picture" in str(r.body)]
    assert drew[0][1] == {"role": "assistant", "content": "Lighthouses guide ships at night."}
    assert drew[0][3]["role"] == "assistant" and drew[0][3]["content"].startswith(page.images)
    assert "EqoB" not in str([r.body for r in page.chats])  # the thinking signature never went


def test_profiles_token_counts_and_summarization(page: Run) -> None:
    assert "{'max_input_tokens': 32000}\nTrue None\n" in page.out
    assert "155\n['ai', 'human']\nEcho: And about their keepers?\n" in page.out
    # the summarizing agent: the summary request, then the model with the summary
    (at,) = [i for i, r in enumerate(page.chats) if "Here is a summary" in str(r.body)]
    assert "Tell me about lighthouses." in str(page.chats[at - 1].body["messages"])
    assert page.chats[at].body["messages"][1:] == [
        {"role": "user", "content": "And about their keepers?"}
    ]


def test_the_load_recipe_runs_as_written(page: Run) -> None:
    recipe = next(block for block in BLOCKS if "load(" in block)
    assert 'valid_namespaces=["langchain_websim"]' in recipe
    assert page.out.count("gemini-2.5-flash 60.0 ['\\nUser:']") == 2  # careful_llm, restored
