"""The pytest plugin shipped with dicomd, so that a team keeps tests next to its routing
rules: ``dicomd_sandbox`` starts a throwaway daemon with their scripts and configuration,
``dicomd_dicom`` makes DICOM instances with the tags a test needs, and the sandbox uploads
them, settles, and checks the actions the scripts recorded.

The ``pytest11`` entry point loads it into every pytest session of an environment where
dicomd is installed, so it imports nothing heavy until a test asks for a fixture.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from .sandbox import ScriptSandbox


@pytest.fixture
def dicomd_sandbox(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., ScriptSandbox]]:
    """``dicomd_sandbox(*scripts, config=None, send=False)``: a running daemon with these
    Lua (``.lua``) and Python scripts loaded, and ``config``: settings (a dict) or a
    configuration file. Relative paths count from pytest's root folder (where its
    configuration file is). Forwards are recorded, not sent, unless ``send``. Every daemon
    started stops when the test ends."""
    from .sandbox import ScriptSandbox

    root = request.config.rootpath
    started: list[ScriptSandbox] = []

    def start(
        *scripts: str | Path,
        config: Mapping[str, Any] | str | Path | None = None,
        send: bool = False,
    ) -> ScriptSandbox:
        settings = root / config if isinstance(config, str | Path) else config
        sandbox = ScriptSandbox(
            [root / script for script in scripts],
            settings,
            send=send,
            folder=tmp_path_factory.mktemp("dicomd"),
            base=root,
        )
        started.append(sandbox)
        return sandbox.start()

    yield start
    for sandbox in reversed(started):
        sandbox.stop()


class DicomMaker:
    """``dicomd_dicom(**tags)``: one instance; ``dicomd_dicom.series(count, **tags)``: the
    instances of one series. Tags are DICOM keywords (``PatientID``, ``Modality``,
    ``StudyDescription``...); the others get plausible values and fresh UIDs."""

    def __call__(self, *, pixels: bool = True, **tags: Any) -> Dataset:
        from .synthetic import make_instance

        return make_instance(pixels=pixels, **tags)

    def series(self, count: int, *, pixels: bool = True, **tags: Any) -> list[Dataset]:
        from .synthetic import make_series

        return make_series(count, pixels=pixels, **tags)


@pytest.fixture
def dicomd_dicom() -> DicomMaker:
    """Makes small, valid DICOM instances (pydicom datasets) with the tags a test needs."""
    return DicomMaker()
