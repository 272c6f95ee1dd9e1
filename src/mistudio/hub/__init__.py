"""HuggingFace Hub access: `browse.browse_repo` (list SAEs from headers only) and `download.download_sae`
(one SAE's files, pinned to a commit, resumable, cancellable). Errors are `mistudio.errors.Hub*Error`."""
