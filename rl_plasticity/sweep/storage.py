"""Run storage: where a sweep's run directories live for the driver, a path or a URI.

On a cluster no disk is assumed shared: a run trains in a directory of its worker's own and is
copied to storage at every checkpoint and when it ends; a run found in storage is first copied
back from there (a resumed sweep, or a task retried on another node after its node was lost).
Files go through fsspec's filesystem layer (a dependency of torch): a local or shared path,
``file://``, and, with the filesystem's package installed, ``s3://`` (s3fs), ``gs://`` (gcsfs)
and the others fsspec knows.

An upload keeps storage consistent whenever it is cut off (a node lost mid-copy): the run's files
other than checkpoints first (so the CSVs reach at least to the newest checkpoint), then each new
checkpoint's files with ``state.pt`` last (a checkpoint counts only once its ``state.pt`` exists,
see :func:`~rl_plasticity.experiment.rundir.checkpoints`), then ``status.json``; only then are the
checkpoints the run no longer keeps deleted. A resume cuts the CSVs back to its checkpoint. That
order is why the copies go file by file rather than through one recursive copy, whose order is
not defined. Only the standard library and fsspec are imported here.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from pathlib import Path
from typing import Any

from rl_plasticity.errors import ConfigError
from rl_plasticity.experiment.rundir import CHECKPOINTS, STATUS_FILE, TENSORBOARD, checkpoints

#: A sweep's token in ``<storage>/<group>/``: a worker that reads another (or none) does not see
#: the driver's storage (e.g. a local path on a cluster without a shared disk).
TOKEN_FILE = "storage-token.json"
#: The checkpoint file written last; a checkpoint folder without it is incomplete.
LAST_CHECKPOINT_FILE = "state.pt"


class Storage:
    """A storage location for run directories: a local path or an fsspec URI.

    :param location: a path (made absolute) or a URI such as ``file:///data/runs`` or
        ``s3://bucket/runs``
    :raises ConfigError: if no filesystem handles the URI's protocol (its package is missing)
    """

    def __init__(self, location: str | Path) -> None:
        from fsspec.core import url_to_fs

        text = str(location)
        if "://" not in text:
            text = str(Path(text).expanduser().resolve())
        try:
            self.fs, root = url_to_fs(text)
        except (ImportError, ValueError) as e:
            raise ConfigError(
                "storage", text, f"a path or a URI fsspec can open ({type(e).__name__}: {e})"
            ) from None
        self.location = text
        self.root = root.rstrip("/") or "/"
        #: Per local file uploaded, its (size, mtime) then: unchanged files are not sent again.
        self._sent: dict[Path, tuple[int, int]] = {}

    @property
    def local_path(self) -> Path | None:
        """The storage's folder when it is on this machine's filesystem (a path or ``file://``),
        else None."""
        from fsspec.implementations.local import LocalFileSystem

        return Path(self.root) if isinstance(self.fs, LocalFileSystem) else None

    def where(self, relative: str) -> str:
        """The location of ``relative`` for people: a path, or the URI with it appended."""
        if self.local_path is not None:
            return str(self.local_path / relative)
        return f"{self.location.rstrip('/')}/{relative}"

    def _full(self, relative: str) -> str:
        return f"{self.root.rstrip('/')}/{relative}" if relative else self.root

    def read_json(self, relative: str) -> dict[str, Any] | None:
        """A JSON file in storage as a dict, or None if there is none.

        :param relative: its path under the storage root
        """
        full = self._full(relative)
        if not self.fs.isfile(full):
            return None
        with self.fs.open(full, "r") as f:
            return json.load(f)

    def write_json(self, relative: str, data: dict[str, Any]) -> None:
        """Write a JSON file in storage (replacing it).

        :param relative: its path under the storage root
        :param data: JSON-ready values
        """
        full = self._full(relative)
        self.fs.makedirs(full.rsplit("/", 1)[0], exist_ok=True)
        with self.fs.open(full, "w") as f:
            f.write(json.dumps(data, indent=2) + "\n")

    def write_token(self, group: str) -> str:
        """Write a new token for a sweep of ``group`` and return it (see :meth:`check_token`).

        :param group: the sweep's group
        """
        token = uuid.uuid4().hex
        data = {"token": token, "host": socket.gethostname(), "time": time.time()}
        self.write_json(f"{group}/{TOKEN_FILE}", data)
        return token

    def check_token(self, group: str, token: str) -> None:
        """Make sure this is the driver's storage: it holds the token the driver wrote.

        :param group: the sweep's group
        :param token: the token from :meth:`write_token`
        :raises ConfigError: if the token is missing or another one
        """
        found = self.read_json(f"{group}/{TOKEN_FILE}")
        if found is None or found.get("token") != token:
            raise ConfigError(
                "storage",
                self.location,
                f"a location the driver and every worker share (the worker on "
                f"{socket.gethostname()} does not find the sweep's {TOKEN_FILE} there); pass "
                "--storage a shared path or an object-store URI",
            )

    def _files(self, relative: str) -> list[str]:
        """Every file below ``relative``, as paths relative to it."""
        base = self._full(relative)
        if not self.fs.isdir(base):
            return []
        prefix = self.fs._strip_protocol(base).rstrip("/") + "/"
        return sorted(p[len(prefix) :] for p in self.fs.find(base) if p.startswith(prefix))

    def download(self, relative: str, local: Path) -> bool:
        """Copy the run directory ``relative`` from storage into ``local`` (made if needed).

        :param relative: the run directory under the storage root (``<group>/<run>``)
        :param local: the folder that receives its files
        :return: whether storage held the run
        """
        files = self._files(relative)
        for name in files:
            target = Path(local) / name
            target.parent.mkdir(parents=True, exist_ok=True)
            self.fs.get_file(self._full(f"{relative}/{name}"), str(target))
        return bool(files)

    def download_runs(self, local: Path) -> int:
        """Copy every run below the storage root into ``local`` without its checkpoints and
        TensorBoard files (what a report reads).

        :param local: the folder that receives them
        :return: the number of files copied
        """
        skipped = {CHECKPOINTS, TENSORBOARD}
        files = [name for name in self._files("") if not skipped & set(name.split("/")[:-1])]
        for name in files:
            target = Path(local) / name
            target.parent.mkdir(parents=True, exist_ok=True)
            self.fs.get_file(self._full(name), str(target))
        return len(files)

    def put(self, source: Path, relative: str) -> None:
        """Copy one local file to ``relative`` in storage (replacing it).

        :param source: the file
        :param relative: its path under the storage root
        """
        full = self._full(relative)
        self.fs.makedirs(full.rsplit("/", 1)[0], exist_ok=True)
        self.fs.put_file(str(source), full)

    def upload(self, local: Path, relative: str) -> None:
        """Copy the run directory ``local`` to ``relative`` in storage, in the order that keeps
        storage consistent if cut off (see the module's docstring). Files this object sent before
        and unchanged since (size and modification time) and checkpoints storage holds complete
        are not copied again; checkpoints the run no longer keeps are deleted.

        :param local: the run directory on this machine
        :param relative: where it goes under the storage root (``<group>/<run>``)
        """
        local = Path(local)
        kept = checkpoints(local / CHECKPOINTS)
        for file in sorted(p for p in local.rglob("*") if p.is_file()):
            name = file.relative_to(local).as_posix()
            stat = file.stat()
            changed = self._sent.get(file) != (stat.st_size, stat.st_mtime_ns)
            if changed and name.split("/")[0] != CHECKPOINTS and name != STATUS_FILE:
                self.put(file, f"{relative}/{name}")
                self._sent[file] = (stat.st_size, stat.st_mtime_ns)
        stored = self._checkpoints(relative)
        for folder in kept:
            if folder.name in stored:
                continue
            where = f"{relative}/{CHECKPOINTS}/{folder.name}"
            files = sorted(p for p in folder.rglob("*") if p.is_file())
            files.sort(key=lambda p: p.name == LAST_CHECKPOINT_FILE)  # state.pt last
            for file in files:
                self.put(file, f"{where}/{file.relative_to(folder).as_posix()}")
        if (local / STATUS_FILE).is_file():
            self.put(local / STATUS_FILE, f"{relative}/{STATUS_FILE}")
        names = {folder.name for folder in kept}
        folders = self._full(f"{relative}/{CHECKPOINTS}")
        if self.fs.isdir(folders):
            for entry in self.fs.ls(folders, detail=False):
                if entry.rstrip("/").rsplit("/", 1)[-1] not in names:
                    self.fs.rm(entry, recursive=True)

    def remove(self, relative: str) -> None:
        """Delete ``relative`` (a file or a folder with everything in it) from storage, if there.

        :param relative: its path under the storage root
        """
        full = self._full(relative)
        if self.fs.exists(full):
            self.fs.rm(full, recursive=True)

    def _checkpoints(self, relative: str) -> set[str]:
        """Names of the complete checkpoint folders of a run in storage."""
        folders = self._full(f"{relative}/{CHECKPOINTS}")
        if not self.fs.isdir(folders):
            return set()
        return {
            entry.rstrip("/").rsplit("/", 1)[-1]
            for entry in self.fs.ls(folders, detail=False)
            if self.fs.isfile(f"{entry.rstrip('/')}/{LAST_CHECKPOINT_FILE}")
        }
