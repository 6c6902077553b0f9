"""load_run.py — vecfs-load's Run class (mount, unmount, cleanup by pid)
for the other bench scripts, which mount the same way. vecfs-load has no
.py suffix (it is a command), so it is loaded from its path."""

import importlib.machinery
import importlib.util
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def load_run_class():
    """vecfs-load's Run (mount, unmount, cleanup by pid)."""
    loader = importlib.machinery.SourceFileLoader("vecfs_load", os.path.join(HERE, "vecfs-load"))
    spec = importlib.util.spec_from_loader("vecfs_load", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod.Run
