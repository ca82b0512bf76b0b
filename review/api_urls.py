from django.urls import path

from review import api

app_name = "review-api"
urlpatterns = [
    path("next", api.as_view(api.NextItemView), name="next"),
    path("items/<int:pk>/image", api.as_view(api.ItemImageView), name="image"),
    path("items/<int:pk>/decide", api.as_view(api.DecideView), name="decide"),
    path("items/<int:pk>/undo", api.as_view(api.UndoView), name="undo"),
    path("items/<int:pk>/keep", api.as_view(api.KeepView), name="keep"),
    path("items/<int:pk>/release", api.as_view(api.ReleaseView), name="release"),
]
