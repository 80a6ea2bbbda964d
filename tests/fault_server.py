"""A fault-injecting OpenAI-compatible server on 127.0.0.1 that counts attempts per model."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter

OK_BODY = {
    "id": "x",
    "object": "chat.completion",
    "created": 0,
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "fine"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}


class FaultServer:
    """Behaviour is chosen by the request's model name (see _answer); `die_after` requests, it goes away."""

    def __init__(self, die_after: int | None = None) -> None:
        self.attempts: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.die_after = die_after
        self.served = 0
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        ready.wait(10)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self.server = server
        ready.set()
        self.loop.run_forever()

    def close(self) -> None:
        async def shutdown() -> None:
            self.server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.decode().split("\r\n"):
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":")[1])
                body = json.loads(await reader.readexactly(length)) if length else {}
                model = body.get("model", "")
                self.attempts[model] += 1
                self.served += 1
                if self.die_after is not None and self.served > self.die_after:
                    self.server.close()  # killed: this connection drops, new ones are refused
                    writer.close()
                    return
                if not await self._answer(model, self.attempts[model], writer, body):
                    writer.close()
                    return
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            writer.close()

    @staticmethod
    def _send(writer: asyncio.StreamWriter, status: str, body: str, headers: str = "") -> None:
        data = body.encode()
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n{headers}\r\n".encode()
            + data
        )

    async def _answer(self, model: str, attempt: int, writer: asyncio.StreamWriter, body: dict) -> bool:
        """Write one response; False closes the connection."""
        error = json.dumps({"error": {"message": f"{model} says no", "type": "x"}})
        if model.startswith("persona"):
            return await self._persona(model, attempt, writer, body, error)
        if model == "429-then-ok" and attempt <= 2:
            self._send(writer, "429 Too Many Requests", error, "Retry-After: 0.05\r\n")
        elif model == "500":
            self._send(writer, "500 Internal Server Error", error)
        elif model == "503-then-ok" and attempt == 1:
            self._send(writer, "503 Service Unavailable", error)
        elif model == "slow":
            await asyncio.sleep(2.0)
            return False
        elif model == "badjson":
            self._send(writer, "200 OK", '{"id": "x", "choices": [')
        elif model == "drop" or (model == "drop-then-ok" and attempt == 1):
            return False
        elif model == "401":
            self._send(writer, "401 Unauthorized", error)
        elif model == "404":
            self._send(writer, "404 Not Found", error)
        elif model == "400":
            self._send(writer, "400 Bad Request", error)
        else:
            self._send(writer, "200 OK", json.dumps(OK_BODY))
        await writer.drain()
        return True

    async def _persona(self, model: str, attempt: int, writer: asyncio.StreamWriter, body: dict, error: str) -> bool:
        """The persona pipeline's scripted answers; `persona-flaky` mixes in 429s, 500s and garbage."""
        from convoforge.llm.types import as_messages
        from tests.persona_fakes import pipeline_reply

        fault = None
        if model == "persona-flaky":
            fault = {1: "429", 3: "500"}.get(attempt % 6) or ("garbage" if attempt % 12 == 5 else None)
        if fault:
            self.faults[fault] += 1
        if fault == "429":
            self._send(writer, "429 Too Many Requests", error, "Retry-After: 0.01\r\n")
        elif fault == "500":
            self._send(writer, "500 Internal Server Error", error)
        elif fault == "garbage":
            self._send(writer, "200 OK", '{"id": "x", "choices": [')
        else:
            n = body.get("n", 1)
            text = pipeline_reply(as_messages(body["messages"]))
            choices = [
                {"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                for i in range(n)
            ]
            self._send(writer, "200 OK", json.dumps({**OK_BODY, "choices": choices}))
        await writer.drain()
        return True
