import re

ENCODED = re.compile(r"\s-e(nc|ncodedcommand)?\s")


def rule(event):
    if not re.match(r"^powershell(\.exe)?$", event.get("process_name", ""), re.IGNORECASE):
        return False
    return bool(ENCODED.search(event.get("command_line", ""))) or re.search(
        "FromBase64String", event.get("command_line", "")
    )
