"""Where the suite finds the checkout and its sample events, from any tier's folder."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "tests" / "events"
