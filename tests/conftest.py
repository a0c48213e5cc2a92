"""Suite-wide collection order: the slow end-to-end tests first, the demo first of all.

``make test`` runs the suite on two pytest-xdist workers (``--dist worksteal``); starting
the longest tests first lets the two workers finish together instead of one worker
starting a long test when the other has nothing left to do. (The demo's own test, marked
``demo``, runs apart with ``make test-demo``; a plain ``pytest`` starts it first.) The order
is a deterministic function of the collected items, as xdist requires of every worker.
"""


def _priority(item) -> tuple[int, int]:
    slow = item.get_closest_marker("slow") is not None
    demo = item.name.startswith("test_demo_")
    return (0 if slow else 1, 0 if demo else 1)


def pytest_collection_modifyitems(session, config, items):
    items.sort(key=_priority)  # stable: the file order is kept within each group
