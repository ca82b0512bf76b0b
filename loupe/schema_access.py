"""Who may read the OpenAPI schema and its Swagger page: anyone who may use an API.

A station (its token), a script (a user's API token) or a signed-in user (a session). The two
kinds of token share the Bearer scheme, so the prefix says which one to check: each
authentication class alone refuses the other's tokens.
"""

from rest_framework import authentication, exceptions

from accounts.api_auth import ApiTokenAuthentication
from inspection.api.auth import StationTokenAuthentication
from inspection.services import TOKEN_PREFIX as STATION_TOKEN_PREFIX


class SchemaReaderAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return authentication.SessionAuthentication().authenticate(request)
        _, _, token = header.partition(" ")
        if token.strip().startswith(STATION_TOKEN_PREFIX):
            principal, station = StationTokenAuthentication().authenticate(request)
            if not station.is_enabled:
                raise exceptions.PermissionDenied(f"station {station.name!r} is disabled")
            return principal, station
        return ApiTokenAuthentication().authenticate(request)

    def authenticate_header(self, request) -> str:
        # a 401, not a 403, for a request without credentials
        return 'Bearer realm="loupe-api"'
