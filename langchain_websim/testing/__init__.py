"""Test helpers: ``WebsimEmulator``, a local Websim API for offline tests.

```python
from langchain_websim import WebsimClient
from langchain_websim.testing import WebsimEmulator

with WebsimEmulator() as emu, WebsimClient(base_url=emu.base_url) as client:
    assert client.chat([{"role": "user", "content": "hi"}]).text == "Echo: hi"
```

Scripting faults, rate limits and inspecting requests:
https://github.com/langchain-websim/langchain-websim/blob/main/docs/emulator.md
"""

from __future__ import annotations

from langchain_websim.testing._agent import agent_responder
from langchain_websim.testing._emulator import WebsimEmulator
from langchain_websim.testing._ratelimit import RateLimit
from langchain_websim.testing._records import RecordedRequest
from langchain_websim.testing._server import ChatResponder

__all__ = ["ChatResponder", "RateLimit", "RecordedRequest", "WebsimEmulator", "agent_responder"]
