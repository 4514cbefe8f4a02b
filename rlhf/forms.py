import dataclasses

from django import forms

from .ml.config import DPO_LOSS_TYPES, PRESETS, RUN_CONFIGS, SampleConfig
from .models import ModelVersion

# How the generated run forms label, bound and group the config fields.
LABELS = {
    "per_device_train_batch_size": "Batch size",
    "num_train_epochs": "Epochs",
    "eval_fraction": "Held-out fraction",
    "lora_r": "LoRA rank",
    "lora_alpha": "LoRA alpha",
    "lora_dropout": "LoRA dropout",
    "use_lora": "Use LoRA",
    "precompute_ref_log_probs": "Precompute reference log-probs",
}
BOUNDS = {
    "learning_rate": (1e-8, 1.0),
    "per_device_train_batch_size": (1, 512),
    "gradient_accumulation_steps": (1, 1024),
    "num_train_epochs": (0.01, 100),
    "max_steps": (-1, 1_000_000),
    "max_length": (16, 32_768),
    "eval_fraction": (0.0, 0.5),
    "eval_steps": (0, 1_000_000),
    "early_stopping_patience": (0, 1000),
    "seed": (0, 2**31 - 1),
    "logging_steps": (1, 10_000),
    "checkpoint_steps": (0, 1_000_000),
    "lora_r": (1, 1024),
    "lora_alpha": (1, 4096),
    "lora_dropout": (0.0, 0.99),
    "min_agreement": (0.0, 1.0),
    "min_annotator_weight": (0.0, 1.0),
    "beta": (1e-4, 10.0),
    "center_rewards_coefficient": (0.0, 1.0),
    "desirable_weight": (0.01, 100.0),
    "undesirable_weight": (0.01, 100.0),
    "rating_threshold": (0.0, 1.0),
    "num_generations": (2, 64),
    "max_completion_length": (1, 4096),
    "temperature": (0.01, 5.0),
}
# Online RL may switch the KL penalty off.
ONLINE_BOUNDS = {"beta": (0.0, 10.0)}
CHOICES = {"loss_type": DPO_LOSS_TYPES}
GROUPS = (
    ("Training", ("learning_rate", "per_device_train_batch_size", "gradient_accumulation_steps",
                  "num_train_epochs", "max_steps", "max_length", "seed", "logging_steps",
                  "checkpoint_steps")),
    ("Held-out evaluation", ("eval_fraction", "eval_steps", "early_stopping_patience")),
    ("LoRA", ("use_lora", "lora_r", "lora_alpha", "lora_dropout")),
    ("Data filters", ("min_agreement", "exclude_flagged", "only_reviewed",
                      "min_annotator_weight")),
)
SHARED = {name for _, names in GROUPS for name in names}
# Read from the run's method: what it trains, in a sentence (shown above the form).
METHOD_HELP = {
    "reward": "trl.RewardTrainer on preference pairs: a score head on the base policy. Held-out "
    "pairwise accuracy and margin are reported; the result becomes the project's reward model "
    "and scores open items for active learning.",
    "dpo": "trl.DPOTrainer on preference pairs, against a frozen reference (the base policy, or "
    "its log-probs computed once up front).",
    "grpo": "trl.GRPOTrainer: samples several answers per prompt, scores them with a reward "
    "model, and moves towards the better ones relative to their group, with a KL penalty to "
    "the reference.",
    "rloo": "trl.RLOOTrainer: REINFORCE with a leave-one-out baseline over several answers per "
    "prompt, scored by a reward model, with a KL penalty to the reference.",
    "sft": "trl.SFTTrainer on corrections, reviewers' best answers and gold answers.",
    "kto": "trl.KTOTrainer on answers marked good or bad (ratings, best and worst of rankings, "
    "corrections), no pairs needed.",
}


def _config_field(method, f, default):
    label = LABELS.get(f.name, f.name.replace("_", " ").capitalize())
    help_text = f.metadata.get("help", "")
    low, high = {**BOUNDS, **(ONLINE_BOUNDS if method in ("grpo", "rloo") else {})}.get(
        f.name, (None, None)
    )
    if f.name in CHOICES:
        return forms.ChoiceField(label=label, choices=[(c, c) for c in CHOICES[f.name]],
                                 initial=default, help_text=help_text)
    if isinstance(default, bool):
        return forms.BooleanField(label=label, initial=default, required=False,
                                  help_text=help_text)
    # Left empty, a number takes the config's default.
    if isinstance(default, int):
        return forms.IntegerField(label=label, initial=default, min_value=low, max_value=high,
                                  help_text=help_text, required=False)
    if isinstance(default, float):
        return forms.FloatField(label=label, initial=default, min_value=low, max_value=high,
                                help_text=help_text, required=False)
    return forms.CharField(label=label, initial=default, help_text=help_text, required=False)


class RunForm(forms.Form):
    """A run of one method: a base policy plus the fields of the method's config class.

    The fields are generated from the config dataclass (its defaults and help lines), so the
    form, the CLI and the API accept the same settings; the config's validate() has the last
    word, before anything is queued.
    """

    method = None
    config_class = None

    base_model = forms.ModelChoiceField(
        queryset=ModelVersion.objects.none(),
        help_text="The policy to start from; its frozen copy is the reference where the "
        "method has one.",
    )

    def __init__(self, *args, project=None, preset=None, **kwargs):
        if preset:
            kwargs["initial"] = {**PRESETS[self.method][preset]["values"],
                                 **kwargs.get("initial", {})}
        super().__init__(*args, **kwargs)
        self.project = project
        self.fields["base_model"].queryset = policy_versions(project)
        if project is not None and project.current_model_id:
            self.fields["base_model"].initial = project.current_model_id
        if "reward_model" in self.fields:
            self.fields["reward_model"].queryset = reward_versions(project)

    @classmethod
    def build(cls, method):
        """The form class for one training method."""
        config_class = RUN_CONFIGS[method]
        defaults = config_class()
        attrs = {"method": method, "config_class": config_class}
        for f in dataclasses.fields(config_class):
            if f.name == "reward_model":
                attrs[f.name] = forms.ModelChoiceField(
                    queryset=ModelVersion.objects.none(), required=False,
                    empty_label="The project's current reward model",
                    help_text="The reward model that scores sampled answers while training.",
                )
            else:
                attrs[f.name] = _config_field(method, f, getattr(defaults, f.name))
        return type(f"{config_class.__name__}Form", (cls,), attrs)

    def groups(self):
        """(title, bound fields) in display order: the method's own settings first."""
        own = [name for name in self.fields if name != "base_model" and name not in SHARED]
        titled = [(f"{self.config_class.__name__.removesuffix('RunConfig')} settings", own),
                  *GROUPS]
        return [(title, [self[name] for name in names if name in self.fields])
                for title, names in titled if names]

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        values = {k: v for k, v in data.items() if k != "base_model" and v not in (None, "")}
        if "reward_model" in values:
            values["reward_model"] = values["reward_model"].pk
        try:
            # from_dict validates too: the config's own rules (e.g. steps or epochs) apply.
            self.config = self.config_class.from_dict(values)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        return data


# One form class per training method (?method=... on the page).
RUN_FORMS = {method: RunForm.build(method) for method in RUN_CONFIGS}


class GenerationForm(forms.Form):
    model_version = forms.ModelChoiceField(queryset=ModelVersion.objects.none())
    num_candidates = forms.IntegerField(
        label="Candidates per prompt", initial=2, min_value=2, max_value=8,
        help_text="Each prompt becomes one new item with this many responses.",
    )
    max_prompts = forms.IntegerField(
        initial=20, min_value=1, max_value=10_000,
        help_text="Prompts with the fewest model answers go first.",
    )
    max_new_tokens = forms.IntegerField(initial=112, min_value=1,
                                        max_value=2048)
    temperature = forms.FloatField(initial=SampleConfig.temperature, min_value=0.01,
                                   max_value=5.0)

    def __init__(self, *args, project=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model_version"].queryset = policy_versions(project)
        if project is not None and project.current_model_id:
            self.fields["model_version"].initial = project.current_model_id

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        try:
            self.config = SampleConfig(
                num_candidates=data["num_candidates"],
                max_new_tokens=data["max_new_tokens"],
                temperature=data["temperature"],
            )
            self.config.validate()
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        return data


def _versions(project, kind):
    from django.db.models import Q

    qs = ModelVersion.objects.filter(kind=kind)
    if project is not None:
        qs = qs.filter(Q(project=project) | Q(project__isnull=True))
    return qs


def policy_versions(project):
    return _versions(project, ModelVersion.Kind.POLICY)


def reward_versions(project):
    return _versions(project, ModelVersion.Kind.REWARD)


class LoopPolicyForm(forms.ModelForm):
    """The project's loop policy; run_settings are validated as the recipe's run configs."""

    run_settings = forms.JSONField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        help_text='Overrides per recipe step, e.g. {"reward": {"num_train_epochs": 2}, '
        '"dpo": {"beta": 0.1, "learning_rate": 5e-5}}. Empty: the methods\' defaults.',
    )

    class Meta:
        from .models import LoopPolicy

        model = LoopPolicy
        fields = ["enabled", "min_new_judgements", "recipe", "run_settings", "gate_win_rate",
                  "eval_prompts", "pause_on_refusal", "generate_after", "candidates_per_prompt",
                  "generate_prompts", "augment", "paraphrases_per_prompt"]
        labels = {"gate_win_rate": "Gate (minimum win-rate)",
                  "min_new_judgements": "New judgements per iteration"}
        help_texts = {
            "candidates_per_prompt": "Candidates per prompt the promoted model generates.",
            "generate_prompts": "Train prompts (fewest model candidates first) to generate for.",
            "paraphrases_per_prompt": "Paraphrases per prompt when augmenting.",
        }

    def clean_run_settings(self):
        value = self.cleaned_data.get("run_settings") or {}
        if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
            raise forms.ValidationError('Give a JSON object of objects, e.g. {"dpo": {"beta": '
                                        "0.1}}.")
        return value

    def clean(self):
        from .loop import RECIPES, LoopError, recipe_configs

        cleaned = super().clean()
        recipe = cleaned.get("recipe")
        settings = cleaned.get("run_settings")
        if recipe in RECIPES and settings is not None:
            unknown = set(settings) - {step for step, _ in RECIPES[recipe]}
            if unknown:
                self.add_error("run_settings", f"Not a step of this recipe: "
                               f"{', '.join(sorted(unknown))}.")
                return cleaned
            probe = self._meta.model(recipe=recipe, run_settings=settings)
            try:
                recipe_configs(probe)
            except LoopError as exc:
                self.add_error("run_settings", str(exc))
        if cleaned.get("candidates_per_prompt") is not None:
            try:  # the bound generation will enforce
                SampleConfig(num_candidates=cleaned["candidates_per_prompt"]).validate()
            except ValueError as exc:
                self.add_error("candidates_per_prompt", str(exc))
        return cleaned
