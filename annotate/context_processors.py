from .roles import ANNOTATOR, ENGINEER, MANAGER, REVIEWER, user_roles


def roles(request):
    held = user_roles(request.user) if hasattr(request, "user") else set()
    return {
        "is_annotator": ANNOTATOR in held,
        "is_engineer": ENGINEER in held,
        "is_manager": MANAGER in held,
        "is_reviewer": REVIEWER in held,
    }
