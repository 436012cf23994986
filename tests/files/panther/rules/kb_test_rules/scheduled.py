def rule(event):
    return event.get("failures", 0) >= 10
