from django.urls import path

from review import views

app_name = "review"
urlpatterns = [
    path("", views.queue_page, name="queue"),
    path("claim", views.claim, name="claim"),
    path("items/<int:pk>/decide", views.decide, name="decide"),
    path("items/<int:pk>/undo", views.undo, name="undo"),
    path("items/<int:pk>/keep", views.keep, name="keep"),
    path("items/<int:pk>/release", views.release, name="release"),
]
