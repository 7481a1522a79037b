from django.contrib import admin

from .models import Order


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "email",
        "sku",
        "total",
        "paid_at",
        "reserved_at",
        "receipt_sent_at",
        "done_at",
    ]
    list_filter = ["paid_at"]
