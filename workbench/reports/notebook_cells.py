"""The cells every method report notebook (``notebooks/methods/<method>.ipynb``) starts with.

A report opens its run and shows the header line (:func:`open_report`, :func:`show_header`), then
its training curves (:func:`show_training_curves`); what follows is the method's own analysis.

Examples
--------
>>> run, card = open_report(run_dir)  # doctest: +SKIP
>>> show_header(run, card, f"Selection: **{card['mada']['selection']}**.")  # doctest: +SKIP
>>> show_training_curves(run, phases=("source", "mada_stage1"), metrics=("loss", "miou"))  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


def open_report(run_dir: str | os.PathLike) -> tuple[Path, dict]:
    """The run directory and its model card (read with :func:`workbench.training.read_card`)."""
    from workbench.training import read_card

    run = Path(run_dir)
    return run, read_card(run)


def header_text(run: Path, card: dict, details: str = "") -> str:
    """The header line (Markdown): run, architecture and its arguments, data, seed, preset,
    config hash, training time and device, then ``details`` (the method's own facts)."""
    data, kwargs = card["data"], card.get("architecture_kwargs")
    text = (f"**Run** `{run}`: `{card['architecture']}`{f' {kwargs}' if kwargs else ''} trained on "
            f"`{data['name']}` ({data.get('description', '')}; seed {card['seed']}, preset `{card.get('preset')}`, "
            f"config hash `{card['config_hash'][:12]}`, {card.get('wall_time_s', float('nan')):.0f} s of training "
            f"in all on {card.get('device')}).")
    return f"{text} {details}" if details else text


def show_header(run: Path, card: dict, details: str = "") -> None:
    """Display :func:`header_text` as the report's first output."""
    from IPython.display import Markdown, display

    display(Markdown(header_text(run, card, details)))


def show_training_curves(runs: str | os.PathLike | Sequence[str | os.PathLike], *, phases: Sequence[str] = (),
                         metrics: Sequence[str] = ("loss", "acc"), labels: Sequence[str] | None = None):
    """Plot and show the training curves of runs, or of a run's phases.

    Parameters
    ----------
    runs : path or sequence of paths
        Run directories (each with ``metrics.csv``).
    phases : sequence of str, optional
        Names of phases of the single run ``runs`` (``RUN/phases/<name>``): those that were
        trained (have a ``metrics.csv``) are plotted, labelled by their names.
    metrics, labels
        As :func:`workbench.reports.training_figures.plot_training_curves`.

    Returns
    -------
    matplotlib.figure.Figure or None
        None when ``phases`` names no trained phase (nothing is shown).
    """
    import matplotlib.pyplot as plt

    from workbench.reports.training_figures import plot_training_curves

    if phases:
        trained = [p for p in phases if (Path(runs) / "phases" / p / "metrics.csv").is_file()]
        if not trained:
            return None
        runs, labels = [Path(runs) / "phases" / p for p in trained], trained
    fig = plot_training_curves(runs, metrics=metrics, labels=labels)
    plt.show()
    return fig
