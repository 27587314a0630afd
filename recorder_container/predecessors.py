"""What a recorder that died left half done, finished by its successor (ha1, ha2, …).

A dead recorder's playlists list what it stored, and nothing it had not stored (a playlist is
uploaded after its segments), but they never got their ENDLIST: a player would wait for more.
The successor ends them. The open segment and any upload still queued died with it.
"""

from __future__ import annotations

import logging

from chalicelib import naming, playlist, retry
from chalicelib.storage import Bucket
from chalicelib.tasks import TaskRecord

log = logging.getLogger(__name__)

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"


def end_playlists(task: TaskRecord, bucket: Bucket, ha_index: int) -> list[str]:
    """End the playlists the task's earlier recorders left open; the names of those ended.
    One that cannot be read or written is logged and left as it is."""
    ended = []
    for file in task.storage_files():
        name = naming.parse(file.FileName)
        if name is None or name.ha_index >= ha_index or name.extension != "m3u8":
            continue
        key = task.directory + file.FileName
        try:
            text = playlist.closed(bucket.get(key).decode())
            if text is None:
                continue
            bucket.put(key, text.encode(), PLAYLIST_TYPE)
        except (playlist.PlaylistError, UnicodeDecodeError) as exc:
            log.warning("a playlist of an earlier recorder is not one (%s); left as it is", exc)
            continue
        except Exception as exc:  # storage: the files are there, only the end tag is missing
            log.warning("a playlist of an earlier recorder could not be ended (%s)", retry.error_code(exc))
            continue
        ended.append(file.FileName)
    if ended:
        log.info("ended %d playlists an earlier recorder left open", len(ended))
    return ended
