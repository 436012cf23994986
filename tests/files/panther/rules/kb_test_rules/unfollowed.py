from panther_base_helpers import aws_cloudtrail_success


def rule(event):
    if not aws_cloudtrail_success(event):
        return False
    for resource in event.get("resources", []):
        if resource.get("type") == "AWS::IAM::Role":
            return True
    return event.get("eventName") == "AssumeRole"
