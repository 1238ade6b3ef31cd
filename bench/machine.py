"""One line about the machine a figure was measured on (``affectkit.machine.describe``); benchmarks import it."""

from __future__ import annotations

from affectkit.machine import describe

if __name__ == "__main__":
    print(describe())
