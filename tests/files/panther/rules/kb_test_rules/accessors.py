WEB_SERVERS = {"w3wp.exe", "httpd.exe", "nginx.exe"}
SHELLS = ("cmd.exe", "powershell.exe")
DOWNLOAD_WORDS = ["http://", "https://"]


def rule(event):
    parent = event.udm("parent_process_name").lower()
    if parent not in WEB_SERVERS:
        return False
    if event["event"]["ImageFileName"].endswith(SHELLS):
        return True
    command = event.deep_get("event", "CommandLine", default="")
    return (
        any(word in command for word in DOWNLOAD_WORDS)
        and command.startswith("certutil")
        and event.get("event", {}).get("ParentProcessId") > 4
    )
