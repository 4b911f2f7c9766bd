"""The uvicorn server of `campaign web`: on Ctrl-C or SIGTERM the console's event streams
end first (`events.close_streams`), so the server stops within a poll instead of waiting
its graceful-shutdown time for the pages that hold a stream open."""

from __future__ import annotations

from types import FrameType

import uvicorn

from campaign.web.events import close_streams


class ConsoleServer(uvicorn.Server):
    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        close_streams(self.config.app)
        super().handle_exit(sig, frame)


__all__ = ["ConsoleServer"]
