from django.contrib.auth.decorators import login_not_required
from django.urls import path

from inspection.api import views

# Stations authenticate with their token, never with a browser login; the login redirect of
# the rest of the site does not apply here (a station without a token gets a JSON 401).
urlpatterns = [
    path(
        "inspections/",
        login_not_required(views.InspectionListView.as_view()),
        name="inspection-list",
    ),
    path(
        "inspections/<int:pk>/",
        login_not_required(views.InspectionDetailView.as_view()),
        name="inspection-detail",
    ),
]
