"""Admin for saved tasks and secrets."""

from django.contrib import admin

# --- saved tasks ---
from django.forms import ModelForm, Textarea, ValidationError

from nodes import saved_tasks
from nodes.models import SavedTask


class SavedTaskAdminForm(ModelForm):
    """The same checks as the API (nodes.saved_tasks), each error on its form field."""

    class Meta:
        model = SavedTask
        fields = ["owner", "kind", "name", "description", "config"]
        widgets = {"config": Textarea(attrs={"rows": 16, "cols": 100, "style": "font-family: monospace"})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["kind"].disabled = True  # its config was checked against this kind's node type

    def clean(self):
        cleaned = super().clean()
        owner, kind = cleaned.get("owner"), cleaned.get("kind")
        if owner is None or kind is None or self.errors:
            return cleaned
        errors: dict[str, list[str]] = {}
        try:
            cleaned["name"] = saved_tasks.check_name(owner, kind, cleaned.get("name"), exclude=self.instance.pk)
        except saved_tasks.SavedTaskInvalid as invalid:
            errors["name"] = [error["message"] for error in invalid.errors]
        problems = saved_tasks.config_errors(kind, cleaned.get("config"))
        if problems:
            errors["config"] = [f"{error['field']}: {error['message']}" for error in problems]
        if errors:
            raise ValidationError(errors)
        return cleaned


@admin.register(SavedTask)
class SavedTaskAdmin(admin.ModelAdmin):
    """Written through nodes.saved_tasks, like the API."""

    form = SavedTaskAdminForm
    list_display = ["name", "kind", "owner", "description", "updated_at"]
    list_filter = ["kind", "owner"]
    search_fields = ["name", "description"]

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            saved_tasks.update_saved_task(
                obj, name=data["name"], description=data["description"], config=data["config"]
            )
        else:
            saved = saved_tasks.create_saved_task(
                owner=data["owner"],
                kind=data["kind"],
                name=data["name"],
                description=data["description"],
                config=data["config"],
            )
            obj.pk = saved.pk
            obj.refresh_from_db()

    def delete_model(self, request, obj):
        saved_tasks.delete_saved_task(obj)

    def delete_queryset(self, request, queryset):
        for task in queryset:
            saved_tasks.delete_saved_task(task)


# --- secrets ---
from django import forms  # noqa: E402
from django.utils.decorators import method_decorator  # noqa: E402
from django.views.decorators.debug import sensitive_post_parameters  # noqa: E402

from nodes import secrets  # noqa: E402
from nodes.models import Secret  # noqa: E402


class SecretAdminForm(forms.ModelForm):
    """The value is a password field that is never filled in: typed in, encrypted, not shown."""

    value = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Stored encrypted and never shown. When changing a secret, leave it empty to keep the value.",
    )

    class Meta:
        model = Secret
        fields = ["owner", "name", "description"]

    def clean_name(self):
        try:
            return secrets.check_name(self.cleaned_data.get("name"))
        except secrets.SecretError as error:
            raise forms.ValidationError(error.message) from None

    def clean_value(self):
        value = self.cleaned_data.get("value")
        if not value:
            if self.instance.pk is None:
                raise forms.ValidationError("A new secret needs a value.")
            return None
        try:
            return secrets.check_value(value)
        except secrets.SecretError as error:
            raise forms.ValidationError(error.message) from None


@admin.register(Secret)
class SecretAdmin(admin.ModelAdmin):
    form = SecretAdminForm
    list_display = ["name", "owner", "description", "updated_at"]
    list_filter = ["owner"]
    search_fields = ["name", "description"]

    @method_decorator(sensitive_post_parameters("value"))
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        return super().changeform_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        # The form has checked the name (also its uniqueness per owner) and the value.
        secrets.update_secret(obj, value=form.cleaned_data.get("value"))
