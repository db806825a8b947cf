"""Versioned model artefacts on a directory every classifier copy can read.

    <root>/<version>/model.pkl.gz    the model: `local`'s, or `hybrid`'s (by the manifest's name)
    <root>/<version>/manifest.json   dataset sha256, counts by provenance, parent, metrics
    <root>/<version>/examples.csv    the exact dataset it was trained on

`<version>` is the model's own version (a hash of its training data, hyperparameters and
seed), so the same dataset always lands in the same place and a classifier loading a
version gets exactly what the control event named. Artefacts are pickles: the directory
must be writable only by the learner (see the local backend's module docstring).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.classifier.backends.local import MODEL_NAME as LOCAL_MODEL
from services.classifier.backends.local import LocalModel
from services.learning.dataset import Dataset

if TYPE_CHECKING:
    from services.learning.learner import Trainable

MODEL_FILE = "model.pkl.gz"
MANIFEST_FILE = "manifest.json"
EXAMPLES_FILE = "examples.csv"
_VERSION = re.compile(r"^[0-9a-f]{6,64}$")


class RegistryError(LookupError):
    """A version is not in the registry, or its name is not a version."""


@dataclass(frozen=True)
class Manifest:
    """What a registered version is and where it came from."""

    version: str
    model_name: str
    created_at: str
    dataset_sha256: str
    examples: int
    counts_by_provenance: dict[str, int]
    counts_by_label: dict[str, int]
    parent_version: str | None
    metrics: dict[str, float | int | None] = field(default_factory=dict)


class ModelRegistry:
    """Read and write model versions under one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, version: str) -> Path:
        """Return the directory of `version` (refusing names that are not versions)."""
        if not _VERSION.match(version):
            raise RegistryError(f"not a model version: {version!r}")
        return self.root / version

    def publish(
        self,
        model: Trainable,
        dataset: Dataset,
        *,
        parent_version: str | None,
        metrics: dict[str, float | int | None],
        now: datetime,
    ) -> Manifest:
        """Write model, dataset and manifest as version `model.info.version`; return it."""
        version = model.info.version
        manifest = Manifest(
            version=version,
            model_name=model.info.name,
            created_at=now.isoformat(),
            dataset_sha256=dataset.sha256,
            examples=len(dataset.judgements),
            counts_by_provenance=dataset.counts_by_provenance(),
            counts_by_label=dict(sorted(dataset.examples().counts().items())),
            parent_version=parent_version,
            metrics=metrics,
        )
        folder = self.path(version)
        folder.mkdir(parents=True, exist_ok=True)
        model.save(folder / MODEL_FILE)
        _write_atomically(folder / EXAMPLES_FILE, dataset.csv_bytes)
        # The manifest goes last: a version is complete once its manifest exists.
        body = json.dumps(asdict(manifest), indent=2, sort_keys=True).encode("utf-8")
        _write_atomically(folder / MANIFEST_FILE, body)
        return manifest

    def manifest(self, version: str) -> Manifest:
        """Return the manifest of `version`."""
        path = self.path(version) / MANIFEST_FILE
        try:
            raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as error:
            raise RegistryError(f"version {version} is not in {self.root}") from error
        return Manifest(**raw)

    def load(self, version: str, *, cache_dir: Path | None = None) -> Trainable:
        """Return the model of `version`, checking it is the version it claims to be.

        A hybrid model builds its encoder in `cache_dir` (the classifier's model cache).
        """
        manifest = self.manifest(version)
        path = self.path(version) / MODEL_FILE
        model: Trainable
        if manifest.model_name == LOCAL_MODEL:
            model = LocalModel.load(path)
        else:
            # Imported here: the hybrid backend needs the `minilm` extra.
            from services.classifier.backends.hybrid import MODEL_NAME, HybridModel

            if manifest.model_name != MODEL_NAME:
                raise RegistryError(f"{path}: unknown model {manifest.model_name!r}")
            model = HybridModel.load(path, cache_dir=cache_dir)
        if model.info.version != version:
            raise RegistryError(f"{self.path(version)} holds model {model.info.version}")
        return model

    def versions(self) -> list[Manifest]:
        """Return every complete version, oldest first."""
        if not self.root.is_dir():
            return []
        found = [
            self.manifest(p.name)
            for p in self.root.iterdir()
            if _VERSION.match(p.name) and (p / MANIFEST_FILE).exists()
        ]
        return sorted(found, key=lambda m: (m.created_at, m.version))


def _write_atomically(path: Path, data: bytes) -> None:
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as f:
        f.write(data)
    os.replace(f.name, path)
