from django import forms
from django.contrib.auth.models import User

from .models import JUDGEMENT_KINDS, Project
from .roles import ANNOTATOR

MAX_IMPORT_BYTES = 50 * 1024 * 1024


class ProjectForm(forms.ModelForm):
    DEFAULTED = ("gold_rate", "gold_min_accuracy", "gold_min_judged")
    judgement_kinds = forms.MultipleChoiceField(
        choices=list(JUDGEMENT_KINDS.items()), widget=forms.CheckboxSelectMultiple,
        initial=["ranking"],
        help_text="Pairwise applies to items of two candidates; larger items are ranked.",
    )
    rating_dimensions = forms.CharField(
        required=False, initial="helpfulness, harmlessness, honesty",
        help_text="Comma-separated rubric dimensions for ratings.",
    )

    class Meta:
        model = Project
        fields = ["name", "slug", "description", "guidelines", "judgement_kinds",
                  "rating_dimensions", "rating_scale", "overlap", "ordering", "lease_seconds",
                  "max_pending", "undo_seconds", "annotators", "gold_rate", "gold_min_accuracy",
                  "gold_min_judged", "gold_pause", "review_threshold"]
        widgets = {
            "description": forms.Textarea(attrs={"rows": 2}),
            "guidelines": forms.Textarea(attrs={"rows": 8}),
            "annotators": forms.CheckboxSelectMultiple,
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["annotators"].queryset = User.objects.filter(
            groups__name=ANNOTATOR
        ).order_by("username")
        if self.instance.pk:
            self.initial["rating_dimensions"] = ", ".join(self.instance.rating_dimensions)
        # Quality settings keep their defaults when a form (or an older client) leaves them out.
        for name in self.DEFAULTED:
            self.fields[name].required = False

    def clean_rating_dimensions(self):
        raw = self.cleaned_data["rating_dimensions"]
        dims = [d.strip().lower().replace(" ", "_") for d in raw.split(",") if d.strip()]
        if len(set(dims)) != len(dims):
            raise forms.ValidationError("Each dimension may appear once.")
        if any(not d.replace("_", "").isalnum() for d in dims):
            raise forms.ValidationError("Use letters, digits and spaces in dimension names.")
        return dims

    def clean(self):
        data = super().clean()
        for name in self.DEFAULTED:
            if data.get(name) is None and name not in self.errors:
                data[name] = Project._meta.get_field(name).default
        if "rating" in data.get("judgement_kinds", []) and not data.get("rating_dimensions"):
            self.add_error("rating_dimensions", "Ratings need at least one dimension.")
        return data


class ImportForm(forms.Form):
    file = forms.FileField(help_text="JSONL (one object per line) or CSV with a 'prompt' column.")

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_IMPORT_BYTES:
            raise forms.ValidationError("The file is larger than 50 MB; split it and import parts.")
        if not upload.name.lower().endswith((".jsonl", ".json", ".ndjson", ".csv")):
            raise forms.ValidationError("Use a .jsonl or .csv file.")
        return upload
