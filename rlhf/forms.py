from django import forms

from .ml.config import DPO_LOSS_TYPES, DPORunConfig, RewardRunConfig, SampleConfig
from .models import ModelVersion


class _RunForm(forms.Form):
    """A run form: a base policy plus the fields of `config_class`, validated by it."""

    config_class = None

    def __init__(self, *args, project=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["base_model"].queryset = policy_versions(project)
        if project is not None and project.current_model_id:
            self.fields["base_model"].initial = project.current_model_id

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        try:
            # from_dict validates too: the config's own rules (e.g. steps or epochs) apply.
            self.config = self.config_class.from_dict(
                {k: v for k, v in data.items() if k != "base_model"}
            )
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        return data


class DPORunForm(_RunForm):
    config_class = DPORunConfig

    base_model = forms.ModelChoiceField(
        queryset=ModelVersion.objects.none(),
        help_text="The policy to start from; its copy is the frozen reference model.",
    )
    learning_rate = forms.FloatField(
        initial=DPORunConfig.learning_rate, min_value=1e-8, max_value=1.0,
        help_text="Step size; 1e-6–1e-4 for real models, larger for the tiny demo model.",
    )
    beta = forms.FloatField(
        initial=DPORunConfig.beta, min_value=1e-4, max_value=10.0,
        help_text="How far the policy may move from the reference (higher = closer).",
    )
    loss_type = forms.ChoiceField(
        choices=[(t, t) for t in DPO_LOSS_TYPES], initial=DPORunConfig.loss_type,
        help_text="sigmoid is the original DPO loss; ipo is more robust to noisy labels.",
    )
    per_device_train_batch_size = forms.IntegerField(
        label="Batch size", initial=DPORunConfig.per_device_train_batch_size,
        min_value=1, max_value=512, help_text="Preference pairs per step.",
    )
    num_train_epochs = forms.FloatField(
        label="Epochs", initial=DPORunConfig.num_train_epochs, min_value=0.01, max_value=100,
        help_text="Passes over the training pairs (ignored when max steps is set).",
    )
    max_steps = forms.IntegerField(
        initial=DPORunConfig.max_steps, min_value=-1, max_value=1_000_000,
        help_text="Stop after this many steps; -1 trains for the epochs above.",
    )
    eval_fraction = forms.FloatField(
        label="Held-out fraction", initial=DPORunConfig.eval_fraction,
        min_value=0.0, max_value=0.5,
        help_text="Share of prompts kept out of training for evaluation (split by prompt).",
    )
    seed = forms.IntegerField(initial=DPORunConfig.seed, min_value=0, max_value=2**31 - 1)


class RewardRunForm(_RunForm):
    """Hyper-parameters of a reward-model run (trl.RewardTrainer)."""

    config_class = RewardRunConfig

    base_model = forms.ModelChoiceField(
        queryset=ModelVersion.objects.none(),
        help_text="The policy whose body the reward model starts from (a fresh score head).",
    )
    learning_rate = forms.FloatField(
        initial=RewardRunConfig.learning_rate, min_value=1e-8, max_value=1.0,
        help_text="Step size; 1e-6–1e-5 for real models, larger for the tiny demo model.",
    )
    per_device_train_batch_size = forms.IntegerField(
        label="Batch size", initial=RewardRunConfig.per_device_train_batch_size,
        min_value=1, max_value=512, help_text="Preference pairs per forward pass.",
    )
    gradient_accumulation_steps = forms.IntegerField(
        initial=RewardRunConfig.gradient_accumulation_steps, min_value=1, max_value=1024,
        help_text="Forward passes summed into one optimizer step (a larger effective batch).",
    )
    num_train_epochs = forms.FloatField(
        label="Epochs", initial=RewardRunConfig.num_train_epochs, min_value=0.01, max_value=100,
        help_text="Passes over the training pairs (ignored when max steps is set).",
    )
    max_steps = forms.IntegerField(
        initial=RewardRunConfig.max_steps, min_value=-1, max_value=1_000_000,
        help_text="Stop after this many steps; -1 trains for the epochs above.",
    )
    max_length = forms.IntegerField(
        initial=RewardRunConfig.max_length, min_value=16, max_value=32_768,
        help_text="Longest prompt+answer in tokens; longer pairs are left out of training.",
    )
    center_rewards_coefficient = forms.FloatField(
        initial=RewardRunConfig.center_rewards_coefficient, min_value=0.0, max_value=1.0,
        help_text="Pulls scores towards zero mean (0.01 is typical); 0 turns it off.",
    )
    eval_fraction = forms.FloatField(
        label="Held-out fraction", initial=RewardRunConfig.eval_fraction,
        min_value=0.0, max_value=0.5,
        help_text="Share of prompts kept out of training to measure pairwise accuracy.",
    )
    eval_steps = forms.IntegerField(
        initial=RewardRunConfig.eval_steps, min_value=0, max_value=1_000_000,
        help_text="Also evaluate every this many steps; 0 evaluates once, at the end.",
    )
    seed = forms.IntegerField(
        initial=RewardRunConfig.seed, min_value=0, max_value=2**31 - 1,
        help_text="Fixes the data order and the score head's initial weights.",
    )


# The run form offers one method at a time: ?method=reward (or a posted "method").
RUN_FORMS = {"dpo": DPORunForm, "reward": RewardRunForm}


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


def policy_versions(project):
    from django.db.models import Q

    qs = ModelVersion.objects.filter(kind=ModelVersion.Kind.POLICY)
    if project is not None:
        qs = qs.filter(Q(project=project) | Q(project__isnull=True))
    return qs
