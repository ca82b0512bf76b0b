import sys

from django.core.management.base import BaseCommand, CommandError

from accounts.services import create_user
from loupe.common.errors import InvalidInput
from loupe.common.permissions import ROLES


class Command(BaseCommand):
    help = "Create a user with a role and the lines they work; the password is read from stdin."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=ROLES)
        parser.add_argument("--line", action="append", default=[], dest="lines")
        parser.add_argument(
            "--password-from-stdin",
            action="store_true",
            help="Read the password from the first line of stdin (keeps it out of shell history).",
        )

    def handle(self, *args, username, role, lines, password_from_stdin, **options):
        if not password_from_stdin:
            raise CommandError("pass --password-from-stdin and the password on stdin")
        password = sys.stdin.readline().rstrip("\n")
        try:
            user = create_user(username=username, role=role, line_names=lines, password=password)
        except InvalidInput as error:
            raise CommandError(str(error)) from error
        where = ", ".join(lines) if lines else "every line"
        self.stdout.write(f"created {role} {user.username} on {where}")
