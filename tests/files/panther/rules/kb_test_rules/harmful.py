import os
import sys
from pathlib import Path

MARKER = Path(__file__).with_name("EXECUTED")
MARKER.write_text("this rule file was executed\n", encoding="utf-8")
os.system(f"touch {MARKER}")
sys.exit("this rule file must never be imported")


def rule(event):
    MARKER.write_text("rule() was called\n", encoding="utf-8")
    return event.get("eventName") == "DeleteTrail"
