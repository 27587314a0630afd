"""In-memory fakes of cloudrec's ports, for tests that are not end-to-end."""

from __future__ import annotations

from chalicelib.errors import ServiceError


class FakeLauncher:
    """Records launches instead of starting recorders."""

    def __init__(self, fail: bool = False) -> None:
        self.launched: list[tuple[str, int]] = []
        self.stopped: list[str] = []
        self.fail = fail

    def launch(self, task_id: str, ha_index: int) -> str:
        if self.fail:
            raise ServiceError("The recorder could not be started.")
        self.launched.append((task_id, ha_index))
        return f"fake:{len(self.launched)}"

    def stop(self, handle: str) -> None:
        self.stopped.append(handle)


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
