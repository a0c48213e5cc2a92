"""Run the project's notebooks with papermill and convert them to HTML with nbconvert.

A notebook that fails leaves the executed ``.ipynb`` on disk (with the failing cell and its
traceback) and raises :class:`NotebookError`, which names the cell.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from workbench.errors import DataError, WorkbenchError
from workbench.storage import atomic_path

logger = logging.getLogger(__name__)

#: The Jupyter kernel the notebooks run on (``make setup`` installs it into the venv).
KERNEL_NAME = "python3"
#: Log level of the kernel process itself (its cells' output is unaffected).
KERNEL_LOG_LEVEL = "ERROR"
#: Run in the kernel before the first cell: tqdm's "IProgress not found" warning (no ipywidgets:
#: tqdm.auto falls back to its plain bar, which a report disables anyway) would print a red
#: box into every report.
KERNEL_STARTUP = 'import warnings; warnings.filterwarnings("ignore", message="IProgress not found")'
#: Environment variable that overrides where the notebooks are looked up.
NOTEBOOKS_ENV = "WORKBENCH_NOTEBOOKS"
NOTEBOOKS = {
    "quickstart": "01_quickstart.ipynb",
    "report": "02_similarity_report.ipynb",
    "figures": "03_figures.ipynb",
}


class NotebookError(WorkbenchError):
    """A notebook cell raised; the executed notebook was kept for inspection.

    Attributes
    ----------
    notebook : Path
        The executed notebook, holding the failing cell's output.
    cell_index : int or None
        Position of the failing cell in the saved executed notebook (0-based).
    execution_count : int or None
        The failing cell's ``In [n]`` number.
    source : str
        The failing cell's code.
    ename, evalue : str
        The exception's type name and message.
    """

    def __init__(self, notebook, *, cell_index=None, execution_count=None, source="", ename="", evalue=""):
        self.notebook = Path(notebook)
        self.cell_index = cell_index
        self.execution_count = execution_count
        self.source = source
        self.ename = ename
        self.evalue = evalue
        first_line = next((line for line in source.splitlines() if line.strip()), "")
        super().__init__(
            f"notebook cell {cell_index} (In [{execution_count}]: {first_line.strip()!r}) raised "
            f"{ename}: {evalue}; the executed notebook with the failing cell is {self.notebook}"
        )


def notebooks_dir() -> Path:
    """The folder of the project's notebooks: ``$WORKBENCH_NOTEBOOKS`` or ``<repo>/notebooks``."""
    configured = os.environ.get(NOTEBOOKS_ENV)
    folder = Path(configured) if configured else Path(__file__).resolve().parents[2] / "notebooks"
    if not folder.is_dir():
        raise DataError(
            f"notebook folder {folder} does not exist; run from a clone of the repository or set "
            f"${NOTEBOOKS_ENV} to the folder holding {sorted(NOTEBOOKS.values())}"
        )
    return folder


def notebook_path(name: str) -> Path:
    """Path of a project notebook by short name (``"quickstart"``, ``"report"``, ``"figures"``)."""
    if name not in NOTEBOOKS:
        raise DataError(f"unknown notebook {name!r}; expected one of {sorted(NOTEBOOKS)}")
    path = notebooks_dir() / NOTEBOOKS[name]
    if not path.is_file():
        raise DataError(f"notebook {path} is missing")
    return path


def execute_notebook(
    notebook: str | os.PathLike,
    output: str | os.PathLike,
    parameters: dict | None = None,
    *,
    kernel_name: str = KERNEL_NAME,
    cwd: str | os.PathLike | None = None,
    execution_timeout: float | None = None,
    log_output: bool = False,
) -> Path:
    """Execute ``notebook`` with papermill, writing the executed copy to ``output``.

    Parameters
    ----------
    notebook : path-like
        The input notebook; it must have a cell tagged ``parameters``.
    output : path-like
        Where the executed notebook goes (parent folders are created). It is written even
        when a cell fails.
    parameters : dict, optional
        Values injected after the ``parameters`` cell (JSON-compatible values).
    kernel_name : str, default: "python3"
        The Jupyter kernel.
    cwd : path-like, optional
        Working directory of the kernel; default: this process's, so that relative paths
        (parameters, ``$WORKBENCH_DATA_MIRROR=../shared/data``) mean the same in the kernel.
    execution_timeout : float, optional
        Seconds a single cell may run; default: no limit.
    log_output : bool, default: False
        Also send the cells' printed output to the ``papermill`` logger as they run.

    Returns
    -------
    Path
        ``output``.

    Raises
    ------
    NotebookError
        A cell raised. Its message names the cell and the executed notebook.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    logger.info("executing %s -> %s", notebook, output)
    try:
        papermill.execute_notebook(
            str(notebook),
            str(output),
            parameters=dict(parameters or {}),
            kernel_name=kernel_name,
            cwd=None if cwd is None else str(cwd),
            progress_bar=False,
            execution_timeout=execution_timeout,
            log_output=log_output,
            # the kernel's own start-up warnings ("Kernel is running over TCP without
            # encryption": it listens on localhost only) would land on the user's terminal
            extra_arguments=[f"--IPKernelApp.log_level={KERNEL_LOG_LEVEL}",
                             f"--IPKernelApp.exec_lines={KERNEL_STARTUP}"],
        )
    except PapermillExecutionError as exc:
        raise NotebookError(
            output,
            cell_index=_failing_cell(output, default=exc.cell_index),
            execution_count=exc.exec_count,
            source=exc.source,
            ename=exc.ename,
            evalue=exc.evalue,
        ) from None
    return output


def _failing_cell(notebook: Path, default: int | None) -> int | None:
    """Index of the first cell with an error output in the saved notebook (papermill adds
    a banner cell at the top, so its own index is off by one there)."""
    import nbformat

    try:
        nb = nbformat.read(notebook, as_version=4)
    except (OSError, ValueError):
        return default
    for index, cell in enumerate(nb.cells):
        if any(out.get("output_type") == "error" for out in cell.get("outputs", [])):
            return index
    return default


def export_html(notebook: str | os.PathLike, html: str | os.PathLike | None = None, *,
                exclude_input: bool = False) -> Path:
    """Convert an executed notebook to one self-contained HTML file (figures embedded).

    Every image gets alternative text: the ``alt`` its output carries
    (``IPython.display.Image(..., alt=...)``), else a description naming its cell, so that
    nbconvert has none to warn about.

    Parameters
    ----------
    notebook : path-like
        The executed ``.ipynb``.
    html : path-like, optional
        The output path; default: beside the notebook with suffix ``.html``.
    exclude_input : bool, default: False
        Leave the code cells out (nbconvert's ``--no-input``): only Markdown and outputs,
        so a report reads as a document.

    Returns
    -------
    Path
        The HTML file, written atomically.
    """
    import nbformat
    from nbconvert import HTMLExporter

    notebook = Path(notebook)
    html = Path(html) if html is not None else notebook.with_suffix(".html")
    exporter = HTMLExporter(embed_images=True, exclude_input_prompt=True, exclude_output_prompt=True,
                            exclude_input=exclude_input)
    nb = nbformat.read(notebook, as_version=4)
    _images_with_alt_text(nb)
    body, _ = exporter.from_notebook_node(nb)
    with atomic_path(html) as tmp:
        tmp.write_text(body, encoding="utf-8")
    return html


_IMAGE_TYPES = ("image/png", "image/jpeg")


def _images_with_alt_text(nb) -> None:
    """Turn each image output into an HTML ``<img>`` with ``alt`` text, in place.

    nbconvert's HTML template drops the ``alt`` of an image's metadata and warns "Alternative
    text is missing"; an HTML output that carries it is exported as is.
    """
    import html as html_lib

    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            kind = next((k for k in _IMAGE_TYPES if k in data), None)
            if kind is None or output.get("output_type") not in ("display_data", "execute_result"):
                continue
            meta = output.get("metadata", {}).get(kind, {}) or {}
            alt = meta.get("alt") or output.get("metadata", {}).get("alt") or f"figure (output of cell {index})"
            payload = data[kind] if isinstance(data[kind], str) else "".join(data[kind])
            size = "".join(f' {dim}="{int(meta[dim])}"' for dim in ("width", "height") if meta.get(dim))
            tag = (f'<img src="data:{kind};base64,{payload.strip()}" alt="{html_lib.escape(str(alt))}"'
                   f"{size}/>")
            output["data"] = {"text/html": tag, "text/plain": data.get("text/plain", str(alt))}
