"""npm packages enter an image from an npm cache fetched on the host, once per lock: the
build context carries it as npm-cache/ (chaos.runtime.images), and a host without npm is
an environment problem that names the lock file."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from chaos.errors import EnvironmentProblem
from chaos.runtime import images
from chaos.runtime.images import ImageSpec


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "gw"
    folder.mkdir()
    (folder / "Dockerfile").write_text("FROM scratch\n")
    (folder / "package.json").write_text('{"dependencies": {"x": "1.0.0"}}\n')
    (folder / "package-lock.json").write_text('{"lockfileVersion": 3}\n')
    return folder


def test_a_fetched_cache_is_reused_and_shipped_as_npm_cache(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "state_dir", lambda: tmp_path / "state")
    folder = _folder(tmp_path)
    monkeypatch.setattr(images.shutil, "which", lambda name: None)  # npm must not be needed
    lock_hash = images.hashlib.sha256((folder / "package-lock.json").read_bytes()).hexdigest()[:12]
    target = tmp_path / "state" / "npm-cache" / lock_hash
    (target / "cache" / "_cacache").mkdir(parents=True)
    (target / "cache" / "_cacache" / "index").write_text("entry")
    (target / ".complete").touch()
    assert images.npm_cache(folder / "package-lock.json") == target
    buf = images._context_tar(ImageSpec("gw", folder), None, target)
    with tarfile.open(fileobj=buf) as tar:
        names = tar.getnames()
    assert "npm-cache/_cacache/index" in names and "package-lock.json" in names
    assert not any(".complete" in name for name in names)


def test_without_npm_on_the_host_the_lock_is_named(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "state_dir", lambda: tmp_path / "state")
    folder = _folder(tmp_path)
    monkeypatch.setattr(images.shutil, "which", lambda name: None)
    with pytest.raises(EnvironmentProblem, match="package-lock.json needs npm"):
        images.npm_cache(folder / "package-lock.json")
