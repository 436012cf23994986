from panther_base_helpers import deep_get

ALLOW_ROLES_VIA_IDP = False


def rule(event):
    if event.get("eventName") != "ConsoleLogin":
        return False
    extra = event.get("additionalEventData", {})
    if ALLOW_ROLES_VIA_IDP and extra.get("MFAUsed") == "No":
        return False
    if deep_get(event, "userIdentity", "type") == "AssumedRole":
        return False
    if extra.get("SamlProviderArn") is not None:
        return False
    return (
        event.get("responseElements", {}).get("ConsoleLogin") == "Success"
        and event.deep_get("userIdentity", "sessionContext", "attributes", "mfaAuthenticated")
        != "true"
    )


def title(event):
    return f"Console login without MFA for {deep_get(event, 'userIdentity', 'arn')}"
