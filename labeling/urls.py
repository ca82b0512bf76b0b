from django.urls import path

from labeling import views

app_name = "labeling"
urlpatterns = [
    path("inspections/<int:pk>/label/", views.label_page, name="label"),
    path("inspections/<int:pk>/annotations/", views.annotations, name="annotations"),
    path("inspections/<int:pk>/history/", views.history_page, name="history"),
    path("data/", views.data_page, name="data"),
]
