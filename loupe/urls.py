from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from loupe import metrics_view, views
from loupe.common import api_errors

urlpatterns = [
    path("", views.home, name="home"),
    path("health/", views.health, name="health"),
    # for Prometheus: a scrape token or an allowed address (loupe.metrics_view)
    path("metrics", metrics_view.metrics_view, name="metrics"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("account/", include("accounts.urls")),
    path("review/", include("review.urls")),
    path("", include("inspection.urls")),
    path("", include("labeling.urls")),
    path("datasets/", include("datasets.urls")),
    path("models/", include("ml.urls")),
    path("", include("monitoring.urls")),
    path("api/v1/", include("inspection.api.urls")),
    path("api/v1/datasets/", include("datasets.api_urls")),
    path("api/v1/review/", include("review.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # the page is for people: without a session it sends them to the login page
    path(
        "api/docs/",
        login_required(SpectacularSwaggerSplitView.as_view(url_name="schema")),
        name="swagger-ui",
    ),
]

# a JSON 404 for an unknown URL under /api/, the site's page elsewhere
handler404 = api_errors.not_found
# a dependency that is down (database, broker, full disk) is a 503 with Retry-After, not a 500
handler500 = "loupe.common.unavailable.server_error"
