from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts import tokens
from loupe.common.errors import InvalidInput


class Command(BaseCommand):
    help = (
        "Create an API token for a user's scripts and print it once (only its hash is kept). "
        "The user revokes it on their API tokens page, an admin in admin."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", required=True, help="what the token is for")
        parser.add_argument(
            "--days",
            type=int,
            default=tokens.DEFAULT_DAYS,
            help=f"days until it expires, 1 to {tokens.MAX_DAYS} (default {tokens.DEFAULT_DAYS})",
        )

    def handle(self, *args, username, name, days, **options):
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"no active user named {username!r}")
        try:
            token, raw = tokens.issue_api_token(
                user=user, name=name, expires_at=tokens.expiry_in_days(days)
            )
        except InvalidInput as error:
            raise CommandError(str(error)) from error
        expires = token.expires_at.strftime("%Y-%m-%d %H:%M UTC")
        self.stderr.write(f"token {token.name} for {username}, expires {expires}; shown once:")
        self.stdout.write(raw)
