"""A page type with a searchable body and a reference to another page."""

from django.db import models
from wagtail.admin.panels import FieldPanel
from wagtail.models import Page
from wagtail.search import index


class ArticlePage(Page):
    body = models.TextField(blank=True)
    # A reference that Wagtail's reference index records (an article "uses" that page).
    related_page = models.ForeignKey(
        "wagtailcore.Page", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    search_fields = [*Page.search_fields, index.SearchField("body")]
    content_panels = [*Page.content_panels, FieldPanel("body"), FieldPanel("related_page")]
