"""The transfer-learning notebook is executed, so it cannot rot."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "transfer_learning.ipynb"


def _python_kernel_available() -> bool:
    try:
        from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    except ImportError:
        return False
    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        return False
    return True


def test_transfer_learning_notebook_executes(monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # the kernel must import this checkout, whether or not it is installed
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    if _python_kernel_available():
        from nbclient import NotebookClient

        client = NotebookClient(
            notebook, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(ROOT)}}
        )
        client.execute()  # raises CellExecutionError, with the cell and traceback, on failure
    else:  # no Jupyter kernel here: run the code cells in order, in one namespace
        namespace = {"__name__": "__main__"}
        monkeypatch.chdir(ROOT)
        for i, cell in enumerate(notebook.cells):
            if cell.cell_type == "code":
                exec(compile(cell.source, f"{NOTEBOOK.name}[cell {i}]", "exec"), namespace)
