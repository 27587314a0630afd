"""What a recorder that died left half done, finished by its successor (ha1, ha2, …).

A dead recorder's playlists list what it stored, and nothing it had not stored (a playlist is
uploaded after its segments), but they never got their ENDLIST: a player would wait for more.
The successor ends them, reading each where its newest version is (the customer's storage, or
the backup while that fails) and storing the ended version through its own uploader, which
knows where it can go. One it could not read before it stopped (the storage was down all
along) is left as a debt in the backup, paid when the storage is back (chalicelib/backup.py).
The open segment and any upload still queued died with the recorder.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from chalicelib import naming, playlist, retry
from chalicelib.retry import RetryPolicy
from chalicelib.tasks import TaskRecord
from recorder_container.uploader import Upload, Uploader

log = logging.getLogger(__name__)

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
RETRY = RetryPolicy(delays_s=(2, 5, 10, 30))


def left_open(task: TaskRecord, ha_index: int) -> list[str]:
    """The keys of the playlists the task's earlier recorders wrote (Describe's list knows them)."""
    keys = []
    for file in task.storage_files():
        name = naming.parse(file.FileName)
        if name is not None and name.ha_index < ha_index and name.extension == naming.PLAYLIST:
            keys.append(task.directory + file.FileName)
    return keys


def _ended(read: Callable[[str], bytes], key: str) -> bytes | None:
    """The playlist ended, or None when it had ended already (or is no playlist at all)."""
    try:
        text = playlist.closed(read(key).decode())
    except (playlist.PlaylistError, UnicodeDecodeError) as exc:
        log.warning("a playlist of an earlier recorder is not one (%s); left as it is", exc)
        return None
    return text.encode() if text is not None else None


class EndPlaylists:
    """Ends the playlists earlier recorders left open, trying again while the storage fails.
    `run` goes on until done or cancelled (when this recorder stops); `owe_rest` then leaves
    what is still open to the backup."""

    def __init__(self, task: TaskRecord, ha_index: int, uploader: Uploader, policy: RetryPolicy = RETRY) -> None:
        self.waiting = left_open(task, ha_index)
        self._uploader = uploader
        self._policy = policy

    async def run(self) -> int:
        """How many it ended."""
        ended, failures = 0, 0
        while self.waiting:
            failed = []
            for key in self.waiting:
                try:
                    body = await asyncio.to_thread(_ended, self._uploader.read, key)
                except Exception as exc:  # storage: try again later
                    log.warning("a playlist of an earlier recorder could not be read (%s)", retry.error_code(exc))
                    failed.append(key)
                    continue
                if body is not None:
                    self._uploader.put(Upload(key, PLAYLIST_TYPE, body=body))
                    ended += 1
            self.waiting = failed
            if self.waiting:
                failures += 1
                await asyncio.sleep(self._policy.delay(failures) or 0.0)
        if ended:
            log.info("ended %d playlists an earlier recorder left open", ended)
        return ended

    async def owe_rest(self) -> None:
        if not self.waiting:
            return
        try:
            await asyncio.to_thread(self._uploader.owe_endlists, self.waiting)
            log.warning("%d playlists of earlier recorders will be ended once the storage is back", len(self.waiting))
        except Exception as exc:  # the internal bucket is down too: they stay open
            log.error("%d playlists of earlier recorders stay open (%s)", len(self.waiting), retry.error_code(exc))
