"""Request and response models of SAE training: what to train (`TrainRequest`, one `SAERequest` per SAE sharing
the model's forward), the started job (`TrainingStarted`) and a run's curves (`TrainingCurves`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Architecture = Literal["standard", "topk", "batchtopk", "jumprelu", "matryoshka_batchtopk"]
Normalization = Literal["expected_average_only_in", "none"]


class SAERequest(BaseModel):
    """One SAE (or transcoder, with `hook_out`) to train; unset fields take the budget-aware defaults."""

    model_config = ConfigDict(extra="forbid")

    hook: str = Field(description="Hook the SAE reads: a TransformerLens name (blocks.3.hook_resid_post) or an HF "
                                  "module path (model.layers.3.output)")
    hook_out: str | None = Field(None, description="A transcoder's output hook (what it reconstructs)")
    architecture: Architecture = "topk"
    d_sae: int | None = Field(None, gt=0, description="Number of latents (or give expansion)")
    expansion: float | None = Field(None, gt=0, description="d_sae = expansion × d_in (default 8 when neither)")
    k: int | None = Field(None, gt=0, description="Active latents per token (topk, batchtopk, matryoshka)")
    l1_coefficient: float | None = Field(None, ge=0, description="Sparsity penalty of the standard SAE")
    l0_coefficient: float | None = Field(None, ge=0, description="L0 penalty of the JumpReLU SAE")
    matryoshka_widths: list[int] | None = Field(None, description="Nested widths of a Matryoshka SAE")
    lr: float | None = Field(None, gt=0, description="Learning rate (default: chosen for the token budget)")
    name: str | None = Field(None, description="Name of the SAE in the catalog")


class TrainRequest(SAERequest):
    """A training run: the model, the data and the first SAE (top-level fields); `extra_saes` are more SAEs trained
    on the same forward passes (other hooks, widths or k)."""

    model: str = Field(description="HF model id or local folder")
    dataset: str = Field("builtin:corpus", description="File/folder (.txt, .jsonl, .parquet, save_to_disk), HF id, "
                                                       "or builtin:corpus")
    n_tokens: int = Field(gt=0, description="Training tokens (special tokens excluded)")
    batch_tokens: int | None = Field(None, gt=0, description="Tokens per optimisation step (default 4096)")
    context_size: int = Field(128, ge=2, description="Tokens per window")
    device: str | None = Field(None, description="cpu, cuda, cuda:N or mps (default: automatic)")
    dtype: str | None = Field(None, description="The model's dtype (default: float32 on CPU, bfloat16 on GPU)")
    seed: int = Field(0, description="Seed of the initialisation, the window order and the shuffling buffer")
    epochs: int = Field(1, ge=1, description="Passes over the dataset's windows (each further pass in a new "
                                             "seeded order); n_tokens is spread over them")
    text_field: str = "text"
    split: str = "train"
    extra_saes: list[SAERequest] = Field(default_factory=list, description="More SAEs trained on the same forward")
    eval_every_tokens: int | None = Field(None, gt=0, description="Evaluate on held-out windows this often "
                                                                  "(default: 10 times per run)")
    eval_windows: int = Field(16, ge=1, description="Held-out windows of each evaluation")
    checkpoint_every_tokens: int | None = Field(None, gt=0, description="Checkpoint this often (default: 20 "
                                                                        "times per run)")
    normalize_activations: Normalization = Field(
        "expected_average_only_in", description="Scale inputs to mean norm sqrt(d_in) (SAELens's "
                                                "expected_average_only_in; folded into the saved SAE) or not")
    exclude_special_tokens: bool = Field(True, description="Leave BOS/EOS/pad positions out of training")
    buffer_windows: int | None = Field(None, gt=0, description="Windows held in the shuffling buffer "
                                                               "(default 64)")
    forward_batch_windows: int | None = Field(None, gt=0, description="Windows per model forward (default 16)")


class TrainingStarted(BaseModel):
    """A queued (or resumed) training job and the training records (one per SAE, in request order)."""

    model_config = ConfigDict(extra="forbid")

    job_id: str
    training_ids: list[str]
    resumed: bool = Field(description="An interrupted or paused run with the same settings was resumed")
    tokens_done: int = Field(0, description="Tokens already trained at the checkpoint a resume continues from")


class StepPoint(BaseModel):
    """One logged optimisation step of one SAE."""

    step: int
    tokens: int
    elapsed_s: float = Field(description="Wall seconds since the run started, resumes included")
    loss: float
    mse: float
    l0: float
    explained_variance: float
    dead_fraction: float
    lr: float


class DensityHistogram(BaseModel):
    """Feature-density histogram: counts of features per log10(activation frequency) bin."""

    edges: list[float]
    counts: list[int]


class EvalPoint(BaseModel):
    """One held-out evaluation of one SAE (CE/KL None for a transcoder not spliced at its output)."""

    step: int
    tokens: int
    explained_variance: float | None = None
    l0: float | None = None
    mse: float | None = None
    dead_fraction: float | None = None
    dense_fraction: float | None = None
    ce_loss_clean: float | None = None
    ce_loss_sae: float | None = None
    ce_loss_zero: float | None = None
    ce_loss_recovered: float | None = None
    kl_div: float | None = None


class TrainingCurves(BaseModel):
    """A training's step curves, its evaluations and the latest evaluation's density histogram."""

    model_config = ConfigDict(extra="forbid")

    training_id: str
    steps: list[StepPoint]
    evals: list[EvalPoint]
    density_histogram: DensityHistogram | None
