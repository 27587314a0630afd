"""In-memory fakes of cloudrec's ports, for tests that are not end-to-end."""

from __future__ import annotations

from chalicelib.errors import ServiceError


class FakeLauncher:
    """Records launches instead of starting recorders."""

    def __init__(self, fail: bool = False, failing: set[str] | None = None) -> None:
        self.launched: list[tuple[str, int]] = []
        self.stopped: list[str] = []
        self.fail = fail
        self.failing = failing or set()  # tasks whose recorder cannot start (no capacity)

    def launch(self, task_id: str, ha_index: int) -> str:
        if self.fail or task_id in self.failing:
            raise ServiceError("The recorder could not be started (no capacity).")
        self.launched.append((task_id, ha_index))
        return f"fake:{len(self.launched)}"

    def stop(self, handle: str) -> None:
        self.stopped.append(handle)


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
