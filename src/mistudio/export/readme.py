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
        f"| `{layout.EXPLANATIONS}` | every explanation per feature |",
    ]
    export_cfg = meta.get("export") or {}
    if has_neuronpedia:
        if export_cfg.get("saedashboard_batches"):
            lines += [f"| `{layout.saedashboard_batch('{n}')}` | SAEDashboard `neuronpedia-runner` batch files |"]
        lines += [
            f"| `{layout.SKIPPED_INDEXES}` | features without examples (dead), left out of the batches |",
            f"| `{bulk_folder}/` | Neuronpedia bulk-import "
            "layout (release/model/sourceset/source JSONL + features/activations/explanations batches; activation "
            "rows are grouped by prompt window, see below) |",
        ]
    if has_saelens:
        lines += [f"| `{layout.SAELENS_DIR}/` | the SAE in SAELens format (`cfg.json`, `sae_weights.safetensors`, "
                  "`sparsity.safetensors`) and `pretrained_saes.yaml` |"]
    lines += [f"| `{layout.SHA256SUMS}` | checksums; check with `sha256sum -c {layout.SHA256SUMS}` |", ""]
    if has_neuronpedia:
        lines += [
            "## Uploading to Neuronpedia",
            "",
            "Values to enter in Neuronpedia's upload form (or to send to the Neuronpedia team):",
            "",
            "| field | value |",
            "|---|---|",
            f"| Model | `{np_ids['model_id']}` |",
            f"| Source set | `{np_ids['source_set']}` |",
            f"| Source (SAE) id | `{np_ids['source_id']}` |",
            f"| Layer | `{np_ids['layer']}` |",
            f"| Hook point | `{meta['hook_point']}` |",
            f"| Dataset | `{meta['extraction']['dataset']}` |",
            f"| Prompts × tokens | {meta['extraction']['n_prompts']} × {meta['extraction']['context_size']} |",
            f"| SAELens release / SAE id | `{release}` / `{saelens_sae_id}` |",
            f"| HuggingFace repo | `{repo}` |",
            "",
            "Steps:",
            "",
            "1. Check the archive: `mistudio export validate THIS.zip` (add `--fix` to repair what can be repaired).",
            "2. Upload the SAELens folder to HuggingFace (below) so Neuronpedia can run live inference.",
            "3. **API upload** (neuronpedia.org account with an API key):",
            f"   `mistudio export upload-neuronpedia THIS.zip --api-key $NEURONPEDIA_API_KEY` — it creates the model "
            f"`{np_ids['model_id']}` and source set `{np_ids['source_set']}` when missing, then uploads the "
            "features in batches of at most 128; an interrupted upload resumes where it stopped.",
            "4. **Bulk import** (the path Neuronpedia uses for official data): send the folder "
            f"`{bulk_folder}/` to the Neuronpedia team (they sync it "
            "to `s3://neuronpedia-datasets/v1/`), or on your own Neuronpedia instance copy it there and open "
            f"`/api/admin/import?modelId={np_ids['model_id']}&sourceId={np_ids['source_id']}`.",
            "5. Otherwise fill in Neuronpedia's SAE upload form with the values above and attach this archive.",
            "",
        ]
    if has_saelens:
        lines += [
            "## Publishing the SAELens folder",
            "",
            "```bash",
            f"huggingface-cli upload {repo} {layout.SAELENS_DIR}/ {saelens_sae_id}",
            "```",
            "",
            f"Then add the entry in `{layout.SAELENS_PRETRAINED}` to SAELens's `pretrained_saes.yaml` (pull request),",
            f"after which `SAE.from_pretrained(\"{release}\", \"{saelens_sae_id}\")` loads it. Locally:",
            "`sae_lens.SAE.load_from_disk(\"saelens\")`.",
            "",
        ]
    lines += [
        "## Known limitations",
        "",
        "- Neuronpedia has no field for the mean/standard deviation of activations or for top tokens; they are "
        "only in `features/`.",
        "- Neuron alignment, correlated neuron/feature lists and `decoder_weights_dist` are written empty (`[]`).",
        "- Examples are the extraction's top activating windows (the TOP group, `bin_min` = -1)"
        + ("; the interval (quantile-band) groups follow them." if export_cfg.get("interval_examples") else
           "; SAEDashboard also adds quantile-interval groups (export with `interval_examples` to include them)."),
        "- `activations/batch-{k}.jsonl.gz` of the bulk-import layout holds rows ordered by prompt window "
        "(`dataIndex`), each file a range of windows, not the features of `features/batch-{k}.jsonl.gz`: a window "
        "is a top example of many features, and rows of the same window side by side compress to about one copy "
        "of its text. Neuronpedia's importer takes the rows in any order.",
        "- Examples keep every token of the window, including position 0 (SAEDashboard drops position 0).",
        f"- {n_skipped} dead feature(s) are left out of the Neuronpedia batches (see `skipped_indexes.json`).",
        "- Explanation rows carry `typeName`/`explanationModelName` = null (Neuronpedia's type tables may not know "
        "miStudio's methods); the method, model and score are kept in `notes`.",
        "- Neuronpedia's bulk importer lists at most 1,000 files per folder: keep batches ≤ 1,000 (raise "
        "`batch_size` for very wide SAEs).",
        "",
    ]
    return "\n".join(lines)
