"""Model names: HuggingFace Hub ids <-> TransformerLens names (SAE configs carry the TransformerLens ones)."""

from __future__ import annotations

import importlib.util
import re
from functools import lru_cache
from pathlib import Path

# (TransformerLens name pattern, HF id template), used when transformer_lens is not installed.
_BUILTIN: tuple[tuple[str, str], ...] = (
    (r"gpt2-small", "gpt2"),
    (r"(gpt2-(?:medium|large|xl)|distilgpt2)", "{0}"),
    (r"(pythia-[0-9.]+[mb](?:-deduped)?(?:-v0)?)", "EleutherAI/{0}"),
    (r"(gemma-(?:2-)?(?:2b|7b|9b|27b)(?:-it)?)", "google/{0}"),
    (r"(gemma-3-(?:270m|1b|4b|12b|27b)(?:-pt|-it)?)", "google/{0}"),
    (r"(gpt-oss-(?:20b|120b))", "openai/{0}"),
    (r"mistral-7b", "mistralai/Mistral-7B-v0.1"),
    (r"mistral-7b-instruct", "mistralai/Mistral-7B-Instruct-v0.1"),
    (r"llama-2-7b", "meta-llama/Llama-2-7b-hf"),
    (r"llama-2-7b-chat", "meta-llama/Llama-2-7b-chat-hf"),
)
# Hub repo names written without their organisation (dictionary_learning configs keep only the part after
# the slash), spelled exactly as on the Hub: (pattern, organisation).
_ORG_LESS: tuple[tuple[str, str], ...] = (
    (r"(?:Meta-Llama-3|Llama-3\.\d)-[\w.-]+", "meta-llama"),
    (r"DeepSeek-R1-Distill-[\w.-]+", "deepseek-ai"),
    (r"Qwen(?:2|2\.5|3|3\.5)-[\w.-]+", "Qwen"),
)
_QWEN = re.compile(r"qwen(2(?:\.5)?|3)-([0-9.]+)b(-instruct)?")
_HUB_URL = "https://huggingface.co/"


@lru_cache(maxsize=1)
def _transformer_lens_tables() -> tuple[list[str], dict[str, list[str]]] | None:
    """TransformerLens' own name tables, read from its data-only module without importing the package."""
    spec = importlib.util.find_spec("transformer_lens")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "supported_models.py"
    if not path.is_file():
        return None
    module_spec = importlib.util.spec_from_file_location("_mistudio_tl_supported_models", path)
    if module_spec is None or module_spec.loader is None:
        return None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return list(module.OFFICIAL_MODEL_NAMES), dict(module.MODEL_ALIASES)


def _builtin_hf_id(name: str) -> str | None:
    for pattern, organisation in _ORG_LESS:
        if re.fullmatch(pattern, name):
            return f"{organisation}/{name}"
    lowered = name.lower()
    for pattern, template in _BUILTIN:
        match = re.fullmatch(pattern, lowered)
        if match:
            return template.format(*match.groups())
    match = _QWEN.fullmatch(lowered)
    if match:
        version, size, instruct = match.groups()
        return f"Qwen/Qwen{version}-{size.upper()}B{'-Instruct' if instruct else ''}"
    return None


def hf_id_for(tl_name: str) -> str:
    """The HuggingFace Hub id for a TransformerLens model name or alias (unknown names are returned unchanged;
    a `https://huggingface.co/<id>` link gives `<id>`)."""
    if tl_name.startswith(_HUB_URL):
        return tl_name[len(_HUB_URL):].strip("/")
    tables = _transformer_lens_tables()
    if tables is not None:
        official, aliases = tables
        lookup = {name.lower(): name for name in official}
        for name, names in aliases.items():
            lookup.update({alias.lower(): name for alias in names})
        if tl_name.lower() in lookup:
            return lookup[tl_name.lower()]
    return _builtin_hf_id(tl_name) or tl_name


def tl_name_for(hf_id: str) -> str:
    """The TransformerLens name SAE configs use for a HuggingFace Hub id (its first alias, else the id)."""
    tables = _transformer_lens_tables()
    if tables is not None:
        aliases = {name.lower(): names for name, names in tables[1].items()}
        if aliases.get(hf_id.lower()):
            return aliases[hf_id.lower()][0]
        return hf_id
    for pattern, template in _BUILTIN:
        if "{0}" not in template and template.lower() == hf_id.lower():
            return pattern
        if "{0}" in template:
            prefix = template.replace("{0}", "")
            if hf_id.startswith(prefix) and re.fullmatch(pattern, hf_id[len(prefix):].lower()):
                return hf_id[len(prefix):]
    match = re.fullmatch(r"Qwen/Qwen(2(?:\.5)?|3)-([0-9.]+)B(-Instruct)?", hf_id)
    if match:
        version, size, instruct = match.groups()
        return f"qwen{version}-{size}b{'-instruct' if instruct else ''}"
    return hf_id
