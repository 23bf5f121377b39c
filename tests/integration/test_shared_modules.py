"""docker/shared: the reference services' common modules reach each of their images beside
app.py (and nothing else's image), and their local processes import them too."""

from __future__ import annotations

import subprocess
import sys

from chaos.runtime.images import SHARED_MODULES_FOR, spec_for_build_dir
from chaos.runtime.paths import project_root, shared_modules
from chaos.stack.processes import clean_env

DOCKER = project_root() / "docker"


def test_each_reference_image_carries_the_shared_modules_flat() -> None:
    shared = sorted(p.name for p in shared_modules().glob("*.py"))
    assert "tls_serving.py" in shared
    for name in SHARED_MODULES_FOR:
        files = spec_for_build_dir(DOCKER / name).files()
        assert all(files[module] == shared_modules() / module for module in shared), name
        dockerfile = (DOCKER / name / "Dockerfile").read_text(encoding="utf-8")
        assert "COPY *.py /app/" in dockerfile, name  # so they land beside app.py


def test_other_images_do_not() -> None:
    for name in ("netfault", "capture", "toxiproxy"):
        assert "tls_serving.py" not in spec_for_build_dir(DOCKER / name).files(), name


def test_a_local_process_imports_them_as_the_image_does() -> None:
    proc = subprocess.run([sys.executable, "-c", "import tls_serving; print(tls_serving.folder())"],
                          env=clean_env({}), cwd="/", capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "None"  # no TLS_DIR: plain HTTP
