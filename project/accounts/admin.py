from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from .models import Tenant, User


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ("name", "tenant")
    search_fields = ("name",)


@admin.register(User)
class TenantUserAdmin(UserAdmin):
    list_display = ("username", "email", "tenant", "is_staff", "is_superuser")
    list_filter = ("tenant", "is_staff", "is_superuser")
    fieldsets = (*UserAdmin.fieldsets, ("Tenant", {"fields": ("tenant",)}))
