"""Station authentication: `Authorization: Bearer <station token>`, nothing else.

Browser sessions are not accepted here, so a logged-in user cannot act as a station.
"""

from dataclasses import dataclass

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from inspection.models import Station
from inspection.services import station_for_token


@dataclass
class StationPrincipal:
    station: Station
    is_authenticated: bool = True
    is_anonymous: bool = False


class StationTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != self.keyword.lower() or not token.strip():
            raise exceptions.AuthenticationFailed(
                "send the station token as 'Authorization: Bearer <token>'"
            )
        station = station_for_token(token.strip())
        if station is None:
            raise exceptions.AuthenticationFailed("the station token is not valid")
        return StationPrincipal(station=station), station

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="loupe-stations"'


class IsEnabledStation(permissions.BasePermission):
    def has_permission(self, request, view) -> bool:
        station = request.auth
        if not isinstance(station, Station):
            raise exceptions.NotAuthenticated("a station token is required")
        if not station.is_enabled:
            raise exceptions.PermissionDenied(f"station {station.name!r} is disabled")
        return True


class StationTokenScheme(OpenApiAuthenticationExtension):
    target_class = "inspection.api.auth.StationTokenAuthentication"
    name = "StationToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "The station's token."}
