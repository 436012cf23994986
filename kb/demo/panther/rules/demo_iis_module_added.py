def rule(event):
    if event.get("ParentImage", "").lower().endswith("\\msdeploy.exe"):
        return False
    command_line = event.get("CommandLine", "")
    return event.get("Image", "").lower().endswith("\\appcmd.exe") and "install module" in (
        command_line
    )
