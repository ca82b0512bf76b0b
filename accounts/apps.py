from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _create_role_groups(sender, using, **kwargs):
    from accounts.roles import ensure_role_groups

    ensure_role_groups()


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self):
        # Permissions exist only after migrate; accounts is the last app, so every other app's
        # permissions are in place when this runs.
        post_migrate.connect(_create_role_groups, sender=self)
