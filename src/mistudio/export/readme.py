"""The archive's README.md: contents, Neuronpedia upload steps with pre-filled values, HF upload, limitations."""

from __future__ import annotations

from typing import Any

from mistudio.export import layout


def readme_text(meta: dict[str, Any], *, n_features: int, n_skipped: int, has_neuronpedia: bool,
                has_saelens: bool, release: str, saelens_sae_id: str, hf_repo_id: str | None,
                compression: str) -> str:
    """README.md for an export whose metadata.json is `meta`."""
    np_ids = meta["neuronpedia"]
    ext = layout.feature_suffix(compression == "gzip")
    bulk_folder = layout.np_bulk_folder(np_ids["model_id"], np_ids["source_id"])
    repo = hf_repo_id or "YOUR-HF-USER/YOUR-REPO"
    lines = [
        f"# miStudio export: {meta['sae_id']}",
        "",
        f"{n_features} features of the SAE on `{meta['model_id']}` at `{meta['hook_point']}` "
        f"(d_sae {meta['d_sae']}, d_model {meta['d_model']}, architecture {meta['architecture']}).",
        "",
        "## Contents",
        "",
        "| path | what |",
        "|---|---|",
        f"| `{layout.METADATA}` | SAE and extraction metadata |",
        f"| `{layout.FEATURES_DIR}/{{index}}{ext}` | per-feature dashboard data (examples, logits, histogram, "
        "statistics) |",
        f"| `{layout.EXPLANATIONS}` | every explanation per feature (typed as a label, imported, generated) with "
        "its method, model, prompt version and scores; the feature files carry the same under `explanations` |",
    ]
    export_cfg = meta.get("export") or {}
    if has_neuronpedia:
        if export_cfg.get("saedashboard_batches"):
            lines += [f"| `{layout.saedashboard_batch('{n}')}` | SAEDashboard `neuronpedia-runner` batch files |"]
        lines += [
            f"| `{layout.SKIPPED_INDEXES}` | features without examples (dead), left out of the batches |",
            f"| `{bulk_folder}/` | Neuronpedia bulk-import "
            "layout (release/model/sourceset/source JSONL + features/activations/explanations/explanation_scores "
            "batches; activation rows are grouped by prompt window, see below) |",
            f"| `{layout.NP_CONFIG_DIR}/` | Neuronpedia config rows for the explanation types, explanation models, "
            "score types and score models the rows name (only when there are some) |",
        ]
    if has_saelens:
        lines += [f"| `{layout.SAELENS_DIR}/` | the SAE in SAELens format (`cfg.json`, `sae_weights.safetensors`, "
                  "`sparsity.safetensors`) and `pretrained_saes.yaml` |"]
    lines += [f"| `{layout.SHA256SUMS}` | checksums; check with `sha256sum -c {layout.SHA256SUMS}` |", ""]
    if has_neuronpedia:
        lines += [
            "## Getting it onto Neuronpedia",
            "",
            "| field | value |",
            "|---|---|",
            f"| Model | `{np_ids['model_id']}` ({meta.get('n_layers') or '?'} layers, "
            f"{meta.get('d_mlp') or '?'} MLP neurons per layer) |",
            f"| Source set | `{np_ids['source_set']}` |",
            f"| Source (SAE) id | `{np_ids['source_id']}` |",
            f"| Layer | `{np_ids['layer']}` |",
            f"| Hook point | `{meta['hook_point']}` |",
            f"| Dataset | `{meta['extraction']['dataset']}` |",
            f"| Prompts × tokens | {meta['extraction']['n_prompts']} × {meta['extraction']['context_size']} |",
            f"| SAELens release / SAE id | `{release}` / `{saelens_sae_id}` |",
            f"| HuggingFace repo | `{repo}` |",
            "",
            "First check the archive: `mistudio export validate THIS.zip` (`--fix` repairs what can be repaired). "
            "Then one of two ways, as Neuronpedia works today:",
            "",
            f"1. **Bulk import (everything Neuronpedia shows).** The folder `{bulk_folder}/` is Neuronpedia's "
            "import layout, the one its own converter writes. neuronpedia.org imports only from its S3 bucket "
            "`s3://neuronpedia-datasets/v1/`, which the Neuronpedia team fills: send them the folder (or a link to "
            "it) with the values above. On your own Neuronpedia instance, copy the folder to "
            f"`v1/{np_ids['model_id']}/{np_ids['source_id']}/` of its bucket and open "
            f"`/api/admin/import?modelId={np_ids['model_id']}&sourceId={np_ids['source_id']}` as an admin.",
            "2. **Public API (no one else involved, fewer fields).** With a neuronpedia.org API key: "
            "`mistudio export upload-neuronpedia THIS.zip --api-key $NEURONPEDIA_API_KEY`. It creates the model "
            f"`{np_ids['model_id']}` and the source set `{np_ids['source_set']}` when missing, then sends at most "
            "128 features per call; an interrupted upload resumes where it stopped. The API "
            "(`/api/feature/upload-batch`) takes each feature's density, top/bottom logits, explanations (text) and "
            "activations (tokens, values, quantile band); it has no field for the activation and logit "
            "histograms, neuron alignment, correlated neurons and features, the decoder cosine top-k, "
            "explanation models or scores, or `dataIndex`, so those panels stay empty on an API upload (an "
            "explanation's method goes as `methodName` when it is one of Neuronpedia's types). Use the "
            "bulk import for them.",
            "",
        ]
    if has_saelens:
        lines += [
            "## Publishing the SAELens folder",
            "",
            f"`mistudio publish hf {meta['sae_id']} --repo {repo} --sae-id {saelens_sae_id}"
            + (f" --model-id {meta['model_name']}" if meta.get("model_name") else "")
            + f" --neuronpedia-id {meta['neuronpedia_id']}` uploads it in one step. By hand, from the unzipped "
            "archive:",
            "",
            "```bash",
            f"hf upload {repo} {layout.SAELENS_DIR}/ {saelens_sae_id} --repo-type model",
            "```",
            "",
            f"This puts the folder at `{saelens_sae_id}/` of the repo, where `{layout.SAELENS_PRETRAINED}` points "
            f"(`path: {saelens_sae_id}`), so `SAE.from_pretrained(\"{release}\", \"{saelens_sae_id}\")` loads it "
            f"once that entry is in SAELens's `pretrained_saes.yaml` (pull request). Locally: "
            "`sae_lens.SAE.load_from_disk(\"saelens\")`.",
            "",
        ]
    lines += [
        "## Known limitations",
        "",
        "- Neuronpedia has no field for the mean/standard deviation of activations or for top tokens; they are "
        "only in `features/`.",
        "- The Neuronpedia outputs hold what SAEDashboard's Neuronpedia runner computes (activations folded by "
        "the decoder-row norm, examples without position 0, 20 top examples and 5 × 5 quantile-band examples, "
        f"logit lens: `{export_cfg.get('np_logit_lens', 'neuronpedia')}`), with two deliberate differences: one "
        "top example per prompt window, and tokens as decoded text; `features/` keeps miStudio's own dashboard "
        "statistics"
        + (" and its interval examples." if export_cfg.get("interval_examples") else "."),
        "- `activations/batch-{k}.jsonl.gz` of the bulk-import layout holds rows ordered by prompt window "
        "(`dataIndex`), each file a range of windows, not the features of `features/batch-{k}.jsonl.gz`: a window "
        "is a top example of many features, and rows of the same window side by side compress to about one copy "
        "of its text. Neuronpedia's importer takes the rows in any order.",
        f"- {n_skipped} dead feature(s) are left out of the Neuronpedia batches (see `skipped_indexes.json`).",
        "- Explanation rows carry `typeName` = the method when it is one of Neuronpedia's explanation types "
        "(`np_max-act-logits`, `oai_token-act-pair`, …; null for a typed label or an unknown method) with "
        "`explanationModelName` = the model that wrote it, and `scoreV1` = the OpenAI simulation score (else an "
        "imported score, else 0); `notes` keeps method, model, source and prompt version. Detection and fuzzing "
        "scores are `ExplanationScore` rows in `explanation_scores/` (types `eleuther_recall`, `eleuther_fuzz`), "
        "which Neuronpedia's bulk importer does not read: insert them with the same column names. Copy "
        f"`{layout.NP_CONFIG_DIR}/*.jsonl` to the bucket's `v1/config/` (the importer upserts them first) so "
        "the type and model names exist.",
        "- Neuronpedia's bulk importer lists at most 1,000 files per folder: keep batches ≤ 1,000 (raise "
        "`batch_size` for very wide SAEs).",
        "",
    ]
    return "\n".join(lines)
