from django.urls import path

from inspection.api import views

urlpatterns = [
    path("inspections/", views.InspectionListView.as_view(), name="inspection-list"),
    path("inspections/<int:pk>/", views.InspectionDetailView.as_view(), name="inspection-detail"),
]
