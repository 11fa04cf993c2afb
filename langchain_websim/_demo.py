"""``websim demo``: an agent that draws what it is asked and describes the result.

Built the way a user would build it: ``langchain.agents.create_agent`` with ``ChatWebsim`` as
the model and ``WebsimImageTool`` as its only tool, streamed step by step.
"""

from __future__ import annotations

import json
from collections.abc import Callable
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


SaveDir = Path | Callable[[], Path]
"""Where images go: a directory, or a function that makes one when the first image comes
(so a run that draws nothing leaves no empty directory behind)."""


def run_demo(
    prompt: str, *, base_url: str, as_json: bool, out: TextIO, save_dir: SaveDir | None = None
) -> list[Path]:
    """Stream the agent's steps to ``out``; with ``save_dir``, download each image there as
    soon as the tool returns it (an emulator's URLs die when the command ends).

    Returns the files saved, each under a name no other file had: two images the service
    gave the same file name are both kept.  The summary at the end lists them all.
    """
    if not prompt.strip():
        raise ValueError("the demo prompt is empty; say what the agent should draw")
    agent = build_agent(base_url)
    saver = _Saver(base_url, save_dir) if save_dir is not None else None
    steps: list[dict[str, Any]] = []
    for update in agent.stream({"messages": [("human", prompt)]}, stream_mode="updates"):
        for node_update in update.values():
            for message in (node_update or {}).get("messages", []):
                step = _describe(message)
                if step is None:
                    continue
                if saver is not None and step.get("url"):
                    step["file"] = str(saver.save(step["url"]))
                steps.append(step)
                if not as_json:
                    print(_format(step), file=out, flush=True)
    saved = saver.saved if saver is not None else []
    if as_json:
        result: dict[str, Any] = {"prompt": prompt, "steps": steps}
        if saver is not None:
            result["files"] = [str(path) for path in saved]
        print(json.dumps(result, indent=2), file=out)
    elif saver is not None:
        print(_summary(saved), file=out)
    return saved


class _Saver:
    """Saves each image into one directory, made when the first image comes."""

    def __init__(self, base_url: str, save_dir: SaveDir) -> None:
        self._base_url = base_url
        self._save_dir = save_dir
        self.saved: list[Path] = []

    def save(self, url: str) -> Path:
        if not isinstance(self._save_dir, Path):
            self._save_dir = self._save_dir()
        number = len(self.saved) + 1
        target = save_image(self._base_url, url, directory=self._save_dir, number=number)
        self.saved.append(target)
        return target


def _summary(saved: list[Path]) -> str:
    if not saved:
        return "saved: no image (the agent drew nothing)"
    files = "".join(f"\n  {path}" for path in saved)
    return f"saved {len(saved)} image{'s' if len(saved) != 1 else ''}:{files}"


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
