from django.urls import path

from . import views

urlpatterns = [
    path("enqueue/<str:name>/", views.enqueue),
    path("ping/", views.ping),
]
