"""The core package must import and work without streamlit (only ui.py may use it)."""

import pkgutil
import subprocess
import sys

import promptdeck


def test_core_imports_without_streamlit() -> None:
    modules = [
        m.name
        for m in pkgutil.walk_packages(promptdeck.__path__, "promptdeck.")
        if m.name != "promptdeck.ui"
    ]
    code = (
        "import sys, importlib\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'streamlit' or name.startswith('streamlit.'):\n"
        "            raise ImportError('streamlit is blocked in this test')\n"
        "sys.meta_path.insert(0, Block())\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "assert 'streamlit' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert len(modules) >= 10
