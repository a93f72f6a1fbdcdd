"""A TCP proxy in front of redis-server that can lose a reply: it forwards the next request that contains
given bytes, lets Redis run it, then cuts both sides before the reply gets back (a connection reset after the
server executed a command: what at-least-once senders must survive without writing twice)."""

from __future__ import annotations

import asyncio
import contextlib


class CuttingProxy:
    def __init__(self, port: int) -> None:
        self.port = port
        self.cut_on: bytes | None = None  # set: cut the connection that next sends a request containing these
        self.cuts = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        """Listen on a free loopback port; returns the ``redis://`` URL of the proxy."""
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return f"redis://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/0"

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()

    async def _client(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        ur, uw = await asyncio.open_connection("127.0.0.1", self.port)
        cutting = asyncio.Event()

        async def up() -> None:
            while True:
                data = await cr.read(65536)
                if not data:
                    return
                cut = self.cut_on is not None and self.cut_on in data
                if cut:
                    cutting.set()  # from here no reply goes back
                uw.write(data)
                await uw.drain()
                if cut:
                    self.cut_on = None
                    # the reply to this request is the last thing Redis sends us: wait for it, then drop it
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(ur.read(65536), 5)
                    self.cuts += 1
                    return

        async def down() -> None:
            while not cutting.is_set():
                data = await ur.read(65536)
                if not data or cutting.is_set():
                    return
                cw.write(data)
                await cw.drain()

        try:
            await asyncio.gather(up(), down(), return_exceptions=True)
        finally:
            for w in (cw, uw):
                w.transport.abort()
