from django import forms

from .models import Project

MAX_IMPORT_BYTES = 50 * 1024 * 1024


class ProjectForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = ["name", "slug", "description", "guidelines", "overlap", "lease_seconds"]
        widgets = {
            "description": forms.Textarea(attrs={"rows": 2}),
            "guidelines": forms.Textarea(attrs={"rows": 8}),
        }


class ImportForm(forms.Form):
    file = forms.FileField(help_text="JSONL (one object per line) or CSV with a 'prompt' column.")

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_IMPORT_BYTES:
            raise forms.ValidationError("The file is larger than 50 MB; split it and import parts.")
        if not upload.name.lower().endswith((".jsonl", ".json", ".ndjson", ".csv")):
            raise forms.ValidationError("Use a .jsonl or .csv file.")
        return upload
