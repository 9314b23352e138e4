"""The core never imports the UI: click and rich stay in cli.py and render/."""

from __future__ import annotations

import subprocess
import sys

import pytest

CORE = [
    "maps",
    "elf",
    "errors",
    "procfs",
    "classify",
    "lesson",
    "picture",
    "process",
    "explain",
    "run",
    "units",
    "sampler",
    "watch",
    "smaps",
    "snapshot",
    "files",
]


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_neither_click_nor_rich(module):
    code = (
        f"import sys, procmap.{module}\n"
        "ui = sorted(m for m in sys.modules if m.split('.')[0] in ('click', 'rich'))\n"
        "assert not ui, ui\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_python_api_at_work_imports_neither():
    code = (
        "import sys, procmap\n"
        "pm = procmap.read_map('self')\n"
        "procmap.where('self', [pm.regions[0].start])\n"
        "procmap.explain_elf(sys.executable).to_dict()\n"
        "ui = sorted(m for m in sys.modules if m.split('.')[0] in ('click', 'rich'))\n"
        "assert not ui, ui\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
