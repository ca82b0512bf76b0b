from loupe.common.permissions import CAPABILITIES, role_of


def role(request):
    """The user's role, and `can`: what their role allows, named as loupe.common.permissions
    names it, so templates never spell a permission themselves."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "role": role_of(user),
        "can": {name: user.has_perm(permission) for name, permission in CAPABILITIES.items()},
    }
