"""``websim demo``: an agent that draws what it is asked and describes the result.

Built the way a user would build it: ``langchain.agents.create_agent`` with ``ChatWebsim`` as
the model and ``WebsimImageTool`` as its only tool, streamed step by step.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from langchain_websim._cli_common import save_image

SYSTEM_PROMPT = (
    "You are an illustrator. When the user asks for a picture, call the "
    "websim_image_generation tool once with a vivid, detailed prompt. When the tool has "
    "answered, reply in one or two sentences describing the picture and give its URL."
)


class AgentDependencyMissing(ValueError):
    """``langchain`` (for ``create_agent``) is not installed."""


def build_agent(base_url: str) -> Any:
    try:
        from langchain.agents import create_agent
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise AgentDependencyMissing(
            "the demo needs langchain's create_agent: pip install 'langchain-websim[agent]'"
        ) from err

    from langchain_websim.chat_models import ChatWebsim
    from langchain_websim.tools import WebsimImageTool

    return create_agent(
        ChatWebsim(base_url=base_url),
        tools=[WebsimImageTool(base_url=base_url)],
        system_prompt=SYSTEM_PROMPT,
    )


def run_demo(
    prompt: str, *, base_url: str, as_json: bool, out: TextIO, save_dir: Path | None = None
) -> int:
    """Stream the agent's steps to ``out``; with ``save_dir``, download each image there as
    soon as the tool returns it (an emulator's URLs die when the command ends)."""
    if not prompt.strip():
        raise ValueError("the demo prompt is empty; say what the agent should draw")
    agent = build_agent(base_url)
    steps: list[dict[str, Any]] = []
    for update in agent.stream({"messages": [("human", prompt)]}, stream_mode="updates"):
        for node_update in update.values():
            for message in (node_update or {}).get("messages", []):
                step = _describe(message)
                if step is None:
                    continue
                if save_dir is not None and step.get("url"):
                    saved = save_image(base_url, step["url"], directory=save_dir, number=len(steps))
                    step["file"] = str(saved)
                steps.append(step)
                if not as_json:
                    print(_format(step), file=out, flush=True)
    if as_json:
        print(json.dumps({"prompt": prompt, "steps": steps}, indent=2), file=out)
    return 0


def _describe(message: BaseMessage) -> dict[str, Any] | None:
    if isinstance(message, AIMessage):
        if message.tool_calls:
            return {
                "step": "tool_call",
                "calls": [{"name": c["name"], "args": c["args"]} for c in message.tool_calls],
            }
        if message.invalid_tool_calls:
            return {
                "step": "invalid_tool_call",
                "errors": [c.get("error") for c in message.invalid_tool_calls],
            }
        return {"step": "answer", "text": message.text}
    if isinstance(message, ToolMessage):
        artifact = message.artifact if isinstance(message.artifact, dict) else None
        return {
            "step": "tool_result",
            "status": message.status,
            "content": message.text,
            "url": artifact.get("url") if artifact else None,
        }
    return None


def _format(step: dict[str, Any]) -> str:
    kind = step["step"]
    if kind == "tool_call":
        return "\n".join(
            f"-> tool call: {c['name']}({json.dumps(c['args'], ensure_ascii=False)})"
            for c in step["calls"]
        )
    if kind == "invalid_tool_call":
        return f"-> invalid tool call: {'; '.join(str(e) for e in step['errors'])}"
    if kind == "tool_result":
        if step["status"] == "error":
            return f"<- tool error: {step['content']}"
        saved = f"\n   saved: {step['file']}" if step.get("file") else ""
        return f"<- image: {step['url'] or step['content']}{saved}"
    return f"answer: {step['text']}"
