from django.urls import path

from monitoring import views

app_name = "monitoring"
urlpatterns = [
    path("lines/<int:pk>/monitoring/", views.line_monitoring, name="line"),
]
